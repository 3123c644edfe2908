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
  static func cUnpack(
    _ allocator: UnsafeMutablePointer<ProtobufCAllocator>, _ n: Int, _ data: UnsafePointer<UInt8>?
  ) -> UnsafeMutablePointer<CStruct>?
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
    // for any invalid input and never reads past `count`. It allocates from
    // the arena, so nothing is freed one by one (no `free_unpacked`).
    let arena = CArena()
    let unpacked = arena.withAllocator { allocator in
      bytes.withUnsafeBufferPointer { Self.cUnpack(allocator, $0.count, $0.baseAddress) }
    }
    guard let unpacked else {
      throw WireError(code: .malformed, messageType: Self.fullName, size: bytes.count, limit: limit)
    }
    return withExtendedLifetime(arena) { Self(c: unpacked.pointee) }
  }
}

/// A bump allocator owning every C allocation made while building a message
/// for packing, or by protobuf-c while unpacking one; all of it is freed at
/// once when the arena goes away.
final class CArena {
  private static let chunkSize = 16 << 10
  private var chunks: [UnsafeMutableRawPointer] = []
  private var next: UnsafeMutableRawPointer?
  private var remaining = 0

  deinit {
    for chunk in chunks { free(chunk) }
  }

  /// `size` bytes aligned to 16.
  func allocateBytes(_ size: Int) -> UnsafeMutableRawPointer {
    #if MIRROR_FUZZ_ARENA
      // Fuzz builds (bench/fuzz.sh): a block of its own per allocation, so
      // AddressSanitizer catches an access past the end of any one of them.
      let block = malloc(max(size, 1))!
      chunks.append(block)
      return block
    #else
      let rounded = (max(size, 1) + 15) & ~15
      if rounded > remaining {
        if rounded > Self.chunkSize / 4 {
          let block = malloc(rounded)!
          chunks.append(block)
          return block
        }
        let chunk = malloc(Self.chunkSize)!
        chunks.append(chunk)
        next = chunk
        remaining = Self.chunkSize
      }
      let p = next!
      next = p + rounded
      remaining -= rounded
      return p
    #endif
  }

  func allocate<T>(_: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
    allocateBytes(MemoryLayout<T>.stride * count).bindMemory(to: T.self, capacity: count)
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

  /// This arena as protobuf-c's allocator; its free is a no-op.
  func withAllocator<R>(_ body: (UnsafeMutablePointer<ProtobufCAllocator>) -> R) -> R {
    var allocator = ProtobufCAllocator(
      alloc: { data, size in
        Unmanaged<CArena>.fromOpaque(data!).takeUnretainedValue().allocateBytes(size)
      },
      free: { _, _ in },
      allocator_data: Unmanaged.passUnretained(self).toOpaque())
    return withExtendedLifetime(self) { body(&allocator) }
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
