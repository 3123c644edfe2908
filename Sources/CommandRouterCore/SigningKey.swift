public import Crypto
import Foundation

/// Ed25519 keys in files: the private key as the base64 of its 32-byte
/// seed, the public key as the base64 of its 32 raw bytes (what
/// `mirrorctl keys gen` writes; the reflector reads the public one).
public enum KeyFiles {
  public struct Failure: Error, CustomStringConvertible {
    public var description: String
  }

  public static func loadPrivate(_ path: String) throws -> Curve25519.Signing.PrivateKey {
    let text = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    guard let seed = Data(base64Encoded: text), seed.count == 32 else {
      throw Failure(description: "\(path): not a base64 Ed25519 private key (32 bytes)")
    }
    return try Curve25519.Signing.PrivateKey(rawRepresentation: seed)
  }

  /// Writes a new key pair: `PREFIX.key` (mode 0600) and `PREFIX.pub`.
  public static func generate(prefix: String) throws -> Curve25519.Signing.PublicKey {
    let key = Curve25519.Signing.PrivateKey()
    let privatePath = prefix + ".key"
    guard
      FileManager.default.createFile(
        atPath: privatePath, contents: Data((key.rawRepresentation.base64EncodedString() + "\n").utf8),
        attributes: [.posixPermissions: 0o600])
    else { throw Failure(description: "cannot write \(privatePath)") }
    try Data((key.publicKey.rawRepresentation.base64EncodedString() + "\n").utf8).write(
      to: URL(fileURLWithPath: prefix + ".pub"))
    return key.publicKey
  }
}

/// The router's signing key type, for callers that do not import Crypto.
public typealias Curve25519Key = Curve25519.Signing.PrivateKey
