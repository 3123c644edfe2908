public import Logging
import Metrics
public import MirrorBus
public import ServiceLifecycle
import Synchronization

/// Connects to NATS (retrying with backoff until it answers or shutdown),
/// declares the streams the service owns, reports NATS health, and drains
/// the connection on shutdown.
public final class BusService: Service, Sendable {
  private let options: BusOptions
  private let streams: [StreamConfig]
  private let logger: Logger
  /// `nats.stream-replicas`: nil = as many as the cluster has servers, up to 3.
  private let replicas: Int?
  private let state = Mutex(State())

  /// The connection once made, and everyone waiting for it: all of them are
  /// resumed when it is made, or with nil when the service stops first.
  private struct State {
    var bus: BusConnection?
    var stopped = false
    var waiters: [UInt64: CheckedContinuation<BusConnection?, Never>] = [:]
    var nextWaiter: UInt64 = 0
  }

  public init(options: BusOptions, streams: [StreamConfig], context: ServiceContext) {
    self.options = options
    self.streams = streams
    self.logger = context.logger
    replicas = (try? context.config.int("nats.stream-replicas", default: 0, range: 0...5)).flatMap {
      $0 == 0 ? nil : $0
    }
    context.health.register("nats") { [weak self] in
      guard let bus = self?.state.withLock({ $0.bus }) else {
        return .init(healthy: false, detail: "not connected yet")
      }
      return bus.isConnected ? .init(healthy: true, detail: "connected") : .init(healthy: false, detail: "reconnecting")
    }
  }

  /// The connection, once made; waits for it (any number of callers).
  /// Throws `CancellationError` when the caller is cancelled or the service
  /// stops before connecting.
  public func connection() async throws -> BusConnection {
    if let bus = state.withLock({ $0.bus }) { return bus }
    let id = state.withLock { s -> UInt64 in
      s.nextWaiter += 1
      return s.nextWaiter
    }
    let bus = await withTaskCancellationHandler {
      await withCheckedContinuation { (c: CheckedContinuation<BusConnection?, Never>) in
        let now: BusConnection?? = state.withLock { s in
          if let bus = s.bus { return .some(bus) }
          if s.stopped || Task.isCancelled { return .some(nil) }
          s.waiters[id] = c
          return nil
        }
        if let now { c.resume(returning: now) }
      }
    } onCancel: {
      state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
    }
    guard let bus else { throw CancellationError() }
    return bus
  }

  private func finish(with bus: BusConnection?) {
    let waiters = state.withLock { s -> [CheckedContinuation<BusConnection?, Never>] in
      if let bus { s.bus = bus } else { s.stopped = true }
      defer { s.waiters = [:] }
      return Array(s.waiters.values)
    }
    for w in waiters { w.resume(returning: bus) }
  }

  public func run() async throws {
    var delay = Duration.milliseconds(200)
    var bus: BusConnection?
    while bus == nil, !Task.isCancelled, !Task.isShuttingDownGracefully {
      do {
        let connected = try await BusConnection.connect(options, logger: logger)
        // On a cluster every stream is kept by three servers (R3), so one
        // can be lost; a single server keeps one copy.
        let copies = replicas ?? min(3, connected.knownServers)
        for var stream in streams {
          stream.replicas = copies
          try await connected.ensureStream(stream)
          logger.debug("stream ready", metadata: ["stream": "\(stream.name)", "replicas": "\(copies)"])
        }
        bus = connected
      } catch {
        logger.warning("NATS not ready; retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
        let wait = delay + .milliseconds(Int.random(in: 0...Int(delay.wholeMilliseconds / 2)))
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
        delay = min(delay * 2, .seconds(10))
      }
    }
    guard let bus else {
      finish(with: nil)
      return
    }
    finish(with: bus)
    try? await gracefulShutdown()
    await bus.drain()
  }
}

extension BusConnection {
  /// Binds a durable pull consumer, retrying (with a logged reason) until
  /// it works; nil when the service is stopping first.
  public func pullConsumerRetrying(
    stream: String, _ config: ConsumerConfig, every retry: Duration = .seconds(1), logger: Logger
  ) async -> PullConsumer? {
    while !Task.isShuttingDownGracefully, !Task.isCancelled {
      do {
        return try await pullConsumer(stream: stream, config)
      } catch {
        logger.warning(
          "consumer not ready; retrying",
          metadata: ["durable": "\(config.durable)", "stream": "\(stream)", "error": "\(error)"])
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: retry) }
      }
    }
    return nil
  }

  /// Binds a durable consumer (retrying) and hands every batch it fetches
  /// to `handOver`, waiting each time until the receiver calls `finish()`
  /// on the Completion (or the task is cancelled): one batch at a time, in
  /// order, to a single owner of the state. Returns when cancelled.
  public func feed(
    stream: String, _ config: ConsumerConfig, batch: Int = 500, logger: Logger,
    handOver: @Sendable ([JetStreamMessage], Completion) -> Void
  ) async {
    guard let consumer = await pullConsumerRetrying(stream: stream, config, logger: logger) else { return }
    while !Task.isCancelled {
      let messages: [JetStreamMessage]
      do {
        messages = try await consumer.fetch(batch: batch, timeout: .milliseconds(500))
      } catch {
        Counter(label: "bus_fetch_failures_total", dimensions: [("durable", config.durable)]).increment()
        logger.warning("cannot fetch; retrying", metadata: ["durable": "\(config.durable)", "error": "\(error)"])
        try? await Task.sleep(for: .milliseconds(500))
        continue
      }
      if messages.isEmpty { continue }
      let done = Completion()
      handOver(messages, done)
      await done.wait()
    }
  }
}
