public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// Top-k processes by CPU (over the last interval) and by resident memory.
public final class ProcessCollector {
  private let files: SystemFiles
  private let topK: Int
  private let ticksPerSecond: Double
  private let pageSize: UInt64
  private var previous: [UInt32: UInt64] = [:]
  private var previousTime: ContinuousClock.Instant?
  private var users: [UInt32: String] = [:]

  public init(files: SystemFiles, topK: Int) {
    self.files = files
    self.topK = topK
    ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))
  }

  public func collect(now: ContinuousClock.Instant = .now) -> (byCPU: [ProcessSample], byMemory: [ProcessSample]) {
    var samples: [ProcessSample] = []
    var ticks: [UInt32: UInt64] = [:]
    let elapsed = previousTime.map { now - $0 }
    let seconds = elapsed.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 } ?? 0
    for entry in files.list("/proc") {
      guard let pid = UInt32(entry), let stat = files.bytes("/proc/\(entry)/stat") else { continue }
      // "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
      guard let open = stat.firstIndex(of: 0x28), let close = stat.lastIndex(of: 0x29), open < close else { continue }
      let name = String(decoding: stat[(open + 1)..<close], as: UTF8.self)
      let rest = stat[(close + 2)...].split(separator: 0x20)
      // Fields after comm start at field 3 (state): utime is 14, stime 15, rss 24.
      guard rest.count > 21 else { continue }
      func field(_ n: Int) -> UInt64 { UInt64(String(decoding: rest[n - 3], as: UTF8.self)) ?? 0 }
      let total = field(14) + field(15)
      ticks[pid] = total
      var cpu = 0.0
      if seconds > 0, let before = previous[pid], total >= before {
        cpu = Double(total - before) / ticksPerSecond / seconds * 100
      }
      samples.append(
        ProcessSample(pid: pid, name: name, user: user(of: entry), cpuPercent: cpu, rssBytes: field(24) * pageSize))
    }
    previous = ticks
    previousTime = now
    let byCPU = samples.sorted { ($0.cpuPercent, $0.rssBytes) > ($1.cpuPercent, $1.rssBytes) }.prefix(topK)
    let byMemory = samples.sorted { $0.rssBytes > $1.rssBytes }.prefix(topK)
    return (Array(byCPU), Array(byMemory))
  }

  private func user(of pid: String) -> String {
    var st = stat()
    guard stat(files.path("/proc/\(pid)"), &st) == 0 else { return "" }
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
