/// Builds a message with every field set to a value derived from the field's
/// name and type — the "sample rule", implemented independently in
/// Tests/interop/interop.py so the two sides can compare without sharing code:
///
/// - h(name) = (sum over the UTF-8 bytes b_i of name of (i+1)*b_i) % 100000 + 1
/// - string: "<name>-ü✓", in a list "<name>-<index>"
/// - int32: -h, int64: -h*1000003, uint32: h, uint64: h*4000000007,
///   double: h+0.25, float: h+0.5, bool: true; in a list value + index
/// - enum: 1, in a list index+1
/// - bytes: [h%256, 0]
/// - message and optional wrapper fields: present; lists have 2 elements.
public enum Sample {
  public static func make<M: Decodable>(_: M.Type) -> M {
    // The rule covers every type the wire schema uses, so decoding a
    // wire message cannot fail.
    try! M(from: SampleDecoder(codingPath: []))
  }

  static func h(_ name: String) -> Int {
    var sum = 0
    for (i, b) in name.utf8.enumerated() { sum += (i + 1) * Int(b) }
    return sum % 100_000 + 1
  }
}

private struct SampleKey: CodingKey {
  var stringValue: String
  var intValue: Int?
  init(stringValue: String) { self.stringValue = stringValue }
  init(intValue: Int) {
    self.stringValue = "\(intValue)"
    self.intValue = intValue
  }
}

private struct SampleDecoder: Decoder {
  var codingPath: [any CodingKey]
  var userInfo: [CodingUserInfoKey: Any] { [:] }
  /// The list index when decoding a list element.
  var index: Int? = nil
  var fieldName: String { codingPath.last(where: { $0.intValue == nil })?.stringValue ?? "" }

  func container<Key: CodingKey>(keyedBy _: Key.Type) throws -> KeyedDecodingContainer<Key> {
    KeyedDecodingContainer(SampleKeyed<Key>(codingPath: codingPath))
  }
  func unkeyedContainer() throws -> any UnkeyedDecodingContainer { SampleUnkeyed(codingPath: codingPath) }
  func singleValueContainer() throws -> any SingleValueDecodingContainer {
    // Only enums decode through a single-value container here.
    SampleEnum(codingPath: codingPath, index: index)
  }
}

private func scalar<T>(_ type: T.Type, name: String, index: Int?) -> T? {
  let h = Sample.h(name)
  let i = index ?? 0
  let value: Any? =
    switch type {
    case is String.Type: index.map { "\(name)-\($0)" } ?? "\(name)-ü✓"
    case is Int32.Type: Int32(-h + i)
    case is Int64.Type: Int64(-h) * 1_000_003 + Int64(i)
    case is UInt32.Type: UInt32(h + i)
    case is UInt64.Type: UInt64(h) * 4_000_000_007 + UInt64(i)
    case is Double.Type: Double(h) + 0.25 + Double(i)
    case is Float.Type: Float(h) + 0.5 + Float(i)
    case is Bool.Type: true
    case is UInt8.Type: UInt8(i == 0 ? h % 256 : 0)
    default: nil
    }
  return value as? T
}

private struct SampleKeyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
  var codingPath: [any CodingKey]
  var allKeys: [Key] { [] }
  func contains(_: Key) -> Bool { true }
  func decodeNil(forKey _: Key) throws -> Bool { false }
  func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
    if let v = scalar(type, name: key.stringValue, index: nil) { return v }
    return try T(from: SampleDecoder(codingPath: codingPath + [key]))
  }
  func nestedContainer<N: CodingKey>(keyedBy _: N.Type, forKey key: Key) throws -> KeyedDecodingContainer<N> {
    KeyedDecodingContainer(SampleKeyed<N>(codingPath: codingPath + [key]))
  }
  func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
    SampleUnkeyed(codingPath: codingPath + [key])
  }
  func superDecoder() throws -> any Decoder { SampleDecoder(codingPath: codingPath) }
  func superDecoder(forKey key: Key) throws -> any Decoder { SampleDecoder(codingPath: codingPath + [key]) }
}

private struct SampleUnkeyed: UnkeyedDecodingContainer {
  var codingPath: [any CodingKey]
  var count: Int? { 2 }
  var currentIndex = 0
  var isAtEnd: Bool { currentIndex >= 2 }
  init(codingPath: [any CodingKey]) { self.codingPath = codingPath }
  var name: String { codingPath.last?.stringValue ?? "" }
  mutating func decodeNil() throws -> Bool { false }
  mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
    defer { currentIndex += 1 }
    if let v = scalar(type, name: name, index: currentIndex) { return v }
    return try T(
      from: SampleDecoder(codingPath: codingPath + [SampleKey(intValue: currentIndex)], index: currentIndex))
  }
  mutating func nestedContainer<N: CodingKey>(keyedBy _: N.Type) throws -> KeyedDecodingContainer<N> {
    defer { currentIndex += 1 }
    return KeyedDecodingContainer(SampleKeyed<N>(codingPath: codingPath))
  }
  mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
    defer { currentIndex += 1 }
    return SampleUnkeyed(codingPath: codingPath)
  }
  mutating func superDecoder() throws -> any Decoder { SampleDecoder(codingPath: codingPath) }
}

private struct SampleEnum: SingleValueDecodingContainer {
  var codingPath: [any CodingKey]
  var index: Int?
  func decodeNil() -> Bool { false }
  func decode<T: Decodable>(_ type: T.Type) throws -> T {
    if type == Int32.self { return Int32((index ?? 0) + 1) as! T }
    let name = codingPath.last(where: { $0.intValue == nil })?.stringValue ?? ""
    if let v = scalar(type, name: name, index: index) { return v }
    throw DecodingError.typeMismatch(type, .init(codingPath: codingPath, debugDescription: "no sample rule"))
  }
}
