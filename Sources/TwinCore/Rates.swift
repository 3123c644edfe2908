/// Throughput of one interface from its byte counters, across batches: the
/// difference over the time between them. A counter that went backwards (a
/// reboot, a driver reload, a wrap) gives no rate for that step rather than
/// a huge or negative one; the next step is measured from the new value.
public struct CounterRate: Sendable, Equatable {
  public var atMs: Int64
  public var rxBytes: UInt64
  public var txBytes: UInt64
  public var bootID: String

  public init(atMs: Int64, rxBytes: UInt64, txBytes: UInt64, bootID: String) {
    self.atMs = atMs
    self.rxBytes = rxBytes
    self.txBytes = txBytes
    self.bootID = bootID
  }

  /// Bits per second received and sent since `previous`, or nil when no
  /// rate can be told (first sample, reset, a new boot, time not moving).
  public func bitsPerSecond(since previous: CounterRate?) -> (rx: Double, tx: Double)? {
    guard let p = previous, p.bootID == bootID, atMs > p.atMs, rxBytes >= p.rxBytes, txBytes >= p.txBytes else {
      return nil
    }
    let seconds = Double(atMs - p.atMs) / 1000
    return (Double(rxBytes - p.rxBytes) * 8 / seconds, Double(txBytes - p.txBytes) * 8 / seconds)
  }
}

/// Utilisation in percent: the busier direction over the link speed; nil
/// when the speed is unknown (or zero).
public func utilization(rxBitsPerSecond: Double, txBitsPerSecond: Double, speedMbps: UInt32?) -> Double? {
  guard let speed = speedMbps, speed > 0 else { return nil }
  return max(rxBitsPerSecond, txBitsPerSecond) / (Double(speed) * 1_000_000) * 100
}
