public import MirrorWire

/// Derives rates from consecutive batches of a host and boot: CPU %,
/// bytes/s and utilisation per interface, IOPS, throughput and busy % per
/// disk. A counter that went backwards (reset or wrap) counts from zero.
/// Not thread-safe: one per pipeline.
public final class RateDeriver {
  /// What a rate needs of a host's previous batch: its boot, time and
  /// counters (not the whole batch: the state is copied at every fetch, to
  /// roll back to, so it stays small).
  struct Previous: Sendable {
    var bootID: String
    var collectedAtMs: Int64
    var interfaces: [(name: String, rx: UInt64, tx: UInt64)]
    var disks: [(device: String, reads: UInt64, writes: UInt64, readBytes: UInt64, writeBytes: UInt64, ioMs: UInt64)]

    init(_ b: MetricsBatch) {
      bootID = b.bootId
      collectedAtMs = b.collectedAtUnixMs
      interfaces = b.interfaces.map { ($0.name, $0.rxBytes, $0.txBytes) }
      disks = b.disks.map {
        ($0.device, $0.readsCompleted, $0.writesCompleted, $0.readBytes, $0.writeBytes, $0.ioTimeMs)
      }
    }
  }

  private var last: [String: Previous] = [:]

  public init() {}

  /// What the deriver remembers: the counters of each host's last batch.
  public struct State: Sendable {
    fileprivate var last: [String: Previous]
  }

  /// The current state (to roll back to when a write fails).
  public var state: State {
    get { State(last: last) }
    set { last = newValue.last }
  }

  public func derive(_ batch: MetricsBatch) -> NormalizedBatch {
    var out = rates(batch)
    out.batch = batch
    return out
  }

  /// The derived values of `batch`, without the batch itself (what the
  /// pipeline encodes before it splices the received bytes in).
  func rates(_ batch: MetricsBatch) -> NormalizedBatch {
    var out = NormalizedBatch()
    out.cpuPercent = batch.cpu?.utilizationPercent ?? 0
    if let m = batch.memory, m.totalBytes > 0 {
      out.memoryUsedPercent = Double(m.usedBytes) / Double(m.totalBytes) * 100
    }
    let previous = last[batch.host]
    if (previous?.collectedAtMs ?? .min) < batch.collectedAtUnixMs { last[batch.host] = Previous(batch) }
    guard let prev = previous, prev.bootID == batch.bootId, batch.collectedAtUnixMs > prev.collectedAtMs else {
      return out
    }
    let elapsedMs = batch.collectedAtUnixMs - prev.collectedAtMs
    out.elapsedMs = UInt32(clamping: elapsedMs)
    let seconds = Double(elapsedMs) / 1000
    for nic in batch.interfaces {
      guard let p = prev.interfaces.first(where: { $0.name == nic.name }) else { continue }
      var rate = InterfaceRate(
        name: nic.name, rxBytesPerSecond: Double(Self.delta(p.rx, nic.rxBytes)) / seconds,
        txBytesPerSecond: Double(Self.delta(p.tx, nic.txBytes)) / seconds, speedMbps: nic.speedMbps)
      if let speed = nic.speedMbps, speed > 0 {
        let bits = max(rate.rxBytesPerSecond, rate.txBytesPerSecond) * 8
        rate.utilizationPercent = min(100, bits / (Double(speed) * 1_000_000) * 100)
      }
      out.interfaces.append(rate)
    }
    for disk in batch.disks {
      guard let p = prev.disks.first(where: { $0.device == disk.device }) else { continue }
      out.disks.append(
        DiskRate(
          device: disk.device, readIops: Double(Self.delta(p.reads, disk.readsCompleted)) / seconds,
          writeIops: Double(Self.delta(p.writes, disk.writesCompleted)) / seconds,
          readBytesPerSecond: Double(Self.delta(p.readBytes, disk.readBytes)) / seconds,
          writeBytesPerSecond: Double(Self.delta(p.writeBytes, disk.writeBytes)) / seconds,
          busyPercent: min(100, Double(Self.delta(p.ioMs, disk.ioTimeMs)) / Double(elapsedMs) * 100)))
    }
    return out
  }

  /// The increase of a cumulative counter; after a reset it counts from 0.
  static func delta(_ old: UInt64, _ new: UInt64) -> UInt64 { new >= old ? new - old : new }
}
