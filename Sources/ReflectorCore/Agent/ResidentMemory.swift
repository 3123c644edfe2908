#if canImport(Glibc)
  import Glibc
#endif

/// Gives back the pages of code and read-only data that only start-up
/// touched. The agent is one statically linked executable (the Swift
/// runtime and Foundation inside) plus libnats and OpenSSL: start-up
/// (relocations, metadata registration, configuration parsing) faults in
/// far more of them than a collection cycle uses. After the first cycles
/// the agent drops its page-table entries for the mappings that hold only
/// the file's own contents: read-only file mappings with no anonymous
/// (copied-on-write) page — code and constants, nothing relocated. Their
/// pages stay in the page cache and map again on first use. A read-only
/// mapping that holds relocated pages (RELRO) is only asked to page out,
/// which leaves anonymous pages alone. Writable mappings are not touched.
/// Every mapping touched is also marked for random access (no read-ahead).
///
/// `MADV_PAGEOUT` alone gave back only part of the code on Linux 6.x: it
/// stops at a large page-cache folio it cannot split, and the rest stays
/// mapped.
public enum ResidentMemory {
  static let adviseRandom: Int32 = 1  // MADV_RANDOM
  static let adviseDontNeed: Int32 = 4  // MADV_DONTNEED
  static let advisePageOut: Int32 = 21  // MADV_PAGEOUT (Linux 5.4)

  enum Advice: Equatable, Sendable {
    /// Drop the mapping's pages: they are the file's and map again on use.
    case drop
    /// Ask the kernel to page out what it can (file pages; anonymous ones
    /// stay, there being no swap to speak of).
    case pageOut
  }

  struct Region: Equatable, Sendable {
    var start: UInt
    var length: Int
    var advice: Advice
  }

  /// What to advise, from /proc/self/smaps: file-backed mappings that are
  /// readable and not writable; dropped when they hold no anonymous page.
  static func plan(smaps: String) -> [Region] {
    var out: [Region] = []
    var current: (start: UInt, length: Int)?
    var anonymous = -1
    func finish() {
      if let c = current, anonymous >= 0 {
        out.append(Region(start: c.start, length: c.length, advice: anonymous == 0 ? .drop : .pageOut))
      }
      current = nil
      anonymous = -1
    }
    for line in smaps.split(separator: "\n") {
      guard let first = line.utf8.first else { continue }
      if (first >= 0x30 && first <= 0x39) || (first >= 0x61 && first <= 0x66) {  // "start-end perms ..."
        finish()
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        // address perms offset dev inode path
        guard fields.count >= 6, fields[5].hasPrefix("/") else { continue }
        let perms = fields[1]
        guard perms.hasPrefix("r"), !perms.contains("w") else { continue }
        let range = fields[0].split(separator: "-")
        guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16),
          end > start
        else { continue }
        current = (start, Int(end - start))
      } else if current != nil, line.hasPrefix("Anonymous:") {
        let value = line.dropFirst("Anonymous:".count).split(separator: " ").first
        anonymous = value.flatMap { Int($0) } ?? -1
      }
    }
    finish()
    return out
  }

  /// Returns how many mappings were advised (0 where unsupported).
  @discardableResult
  public static func trimStartupPages(smaps: String = "/proc/self/smaps") -> Int {
    guard let text = SystemFiles(root: "/").string(smaps) else { return 0 }
    var advised = 0
    for region in plan(smaps: text) {
      guard let address = UnsafeMutableRawPointer(bitPattern: region.start) else { continue }
      _ = madvise(address, region.length, adviseRandom)
      let advice = region.advice == .drop ? adviseDontNeed : advisePageOut
      if madvise(address, region.length, advice) == 0 { advised += 1 }
    }
    return advised
  }
}
