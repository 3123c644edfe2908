/// A failed libpq operation. `sqlState` is PostgreSQL's five-character
/// code; connection problems carry `.connectionFailure`. The description is
/// safe to log: no password, no parameter values.
public struct PostgresError: Error, Hashable, Sendable, CustomStringConvertible {
  /// SQLSTATE, as an open set of values.
  public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let connectionFailure = Code(rawValue: "08006")
    public static let connectionDoesNotExist = Code(rawValue: "08003")
    public static let invalidPassword = Code(rawValue: "28P01")
    public static let invalidAuthorization = Code(rawValue: "28000")
    public static let uniqueViolation = Code(rawValue: "23505")
    public static let foreignKeyViolation = Code(rawValue: "23503")
    public static let undefinedTable = Code(rawValue: "42P01")
    public static let syntaxError = Code(rawValue: "42601")
    public static let adminShutdown = Code(rawValue: "57P01")
    public static let cannotConnectNow = Code(rawValue: "57P03")
    public static let queryCanceled = Code(rawValue: "57014")
    /// Raised by this library: a value could not be decoded as asked.
    public static let decodingFailed = Code(rawValue: "MS001")
    public var description: String { rawValue }

    /// Connection-class codes (08xxx, 57P0x): retry on a new connection.
    public var isConnectionProblem: Bool {
      rawValue.hasPrefix("08") || rawValue == "57P01" || rawValue == "57P02" || rawValue == "57P03"
    }
  }

  public var sqlState: Code
  public var message: String
  /// The statement, shortened; never its parameters.
  public var query: String?

  public init(sqlState: Code, message: String, query: String? = nil) {
    self.sqlState = sqlState
    self.message = message
    self.query = query.map { $0.count > 200 ? String($0.prefix(200)) + "…" : $0 }
  }

  public var description: String {
    var s = "PostgreSQL \(sqlState): \(message)"
    if let query { s += " [query: \(query.split(whereSeparator: \.isNewline).joined(separator: " "))]" }
    return s
  }
}
