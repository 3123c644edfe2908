/// Building a message's encoding from already-encoded parts: protobuf
/// parsers accept fields in any order, so an embedded message received as
/// bytes can be appended as a length-delimited field without decoding and
/// encoding it again.
public enum WireSplice {
  /// `encoded` with field `number` (a message field) set to `message`.
  public static func appendingMessageField(_ number: UInt32, _ message: [UInt8], to encoded: [UInt8]) -> [UInt8] {
    var out = encoded
    out.reserveCapacity(encoded.count + message.count + 10)
    appendVarint(UInt64(number) << 3 | 2, to: &out)
    appendVarint(UInt64(message.count), to: &out)
    out.append(contentsOf: message)
    return out
  }

  static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
    var v = value
    while v >= 0x80 {
      out.append(UInt8(v & 0x7F) | 0x80)
      v >>= 7
    }
    out.append(UInt8(v))
  }
}
