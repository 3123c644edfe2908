public import Foundation
public import MirrorService
public import MirrorWire
import Synchronization

/// The console's picture of the fleet, kept live from the bus: each host's
/// registration (`hosts.list`), its latest normalized batch and the last
/// 15 minutes of its row values (for sparklines), and the open alerts.
/// Observers hear which hosts changed.
public final class Fleet: Sendable {
  /// Points kept per sparkline: 15 minutes at 5 s.
  public static let sparkPoints = 180
  public static let sparkStepMs: Int64 = 5_000
  /// A host is down after this many intervals without a batch.
  let downAfterIntervals: Int64

  struct Host {
    var status: HostStatus
    var latest: NormalizedBatch?
    var values = RowValues()
    var lastSeenMs: Int64 = 0
    /// Ring of row values by 5 s slot: slot time and the eight values.
    var sparkTimes = [Int64](repeating: -1, count: Fleet.sparkPoints)
    var spark = [Float](repeating: .nan, count: Fleet.sparkPoints * RowValues.names.count)
    var lastState = ""
    /// The row as JSON, made once per change of the host however many
    /// browsers are sent it; nil when something changed since.
    var rowJSON: [UInt8]?

    mutating func update(_ n: NormalizedBatch, _ values: RowValues, arrivedMs: Int64) {
      latest = n
      self.values = values
      rowJSON = nil
      lastSeenMs = max(lastSeenMs, arrivedMs)
      record(values.all, atMs: n.batch.map { $0.collectedAtUnixMs } ?? arrivedMs)
    }

    mutating func record(_ values: [Double?], atMs: Int64) {
      guard atMs >= 0 else { return }
      let slot = atMs / Fleet.sparkStepMs
      let i = Int(slot % Int64(Fleet.sparkPoints))
      sparkTimes[i] = slot
      for (k, v) in values.enumerated() { spark[i * RowValues.names.count + k] = v.map(Float.init) ?? .nan }
    }
  }

  struct State {
    var hosts: [String: Host] = [:]
    var alerts: [String: Alert] = [:]
    var observers: [UInt64: @Sendable (Change) -> Void] = [:] {
      // A list read on every batch without copying the dictionary.
      didSet { observerList = Array(observers.values) }
    }
    var observerList: [@Sendable (Change) -> Void] = []
    var nextObserver: UInt64 = 0
  }

  /// What changed, for the live stream.
  public enum Change: Sendable {
    case host(String)
    case alert(Alert)
    /// A message for the browsers watching a topic, JSON-encoded once.
    case message(Topic, [UInt8])
  }

  /// What a browser can watch besides the fleet: one command's output, or
  /// the network (the twin's diffs).
  public enum Topic: Sendable, Equatable {
    case command(String)
    case network
  }

  /// Passes a message to the browsers watching `topic`.
  public func publish(_ topic: Topic, _ json: [UInt8]) { notify(.message(topic, json)) }

  private let state = Mutex(State())

  public init(downAfterIntervals: Int64 = 3) { self.downAfterIntervals = downAfterIntervals }

  // MARK: Feeding

  /// The registrations from `hosts.list`: new hosts appear, known ones get
  /// their labels, groups and info refreshed.
  public func apply(statuses: [HostStatus]) {
    var changed: [String] = []
    state.withLock { s in
      for status in statuses {
        if var h = s.hosts[status.name] {
          if h.status != status {
            h.status = status
            h.rowJSON = nil
            h.lastSeenMs = max(h.lastSeenMs, status.lastSeenAtUnixMs)
            s.hosts[status.name] = h
            changed.append(status.name)
          }
        } else {
          s.hosts[status.name] = Host(status: status, lastSeenMs: status.lastSeenAtUnixMs)
          changed.append(status.name)
        }
      }
    }
    notify(changed.map(Change.host))
  }

  /// A normalized batch arrived (at `arrivedMs`, the console's clock).
  /// Returns false for a host the console does not know yet (the caller
  /// refreshes the registrations).
  @discardableResult
  public func apply(batch n: NormalizedBatch, arrivedMs: Int64) -> Bool {
    guard let name = n.batch?.host else { return true }
    let values = RowValues(n)
    let known = state.withLock { s -> Bool in
      let known = s.hosts[name] != nil
      if !known {
        s.hosts[name] = Host(status: HostStatus(name: name, online: true, intervalMs: n.batch?.intervalMs ?? 0))
      }
      if let b = n.batch, let old = s.hosts[name]?.latest?.batch, old.bootId == b.bootId, old.sequence > b.sequence {
        return true
      }
      // In place: a copy of the host would copy its sparkline rings (7 KB)
      // on every batch.
      s.hosts[name]!.update(n, values, arrivedMs: arrivedMs)
      return known
    }
    notify(.host(name))
    return known
  }

  /// Points from `metrics.query` for the sparklines of hosts whose rings
  /// have nothing at those times (start-up backfill).
  func backfill(metric index: Int, host: String, points: [(ms: Int64, value: Double)]) {
    state.withLock { s in
      guard var h = s.hosts[host] else { return }
      for p in points where p.ms >= 0 {
        let slot = p.ms / Fleet.sparkStepMs
        let i = Int(slot % Int64(Fleet.sparkPoints))
        if h.sparkTimes[i] != slot {
          if h.sparkTimes[i] > slot { continue }
          h.sparkTimes[i] = slot
          for k in 0..<RowValues.names.count { h.spark[i * RowValues.names.count + k] = .nan }
        }
        h.spark[i * RowValues.names.count + index] = Float(p.value)
      }
      s.hosts[host] = h
    }
  }

  public func apply(alert: Alert) {
    let host = alert.host
    state.withLock { s in
      if alert.state == .resolved { s.alerts.removeValue(forKey: alert.id) } else { s.alerts[alert.id] = alert }
      s.hosts[host]?.rowJSON = nil
    }
    notify([.alert(alert)] + (host.isEmpty ? [] : [.host(host)]))
  }

  /// Replaces the open alerts with those `alerts.list` returned.
  public func replace(alerts: [Alert]) {
    let hosts = state.withLock { s -> Set<String> in
      let before = Set(s.alerts.values.map(\.host))
      s.alerts = Dictionary(
        alerts.filter { $0.state != .resolved }.map { ($0.id, $0) }, uniquingKeysWith: { _, b in b })
      let touched = before.union(s.alerts.values.map(\.host))
      for h in touched { s.hosts[h]?.rowJSON = nil }
      return touched
    }
    notify(hosts.filter { !$0.isEmpty }.map(Change.host))
  }

  /// Hosts whose state changed with time alone (a host that stopped
  /// reporting turns down): call every second or so.
  public func tick(nowMs: Int64 = Date().unixMilliseconds) {
    let changed = state.withLock { s -> [String] in
      var out: [String] = []
      let worst = Self.worstFiring(s.alerts)
      for (name, h) in s.hosts {
        let st = stateName(h, worst: worst, nowMs: nowMs)
        if st != h.lastState {
          s.hosts[name]?.lastState = st
          s.hosts[name]?.rowJSON = nil
          out.append(name)
        }
      }
      return out
    }
    notify(changed.map(Change.host))
  }

  /// The hosts a command target names now, as the console knows them (to
  /// tell how many a command would reach; the router resolves it again).
  public func resolve(_ t: CommandTarget) -> [String] {
    switch t.kind {
    case .hosts: return t.hosts
    case .all: return hostNames.sorted()
    case .group: return rows().filter { $0.groups.contains(t.group) }.map(\.name)
    case .selector:
      return rows().filter { row in t.selector.allSatisfy { row.labels[$0.key] == $0.value } }.map(\.name)
    default: return []
    }
  }

  // MARK: Observing

  public func observe(_ observer: @escaping @Sendable (Change) -> Void) -> UInt64 {
    state.withLock { s in
      s.nextObserver += 1
      s.observers[s.nextObserver] = observer
      return s.nextObserver
    }
  }

  public func stopObserving(_ id: UInt64) { _ = state.withLock { $0.observers.removeValue(forKey: id) } }

  private func notify(_ changes: [Change]) {
    guard !changes.isEmpty else { return }
    let observers = state.withLock { $0.observerList }
    for o in observers { for c in changes { o(c) } }
  }

  /// One change (a batch, a relayed message): no array to build on the
  /// hot path.
  private func notify(_ change: Change) {
    for o in state.withLock({ $0.observerList }) { o(change) }
  }

  // MARK: Reading

  /// The worst severity firing for each host.
  static func worstFiring(_ alerts: [String: Alert]) -> [String: Severity] {
    var out: [String: Severity] = [:]
    for a in alerts.values where a.state == .firing && a.severity.rawValue > (out[a.host]?.rawValue ?? 0) {
      out[a.host] = a.severity
    }
    return out
  }

  func stateName(_ h: Host, worst: [String: Severity], nowMs: Int64) -> String {
    // The cadence the host keeps now (its batches say), else the one it
    // registered with; a second at least (as the twin and the notifier).
    let reported = h.latest?.batch?.intervalMs ?? 0
    let interval = max(Int64(reported > 0 ? reported : h.status.intervalMs > 0 ? h.status.intervalMs : 5_000), 1_000)
    if h.lastSeenMs == 0 || nowMs - h.lastSeenMs > downAfterIntervals * interval { return "down" }
    switch worst[h.status.name] {
    case .critical?: return "critical"
    case .warning?: return "warning"
    default: return "up"
    }
  }

  func row(_ h: Host, worst: [String: Severity], nowMs: Int64) -> HostRow {
    let info = h.status.info
    let os = [info?.osName ?? "", info?.osVersion ?? ""].filter { !$0.isEmpty }.joined(separator: " ")
    let st = stateName(h, worst: worst, nowMs: nowMs)
    return HostRow(
      name: h.status.name, state: st, online: st != "down", lastSeen: h.lastSeenMs == 0 ? nil : h.lastSeenMs,
      intervalMs: Int(h.latest?.batch?.intervalMs ?? h.status.intervalMs), labels: labelMap(h.status.labels),
      groups: h.status.groups, os: os,
      cpu: h.values.cpu, memory: h.values.memory, load1: h.values.load1, disk: h.values.disk, netRx: h.values.netRx,
      netTx: h.values.netTx, temperature: h.values.temperature, gpu: h.values.gpu)
  }

  public func rows(nowMs: Int64 = Date().unixMilliseconds) -> [HostRow] {
    state.withLock { s in
      let worst = Self.worstFiring(s.alerts)
      return s.hosts.values.map { row($0, worst: worst, nowMs: nowMs) }
    }
    .sorted { $0.name < $1.name }
  }

  public func rows(_ names: some Sequence<String>, nowMs: Int64 = Date().unixMilliseconds) -> [HostRow] {
    state.withLock { s in
      let worst = Self.worstFiring(s.alerts)
      return names.compactMap { s.hosts[$0].map { row($0, worst: worst, nowMs: nowMs) } }
    }
  }

  /// These hosts' rows as JSON objects, each encoded once per change (the
  /// live stream sends the same rows to every browser watching them).
  func encodedRows(_ names: some Sequence<String>, nowMs: Int64 = Date().unixMilliseconds) -> [[UInt8]] {
    let encoder = JSONEncoder()
    return state.withLock { s in
      let worst = Self.worstFiring(s.alerts)
      return names.compactMap { name -> [UInt8]? in
        guard let h = s.hosts[name] else { return nil }
        if let cached = h.rowJSON { return cached }
        let json = (try? encoder.encode(row(h, worst: worst, nowMs: nowMs))).map { [UInt8]($0) } ?? []
        s.hosts[name]!.rowJSON = json
        return json
      }
    }
  }

  public var hostNames: [String] { state.withLock { Array($0.hosts.keys) } }

  /// A host's registration, latest batch and open alerts.
  public func detail(_ name: String, nowMs: Int64 = Date().unixMilliseconds) -> (
    row: HostRow, status: HostStatus, latest: NormalizedBatch?, alerts: [Alert]
  )? {
    state.withLock { s in
      guard let h = s.hosts[name] else { return nil }
      return (
        row(h, worst: Self.worstFiring(s.alerts), nowMs: nowMs), h.status, h.latest,
        s.alerts.values.filter { $0.host == name }.sorted { $0.startedAtUnixMs > $1.startedAtUnixMs }
      )
    }
  }

  public var openAlerts: [Alert] {
    state.withLock { Array($0.alerts.values) }.sorted {
      ($0.severity.rawValue, $0.startedAtUnixMs) > ($1.severity.rawValue, $1.startedAtUnixMs)
    }
  }

  /// The sparklines of these hosts: per host, per row value, the last
  /// `sparkPoints` slots ending at `endMs`'s slot (nil where nothing).
  public func sparks(_ names: [String], endMs: Int64) -> [String: [String: [Double?]]] {
    let end = endMs / Fleet.sparkStepMs
    let width = RowValues.names.count
    return state.withLock { s in
      var out: [String: [String: [Double?]]] = [:]
      for name in names {
        guard let h = s.hosts[name] else { continue }
        var series = [[Double?]](repeating: [], count: width)
        for slot in (end - Int64(Fleet.sparkPoints) + 1)...end {
          let i = Int(slot % Int64(Fleet.sparkPoints))
          for k in 0..<width {
            let v = h.sparkTimes[i] == slot ? h.spark[i * width + k] : .nan
            series[k].append(v.isNaN ? nil : (Double(v) * 10).rounded() / 10)
          }
        }
        out[name] = Dictionary(uniqueKeysWithValues: zip(RowValues.names, series))
      }
      return out
    }
  }
}
