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

  /// Bulk-loads rows already encoded by a `PGCopyEncoder` (its `bytes`),
  /// e.g. prepared on another thread while this connection was busy.
  @discardableResult
  public func copyIn(_ sql: String, encoded: [UInt8]) throws -> Int {
    try copyIn(sql) { () throws(PostgresError) in
      var start = 0
      while start < encoded.count {
        let end = min(encoded.count, start + PGCopyWriter.chunk)
        try putCopyData(encoded[start..<end])
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

  func putCopyData(_ bytes: ArraySlice<UInt8>) throws(PostgresError) {
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

/// Rows in COPY text format, encoded into a byte buffer (a value: build it
/// on any thread, then load it with `copyIn(_:encoded:)`). Numbers are
/// written straight into the buffer, without intermediate strings.
public struct PGCopyEncoder: Sendable {
  public private(set) var bytes: [UInt8] = []
  public private(set) var rows = 0
  private var firstField = true

  public init(capacity: Int = 0) {
    bytes.reserveCapacity(capacity)
  }

  private mutating func separator() {
    if firstField { firstField = false } else { bytes.append(0x09) }
  }

  /// A text field, escaped.
  public mutating func field(_ value: String) {
    separator()
    var value = value
    value.withUTF8 { utf8 in
      // Most fields need no escaping: one copy.
      guard utf8.contains(where: { $0 == 0x5C || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else {
        bytes.append(contentsOf: utf8)
        return
      }
      for b in utf8 {
        switch b {
        case 0x5C: bytes.append(contentsOf: [0x5C, 0x5C])
        case 0x09: bytes.append(contentsOf: [0x5C, 0x74])
        case 0x0A: bytes.append(contentsOf: [0x5C, 0x6E])
        case 0x0D: bytes.append(contentsOf: [0x5C, 0x72])
        default: bytes.append(b)
        }
      }
    }
  }

  /// A field already in COPY text form (no tab, newline or backslash), such
  /// as a formatted timestamp.
  public mutating func field(unescaped value: [UInt8]) {
    separator()
    bytes.append(contentsOf: value)
  }

  /// An integer, its digits written straight into the buffer.
  public mutating func field(_ value: Int64) {
    separator()
    if value < 0 { bytes.append(0x2D) }
    var magnitude = value.magnitude
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // up to 20 digits, kept off the heap
    var count = 0
    withUnsafeMutableBytes(of: &digits) { raw in
      repeat {
        raw[count] = 0x30 + UInt8(magnitude % 10)
        magnitude /= 10
        count += 1
      } while magnitude > 0
      for i in stride(from: count - 1, through: 0, by: -1) { bytes.append(raw[i]) }
    }
  }

  /// A float8: Swift's shortest round-trip form (PostgreSQL reads it back exactly).
  public mutating func field(_ value: Double) {
    separator()
    if value.isNaN {
      bytes.append(contentsOf: [0x4E, 0x61, 0x4E])  // NaN
    } else if value.isInfinite {
      if value < 0 { bytes.append(0x2D) }
      bytes.append(contentsOf: Array("Infinity".utf8))
    } else {
      var text = value.description
      text.withUTF8 { bytes.append(contentsOf: $0) }
    }
  }

  public mutating func field(_ value: Bool) {
    separator()
    bytes.append(value ? 0x74 : 0x66)  // t, f
  }

  public mutating func field(_ value: String?) {
    if let value { field(value) } else { null() }
  }

  public mutating func field(_ value: Int64?) {
    if let value { field(value) } else { null() }
  }

  public mutating func field(_ value: Double?) {
    if let value { field(value) } else { null() }
  }

  /// Any other parameter type, through its text form.
  public mutating func field(_ value: some PGEncodable) {
    separator()
    var text = value.pgText
    text.withUTF8 { bytes.append(contentsOf: $0) }
  }

  public mutating func null() {
    separator()
    bytes.append(contentsOf: [0x5C, 0x4E])  // \N
  }

  /// Ends the row.
  public mutating func nextRow() {
    bytes.append(0x0A)
    firstField = true
    rows += 1
  }

  mutating func removeAll() {
    bytes.removeAll(keepingCapacity: true)
  }
}

/// Encodes rows in COPY text format and hands them to libpq in chunks of
/// about `chunk` bytes (`copyIn(_:_:)`).
public final class PGCopyWriter {
  private unowned let connection: PGConnection
  private var encoder = PGCopyEncoder(capacity: PGCopyWriter.chunk + 4096)
  static let chunk = 1 << 20

  init(connection: PGConnection) {
    self.connection = connection
  }

  public var rows: Int { encoder.rows }

  public func field(_ value: String?) { encoder.field(value) }
  public func field(_ value: Int64) { encoder.field(value) }
  public func field(_ value: Int) { encoder.field(Int64(value)) }
  public func field(_ value: Double) { encoder.field(value) }
  public func field(_ value: some PGEncodable) { encoder.field(value) }
  public func null() { encoder.null() }

  /// Ends the row; sends what has accumulated once it passes `chunk`.
  public func endRow() throws(PostgresError) {
    encoder.nextRow()
    if encoder.bytes.count >= Self.chunk { try flush() }
  }

  func flush() throws(PostgresError) {
    guard !encoder.bytes.isEmpty else { return }
    try connection.putCopyData(encoder.bytes[...])
    encoder.removeAll()
  }
}

@available(*, unavailable)
extension PGCopyWriter: Sendable {}
