internal import CLibPQ

extension PGConnection {
  /// Bulk-loads rows with `COPY ... FROM STDIN` (text format). `write`
  /// appends rows to the writer, which streams them to the server in
  /// chunks. Returns the number of rows the server stored. Runs in the
  /// caller's transaction when there is one.
  /// The corresponding C functions are `PQputCopyData` and `PQputCopyEnd`.
  @discardableResult
  public func copyIn(_ sql: String, _ write: (PGCopyWriter) throws -> Void) throws -> Int {
    try query(sql)  // enters COPY_IN
    let writer = PGCopyWriter(connection: self)
    var failure: (any Error)?
    do {
      try write(writer)
      try writer.flush()
    } catch {
      failure = error
    }
    let end = PQputCopyEnd(conn, failure == nil ? nil : "aborted by client")
    var stored = 0
    var serverError: PostgresError?
    while let result = PQgetResult(conn) {
      if PQresultStatus(result) == PGRES_COMMAND_OK {
        stored = Int(String(cString: PQcmdTuples(result))) ?? 0
      } else if serverError == nil {
        serverError = error(of: result, sql)
      }
      PQclear(result)
    }
    if let failure { throw failure }
    if end != 1 {
      throw PostgresError(sqlState: .connectionFailure, message: Self.clean(PQerrorMessage(conn)), query: sql)
    }
    if let serverError { throw serverError }
    return stored
  }

  func putCopyData(_ bytes: [UInt8]) throws(PostgresError) {
    let status = bytes.withUnsafeBufferPointer { buffer in
      buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
        PQputCopyData(conn, $0, Int32(buffer.count))
      }
    }
    guard status == 1 else {
      throw PostgresError(sqlState: .connectionFailure, message: Self.clean(PQerrorMessage(conn)), query: "COPY")
    }
  }
}

/// Encodes rows in COPY text format and hands them to libpq in chunks.
public final class PGCopyWriter {
  private unowned let connection: PGConnection
  private var buffer: [UInt8] = []
  private var firstField = true
  public private(set) var rows = 0
  private static let chunk = 1 << 20

  init(connection: PGConnection) {
    self.connection = connection
    buffer.reserveCapacity(Self.chunk + 4096)
  }

  private func separator() {
    if firstField { firstField = false } else { buffer.append(0x09) }
  }

  /// A text field, escaped; nil is NULL.
  public func field(_ value: String?) {
    separator()
    guard var value else {
      buffer.append(contentsOf: [0x5C, 0x4E])  // \N
      return
    }
    value.withUTF8 { utf8 in
      for b in utf8 {
        switch b {
        case 0x5C: buffer.append(contentsOf: [0x5C, 0x5C])
        case 0x09: buffer.append(contentsOf: [0x5C, 0x74])
        case 0x0A: buffer.append(contentsOf: [0x5C, 0x6E])
        case 0x0D: buffer.append(contentsOf: [0x5C, 0x72])
        default: buffer.append(b)
        }
      }
    }
  }

  /// A field that needs no escaping (numbers, booleans).
  public func field(_ value: some PGEncodable) {
    separator()
    var text = value.pgText
    text.withUTF8 { buffer.append(contentsOf: $0) }
  }

  public func null() {
    separator()
    buffer.append(contentsOf: [0x5C, 0x4E])
  }

  public func endRow() throws(PostgresError) {
    buffer.append(0x0A)
    firstField = true
    rows += 1
    if buffer.count >= Self.chunk { try flush() }
  }

  func flush() throws(PostgresError) {
    guard !buffer.isEmpty else { return }
    try connection.putCopyData(buffer)
    buffer.removeAll(keepingCapacity: true)
  }
}

@available(*, unavailable)
extension PGCopyWriter: Sendable {}
