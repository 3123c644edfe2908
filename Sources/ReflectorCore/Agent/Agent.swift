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
///
/// The cycle runs on a thread of its own: it sleeps to each deadline,
/// collects (on the collector's queue, which runs the work on this very
/// thread when it is free), and, when nothing is waiting before it and
/// there is no spool to write first, publishes the batch itself and waits
/// for the ack. Only what cannot go at once is handed to the publishing
/// task. An idle agent's cycle is thus one wake-up, not a chain of task
/// and thread hand-offs.
public final class Agent: Service, Sendable {
  private let settings: AgentSettings
  private let bus: BusService
  private let logger: Logger
  public let buffer: BatchBuffer
  private let collector: CollectorBox
  private let wake: AsyncStream<Void>.Continuation
  private let wakeups: AsyncStream<Void>
  /// Wakes the cycle thread early: to stop, or to collect now.
  private let signal = DispatchSemaphore(value: 0)
  private let control = Mutex<(stop: Bool, collectNow: Int)>((false, 0))
  /// The connection the cycle thread publishes on, once there is one.
  private let direct = Mutex<BusConnection?>(nil)

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
  }

  /// Asks for an extra collection now (the `collect now` built-in action).
  public func collectNow() {
    control.withLock { $0.collectNow += 1 }
    signal.signal()
  }

  public func run() async throws {
    enqueueEvent(.agentStarted, "reflector \(AgentVersion.current) started")
    let cycleStopped = Completion()
    let thread = Thread { [self] in
      cycleLoop()
      cycleStopped.finish()
    }
    thread.name = "reflector.cycle"
    thread.start()
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await self.publishLoop() }
      group.addTask { await self.registerLoop() }
      group.addTask {
        if let connection = try? await self.bus.connection() { self.direct.withLock { $0 = connection } }
      }
      try? await gracefulShutdown()
      self.control.withLock { $0.stop = true }
      self.signal.signal()
      await cycleStopped.wait()
      // Shutting down: say so, and give the publisher a moment to empty
      // the buffer (what remains stays in the spool, if any).
      self.enqueueEvent(.agentStopping, "reflector stopping")
      let deadline = ContinuousClock.now + .seconds(3)
      while self.buffer.count > 0, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
      group.cancelAll()
      self.wake.finish()
    }
  }

  // MARK: Collecting

  /// The cycle thread: absolute deadlines; a signal stops it or asks for
  /// an extra collection without moving the deadlines.
  private func cycleLoop() {
    let clock = ContinuousClock()
    var deadline = clock.now
    var cycles = 0
    while true {
      let remaining = deadline - clock.now
      if remaining > .zero {
        let (seconds, attoseconds) = remaining.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        if signal.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success {
          let asked = control.withLock { c -> (stop: Bool, collectNow: Int) in
            defer { c.collectNow = 0 }
            return c
          }
          if asked.stop { return }
          for _ in 0..<asked.collectNow { collectOnce() }
          continue
        }
      }
      if control.withLock({ $0.stop }) { return }
      collectOnce()
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
    }
  }

  /// How long the cycle thread waits for an ack before handing the batch
  /// to the publishing task: a quarter interval at most, so a server that
  /// vanished without the connection noticing yet never delays a cycle.
  private var directPublishTimeout: Duration { min(.seconds(2), settings.interval / 4) }

  /// One batch: collected, encoded, then published at once when it can
  /// go first (nothing buffered before it, no spool to write it to first,
  /// connected), else buffered for the publishing task.
  func collectOnce() {
    let start = ContinuousClock.now
    let intervalMs = UInt32(clamping: settings.interval.wholeMilliseconds)
    let batch = collector.runHere { c in c.collect(sequence: Self.bootMilliseconds(), intervalMs: intervalMs) }
    announceChanges(batch)
    let entry = BatchBuffer.Entry(
      msgID: "\(batch.host):\(batch.bootId):\(batch.sequence)", subject: Subjects.metricsRaw(batch.host),
      payload: batch.encode())
    collected.increment()
    cycleTime.record(duration: ContinuousClock.now - start)
    if settings.spoolDirectory == nil, buffer.count == 0, let connection = direct.withLock({ $0 }),
      connection.isConnected
    {
      do {
        _ = try connection.jetStreamPublishBlocking(
          entry.subject, payload: entry.payload, headers: BusHeader.describing(MetricsBatch.self),
          msgID: entry.msgID, timeout: directPublishTimeout)
        published.increment()
        return
      } catch {
        // Kept and retried by the publishing task, which logs and backs off.
        publishFailures.increment()
      }
    }
    buffer.append(entry)
    buffered.record(buffer.count)
    droppedGauge.record(buffer.dropped)
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
      // On this task's thread: a serial queue's async would start one of
      // libdispatch's workers, which exits when idle and so runs the
      // thread-exit and unwinding code (mapping it back in) every time.
      let info = collector.runHere { [settings] c in c.hostInfo(labels: settings.labels) }
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

  /// Runs `body` on the calling thread once the queue is free (a serial
  /// queue's sync runs the block on its caller): no hand-off.
  func runHere<T>(_ body: (Collector) -> T) -> T {
    queue.sync { body(collector) }
  }
}
