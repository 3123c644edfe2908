public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// Top-k processes by CPU (over the last interval) and by resident memory.
/// Every process's /proc/PID/stat is scanned as bytes; users are resolved
/// only for the processes reported.
///
/// On a live /proc each process's stat file stays open from one cycle to
/// the next and is read again with pread from offset 0 (the kernel
/// regenerates it): no path walk, open or close per process per cycle. A
/// descriptor outlives its process harmlessly: reads then fail (ESRCH), it
/// is closed, and a new process that got the same PID is opened afresh.
///
/// Kernel threads (most of a small host's processes) are read from
/// /proc/PID/schedstat once recognised by their stat flags: its first field
/// is the thread's run time in nanoseconds — a kernel thread is one task,
/// so that is its whole CPU time — and the kernel prints three numbers
/// there instead of stat's fifty-two (about a quarter of the cost per
/// read). They have no resident memory. Where schedstat is absent
/// (CONFIG_SCHED_INFO off) stat is read as for any process.
public final class ProcessCollector {
  private let files: SystemFiles
  private let topK: Int
  private let nanosPerTick: UInt64
  private let pageSize: UInt64
  /// CPU time (ns) of each process at the last scan.
  private var previous: [UInt32: UInt64] = [:]
  private var previousTime: ContinuousClock.Instant?
  private var users: [UInt32: String] = [:]
  /// Processes seen at the last scan: the descriptor kept open (-1 when
  /// not kept: captured files, or `maxKept` reached) and whether it is a
  /// kernel thread read from schedstat.
  private var tracked: [UInt32: Tracked] = [:]
  private let maxKept: Int
  /// The open /proc directory (live /proc), read again from the first PID.
  private var procDir: OpaquePointer?

  private struct Tracked {
    var fd: Int32
    var kernelThread: Bool
    /// A kernel thread's name, read from stat when it was recognised and
    /// again, when reported, once a minute (a worker's name shows the
    /// work queue it last served).
    var name: String = ""
    var namedAt: ContinuousClock.Instant = .now
  }

  private struct Row {
    var pid: UInt32
    var cpuNanos: UInt64
    var rssPages: UInt64
    var cpu: Double
    var kernelThread: Bool
    var name: String
  }

  public init(files: SystemFiles, topK: Int) {
    self.files = files
    self.topK = topK
    nanosPerTick = 1_000_000_000 / UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
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
    for t in tracked.values where t.fd >= 0 { close(t.fd) }
    if let procDir { closedir(procDir) }
  }

  /// How many process descriptors are kept open (for tests).
  public var keptCount: Int { tracked.values.count { $0.fd >= 0 } }
  /// How many processes are read as kernel threads from schedstat (for tests).
  public var kernelThreadCount: Int { tracked.values.count { $0.kernelThread } }

  public func collect(now: ContinuousClock.Instant = .now) -> (byCPU: [ProcessSample], byMemory: [ProcessSample]) {
    let seconds =
      previousTime.map { t -> Double in
        let d = now - t
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
      } ?? 0
    var rows: [Row] = []
    rows.reserveCapacity(previous.count + 32)
    var times: [UInt32: UInt64] = [:]
    times.reserveCapacity(previous.count + 32)
    scan { row in
      var r = row
      times[r.pid] = r.cpuNanos
      if seconds > 0, let before = previous[r.pid], r.cpuNanos >= before {
        r.cpu = Double(r.cpuNanos - before) / 1e9 / seconds * 100
      }
      rows.append(r)
    }
    previous = times
    previousTime = now
    let byCPU = rows.sorted { ($0.cpu, $0.rssPages) > ($1.cpu, $1.rssPages) }.prefix(topK).compactMap(sample)
    let byMemory = rows.sorted { $0.rssPages > $1.rssPages }.prefix(topK).compactMap(sample)
    return (byCPU, byMemory)
  }

  /// Users only for the processes reported (names come from the scan).
  private func sample(_ r: Row) -> ProcessSample? {
    var name = r.name
    if r.kernelThread, var t = tracked[r.pid], ContinuousClock.now - t.namedAt > .seconds(60) {
      if let fresh = files.withSmallFile("/proc/\(r.pid)/stat", { parse($0, pid: r.pid)?.name }) {
        name = fresh
        t.name = fresh
      }
      t.namedAt = .now
      tracked[r.pid] = t
    }
    guard let user = user(of: r) else { return nil }
    return ProcessSample(pid: r.pid, name: name, user: user, cpuPercent: r.cpu, rssBytes: r.rssPages * pageSize)
  }

  /// "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
  /// fields are counted from the last ')'. flags is field 9, utime 14,
  /// stime 15, rss 24.
  private func parse(_ b: UnsafeBufferPointer<UInt8>, pid: UInt32) -> Row? {
    guard let open = b.firstIndex(of: 0x28), let close = b.lastIndex(of: 0x29), open < close else { return nil }
    var field = 2  // the ')' ends field 2
    var value: UInt64 = 0
    var flags: UInt64 = 0
    var utime: UInt64 = 0
    var stime: UInt64 = 0
    var rss: UInt64 = 0
    var i = close + 1
    while i < b.count {
      let c = b[i]
      if c == 0x20 {
        switch field {
        case 9: flags = value
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
    let kernelThread = flags & 0x0020_0000 != 0  // PF_KTHREAD
    return Row(
      pid: pid, cpuNanos: (utime + stime) * nanosPerTick, rssPages: rss, cpu: 0, kernelThread: kernelThread,
      name: String(decoding: UnsafeBufferPointer(rebasing: b[(open + 1)..<close]), as: UTF8.self))
  }

  /// "sum_exec_runtime run_delay pcount": the first number, in nanoseconds.
  private static func parseSchedstat(_ b: UnsafeBufferPointer<UInt8>) -> UInt64? {
    var value: UInt64 = 0
    var digits = 0
    for c in b {
      guard c >= 0x30 && c <= 0x39 else { break }
      value = value &* 10 &+ UInt64(c - 0x30)
      digits += 1
    }
    return digits > 0 && digits < 20 ? value : nil
  }

  /// A process seen before, from its file's bytes: a kernel thread's
  /// schedstat or anything else's stat.
  private func knownRow(_ pid: UInt32, _ known: Tracked, _ b: UnsafeBufferPointer<UInt8>) -> Row? {
    guard known.kernelThread else { return parse(b, pid: pid) }
    return Self.parseSchedstat(b).map {
      Row(pid: pid, cpuNanos: $0, rssPages: 0, cpu: 0, kernelThread: true, name: known.name)
    }
  }

  /// Every process in one pass over /proc: a kept descriptor is read
  /// again; otherwise "PID/stat" (or "PID/schedstat" for a kernel thread)
  /// is opened relative to the /proc descriptor from a stack buffer, so no
  /// path string is built and only two components are looked up.
  /// Descriptors of processes gone are closed.
  private func scan(_ body: (Row) -> Void) {
    let live = maxKept > 0
    // Captured files are opened afresh each scan (the defer below closes them).
    if procDir == nil { procDir = opendir(files.path("/proc")) }
    guard let dir = procDir else { return }
    defer {
      if !live {
        closedir(dir)
        procDir = nil
      }
    }
    // The PIDs start at directory offset 256 (FIRST_PROCESS_ENTRY) of the
    // kernel's /proc; "self" and "thread-self" come first and are skipped.
    if live { seekdir(dir, 256) } else { rewinddir(dir) }
    let procFD = dirfd(dir)
    var stillTracked: [UInt32: Tracked] = [:]
    stillTracked.reserveCapacity(tracked.count + 16)
    var keptCount = 0
    defer {
      for (pid, t) in tracked where t.fd >= 0 && stillTracked[pid]?.fd != t.fd { close(t.fd) }
      tracked = stillTracked
    }
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { buffer in
      withUnsafeTemporaryAllocation(of: CChar.self, capacity: 32) { path in
        /// Opens "PID/<name>" under /proc and reads it: the descriptor and
        /// the byte count, or nil.
        func openAndRead(_ length: Int, _ name: StaticString) -> (Int32, Int)? {
          let suffix = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
          for (i, c) in suffix.enumerated() { path[length + i] = CChar(bitPattern: c) }
          path[length + suffix.count] = 0
          let fd = openat(procFD, path.baseAddress!, O_RDONLY | O_CLOEXEC)
          guard fd >= 0 else { return nil }  // exited since readdir, or absent
          let n = SystemFiles.readFromStart(fd, into: buffer)
          guard n > 0 else {
            close(fd)
            return nil
          }
          return (fd, n)
        }
        /// Keeps `fd` open for the next scan when there is room; else closes it.
        func track(_ pid: UInt32, _ fd: Int32, _ previous: Tracked?) {
          var t = previous ?? Tracked(fd: fd, kernelThread: false)
          if keptCount < maxKept {
            t.fd = fd
            stillTracked[pid] = t
            keptCount += 1
          } else {
            close(fd)
            t.fd = -1
            if t.kernelThread { stillTracked[pid] = t }
          }
        }

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
          if let t = tracked[pid] {
            // Seen before: its kept descriptor read again, or (a kernel
            // thread not kept open) its schedstat opened.
            var source: (fd: Int32, n: Int)?
            if t.fd >= 0 {
              let n = SystemFiles.readFromStart(t.fd, into: buffer)
              if n > 0 { source = (t.fd, n) }
            } else if t.kernelThread {
              source = openAndRead(length, "/schedstat")
            }
            if let (fd, n) = source, let row = knownRow(pid, t, UnsafeBufferPointer(rebasing: buffer[0..<n])) {
              track(pid, fd, t)
              body(row)
              continue
            }
            // That process is gone (the PID may be a new one's), or its
            // file no longer parses: look at it afresh.
            if let source, source.fd != t.fd { close(source.fd) }
            if t.fd >= 0 { close(t.fd) }
            tracked[pid] = nil
          }
          guard let (fd, n) = openAndRead(length, "/stat") else { continue }
          guard var row = parse(UnsafeBufferPointer(rebasing: buffer[0..<n]), pid: pid) else {
            close(fd)
            continue
          }
          if row.kernelThread, let (sfd, sn) = openAndRead(length, "/schedstat") {
            if let nanos = Self.parseSchedstat(UnsafeBufferPointer(rebasing: buffer[0..<sn])) {
              // From now on its CPU time comes from schedstat (in the same
              // unit at every scan, so deltas never mix the two sources).
              close(fd)
              row.cpuNanos = nanos
              track(pid, sfd, Tracked(fd: sfd, kernelThread: true, name: row.name))
              body(row)
              continue
            }
            close(sfd)
          }
          track(pid, fd, nil)
          body(row)
        }
      }
    }
  }

  /// The process's effective user: the owner of its stat file (kept open)
  /// or of its /proc directory. Kernel threads are root's.
  private func user(of r: Row) -> String? {
    var st = stat()
    if r.kernelThread {
      st.st_uid = 0
    } else if let fd = tracked[r.pid]?.fd, fd >= 0 {
      guard fstat(fd, &st) == 0 else { return nil }
    } else {
      guard stat(files.path("/proc/\(r.pid)"), &st) == 0 else { return nil }
    }
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
