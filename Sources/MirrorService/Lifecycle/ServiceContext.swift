import Foundation
public import Logging
import Metrics
public import ServiceLifecycle

/// What a service's wiring gets: its settings, logger, health checks and,
/// once connected, the bus and the database.
public struct ServiceContext: Sendable {
  public let settings: ServiceSettings
  public let config: ConfigValues
  public let logger: Logger
  public let health: Health

  public init(settings: ServiceSettings, config: ConfigValues, logger: Logger, health: Health) {
    self.settings = settings
    self.config = config
    self.logger = logger
    self.health = health
  }
}

/// Runs a service: bootstraps logging and metrics, serves /metrics and
/// /healthz, runs the given services in one `ServiceGroup` (array order is
/// start order; shutdown is in reverse) and shuts down on SIGTERM/SIGINT.
public enum ServiceRunner {
  public static func run(
    service name: String, defaultHTTPPort: Int, options: CommonOptions, ops: OpsServerFactory = HTTPServer.factory,
    build: (ServiceContext) async throws -> [any Service]
  ) async throws {
    let config = try options.configValues()
    let settings = try ServiceSettings(service: name, defaultHTTPPort: defaultHTTPPort, config: config)
    let logger = Observability.bootstrap(service: name, level: settings.logLevel, format: settings.logFormat)
    let health = Health()
    let context = ServiceContext(settings: settings, config: config, logger: logger, health: health)
    let http = ops(
      settings.httpHost, settings.httpPort,
      [
        "/metrics": {
          HTTPResponse(
            status: 200, contentType: "text/plain; version=0.0.4", body: Observability.registry.emitToBuffer())
        },
        "/healthz": { health.response() },
      ], logger)
    try await http.bind()
    let services = try await build(context)
    // Last in the list, so the first told of a shutdown: it says so and
    // arms the bound on it.
    let watchdog = ShutdownWatchdog(grace: settings.shutdownGrace, logger: logger)
    var configuration = ServiceGroupConfiguration(
      services: ([http] + services).map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
        + [.init(service: watchdog, successTerminationBehavior: .ignore)],
      gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
    // After the grace, what is left is cancelled (sleeps, fetches and
    // PostgreSQL statements end on cancellation).
    let grace = settings.shutdownGrace
    configuration.maximumGracefulShutdownDuration = max(grace - .seconds(1), grace / 2)
    let group = ServiceGroup(configuration: configuration)
    logger.info("started", metadata: ["version": "\(MirrorVersion.current)"])
    try await group.run()
    logger.info("stopped")
  }
}

public enum MirrorVersion {
  public static let current = "0.1.0"
}

/// Bounds a shutdown: told first (it is the last service), it logs that
/// the process is stopping and, if the process still runs `grace` later
/// (a call that cancellation cannot interrupt, e.g. a connection attempt
/// blocked in a C library), logs that and exits with status 3. The group
/// cancels what is left a second before (or at half the grace).
final class ShutdownWatchdog: Service, Sendable {
  let grace: Duration
  let logger: Logger

  init(grace: Duration, logger: Logger) {
    self.grace = grace
    self.logger = logger
  }

  func run() async throws {
    try? await gracefulShutdown()
    logger.notice("stopping", metadata: ["grace": "\(grace)"])
    let limit = grace
    let logger = self.logger
    Thread.detachNewThread {
      Thread.sleep(forTimeInterval: Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18)
      logger.error("shutdown took longer than the grace; exiting now", metadata: ["grace": "\(limit)"])
      Counter(label: "shutdown_forced_total").increment()
      fflush(nil)
      _exit(3)
    }
  }
}
