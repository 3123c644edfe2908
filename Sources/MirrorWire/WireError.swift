/// Why a payload could not be decoded. Safe to log: it never holds the payload.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
  /// An open set of reasons, usable as a metrics label.
  public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Larger than the configured limit; not parsed at all.
    public static let tooLarge = Code(rawValue: "too_large")
    /// Not a valid encoding of the expected message (truncated, garbage,
    /// wrong wire type).
    public static let malformed = Code(rawValue: "malformed")
    public var description: String { rawValue }
  }

  public var code: Code
  /// The protobuf full name of the message that was expected.
  public var messageType: String
  public var size: Int
  public var limit: Int

  public init(code: Code, messageType: String, size: Int, limit: Int) {
    self.code = code
    self.messageType = messageType
    self.size = size
    self.limit = limit
  }

  public var description: String {
    switch code {
    case .tooLarge: "\(messageType): payload of \(size) bytes exceeds the limit of \(limit) bytes"
    case .malformed: "\(messageType): payload of \(size) bytes is not a valid encoding"
    default: "\(messageType): \(code) (\(size) bytes)"
    }
  }
}
