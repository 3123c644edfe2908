import Foundation
import Hummingbird
import HummingbirdWebSocket
public import Logging
import Metrics
public import MirrorService
public import MirrorStore
public import ServiceLifecycle

/// The console's settings (`console.*`, docs/configuration.md).
public struct ConsoleSettings: Sendable {
  public var host = "127.0.0.1"
  public var port = 8480
  /// The front end: this folder, else the copy in the package's resources.
  public var staticDirectory: String?
  /// Debian's browser libraries, served under /vendor.
  public var vendorDirectory = "/usr/share/javascript"
  public var secureCookies = false
  public var sessionTTL: Duration = .seconds(12 * 3600)
  public var idleTimeout: Duration = .seconds(3600)
  public var login = Login.Settings()
  public var liveThrottle: Duration = .milliseconds(500)
  public var liveWriteTimeout: Duration = .seconds(30)
  public var refresh: Duration = .seconds(30)
  public var liveSessionCheck: Duration = .seconds(10)
  public var auditRetention: Duration = .seconds(365 * 86_400)
  /// A command on all hosts or on more than this many asks for a fresh TOTP.
  public var confirmAbove = 10
  public init() {}

  public init(config c: ConfigValues) throws(ConfigError) {
    host = c.string("console.host", default: host)
    port = try c.int("console.port", default: port, range: 0...65535)
    staticDirectory = c.string("console.static-dir")
    vendorDirectory = c.string("console.vendor-dir", default: vendorDirectory)
    secureCookies = try c.bool("console.secure-cookies", default: false)
    sessionTTL = try c.duration("console.session-ttl", default: sessionTTL)
    idleTimeout = try c.duration("console.idle-timeout", default: idleTimeout)
    login.maxFailures = try c.int("console.max-failed-logins", default: login.maxFailures, range: 1...1000)
    login.lockout = try c.duration("console.lockout", default: login.lockout)
    login.attemptsPerMinute = try c.int(
      "console.login-attempts-per-minute", default: login.attemptsPerMinute, range: 1...100_000)
    liveThrottle = try c.duration("console.live-throttle", default: liveThrottle)
    liveWriteTimeout = try c.duration("console.live-write-timeout", default: liveWriteTimeout)
    refresh = try c.duration("console.refresh", default: refresh)
    liveSessionCheck = try c.duration("console.live-session-check", default: liveSessionCheck)
    auditRetention = try c.duration("console.audit-retention", default: auditRetention)
    confirmAbove = try c.int("console.confirm-above", default: confirmAbove, range: 0...100_000)
  }

  /// Where the front end's files are.
  var publicDirectory: String {
    if let staticDirectory { return staticDirectory }
    return Bundle.module.resourcePath.map { "\($0)/Public" } ?? "Sources/ConsoleCore/Public"
  }
}

/// The console: the web server (Hummingbird, HTTP/1.1 with WebSocket
/// upgrade) over the fleet kept live by `FleetFeed`.
public final class ConsoleServer: Service, Sendable {
  let settings: ConsoleSettings
  let app: Application<RouterResponder<ConsoleContext>>
  public let fleet: Fleet
  let feed: FleetFeed
  let sessions: Sessions
  let accounts: Accounts
  let logger: Logger

  public init(settings: ConsoleSettings, bus: BusService, database: PostgresClient, logger: Logger) {
    self.settings = settings
    self.logger = logger
    let fleet = Fleet()
    self.fleet = fleet
    let rpc = ConsoleRPC(bus: bus)
    feed = FleetFeed(fleet: fleet, bus: bus, rpc: rpc, refresh: settings.refresh, logger: logger)
    let accounts = Accounts(database: database)
    self.accounts = accounts
    sessions = Sessions(database: database, ttl: settings.sessionTTL, idleTimeout: settings.idleTimeout)
    let login = Login(accounts: accounts, sessions: sessions, settings: settings.login, logger: logger)
    let api = ConsoleAPI(
      fleet: fleet, rpc: rpc, login: login, sessions: sessions, settings: settings, logger: logger)
    let live = LiveStream(
      fleet: fleet, api: api, sessions: sessions, recheck: settings.liveSessionCheck, throttle: settings.liveThrottle,
      writeTimeout: settings.liveWriteTimeout, logger: logger)
    let router = Self.router(api: api, live: live, sessions: sessions, settings: settings, logger: logger)
    let wsRouter = Router(context: ConsoleContext.self)
    wsRouter.add(middleware: SessionMiddleware(sessions: sessions, required: false))
    wsRouter.ws("/api/v1/live") { request, context in
      try live.shouldUpgrade(request, context)
    } onUpgrade: { inbound, outbound, context in
      try await live.run(inbound: inbound, outbound: outbound, context: context)
    }
    let terminal = TerminalSocket(terminals: api.terminals, live: live, logger: logger)
    wsRouter.ws("/api/v1/terminals/:id") { request, context in
      try terminal.shouldUpgrade(request, context)
    } onUpgrade: { inbound, outbound, context in
      try await terminal.run(inbound: inbound, outbound: outbound, context: context)
    }
    app = Application(
      router: router,
      server: .http1WebSocketUpgrade(
        webSocketRouter: wsRouter,
        configuration: .init(ws: .init(maxFrameSize: 1 << 16, autoPing: .enabled(timePeriod: .seconds(30))))),
      configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: nil),
      logger: logger)
  }

  /// The routes: the front end's files, Debian's libraries, and the API.
  static func router(
    api: ConsoleAPI, live: LiveStream, sessions: Sessions, settings: ConsoleSettings, logger: Logger
  ) -> Router<ConsoleContext> {
    let router = Router(context: ConsoleContext.self)
    router.add(middleware: SecurityHeadersMiddleware())
    router.add(
      middleware: FileMiddleware(
        settings.publicDirectory, cacheControl: .init([(MediaType(type: .any), [.noCache])]), searchForIndexHtml: true,
        logger: logger))
    // Only the libraries the pages load: every other page of
    // /usr/share/javascript would be same-origin script the CSP allows.
    let libraries = [
      ("dygraphs", "dygraphs"), ("three/build", "three/build"),
      ("three/examples/js/controls", "three/controls"), ("term.js", "term.js"),
    ]
    for (directory, path) in libraries {
      router.add(
        middleware: FileMiddleware(
          "\(settings.vendorDirectory)/\(directory)", urlBasePath: "/vendor/\(path)",
          cacheControl: .init([(MediaType(type: .any), [.maxAge(86_400)])]), logger: logger))
    }
    router.get("/healthz") { _, _ in "ok" }

    let open = router.group("/api/v1/session")
      .add(middleware: UpstreamErrorMiddleware(logger: logger))
      .add(middleware: SessionMiddleware(sessions: sessions, required: false))
    open.post(use: api.postLogin)
    open.post("enrol", use: api.postEnrol)
    open.get("enrolment.svg", use: api.enrolmentQR)
    open.get(use: api.getSession)

    let v1 = router.group("/api/v1")
      .add(middleware: UpstreamErrorMiddleware(logger: logger))
      .add(middleware: SessionMiddleware(sessions: sessions, required: true))
    v1.post("session/logout", use: api.logout)
    v1.get("overview", use: api.overview)
    v1.get("hosts", use: api.hosts)
    v1.get("sparks", use: api.sparks)
    v1.get("hosts/:name", use: api.host)
    v1.get("hosts/:name/series", use: api.series)
    v1.get("alerts", use: api.alerts)
    v1.get("commands", use: api.commands)
    v1.post("commands", use: api.submit)
    v1.post("commands/prepare", use: api.prepare)
    v1.get("commands/:id", use: api.command)
    v1.get("commands/:id/cast", use: api.cast)
    v1.get("keys", use: api.listKeys)
    v1.post("keys", use: api.addKey)
    v1.post("keys/:key/revoke", use: api.revokeKey)
    v1.post("alerts/:id/ack", use: api.acknowledge)
    v1.post("silences", use: api.silence)
    v1.post("silences/:id/end", use: api.endSilence)
    v1.get("twin/scene", use: api.scene)
    v1.get("users", use: api.users)
    v1.post("users", use: api.addUser)
    v1.post("users/:name", use: api.changeUser)
    v1.post("users/:name/reset-totp", use: api.resetTOTP)
    v1.post("users/:name/remove", use: api.removeUser)
    v1.post("sessions/:id/end", use: api.endSession)
    return router
  }

  public func run() async throws {
    let (feed, sessions, accounts, logger) = (self.feed, self.sessions, self.accounts, self.logger)
    let retention = settings.auditRetention
    logger.info(
      "console listening",
      metadata: ["url": "http://\(settings.host):\(settings.port)/", "static": "\(settings.publicDirectory)"])
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await feed.run() }
      group.addTask {
        try await cancelWhenGracefulShutdown {
          while !Task.isCancelled {
            do {
              try await sessions.purgeExpired()
              try await accounts.purgeAudit(olderThan: retention)
            } catch {
              Counter(label: "console_housekeeping_failures_total").increment()
              logger.warning("expired sessions or old audit not purged", metadata: ["error": "\(error)"])
            }
            try await Task.sleep(for: .seconds(600))
          }
        }
      }
      // The web server drains its requests on graceful shutdown; the rest
      // stops after it.
      try await self.app.run()
      group.cancelAll()
    }
  }
}
