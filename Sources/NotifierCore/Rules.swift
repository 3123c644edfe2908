import Foundation
public import MirrorService
public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// Which hosts a rule or route covers: every list that is given must match
/// (names are shell globs; a host is in a group as `host_groups` says).
public struct HostSelector: Sendable, Hashable {
  public var names: [String] = []
  public var groups: [String] = []
  public var labels: [String: String] = [:]
  public init() {}

  public var isEmpty: Bool { names.isEmpty && groups.isEmpty && labels.isEmpty }

  public func matches(_ host: String, _ meta: HostMeta) -> Bool {
    if !names.isEmpty, !names.contains(where: { glob($0, host) }) { return false }
    if !groups.isEmpty, !groups.contains(where: { meta.groups.contains($0) }) { return false }
    return labels.allSatisfy { meta.labels[$0.key] == $0.value }
  }
}

/// What the Notifier knows of a host besides its batches.
public struct HostMeta: Sendable, Hashable {
  public var labels: [String: String] = [:]
  public var groups: Set<String> = []
  public init(labels: [String: String] = [:], groups: Set<String> = []) {
    self.labels = labels
    self.groups = groups
  }
}

func glob(_ pattern: String, _ s: String) -> Bool { pattern == "*" || fnmatch(pattern, s, 0) == 0 }

public enum Comparison: String, Sendable, CaseIterable {
  case above = ">", atLeast = ">=", below = "<", atMost = "<=", equal = "==", notEqual = "!="
  @inline(__always) func holds(_ a: Double, _ b: Double) -> Bool {
    switch self {
    case .above: a > b
    case .atLeast: a >= b
    case .below: a < b
    case .atMost: a <= b
    case .equal: a == b
    case .notEqual: a != b
    }
  }
}

public enum Direction: String, Sendable { case up, down, both }

public enum RuleKind: Sendable {
  /// metric op value, held for the rule's `for`.
  case threshold(metric: Metric, op: Comparison, value: Double)
  /// No batch for `intervals` of the host's own interval: "host down".
  case absence(intervals: Int)
  /// Far from its own baseline: an EWMA of mean and variance, |z| ≥ `z`.
  case anomaly(metric: Metric, z: Double, alpha: Double, minSamples: Int, minDeviation: Double, direction: Direction)
  /// Predicted to reach `limit` within `horizon` by a least-squares line
  /// over the last `window` of samples.
  case trend(metric: Metric, limit: Double, horizon: Duration, window: Duration, minSamples: Int)
  /// An event on `events.<host>` of one of these kinds; resolves after
  /// `resolveAfter` without another.
  case event(kinds: Set<EventKind>, resolveAfter: Duration)

  public var name: String {
    switch self {
    case .threshold: "threshold"
    case .absence: "absence"
    case .anomaly: "anomaly"
    case .trend: "trend"
    case .event: "event"
    }
  }

  public var metric: Metric? {
    switch self {
    case .threshold(let m, _, _), .anomaly(let m, _, _, _, _, _), .trend(let m, _, _, _, _): m
    case .absence, .event: nil
    }
  }
}

public struct Rule: Sendable {
  public var name: String
  public var kind: RuleKind
  public var severity: Severity = .warning
  /// How long the condition must hold before the alert fires.
  public var holdFor: Duration = .zero
  /// How long the condition must be gone before the alert resolves (so a
  /// metric hovering at the threshold does not flap).
  public var clearFor: Duration = .seconds(30)
  public var hosts = HostSelector()
  /// Template for the one-line summary; see Template.
  public var summary: String = ""
  /// Extra labels on the alert (for routes).
  public var labels: [String: String] = [:]
  public var line = 0

  public init(name: String, kind: RuleKind) {
    self.name = name
    self.kind = kind
  }

  /// The value the summary shows as `{{threshold}}`.
  public var threshold: Double {
    switch kind {
    case .threshold(_, _, let v): v
    case .absence(let n): Double(n)
    case .anomaly(_, let z, _, _, _, _): z
    case .trend(_, _, let horizon, _, _): Double(horizon.wholeMilliseconds) / 3_600_000
    case .event: 0
    }
  }
}

public enum ChannelKind: String, Sendable, CaseIterable { case ntfy, telegram, webhook }

/// Where notifications go. Secrets (tokens) come from the environment or
/// a file and are never logged.
public struct Channel: Sendable {
  public var name: String
  public var kind: ChannelKind
  /// ntfy: the topic URL; webhook: the URL; telegram: the Bot API base.
  public var url: String
  public var token: String?
  public var chatID: String = ""
  /// webhook: `json` (our schema) or `slack`.
  public var format: String = "json"
  public var headers: [String: String] = [:]
  /// At most this many messages a minute; more wait and go out together.
  public var perMinute: Int = 30
  public var line = 0
  public init(name: String, kind: ChannelKind, url: String) {
    self.name = name
    self.kind = kind
    self.url = url
  }

  /// The request URL, without secrets, for logs.
  public var redactedURL: String {
    kind == .telegram ? "\(url)/bot***/sendMessage" : url
  }
}

/// Which channels an alert goes to: the first route that matches (and any
/// after it while `continue` is set).
public struct Route: Sendable {
  public var severities: Set<Severity> = []
  public var rules: [String] = []
  public var hosts = HostSelector()
  public var labels: [String: String] = [:]
  public var channels: [String] = []
  public var continueMatching = false
  public init() {}

  public func matches(_ alert: Alert, meta: HostMeta) -> Bool {
    if !severities.isEmpty, !severities.contains(alert.severity) { return false }
    if !rules.isEmpty, !rules.contains(where: { glob($0, alert.rule) }) { return false }
    if !hosts.matches(alert.host, meta) { return false }
    return labels.allSatisfy { kv in alert.labels.contains { $0.key == kv.key && $0.value == kv.value } }
  }
}

public struct NotifierSettings: Sendable {
  /// Alerts queued for a channel within this window go out as one message.
  public var groupWait: Duration = .milliseconds(500)
  /// A firing alert that is not acknowledged is sent again this often.
  public var repeatInterval: Duration = .seconds(4 * 3600)
  public var retryInitial: Duration = .seconds(1)
  public var retryMax: Duration = .seconds(300)
  public var maxAttempts = 10
  /// At most this many alerts in one grouped message.
  public var maxGroup = 20
  public var titleTemplate = "{{status}} {{rule}} on {{host}}"
  public var bodyTemplate = "{{summary}}"
  public init() {}
}

/// The rules file: settings, channels, routes and rules.
public struct NotifierRules: Sendable {
  public var settings = NotifierSettings()
  public var rules: [Rule] = []
  public var channels: [Channel] = []
  public var routes: [Route] = []
  public init() {}

  /// The channels an alert goes to.
  public func channels(for alert: Alert, meta: HostMeta) -> [String] {
    var out: [String] = []
    for r in routes where r.matches(alert, meta: meta) {
      for c in r.channels where !out.contains(c) { out.append(c) }
      if !r.continueMatching { break }
    }
    return out
  }

  /// Loads a rules file (nil: the built-in defaults only).
  public static func load(_ path: String?) throws(YAMLFileError) -> NotifierRules {
    try load(path, environment: ProcessInfo.processInfo.environment)
  }

  public static func load(_ path: String?, environment: [String: String]) throws(YAMLFileError) -> NotifierRules {
    guard let path else { return try defaults() }
    return try parse(YAMLValue.load(path), environment: environment, builtIn: false)
  }

  public static func defaults() throws(YAMLFileError) -> NotifierRules {
    try parse(YAMLValue.parse(DefaultRules.yaml, file: "<built-in default rules>"), environment: [:], builtIn: true)
  }

  /// Reads a parsed rules file; `builtIn` is set for the defaults themselves.
  public static func parse(_ doc: YAMLValue, environment: [String: String], builtIn: Bool = false)
    throws(YAMLFileError) -> NotifierRules
  {
    try doc.onlyKeys(["settings", "include-defaults", "channels", "routes", "rules", "templates"])
    var out = NotifierRules()
    if let s = doc["settings"] {
      try s.onlyKeys(["group-wait", "repeat-interval", "retry-initial", "retry-max", "max-attempts", "max-group"])
      if let v = s["group-wait"] { out.settings.groupWait = try v.duration() }
      if let v = s["repeat-interval"] { out.settings.repeatInterval = try v.duration() }
      if let v = s["retry-initial"] { out.settings.retryInitial = try v.duration() }
      if let v = s["retry-max"] { out.settings.retryMax = try v.duration() }
      if let v = s["max-attempts"] { out.settings.maxAttempts = try v.int(in: 1...100) }
      if let v = s["max-group"] { out.settings.maxGroup = try v.int(in: 1...500) }
    }
    if let t = doc["templates"] {
      try t.onlyKeys(["title", "body"])
      if let v = t["title"] { out.settings.titleTemplate = try Template.checked(v) }
      if let v = t["body"] { out.settings.bodyTemplate = try Template.checked(v) }
    }
    for c in try doc["channels"]?.list() ?? [] {
      let channel = try parseChannel(c, environment: environment)
      if out.channels.contains(where: { $0.name == channel.name }) {
        throw c.error("a channel named '\(channel.name)' is defined twice")
      }
      out.channels.append(channel)
    }
    for r in try doc["routes"]?.list() ?? [] {
      try r.onlyKeys(["severity", "rules", "hosts", "group", "labels", "channels", "continue"])
      var route = Route()
      for s in try r["severity"]?.strings() ?? [] {
        guard let sev = severity(s) else { throw (r["severity"] ?? r).error("'\(s)' is not info, warning or critical") }
        route.severities.insert(sev)
      }
      route.rules = try r["rules"]?.strings() ?? []
      route.hosts.names = try r["hosts"]?.strings() ?? []
      route.hosts.groups = try r["group"]?.strings() ?? []
      route.labels = try r["labels"]?.stringMap() ?? [:]
      route.continueMatching = try r["continue"]?.bool() ?? false
      let names = try r.required("channels")
      route.channels = try names.strings()
      for c in route.channels where !out.channels.contains(where: { $0.name == c }) {
        throw names.error("no channel named '\(c)'")
      }
      out.routes.append(route)
    }
    if out.routes.isEmpty, !out.channels.isEmpty {
      // Without routes, every alert goes to every channel.
      var all = Route()
      all.channels = out.channels.map(\.name)
      out.routes = [all]
    }
    var rules: [Rule] = []
    for r in try doc["rules"]?.list() ?? [] {
      let rule = try parseRule(r)
      if rules.contains(where: { $0.name == rule.name }) {
        throw r.error("a rule named '\(rule.name)' is defined twice")
      }
      rules.append(rule)
    }
    if try doc["include-defaults"]?.bool() ?? !builtIn {
      // A rule of the file replaces the default of the same name.
      let builtIn = try defaults().rules.filter { d in !rules.contains { $0.name == d.name } }
      rules = builtIn + rules
    }
    out.rules = rules
    return out
  }

  static func severity(_ s: String) -> Severity? {
    switch s.lowercased() {
    case "info": .info
    case "warning": .warning
    case "critical": .critical
    default: nil
    }
  }

  static func parseRule(_ r: YAMLValue) throws(YAMLFileError) -> Rule {
    try r.onlyKeys([
      "name", "kind", "metric", "op", "value", "for", "clear-for", "severity", "hosts", "group", "labels",
      "host-labels", "summary", "intervals", "z", "alpha", "min-samples", "min-deviation", "direction", "limit",
      "horizon", "window", "events", "resolve-after",
    ])
    let name = try r.required("name").string()
    guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
      throw (r["name"] ?? r).error("'\(name)' must be letters, digits, - and _")
    }
    let kindValue = try r.required("kind")
    let kindName = try kindValue.oneOf(["threshold", "absence", "anomaly", "trend", "event"])
    func metric() throws(YAMLFileError) -> Metric {
      let v = try r.required("metric")
      let s = try v.string()
      guard let m = Metric(rawValue: s) else {
        throw v.error("unknown metric '\(s)' (known: \(Metric.allCases.map(\.rawValue).joined(separator: ", ")))")
      }
      return m
    }
    func positive(_ key: String, _ fallback: Double) throws(YAMLFileError) -> Double {
      guard let v = r[key] else { return fallback }
      let d = try v.double()
      guard d > 0 else { throw v.error("must be above zero") }
      return d
    }
    let kind: RuleKind
    switch kindName {
    case "threshold":
      let opValue = try r.required("op")
      guard let op = Comparison(rawValue: try opValue.string()) else {
        throw opValue.error("must be one of \(Comparison.allCases.map(\.rawValue).joined(separator: " "))")
      }
      kind = .threshold(metric: try metric(), op: op, value: try r.required("value").double())
    case "absence":
      kind = .absence(intervals: try r["intervals"]?.int(in: 1...1000) ?? 3)
    case "anomaly":
      let alpha = try positive("alpha", 0.05)
      guard alpha < 1 else { throw (r["alpha"] ?? r).error("must be between 0 and 1") }
      let direction = try r["direction"]?.oneOf(["up", "down", "both"]) ?? "up"
      kind = .anomaly(
        metric: try metric(), z: try positive("z", 4), alpha: alpha,
        minSamples: try r["min-samples"]?.int(in: 2...100_000) ?? 60,
        minDeviation: try r["min-deviation"]?.double() ?? 1, direction: Direction(rawValue: direction) ?? .up)
    case "trend":
      kind = .trend(
        metric: try metric(), limit: try r["limit"]?.double() ?? 100,
        horizon: try r["horizon"]?.duration() ?? .seconds(86_400),
        window: try r["window"]?.duration() ?? .seconds(6 * 3600),
        minSamples: try r["min-samples"]?.int(in: 3...100_000) ?? 12)
    default:
      let v = try r.required("events")
      var kinds: Set<EventKind> = []
      for s in try v.strings() {
        guard let k = eventKind(s) else {
          throw v.error("unknown event '\(s)' (known: \(eventNames.keys.sorted().joined(separator: ", ")))")
        }
        kinds.insert(k)
      }
      kind = .event(kinds: kinds, resolveAfter: try r["resolve-after"]?.duration() ?? .seconds(3600))
    }
    var rule = Rule(name: name, kind: kind)
    rule.line = r.line
    if let v = r["severity"] {
      guard let s = severity(try v.string()) else { throw v.error("must be info, warning or critical") }
      rule.severity = s
    }
    if let v = r["for"] { rule.holdFor = try v.duration() }
    if case .absence = kind { rule.clearFor = .zero }
    if case .event = kind { rule.clearFor = .zero }
    if let v = r["clear-for"] { rule.clearFor = try v.duration() }
    rule.hosts.names = try r["hosts"]?.strings() ?? []
    rule.hosts.groups = try r["group"]?.strings() ?? []
    rule.hosts.labels = try r["host-labels"]?.stringMap() ?? [:]
    rule.labels = try r["labels"]?.stringMap() ?? [:]
    if let v = r["summary"] { rule.summary = try Template.checked(v) }
    return rule
  }

  static let eventNames: [String: EventKind] = [
    "agent_started": .agentStarted, "agent_stopping": .agentStopping, "service_state": .serviceState,
    "collector_failed": .collectorFailed, "smart_failed": .smartFailed, "command_failed": .commandFailed,
    "host_registered": .hostRegistered,
  ]

  static func eventKind(_ s: String) -> EventKind? { eventNames[s.lowercased()] }

  static func parseChannel(_ c: YAMLValue, environment: [String: String]) throws(YAMLFileError) -> Channel {
    try c.onlyKeys([
      "name", "type", "url", "token", "token-env", "token-file", "chat-id", "format", "headers", "per-minute",
    ])
    let name = try c.required("name").string()
    let type = try c.required("type").oneOf(ChannelKind.allCases.map(\.rawValue))
    let kind = ChannelKind(rawValue: type) ?? .webhook
    let url = try c["url"]?.string() ?? (kind == .telegram ? "https://api.telegram.org" : "")
    guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
      throw (c["url"] ?? c).error(url.isEmpty ? "'url' is required" : "'\(url)' is not an http(s) URL")
    }
    var channel = Channel(name: name, kind: kind, url: url.hasSuffix("/") ? String(url.dropLast()) : url)
    channel.line = c.line
    if let v = c["token"] { channel.token = try v.string() }
    if let v = c["token-env"] {
      let variable = try v.string()
      guard let value = environment[variable], !value.isEmpty else {
        throw v.error("the environment variable \(variable) is not set")
      }
      channel.token = value
    }
    if let v = c["token-file"] {
      let path = try v.string()
      guard let data = FileManager.default.contents(atPath: path) else { throw v.error("cannot read \(path)") }
      channel.token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
    if kind == .telegram {
      guard channel.token != nil else {
        throw c.error("a telegram channel needs the bot token (token-env or token-file)")
      }
      channel.chatID = try c.required("chat-id").string()
    }
    if let v = c["format"] { channel.format = try v.oneOf(["json", "slack"]) }
    channel.headers = try c["headers"]?.stringMap() ?? [:]
    if let v = c["per-minute"] { channel.perMinute = try v.int(in: 1...10_000) }
    return channel
  }
}
