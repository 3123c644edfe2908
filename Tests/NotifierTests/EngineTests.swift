import Foundation
import MirrorService
import MirrorWire
import NotifierCore
import Testing

/// A batch as Ingest publishes it.
func normalized(
  _ host: String, at t: Int64, cpu: Double = 10, mounts: [(String, Double)] = [], smartFailed: [String] = [],
  errors: [String] = [], interval: UInt32 = 5000
) -> NormalizedBatch {
  var b = MetricsBatch(host: host, bootId: "boot", sequence: UInt64(t), collectedAtUnixMs: t, intervalMs: interval)
  b.cpu = CpuStats(utilizationPercent: cpu, load1: 0.5)
  b.memory = MemoryStats(totalBytes: 100, availableBytes: 60, usedBytes: 40)
  b.mounts = mounts.map { m in
    MountUsage(
      mountPoint: m.0, device: "/dev/x", fsType: "ext4", totalBytes: 100, usedBytes: UInt64(m.1),
      availableBytes: UInt64(100 - m.1), available: true)
  }
  b.disks = smartFailed.map { DiskDevice(device: $0, smartHealth: .failed) }
  b.errors = errors.map { CollectorError(collector: $0, message: "boom") }
  return NormalizedBatch(batch: b, elapsedMs: 5000, cpuPercent: cpu, memoryUsedPercent: 40)
}

/// The engine alone: time is an argument, actions come out.
@Suite struct EngineTests {
  func engine(_ yaml: String, channels: Bool = true) throws -> AlertEngine {
    let head = channels ? "channels:\n  - {name: phone, type: ntfy, url: 'http://127.0.0.1:1/t'}\n" : ""
    return AlertEngine(
      rules: try NotifierRules.parse(
        YAMLValue.parse(head + "include-defaults: false\n" + yaml, file: "t.yaml"), environment: [:]))
  }

  /// The notifications among the actions, as "kind rule host".
  func notes(_ actions: [AlertAction]) -> [String] {
    actions.compactMap {
      if case .notify(let a, let kind, let channels) = $0, !channels.isEmpty {
        "\(kind.rawValue) \(a.rule) \(a.host)"
      } else {
        nil
      }
    }
  }

  func states(_ actions: [AlertAction]) -> [String] {
    actions.compactMap {
      switch $0 {
      case .save(let a): stateName(a.state)
      case .discard: "discarded"
      case .notify: nil
      }
    }
  }

  static let cpuRule = """
    rules:
      - {name: cpu, kind: threshold, metric: cpu.percent, op: '>', value: 90, for: 2m, clear-for: 30s, severity: warning}
    """

  @Test func aThresholdFiresOnlyAfterHoldingForItsDuration() throws {
    let e = try engine(Self.cpuRule)
    let t0: Int64 = 1_000_000_000
    e.observe(normalized("a", at: t0, cpu: 95), nowMs: t0)
    #expect(states(e.drainActions()) == ["pending"])
    for i in 1...23 { e.observe(normalized("a", at: t0 + Int64(i) * 5000, cpu: 95), nowMs: t0) }
    #expect(e.drainActions().isEmpty)  // 115 s: still pending
    e.observe(normalized("a", at: t0 + 120_000, cpu: 97), nowMs: t0)
    let fired = e.drainActions()
    #expect(states(fired) == ["firing"])
    #expect(notes(fired) == ["firing cpu a"])
    if case .save(let a) = fired[0] {
      #expect(a.value == 97)
      #expect(a.threshold == 90)
      #expect(a.startedAtUnixMs == t0)
    }
    // A condition that goes away before the hold is over never fires.
    e.observe(normalized("b", at: t0, cpu: 95), nowMs: t0)
    e.observe(normalized("b", at: t0 + 60_000, cpu: 20), nowMs: t0)
    #expect(states(e.drainActions()) == ["pending", "discarded"])
  }

  @Test func aFlappingMetricDoesNotFlood() throws {
    let e = try engine(
      "rules:\n  - {name: cpu, kind: threshold, metric: cpu.percent, op: '>', value: 90, clear-for: 1m}\n")
    let t0: Int64 = 2_000_000_000
    var all: [AlertAction] = []
    // Above and below the threshold on every other batch for ten minutes.
    for i in 0..<120 {
      e.observe(normalized("a", at: t0 + Int64(i) * 5000, cpu: i % 2 == 0 ? 95 : 50), nowMs: t0)
      all += e.drainActions()
    }
    #expect(notes(all) == ["firing cpu a"])
    // Calm for a minute: one resolution.
    for i in 120..<140 { e.observe(normalized("a", at: t0 + Int64(i) * 5000, cpu: 50), nowMs: t0) }
    #expect(notes(e.drainActions()) == ["resolved cpu a"])
  }

  @Test func aHostThatStopsSendingIsDownOnceAndResolvedOnceAndInhibitsTheRest() throws {
    let e = try engine(
      """
      rules:
        - {name: down, kind: absence, intervals: 3, severity: critical}
        - {name: cpu, kind: threshold, metric: cpu.percent, op: '>', value: 90, clear-for: 0s}
      """)
    let t0: Int64 = 3_000_000_000
    e.observe(normalized("a", at: t0, cpu: 10), nowMs: t0)
    #expect(e.drainActions().isEmpty)
    e.tick(nowMs: t0 + 14_000)
    #expect(e.drainActions().isEmpty)  // within three intervals
    var all: [AlertAction] = []
    for s in 16...60 {
      e.tick(nowMs: t0 + Int64(s) * 1000)
      all += e.drainActions()
    }
    #expect(notes(all) == ["firing down a"])
    #expect(states(all) == ["firing"])
    // While down, its other alerts are held back...
    e.observe(Event(host: "a", kind: .collectorFailed), nowMs: t0 + 61_000)
    // ...then it returns, hot: down resolves, and the CPU alert is sent.
    e.observe(normalized("a", at: t0 + 62_000, cpu: 99), nowMs: t0 + 62_000)
    #expect(notes(e.drainActions()) == ["resolved down a", "firing cpu a"])
    e.tick(nowMs: t0 + 63_000)
    #expect(notes(e.drainActions()).isEmpty)
  }

  @Test func inhibitedAlertsAreSentWhenTheHostComesBackIfStillFiring() throws {
    let e = try engine(
      """
      rules:
        - {name: down, kind: absence, intervals: 2}
        - {name: broken, kind: event, events: [collector_failed], resolve-after: 10m}
      """)
    let t0: Int64 = 3_500_000_000
    e.observe(normalized("a", at: t0), nowMs: t0)
    e.tick(nowMs: t0 + 11_000)
    #expect(notes(e.drainActions()) == ["firing down a"])
    e.observe(Event(host: "a", kind: .collectorFailed, source: "collector.disk", message: "hung"), nowMs: t0 + 12_000)
    #expect(notes(e.drainActions()).isEmpty)  // inhibited
    e.observe(normalized("a", at: t0 + 13_000), nowMs: t0 + 13_000)
    e.tick(nowMs: t0 + 13_500)
    #expect(notes(e.drainActions()) == ["resolved down a", "firing broken a"])
    // The event alert resolves ten minutes after the last such event (the
    // host still reporting).
    e.observe(normalized("a", at: t0 + 611_000), nowMs: t0 + 611_000)
    e.tick(nowMs: t0 + 12_000 + 600_000)
    #expect(notes(e.drainActions()) == ["resolved broken a"])
  }

  @Test func silencesAndAcknowledgementsStopNotificationsButNotState() throws {
    var yaml = "settings: {repeat-interval: 1h}\n" + Self.cpuRule
    yaml = yaml.replacingOccurrences(of: "for: 2m", with: "for: 0s")
    let e = try engine(yaml)
    let t0: Int64 = 4_000_000_000
    e.setSilences([Silence(id: "s", host: "quiet*", endsAtUnixMs: t0 + 600_000)])
    e.observe(normalized("quiet1", at: t0, cpu: 99), nowMs: t0)
    e.observe(normalized("loud", at: t0, cpu: 99), nowMs: t0)
    let first = e.drainActions()
    #expect(states(first) == ["firing", "firing"])
    #expect(notes(first) == ["firing cpu loud"])
    // The silence ends while quiet1 still fires: it is sent then.
    e.tick(nowMs: t0 + 600_001)
    #expect(notes(e.drainActions()) == ["firing cpu quiet1"])
    // Repeats after the repeat interval, unless acknowledged.
    let loud = try #require(e.openAlerts.first { $0.host == "loud" })
    #expect(e.acknowledge(loud.id, by: "ops", nowMs: t0)?.acknowledged == true)
    e.tick(nowMs: t0 + 600_001 + 3_600_000)
    #expect(notes(e.drainActions()) == ["repeat cpu quiet1"])
  }

  @Test func seriesAreAlertsOfTheirOwnAndAGoneSeriesClears() throws {
    let e = try engine(
      """
      rules:
        - {name: disk, kind: threshold, metric: disk.used_percent, op: '>', value: 90, clear-for: 0s}
        - {name: smart, kind: threshold, metric: disk.smart_failed, op: '>', value: 0, clear-for: 0s}
        - {name: collector, kind: threshold, metric: collector.failed, op: '>', value: 0, clear-for: 0s}
      """)
    let t0: Int64 = 5_000_000_000
    e.observe(
      normalized("a", at: t0, mounts: [("/", 95), ("/srv", 50), ("/data", 99)], smartFailed: ["sdb"], errors: ["gpu"]),
      nowMs: t0)
    let fired = e.drainActions()
    #expect(notes(fired).sorted() == ["firing collector a", "firing disk a", "firing disk a", "firing smart a"])
    let mounts = fired.compactMap { a -> String? in
      if case .save(let x) = a, x.rule == "disk" { Template.series(of: x) } else { nil }
    }
    #expect(mounts.sorted() == ["/", "/data"])
    // /data is unmounted and the GPU collector recovers.
    e.observe(normalized("a", at: t0 + 5000, mounts: [("/", 95), ("/srv", 50)], smartFailed: ["sdb"]), nowMs: t0)
    #expect(notes(e.drainActions()).sorted() == ["resolved collector a", "resolved disk a"])
  }

  @Test func anomalyNeedsHistoryThenFiresOnAFarValue() throws {
    let e = try engine(
      "rules:\n  - {name: odd, kind: anomaly, metric: cpu.percent, z: 4, alpha: 0.1, min-samples: 30, min-deviation: 5, clear-for: 0s}\n"
    )
    let t0: Int64 = 6_000_000_000
    // A spike before there is history does not fire.
    e.observe(normalized("a", at: t0, cpu: 20), nowMs: t0)
    e.observe(normalized("a", at: t0 + 5000, cpu: 90), nowMs: t0)
    #expect(notes(e.drainActions()).isEmpty)
    for i in 2..<60 { e.observe(normalized("a", at: t0 + Int64(i) * 5000, cpu: 20 + Double(i % 3)), nowMs: t0) }
    #expect(notes(e.drainActions()).isEmpty)  // ordinary wobble
    e.observe(normalized("a", at: t0 + 300_000, cpu: 80), nowMs: t0)
    #expect(notes(e.drainActions()) == ["firing odd a"])
  }

  @Test func trendPredictsADiskFullWithinTheHorizon() throws {
    let e = try engine(
      "rules:\n  - {name: soon, kind: trend, metric: disk.used_percent, horizon: 24h, window: 6h, min-samples: 12, clear-for: 0s}\n"
    )
    let t0: Int64 = 7_000_000_000
    // /fast grows 2 % an hour from 60 %: full in ~20 h. /slow grows 0.5 %.
    var fired: [AlertAction] = []
    for m in 0...(4 * 60) {
      let t = t0 + Int64(m) * 60_000
      let hours = Double(m) / 60
      e.observe(normalized("a", at: t, mounts: [("/fast", 60 + 2 * hours), ("/slow", 40 + 0.5 * hours)]), nowMs: t)
      fired += e.drainActions()
    }
    let alerts = fired.compactMap { a -> Alert? in if case .save(let x) = a { x } else { nil } }
    #expect(alerts.map { Template.series(of: $0) } == ["/fast"])
    // Predicted hours until full: (100 - 68) / 2 = 16 at the end, ~18 when it first fired (horizon 24 h).
    let eta = try #require(alerts.first).value
    #expect(eta > 15 && eta < 24.1)
  }

  @Test func restoredAlertsAreNotSentAgain() throws {
    let yaml = "rules:\n  - {name: down, kind: absence, intervals: 3}\n"
    let e = try engine(yaml)
    let t0: Int64 = 8_000_000_000
    e.observe(normalized("a", at: t0), nowMs: t0)
    e.tick(nowMs: t0 + 20_000)
    var firing: Alert?
    for action in e.drainActions() { if case .save(let a) = action { firing = a } }
    let stored = try #require(firing)
    // A new engine (a restart) with the stored alert: no second "down"...
    let again = try engine(yaml)
    again.restore([StoredAlert(alert: stored, fingerprint: "", notifiedAtMs: t0 + 20_000)])
    again.setHosts([:], lastSeen: ["a": (t0, 5000)])
    again.tick(nowMs: t0 + 30_000)
    #expect(again.drainActions().isEmpty)
    // A batch from before (redelivered after the restart) is no return...
    again.observe(normalized("a", at: t0), nowMs: t0)
    #expect(again.drainActions().isEmpty)
    // ...and one "resolved" when it returns.
    again.observe(normalized("a", at: t0 + 31_000), nowMs: t0 + 31_000)
    #expect(notes(again.drainActions()) == ["resolved down a"])
  }

  @Test func aRestoredSeriesAlertIsFoundByItsNameAndResolves() throws {
    let yaml =
      "rules:\n  - {name: disk, kind: threshold, metric: disk.used_percent, op: '>', value: 90, clear-for: 0s}\n"
    let e = try engine(yaml)
    let t0: Int64 = 8_500_000_000
    e.observe(normalized("a", at: t0, mounts: [("/srv/data", 95), ("/", 10)]), nowMs: t0)
    var saved: Alert?
    for action in e.drainActions() { if case .save(let a) = action { saved = a } }
    let stored = try #require(saved)
    let again = try engine(yaml)
    again.restore([StoredAlert(alert: stored, fingerprint: "", notifiedAtMs: t0)])
    // Still full: nothing new.
    again.observe(normalized("a", at: t0 + 5000, mounts: [("/", 10), ("/srv/data", 96)]), nowMs: t0 + 5000)
    #expect(again.drainActions().isEmpty)
    // Cleaned up: the restored alert resolves, once.
    again.observe(normalized("a", at: t0 + 10_000, mounts: [("/", 10), ("/srv/data", 50)]), nowMs: t0 + 10_000)
    let resolved = again.drainActions()
    #expect(notes(resolved) == ["resolved disk a"])
    #expect(again.openAlerts.isEmpty)
  }

  @Test func hostSelectorsLimitARule() throws {
    let e = try engine(
      """
      rules:
        - {name: web-cpu, kind: threshold, metric: cpu.percent, op: '>', value: 50, group: web}
        - {name: lab-cpu, kind: threshold, metric: cpu.percent, op: '>', value: 50, hosts: 'lab-*', host-labels: {room: b}}
      """)
    e.setHosts(["w1": HostMeta(groups: ["web"]), "lab-1": HostMeta(labels: ["room": "b"]), "lab-2": HostMeta()])
    let t0: Int64 = 9_000_000_000
    for h in ["w1", "lab-1", "lab-2", "other"] { e.observe(normalized(h, at: t0, cpu: 99), nowMs: t0) }
    #expect(notes(e.drainActions()) == ["firing web-cpu w1", "firing lab-cpu lab-1"])
  }
}
