import Dispatch
import Foundation
public import Logging
import Metrics
import MirrorBus
public import MirrorService
import MirrorWire
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// The host agent: collects on absolute deadlines (cycles do not drift),
/// buffers every batch until JetStream acks it, replays in order after an
/// outage, and registers the host when its description changes.
public final class Agent: Service, Sendable {
  private let settings: AgentSettings
  private let bus: BusService
  private let logger: Logger
  public let buffer: BatchBuffer
  private let collector: CollectorBox
  private let wake: AsyncStream<Void>.Continuation
  private let wakeups: AsyncStream<Void>
  private let collectNowRequests: AsyncStream<Void>.Continuation
  private let collectNowStream: AsyncStream<Void>

  private let collected = Counter(label: "reflector_batches_collected_total")
  private let published = Counter(label: "reflector_batches_published_total")
  private let droppedGauge = Gauge(label: "reflector_batches_dropped")
  private let buffered = Gauge(label: "reflector_buffer_batches")
  private let publishFailures = Counter(label: "reflector_publish_failures_total")
  private let overruns = Counter(label: "reflector_cycles_overrun_total")
  private let cycleTime = Timer(label: "reflector_cycle_seconds")
  /// The collectors failing and the disks failing SMART in the last batch
  /// (so each is announced once, when it starts).
  private let announced = Mutex<(collectors: Set<String>, disks: Set<String>)>(([], []))

  public init(settings: AgentSettings, bus: BusService, collector: Collector, logger: Logger) throws {
    self.settings = settings
    self.bus = bus
    self.logger = logger
    self.collector = CollectorBox(collector)
    buffer = try BatchBuffer(capacity: settings.bufferCapacity, spoolDirectory: settings.spoolDirectory)
    (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    (collectNowStream, collectNowRequests) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
  }

  /// Asks for an extra collection now (the `collect now` built-in action).
  public func collectNow() { collectNowRequests.yield() }

  public func run() async throws {
    enqueueEvent(.agentStarted, "reflector \(AgentVersion.current) started")
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await self.publishLoop() }
      group.addTask { await self.registerLoop() }
      group.addTask { await self.collectNowLoop() }
      await cancelWhenGracefulShutdown { await self.collectLoop() }
      // Shutting down: say so, and give the publisher a moment to empty
      // the buffer (what remains stays in the spool, if any).
      self.enqueueEvent(.agentStopping, "reflector stopping")
      let deadline = ContinuousClock.now + .seconds(3)
      while self.buffer.count > 0, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
      group.cancelAll()
      self.wake.finish()
      self.collectNowRequests.finish()
    }
  }

  // MARK: Collecting

  private func collectLoop() async {
    let clock = ContinuousClock()
    var deadline = clock.now
    var cycles = 0
    while !Task.isCancelled {
      await collectOnce()
      cycles += 1
      if cycles == 3, settings.trimStartupMemory {
        let advised = ResidentMemory.trimStartupPages()
        logger.debug("start-up pages given back", metadata: ["mappings": "\(advised)"])
      }
      deadline += settings.interval
      let now = clock.now
      if deadline < now {
        // Overran: skip to the next slot rather than bursting to catch up.
        overruns.increment()
        let behind = now - deadline
        let skipped = Int(behind / settings.interval) + 1
        deadline += settings.interval * skipped
      }
      try? await Task.sleep(until: deadline, clock: clock)
    }
  }

  private func collectNowLoop() async {
    for await _ in collectNowStream { await collectOnce() }
  }

  func collectOnce() async {
    let start = ContinuousClock.now
    let intervalMs = UInt32(clamping: settings.interval.wholeMilliseconds)
    let batch = await collector.run { c in c.collect(sequence: Self.bootMilliseconds(), intervalMs: intervalMs) }
    announceChanges(batch)
    let entry = BatchBuffer.Entry(
      msgID: "\(batch.host):\(batch.bootId):\(batch.sequence)", subject: Subjects.metricsRaw(batch.host),
      payload: batch.encode())
    buffer.append(entry)
    collected.increment()
    buffered.record(buffer.count)
    droppedGauge.record(buffer.dropped)
    cycleTime.record(duration: ContinuousClock.now - start)
    wake.yield()
  }

  /// Milliseconds since boot (CLOCK_BOOTTIME): the batch sequence,
  /// monotonic per boot across agent restarts.
  static func bootMilliseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_BOOTTIME, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec / 1_000_000)
  }

  /// Turns what went wrong in a batch into events, once when it starts
  /// (not every cycle): a collector that began to fail, a disk whose SMART
  /// check began to fail. Only the collect loop calls it.
  private func announceChanges(_ batch: MetricsBatch) {
    let failing = Dictionary(batch.errors.map { ($0.collector, $0.message) }, uniquingKeysWith: { a, _ in a })
    let failedDisks = Set(batch.disks.filter { $0.smartHealth == .failed }.map(\.device))
    let (newCollectors, newDisks) = announced.withLock { a -> ([String], [String]) in
      let collectors = failing.keys.filter { !a.collectors.contains($0) }.sorted()
      let disks = failedDisks.subtracting(a.disks).sorted()
      a.collectors = Set(failing.keys)
      a.disks = failedDisks
      return (collectors, disks)
    }
    for c in newCollectors {
      enqueueEvent(
        .collectorFailed, "the \(c) collector failed: \(failing[c] ?? "")", source: "collector.\(c)", severity: .warning
      )
    }
    for d in newDisks {
      let disk = batch.disks.first { $0.device == d }
      enqueueEvent(
        .smartFailed, "SMART health check FAILED for \(d) (\(disk?.model ?? "") \(disk?.serial ?? ""))",
        source: "disk.\(d)", severity: .critical)
    }
  }

  private func enqueueEvent(
    _ kind: EventKind, _ message: String, source: String = "reflector", severity: Severity = .info
  ) {
    let id = UUID().uuidString.lowercased()
    let event = Event(
      id: id, host: settings.host, kind: kind, severity: severity,
      occurredAtUnixMs: Date().unixMilliseconds, source: source, message: message)
    buffer.append(
      .init(msgID: "\(settings.host):event:\(id)", subject: Subjects.events(settings.host), payload: event.encode()))
    wake.yield()
  }

  // MARK: Publishing

  private func publishLoop() async {
    guard let connection = try? await bus.connection() else { return }
    var backoff = Duration.milliseconds(250)
    var failuresLogged = 0
    while !Task.isCancelled {
      guard let entry = buffer.first() else {
        var it = wakeups.makeAsyncIterator()
        _ = await it.next()
        continue
      }
      guard connection.isConnected else {
        try? await Task.sleep(for: .milliseconds(100))
        continue
      }
      let headers =
        entry.subject.hasPrefix("events.") ? BusHeader.describing(Event.self) : BusHeader.describing(MetricsBatch.self)
      do {
        _ = try await connection.jetStreamPublish(
          entry.subject, payload: entry.payload, headers: headers, msgID: entry.msgID, timeout: .seconds(2))
        buffer.removeFirst(entry)
        published.increment()
        buffered.record(buffer.count)
        if failuresLogged > 0 {
          logger.info("publishing again", metadata: ["buffered": "\(buffer.count)"])
          failuresLogged = 0
        }
        backoff = .milliseconds(250)
      } catch {
        publishFailures.increment()
        if failuresLogged < 3 {
          logger.warning(
            "publish failed; keeping the batch", metadata: ["error": "\(error)", "buffered": "\(buffer.count)"])
        }
        failuresLogged += 1
        // Backoff with jitter, so a fleet does not retry in step.
        let jitter = Duration.milliseconds(Int.random(in: 0...Int(backoff.components.seconds * 500 + 100)))
        try? await Task.sleep(for: backoff + jitter)
        backoff = min(backoff * 2, .seconds(15))
      }
    }
  }

  // MARK: Registration

  private func registerLoop() async {
    guard let connection = try? await bus.connection() else { return }
    var registered: [UInt8]?
    // Unanswered registrations back off from one interval to five minutes;
    // once registered, the host info is looked at for changes every
    // `hostInfoEvery` intervals.
    var retry = settings.interval
    while !Task.isCancelled {
      let info = await collector.run { [settings] c in c.hostInfo(labels: settings.labels) }
      let bytes = info.encode()
      if bytes != registered {
        do {
          let reply = try await connection.request(
            "hosts.register", RegisterHostRequest(info: info, sentAtUnixMs: Date().unixMilliseconds),
            expecting: RegisterHostResponse.self, timeout: .seconds(2))
          registered = bytes
          retry = settings.interval
          logger.info("registered", metadata: ["accepted": "\(reply.accepted)", "message": "\(reply.message)"])
        } catch {
          logger.debug("registration not answered yet", metadata: ["error": "\(error)", "retry_in": "\(retry)"])
          try? await Task.sleep(for: retry)
          retry = min(retry * 2, .seconds(300))
          continue
        }
      }
      try? await Task.sleep(for: settings.interval * settings.hostInfoEvery)
    }
  }
}

/// The collector is not thread-safe; it lives on one serial queue and is
/// only touched there.
final class CollectorBox: @unchecked Sendable {
  private let collector: Collector
  private let queue = DispatchQueue(label: "mirrorstage.reflector.collect")

  init(_ collector: Collector) { self.collector = collector }

  func run<T: Sendable>(_ body: @escaping @Sendable (Collector) -> T) async -> T {
    await withCheckedContinuation { continuation in
      queue.async { continuation.resume(returning: body(self.collector)) }
    }
  }
}
