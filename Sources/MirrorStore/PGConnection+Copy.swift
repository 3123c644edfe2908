internal import CLibPQ

extension PGConnection {
  /// Bulk-loads rows with `COPY ... FROM STDIN` (text format). `write`
  /// appends rows to the writer, which streams them to the server in
  /// chunks. Returns the number of rows the server stored. Runs in the
  /// caller's transaction when there is one.
  /// The corresponding C functions are `PQputCopyData` and `PQputCopyEnd`.
  @discardableResult
  public func copyIn(_ sql: String, _ write: (PGCopyWriter) throws -> Void) throws -> Int {
    try copyIn(sql) { () throws in
      let writer = PGCopyWriter(connection: self)
      try write(writer)
      try writer.flush()
    }
  }

  /// Bulk-loads rows already encoded by a detached `PGCopyWriter()` (its
  /// `bytes`), e.g. prepared on another thread while this connection was
  /// busy.
  @discardableResult
  public func copyIn(_ sql: String, encoded: [UInt8]) throws -> Int {
    try copyIn(sql) { () throws(PostgresError) in
      var start = 0
      while start < encoded.count {
        let end = min(encoded.count, start + PGCopyWriter.chunk)
        try putCopyData(Array(encoded[start..<end]))
        start = end
      }
    }
  }

  private func copyIn(_ sql: String, send: () throws -> Void) throws -> Int {
    try query(sql)  // enters COPY_IN
    var failure: (any Error)?
    do {
      try send()
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
/// Without a connection (`PGCopyWriter()`), it only collects the encoded
/// rows in `bytes`, for `copyIn(_:encoded:)`.
public final class PGCopyWriter {
  private unowned let connection: PGConnection?
  private var buffer: [UInt8] = []
  private var firstField = true
  public private(set) var rows = 0
  static let chunk = 1 << 20

  init(connection: PGConnection) {
    self.connection = connection
    buffer.reserveCapacity(Self.chunk + 4096)
  }

  /// A detached writer: rows accumulate in `bytes`.
  public init() {
    connection = nil
  }

  /// The encoded rows (of a detached writer).
  public var bytes: [UInt8] { buffer }

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

  /// An integer, its digits written straight into the buffer.
  public func field(_ value: Int64) {
    separator()
    if value < 0 { buffer.append(0x2D) }
    var magnitude = value.magnitude
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // up to 20 digits, kept off the heap
    var count = 0
    withUnsafeMutableBytes(of: &digits) { raw in
      repeat {
        raw[count] = 0x30 + UInt8(magnitude % 10)
        magnitude /= 10
        count += 1
      } while magnitude > 0
      for i in stride(from: count - 1, through: 0, by: -1) { buffer.append(raw[i]) }
    }
  }

  public func field(_ value: Int) { field(Int64(value)) }

  /// A float8: Swift's shortest round-trip form (PostgreSQL reads it back exactly).
  public func field(_ value: Double) {
    separator()
    if value.isNaN {
      buffer.append(contentsOf: Array("NaN".utf8))
    } else if value.isInfinite {
      buffer.append(contentsOf: Array((value < 0 ? "-Infinity" : "Infinity").utf8))
    } else {
      var text = value.description
      text.withUTF8 { buffer.append(contentsOf: $0) }
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
    nextRow()
    if connection != nil, buffer.count >= Self.chunk { try flush() }
  }

  /// Ends the row without sending anything (a detached writer).
  public func nextRow() {
    buffer.append(0x0A)
    firstField = true
    rows += 1
  }

  func flush() throws(PostgresError) {
    guard let connection, !buffer.isEmpty else { return }
    try connection.putCopyData(buffer)
    buffer.removeAll(keepingCapacity: true)
  }
}

@available(*, unavailable)
extension PGCopyWriter: Sendable {}
