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
    let inFlight = InFlight()
    await cancelWhenGracefulShutdown {
      await withTaskGroup(of: Void.self) { group in
        while !Task.isCancelled {
          let room = 4 - inFlight.count
          guard room > 0 else {
            try? await Task.sleep(for: .milliseconds(20))
            continue
          }
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
            if !Task.isCancelled { try? await Task.sleep(for: .milliseconds(500)) }
            continue
          }
          for m in messages {
            inFlight.add(1)
            group.addTask {
              await self.handle(m, connection: connection)
              inFlight.add(-1)
            }
          }
        }
        await group.waitForAll()
      }
    }
  }

  func handle(_ message: JetStreamMessage, connection: BusConnection) async {
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
        executed.increment()
        log.info("running", metadata: ["argv": "\(argv)", "requester": "\(body.requester)"])
        // Tell the router it started (its timeout counts from here).
        await publishResult(
          CommandResult(commandId: body.commandId, host: host, state: .running, startedAtUnixMs: now),
          connection: connection)
        let result = await run(body, argv: argv, message: message, connection: connection)
        await publishResult(result, connection: connection)
        log.info("finished", metadata: ["state": "\(result.state)", "reason": "\(result.reason)"])
        if result.state == .failed || result.state == .timedOut {
          await announceFailure(result, argv: argv, connection: connection)
        }
        try? message.ack()
      }
    }
  }

  private func run(_ body: CommandDispatchBody, argv: [String], message: JetStreamMessage, connection: BusConnection)
    async
    -> CommandResult
  {
    let host = self.host
    let executor = self.executor
    return await withCheckedContinuation { continuation in
      // Its own thread: the run blocks, and output is published from here
      // with back-pressure.
      Thread.detachNewThread {
        var sequence: UInt64 = 0
        var lastProgress = ContinuousClock.now
        let (state, outcome, reason) = executor.execute(body, argv: argv) { channel, data in
          sequence += 1
          let chunk = CommandOutput(
            commandId: body.commandId, host: host, chunkSequence: sequence, channel: channel, data: data,
            emittedAtUnixMs: Date().unixMilliseconds)
          _ = try? connection.jetStreamPublishBlocking(
            Subjects.commandsResult(host), payload: chunk.encode(), headers: BusHeader.describing(CommandOutput.self),
            msgID: "\(body.commandId):\(host):out:\(sequence)")
          if ContinuousClock.now - lastProgress > .seconds(20) {
            try? message.inProgress()
            lastProgress = .now
          }
        }
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

/// Commands being run now (at most four at once).
final class InFlight: Sendable {
  private let value = Mutex(0)
  var count: Int { value.withLock { $0 } }
  func add(_ n: Int) { value.withLock { $0 += n } }
}
