internal import CMirrorWire

#if canImport(Glibc)
  internal import Glibc
#elseif canImport(Darwin)
  internal import Darwin
#endif

/// The bridge between a Swift message and its protobuf-c struct, implemented
/// by the generated code.
protocol CBridged {
  associatedtype CStruct
  static func cPackedSize(_ p: UnsafePointer<CStruct>) -> Int
  static func cPack(_ p: UnsafePointer<CStruct>, _ out: UnsafeMutablePointer<UInt8>) -> Int
  static func cUnpack(_ n: Int, _ data: UnsafePointer<UInt8>?) -> UnsafeMutablePointer<CStruct>?
  static func cFree(_ p: UnsafeMutablePointer<CStruct>)
  init(c: CStruct)
  func cValue(_ arena: CArena) -> CStruct
}

extension CBridged where Self: WireMessage {
  func cEncode() -> [UInt8] {
    let arena = CArena()
    var c = cValue(arena)
    return withExtendedLifetime(arena) {
      withUnsafePointer(to: &c) { p in
        let size = Self.cPackedSize(p)
        guard size > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
          // The corresponding C function is `<message>__pack`.
          count = Self.cPack(p, buffer.baseAddress!)
        }
      }
    }
  }

  static func cDecode(_ bytes: [UInt8], limit: Int) throws(WireError) -> Self {
    guard bytes.count <= limit else {
      throw WireError(code: .tooLarge, messageType: Self.fullName, size: bytes.count, limit: limit)
    }
    // The corresponding C function is `<message>__unpack`; it returns NULL
    // for any invalid input and never reads past `count`.
    let unpacked = bytes.withUnsafeBufferPointer { Self.cUnpack($0.count, $0.baseAddress) }
    guard let unpacked else {
      throw WireError(code: .malformed, messageType: Self.fullName, size: bytes.count, limit: limit)
    }
    defer { Self.cFree(unpacked) }
    return Self(c: unpacked.pointee)
  }
}

/// Owns every C allocation made while building a message for packing, and
/// frees them all at once.
final class CArena {
  private var blocks: [UnsafeMutableRawPointer] = []

  deinit {
    for block in blocks { free(block) }
  }

  func allocate<T>(_: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
    let raw = malloc(max(1, MemoryLayout<T>.stride * count))!
    blocks.append(raw)
    return raw.bindMemory(to: T.self, capacity: count)
  }

  func store<T>(_ value: T) -> UnsafeMutablePointer<T> {
    let p = allocate(T.self)
    p.initialize(to: value)
    return p
  }

  func string(_ s: String) -> UnsafeMutablePointer<CChar> {
    var s = s
    return s.withUTF8 { utf8 in
      let p = allocate(CChar.self, count: utf8.count + 1)
      if let base = utf8.baseAddress { memcpy(p, base, utf8.count) }
      p[utf8.count] = 0
      return p
    }
  }

  func bytes(_ b: [UInt8]) -> ProtobufCBinaryData {
    guard !b.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
    let p = allocate(UInt8.self, count: b.count)
    b.withUnsafeBufferPointer { p.initialize(from: $0.baseAddress!, count: b.count) }
    return ProtobufCBinaryData(len: b.count, data: p)
  }

  func array<S, T>(_ values: [S], _ transform: (S) -> T) -> UnsafeMutablePointer<T>? {
    guard !values.isEmpty else { return nil }
    let p = allocate(T.self, count: values.count)
    for (i, v) in values.enumerated() { (p + i).initialize(to: transform(v)) }
    return p
  }
}

@inline(__always)
func wireString(_ p: UnsafeMutablePointer<CChar>?) -> String {
  guard let p else { return "" }
  return String(decoding: UnsafeRawBufferPointer(start: p, count: strlen(p)), as: UTF8.self)
}

@inline(__always)
func wireBytes(_ b: ProtobufCBinaryData) -> [UInt8] {
  guard b.len > 0, let data = b.data else { return [] }
  return Array(UnsafeBufferPointer(start: data, count: b.len))
}

@inline(__always)
func wireArray<T, S>(_ p: UnsafeMutablePointer<T>?, _ n: Int, _ transform: (T) -> S) -> [S] {
  guard let p, n > 0 else { return [] }
  return UnsafeBufferPointer(start: p, count: n).map(transform)
}

@inline(__always)
func wireEnumRaw<E: RawRepresentable>(_ e: E) -> Int32 where E.RawValue: FixedWidthInteger {
  Int32(truncatingIfNeeded: e.rawValue)
}

@inline(__always)
func wireCEnum<E: RawRepresentable>(_ raw: Int32) -> E where E.RawValue: FixedWidthInteger {
  E(rawValue: E.RawValue(truncatingIfNeeded: raw))!
}
