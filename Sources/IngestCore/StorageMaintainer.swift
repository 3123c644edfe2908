import Foundation
public import Logging
import Metrics
public import MirrorStore
public import ServiceLifecycle

/// Runs `StorageMaintenance` every `interval` (and sets up TimescaleDB once
/// when it is on). One replica at a time does the work.
public final class StorageMaintainer: Service, Sendable {
  private let settings: StorageSettings
  private let interval: Duration
  private let database: PostgresClient
  private let capabilities: @Sendable () -> StoreCapabilities?
  private let logger: Logger
  private let runs = Counter(label: "ingest_maintenance_runs_total")
  private let failures = Counter(label: "ingest_maintenance_failures_total")
  private let dropped = Counter(label: "ingest_partitions_dropped_total")

  /// `capabilities` is nil until the migrations have run.
  public init(
    settings: StorageSettings, interval: Duration, database: PostgresClient,
    capabilities: @escaping @Sendable () -> StoreCapabilities?, logger: Logger
  ) {
    self.settings = settings
    self.interval = interval
    self.database = database
    self.capabilities = capabilities
    self.logger = logger
  }

  public func run() async throws {
    await cancelWhenGracefulShutdown {
      var timescale: Bool?
      while !Task.isCancelled {
        if timescale == nil, let capabilities = self.capabilities() {
          timescale = capabilities.timescale
          if capabilities.timescale { await self.setUpTimescale() }
        }
        if let timescale { await self.once(timescale: timescale) }
        try? await Task.sleep(for: timescale == nil ? .milliseconds(200) : self.interval)
      }
    }
    await database.close()
  }

  private func setUpTimescale() async {
    let settings = settings
    do {
      try await database.withConnection { try TimescaleStorage.setUp(on: $0, settings: settings) }
      logger.info("timescaledb storage set up")
    } catch {
      logger.error("cannot set up timescaledb storage", metadata: ["error": "\(error)"])
    }
  }

  private func once(timescale: Bool) async {
    let settings = settings
    let now = Date().unixMilliseconds
    do {
      let report = try await database.withConnection {
        try StorageMaintenance.run(on: $0, nowMs: now, settings: settings, timescale: timescale)
      }
      guard let report else { return }
      runs.increment()
      dropped.increment(by: report.partitionsDropped.count)
      if !report.partitionsCreated.isEmpty || !report.partitionsDropped.isEmpty || report.rowsDeleted > 0 {
        logger.info(
          "storage maintained",
          metadata: [
            "created": "\(report.partitionsCreated)", "dropped": "\(report.partitionsDropped)",
            "deleted_rows": "\(report.rowsDeleted)",
          ])
      }
    } catch {
      failures.increment()
      logger.warning("storage maintenance failed; will retry", metadata: ["error": "\(error)"])
    }
  }
}
