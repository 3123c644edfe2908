public import Logging
public import MirrorBus

/// The settings every service shares: how to reach NATS and PostgreSQL,
/// where to serve /metrics and /healthz, how to log.
public struct ServiceSettings: Sendable {
  public var service: String
  public var bus: BusOptions
  public var databaseURL: String
  /// The longest a PostgreSQL statement may run (`database.statement-timeout`).
  public var databaseStatementTimeout: Duration
  public var httpHost: String
  public var httpPort: Int
  public var logLevel: Logger.Level
  public var logFormat: LogFormat
  /// Time allowed for in-flight work after SIGTERM: a second before it
  /// what is left is cancelled, at it the process exits whatever still runs.
  public var shutdownGrace: Duration

  public enum LogFormat: String, Sendable, CaseIterable { case json, text }

  public init(service: String, defaultHTTPPort: Int, config c: ConfigValues) throws(ConfigError) {
    self.service = service
    bus = BusOptions(
      urls: c.list("nats.urls", default: ["nats://127.0.0.1:4222"]), name: service,
      user: c.string("nats.user"), password: c.string("nats.password"), token: c.string("nats.token"),
      credentialsFile: c.string("nats.creds"), nkeySeedFile: c.string("nats.nkey-seed"),
      nkeyPublicKey: c.string("nats.nkey-public"), tls: try c.bool("nats.tls", default: false),
      tlsCAFile: c.string("nats.tls-ca"), tlsCertFile: c.string("nats.tls-cert"), tlsKeyFile: c.string("nats.tls-key"),
      inboxPrefix: c.string("nats.inbox-prefix"),
      connectTimeout: try c.duration("nats.connect-timeout", default: .seconds(2)),
      reconnectWait: try c.duration("nats.reconnect-wait", default: .seconds(1)),
      reconnectJitter: try c.duration("nats.reconnect-jitter", default: .milliseconds(500)))
    if bus.urls.isEmpty { throw ConfigError(key: "nats.urls", problem: "at least one URL is needed", source: "config") }
    for url in bus.urls where !(url.hasPrefix("nats://") || url.hasPrefix("tls://")) {
      throw ConfigError(
        key: "nats.urls", problem: "'\(url)' must start with nats:// or tls://",
        source: c.lookup("nats.urls")?.source ?? "default")
    }
    databaseURL = c.string("database.url", default: "postgresql://mirror:mirror@127.0.0.1:5432/mirror")
    let listen = c.string("http.listen", default: "127.0.0.1:\(defaultHTTPPort)")
    guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
      (0...65535).contains(port)
    else {
      throw ConfigError(
        key: "http.listen", problem: "'\(listen)' is not HOST:PORT",
        source: c.lookup("http.listen")?.source ?? "default")
    }
    httpHost = String(listen[..<colon])
    httpPort = port
    let level = c.string("log.level", default: "info")
    guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
      throw ConfigError(
        key: "log.level", problem: "'\(level)' is not one of trace, debug, info, notice, warning, error, critical",
        source: c.lookup("log.level")?.source ?? "default")
    }
    logLevel = parsed
    logFormat = try c.oneOf("log.format", default: LogFormat.json)
    shutdownGrace = try c.duration("shutdown.grace", default: .seconds(10))
    databaseStatementTimeout = try c.duration("database.statement-timeout", default: .seconds(30))
  }
}
