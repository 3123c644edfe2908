import Foundation
public import MirrorWire

/// Why a notification is sent.
public enum NotificationKind: String, Sendable {
  case firing, resolved
  case repeated = "repeat"
}

/// What the engine decided; the service stores these in order, in one
/// transaction, and publishes the state changes.
public enum AlertAction: Sendable {
  /// Insert or update the alert (its state changed).
  case save(Alert)
  /// A pending alert whose condition went away before it fired.
  case discard(Alert)
  /// Queue a notification of the alert to these channels.
  case notify(Alert, NotificationKind, channels: [String])
}

/// An alert that was open when the service stopped, as stored.
public struct StoredAlert: Sendable {
  public var alert: Alert
  public var fingerprint: String
  public var notifiedAtMs: Int64
  public init(alert: Alert, fingerprint: String, notifiedAtMs: Int64) {
    self.alert = alert
    self.fingerprint = fingerprint
    self.notifiedAtMs = notifiedAtMs
  }
}

/// The rule evaluator and alert lifecycle: pending → firing → resolved,
/// hold and clear durations, repeats, inhibition by "host down", silences
/// and acknowledgements. It is pure state: time comes in as arguments, and
/// what must be stored or sent comes out as `AlertAction`s. Not thread-safe;
/// one owner calls it.
public final class AlertEngine {
  public private(set) var rules: NotifierRules
  private var hosts: [String: HostState] = [:]
  private var meta: [String: HostMeta] = [:]
  private var metaVersion = 1
  private var silences: [Silence] = []
  private var openByID: [String: SeriesState] = [:]
  /// Hosts whose absence alert is firing: nothing else of theirs is sent.
  private var down: Set<String> = []
  private var actions: [AlertAction] = []
  private var lastTickMs: Int64 = 0
  /// Evaluations of one rule for one host (for /metrics).
  public private(set) var evaluations = 0

  private let metricRules: [Int]
  private let absenceRules: [Int]
  private let eventRules: [Int]

  public init(rules: NotifierRules) {
    self.rules = rules
    var metric: [Int] = []
    var absence: [Int] = []
    var event: [Int] = []
    for (i, r) in rules.rules.enumerated() {
      switch r.kind {
      case .absence: absence.append(i)
      case .event: event.append(i)
      default: metric.append(i)
      }
    }
    metricRules = metric
    absenceRules = absence
    eventRules = event
  }

  // MARK: Inputs

  /// Takes back the alerts that were open when the service stopped.
  public func restore(_ stored: [StoredAlert]) {
    for s in stored {
      guard let ruleIndex = rules.rules.firstIndex(where: { $0.name == s.alert.rule }) else { continue }
      let host = state(s.alert.host)
      let series = Template.series(of: s.alert)
      let st = host.series(ruleIndex, series)
      st.open = s.alert
      st.notifiedAtMs = s.notifiedAtMs
      st.lastEventMs = s.alert.updatedAtUnixMs
      openByID[s.alert.id] = st
      if case .absence = rules.rules[ruleIndex].kind, s.alert.state == .firing { down.insert(s.alert.host) }
    }
  }

  /// Labels and groups of the hosts, from the registry; `lastSeen` (ms)
  /// lets a restarted Notifier know who went quiet while it was away.
  public func setHosts(_ all: [String: HostMeta], lastSeen: [String: (ms: Int64, intervalMs: Int64)] = [:]) {
    if all != meta {
      meta = all
      metaVersion += 1
    }
    for (name, seen) in lastSeen {
      let h = state(name)
      if seen.ms > h.lastSeenMs { h.lastSeenMs = seen.ms }
      if h.intervalMs == 0 { h.intervalMs = max(seen.intervalMs, 1000) }
    }
  }

  public func setSilences(_ s: [Silence]) { silences = s }

  /// One batch from `metrics.normalized`; `nowMs` is when it arrived.
  public func observe(_ n: NormalizedBatch, nowMs: Int64) {
    guard let b = n.batch else { return }
    let host = state(b.host)
    let t = b.collectedAtUnixMs
    host.lastSeenMs = max(host.lastSeenMs, nowMs)
    host.intervalMs = Int64(max(b.intervalMs, 1000))
    refreshApplicability(host)
    for i in absenceRules where host.applies[i] {
      guard case .absence(let n) = rules.rules[i].kind else { continue }
      evaluations += 1
      // A batch that arrived long ago (a redelivery) does not end "down".
      if lastTickMs > 0, lastTickMs - host.lastSeenMs > Int64(n) * host.intervalMs { continue }
      evaluate(host, i, "", condition: false, value: 0, at: nowMs)
    }
    host.stamp &+= 1
    let stamp = host.stamp
    for i in metricRules where host.applies[i] {
      evaluations += 1
      let rule = rules.rules[i]
      guard let metric = rule.kind.metric else { continue }
      metric.forEach(in: n) { series, value in
        let st = host.series(i, series)
        st.stamp = stamp
        let (condition, shown) = test(rule, st, value: value, at: t)
        evaluate(host, i, series, state: st, condition: condition, value: shown, at: t)
      }
      // A series this batch no longer has (a mount gone, a collector
      // recovered) counts as clear.
      if metric.seriesLabel != "" {
        for (series, st) in host.multi[i] ?? [:] where st.stamp != stamp && st.open != nil {
          evaluate(host, i, series, state: st, condition: false, value: st.open?.value ?? 0, at: t)
        }
      }
    }
  }

  /// One event from `events.<host>`.
  public func observe(_ e: Event, nowMs: Int64) {
    let host = state(e.host)
    refreshApplicability(host)
    for i in eventRules where host.applies[i] {
      guard case .event(let kinds, _) = rules.rules[i].kind, kinds.contains(e.kind) else { continue }
      evaluations += 1
      let series = e.source.isEmpty ? "event" : e.source
      let st = host.series(i, series)
      st.lastEventMs = nowMs
      st.eventMessage = e.message
      evaluate(host, i, series, state: st, condition: true, value: 1, at: nowMs)
    }
  }

  /// The clock's work: hosts gone quiet, events gone stale, repeats, and
  /// alerts that may be sent now that a silence or inhibition ended.
  public func tick(nowMs: Int64) {
    lastTickMs = nowMs
    for host in hosts.values where host.lastSeenMs > 0 {
      refreshApplicability(host)
      for i in absenceRules where host.applies[i] {
        guard case .absence(let n) = rules.rules[i].kind else { continue }
        let quiet = nowMs - host.lastSeenMs
        let st = host.series(i, "")
        if quiet > Int64(n) * host.intervalMs {
          evaluate(host, i, "", state: st, condition: true, value: Double(quiet) / 1000, at: nowMs)
        } else if st.open != nil {
          evaluate(host, i, "", state: st, condition: false, value: 0, at: nowMs)
        }
      }
    }
    for st in Array(openByID.values) {
      guard let a = st.open else { continue }
      let rule = rules.rules[st.rule]
      if case .event(_, let after) = rule.kind, nowMs - st.lastEventMs >= after.wholeMilliseconds {
        evaluate(state(a.host), st.rule, st.name, state: st, condition: false, value: a.value, at: nowMs)
        continue
      }
      if a.state == .firing { considerNotify(st, nowMs: nowMs) }
    }
  }

  // MARK: Requests

  public func acknowledge(_ id: String, by: String, nowMs: Int64) -> Alert? {
    guard let st = openByID[id], var a = st.open else { return nil }
    a.acknowledged = true
    a.acknowledgedBy = by
    a.updatedAtUnixMs = nowMs
    st.open = a
    return a
  }

  public func open(_ id: String) -> Alert? { openByID[id]?.open }

  public var openAlerts: [Alert] { openByID.values.compactMap(\.open) }

  /// What the evaluations since the last call decided.
  public func drainActions() -> [AlertAction] {
    defer { actions.removeAll(keepingCapacity: true) }
    return actions
  }

  // MARK: Evaluation

  private func state(_ name: String) -> HostState {
    if let h = hosts[name] { return h }
    let h = HostState(name: name, rules: rules.rules.count)
    hosts[name] = h
    return h
  }

  private func refreshApplicability(_ host: HostState) {
    guard host.metaVersion != metaVersion else { return }
    let m = meta[host.name] ?? HostMeta()
    host.applies = rules.rules.map { $0.hosts.isEmpty || $0.hosts.matches(host.name, m) }
    host.metaVersion = metaVersion
  }

  /// Whether the rule's condition holds for this value, and the value the
  /// alert shows (for a trend: hours until the limit).
  @inline(__always)
  private func test(_ rule: Rule, _ st: SeriesState, value: Double, at t: Int64) -> (Bool, Double) {
    switch rule.kind {
    case .threshold(_, let op, let limit):
      return (op.holds(value, limit), value)
    case .anomaly(_, let z, let alpha, let minSamples, let minDeviation, let direction):
      var firing = false
      if st.count >= minSamples {
        let deviation = value - st.mean
        let sd = st.variance.squareRoot()
        if sd > 0, abs(deviation) >= minDeviation {
          let score = deviation / sd
          switch direction {
          case .up: firing = score >= z
          case .down: firing = score <= -z
          case .both: firing = abs(score) >= z
          }
        }
      }
      if st.count == 0 {
        st.mean = value
      } else {
        let diff = value - st.mean
        let step = alpha * diff
        st.mean += step
        st.variance = (1 - alpha) * (st.variance + diff * step)
      }
      st.count += 1
      return (firing, value)
    case .trend(_, let limit, let horizon, let window, let minSamples):
      st.addSample(t, value, window: window.wholeMilliseconds)
      if value >= limit { return (true, 0) }
      guard st.sampleCount >= minSamples, let slope = st.slopePerMs(), slope > 0 else { return (false, 0) }
      let eta = (limit - value) / slope
      return (eta <= Double(horizon.wholeMilliseconds), eta / 3_600_000)
    case .absence, .event:
      return (false, value)
    }
  }

  private func evaluate(_ host: HostState, _ i: Int, _ series: String, condition: Bool, value: Double, at t: Int64) {
    evaluate(host, i, series, state: host.series(i, series), condition: condition, value: value, at: t)
  }

  private func evaluate(
    _ host: HostState, _ i: Int, _ series: String, state st: SeriesState, condition: Bool, value: Double, at t: Int64
  ) {
    let rule = rules.rules[i]
    if condition {
      st.clearSinceMs = 0
      guard var a = st.open else {
        var a = Alert(
          id: "", rule: rule.name, host: host.name, severity: rule.severity, state: .pending,
          labels: labels(rule, series), value: value, threshold: rule.threshold, startedAtUnixMs: t,
          updatedAtUnixMs: t)
        a.id = Self.alertID(Self.fingerprint(rule.name, host.name, series), startedMs: t)
        a.summary = Template.render(rule.summary, a, status: "PENDING")
        a.description = st.eventMessage
        st.notifiedAtMs = 0
        st.open = a
        openByID[a.id] = st
        if rule.holdFor <= .zero {
          fire(st, host: host.name, at: t)
        } else {
          actions.append(.save(a))
        }
        return
      }
      a.value = value
      st.open = a
      if a.state == .pending, t - a.startedAtUnixMs >= rule.holdFor.wholeMilliseconds {
        fire(st, host: host.name, at: t)
      }
      return
    }
    guard var a = st.open else { return }
    if a.state == .pending {
      st.open = nil
      openByID[a.id] = nil
      actions.append(.discard(a))
      return
    }
    if st.clearSinceMs == 0 { st.clearSinceMs = max(t, 1) }
    guard t - st.clearSinceMs >= rule.clearFor.wholeMilliseconds else { return }
    a.state = .resolved
    a.resolvedAtUnixMs = t
    a.updatedAtUnixMs = t
    a.summary = Template.render(rule.summary, a, status: "RESOLVED")
    st.open = nil
    st.clearSinceMs = 0
    openByID[a.id] = nil
    actions.append(.save(a))
    if case .absence = rule.kind { down.remove(host.name) }
    // Announced firing → announce the end, unless silenced now.
    if st.notifiedAtMs > 0, !silenced(a, nowMs: t) {
      actions.append(.notify(a, .resolved, channels: channels(a)))
    }
    st.notifiedAtMs = 0
  }

  private func fire(_ st: SeriesState, host: String, at t: Int64) {
    guard var a = st.open else { return }
    let rule = rules.rules[st.rule]
    a.state = .firing
    a.updatedAtUnixMs = t
    a.summary = Template.render(rule.summary, a, status: "FIRING")
    st.open = a
    actions.append(.save(a))
    if case .absence = rule.kind { down.insert(host) }
    considerNotify(st, nowMs: t)
  }

  /// Sends a firing alert that was never sent (or is due again), unless it
  /// is silenced or its host is down.
  private func considerNotify(_ st: SeriesState, nowMs: Int64) {
    guard let a = st.open, a.state == .firing else { return }
    if case .absence = rules.rules[st.rule].kind {} else if down.contains(a.host) { return }
    if silenced(a, nowMs: nowMs) { return }
    let kind: NotificationKind
    if st.notifiedAtMs == 0 {
      kind = .firing
    } else if !a.acknowledged, nowMs - st.notifiedAtMs >= rules.settings.repeatInterval.wholeMilliseconds {
      kind = .repeated
    } else {
      return
    }
    st.notifiedAtMs = nowMs
    actions.append(.notify(a, kind, channels: channels(a)))
  }

  private func channels(_ a: Alert) -> [String] { rules.channels(for: a, meta: meta[a.host] ?? HostMeta()) }

  func silenced(_ a: Alert, nowMs: Int64) -> Bool {
    silences.contains { s in
      s.endsAtUnixMs > nowMs
        && (s.alertId.isEmpty || s.alertId == a.id)
        && (s.rule.isEmpty || glob(s.rule, a.rule))
        && (s.host.isEmpty || glob(s.host, a.host))
    }
  }

  private func labels(_ rule: Rule, _ series: String) -> [Label] {
    var out: [Label] = []
    if !series.isEmpty {
      let key: String
      if case .event = rule.kind { key = "source" } else { key = rule.kind.metric?.seriesLabel ?? "series" }
      out.append(Label(key: key, value: series))
    }
    for (k, v) in rule.labels.sorted(by: { $0.key < $1.key }) { out.append(Label(key: k, value: v)) }
    return out
  }

  public static func fingerprint(_ rule: String, _ host: String, _ series: String) -> String {
    "\(rule)|\(host)|\(series)"
  }

  /// Short, stable and unique per episode: FNV-1a of fingerprint@start.
  public static func alertID(_ fingerprint: String, startedMs: Int64) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in "\(fingerprint)@\(startedMs)".utf8 {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01b3
    }
    let hex = String(h, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
  }
}

/// One host's evaluation state.
final class HostState {
  let name: String
  var lastSeenMs: Int64 = 0
  var intervalMs: Int64 = 0
  var applies: [Bool]
  var metaVersion = 0
  var stamp: UInt32 = 0
  /// Per rule: the state of the host-wide series...
  var single: [SeriesState?]
  /// ...and of the labelled ones.
  var multi: [[String: SeriesState]?]

  init(name: String, rules: Int) {
    self.name = name
    applies = Array(repeating: true, count: rules)
    single = Array(repeating: nil, count: rules)
    multi = Array(repeating: nil, count: rules)
  }

  @inline(__always)
  func series(_ rule: Int, _ name: String) -> SeriesState {
    if name.isEmpty {
      if let s = single[rule] { return s }
      let s = SeriesState(rule: rule, name: name)
      single[rule] = s
      return s
    }
    if let s = multi[rule]?[name] { return s }
    let s = SeriesState(rule: rule, name: name)
    multi[rule, default: [:]][name] = s
    return s
  }
}

extension Array {
  fileprivate subscript<K: Hashable, V>(i: Int, default d: [K: V]) -> [K: V] where Element == [K: V]? {
    get { self[i] ?? d }
    set { self[i] = newValue }
  }
}

/// One rule × host × series.
final class SeriesState {
  let rule: Int
  let name: String
  var open: Alert?
  var notifiedAtMs: Int64 = 0
  var clearSinceMs: Int64 = 0
  var stamp: UInt32 = 0
  var lastEventMs: Int64 = 0
  var eventMessage = ""
  // Anomaly: the running mean and variance.
  var count = 0
  var mean = 0.0
  var variance = 0.0
  // Trend: (ms, value) samples within the window, thinned to ~64.
  var times: [Int64] = []
  var values: [Double] = []

  init(rule: Int, name: String) {
    self.rule = rule
    self.name = name
  }

  var sampleCount: Int { times.count }

  func addSample(_ t: Int64, _ v: Double, window: Int64) {
    if let last = times.last, t - last < window / 64 {
      values[values.count - 1] = v
      return
    }
    times.append(t)
    values.append(v)
    if let first = times.first, t - first > window {
      let drop = times.firstIndex { t - $0 <= window } ?? 0
      times.removeFirst(drop)
      values.removeFirst(drop)
    }
  }

  /// The least-squares slope of value over time, per millisecond.
  func slopePerMs() -> Double? {
    let n = Double(times.count)
    guard times.count >= 2 else { return nil }
    let t0 = times[0]
    var sx = 0.0, sy = 0.0, sxx = 0.0, sxy = 0.0
    for (t, y) in zip(times, values) {
      let x = Double(t - t0)
      sx += x
      sy += y
      sxx += x * x
      sxy += x * y
    }
    let d = n * sxx - sx * sx
    guard d > 0 else { return nil }
    return (n * sxy - sx * sy) / d
  }
}
