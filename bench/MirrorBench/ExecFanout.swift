import CommandRouterCore
import Foundation
import Logging
import MirrorBus
import MirrorService
import MirrorWire
import ReflectorCore

/// One command to many hosts: `echo hi` submitted for N simulated hosts
/// until every host's result is back at the client (`CommandRun`, as
/// `mirrorctl exec` waits), through the real router, NATS and PostgreSQL.
/// The hosts are simulated in this process: one pull consumer takes every
/// dispatch, verifies it as a reflector does (the router's signature, the
/// host, the deadline, replays), acks it and publishes the host's result.
enum ExecFanout {
  static func run(url: String, keyPath: String, user: String, routerKeyPath: String, hosts n: Int, runs: Int)
    async throws
  {
    let key = try KeyFiles.loadPrivate(keyPath)
    let routerKey = try DispatchVerifier.loadPublicKey(routerKeyPath)
    let names = (1...n).map { "sim-\($0)" }
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    // The hosts' connection apart from the client's, as they would be.
    let hostsBus = try await BusConnection.connect(BusOptions(urls: [url], name: "bench-sim-hosts"), logger: logger)
    let bus = try await BusConnection.connect(BusOptions(urls: [url], name: "bench-client"), logger: logger)
    let fleet = try await SimulatedHosts(names: names, routerKey: routerKey, connection: hostsBus)
    let serving = Task { await fleet.run() }

    var totals: [Double] = []
    var routerFinals: [Double] = []
    var firstDispatch: [Double] = []
    var spreads: [Double] = []
    var allSucceeded = true
    var notes: [String] = []
    // One warm-up run, not counted.
    for i in 0...runs {
      let request = try Identity.sign(
        CommandRequest(
          id: UUID().uuidString.lowercased(), target: CommandTarget(kind: .hosts, hosts: names),
          action: CommandAction(argv: ["echo", "hi"]), timeoutMs: 60_000, reason: "bench",
          submittedAtUnixMs: Date().unixMilliseconds), user: user, key: key)
      // The router's final word too (it stores every result first).
      let (announced, feed) = AsyncStream<ContinuousClock.Instant>.makeStream(bufferingPolicy: .bufferingOldest(1))
      let state = try bus.subscribe(Subjects.commandsState(request.id), pending: 16) { _ in feed.yield(.now) }
      let start = ContinuousClock.now
      let outcome: CommandRun.Outcome
      do {
        outcome = try await CommandRun.run(request, on: bus, replyTimeout: .seconds(60), wait: .seconds(120))
      } catch {
        state.unsubscribe()
        notes.append("run \(i): \(error)")
        allSucceeded = false
        continue
      }
      let elapsed = ContinuousClock.now - start
      let hosts = outcome.record?.hosts ?? []
      let succeeded = hosts.filter { $0.state == .succeeded }.count
      if succeeded != n {
        allSucceeded = false
        notes.append(
          "run \(i): \(succeeded) of \(n) hosts succeeded (\(outcome.reply.state.stored) \(outcome.reply.reason))")
      }
      // The next run starts once the router has stored this one.
      let stored = await first(of: announced, within: .seconds(60))
      state.unsubscribe()
      let trace = fleet.trace(request.id)
      if ProcessInfo.processInfo.environment["BENCH_EXEC_TRACE"] != nil {
        let spread = trace.map { String(format: "%.1f", milliseconds($0.last - $0.first)) } ?? "-"
        print(String(format: "exec.fanout.sample %d %.1f ms (dispatch spread %@ ms)", i, milliseconds(elapsed), spread))
      }
      guard i > 0 else { continue }
      totals.append(milliseconds(elapsed))
      if let stored { routerFinals.append(milliseconds(stored - start)) }
      if let t = trace {
        firstDispatch.append(milliseconds(t.first - start))
        spreads.append(milliseconds(t.last - t.first))
      }
    }
    serving.cancel()
    await serving.value
    let counts = fleet.counts
    await bus.drain()
    await hostsBus.drain()

    func median(_ v: [Double]) -> Double { v.isEmpty ? .nan : v.sorted()[v.count / 2] }
    print("exec.fanout.hosts \(n)  (simulated in one process; \(totals.count) runs after 1 warm-up)")
    print(
      String(
        format: "exec.fanout.p50_ms %.1f  (submit until every host's result is at the client; runs: %@)",
        median(totals), totals.map { String(format: "%.0f", $0) }.joined(separator: " ")))
    print(String(format: "exec.fanout.max_ms %.1f  (goal < 1000)", totals.max() ?? .nan))
    print("exec.fanout.all_hosts_succeeded \(allSucceeded ? "yes" : "no")")
    print(
      String(
        format: "exec.fanout.first_dispatch_p50_ms %.1f  (submit until the first dispatch reaches the hosts)",
        median(firstDispatch)))
    print(
      String(
        format: "exec.fanout.dispatch_spread_p50_ms %.1f  (first to last dispatch at the hosts: the router's fan-out)",
        median(spreads)))
    print(
      String(
        format: "exec.fanout.router_final_p50_ms %.1f  (submit until the router announces the stored final record)",
        median(routerFinals)))
    print(
      "exec.fanout.simulated_hosts dispatches \(counts.dispatches), refused \(counts.refused), "
        + "result publish failures \(counts.publishFailures)")
    for note in notes.prefix(5) { print("exec.fanout.note \(note)") }
  }

  /// The first element of `stream`, or nil when none comes within `limit`.
  static func first<T: Sendable>(of stream: AsyncStream<T>, within limit: Duration) async -> T? {
    await withTaskGroup(of: T?.self) { group in
      group.addTask {
        for await value in stream { return value }
        return nil
      }
      group.addTask {
        try? await Task.sleep(for: limit)
        return nil
      }
      let first = await group.next() ?? nil
      group.cancelAll()
      return first
    }
  }
}

/// Many reflectors' command side in one process: every dispatch on
/// `commands.dispatch.>` is verified with the verifier of the host it
/// names, acknowledged, and answered with a started and a final result on
/// `commands.result.<host>`, with the reflector's message ids. Dispatches
/// are handled many at once (up to `width`), as separate hosts would.
final class SimulatedHosts: Sendable {
  struct Trace: Sendable {
    var first: ContinuousClock.Instant
    var last: ContinuousClock.Instant
    var count: Int
  }

  struct Counts: Sendable {
    var dispatches = 0
    var refused = 0
    var publishFailures = 0
  }

  private let verifiers: [String: DispatchVerifier]
  private let consumer: PullConsumer
  private let connection: BusConnection
  private let traces = Shared<[String: Trace]>([:])
  private let counters = Shared(Counts())
  private let width = 64

  init(names: [String], routerKey: Data, connection: BusConnection) async throws {
    verifiers = Dictionary(
      uniqueKeysWithValues: try names.map { ($0, try DispatchVerifier(routerPublicKey: routerKey, host: $0)) })
    self.connection = connection
    consumer = try await connection.pullConsumer(
      stream: Streams.commands.name,
      ConsumerConfig(
        durable: "bench_sim_hosts", filterSubject: Subjects.commandsDispatch(">"), ackWait: .seconds(60),
        maxDeliver: 5, deliverPolicy: .new))
  }

  var counts: Counts { counters.value }

  /// When the first and the last dispatch of a command arrived.
  func trace(_ id: String) -> Trace? { traces.value[id] }

  /// Takes dispatches until cancelled.
  func run() async {
    await withTaskGroup(of: Void.self) { group in
      var running = 0
      while !Task.isCancelled {
        let messages: [JetStreamMessage]
        do {
          messages = try await withTaskCancellationHandler {
            try await consumer.fetch(batch: 256, timeout: .seconds(5))
          } onCancel: {
            consumer.close()
          }
        } catch {
          if !Task.isCancelled { try? await Task.sleep(for: .milliseconds(100)) }
          continue
        }
        for m in messages {
          if running >= width {
            await group.next()
            running -= 1
          }
          group.addTask { await self.handle(m) }
          running += 1
        }
      }
      await group.waitForAll()
    }
  }

  private func handle(_ m: JetStreamMessage) async {
    let arrived = ContinuousClock.now
    let now = Date().unixMilliseconds
    let host = String(m.subject.split(separator: ".").last ?? "")
    guard let verifier = verifiers[host] else {
      // A real host's (bench-host): not ours to answer.
      try? m.ack()
      return
    }
    switch verifier.verify(m.payload, nowUnixMs: now) {
    case .failure(let rejection):
      counters.withLock { $0.refused += 1 }
      let claimed = (try? CommandDispatch(decoding: m.payload)).flatMap {
        try? CommandDispatchBody(decoding: $0.body)
      }
      await publish(
        CommandResult(
          commandId: claimed?.commandId ?? "", host: host, state: .rejected, startedAtUnixMs: now,
          finishedAtUnixMs: now, reason: rejection.description),
        msgID: "\(claimed?.commandId ?? ""):\(host):rejected:\(UUID().uuidString)")
      try? m.term()
    case .success(let body):
      counters.withLock { $0.dispatches += 1 }
      traces.withLock { t in
        if var trace = t[body.commandId] {
          trace.first = min(trace.first, arrived)
          trace.last = max(trace.last, arrived)
          trace.count += 1
          t[body.commandId] = trace
        } else {
          t[body.commandId] = Trace(first: arrived, last: arrived, count: 1)
        }
      }
      try? m.ack()
      await SimulatedAnswer.send(command: body.commandId, host: host, startedAt: now) {
        await self.publish($0, msgID: $1)
      }
    }
  }

  private func publish(_ result: CommandResult, msgID: String) async {
    for attempt in 0..<3 {
      do {
        _ = try await connection.jetStreamPublish(Subjects.commandsResult(result.host), result, msgID: msgID)
        return
      } catch {
        try? await Task.sleep(for: .milliseconds(100 << attempt))
      }
    }
    counters.withLock { $0.publishFailures += 1 }
  }
}

/// A simulated host's answer to a dispatch, as the reflector sends it:
/// `running`, then (after `pause`) `succeeded` with exit 0 and no output,
/// under the reflector's message ids.
enum SimulatedAnswer {
  static func send(
    command id: String, host: String, startedAt now: Int64, pause: Duration = .zero,
    publish: (CommandResult, String) async -> Void
  ) async {
    await publish(
      CommandResult(commandId: id, host: host, state: .running, startedAtUnixMs: now), "\(id):\(host):started")
    if pause > .zero { try? await Task.sleep(for: pause) }
    await publish(
      CommandResult(
        commandId: id, host: host, state: .succeeded, exitCode: 0, startedAtUnixMs: now,
        finishedAtUnixMs: Date().unixMilliseconds, outputBytes: 0, chunks: 0),
      "\(id):\(host):result")
  }
}
