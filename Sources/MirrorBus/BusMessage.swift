public import MirrorWire

/// Header names every MIRROR STAGE message carries.
public enum BusHeader {
  public static let contentType = "Content-Type"
  public static let mirrorType = "Mirror-Type"
  public static let schema = "Mirror-Schema"
  public static let msgID = "Nats-Msg-Id"

  /// The headers describing a wire message's payload.
  public static func describing<M: WireMessage>(_: M.Type) -> [String: String] {
    [contentType: WireSchema.contentType, mirrorType: M.fullName, schema: WireSchema.version]
  }
}

/// A message received from core NATS: payload and headers copied out of the
/// libnats message, which is already destroyed.
public struct BusMessage: Sendable, Hashable {
  public var subject: String
  public var reply: String?
  public var headers: [String: String]
  public var payload: [UInt8]
  /// When it was taken off the connection (received messages only).
  public var receivedAt: ContinuousClock.Instant?
  /// The micro service whose endpoint it came in on (`serve`), if any.
  public var service: String?

  public init(subject: String, reply: String? = nil, headers: [String: String] = [:], payload: [UInt8]) {
    self.subject = subject
    self.reply = reply
    self.headers = headers
    self.payload = payload
  }

  /// The protobuf full name from the `Mirror-Type` header.
  public var mirrorType: String? { headers[BusHeader.mirrorType] }

  /// Decodes the payload as `M`; an `RpcError` reply becomes a thrown
  /// `RemoteError`.
  public func decode<M: WireMessage>(_: M.Type, limit: Int = WireLimits.defaultMaxMessageBytes) throws -> M {
    if mirrorType == RpcError.fullName, M.self != RpcError.self {
      throw RemoteError(try RpcError(decoding: payload, limit: limit))
    }
    return try M(decoding: payload, limit: limit)
  }
}

/// An `RpcError` reply from a service, as a Swift error.
public struct RemoteError: Error, Sendable, CustomStringConvertible {
  public var error: RpcError
  public init(_ error: RpcError) { self.error = error }
  public var description: String { "\(error.code): \(error.message)" }
}
