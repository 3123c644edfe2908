import Foundation
import MirrorBus
import MirrorWire

/// Batches for one host, `lat-01`, whose memory use encodes their number:
/// batch k reports 10.0 + k / 10 % used, so a browser that shows "12.3 %"
/// shows batch 23. Prints "k published_unix_ms" per batch for the bench to
/// match against the times the page showed each value.
enum ConsoleLatency {
  static func run(url: String, count: Int, periodMs: Int) async throws {
    let bus = try await Fleet.connections(url, 1)[0]
    let boot = "lat\(Date().unixMilliseconds)"
    for k in 0..<count {
      var b = Fleet.batch(host: 0, seq: UInt64(k + 1), at: Date().unixMilliseconds, run: boot)
      b.host = "lat-01"
      b.bootId = boot
      if var m = b.memory {
        m.usedBytes = UInt64((Double(m.totalBytes) * (10.0 + Double(k) / 10) / 100).rounded())
        b.memory = m
      }
      let sent = Date().unixMilliseconds
      b.collectedAtUnixMs = sent
      try await Fleet.publish(bus, b)
      print("\(k) \(sent)")
      fflush(nil)
      try await Task.sleep(for: .milliseconds(periodMs))
    }
    await bus.drain()
  }
}
