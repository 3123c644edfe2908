#if canImport(Glibc)
  import Glibc
#endif

/// Gives back the pages of code and read-only data that only start-up
/// touched. The agent is one statically linked executable (the Swift
/// runtime and Foundation inside) plus libnats and OpenSSL: start-up
/// (relocations, metadata registration, configuration parsing) faults in
/// far more of them than a collection cycle uses, and the kernel's
/// fault-around maps 64 KiB around every fault. After the first cycles the
/// agent asks the kernel to read these mappings at random (no fault-around)
/// and to page them out; what a cycle needs comes back on first use. Only
/// clean, file-backed, non-writable mappings are touched: nothing is lost,
/// the pages stay in the page cache.
public enum ResidentMemory {
  static let adviseRandom: Int32 = 1  // MADV_RANDOM
  static let advisePageOut: Int32 = 21  // MADV_PAGEOUT (Linux 5.4)

  /// Returns how many mappings were advised (0 where unsupported).
  @discardableResult
  public static func trimStartupPages(maps: String = "/proc/self/maps") -> Int {
    guard let text = SystemFiles(root: "/").string(maps) else { return 0 }
    var advised = 0
    for line in text.split(separator: "\n") {
      let fields = line.split(separator: " ", omittingEmptySubsequences: true)
      // address perms offset dev inode path
      guard fields.count >= 6, fields[5].hasPrefix("/") else { continue }
      let perms = fields[1]
      guard perms.hasPrefix("r"), !perms.contains("w") else { continue }
      let range = fields[0].split(separator: "-")
      guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16), end > start
      else { continue }
      guard let address = UnsafeMutableRawPointer(bitPattern: start) else { continue }
      let length = Int(end - start)
      _ = madvise(address, length, adviseRandom)
      if madvise(address, length, advisePageOut) == 0 { advised += 1 }
    }
    return advised
  }
}
