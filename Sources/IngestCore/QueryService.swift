import Foundation
public import Logging
import Metrics
import MirrorBus
public import MirrorService
public import MirrorStore
import MirrorWire
public import ServiceLifecycle

/// Answers `hosts.list`, `hosts.get`, `hosts.snapshot` and `metrics.query`
/// (queue group `ingest`, so replicas share the load) on a PostgreSQL
/// connection of its own, so that reads never wait behind the writer.
public final class QueryService: Service, Sendable {
  private let bus: BusService
  private let database: PostgresClient
  private let timescale: @Sendable () -> Bool
  private let logger: Logger

  public init(bus: BusService, database: PostgresClient, timescale: @escaping @Sendable () -> Bool, logger: Logger) {
    self.bus = bus
    self.database = database
    self.timescale = timescale
    self.logger = logger
  }

  public func run() async throws {
    guard let connection = try? await bus.connection() else { return }
    let subjects = [Subjects.hostsList, Subjects.hostsGet, Subjects.hostsSnapshot, Subjects.metricsQuery]
    let subscriptions = try subjects.map { try connection.subscribe($0, queueGroup: "ingest") }
    await cancelWhenGracefulShutdown {
      await withTaskGroup(of: Void.self) { group in
        for subscription in subscriptions {
          group.addTask {
            for await request in subscription {
              await self.answer(request, connection: connection)
            }
          }
        }
      }
    }
    await database.close()
  }

  func answer(_ request: BusMessage, connection: BusConnection) async {
    let subject = request.subject
    Counter(label: "ingest_queries_total", dimensions: [("subject", subject)]).increment()
    do {
      let timescale = timescale()
      let payload = request.payload
      switch subject {
      case Subjects.hostsList:
        let q = try ListHostsRequest(decoding: payload)
        try connection.respond(
          to: request, with: try await database.withConnection { try Queries.listHosts(q, on: $0) })
      case Subjects.hostsGet:
        let q = try GetHostRequest(decoding: payload)
        try connection.respond(to: request, with: try await database.withConnection { try Queries.getHost(q, on: $0) })
      case Subjects.hostsSnapshot:
        let q = try HostsSnapshotRequest(decoding: payload)
        try connection.respond(to: request, with: try await database.withConnection { try Queries.snapshot(q, on: $0) })
      default:
        let q = try MetricsQueryRequest(decoding: payload)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try connection.respond(
          to: request,
          with: try await database.withConnection { try Queries.metrics(q, on: $0, timescale: timescale, nowMs: now) })
      }
    } catch {
      let reply: RpcError
      switch error {
      case let e as QueryError: reply = RpcError(code: e.code, message: e.message)
      case let e as WireError: reply = RpcError(code: "invalid_argument", message: "cannot decode the request: \(e)")
      case let e as PostgresError:
        reply = RpcError(code: "unavailable", message: "database: \(e.message)", retryable: true)
      default: reply = RpcError(code: "internal", message: "\(error)")
      }
      Counter(label: "ingest_query_errors_total", dimensions: [("code", reply.code)]).increment()
      logger.warning(
        "query failed", metadata: ["subject": "\(subject)", "code": "\(reply.code)", "error": "\(reply.message)"])
      try? connection.respond(to: request, with: reply)
    }
  }
}

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
    let now = Int64(Date().timeIntervalSince1970 * 1000)
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
