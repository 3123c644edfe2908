import Foundation
public import Logging
import Metrics
import MirrorBus
public import MirrorService
import MirrorWire
public import ServiceLifecycle
import Synchronization

/// Receives dispatches on the host's own durable consumer
/// (`commands.dispatch.<host>`), verifies and runs them, and streams output
/// and a final result to `commands.result.<host>`. A refused dispatch gets a
/// result saying why; nothing is dropped silently.
public final class CommandService: Service, Sendable {
  private let host: String
  private let bus: BusService
  private let verifier: DispatchVerifier
  private let executor: CommandExecutor
  private let logger: Logger
  private let rejected = Counter(label: "reflector_commands_rejected_total")
  private let executed = Counter(label: "reflector_commands_run_total")
  private let lostChunks = Counter(label: "reflector_command_output_lost_total")
  private let sessions = InFlight()
  static let maxSessions = 8

  public init(host: String, bus: BusService, verifier: DispatchVerifier, executor: CommandExecutor, logger: Logger) {
    self.host = host
    self.bus = bus
    self.verifier = verifier
    self.executor = executor
    self.logger = logger
  }

  public func run() async throws {
    guard let connection = try? await bus.connection() else { return }
    let config = ConsumerConfig(
      durable: "reflector_\(host)", filterSubject: Subjects.commandsDispatch(host), ackWait: .seconds(60),
      maxDeliver: 5, deliverPolicy: .new)
    guard
      let consumer = await connection.pullConsumerRetrying(
        stream: Streams.commands.name, config, every: .seconds(2), logger: logger)
    else { return }
    logger.info("accepting commands", metadata: ["subject": "\(Subjects.commandsDispatch(host))"])
    let slots = Slots(4)
    await cancelWhenGracefulShutdown {
      await withTaskGroup(of: Void.self) { group in
        while !Task.isCancelled {
          // Woken by a command that finishes, not by a timer.
          let room = await slots.room()
          guard room > 0 else { continue }
          // A long poll: the server answers as soon as a dispatch arrives,
          // and an idle agent asks once every 30 s, not every second. On
          // shutdown the subscription is closed, which ends the wait.
          let messages: [JetStreamMessage]
          do {
            messages = try await withTaskCancellationHandler {
              try await consumer.fetch(batch: room, timeout: .seconds(30))
            } onCancel: {
              consumer.close()
            }
          } catch {
            // NATS away (or closed on shutdown): do not spin.
            if !Task.isCancelled {
              self.logger.warning("cannot fetch dispatches", metadata: ["error": "\(error)"])
              try? await Task.sleep(for: .milliseconds(500))
            }
            continue
          }
          for m in messages {
            let slot = slots.take()
            group.addTask {
              await self.handle(m, connection: connection, slot: slot)
              slot.release()
            }
          }
        }
        await group.waitForAll()
      }
    }
  }

  /// `slot`: released early by a session (sessions do not hold one of
  /// the four command slots; at most `maxSessions` run at once).
  func handle(_ message: JetStreamMessage, connection: BusConnection, slot: Slot? = nil) async {
    let now = Date().unixMilliseconds
    switch verifier.verify(message.payload, nowUnixMs: now) {
    case .failure(let rejection):
      rejected.increment()
      // The id is only for the router's bookkeeping; it is not trusted.
      let claimed = (try? CommandDispatch(decoding: message.payload)).flatMap {
        try? CommandDispatchBody(decoding: $0.body)
      }
      logger.warning(
        "dispatch refused", metadata: ["reason": "\(rejection)", "command_id": "\(claimed?.commandId ?? "?")"])
      await publishResult(
        CommandResult(
          commandId: claimed?.commandId ?? "", host: host, state: .rejected, startedAtUnixMs: now,
          finishedAtUnixMs: now,
          reason: rejection.description), connection: connection)
      try? message.term()
    case .success(let body):
      var log = logger
      log[metadataKey: "command_id"] = "\(body.commandId)"
      switch executor.plan(body) {
      case .failure(let rejection):
        rejected.increment()
        log.warning("command not allowed", metadata: ["reason": "\(rejection)"])
        await publishResult(
          CommandResult(
            commandId: body.commandId, host: host, state: .rejected, startedAtUnixMs: now, finishedAtUnixMs: now,
            reason: rejection.description), connection: connection)
        try? message.ack()
      case .success(let argv):
        let action = body.action ?? CommandAction()
        let isSession = action.builtin == .shell || action.builtin == .forward
        if isSession {
          guard sessions.add(1) <= Self.maxSessions else {
            sessions.add(-1)
            rejected.increment()
            log.warning("session refused: too many at once")
            await publishResult(
              CommandResult(
                commandId: body.commandId, host: host, state: .rejected, startedAtUnixMs: now,
                finishedAtUnixMs: now, reason: "not_allowed: \(Self.maxSessions) sessions are open already"),
              connection: connection)
            try? message.ack()
            return
          }
          slot?.release()
        }
        defer { if isSession { sessions.add(-1) } }
        executed.increment()
        // At most once: from here a redelivery (a crash, a long silent
        // run past the ack wait) must not run it again.
        try? message.ack()
        log.info("running", metadata: ["argv": "\(argv)", "requester": "\(body.requester)"])
        // Tell the router it started (its timeout counts from here).
        await publishResult(
          CommandResult(commandId: body.commandId, host: host, state: .running, startedAtUnixMs: now),
          connection: connection)
        let result = await run(body, argv: argv, message: message, connection: connection)
        await publishResult(result, connection: connection)
        log.info("finished", metadata: ["state": "\(result.state)", "reason": "\(result.reason)"])
        if !isSession, result.state == .failed || result.state == .timedOut {
          await announceFailure(result, argv: argv, connection: connection)
        }
      }
    }
  }

  private func run(_ body: CommandDispatchBody, argv: [String], message: JetStreamMessage, connection: BusConnection)
    async
    -> CommandResult
  {
    let host = self.host
    let executor = self.executor
    let logger = self.logger
    let lostChunks = self.lostChunks
    return await withCheckedContinuation { continuation in
      // Its own thread: the run blocks, and output is published from here
      // with back-pressure.
      Thread.detachNewThread {
        var sequence: UInt64 = 0
        let output = { (channel: OutputChannel, data: [UInt8]) in
          sequence += 1
          let chunk = CommandOutput(
            commandId: body.commandId, host: host, chunkSequence: sequence, channel: channel, data: data,
            emittedAtUnixMs: Date().unixMilliseconds)
          do {
            _ = try connection.jetStreamPublishBlocking(
              Subjects.commandsResult(host), payload: chunk.encode(), headers: BusHeader.describing(CommandOutput.self),
              msgID: "\(body.commandId):\(host):out:\(sequence)")
          } catch {
            // The result counts the chunk; the router marks the gap.
            lostChunks.increment()
            logger.warning(
              "output chunk not stored", metadata: ["command_id": "\(body.commandId)", "error": "\(error)"])
          }
        }
        let action = body.action ?? CommandAction()
        let (state, outcome, reason) =
          action.builtin == .shell || action.builtin == .forward
          ? SessionHost(host: host, policy: executor.policy.sessions, connection: connection, logger: logger)
            .run(body, argv: argv, output: output)
          : executor.execute(body, argv: argv, output: output)
        continuation.resume(
          returning: CommandResult(
            commandId: body.commandId, host: host, state: state, exitCode: outcome.exitCode, signal: outcome.signal,
            startedAtUnixMs: outcome.startedAt.unixMilliseconds,
            finishedAtUnixMs: outcome.finishedAt.unixMilliseconds, truncated: outcome.truncated,
            outputBytes: outcome.outputBytes, chunks: outcome.chunks, reason: reason))
      }
    }
  }

  /// A command that failed or timed out is also an event on
  /// `events.<host>`, for the Notifier (best effort: the result itself is
  /// what the router records).
  private func announceFailure(_ result: CommandResult, argv: [String], connection: BusConnection) async {
    let how =
      result.state == .timedOut
      ? "timed out"
      : result.exitCode.map { "exited with \($0)" } ?? result.signal.map { "killed by signal \($0)" }
        ?? "failed"
    let event = Event(
      id: "\(result.commandId):\(host):failed", host: host, kind: .commandFailed, severity: .warning,
      occurredAtUnixMs: result.finishedAtUnixMs, source: "command.\(result.commandId)",
      message: "\(argv.joined(separator: " ")): \(result.reason.isEmpty ? how : result.reason)")
    _ = try? await connection.jetStreamPublish(Subjects.events(host), event, msgID: event.id)
  }

  private func publishResult(_ result: CommandResult, connection: BusConnection) async {
    // A run's result has one id, so a retried publish is stored once; each
    // refusal has its own (a replay's refusal must not vanish as a
    // duplicate of the original run's result).
    let msgID =
      switch result.state {
      case .rejected: "\(result.commandId):\(host):rejected:\(UUID().uuidString)"
      case .running: "\(result.commandId):\(host):started"
      default: "\(result.commandId):\(host):result"
      }
    for attempt in 0..<5 {
      do {
        _ = try await connection.jetStreamPublish(Subjects.commandsResult(host), result, msgID: msgID)
        return
      } catch {
        logger.warning(
          "cannot publish a command result; retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
        try? await Task.sleep(for: .seconds(1 << attempt))
      }
    }
    logger.error("command result lost after retries", metadata: ["command_id": "\(result.commandId)"])
  }
}

/// Sessions open now.
final class InFlight: Sendable {
  private let value = Mutex(0)
  @discardableResult func add(_ n: Int) -> Int {
    value.withLock {
      $0 += n; return $0
    }
  }
}

/// The command slots: `room` waits (without a timer) until one is free.
final class Slots: Sendable {
  private let state: Mutex<(free: Int, waiter: CheckedContinuation<Void, Never>?)>

  init(_ count: Int) { state = Mutex((count, nil)) }

  /// Free slots, once there is at least one (one waiter: the fetch loop).
  func room() async -> Int {
    let free = state.withLock { $0.free }
    if free > 0 { return free }
    await withCheckedContinuation { continuation in
      let now = state.withLock { s -> Bool in
        if s.free > 0 { return true }
        s.waiter = continuation
        return false
      }
      if now { continuation.resume() }
    }
    return state.withLock { $0.free }
  }

  func take() -> Slot {
    state.withLock { $0.free -= 1 }
    return Slot(self)
  }

  fileprivate func give() {
    let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
      s.free += 1
      defer { s.waiter = nil }
      return s.waiter
    }
    waiter?.resume()
  }
}

/// One taken slot; released once, however often `release` is called.
final class Slot: Sendable {
  private let slots: Slots
  private let released = Atomic<Bool>(false)
  init(_ slots: Slots) { self.slots = slots }
  func release() {
    guard !released.exchange(true, ordering: .relaxed) else { return }
    slots.give()
  }
}
