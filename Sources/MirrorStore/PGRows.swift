/// The rows of a query, copied out of the `PGresult` (which is already
/// cleared).
public struct PGRows: Sendable, Hashable {
  public var columns: [String]
  public var values: [[String?]]
  /// Rows affected by INSERT/UPDATE/DELETE (`PQcmdTuples`).
  public var affected: Int

  public var count: Int { values.count }
  public var isEmpty: Bool { values.isEmpty }

  public subscript(row: Int) -> PGRow { PGRow(columns: columns, values: values[row]) }

  public var rows: [PGRow] { values.map { PGRow(columns: columns, values: $0) } }
}

/// One row; typed access by column index or name.
public struct PGRow: Sendable, Hashable {
  public var columns: [String]
  public var values: [String?]

  /// The column's value as `T`; throws when it is NULL or not a `T`.
  public func decode<T: PGDecodable>(_: T.Type, _ column: Int) throws(PostgresError) -> T {
    guard let value = try decodeIfPresent(T.self, column) else {
      throw PostgresError(sqlState: .decodingFailed, message: "column \(columns[column]) is NULL, expected \(T.self)")
    }
    return value
  }

  public func decode<T: PGDecodable>(_: T.Type, _ column: String) throws(PostgresError) -> T {
    try decode(T.self, try index(of: column))
  }

  /// The column's value as `T`, nil when NULL.
  public func decodeIfPresent<T: PGDecodable>(_: T.Type, _ column: Int) throws(PostgresError) -> T? {
    guard column < values.count else {
      throw PostgresError(sqlState: .decodingFailed, message: "no column \(column)")
    }
    guard let text = values[column] else { return nil }
    guard let value = T(pgText: text) else {
      throw PostgresError(sqlState: .decodingFailed, message: "column \(columns[column]) is not a valid \(T.self)")
    }
    return value
  }

  public func decodeIfPresent<T: PGDecodable>(_: T.Type, _ column: String) throws(PostgresError) -> T? {
    try decodeIfPresent(T.self, try index(of: column))
  }

  private func index(of column: String) throws(PostgresError) -> Int {
    guard let i = columns.firstIndex(of: column) else {
      throw PostgresError(sqlState: .decodingFailed, message: "no column named \(column)")
    }
    return i
  }
}
