import Foundation
import IngestCore
import MirrorWire
import Testing

let nowMs: Int64 = 1_795_000_000_000

func batch(host: String = "node1", seq: UInt64 = 1, boot: String = "boot-a", at: Int64 = nowMs) -> MetricsBatch {
  MetricsBatch(
    host: host, bootId: boot, sequence: seq, collectedAtUnixMs: at, intervalMs: 5000,
    cpu: CpuStats(utilizationPercent: 12.5, load1: 0.5), memory: MemoryStats(totalBytes: 1000, usedBytes: 250))
}

@Suite struct ValidationTests {
  /// A validator of its own per case, so no case spends another's tokens.
  static func validator() -> BatchValidator {
    BatchValidator(settings: .init(maxBytes: 4096, maxAge: .seconds(600), maxFuture: .seconds(60), autoRegister: false))
  }

  static let cases: [(String, String, [UInt8], RejectReason)] = [
    ("too large", "metrics.raw.node1", [UInt8](repeating: 0x0A, count: 5000), .tooLarge),
    ("garbage", "metrics.raw.node1", [0xFF, 0xFF, 0xFF, 0xFF], .malformed),
    ("truncated", "metrics.raw.node1", Array(batch().encode().dropLast()), .malformed),
    ("subject host differs", "metrics.raw.node2", batch().encode(), .hostMismatch),
    ("bad subject", "metrics.raw", batch().encode(), .badSubject),
    ("wildcard in host", "metrics.raw.*", batch().encode(), .badSubject),
    ("unknown host", "metrics.raw.stranger", batch(host: "stranger").encode(), .unknownHost),
    ("no boot id", "metrics.raw.node1", batch(boot: "").encode(), .missingIdentity),
    ("sequence zero", "metrics.raw.node1", batch(seq: 0).encode(), .missingIdentity),
    ("sequence beyond a bigint", "metrics.raw.node1", batch(seq: UInt64(Int64.max) + 1).encode(), .missingIdentity),
    ("stale", "metrics.raw.node1", batch(at: nowMs - 601_000).encode(), .stale),
    ("future", "metrics.raw.node1", batch(at: nowMs + 61_000).encode(), .future),
  ]

  @Test("every bad input is rejected with its reason", arguments: cases.indices)
  func badInput(_ i: Int) {
    let (name, subject, payload, reason) = Self.cases[i]
    let result = Self.validator().validate(
      subject: subject, payload: payload, isKnown: { $0 == "node1" || $0 == "node2" }, nowMs: nowMs)
    guard case .failure(let r) = result else {
      Issue.record("\(name): accepted")
      return
    }
    #expect(r.reason == reason, "\(name): \(r.message)")
  }

  @Test func goodBatchIsAccepted() throws {
    let b = try Self.validator().validate(
      subject: "metrics.raw.node1", payload: batch().encode(), isKnown: { $0 == "node1" }, nowMs: nowMs
    ).get()
    #expect(b.sequence == 1)
  }

  @Test func oneNoisyHostIsLimitedAndOthersAreNot() {
    let v = BatchValidator(settings: .init(autoRegister: true, ratePerSecond: 1, burst: 3))
    var noisy: [Bool] = []
    for i in 0..<6 {
      let r = v.validate(
        subject: "metrics.raw.noisy", payload: batch(host: "noisy", seq: UInt64(i + 1)).encode(),
        isKnown: { _ in true }, nowMs: nowMs)
      if case .failure(let f) = r { noisy.append(f.reason == .rateLimited) } else { noisy.append(false) }
    }
    #expect(noisy == [false, false, false, true, true, true])
    let quiet = v.validate(
      subject: "metrics.raw.quiet", payload: batch(host: "quiet").encode(), isKnown: { _ in true }, nowMs: nowMs)
    #expect((try? quiet.get()) != nil)
    // Tokens come back with time.
    let later = v.validate(
      subject: "metrics.raw.noisy", payload: batch(host: "noisy", seq: 99).encode(), isKnown: { _ in true },
      nowMs: nowMs + 2000)
    #expect((try? later.get()) != nil)
  }
}

@Suite struct RateTests {
  func nic(_ rx: UInt64, _ tx: UInt64, speed: UInt32?) -> NetworkInterface {
    NetworkInterface(name: "eth0", rxBytes: rx, txBytes: tx, speedMbps: speed)
  }

  @Test func ratesAndUtilisation() {
    let d = RateDeriver()
    var a = batch(seq: 1, at: nowMs)
    a.interfaces = [nic(1_000, 0, speed: 1000)]
    a.disks = [
      DiskDevice(device: "sda", readsCompleted: 10, readBytes: 4096, writesCompleted: 0, writeBytes: 0, ioTimeMs: 0)
    ]
    var b = batch(seq: 2, at: nowMs + 5000)
    // 62,500,000 bytes in 5 s = 100 Mbit/s on a 1 Gbit/s link: 10 %.
    b.interfaces = [nic(62_501_000, 5_000, speed: 1000)]
    b.disks = [
      DiskDevice(
        device: "sda", readsCompleted: 510, readBytes: 4096 + 5_000_000, writesCompleted: 50, writeBytes: 0,
        ioTimeMs: 2500)
    ]
    #expect(d.derive(a).interfaces.isEmpty, "no rates for the first batch")
    let n = d.derive(b)
    #expect(n.elapsedMs == 5000)
    #expect(n.interfaces.first?.rxBytesPerSecond == 12_500_000)
    #expect(n.interfaces.first?.txBytesPerSecond == 1000)
    #expect(abs((n.interfaces.first?.utilizationPercent ?? -1) - 10) < 1e-9)
    #expect(n.disks.first?.readIops == 100)
    #expect(n.disks.first?.writeIops == 10)
    #expect(n.disks.first?.readBytesPerSecond == 1_000_000)
    #expect(n.disks.first?.busyPercent == 50)
    #expect(n.memoryUsedPercent == 25)
  }

  @Test func counterResetAndUnknownSpeed() {
    let d = RateDeriver()
    var a = batch(seq: 1, at: nowMs)
    a.interfaces = [nic(9_000_000, 0, speed: nil)]
    var b = batch(seq: 2, at: nowMs + 1000)
    b.interfaces = [nic(500, 0, speed: nil)]  // reset: counts from zero
    _ = d.derive(a)
    let n = d.derive(b)
    #expect(n.interfaces.first?.rxBytesPerSecond == 500)
    #expect(n.interfaces.first?.utilizationPercent == nil, "unknown link speed: no utilisation, not zero")
  }

  @Test func newBootStartsOver() {
    let d = RateDeriver()
    var a = batch(seq: 1, boot: "one", at: nowMs)
    a.interfaces = [nic(100, 0, speed: 1000)]
    var b = batch(seq: 1, boot: "two", at: nowMs + 5000)
    b.interfaces = [nic(50, 0, speed: 1000)]
    _ = d.derive(a)
    #expect(d.derive(b).interfaces.isEmpty)
  }
}
