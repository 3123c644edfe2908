internal import CLibPQ
internal import Foundation

#if canImport(Glibc)
  internal import Glibc
#endif

/// One libpq connection. Its calls block: use it through `PostgresClient`,
/// which runs them on a thread of its own.
public final class PGConnection {
  let conn: OpaquePointer

  /// Opens a connection from a `postgresql://` URL or a key=value string.
  /// Fails with a clear error (wrong password, unreachable server) within
  /// `connectTimeout` seconds unless the URL sets its own.
  /// The corresponding C function is `PQconnectdbParams`.
  /// Every statement is bounded by `statementTimeout` (PostgreSQL's
  /// `statement_timeout`; zero: none), and TCP keepalives and a user
  /// timeout notice a server that went away without closing (a half-open
  /// connection would otherwise block its caller forever).
  public init(
    url: String, applicationName: String = "mirror-stage", connectTimeout: Int = 5,
    statementTimeout: Duration = .seconds(30)
  ) throws(PostgresError) {
    // Earlier keywords are defaults; the expanded URL (dbname) overrides them.
    let ms =
      statementTimeout.components.seconds * 1000 + statementTimeout.components.attoseconds / 1_000_000_000_000_000
    let keywords = [
      "connect_timeout", "application_name", "keepalives", "keepalives_idle", "keepalives_interval",
      "keepalives_count", "tcp_user_timeout", "options", "dbname",
    ]
    let values = [
      String(connectTimeout), applicationName, "1", "15", "5", "3", "30000", "-c statement_timeout=\(ms)", url,
    ]
    var k = keywords.map { UnsafePointer<CChar>(strdup($0)) }
    var v = values.map { UnsafePointer<CChar>(strdup($0)) }
    k.append(nil)
    v.append(nil)
    defer {
      for p in k + v { free(UnsafeMutablePointer(mutating: p)) }
    }
    guard let conn = PQconnectdbParams(k, v, 1) else {
      throw PostgresError(sqlState: .connectionFailure, message: "out of memory creating a connection")
    }
    guard PQstatus(conn) == CONNECTION_OK else {
      let message = Self.clean(PQerrorMessage(conn))
      PQfinish(conn)
      let code: PostgresError.Code =
        message.contains("password authentication failed") ? .invalidPassword : .connectionFailure
      throw PostgresError(sqlState: code, message: "cannot connect to \(redact(url)): \(message)")
    }
    self.conn = conn
    // Notices ("relation already exists, skipping") are not errors; drop them.
    PQsetNoticeProcessor(conn, { _, _ in }, nil)
  }

  deinit { PQfinish(conn) }

  /// What another thread may use to cancel the statement running on this
  /// connection. The corresponding C function is `PQgetCancel`.
  public func canceller() -> PGCanceller? { PQgetCancel(conn).map(PGCanceller.init) }

  /// False once the server has gone away.
  public var isHealthy: Bool { PQstatus(conn) == CONNECTION_OK }

  /// Runs one statement with parameters (`$1`, `$2`, ...), in text format,
  /// or in binary format for a `PGBinaryEncodable` parameter (`bytea`: no
  /// hex to write and parse). Results come in text format.
  /// The corresponding C function is `PQexecParams`.
  @discardableResult
  public func query(_ sql: String, _ parameters: [(any PGEncodable)?] = []) throws(PostgresError) -> PGRows {
    var values: [UnsafePointer<CChar>?] = []
    var lengths: [Int32] = []
    var formats: [Int32] = []
    for p in parameters {
      if let binary = (p as? any PGBinaryEncodable)?.pgBinary {
        let copy = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, binary.count))
        binary.withUnsafeBytes { raw in
          if !raw.isEmpty { UnsafeMutableRawPointer(copy).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
        }
        values.append(UnsafePointer(copy))
        lengths.append(Int32(binary.count))
        formats.append(1)
      } else {
        values.append(p.map { UnsafePointer<CChar>(strdup($0.pgText)) } ?? nil)
        lengths.append(0)
        formats.append(0)
      }
    }
    defer { for v in values { free(UnsafeMutablePointer(mutating: v)) } }
    let result = PQexecParams(conn, sql, Int32(values.count), nil, values, lengths, formats, 0)
    return try consume(result, sql)
  }

  /// Runs one or more statements without parameters (migrations).
  /// The corresponding C function is `PQexec`.
  @discardableResult
  public func execute(_ sql: String) throws(PostgresError) -> PGRows {
    try consume(PQexec(conn, sql), sql)
  }

  /// Runs `body` inside BEGIN/COMMIT; any error rolls back.
  @discardableResult
  public func transaction<T>(_ body: (PGConnection) throws -> T) throws -> T {
    try execute("BEGIN")
    do {
      let value = try body(self)
      try execute("COMMIT")
      return value
    } catch {
      if isHealthy { _ = try? execute("ROLLBACK") }
      throw error
    }
  }

  /// Checks a result, copies its rows out and clears it.
  func consume(_ result: OpaquePointer?, _ sql: String) throws(PostgresError) -> PGRows {
    guard let result else {
      throw PostgresError(sqlState: .connectionFailure, message: Self.clean(PQerrorMessage(conn)), query: sql)
    }
    defer { PQclear(result) }
    switch PQresultStatus(result) {
    case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_COPY_IN:
      return Self.rows(of: result)
    default:
      throw error(of: result, sql)
    }
  }

  func error(of result: OpaquePointer, _ sql: String) -> PostgresError {
    // PG_DIAG_SQLSTATE is the character 'C'.
    let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
    let message = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
    let code = state.map(PostgresError.Code.init(rawValue:)) ?? .connectionFailure
    return PostgresError(sqlState: code, message: message ?? Self.clean(PQerrorMessage(conn)), query: sql)
  }

  static func rows(of result: OpaquePointer) -> PGRows {
    let nrows = Int(PQntuples(result))
    let ncols = Int(PQnfields(result))
    let columns = (0..<ncols).map { PQfname(result, Int32($0)).map { String(cString: $0) } ?? "" }
    var values: [[String?]] = []
    values.reserveCapacity(nrows)
    for r in 0..<nrows {
      var row: [String?] = []
      row.reserveCapacity(ncols)
      for c in 0..<ncols {
        if PQgetisnull(result, Int32(r), Int32(c)) != 0 {
          row.append(nil)
        } else {
          row.append(String(cString: PQgetvalue(result, Int32(r), Int32(c))))
        }
      }
      values.append(row)
    }
    let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
    return PGRows(columns: columns, values: values, affected: affected)
  }

  static func clean(_ message: UnsafeMutablePointer<CChar>?) -> String {
    guard let message else { return "unknown error" }
    return String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
      .split(whereSeparator: \.isNewline).joined(separator: "; ")
  }
}

@available(*, unavailable)
extension PGConnection: Sendable {}

/// Cancels the statement running on a connection, from any thread (libpq
/// allows `PQcancel` anywhere, even in a signal handler): the statement
/// then fails with `queryCanceled`. The C functions are `PQcancel` and
/// `PQfreeCancel`.
public final class PGCanceller: @unchecked Sendable {
  private let handle: OpaquePointer
  init(_ handle: OpaquePointer) { self.handle = handle }
  deinit { PQfreeCancel(handle) }

  public func cancel() {
    var buffer = [CChar](repeating: 0, count: 256)
    _ = PQcancel(handle, &buffer, Int32(buffer.count))
  }
}

/// The URL without its password, for logs and errors.
public func redact(_ url: String) -> String {
  guard let scheme = url.range(of: "://"),
    let at = url.range(of: "@", options: .backwards, range: scheme.upperBound..<url.endIndex)
  else {
    return url
  }
  let userinfo = url[scheme.upperBound..<at.lowerBound]
  guard let colon = userinfo.firstIndex(of: ":") else { return url }
  return String(url[..<colon]) + ":***" + String(url[at.lowerBound...])
}
