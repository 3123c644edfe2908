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
    var chunk = [UInt8](repeating: 0, count: 16384)
    while true {
      let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if n < 0 { return errno == EINTR ? out : nil }
      if n == 0 { break }
      out.append(contentsOf: chunk[0..<n])
    }
    return out
  }

  public func string(_ p: String) -> String? {
    bytes(p).map { String(decoding: $0, as: UTF8.self) }
  }

  /// The first line, trimmed.
  public func line(_ p: String) -> String? {
    guard let s = string(p) else { return nil }
    return s.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map {
      $0.trimmingCharacters(in: .whitespaces)
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
