import Foundation
import Logging
import MirrorBus
import MirrorService
import MirrorWire
import NotifierCore
import TestSupport

/// The Notifier's figures: rule evaluation for a large fleet, and the time
/// from a breaching batch on metrics.normalized to the ntfy receiver.
enum Alerts {
  /// The built-in rules plus five of a site's own: 20 in all.
  static let rulesYAML = """
    rules:
      - {name: load-high, kind: threshold, metric: load.per_core, op: '>', value: 2, for: 5m}
      - {name: inodes, kind: threshold, metric: disk.inodes_used_percent, op: '>', value: 90, for: 5m}
      - {name: nic-busy, kind: threshold, metric: network.utilization_percent, op: '>', value: 90, for: 2m}
      - {name: probe-down, kind: threshold, metric: probe.unreachable, op: '>', value: 0, for: 1m}
      - {name: memory-anomaly, kind: anomaly, metric: memory.used_percent, z: 5, min-samples: 60, min-deviation: 10}
    """

  /// CPU time of observing every host's batch once (one 5 s interval) and
  /// five ticks, for `hosts` hosts; after warm-up intervals so every series
  /// exists and the anomaly baselines are learnt.
  static func evaluation(hosts: Int, intervals: Int) throws {
    let rules = try NotifierRules.parse(YAMLValue.parse(rulesYAML, file: "bench"), environment: [:])
    let engine = AlertEngine(rules: rules)
    var batch = realisticBatch()
    batch.latency = [LatencyProbe(target: "gateway", method: "tcp", reachable: true, rttMs: 0.4)]
    let t0 = Date().unixMilliseconds
    var fleet: [NormalizedBatch] = []
    fleet.reserveCapacity(hosts)
    for h in 0..<hosts {
      var b = batch
      b.host = "fleet-\(h)"
      b.collectedAtUnixMs = t0
      fleet.append(
        NormalizedBatch(
          batch: b, elapsedMs: 5000, cpuPercent: Double(h % 70), memoryUsedPercent: 40 + Double(h % 20),
          interfaces: b.interfaces.map {
            InterfaceRate(
              name: $0.name, rxBytesPerSecond: 1e6, txBytesPerSecond: 2e5, utilizationPercent: 1, speedMbps: 1000)
          }))
    }
    func interval(_ i: Int) -> Double {
      // The fleet's next batches (not timed: decoding would make them).
      let t = t0 + Int64(i) * 5000
      for h in fleet.indices {
        fleet[h].batch?.collectedAtUnixMs = t
        fleet[h].cpuPercent = Double((h + i) % 70)
      }
      let start = cpuNanos()
      for h in fleet.indices { engine.observe(fleet[h], nowMs: t) }
      // The service ticks once a second: five times an interval.
      for s in 0..<5 { engine.tick(nowMs: t + Int64(s) * 1000) }
      _ = engine.drainActions()
      return Double(cpuNanos() - start) / 1e6
    }
    for i in 0..<70 { _ = interval(i) }  // warm-up: the anomaly rules' history
    var samples: [Double] = []
    for i in 70..<(70 + intervals) { samples.append(interval(i)) }
    samples.sort()
    let median = samples[samples.count / 2]
    print("notifier.hosts \(hosts)")
    print("notifier.rules \(rules.rules.count)")
    print(String(format: "notifier.eval_cpu_ms_per_interval_median %.2f", median))
    print(String(format: "notifier.eval_cpu_ms_per_interval_max %.2f", samples.last ?? 0))
    print(String(format: "notifier.eval_ratio_to_goal_20ms %.3f  (goal < 1)", median / 20))
    print(String(format: "notifier.eval_ns_per_host_rule %.0f", median * 1e6 / Double(hosts * rules.rules.count)))
  }

  /// Publishes `count` breaching batches (each a host of its own, 2 s
  /// apart) to a running Notifier whose ntfy channel is this process's
  /// receiver; prints the time from each publish to the receiver.
  static func latency(url: String, receiver: HTTPReceiver, count: Int) async throws {
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let bus = try await BusConnection.connect(BusOptions(urls: [url]), logger: logger)
    var samples: [Double] = []
    for i in 0..<count {
      let host = "lat-\(i)"
      var b = realisticBatch()
      b.host = host
      b.collectedAtUnixMs = Date().unixMilliseconds
      let n = NormalizedBatch(batch: b, elapsedMs: 5000, cpuPercent: 99, memoryUsedPercent: 30)
      let before = receiver.delivered.count
      let sent = ContinuousClock.now
      _ = try await bus.jetStreamPublish(Subjects.metricsNormalized(host), n, msgID: "\(host):1")
      let got = await receiver.waitFor(before + 1, timeout: .seconds(10))
      guard got.count > before, let arrived = got.last?.receivedAt else {
        print("notifier.latency_timeout \(host)")
        continue
      }
      samples.append(Double((arrived - sent).wholeMilliseconds))
      try await Task.sleep(for: .seconds(2))
    }
    samples.sort()
    guard !samples.isEmpty else { return }
    print("notifier.latency_samples \(samples.count)")
    print(String(format: "notifier.breach_to_ntfy_ms_median %.0f", samples[samples.count / 2]))
    print(String(format: "notifier.breach_to_ntfy_ms_max %.0f  (goal < 1000 beyond the rule's for)", samples.last ?? 0))
  }
}
