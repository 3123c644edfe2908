import Crypto
import Foundation

/// A NATS user NKey: an Ed25519 key pair in the text form nats-server and
/// libnats read — the public key `U…` that goes into the server's
/// authorization and the seed `SU…` that stays with the client.
///
/// The form is that of github.com/nats-io/nkeys (`strkey.go`, `crc16.go`):
/// base32 (RFC 4648, no padding) of prefix byte(s), the 32 key bytes and a
/// CRC-16/XMODEM of both, little-endian. A seed's two prefix bytes pack the
/// seed type (18 << 3) with the public key's type (user, 20 << 3) so that the
/// text starts with "SU".
struct NKey {
  let privateKey: Curve25519.Signing.PrivateKey

  /// A new random key.
  init() { privateKey = Curve25519.Signing.PrivateKey() }

  init(privateKey: Curve25519.Signing.PrivateKey) { self.privateKey = privateKey }

  /// The key of a seed (`SU…`); whitespace around it is ignored, so a seed
  /// file's content can be passed as it is.
  init(seed text: String) throws(NKeyError) {
    let text = text.trimmingCharacters(in: .whitespacesAndNewlines)
    let raw = try Self.decode(text)
    guard raw.count == 2 + 32, raw[0] & 0xF8 == Self.seedPrefix,
      (raw[0] & 0x07) << 5 | (raw[1] & 0xF8) >> 3 == Self.userPrefix
    else { throw NKeyError("not a user NKey seed") }
    do {
      privateKey = try Curve25519.Signing.PrivateKey(rawRepresentation: raw[2...])
    } catch {
      throw NKeyError("not a user NKey seed")
    }
  }

  /// The seed (`SU…`, 58 characters): the secret.
  var seed: String {
    Self.encode([Self.seedPrefix | Self.userPrefix >> 5, (Self.userPrefix & 31) << 3] + privateKey.rawRepresentation)
  }

  /// The public key (`U…`, 56 characters), as the server's `nkey:` entry names the user.
  var publicKey: String { Self.encode([Self.userPrefix] + privateKey.publicKey.rawRepresentation) }

  static let seedPrefix: UInt8 = 18 << 3
  static let userPrefix: UInt8 = 20 << 3

  private static func encode(_ bytes: [UInt8]) -> String {
    let crc = crc16(bytes)
    return base32(bytes + [UInt8(crc & 0xFF), UInt8(crc >> 8)])
  }

  /// The bytes before the checksum, if the checksum matches.
  private static func decode(_ text: String) throws(NKeyError) -> [UInt8] {
    guard let raw = base32Decode(text), raw.count > 2 else { throw NKeyError("not base32") }
    let body = Array(raw.dropLast(2))
    guard UInt16(raw[raw.count - 2]) | UInt16(raw[raw.count - 1]) << 8 == crc16(body) else {
      throw NKeyError("bad checksum")
    }
    return body
  }

  private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

  /// RFC 4648 base32 without padding.
  static func base32(_ bytes: [UInt8]) -> String {
    var out: [UInt8] = []
    var buffer = 0
    var bits = 0
    for byte in bytes {
      buffer = buffer << 8 | Int(byte)
      bits += 8
      while bits >= 5 {
        bits -= 5
        out.append(alphabet[(buffer >> bits) & 31])
      }
      buffer &= (1 << bits) - 1
    }
    if bits > 0 { out.append(alphabet[(buffer << (5 - bits)) & 31]) }
    return String(decoding: out, as: UTF8.self)
  }

  /// The bytes of unpadded base32, or nil for a character outside the
  /// alphabet or a last character whose unused bits are not zero (each
  /// byte string has one text form).
  static func base32Decode(_ text: String) -> [UInt8]? {
    var out: [UInt8] = []
    var buffer = 0
    var bits = 0
    for c in text.utf8 {
      guard let value = alphabet.firstIndex(of: c) else { return nil }
      buffer = buffer << 5 | value
      bits += 5
      if bits >= 8 {
        bits -= 8
        out.append(UInt8((buffer >> bits) & 0xFF))
      }
      buffer &= (1 << bits) - 1
    }
    return buffer == 0 && bits < 5 ? out : nil
  }

  /// CRC-16/XMODEM (polynomial 0x1021, initial value 0), bit by bit.
  static func crc16(_ bytes: [UInt8]) -> UInt16 {
    var crc: UInt16 = 0
    for byte in bytes {
      crc ^= UInt16(byte) << 8
      for _ in 0..<8 { crc = crc & 0x8000 != 0 ? crc << 1 ^ 0x1021 : crc << 1 }
    }
    return crc
  }
}

/// A string that is not an NKey of the expected kind.
struct NKeyError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}
