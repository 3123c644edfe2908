public import MirrorWire

/// CPU from /proc/stat deltas, per-core frequency (cpufreq, else
/// /proc/cpuinfo), load, uptime and process counts.
public final class CPUCollector {
  private let files: SystemFiles
  private var previousTotal: CpuTimes?
  private var previousCores: [UInt32: CpuTimes] = [:]
  /// /proc/cpuinfo is slow for the kernel to produce: its frequencies (the
  /// fallback without cpufreq) are re-read at most every 30 s.
  private var cpuinfoCache: (at: ContinuousClock.Instant, mhz: [UInt32: Double])?
  /// When no core had cpufreq files (nil: they were there, or not looked for yet).
  private var cpufreqAbsentSince: ContinuousClock.Instant?

  public init(files: SystemFiles) { self.files = files }

  public func collect() -> CpuStats? {
    guard let stat = files.string("/proc/stat") else { return nil }
    var stats = CpuStats()
    var coreTimes: [UInt32: CpuTimes] = [:]
    for line in stat.split(separator: "\n") {
      // The intr and softirq lines hold thousands of numbers we do not use.
      guard line.hasPrefix("cpu") || line.hasPrefix("ctxt") || line.hasPrefix("procs_running") else { continue }
      let fields = line.split(separator: " ", omittingEmptySubsequences: true)
      guard let key = fields.first else { continue }
      if key == "cpu" {
        stats.times = Self.times(fields)
      } else if key.hasPrefix("cpu"), let index = UInt32(key.dropFirst(3)) {
        coreTimes[index] = Self.times(fields)
      } else if key == "ctxt", fields.count > 1 {
        stats.contextSwitches = fields[1].u64
      } else if key == "procs_running", fields.count > 1 {
        stats.processesRunning = UInt32(fields[1]) ?? 0
      }
    }
    if let total = stats.times {
      stats.utilizationPercent = Self.utilization(previousTotal, total)
      previousTotal = total
    }
    let frequencies = self.frequencies(cores: coreTimes.keys.sorted())
    // Cores the kernel knows but lists no counters for are offline.
    var indices = Set(coreTimes.keys)
    for i in Self.parseRange(files.line("/sys/devices/system/cpu/present") ?? "") { indices.insert(i) }
    for i in indices.sorted() {
      var core = CpuCore(index: i, online: coreTimes[i] != nil)
      if let t = coreTimes[i] {
        core.times = t
        core.utilizationPercent = Self.utilization(previousCores[i], t)
        core.frequencyMhz = frequencies[i]
      }
      stats.cores.append(core)
    }
    previousCores = coreTimes
    if let load = files.line("/proc/loadavg") {
      let f = load.split(separator: " ")
      if f.count >= 4 {
        stats.load1 = Double(f[0]) ?? 0
        stats.load5 = Double(f[1]) ?? 0
        stats.load15 = Double(f[2]) ?? 0
        if let slash = f[3].firstIndex(of: "/") {
          if stats.processesRunning == 0 { stats.processesRunning = UInt32(f[3][..<slash]) ?? 0 }
          stats.processesTotal = UInt32(f[3][f[3].index(after: slash)...]) ?? 0
        }
      }
    }
    if let up = files.line("/proc/uptime")?.split(separator: " ").first, let seconds = Double(up) {
      stats.uptimeSeconds = UInt64(seconds)
    }
    return stats
  }

  static func times(_ f: [Substring]) -> CpuTimes {
    func v(_ i: Int) -> UInt64 { i < f.count ? f[i].u64 : 0 }
    return CpuTimes(
      userTicks: v(1), niceTicks: v(2), systemTicks: v(3), idleTicks: v(4), iowaitTicks: v(5), irqTicks: v(6),
      softirqTicks: v(7), stealTicks: v(8))
  }

  /// Busy share between two samples, 0-100. A counter that went backwards
  /// (wrap, or a CPU that went offline and came back) restarts from zero:
  /// the new value is the delta.
  static func utilization(_ old: CpuTimes?, _ new: CpuTimes) -> Double {
    guard let old else { return 0 }
    func d(_ a: UInt64, _ b: UInt64) -> Double { Double(b >= a ? b - a : b) }
    let idle = d(old.idleTicks, new.idleTicks) + d(old.iowaitTicks, new.iowaitTicks)
    let busy =
      d(old.userTicks, new.userTicks) + d(old.niceTicks, new.niceTicks) + d(old.systemTicks, new.systemTicks)
      + d(old.irqTicks, new.irqTicks) + d(old.softirqTicks, new.softirqTicks) + d(old.stealTicks, new.stealTicks)
    let total = idle + busy
    guard total > 0 else { return 0 }
    return min(100, max(0, busy / total * 100))
  }

  /// "0-3,5,7-8" → [0,1,2,3,5,7,8].
  static func parseRange(_ s: String) -> [UInt32] {
    var out: [UInt32] = []
    for part in s.split(separator: ",") {
      let bounds = part.split(separator: "-")
      if bounds.count == 2, let a = UInt32(bounds[0]), let b = UInt32(bounds[1]), a <= b {
        out.append(contentsOf: a...b)
      } else if let a = UInt32(part) {
        out.append(a)
      }
    }
    return out
  }

  private func frequencies(cores: [UInt32]) -> [UInt32: Double] {
    var out: [UInt32: Double] = [:]
    // Without a cpufreq driver (most VMs) the files are absent: look for
    // them again every 30 s, not every cycle.
    let lookForCpufreq = cpufreqAbsentSince.map { ContinuousClock.now - $0 > .seconds(30) } ?? true
    if lookForCpufreq {
      for i in cores {
        if let khz = files.int("/sys/devices/system/cpu/cpu\(i)/cpufreq/scaling_cur_freq") {
          out[i] = Double(khz) / 1000
        }
      }
      cpufreqAbsentSince = out.isEmpty && !cores.isEmpty ? .now : nil
    }
    guard out.count < cores.count else { return out }
    if let cache = cpuinfoCache, ContinuousClock.now - cache.at < .seconds(30) {
      return out.merging(cache.mhz) { a, _ in a }
    }
    var fromInfo: [UInt32: Double] = [:]
    if let info = files.string("/proc/cpuinfo") {
      var processor: UInt32?
      for line in info.split(separator: "\n") {
        let kv = line.split(separator: ":", maxSplits: 1)
        guard kv.count == 2 else { continue }
        let key = kv[0].trimmingCharacters(in: .whitespaces)
        let value = kv[1].trimmingCharacters(in: .whitespaces)
        if key == "processor" { processor = UInt32(value) }
        if key == "cpu MHz", let p = processor, let mhz = Double(value) { fromInfo[p] = mhz }
      }
    }
    cpuinfoCache = (.now, fromInfo)
    return out.merging(fromInfo) { a, _ in a }
  }
}
