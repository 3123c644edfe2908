import Dispatch
public import Logging
import Synchronization

/// A PostgreSQL connection shared by a service, on a thread of its own.
///
/// Every call runs on the client's serial queue, never on the cooperative
/// pool. A connection that fails is dropped and re-opened on the next call;
/// the failing call's error is returned so the caller decides whether to
/// retry (only the caller knows whether its work is idempotent).
public final class PostgresClient: @unchecked Sendable {
  // `connection` is only touched on `queue`.
  private var connection: PGConnection?
  private let queue: DispatchQueue
  public let url: String
  private let applicationName: String
  private let logger: Logger

  private let statementTimeout: Duration
  /// The connection's canceller while a call runs on it.
  private let running = Mutex<PGCanceller?>(nil)

  /// `statementTimeout`: the longest a statement may run (then it fails
  /// with `queryCanceled`, "canceling statement due to statement timeout").
  public init(
    url: String, applicationName: String = "mirror-stage", statementTimeout: Duration = .seconds(30), logger: Logger
  ) {
    self.url = url
    self.applicationName = applicationName
    self.statementTimeout = statementTimeout
    self.logger = logger
    self.queue = DispatchQueue(label: "mirrorstage.pg.\(applicationName)")
  }

  /// The URL without its password.
  public var redactedURL: String { redact(url) }

  /// Runs `body` with the connection on the client's thread, connecting
  /// first if needed.
  /// A cancelled task cancels the statement it is running (`PQcancel`):
  /// shutdown does not wait for a slow query.
  public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PGConnection) throws -> T) async throws -> T {
    let result: Result<T, any Error> = await withTaskCancellationHandler {
      await withCheckedContinuation { continuation in
        queue.async {
          continuation.resume(returning: Result { try self.runOnQueue(body) })
        }
      }
    } onCancel: {
      running.withLock { $0 }?.cancel()
    }
    return try result.get()
  }

  private func runOnQueue<T>(_ body: (PGConnection) throws -> T) throws -> T {
    let conn: PGConnection
    if let existing = connection, existing.isHealthy {
      conn = existing
    } else {
      if connection != nil { logger.warning("PostgreSQL connection lost; reconnecting") }
      connection = nil
      conn = try PGConnection(url: url, applicationName: applicationName, statementTimeout: statementTimeout)
      connection = conn
    }
    let canceller = conn.canceller()
    running.withLock { $0 = canceller }
    defer { running.withLock { $0 = nil } }
    do {
      return try body(conn)
    } catch let error as PostgresError where error.sqlState.isConnectionProblem || !conn.isHealthy {
      connection = nil
      throw error
    }
  }

  /// One statement with parameters.
  @discardableResult
  public func query(_ sql: String, _ parameters: [(any PGEncodable)?] = []) async throws -> PGRows {
    try await withConnection { try $0.query(sql, parameters) }
  }

  /// BEGIN, `body`, COMMIT; rolled back on any error.
  @discardableResult
  public func transaction<T: Sendable>(_ body: @escaping @Sendable (PGConnection) throws -> T) async throws -> T {
    try await withConnection { conn in try conn.transaction(body) }
  }

  /// Closes the connection (it re-opens on the next call).
  public func close() async {
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
      queue.async {
        self.connection = nil
        c.resume()
      }
    }
  }
}
