public import MirrorService
public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// The agent's own settings (`reflector.*` keys; docs/reflector.md).
public struct AgentSettings: Sendable {
  public var host: String
  public var interval: Duration
  public var labels: [Label]
  public var latencyTargets: [String]
  public var topK: Int
  public var smartInterval: Duration
  public var mountTimeout: Duration
  /// Batches kept while NATS is unreachable (default: one hour at 5 s).
  public var bufferCapacity: Int
  public var spoolDirectory: String?
  public var root: String
  /// How often host info is looked at for changes.
  public var hostInfoEvery: Int
  /// Page out the start-up-only code pages after the first cycles
  /// (`ResidentMemory`). It acts on the whole process, so it is off unless
  /// the program embedding the agent turns it on: the `reflector`
  /// executable does, from `reflector.trim-startup-memory` (default true).
  public var trimStartupMemory = false

  public init(config c: ConfigValues) throws(ConfigError) {
    let rawHost = c.string("reflector.host") ?? Self.systemHostName()
    host = Self.subjectToken(rawHost)
    guard Subjects.isValidHostToken(host), host.contains(where: { $0.isLetter || $0.isNumber }) else {
      throw ConfigError(
        key: "reflector.host", problem: "'\(rawHost)' gives no usable host name",
        source: c.lookup("reflector.host")?.source ?? "hostname")
    }
    interval = try c.duration("reflector.interval", default: .seconds(5))
    guard interval >= .milliseconds(100) else {
      throw ConfigError(
        key: "reflector.interval", problem: "must be at least 100ms",
        source: c.lookup("reflector.interval")?.source ?? "default")
    }
    var labels: [Label] = []
    for pair in c.list("reflector.labels", default: []) {
      let kv = pair.split(separator: "=", maxSplits: 1)
      guard kv.count == 2 else {
        throw ConfigError(
          key: "reflector.labels", problem: "'\(pair)' is not key=value",
          source: c.lookup("reflector.labels")?.source ?? "")
      }
      labels.append(Label(key: String(kv[0]), value: String(kv[1])))
    }
    for (key, value) in c.children(of: "reflector.label") { labels.append(Label(key: key, value: value)) }
    self.labels = labels.sorted { $0.key < $1.key }
    latencyTargets = c.list("reflector.latency-targets", default: [])
    topK = try c.int("reflector.top-k", default: 10, range: 0...100)
    smartInterval = try c.duration("reflector.smart-interval", default: .seconds(3600))
    mountTimeout = try c.duration("reflector.mount-timeout", default: .seconds(1))
    bufferCapacity = try c.int("reflector.buffer", default: 720, range: 1...1_000_000)
    spoolDirectory = c.string("reflector.spool-dir")
    root = c.string("reflector.root", default: "/")
    hostInfoEvery = 12
  }

  static func systemHostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// A host name as one subject token: the short name, with anything but
  /// letters, digits, '-' and '_' replaced by '-'.
  static func subjectToken(_ name: String) -> String {
    let short = name.split(separator: ".").first.map(String.init) ?? name
    return String(short.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "-" })
  }
}

extension AgentSettings {
  /// The collector's part of these settings.
  public var collectorSettings: Collector.Settings {
    Collector.Settings(
      host: host, root: root, topK: topK, latencyTargets: latencyTargets, mountTimeout: mountTimeout,
      smartInterval: smartInterval)
  }
}
