import Foundation
import Logging
import MirrorBus
import MirrorWire
import Synchronization

/// A simulated fleet: every host sends the realistic batch, with its own
/// name and boot, a rising sequence and counters that move (so Ingest
/// derives rates), as a reflector would.
enum Fleet {
  static let base = realisticBatch()

  static func batch(host: Int, seq: UInt64, at: Int64, run: String = "fill") -> MetricsBatch {
    var b = base
    b.host = "fleet-\(host)"
    b.bootId = "\(run)-\(host)"
    b.sequence = seq
    b.collectedAtUnixMs = at
    for i in b.interfaces.indices {
      b.interfaces[i].rxBytes += seq * 1_250_000
      b.interfaces[i].txBytes += seq * 250_000
    }
    for i in b.disks.indices {
      b.disks[i].readsCompleted += seq * 500
      b.disks[i].readBytes += seq * 4_096_000
      b.disks[i].ioTimeMs += seq * 100
    }
    return b
  }

  static func connections(_ url: String, _ n: Int) async throws -> [BusConnection] {
    var logger = Logger(label: "fleet")
    logger.logLevel = .error
    var out: [BusConnection] = []
    for i in 0..<n {
      out.append(try await BusConnection.connect(BusOptions(urls: [url], name: "fleet-\(i)"), logger: logger))
    }
    return out
  }

  static func publish(_ bus: BusConnection, _ b: MetricsBatch) async throws {
    _ = try await bus.jetStreamPublish(
      "metrics.raw.\(b.host)", b, msgID: "\(b.host):\(b.bootId):\(b.sequence)")
  }

  /// A backlog: `perHost` batches of every host, 5 s apart, as fast as the
  /// server takes them (Ingest is not running yet).
  static func fill(url: String, hosts: Int, perHost: Int) async throws {
    let buses = try await connections(url, 16)
    let start = Date().unixMilliseconds - Int64(perHost) * 5000
    try await withThrowingTaskGroup(of: Void.self) { group in
      for (w, bus) in buses.enumerated() {
        group.addTask {
          for h in stride(from: w, to: hosts, by: buses.count) {
            for s in 1...perHost {
              try await publish(bus, batch(host: h, seq: UInt64(s), at: start + Int64(s) * 5000))
            }
          }
        }
      }
      try await group.waitForAll()
    }
    print("fleet.backlog_batches \(hosts * perHost)")
  }

  /// `hosts` hosts for `intervals` intervals of `interval` seconds, each
  /// host at its own phase within the interval; the lag of a batch is the
  /// time from its collection to its NormalizedBatch on
  /// metrics.normalized (published by Ingest after the commit).
  static func live(url: String, hosts: Int, intervals: Int, interval: Double) async throws {
    let buses = try await connections(url, 16)
    let listener = try await connections(url, 1)[0]
    let normalized = try listener.subscribe("metrics.normalized.>", bufferSize: 1 << 20)
    try await listener.flush()
    let expected = hosts * intervals
    let collect = Task { () -> [Int64] in
      var lags: [Int64] = []
      lags.reserveCapacity(expected)
      for await m in normalized {
        guard let n = try? NormalizedBatch(decoding: m.payload), let b = n.batch else { continue }
        lags.append(Date().unixMilliseconds - b.collectedAtUnixMs)
        if lags.count == expected { break }
      }
      return lags
    }
    let failures = Counting()
    let intervalMs = Int64(interval * 1000)
    let run = "live\(Date().unixMilliseconds)"
    let t0 = Date().unixMilliseconds + 500
    try await withThrowingTaskGroup(of: Void.self) { group in
      for (w, bus) in buses.enumerated() {
        group.addTask {
          for k in 0..<intervals {
            for h in stride(from: w, to: hosts, by: buses.count) {
              let due = t0 + Int64(k) * intervalMs + Int64(h) * intervalMs / Int64(hosts)
              let wait = due - Date().unixMilliseconds
              if wait > 0 { try await Task.sleep(for: .milliseconds(wait)) }
              do {
                try await publish(
                  bus, batch(host: h, seq: UInt64(k + 1), at: max(due, Date().unixMilliseconds), run: run))
              } catch {
                // A batch the server did not take in time is a lost
                // reflector cycle (it would retry): counted, not fatal.
                failures.add(1)
              }
            }
          }
        }
      }
      try await group.waitForAll()
    }
    let published = Date().unixMilliseconds
    let timeout = Task {
      try await Task.sleep(for: .seconds(60))
      normalized.unsubscribe()
    }
    let lags = await collect.value.sorted()
    timeout.cancel()
    func pct(_ p: Double) -> Int64 { lags.isEmpty ? -1 : lags[min(lags.count - 1, Int(Double(lags.count) * p))] }
    print("fleet.hosts \(hosts)")
    print("fleet.publish_failures \(failures.load())")
    print("fleet.batches_received \(lags.count) of \(expected)")
    print("fleet.lag_p50_ms \(pct(0.5))")
    print("fleet.lag_p99_ms \(pct(0.99))")
    print("fleet.lag_max_ms \(lags.last ?? -1)")
    print("fleet.publisher_late_ms \(max(0, published - (t0 + Int64(intervals) * intervalMs)))")
  }
}

/// A count shared by the publishing tasks.
final class Counting: Sendable {
  private let value = Mutex(0)
  func add(_ n: Int) { value.withLock { $0 += n } }
  func load() -> Int { value.withLock { $0 } }
}
