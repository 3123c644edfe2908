/// A message of the MIRROR STAGE wire schema (`proto/mirrorstage/v1`).
///
/// Every conforming type is a plain value; `encode()` and `init(decoding:)`
/// go through the protobuf-c code generated from the same `.proto` files.
public protocol WireMessage: Sendable, Hashable, Codable {
  /// The protobuf full name, e.g. `mirrorstage.v1.MetricsBatch`; carried in
  /// the `Mirror-Type` header.
  static var fullName: String { get }
  /// Serialises the message to protobuf bytes.
  func encode() -> [UInt8]
  /// Parses protobuf bytes, refusing payloads over `limit` bytes.
  init(decoding bytes: [UInt8], limit: Int) throws(WireError)
}

extension WireMessage {
  /// Parses protobuf bytes with the default size limit.
  public init(decoding bytes: [UInt8]) throws(WireError) {
    try self.init(decoding: bytes, limit: WireLimits.defaultMaxMessageBytes)
  }
}

/// Size limits applied before any parsing.
public enum WireLimits {
  /// The largest message any service accepts by default: 1 MiB, the NATS
  /// server's default max_payload.
  public static let defaultMaxMessageBytes = 1 << 20
}

/// The schema version carried in the `Mirror-Schema` header.
public enum WireSchema {
  public static let version = "1"
  public static let contentType = "application/x-protobuf"
}
