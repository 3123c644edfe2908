public import MirrorWire

/// The metrics a rule can name, read from a `NormalizedBatch`. Metrics with
/// a series label (a mount, a device, a sensor...) give one value per
/// series, and each series is an alert of its own.
public enum Metric: String, CaseIterable, Sendable {
  case cpuPercent = "cpu.percent"
  case memoryUsedPercent = "memory.used_percent"
  case swapUsedPercent = "swap.used_percent"
  case loadPerCore = "load.per_core"
  case diskUsedPercent = "disk.used_percent"
  case diskInodesUsedPercent = "disk.inodes_used_percent"
  case diskUnavailable = "disk.unavailable"
  case smartFailed = "disk.smart_failed"
  case temperatureCelsius = "temperature.celsius"
  case gpuTemperatureCelsius = "gpu.temperature_celsius"
  case gpuUtilizationPercent = "gpu.utilization_percent"
  case networkUtilizationPercent = "network.utilization_percent"
  case networkErrors = "network.errors"
  case collectorFailed = "collector.failed"
  case probeUnreachable = "probe.unreachable"
  case probeRTTms = "probe.rtt_ms"

  /// The label that tells one series from another ("" for one per host).
  public var seriesLabel: String {
    switch self {
    case .cpuPercent, .memoryUsedPercent, .swapUsedPercent, .loadPerCore: ""
    case .diskUsedPercent, .diskInodesUsedPercent, .diskUnavailable: "mount"
    case .smartFailed: "device"
    case .temperatureCelsius: "sensor"
    case .gpuTemperatureCelsius, .gpuUtilizationPercent: "gpu"
    case .networkUtilizationPercent, .networkErrors: "interface"
    case .collectorFailed: "collector"
    case .probeUnreachable, .probeRTTms: "target"
    }
  }

  /// Which series a value belongs to, in parts (joined only when an alert
  /// needs the name: building "chip/label" for every sensor of every batch
  /// would cost an allocation each).
  public struct Series {
    public let part: String
    public let subpart: String
    @inline(__always) init(_ part: String, _ subpart: String = "") {
      self.part = part
      self.subpart = subpart
    }
    public var name: String { subpart.isEmpty ? part : "\(part)/\(subpart)" }
  }

  /// Calls `body(series, value)` for every value this batch has. Values the
  /// batch cannot give (no rates yet, a GPU without a temperature) are
  /// absent, not zero. `b` is `n.batch`, unwrapped once by the caller; the
  /// loops index rather than iterate so no element is copied.
  @inline(__always)
  public func forEach(in n: NormalizedBatch, batch b: MetricsBatch, _ body: (Series, Double) -> Void) {
    switch self {
    case .cpuPercent:
      if n.elapsedMs > 0 { body(Series(""), n.cpuPercent) }
    case .memoryUsedPercent:
      if let total = b.memory?.totalBytes, total > 0 { body(Series(""), n.memoryUsedPercent) }
    case .swapUsedPercent:
      if let m = b.memory, m.swapTotalBytes > 0 {
        body(Series(""), Double(m.swapUsedBytes) * 100 / Double(m.swapTotalBytes))
      }
    case .loadPerCore:
      if let c = b.cpu { body(Series(""), c.load1 / Double(max(1, c.cores.count))) }
    case .diskUsedPercent:
      // As df shows it: used over what ordinary users can have.
      b.mounts.withUnsafeBufferPointer { m in
        for k in m.indices where m[k].available {
          let used = m[k].usedBytes
          let room = used + m[k].availableBytes
          if room > 0 { body(Series(m[k].mountPoint), Double(used) * 100 / Double(room)) }
        }
      }
    case .diskInodesUsedPercent:
      b.mounts.withUnsafeBufferPointer { m in
        for k in m.indices where m[k].available && m[k].inodesTotal > 0 {
          body(Series(m[k].mountPoint), Double(m[k].inodesUsed) * 100 / Double(m[k].inodesTotal))
        }
      }
    case .diskUnavailable:
      b.mounts.withUnsafeBufferPointer { m in
        for k in m.indices { body(Series(m[k].mountPoint), m[k].available ? 0 : 1) }
      }
    case .smartFailed:
      b.disks.withUnsafeBufferPointer { d in
        for k in d.indices where d[k].smartHealth != .unknown {
          body(Series(d[k].device), d[k].smartHealth == .failed ? 1 : 0)
        }
      }
    case .temperatureCelsius:
      b.temperatures.withUnsafeBufferPointer { t in
        for k in t.indices { body(Series(t[k].chip, t[k].label), t[k].celsius) }
      }
    case .gpuTemperatureCelsius:
      b.gpus.withUnsafeBufferPointer { g in
        for k in g.indices { if let t = g[k].temperatureCelsius { body(Series(String(g[k].index)), t) } }
      }
    case .gpuUtilizationPercent:
      b.gpus.withUnsafeBufferPointer { g in
        for k in g.indices { if let u = g[k].utilizationPercent { body(Series(String(g[k].index)), u) } }
      }
    case .networkUtilizationPercent:
      n.interfaces.withUnsafeBufferPointer { i in
        for k in i.indices { if let u = i[k].utilizationPercent { body(Series(i[k].name), u) } }
      }
    case .networkErrors:
      b.interfaces.withUnsafeBufferPointer { i in
        for k in i.indices { body(Series(i[k].name), Double(i[k].rxErrors + i[k].txErrors)) }
      }
    case .collectorFailed:
      b.errors.withUnsafeBufferPointer { e in for k in e.indices { body(Series(e[k].collector), 1) } }
    case .probeUnreachable:
      b.latency.withUnsafeBufferPointer { p in for k in p.indices { body(Series(p[k].target), p[k].reachable ? 0 : 1) }
      }
    case .probeRTTms:
      b.latency.withUnsafeBufferPointer { p in
        for k in p.indices { if let r = p[k].rttMs { body(Series(p[k].target), r) } }
      }
    }
  }
}
