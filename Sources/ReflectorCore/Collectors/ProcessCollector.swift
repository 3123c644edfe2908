public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// Top-k processes by CPU (over the last interval) and by resident memory.
/// Every process's /proc/PID/stat is scanned as bytes; names and users are
/// resolved only for the processes reported.
public final class ProcessCollector {
  private let files: SystemFiles
  private let topK: Int
  private let ticksPerSecond: Double
  private let pageSize: UInt64
  private var previous: [UInt32: UInt64] = [:]
  private var previousTime: ContinuousClock.Instant?
  private var users: [UInt32: String] = [:]

  private struct Row {
    var pid: UInt32
    var ticks: UInt64
    var rssPages: UInt64
    var cpu: Double
  }

  public init(files: SystemFiles, topK: Int) {
    self.files = files
    self.topK = topK
    ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))
  }

  public func collect(now: ContinuousClock.Instant = .now) -> (byCPU: [ProcessSample], byMemory: [ProcessSample]) {
    let seconds =
      previousTime.map { t -> Double in
        let d = now - t
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
      } ?? 0
    var rows: [Row] = []
    rows.reserveCapacity(previous.count + 32)
    var ticks: [UInt32: UInt64] = [:]
    ticks.reserveCapacity(previous.count + 32)
    scan { row in
      var r = row
      ticks[r.pid] = r.ticks
      if seconds > 0, let before = previous[r.pid], r.ticks >= before {
        r.cpu = Double(r.ticks - before) / ticksPerSecond / seconds * 100
      }
      rows.append(r)
    }
    previous = ticks
    previousTime = now
    let byCPU = rows.sorted { ($0.cpu, $0.rssPages) > ($1.cpu, $1.rssPages) }.prefix(topK).compactMap(sample)
    let byMemory = rows.sorted { $0.rssPages > $1.rssPages }.prefix(topK).compactMap(sample)
    return (byCPU, byMemory)
  }

  /// Names and users only for the processes reported; one that exited
  /// since the scan is left out.
  private func sample(_ r: Row) -> ProcessSample? {
    let name = files.withSmallFile("/proc/\(r.pid)/stat") { b -> String? in
      guard let open = b.firstIndex(of: 0x28), let close = b.lastIndex(of: 0x29), open < close else { return nil }
      return String(decoding: UnsafeBufferPointer(rebasing: b[(open + 1)..<close]), as: UTF8.self)
    }
    guard let name, let user = user(of: r.pid) else { return nil }
    return ProcessSample(pid: r.pid, name: name, user: user, cpuPercent: r.cpu, rssBytes: r.rssPages * pageSize)
  }

  /// "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
  /// fields are counted from the last ')'. utime is field 14, stime 15,
  /// rss 24.
  private static func parse(_ b: UnsafeBufferPointer<UInt8>, pid: UInt32) -> Row? {
    guard let open = b.firstIndex(of: 0x28), let close = b.lastIndex(of: 0x29), open < close else { return nil }
    var field = 2  // the ')' ends field 2
    var value: UInt64 = 0
    var utime: UInt64 = 0
    var stime: UInt64 = 0
    var rss: UInt64 = 0
    var i = close + 1
    while i < b.count {
      let c = b[i]
      if c == 0x20 {
        switch field {
        case 14: utime = value
        case 15: stime = value
        case 24: rss = value
        default: break
        }
        if field >= 24 { break }
        field += 1
        value = 0
      } else if c >= 0x30 && c <= 0x39 {
        value = value &* 10 &+ UInt64(c - 0x30)
      }
      i += 1
    }
    guard field >= 24 else { return nil }
    return Row(pid: pid, ticks: utime + stime, rssPages: rss, cpu: 0)
  }

  /// Every process's stat, in one pass over /proc: "PID/stat" is opened
  /// relative to the /proc descriptor from a stack buffer, so no path
  /// string is built and only two components are looked up per process.
  private func scan(_ body: (Row) -> Void) {
    guard let dir = opendir(files.path("/proc")) else { return }
    defer { closedir(dir) }
    let procFD = dirfd(dir)
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { buffer in
      withUnsafeTemporaryAllocation(of: CChar.self, capacity: 32) { path in
        while let entry = readdir(dir) {
          var pid: UInt32 = 0
          var length = 0
          let numeric = withUnsafeBytes(of: entry.pointee.d_name) { raw -> Bool in
            for c in raw {
              if c == 0 { break }
              guard c >= 0x30 && c <= 0x39, length < 10 else { return false }
              pid = pid &* 10 &+ UInt32(c - 0x30)
              path[length] = CChar(bitPattern: c)
              length += 1
            }
            return length > 0
          }
          guard numeric else { continue }
          for (i, c) in "/stat".utf8.enumerated() { path[length + i] = CChar(bitPattern: c) }
          path[length + 5] = 0
          let fd = openat(procFD, path.baseAddress!, O_RDONLY | O_CLOEXEC)
          guard fd >= 0 else { continue }  // exited since readdir
          var n = read(fd, buffer.baseAddress, buffer.count)
          while n < 0 && errno == EINTR { n = read(fd, buffer.baseAddress, buffer.count) }
          close(fd)
          guard n > 0, let row = Self.parse(UnsafeBufferPointer(rebasing: buffer[0..<n]), pid: pid) else { continue }
          body(row)
        }
      }
    }
  }

  private func user(of pid: UInt32) -> String? {
    var st = stat()
    guard stat(files.path("/proc/\(pid)"), &st) == 0 else { return nil }
    if let name = users[st.st_uid] { return name }
    var pwd = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var buffer = [CChar](repeating: 0, count: 1024)
    let name =
      getpwuid_r(st.st_uid, &pwd, &buffer, buffer.count, &result) == 0 && result != nil
      ? String(cString: pwd.pw_name) : String(st.st_uid)
    users[st.st_uid] = name
    return name
  }
}
