import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Reads /proc, /sys and /etc files under a root ("/" on a live host, a
/// folder of captured files in tests).
///
/// The kernel's own files (on the procfs or sysfs mount, checked with
/// fstat when first opened) stay open between cycles and are read again from offset 0
/// with pread: the kernel regenerates their contents for every read from
/// the start, and the agent saves the path walk, open and close of each of
/// the dozens it reads per cycle. Ordinary files (captured test files, /etc)
/// are opened for every read, so a replaced file is always seen.
public struct SystemFiles: Sendable {
  public let root: String
  private let kept = KeptFiles()

  public init(root: String = "/") {
    self.root = root.hasSuffix("/") ? String(root.dropLast()) : root
  }

  public func path(_ p: String) -> String { root + p }

  /// One read from offset 0 into `buffer` (the kernel regenerates a
  /// procfs/sysfs file for a read from the start), retried on EINTR: the
  /// byte count, or -1.
  static func readFromStart(_ fd: Int32, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
    var n = pread(fd, buffer.baseAddress, buffer.count, 0)
    while n < 0 && errno == EINTR { n = pread(fd, buffer.baseAddress, buffer.count, 0) }
    return n
  }

  /// Reads through `fd` from offset 0 into `out` (until EOF); false on an error.
  static func readAll(_ fd: Int32, into out: inout [UInt8]) -> Bool {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 8192) { chunk -> Bool in
      var offset = 0
      while true {
        let n = pread(fd, chunk.baseAddress, chunk.count, off_t(offset))
        if n < 0 {
          if errno == EINTR { continue }
          return false
        }
        if n == 0 { return true }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[0..<n]))
        offset += n
      }
    }
  }

  /// The file's bytes, nil when it cannot be read (absent, EINVAL from a
  /// NIC without a speed, permission).
  public func bytes(_ p: String) -> [UInt8]? {
    var out: [UInt8] = []
    if let fd = kept.descriptor(p) {
      if Self.readAll(fd, into: &out) { return out }
      kept.forget(p, fd)  // the device went away: open it afresh below
      out.removeAll()
    }
    let fd = open(path(p), O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    let ok = Self.readAll(fd, into: &out)
    if !ok || !kept.keep(p, fd) { close(fd) }
    return ok ? out : nil
  }

  /// Reads a small file (at most `capacity` bytes: sysfs values) with one
  /// read into a stack buffer and hands the bytes to `body`; nil when it
  /// cannot be read.
  public func withSmallFile<R>(_ p: String, capacity: Int = 1024, _ body: (UnsafeBufferPointer<UInt8>) -> R?) -> R? {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { buffer -> R? in
      if let fd = kept.descriptor(p) {
        let n = Self.readFromStart(fd, into: buffer)
        if n >= 0 { return body(UnsafeBufferPointer(rebasing: buffer[0..<n])) }
        kept.forget(p, fd)
      }
      let fd = open(path(p), O_RDONLY | O_CLOEXEC)
      guard fd >= 0 else { return nil }
      let n = Self.readFromStart(fd, into: buffer)
      if n < 0 || !kept.keep(p, fd) { close(fd) }
      guard n >= 0 else { return nil }
      return body(UnsafeBufferPointer(rebasing: buffer[0..<n]))
    }
  }

  /// How many descriptors are kept open (for tests and the bench).
  public var keptCount: Int { kept.count }

  public func string(_ p: String) -> String? {
    bytes(p).map { String(decoding: $0, as: UTF8.self) }
  }

  /// The first line without the spaces and tabs around it (files of one
  /// value: one read).
  public func line(_ p: String) -> String? {
    withSmallFile(p, capacity: 4096) { b -> String? in
      String(decoding: UnsafeBufferPointer(rebasing: b[Self.firstLine(b)]), as: UTF8.self)
    }
  }

  /// The range of the first line, spaces and tabs trimmed.
  static func firstLine(_ b: UnsafeBufferPointer<UInt8>) -> Range<Int> {
    var end = b.firstIndex(of: 0x0A) ?? b.endIndex
    var start = b.startIndex
    while start < end, b[start] == 0x20 || b[start] == 0x09 { start += 1 }
    while end > start, b[end - 1] == 0x20 || b[end - 1] == 0x09 || b[end - 1] == 0x0D { end -= 1 }
    return start..<end
  }

  /// A file holding one decimal integer (sysfs values), parsed from its bytes.
  public func int(_ p: String) -> Int64? {
    withSmallFile(p, capacity: 64) { b -> Int64? in
      let r = Self.firstLine(b)
      guard !r.isEmpty else { return nil }
      var i = r.lowerBound
      let negative = b[i] == 0x2D
      if negative || b[i] == 0x2B { i += 1 }
      guard i < r.upperBound else { return nil }
      var value: Int64 = 0
      while i < r.upperBound {
        let c = b[i]
        guard c >= 0x30 && c <= 0x39 else { return nil }
        let (m, o1) = value.multipliedReportingOverflow(by: 10)
        let (v, o2) = m.addingReportingOverflow(Int64(c - 0x30))
        guard !o1, !o2 else { return nil }
        value = v
        i += 1
      }
      return negative ? -value : value
    }
  }

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

/// The descriptors `SystemFiles` keeps open. At most `limit`; every
/// `sweepEvery` reads, those not read since the previous sweep are closed
/// (an interface or a disk that went away does not hold its files open).
final class KeptFiles: Sendable {
  static let limit = 512
  static let sweepEvery = 4096
  private struct State {
    var open: [String: (fd: Int32, used: Bool)] = [:]
    var reads = 0
  }
  private let state = Mutex(State())

  var count: Int { state.withLock { $0.open.count } }

  func descriptor(_ path: String) -> Int32? {
    state.withLock { s -> Int32? in
      s.reads += 1
      if s.reads >= Self.sweepEvery {
        s.reads = 0
        for (p, e) in s.open {
          if e.used { s.open[p]!.used = false } else { close(e.fd); s.open[p] = nil }
        }
      }
      guard let e = s.open[path] else { return nil }
      if !e.used { s.open[path]!.used = true }
      return e.fd
    }
  }

  /// Keeps `fd` open for `path` if it is a kernel file (procfs or sysfs)
  /// and there is room; false when the caller should close it.
  func keep(_ path: String, _ fd: Int32) -> Bool {
    guard path.hasPrefix("/proc/") || path.hasPrefix("/sys/") else { return false }
    // Not another process's files: processes come and go (the process
    // collector keeps its own).
    if path.utf8.dropFirst(6).first.map({ $0 >= 0x30 && $0 <= 0x39 }) == true { return false }
    guard Self.isKernelFile(fd) else { return false }
    return state.withLock { s -> Bool in
      guard s.open[path] == nil, s.open.count < Self.limit else { return false }
      s.open[path] = (fd, true)
      return true
    }
  }

  /// A kept descriptor that failed: closed and forgotten.
  func forget(_ path: String, _ fd: Int32) {
    state.withLock { s in
      if s.open[path]?.fd == fd { s.open[path] = nil }
    }
    close(fd)
  }

  /// Whether `fd` is open on the live procfs or sysfs mount.
  static func isKernelFile(_ fd: Int32) -> Bool {
    var st = stat()
    return fstat(fd, &st) == 0 && kernelDevices.contains(st.st_dev)
  }

  /// Whether `path` is on the live procfs or sysfs mount.
  static func isKernelFile(path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && kernelDevices.contains(st.st_dev)
  }

  /// The devices of the live /proc and /sys mounts: a file on one of them
  /// is the kernel's (a captured copy in a test folder is not).
  static let kernelDevices: Set<dev_t> = {
    var out = Set<dev_t>()
    for mount in ["/proc", "/sys"] {
      var st = stat()
      if stat(mount, &st) == 0 { out.insert(st.st_dev) }
    }
    return out
  }()

  deinit {
    state.withLock { s in for e in s.open.values { close(e.fd) } }
  }
}
