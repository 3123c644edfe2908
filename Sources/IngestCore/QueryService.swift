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
    let subscriptions = try subjects.map {
      try connection.serve($0, service: "ingest", version: MirrorVersion.current)
    }
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
        let now = Date().unixMilliseconds
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
