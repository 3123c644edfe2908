public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// Memory and swap from /proc/meminfo.
public struct MemoryCollector {
  let files: SystemFiles

  public init(files: SystemFiles) { self.files = files }

  public func collect() -> MemoryStats? {
    // Parsed as bytes in one read: this runs every cycle.
    var total: UInt64 = 0
    var free: UInt64 = 0
    var available: UInt64?
    var buffers: UInt64 = 0
    var cached: UInt64 = 0
    var swapTotal: UInt64 = 0
    var swapFree: UInt64 = 0
    let ok = files.withSmallFile("/proc/meminfo", capacity: 16_384) { b -> Bool in
      Self.scan(b) { key, kb in
        switch key {
        case "MemTotal": total = kb * 1024
        case "MemFree": free = kb * 1024
        case "MemAvailable": available = kb * 1024
        case "Buffers": buffers = kb * 1024
        case "Cached": cached = kb * 1024
        case "SwapTotal": swapTotal = kb * 1024
        case "SwapFree": swapFree = kb * 1024
        default: break
        }
      }
      return true
    }
    guard ok == true, total > 0 else { return nil }
    // Kernels before 3.14 have no MemAvailable: estimate it.
    let avail = available ?? (free + buffers + cached)
    return MemoryStats(
      totalBytes: total, availableBytes: avail, usedBytes: total > avail ? total - avail : 0, freeBytes: free,
      cachedBytes: cached, buffersBytes: buffers, swapTotalBytes: swapTotal,
      swapUsedBytes: swapTotal > swapFree ? swapTotal - swapFree : 0)
  }

  /// "Key:   123 kB" lines: calls `body` with the key (only for the few
  /// keys that can matter: short, letters) and the number.
  static func scan(_ b: UnsafeBufferPointer<UInt8>, _ body: (StaticKey, UInt64) -> Void) {
    var i = 0
    while i < b.count {
      let start = i
      while i < b.count, b[i] != 0x3A, b[i] != 0x0A { i += 1 }
      guard i < b.count, b[i] == 0x3A else {
        i += 1
        continue
      }
      let key = StaticKey(UnsafeBufferPointer(rebasing: b[start..<i]))
      var value: UInt64 = 0
      while i < b.count, b[i] != 0x0A {
        if b[i] >= 0x30, b[i] <= 0x39 { value = value &* 10 &+ UInt64(b[i] - 0x30) }
        i += 1
      }
      body(key, value)
      i += 1
    }
  }
}

/// The bytes of a /proc key, matched against string literals without
/// building a String.
struct StaticKey: ExpressibleByStringLiteral {
  let bytes: UnsafeBufferPointer<UInt8>?
  let literal: StaticString?

  init(_ bytes: UnsafeBufferPointer<UInt8>) {
    self.bytes = bytes
    literal = nil
  }

  init(stringLiteral value: StaticString) {
    bytes = nil
    literal = value
  }

  static func ~= (pattern: StaticKey, value: StaticKey) -> Bool {
    guard let literal = pattern.literal, let bytes = value.bytes, literal.utf8CodeUnitCount == bytes.count,
      let base = bytes.baseAddress
    else { return false }
    return memcmp(literal.utf8Start, base, bytes.count) == 0
  }
}
