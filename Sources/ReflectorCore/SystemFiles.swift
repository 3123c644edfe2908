import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Reads /proc, /sys and /etc files under a root ("/" on a live host, a
/// folder of captured files in tests). Reads go straight through open/read:
/// these files are small and read every cycle.
public struct SystemFiles: Sendable {
  public let root: String

  public init(root: String = "/") {
    self.root = root.hasSuffix("/") ? String(root.dropLast()) : root
  }

  public func path(_ p: String) -> String { root + p }

  /// The file's bytes, nil when it cannot be read (absent, EINVAL from a
  /// NIC without a speed, permission).
  public func bytes(_ p: String) -> [UInt8]? {
    let fd = open(path(p), O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    // A stack buffer: these reads happen hundreds of times per cycle.
    let ok = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 8192) { chunk -> Bool in
      while true {
        let n = read(fd, chunk.baseAddress, chunk.count)
        if n < 0 {
          if errno == EINTR { continue }
          return false
        }
        if n == 0 { return true }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[0..<n]))
      }
    }
    return ok ? out : nil
  }

  /// Reads a small file (at most `capacity` bytes: /proc/PID/stat, sysfs
  /// values) with one read(2) into a stack buffer and hands the bytes to
  /// `body`; nil when it cannot be read.
  public func withSmallFile<R>(_ p: String, capacity: Int = 1024, _ body: (UnsafeBufferPointer<UInt8>) -> R?) -> R? {
    let fd = open(path(p), O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { buffer -> R? in
      var n = read(fd, buffer.baseAddress, buffer.count)
      while n < 0 && errno == EINTR { n = read(fd, buffer.baseAddress, buffer.count) }
      guard n >= 0 else { return nil }
      return body(UnsafeBufferPointer(rebasing: buffer[0..<n]))
    }
  }

  public func string(_ p: String) -> String? {
    bytes(p).map { String(decoding: $0, as: UTF8.self) }
  }

  /// The first line, trimmed (files of one value: one read).
  public func line(_ p: String) -> String? {
    withSmallFile(p, capacity: 4096) { b -> String? in
      let end = b.firstIndex(of: 0x0A) ?? b.endIndex
      return String(decoding: UnsafeBufferPointer(rebasing: b[..<end]), as: UTF8.self).trimmingCharacters(
        in: .whitespaces)
    }
  }

  public func int(_ p: String) -> Int64? { line(p).flatMap { Int64($0) } }
  public func uint(_ p: String) -> UInt64? { line(p).flatMap { UInt64($0) } }

  /// Entry names of a directory, sorted; empty when absent.
  public func list(_ p: String) -> [String] {
    guard let dir = opendir(path(p)) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
  }

  public func exists(_ p: String) -> Bool { access(path(p), F_OK) == 0 }
}

extension Substring {
  var u64: UInt64 { UInt64(self) ?? 0 }
}
