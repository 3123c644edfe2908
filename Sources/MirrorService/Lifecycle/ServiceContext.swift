public import Logging
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
    service name: String, defaultHTTPPort: Int, options: CommonOptions,
    build: (ServiceContext) async throws -> [any Service]
  ) async throws {
    let config = try options.configValues()
    let settings = try ServiceSettings(service: name, defaultHTTPPort: defaultHTTPPort, config: config)
    let logger = Observability.bootstrap(service: name, level: settings.logLevel, format: settings.logFormat)
    let health = Health()
    let context = ServiceContext(settings: settings, config: config, logger: logger, health: health)
    let http = HTTPServer(
      host: settings.httpHost, port: settings.httpPort,
      routes: [
        "/metrics": {
          HTTPResponse(
            status: 200, contentType: "text/plain; version=0.0.4", body: Observability.registry.emitToBuffer())
        },
        "/healthz": { health.response() },
      ], logger: logger)
    try http.bind()
    let services = try await build(context)
    let group = ServiceGroup(
      configuration: .init(
        services: ([http] + services).map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
        gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger))
    logger.info("started", metadata: ["version": "\(MirrorVersion.current)"])
    try await group.run()
    logger.info("stopped")
  }
}

public enum MirrorVersion {
  public static let current = "0.1.0"
}
