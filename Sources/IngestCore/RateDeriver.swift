public import MirrorWire

/// Derives rates from consecutive batches of a host and boot: CPU %,
/// bytes/s and utilisation per interface, IOPS, throughput and busy % per
/// disk. A counter that went backwards (reset or wrap) counts from zero.
/// Not thread-safe: one per pipeline.
public final class RateDeriver {
  private var last: [String: MetricsBatch] = [:]

  public init() {}

  /// What the deriver remembers: the last batch of each host.
  public struct State: Sendable {
    fileprivate var last: [String: MetricsBatch]
  }

  /// The current state (to roll back to when a write fails).
  public var state: State {
    get { State(last: last) }
    set { last = newValue.last }
  }

  public func derive(_ batch: MetricsBatch) -> NormalizedBatch {
    var out = NormalizedBatch(batch: batch)
    out.cpuPercent = batch.cpu?.utilizationPercent ?? 0
    if let m = batch.memory, m.totalBytes > 0 {
      out.memoryUsedPercent = Double(m.usedBytes) / Double(m.totalBytes) * 100
    }
    defer { if (last[batch.host]?.collectedAtUnixMs ?? .min) < batch.collectedAtUnixMs { last[batch.host] = batch } }
    guard let prev = last[batch.host], prev.bootId == batch.bootId, batch.collectedAtUnixMs > prev.collectedAtUnixMs
    else {
      return out
    }
    let elapsedMs = batch.collectedAtUnixMs - prev.collectedAtUnixMs
    out.elapsedMs = UInt32(clamping: elapsedMs)
    let seconds = Double(elapsedMs) / 1000
    let previousNICs = Dictionary(prev.interfaces.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    for nic in batch.interfaces {
      guard let p = previousNICs[nic.name] else { continue }
      var rate = InterfaceRate(
        name: nic.name, rxBytesPerSecond: Double(Self.delta(p.rxBytes, nic.rxBytes)) / seconds,
        txBytesPerSecond: Double(Self.delta(p.txBytes, nic.txBytes)) / seconds, speedMbps: nic.speedMbps)
      if let speed = nic.speedMbps, speed > 0 {
        let bits = max(rate.rxBytesPerSecond, rate.txBytesPerSecond) * 8
        rate.utilizationPercent = min(100, bits / (Double(speed) * 1_000_000) * 100)
      }
      out.interfaces.append(rate)
    }
    let previousDisks = Dictionary(prev.disks.map { ($0.device, $0) }, uniquingKeysWith: { a, _ in a })
    for disk in batch.disks {
      guard let p = previousDisks[disk.device] else { continue }
      out.disks.append(
        DiskRate(
          device: disk.device, readIops: Double(Self.delta(p.readsCompleted, disk.readsCompleted)) / seconds,
          writeIops: Double(Self.delta(p.writesCompleted, disk.writesCompleted)) / seconds,
          readBytesPerSecond: Double(Self.delta(p.readBytes, disk.readBytes)) / seconds,
          writeBytesPerSecond: Double(Self.delta(p.writeBytes, disk.writeBytes)) / seconds,
          busyPercent: min(100, Double(Self.delta(p.ioTimeMs, disk.ioTimeMs)) / Double(elapsedMs) * 100)))
    }
    return out
  }

  /// The increase of a cumulative counter; after a reset it counts from 0.
  static func delta(_ old: UInt64, _ new: UInt64) -> UInt64 { new >= old ? new - old : new }
}
