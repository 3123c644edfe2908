import Logging
public import MirrorService
public import MirrorStore
public import ServiceLifecycle
import Synchronization

/// Opens the PostgreSQL client, applies pending migrations (retrying until
/// the database answers or shutdown) and reports database health.
public final class DatabaseService: Service, Sendable {
  public let client: PostgresClient
  private let timescale: TimescaleMode
  private let logger: Logger
  private let migrated = Mutex<StoreCapabilities?>(nil)
  private let lastError = Mutex<String?>(nil)

  public init(settings: ServiceSettings, context: ServiceContext) throws(ConfigError) {
    client = PostgresClient(
      url: settings.databaseURL, applicationName: settings.service, statementTimeout: settings.databaseStatementTimeout,
      logger: context.logger)
    timescale = try context.config.oneOf("database.timescale", default: TimescaleMode.auto)
    logger = context.logger
    context.health.register("database") { [weak self] in
      guard let self else { return .init(healthy: false, detail: "stopped") }
      if self.migrated.withLock({ $0 }) != nil { return .init(healthy: true, detail: "migrated") }
      return .init(healthy: false, detail: self.lastError.withLock { $0 } ?? "connecting")
    }
  }

  /// The capabilities after migration; nil until migrated.
  public var capabilities: StoreCapabilities? { migrated.withLock { $0 } }

  public func run() async throws {
    var delay = Duration.milliseconds(200)
    while !Task.isCancelled, !Task.isShuttingDownGracefully {
      do {
        let (timescale, logger) = (self.timescale, self.logger)
        let result = try await client.withConnection { conn in
          try MigrationRunner.migrate(conn, timescale: timescale, logger: logger)
        }
        migrated.withLock { $0 = result.capabilities }
        logger.info(
          "database ready",
          metadata: [
            "database": "\(client.redactedURL)", "applied": "\(result.applied)",
            "timescaledb": "\(result.capabilities.timescale)",
          ])
        break
      } catch {
        lastError.withLock { $0 = "\(error)" }
        logger.warning("database not ready; retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
        let wait = delay
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
        delay = min(delay * 2, .seconds(10))
      }
    }
    try? await gracefulShutdown()
    await client.close()
  }
}
