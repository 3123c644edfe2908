/// A value sent as a query parameter, in PostgreSQL's text format.
public protocol PGEncodable: Sendable {
  var pgText: String { get }
}

/// A parameter sent in PostgreSQL's binary format (its `pgText` stays the
/// text form, for COPY and for logs).
public protocol PGBinaryEncodable: PGEncodable {
  var pgBinary: [UInt8] { get }
}

/// A value read from a result column in PostgreSQL's text format.
public protocol PGDecodable {
  init?(pgText: String)
}

extension String: PGEncodable, PGDecodable {
  public var pgText: String { self }
  public init?(pgText: String) { self = pgText }
}

extension Int: PGEncodable, PGDecodable {
  public var pgText: String { String(self) }
  public init?(pgText: String) { self.init(pgText) }
}

extension Int64: PGEncodable, PGDecodable {
  public var pgText: String { String(self) }
  public init?(pgText: String) { self.init(pgText) }
}

extension Int32: PGEncodable, PGDecodable {
  public var pgText: String { String(self) }
  public init?(pgText: String) { self.init(pgText) }
}

extension UInt32: PGEncodable, PGDecodable {
  public var pgText: String { String(self) }
  public init?(pgText: String) { self.init(pgText) }
}

extension UInt64: PGEncodable, PGDecodable {
  public var pgText: String { String(self) }
  public init?(pgText: String) { self.init(pgText) }
}

extension Double: PGEncodable, PGDecodable {
  public var pgText: String { "\(self)" }
  public init?(pgText: String) {
    switch pgText {
    case "NaN": self = .nan
    case "Infinity": self = .infinity
    case "-Infinity": self = -.infinity
    default: self.init(pgText)
    }
  }
}

extension Bool: PGEncodable, PGDecodable {
  public var pgText: String { self ? "t" : "f" }
  public init?(pgText: String) {
    switch pgText {
    case "t", "true": self = true
    case "f", "false": self = false
    default: return nil
    }
  }
}

/// `bytea` in hex form (`\x0a1b`).
public struct PGBytes: PGBinaryEncodable, PGDecodable, Hashable {
  public var bytes: [UInt8]
  public init(_ bytes: [UInt8]) { self.bytes = bytes }
  /// As a parameter: the bytes themselves.
  public var pgBinary: [UInt8] { bytes }
  private static let hex = Array("0123456789abcdef".utf8)

  public var pgText: String {
    var out: [UInt8] = [UInt8(ascii: "\\"), UInt8(ascii: "x")]
    out.reserveCapacity(2 + bytes.count * 2)
    for b in bytes {
      out.append(Self.hex[Int(b >> 4)])
      out.append(Self.hex[Int(b & 0xf)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  public init?(pgText: String) {
    let utf8 = Array(pgText.utf8)
    guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"), utf8.count % 2 == 0 else {
      return nil
    }
    func nibble(_ c: UInt8) -> UInt8? {
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
      default: nil
      }
    }
    var out: [UInt8] = []
    out.reserveCapacity((utf8.count - 2) / 2)
    var i = 2
    while i < utf8.count {
      guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
      out.append(hi << 4 | lo)
      i += 2
    }
    bytes = out
  }
}

/// A `bytea[]` parameter in binary format (PostgreSQL's `array_send`
/// layout): one dimension, no NULLs, element type `bytea` (OID 17), each
/// element its length and bytes. Large payloads pass without hex.
public struct PGByteaArray: PGBinaryEncodable {
  public var elements: [[UInt8]]
  public init(_ elements: [[UInt8]]) { self.elements = elements }

  public var pgBinary: [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(20 + elements.reduce(0) { $0 + 4 + $1.count })
    func int32(_ v: Int32) { withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) } }
    int32(elements.isEmpty ? 0 : 1)  // dimensions
    int32(0)  // no NULLs
    int32(17)  // bytea
    if !elements.isEmpty {
      int32(Int32(elements.count))
      int32(1)  // lower bound
    }
    for e in elements {
      int32(Int32(e.count))
      out.append(contentsOf: e)
    }
    return out
  }

  public var pgText: String { PGArray.text(elements.map { PGBytes($0).pgText }) }
}

/// PostgreSQL array literals for array parameters (`unnest($1::text[])`,
/// `= ANY($1::text[])`).
public enum PGArray {
  public static func text(_ values: [String]) -> String {
    var out: [UInt8] = [UInt8(ascii: "{")]
    for (i, v) in values.enumerated() {
      if i > 0 { out.append(UInt8(ascii: ",")) }
      out.append(UInt8(ascii: "\""))
      for b in v.utf8 {
        if b == UInt8(ascii: "\\") || b == UInt8(ascii: "\"") { out.append(UInt8(ascii: "\\")) }
        out.append(b)
      }
      out.append(UInt8(ascii: "\""))
    }
    out.append(UInt8(ascii: "}"))
    return String(decoding: out, as: UTF8.self)
  }

  public static func numbers<T: BinaryInteger>(_ values: [T]) -> String {
    "{" + values.map { "\($0)" }.joined(separator: ",") + "}"
  }
}
