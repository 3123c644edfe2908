import Crypto
public import Foundation
public import MirrorWire
import Synchronization

/// Why a dispatch was refused. The reason goes into the result the router
/// records, and into the agent's log.
public struct Rejection: Error, Hashable, Sendable, CustomStringConvertible {
  public struct Code: RawRepresentable, Hashable, Sendable {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let malformed = Code(rawValue: "malformed")
    public static let unsigned = Code(rawValue: "unsigned")
    public static let badSignature = Code(rawValue: "bad_signature")
    public static let wrongHost = Code(rawValue: "wrong_host")
    public static let expired = Code(rawValue: "expired")
    public static let replayed = Code(rawValue: "replayed")
    public static let notAllowed = Code(rawValue: "not_allowed")
  }

  public var code: Code
  public var message: String
  public var description: String { "\(code.rawValue): \(message)" }
}

/// Checks a `CommandDispatch`: the router's Ed25519 signature over the
/// body, that it is for this host, not past its deadline, and not seen
/// before (replay). Seen ids are kept for longer than any deadline can be.
public final class DispatchVerifier: Sendable {
  /// The router's public key, raw (swift-crypto's key type is not Sendable).
  private let publicKey: Data
  private let host: String
  private let seen = Mutex<[String: Int64]>([:])
  private let memory: Int64 = 86_400_000

  /// `routerPublicKey`: the 32 raw bytes of the router's Ed25519 key.
  public init(routerPublicKey: Data, host: String) throws {
    _ = try Curve25519.Signing.PublicKey(rawRepresentation: routerPublicKey)
    publicKey = routerPublicKey
    self.host = host
  }

  /// Reads a public key file: 32 raw bytes, or their base64 (what
  /// `mirrorctl keys gen` writes).
  public static func loadPublicKey(_ path: String) throws -> Data {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    let raw = data.count == 32 ? data : (Data(base64Encoded: text) ?? Data())
    _ = try Curve25519.Signing.PublicKey(rawRepresentation: raw)
    return raw
  }

  public func verify(_ payload: [UInt8], nowUnixMs: Int64) -> Result<CommandDispatchBody, Rejection> {
    guard let dispatch = try? CommandDispatch(decoding: payload) else {
      return .failure(Rejection(code: .malformed, message: "not a CommandDispatch"))
    }
    guard !dispatch.signature.isEmpty else {
      return .failure(Rejection(code: .unsigned, message: "dispatch carries no signature"))
    }
    guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey),
      key.isValidSignature(dispatch.signature, for: dispatch.body)
    else {
      return .failure(Rejection(code: .badSignature, message: "signature does not verify with the router's key"))
    }
    guard let body = try? CommandDispatchBody(decoding: dispatch.body) else {
      return .failure(Rejection(code: .malformed, message: "signed body is not a CommandDispatchBody"))
    }
    guard body.host == host else {
      return .failure(Rejection(code: .wrongHost, message: "dispatch is for \(body.host), not \(host)"))
    }
    guard body.deadlineUnixMs == 0 || body.deadlineUnixMs > nowUnixMs else {
      return .failure(Rejection(code: .expired, message: "deadline passed \(nowUnixMs - body.deadlineUnixMs) ms ago"))
    }
    let fresh = seen.withLock { s -> Bool in
      s = s.filter { nowUnixMs - $0.value < memory }
      guard s[body.commandId] == nil else { return false }
      s[body.commandId] = nowUnixMs
      return true
    }
    guard fresh else {
      return .failure(Rejection(code: .replayed, message: "command \(body.commandId) was already received"))
    }
    return .success(body)
  }
}
