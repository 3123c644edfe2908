import Foundation
import MirrorService
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
  /// Every host by its index, with when its last batch arrived and its
  /// interval (flat arrays: the per-second scan reads only these).
  private var hostList: [HostState] = []
  private var seenMs: [Int64] = []
  private var intervalsMs: [Int64] = []
  /// Per host: how many absence alerts are open.
  private var openAbsences: [Int32] = []

  private let metricRules: [Int]
  private let absenceRules: [Int]
  private let eventRules: [Int]
  /// What each metric rule tests, in plain values (copied on the hot path
  /// without reference counting, unlike `Rule`).
  private let checks: [Check]
  /// For each absence rule: after how many intervals (0 for other kinds).
  private let absenceIntervals: [Int64]

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
    checks = rules.rules.map(Check.init)
    absenceIntervals = rules.rules.map { if case .absence(let n) = $0.kind { Int64(n) } else { 0 } }
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
      track(st, opened: true, host: host)
      if absenceIntervals[ruleIndex] > 0, s.alert.state == .firing { down.insert(s.alert.host) }
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
      if seen.ms > seenMs[h.index] { seenMs[h.index] = seen.ms }
      if intervalsMs[h.index] == 0 { intervalsMs[h.index] = max(seen.intervalMs, 1000) }
    }
  }

  public func setSilences(_ s: [Silence]) { silences = s }

  /// One batch from `metrics.normalized`; `nowMs` is when it arrived.
  public func observe(_ n: NormalizedBatch, nowMs: Int64) {
    guard let b = n.batch else { return }
    let host = state(b.host)
    let t = b.collectedAtUnixMs
    let lastSeen = max(seenMs[host.index], nowMs)
    let interval = Int64(max(b.intervalMs, 1000))
    seenMs[host.index] = lastSeen
    intervalsMs[host.index] = interval
    refreshApplicability(host)
    for i in absenceRules where host.applies[i] {
      // A batch that arrived long ago (a redelivery) does not end "down".
      if lastTickMs > 0, lastTickMs - lastSeen > absenceIntervals[i] * interval { continue }
      guard host.openSeries[i] > 0 else { continue }
      evaluate(host, i, "", state: host.single(i), condition: false, value: 0, at: nowMs)
    }
    host.stamp &+= 1
    let stamp = host.stamp
    for i in metricRules where host.applies[i] {
      let check = checks[i]
      guard let metric = check.metric else { continue }
      // A threshold needs no state unless its condition holds or one of
      // its alerts is open on this host: most of the fleet, most of the
      // time, costs a comparison and no memory beyond the batch.
      let stateless: (Comparison, Double)?
      if case .threshold(let op, let limit) = check.test { stateless = (op, limit) } else { stateless = nil }
      let anyOpen = host.openSeries[i] > 0
      if !check.labelled {
        metric.forEach(in: n, batch: b) { _, value in
          if let (op, limit) = stateless, !anyOpen, !op.holds(value, limit) { return }
          let st = host.single(i)
          let (condition, shown) = test(check, st, value: value, at: t)
          if condition || st.isOpen {
            evaluate(host, i, "", state: st, condition: condition, value: shown, at: t)
          }
        }
        continue
      }
      var position = 0
      metric.forEach(in: n, batch: b) { series, value in
        defer { position += 1 }
        if let (op, limit) = stateless, !anyOpen, !op.holds(value, limit) { return }
        let st = host.series(i, series, near: position)
        st.stamp = stamp
        let (condition, shown) = test(check, st, value: value, at: t)
        if condition || st.isOpen {
          evaluate(host, i, st.name, state: st, condition: condition, value: shown, at: t)
        }
      }
      // A series this batch no longer has (a mount gone, a collector
      // recovered) counts as clear.
      if anyOpen {
        for st in host.multi[i] where st.stamp != stamp && st.isOpen {
          evaluate(host, i, st.name, state: st, condition: false, value: st.open?.value ?? 0, at: t)
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
    // The clocks of all hosts sit in two flat arrays: a scan of the fleet
    // every second touches a host's state only when it has gone quiet.
    for k in seenMs.indices where seenMs[k] > 0 {
      let quiet = nowMs - seenMs[k]
      let interval = intervalsMs[k]
      for i in absenceRules {
        if quiet > absenceIntervals[i] * interval {
          let host = hostList[k]
          refreshApplicability(host)
          guard host.applies[i] else { continue }
          evaluate(host, i, "", state: host.single(i), condition: true, value: Double(quiet) / 1000, at: nowMs)
        } else if openAbsences[k] > 0, hostList[k].openSeries[i] > 0 {
          evaluate(hostList[k], i, "", state: hostList[k].single(i), condition: false, value: 0, at: nowMs)
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

  public func acknowledge(_ id: String, by: String, comment: String = "", nowMs: Int64) -> Alert? {
    guard let st = openByID[id], var a = st.open else { return nil }
    a.acknowledged = true
    a.acknowledgedBy = by
    a.acknowledgedComment = comment
    a.updatedAtUnixMs = nowMs
    st.open = a
    return a
  }

  public var openAlerts: [Alert] { openByID.values.compactMap(\.open) }

  /// How many alerts are pending or firing.
  public var openCount: Int { openByID.count }

  /// What the evaluations since the last call decided.
  public func drainActions() -> [AlertAction] {
    defer { actions.removeAll(keepingCapacity: true) }
    return actions
  }

  // MARK: Evaluation

  private func state(_ name: String) -> HostState {
    if let h = hosts[name] { return h }
    let h = HostState(name: name, index: hostList.count, rules: rules.rules.count)
    hosts[name] = h
    hostList.append(h)
    seenMs.append(0)
    intervalsMs.append(0)
    openAbsences.append(0)
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
  private func test(_ check: Check, _ st: SeriesState, value: Double, at t: Int64) -> (Bool, Double) {
    switch check.test {
    case .threshold(let op, let limit):
      return (op.holds(value, limit), value)
    case .anomaly(let z, let alpha, let minSamples, let minDeviation, let direction):
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
    case .trend(let limit, let horizonMs, let windowMs, let minSamples):
      if st.addSample(t, value, window: windowMs) { st.slope = st.slopePerMs() }
      if value >= limit { return (true, 0) }
      guard st.sampleCount >= minSamples, let slope = st.slope, slope > 0 else { return (false, 0) }
      let eta = (limit - value) / slope
      return (eta <= Double(horizonMs), eta / 3_600_000)
    case .none:
      return (false, value)
    }
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
        track(st, opened: true, host: host)
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
      track(st, opened: false, host: host)
      st.open = nil
      actions.append(.discard(a))
      return
    }
    if st.clearSinceMs == 0 { st.clearSinceMs = max(t, 1) }
    guard t - st.clearSinceMs >= rule.clearFor.wholeMilliseconds else { return }
    a.state = .resolved
    a.resolvedAtUnixMs = t
    a.updatedAtUnixMs = t
    a.summary = Template.render(rule.summary, a, status: "RESOLVED")
    track(st, opened: false, host: host)
    st.open = nil
    st.clearSinceMs = 0
    actions.append(.save(a))
    if case .absence = rule.kind { down.remove(host.name) }
    // Announced firing → announce the end, unless silenced now.
    if st.notifiedAtMs > 0, !silenced(a, nowMs: t) {
      actions.append(.notify(a, .resolved, channels: channels(a)))
    }
    st.notifiedAtMs = 0
  }

  /// Keeps the indexes of open alerts (by id, per rule and host, absence
  /// per host) in step with `st.open`; called before it is cleared.
  private func track(_ st: SeriesState, opened: Bool, host: HostState) {
    guard let id = st.open?.id else { return }
    let delta: Int32 = opened ? 1 : -1
    openByID[id] = opened ? st : nil
    host.openSeries[st.rule] += Int(delta)
    if absenceIntervals[st.rule] > 0 { openAbsences[host.index] += delta }
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

  func silenced(_ a: Alert, nowMs: Int64) -> Bool { silences.contains { $0.mutes(a, nowMs: nowMs) } }

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

/// A metric rule's test in plain values.
struct Check {
  enum Test {
    case threshold(Comparison, Double)
    case anomaly(z: Double, alpha: Double, minSamples: Int, minDeviation: Double, direction: Direction)
    case trend(limit: Double, horizonMs: Int64, windowMs: Int64, minSamples: Int)
    case none
  }
  let metric: Metric?
  let labelled: Bool
  let test: Test

  init(_ rule: Rule) {
    metric = rule.kind.metric
    labelled = !(rule.kind.metric?.seriesLabel.isEmpty ?? true)
    switch rule.kind {
    case .threshold(_, let op, let value): test = .threshold(op, value)
    case .anomaly(_, let z, let alpha, let minSamples, let minDeviation, let direction):
      test = .anomaly(z: z, alpha: alpha, minSamples: minSamples, minDeviation: minDeviation, direction: direction)
    case .trend(_, let limit, let horizon, let window, let minSamples):
      test = .trend(
        limit: limit, horizonMs: horizon.wholeMilliseconds, windowMs: window.wholeMilliseconds, minSamples: minSamples)
    case .absence, .event: test = .none
    }
  }
}

/// One host's evaluation state.
final class AlertBox {
  let alert: Alert
  init(_ alert: Alert) { self.alert = alert }
}

final class HostState {
  let name: String
  let index: Int
  var applies: [Bool]
  var metaVersion = 0
  var stamp: UInt32 = 0
  /// Per rule: the state of the host-wide series...
  var singles: [SeriesState?]
  /// ...and of the labelled ones, in the order batches list them (so the
  /// next batch finds each at the same place, without hashing).
  var multi: [[SeriesState]]
  /// Per rule: how many of its series have an open alert on this host.
  var openSeries: [Int]

  init(name: String, index: Int, rules: Int) {
    self.name = name
    self.index = index
    applies = Array(repeating: true, count: rules)
    singles = Array(repeating: nil, count: rules)
    multi = Array(repeating: [], count: rules)
    openSeries = Array(repeating: 0, count: rules)
  }

  @inline(__always)
  func single(_ rule: Int) -> SeriesState {
    if let s = singles[rule] { return s }
    let s = SeriesState(rule: rule, name: "")
    singles[rule] = s
    return s
  }

  /// The state of a series, looked for first at `near` (where the last
  /// batch had it).
  @inline(__always)
  func series(_ rule: Int, _ key: Metric.Series, near: Int) -> SeriesState {
    if near < multi[rule].count {
      let s = multi[rule][near]
      if s.part == key.part, s.subpart == key.subpart { return s }
    }
    if let s = multi[rule].first(where: { $0.part == key.part && $0.subpart == key.subpart }) { return s }
    let name = key.name
    if let s = multi[rule].first(where: { $0.name == name }) {
      s.adopt(key)
      return s
    }
    let s = SeriesState(rule: rule, name: name, part: key.part, subpart: key.subpart)
    multi[rule].append(s)
    return s
  }

  /// The state of a series by its name (events, restored alerts).
  func series(_ rule: Int, _ name: String) -> SeriesState {
    if name.isEmpty { return single(rule) }
    if let s = multi[rule].first(where: { $0.name == name }) { return s }
    let s = SeriesState(rule: rule, name: name, part: name, subpart: "")
    multi[rule].append(s)
    return s
  }
}

/// One rule × host × series.
final class SeriesState {
  // The fields every batch reads come first, together (one or two cache
  // lines: a large fleet's states do not fit in cache, and the evaluation
  // is bound by memory, not arithmetic).
  private(set) var part: String
  private(set) var subpart: String
  var stamp: UInt32 = 0
  /// `open != nil`, without touching the alert.
  private(set) var isOpen = false
  var count = 0
  // Anomaly: the running mean and variance.
  var mean = 0.0
  var variance = 0.0
  // Trend: when the newest sample was taken.
  var lastSampleMs: Int64 = 0
  // The rest is read when an alert is open or a trend is fitted.
  let rule: Int
  private(set) var name: String
  /// The pending or firing alert of this series (boxed: an `Alert` inline
  /// would spread the hot fields over many more cache lines).
  var open: Alert? {
    get { box?.alert }
    set {
      if let newValue { box = AlertBox(newValue) } else { box = nil }
      isOpen = newValue != nil
    }
  }
  private var box: AlertBox?
  var notifiedAtMs: Int64 = 0
  var clearSinceMs: Int64 = 0
  var lastEventMs: Int64 = 0
  var eventMessage = ""
  // Trend: (ms, value) samples within the window, thinned to ~64.
  var times: [Int64] = []
  var values: [Double] = []
  var slope: Double?

  /// A state made from a stored alert knows only the joined name; the
  /// first batch naming it in parts teaches it those.
  func adopt(_ key: Metric.Series) {
    part = key.part
    subpart = key.subpart
  }

  init(rule: Int, name: String, part: String = "", subpart: String = "") {
    self.rule = rule
    self.name = name
    self.part = part
    self.subpart = subpart
  }

  var sampleCount: Int { times.count }

  /// Adds a sample unless the newest is within 1/64 of the window (the
  /// line needs ~64 points, not one per batch); true when it was added and
  /// the line should be fitted again.
  @inline(__always)
  func addSample(_ t: Int64, _ v: Double, window: Int64) -> Bool {
    if t - lastSampleMs < window / 64 { return false }
    lastSampleMs = t
    times.append(t)
    values.append(v)
    if let first = times.first, t - first > window {
      let drop = times.firstIndex { t - $0 <= window } ?? 0
      times.removeFirst(drop)
      values.removeFirst(drop)
    }
    return true
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
