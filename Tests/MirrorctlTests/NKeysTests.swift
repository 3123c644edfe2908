import Crypto
import Foundation
import Testing

@testable import Mirrorctl

/// NKey text forms against vectors made by the Python `nkeys` package
/// 0.2.1 (`nkeys.encode_seed(raw, nkeys.PREFIX_BYTE_USER)`, then
/// `nkeys.from_seed(seed).public_key`), an implementation independent of
/// this one. The third raw seed is RFC 8032's first Ed25519 test vector.
@Suite struct NKeysTests {
  struct Vector: Sendable, CustomTestStringConvertible {
    var raw: String
    var seed: String
    var publicKey: String
    var testDescription: String { String(raw.prefix(8)) }
  }

  static let vectors = [
    Vector(
      raw: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
      seed: "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y",
      publicKey: "UAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RLKK"),
    Vector(
      raw: "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
      seed: "SUAP777777777777777777777777777777777777777777777777775UUA",
      publicKey: "UB3KCWJAISTOJ5IREZN4U45GATMQWBJJ2HPWAK7DBIM2SJLWMDI7LRYD"),
    Vector(
      raw: "9d61b19deffd5a60ba844af492ec2cc44449c5697b325919703bac031cae7f60",
      seed: "SUAJ2YNRTXX72WTAXKCEV5ES5QWMIRCJYVUXWMSZDFYDXLADDSXH6YEQXU",
      publicKey: "UABLDWGKJ7ODMHR3ZTDYUFH4AOFGFLF5GN4EU674MDMDHCCLF3EAAWHA"),
  ]

  static func bytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
      let next = hex.index(index, offsetBy: 2)
      out.append(UInt8(hex[index..<next], radix: 16)!)
      index = next
    }
    return out
  }

  @Test(arguments: vectors) func encodesAsNKeysDoes(_ v: Vector) throws {
    let key = NKey(privateKey: try Curve25519.Signing.PrivateKey(rawRepresentation: Self.bytes(v.raw)))
    #expect(key.seed == v.seed)
    #expect(key.publicKey == v.publicKey)
  }

  @Test(arguments: vectors) func decodesASeed(_ v: Vector) throws {
    let key = try NKey(seed: v.seed + "\n")
    #expect([UInt8](key.privateKey.rawRepresentation) == Self.bytes(v.raw))
    #expect(key.publicKey == v.publicKey)
  }

  @Test func aNewKeyRoundTrips() throws {
    let key = NKey()
    #expect(key.seed.hasPrefix("SU") && key.seed.count == 58)
    #expect(key.publicKey.hasPrefix("U") && key.publicKey.count == 56)
    #expect(try NKey(seed: key.seed).publicKey == key.publicKey)
  }

  /// Every bad seed is refused with an error, never a crash or another key.
  @Test(arguments: [
    "",
    "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H777Y",  // a character changed: checksum
    "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Z",  // unused bits set in the last character
    "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776",  // truncated
    "suaaaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4h776y",  // not the base32 alphabet
    "UAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RLKK",  // a public key, not a seed
    "SAAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4HYMHI",  // an account's seed (valid checksum)
    "SOAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H2AJA",  // an operator's seed (valid checksum)
  ])
  func refusesABadSeed(_ text: String) {
    #expect(throws: NKeyError.self) { _ = try NKey(seed: text) }
  }

  @Test func crc16IsXMODEM() {
    // The CRC-16/XMODEM check value (the catalogue's "123456789").
    #expect(NKey.crc16(Array("123456789".utf8)) == 0x31C3)
  }
}
