import Logging
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
  private let state = Mutex<BusConnection?>(nil)
  private let ready: AsyncStream<BusConnection>
  private let readyContinuation: AsyncStream<BusConnection>.Continuation

  public init(options: BusOptions, streams: [StreamConfig], context: ServiceContext) {
    self.options = options
    self.streams = streams
    self.logger = context.logger
    (ready, readyContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    context.health.register("nats") { [weak self] in
      guard let bus = self?.state.withLock({ $0 }) else { return .init(healthy: false, detail: "not connected yet") }
      return bus.isConnected ? .init(healthy: true, detail: "connected") : .init(healthy: false, detail: "reconnecting")
    }
  }

  /// The connection, once made; waits for it.
  public func connection() async throws -> BusConnection {
    if let bus = state.withLock({ $0 }) { return bus }
    for await bus in ready { return bus }
    throw CancellationError()
  }

  public func run() async throws {
    var delay = Duration.milliseconds(200)
    var bus: BusConnection?
    while bus == nil, !Task.isCancelled, !Task.isShuttingDownGracefully {
      do {
        let connected = try await BusConnection.connect(options, logger: logger)
        for stream in streams {
          try await connected.ensureStream(stream)
          logger.debug("stream ready", metadata: ["stream": "\(stream.name)"])
        }
        bus = connected
      } catch {
        logger.warning("NATS not ready; retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
        try? await Task.sleep(for: delay + .milliseconds(Int.random(in: 0...Int(delay.natsMillis / 2))))
        delay = min(delay * 2, .seconds(10))
      }
    }
    guard let bus else { return }
    state.withLock { $0 = bus }
    readyContinuation.yield(bus)
    try? await gracefulShutdown()
    readyContinuation.finish()
    await bus.drain()
  }
}

extension Duration {
  var natsMillis: Int {
    let (s, a) = components
    return Int(s * 1000 + a / 1_000_000_000_000_000)
  }
}
