import CommandRouterCore
import Crypto
import Foundation
import Logging
import MirrorBus
import MirrorService
import MirrorWire
import ReflectorCore
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// The chaos soak's fleet and operator (bench/chaos.sh): N simulated hosts
/// in one process, each doing what a reflector does on the bus, and an
/// operator submitting signed commands, while the script kills services,
/// a NATS node and PostgreSQL around them. Everything that counts is
/// written to files in OUT, one line per fact, so the script can account
/// for it against PostgreSQL:
///
/// - `acked.txt` `host boot seq collected_ms`: a batch JetStream acked
///   (published every 5 s per host with `Nats-Msg-Id = host:boot:seq`,
///   kept in the host's queue and retried in order until acked, as the
///   reflector's publisher does; `uptime_seconds` carries the sequence so
///   each stored `metrics_cpu` row names its batch);
/// - `executed.txt` `command host delivery`: a dispatch this fleet ran
///   (verified with the host's `DispatchVerifier`, acked, then answered
///   with a running and a succeeded result under the reflector's message
///   ids — the reflector acks when it starts, so it runs a dispatch at most
///   once per process; a repeat is refused as replayed);
/// - `replayed.txt` `command host delivery reason`: a dispatch refused (a
///   redelivery seen again, or anything else the verifier refused);
/// - `submitted.txt` `command mode hosts outcome attempts`: every command
///   the operator sent, `mode` = `submit` (request/reply) or `pending`
///   (the COMMANDS stream), `outcome` = the router's answer, `acked` (the
///   stream took it) or `unconfirmed` (never got through);
/// - `lost.txt`: results the fleet gave up publishing (five attempts, as
///   the reflector).
///
/// Files `ready` (every host's dispatch consumer bound: the script starts
/// its clock), `drained` (collection over, every queue empty) and, from
/// the script, `stop` (accounting may begin: leave).
enum ChaosFleet {
  static let interval = Duration.seconds(5)

  static func run(
    urls: String, keyPath: String, user: String, routerKeyPath: String, hosts n: Int, seconds: Int, out: String
  ) async throws {
    let seed = try KeyFiles.loadPrivate(keyPath).rawRepresentation
    let routerKey = try DispatchVerifier.loadPublicKey(routerKeyPath)
    let servers = urls.split(separator: ",").map(String.init)
    var logger = Logger(label: "chaos")
    logger.logLevel = .warning
    let files = try ChaosFiles(out)
    let counters = Shared(ChaosCounts())

    // Hosts share a few connections (each given every server, so a lost
    // node takes only some of them away); the operator has its own.
    var buses: [BusConnection] = []
    for i in 0..<min(5, n) {
      buses.append(
        try await BusConnection.connect(BusOptions(urls: servers, name: "chaos-hosts-\(i)"), logger: logger))
    }
    let operatorBus = try await BusConnection.connect(
      BusOptions(urls: servers, name: "chaos-operator"), logger: logger)
    let run = "chaos-\(Date().unixMilliseconds)"
    let hosts = try (1...n).map { i in
      try SimHost(
        index: i, name: "chaos-\(i)", bootID: "\(run)-\(i)", bus: buses[i % buses.count], routerKey: routerKey,
        files: files, counters: counters, logger: logger)
    }

    // Every dispatch consumer bound before the clock starts (they take
    // new dispatches only, as the reflector's).
    let commands = Task {
      await withTaskGroup(of: Void.self) { group in
        for h in hosts { group.addTask { await h.commandLoop() } }
      }
    }
    while counters.value.consumersBound < n { try await Task.sleep(for: .milliseconds(100)) }
    try files.touch("ready")
    let start = ContinuousClock.now
    let end = start + .seconds(seconds)

    let names = hosts.map(\.name)
    let publishing = Task {
      await withTaskGroup(of: Void.self) { group in
        for h in hosts {
          // Each host at its own phase within the interval.
          let phase = interval * (Double(h.index - 1) / Double(n))
          group.addTask { await h.collectLoop(start: start + phase, end: end) }
          group.addTask { await h.publishLoop() }
        }
      }
    }
    let operating = Task {
      await ChaosOperator(
        bus: operatorBus, seed: seed, user: user, hosts: names, files: files, counters: counters
      ).run(until: end)
    }
    await publishing.value
    await operating.value
    try files.touch("drained")

    // The script waits for the rest to settle and accounts; the hosts go
    // on answering dispatches until it says stop.
    while !FileManager.default.fileExists(atPath: "\(out)/stop") { try await Task.sleep(for: .milliseconds(200)) }
    commands.cancel()
    await commands.value
    await operatorBus.drain()
    for b in buses { await b.drain() }

    let c = counters.value
    print("chaos.fleet.hosts \(n)")
    print("chaos.fleet.batches_built \(c.built)  (acked \(c.acked), publish attempts failed \(c.publishFailures))")
    print(
      "chaos.fleet.dispatches_executed \(c.executed)  (refused \(c.refused), of them replays \(c.replayed); "
        + "fetch errors \(c.fetchErrors), results given up \(c.resultsLost))")
    print(
      "chaos.fleet.commands_sent \(c.submitted)  (via commands.submit \(c.viaSubmit), via commands.pending "
        + "\(c.viaPending), unconfirmed \(c.unconfirmed), retries \(c.submitRetries))")
  }
}

struct ChaosCounts: Sendable {
  var consumersBound = 0
  var built = 0
  var acked = 0
  var publishFailures = 0
  var executed = 0
  var refused = 0
  var replayed = 0
  var fetchErrors = 0
  var resultsLost = 0
  var submitted = 0
  var viaSubmit = 0
  var viaPending = 0
  var unconfirmed = 0
  var submitRetries = 0
}

/// The journal files: each line one write(2) with O_APPEND, so lines from
/// many tasks never interleave and a line written is on disk for the
/// script whatever happens to this process.
final class ChaosFiles: Sendable {
  let directory: String
  let acked: Int32
  let executed: Int32
  let replayed: Int32
  let submitted: Int32
  let lost: Int32

  init(_ directory: String) throws {
    self.directory = directory
    func open(_ name: String) throws -> Int32 {
      let fd = Glibc.open("\(directory)/\(name)", O_WRONLY | O_CREAT | O_APPEND, 0o644)
      guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission) }
      return fd
    }
    acked = try open("acked.txt")
    executed = try open("executed.txt")
    replayed = try open("replayed.txt")
    submitted = try open("submitted.txt")
    lost = try open("lost.txt")
  }

  func write(_ fd: Int32, _ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = Glibc.write(fd, $0.baseAddress, $0.count) }
  }

  func touch(_ name: String) throws {
    try Data().write(to: URL(fileURLWithPath: "\(directory)/\(name)"))
  }
}

/// One simulated host: its metrics queue and publisher, and its command
/// side (its own durable dispatch consumer, as `reflector_<host>`).
final class SimHost: Sendable {
  let index: Int
  let name: String
  let bootID: String
  private let bus: BusConnection
  private let verifier: DispatchVerifier
  private let files: ChaosFiles
  private let counters: Shared<ChaosCounts>
  private let logger: Logger

  private struct Entry: Sendable {
    var sequence: UInt64
    var collectedMs: Int64
    var payload: [UInt8]
  }

  /// Batches not yet acked, oldest first, and whether collection is over.
  private let queue = Mutex<(entries: [Entry], over: Bool)>(([], false))
  private let wake: AsyncStream<Void>.Continuation
  private let wakeups: AsyncStream<Void>

  init(
    index: Int, name: String, bootID: String, bus: BusConnection, routerKey: Data, files: ChaosFiles,
    counters: Shared<ChaosCounts>, logger: Logger
  ) throws {
    self.index = index
    self.name = name
    self.bootID = bootID
    self.bus = bus
    verifier = try DispatchVerifier(routerPublicKey: routerKey, host: name)
    self.files = files
    self.counters = counters
    self.logger = logger
    (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
  }

  /// One host in five runs hot (97 % CPU) for a minute and cool for a
  /// minute, each at its own offset, so the CPU rule fires and resolves
  /// again and again through the run.
  func cpuPercent(at elapsed: Duration) -> Double {
    guard index % 5 == 1 else { return 15 + Double(index % 7) }
    let minute = (Int(elapsed.components.seconds) + index * 7) / 60
    return minute % 2 == 0 ? 97 : 12
  }

  // MARK: Metrics

  /// Collects every interval on absolute deadlines until `end`.
  func collectLoop(start: ContinuousClock.Instant, end: ContinuousClock.Instant) async {
    var next = start
    var sequence: UInt64 = 0
    while next < end {
      try? await Task.sleep(until: next, clock: .continuous)
      sequence += 1
      let now = Date().unixMilliseconds
      let batch = MetricsBatch(
        host: name, bootId: bootID, sequence: sequence, collectedAtUnixMs: now, intervalMs: 5000,
        cpu: CpuStats(utilizationPercent: cpuPercent(at: next - start), load1: 0.4, uptimeSeconds: sequence),
        memory: MemoryStats(
          totalBytes: 8 << 30, availableBytes: 6 << 30, usedBytes: 2 << 30, freeBytes: 5 << 30),
        agentVersion: "chaos")
      queue.withLock { $0.entries.append(Entry(sequence: sequence, collectedMs: now, payload: batch.encode())) }
      counters.withLock { $0.built += 1 }
      wake.yield()
      next += ChaosFleet.interval
    }
    queue.withLock { $0.over = true }
    wake.yield()
  }

  /// Publishes the oldest batch until JetStream acks it, then the next;
  /// backs off with jitter on failure (250 ms doubling to 15 s, as the
  /// reflector). Returns when collection is over and the queue is empty.
  func publishLoop() async {
    let subject = Subjects.metricsRaw(name)
    let headers = BusHeader.describing(MetricsBatch.self)
    var backoff = Duration.milliseconds(250)
    var it = wakeups.makeAsyncIterator()
    while true {
      let (head, over) = queue.withLock { ($0.entries.first, $0.over) }
      guard let entry = head else {
        if over { return }
        _ = await it.next()
        continue
      }
      guard bus.isConnected else {
        try? await Task.sleep(for: .milliseconds(100))
        continue
      }
      do {
        _ = try await bus.jetStreamPublish(
          subject, payload: entry.payload, headers: headers, msgID: "\(name):\(bootID):\(entry.sequence)",
          timeout: .seconds(2))
        queue.withLock { _ = $0.entries.removeFirst() }
        files.write(files.acked, "\(name) \(bootID) \(entry.sequence) \(entry.collectedMs)")
        counters.withLock { $0.acked += 1 }
        backoff = .milliseconds(250)
      } catch {
        counters.withLock { $0.publishFailures += 1 }
        let jitter = Duration.milliseconds(Int.random(in: 0...Int(backoff.components.seconds * 500 + 100)))
        try? await Task.sleep(for: backoff + jitter)
        backoff = min(backoff * 2, .seconds(15))
      }
    }
  }

  // MARK: Commands

  /// The reflector's command loop: its durable consumer, long polls, up to
  /// four dispatches at once.
  func commandLoop() async {
    let config = ConsumerConfig(
      durable: "reflector_\(name)", filterSubject: Subjects.commandsDispatch(name), ackWait: .seconds(60),
      maxDeliver: 5, deliverPolicy: .new)
    guard
      let consumer = await bus.pullConsumerRetrying(
        stream: Streams.commands.name, config, every: .seconds(2), logger: logger)
    else { return }
    counters.withLock { $0.consumersBound += 1 }
    while !Task.isCancelled {
      let messages: [JetStreamMessage]
      do {
        messages = try await withTaskCancellationHandler {
          try await consumer.fetch(batch: 4, timeout: .seconds(30))
        } onCancel: {
          consumer.close()
        }
      } catch {
        if !Task.isCancelled {
          counters.withLock { $0.fetchErrors += 1 }
          try? await Task.sleep(for: .milliseconds(500))
        }
        continue
      }
      await withTaskGroup(of: Void.self) { group in
        for m in messages { group.addTask { await self.handle(m) } }
      }
    }
  }

  private func handle(_ m: JetStreamMessage) async {
    let now = Date().unixMilliseconds
    switch verifier.verify(m.payload, nowUnixMs: now) {
    case .failure(let rejection):
      let claimed = (try? CommandDispatch(decoding: m.payload)).flatMap {
        try? CommandDispatchBody(decoding: $0.body)
      }
      let id = claimed?.commandId ?? ""
      counters.withLock {
        $0.refused += 1
        if rejection.code == .replayed { $0.replayed += 1 }
      }
      files.write(files.replayed, "\(id) \(name) \(m.deliveryCount) \(rejection.code.rawValue)")
      await publish(
        CommandResult(
          commandId: id, host: name, state: .rejected, startedAtUnixMs: now, finishedAtUnixMs: now,
          reason: rejection.description),
        msgID: "\(id):\(name):rejected:\(UUID().uuidString)")
      try? m.term()
    case .success(let body):
      // At most once, as the reflector: acked when it starts.
      try? m.ack()
      counters.withLock { $0.executed += 1 }
      files.write(files.executed, "\(body.commandId) \(name) \(m.deliveryCount)")
      await SimulatedAnswer.send(
        command: body.commandId, host: name, startedAt: now, pause: .milliseconds(Int.random(in: 20...300))
      ) { await self.publish($0, msgID: $1) }
    }
  }

  /// Five attempts, 1 s, 2 s, 4 s ... apart, as the reflector.
  private func publish(_ result: CommandResult, msgID: String) async {
    for attempt in 0..<5 {
      do {
        _ = try await bus.jetStreamPublish(Subjects.commandsResult(name), result, msgID: msgID)
        return
      } catch {
        try? await Task.sleep(for: .seconds(1 << attempt))
      }
    }
    counters.withLock { $0.resultsLost += 1 }
    files.write(files.lost, "\(result.commandId) \(name) \(result.state.stored)")
  }
}

/// The operator: a signed command every ~2 s to one random host or a few,
/// alternately through `commands.submit` and the `commands.pending` stream
/// (which outlives a router restart), each retried with the same id until
/// the router or the stream confirms it (a repeat is answered as a
/// duplicate and runs nothing again).
struct ChaosOperator: Sendable {
  let bus: BusConnection
  /// The raw 32-byte seed (swift-crypto's key type is not Sendable).
  let seed: Data
  let user: String
  let hosts: [String]
  let files: ChaosFiles
  let counters: Shared<ChaosCounts>

  func run(until end: ContinuousClock.Instant) async {
    await withTaskGroup(of: Void.self) { group in
      var k = 0
      while ContinuousClock.now < end {
        k += 1
        let count = Int.random(in: 0..<10) < 7 ? 1 : Int.random(in: 2...4)
        let targets = Array(hosts.shuffled().prefix(count)).sorted()
        let viaStream = k % 2 == 0
        let id = "chaos-\(k)-\(UUID().uuidString.lowercased().prefix(8))"
        group.addTask { await self.send(id: id, targets: targets, viaStream: viaStream) }
        try? await Task.sleep(for: .milliseconds(Int.random(in: 1500...2500)))
      }
    }
  }

  private func send(id: String, targets: [String], viaStream: Bool) async {
    let now = Date().unixMilliseconds
    guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed),
      let request = try? Identity.sign(
        CommandRequest(
          id: id, target: CommandTarget(kind: .hosts, hosts: targets), action: CommandAction(argv: ["echo", id]),
          timeoutMs: 30_000, deadlineUnixMs: now + 90_000, reason: "chaos soak", submittedAtUnixMs: now),
        user: user, key: key)
    else { return }
    var outcome = "unconfirmed"
    var attempts = 0
    // Up to a minute of trying: longer than any outage the soak causes.
    let giveUp = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < giveUp {
      attempts += 1
      if viaStream {
        if (try? await bus.jetStreamPublish(Subjects.commandsPending, request, msgID: id)) != nil {
          outcome = "acked"
          break
        }
      } else {
        do {
          let reply = try await bus.request(
            Subjects.commandsSubmit, request, expecting: SubmitCommandResponse.self, timeout: .seconds(5))
          // PostgreSQL away: nothing was recorded, send it again.
          if !(reply.state == .unspecified && reply.reason.hasPrefix("unavailable")) {
            outcome = reply.state.stored
            break
          }
        } catch let error as RemoteError {
          outcome = "error:\(error.error.code)"
          break
        } catch {
          // No router answering (restarting) or the reply lost: again.
        }
      }
      try? await Task.sleep(for: .seconds(1))
    }
    let confirmed = outcome != "unconfirmed"
    counters.withLock {
      $0.submitted += 1
      if viaStream { $0.viaPending += 1 } else { $0.viaSubmit += 1 }
      if !confirmed { $0.unconfirmed += 1 }
      $0.submitRetries += attempts - 1
    }
    files.write(
      files.submitted,
      "\(id) \(viaStream ? "pending" : "submit") \(targets.joined(separator: ",")) \(outcome) \(attempts)")
  }
}
