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

  /// Calls `body(series, value)` for every value this batch has. Values the
  /// batch cannot give (no rates yet, a GPU without a temperature) are
  /// absent, not zero.
  @inline(__always)
  public func forEach(in n: NormalizedBatch, _ body: (String, Double) -> Void) {
    guard let b = n.batch else { return }
    switch self {
    case .cpuPercent:
      if n.elapsedMs > 0 { body("", n.cpuPercent) }
    case .memoryUsedPercent:
      if let m = b.memory, m.totalBytes > 0 { body("", n.memoryUsedPercent) }
    case .swapUsedPercent:
      if let m = b.memory, m.swapTotalBytes > 0 { body("", Double(m.swapUsedBytes) * 100 / Double(m.swapTotalBytes)) }
    case .loadPerCore:
      if let c = b.cpu { body("", c.load1 / Double(max(1, c.cores.count))) }
    case .diskUsedPercent:
      // As df shows it: used over what ordinary users can have.
      for m in b.mounts where m.available && m.usedBytes + m.availableBytes > 0 {
        body(m.mountPoint, Double(m.usedBytes) * 100 / Double(m.usedBytes + m.availableBytes))
      }
    case .diskInodesUsedPercent:
      for m in b.mounts where m.available && m.inodesTotal > 0 {
        body(m.mountPoint, Double(m.inodesUsed) * 100 / Double(m.inodesTotal))
      }
    case .diskUnavailable:
      for m in b.mounts { body(m.mountPoint, m.available ? 0 : 1) }
    case .smartFailed:
      for d in b.disks where d.smartHealth != .unknown { body(d.device, d.smartHealth == .failed ? 1 : 0) }
    case .temperatureCelsius:
      for t in b.temperatures { body(t.label.isEmpty ? t.chip : "\(t.chip)/\(t.label)", t.celsius) }
    case .gpuTemperatureCelsius:
      for g in b.gpus { if let t = g.temperatureCelsius { body(String(g.index), t) } }
    case .gpuUtilizationPercent:
      for g in b.gpus { if let u = g.utilizationPercent { body(String(g.index), u) } }
    case .networkUtilizationPercent:
      for i in n.interfaces { if let u = i.utilizationPercent { body(i.name, u) } }
    case .networkErrors:
      for i in b.interfaces { body(i.name, Double(i.rxErrors + i.txErrors)) }
    case .collectorFailed:
      for e in b.errors { body(e.collector, 1) }
    case .probeUnreachable:
      for p in b.latency { body(p.target, p.reachable ? 0 : 1) }
    case .probeRTTms:
      for p in b.latency { if let r = p.rttMs { body(p.target, r) } }
    }
  }
}
