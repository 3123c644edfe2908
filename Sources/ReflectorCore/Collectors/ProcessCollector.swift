public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// Top-k processes by CPU (over the last interval) and by resident memory.
/// Every process's /proc/PID/stat is scanned as bytes; names and users are
/// resolved only for the processes reported.
///
/// On a live /proc each process's stat file stays open from one cycle to
/// the next and is read again with pread from offset 0 (the kernel
/// regenerates it): no path walk, open or close per process per cycle. A
/// descriptor outlives its process harmlessly: reads then fail (ESRCH), it
/// is closed, and a new process that got the same PID is opened afresh.
public final class ProcessCollector {
  private let files: SystemFiles
  private let topK: Int
  private let ticksPerSecond: Double
  private let pageSize: UInt64
  private var previous: [UInt32: UInt64] = [:]
  private var previousTime: ContinuousClock.Instant?
  private var users: [UInt32: String] = [:]
  /// Open /proc/PID/stat descriptors (live /proc only), at most `maxKept`.
  private var kept: [UInt32: Int32] = [:]
  private let maxKept: Int

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
    // Only the kernel's /proc regenerates a file read again from offset 0;
    // captured test files are opened for every read. Room is left under the
    // descriptor limit for everything else the agent opens.
    let live = KeptFiles.isKernelFile(path: files.path("/proc"))
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    if live, limit.rlim_cur < 16384, limit.rlim_max > limit.rlim_cur {
      // Systemd's soft limit is 1,024 (the hard one far higher): raising it
      // is allowed and leaves room for a busy host's processes.
      let before = limit.rlim_cur
      limit.rlim_cur = min(limit.rlim_max, 16384)
      if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 { limit.rlim_cur = before }
    }
    maxKept = live ? max(0, min(8192, Int(clamping: limit.rlim_cur) - 512)) : 0
  }

  deinit {
    for fd in kept.values { close(fd) }
  }

  /// How many process descriptors are kept open (for tests).
  public var keptCount: Int { kept.count }

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
    let fd = kept[r.pid] ?? open(files.path("/proc/\(r.pid)/stat"), O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { if kept[r.pid] != fd { close(fd) } }
    let name = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { buffer -> String? in
      let n = SystemFiles.readFromStart(fd, into: buffer)
      guard n > 0 else { return nil }
      let b = UnsafeBufferPointer(rebasing: buffer[0..<n])
      guard let open = b.firstIndex(of: 0x28), let close = b.lastIndex(of: 0x29), open < close else { return nil }
      return String(decoding: UnsafeBufferPointer(rebasing: b[(open + 1)..<close]), as: UTF8.self)
    }
    guard let name, let user = user(of: fd) else { return nil }
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

  /// Every process's stat, in one pass over /proc: a kept descriptor is
  /// read again; otherwise "PID/stat" is opened relative to the /proc
  /// descriptor from a stack buffer, so no path string is built and only
  /// two components are looked up. Descriptors of processes gone are closed.
  private func scan(_ body: (Row) -> Void) {
    guard let dir = opendir(files.path("/proc")) else { return }
    defer { closedir(dir) }
    let procFD = dirfd(dir)
    var stillKept: [UInt32: Int32] = [:]
    stillKept.reserveCapacity(kept.count + 16)
    defer {
      for (pid, fd) in kept where stillKept[pid] != fd { close(fd) }
      kept = stillKept
    }
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
          var n = -1
          var fd = kept[pid] ?? -1
          if fd >= 0 {
            n = SystemFiles.readFromStart(fd, into: buffer)
            if n <= 0 {  // that process is gone; the PID may be a new one's
              close(fd)
              kept[pid] = nil
              fd = -1
            }
          }
          if fd < 0 {
            for (i, c) in "/stat".utf8.enumerated() { path[length + i] = CChar(bitPattern: c) }
            path[length + 5] = 0
            fd = openat(procFD, path.baseAddress!, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }  // exited since readdir
            n = SystemFiles.readFromStart(fd, into: buffer)
          }
          if n > 0, stillKept.count < maxKept {
            stillKept[pid] = fd
          } else {
            close(fd)
            kept[pid] = nil
          }
          guard n > 0, let row = Self.parse(UnsafeBufferPointer(rebasing: buffer[0..<n]), pid: pid) else { continue }
          body(row)
        }
      }
    }
  }

  /// The owner of the process's stat file: its effective user.
  private func user(of fd: Int32) -> String? {
    var st = stat()
    guard fstat(fd, &st) == 0 else { return nil }
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
