import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import MirrorService
import MirrorWire
import Synchronization

/// The JSON API under `/api/v1` (docs/console.md): every screen's data,
/// from the fleet kept live and the services' RPCs.
struct ConsoleAPI: Sendable {
  let fleet: Fleet
  let rpc: ConsoleRPC
  let login: Login
  let sessions: Sessions
  let settings: ConsoleSettings
  let logger: Logger
  let historyCache = Cache<Overview.Fleet>(what: "fleet history")
  let commandsCache = Cache<[CommandSummary]>(what: "recent commands")
  /// One overview for every browser watching it, made at most this often.
  let overviewCache = Cache<Overview>(what: "overview")
  let confirmed = ConfirmedCommands()
  let terminals = Terminals()

  var accounts: Accounts { login.accounts }

  // MARK: Session

  struct LoginRequest: Decodable {
    var user: String
    var password: String
    var code: String?
  }
  struct EnrolRequest: Decodable { var code: String }
  struct SessionAnswer: ResponseEncodable {
    var stage: String
    var user: String?
    var displayName: String?
    var roles: [String]?
    var csrf: String
    var otpauth: String?
    var expiresAt: Int64?
  }

  func sessionCookie(_ token: String, maxAge: Int) -> Cookie {
    Cookie(
      name: SessionMiddleware.cookie, value: token, maxAge: maxAge, path: "/", secure: settings.secureCookies,
      httpOnly: true, sameSite: .strict)
  }

  func answer(_ outcome: LoginOutcome, request: Request, context: ConsoleContext) throws -> Response {
    switch outcome {
    case .refused(let r):
      throw APIError(HTTPResponse.Status(code: r.status), r.code, r.message)
    case .enrol(let token, let csrf, let otpauth):
      var response = try SessionAnswer(stage: "enrol", csrf: csrf, otpauth: otpauth).response(
        from: request, context: context)
      response.setCookie(sessionCookie(token, maxAge: 600))
      return response
    case .ready(let token, let csrf, let user, let roles):
      var response = try SessionAnswer(stage: "ready", user: user, roles: roles, csrf: csrf).response(
        from: request, context: context)
      response.setCookie(sessionCookie(token, maxAge: Int(settings.sessionTTL.components.seconds)))
      return response
    }
  }

  /// A login must come from the console's own pages: a browser's `Origin`,
  /// when it sends one, names this host.
  func checkOrigin(_ request: Request) throws {
    guard let origin = request.headers[.origin] else { return }
    let host = request.head.authority ?? ""
    guard origin == "http://\(host)" || origin == "https://\(host)" else {
      throw APIError.forbidden("cross-origin login refused")
    }
  }

  func postLogin(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    try checkOrigin(request)
    let body = try await request.decode(as: LoginRequest.self, context: context)
    let outcome = try await login.attempt(
      user: body.user, password: body.password, code: body.code ?? "", address: context.address,
      userAgent: request.headers[.userAgent] ?? "")
    return try answer(outcome, request: request, context: context)
  }

  func postEnrol(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    guard let session = context.session, session.stage == .enrol else { throw APIError.unauthenticated }
    try SessionMiddleware.checkCSRF(request, session)
    let body = try await request.decode(as: EnrolRequest.self, context: context)
    let outcome = try await login.confirmEnrolment(
      session, code: body.code, address: context.address, userAgent: request.headers[.userAgent] ?? "")
    return try answer(outcome, request: request, context: context)
  }

  func enrolmentQR(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    guard let session = context.session, let uri = try await login.enrolmentURI(session) else {
      throw APIError.unauthenticated
    }
    let svg = try await QRCode.svg(uri)
    return Response(
      status: .ok, headers: [.contentType: "image/svg+xml", .cacheControl: "no-store"],
      body: .init(byteBuffer: .init(bytes: svg)))
  }

  func getSession(_ request: Request, _ context: ConsoleContext) async throws -> SessionAnswer {
    let s = try context.requireSession()
    return SessionAnswer(
      stage: "ready", user: s.user, displayName: s.displayName, roles: s.roles, csrf: s.csrf,
      expiresAt: s.expiresAtMs)
  }

  func logout(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    let s = try context.requireSession()
    try await login.logout(s, address: context.address)
    var response = Response(status: .noContent)
    response.setCookie(sessionCookie("", maxAge: 0))
    return response
  }

  // MARK: Hosts

  struct HostsAnswer: ResponseEncodable {
    var hosts: [HostRow]
    var generatedAt: Int64
  }

  func hosts(_ request: Request, _ context: ConsoleContext) async throws -> HostsAnswer {
    HostsAnswer(hosts: fleet.rows(), generatedAt: Date().unixMilliseconds)
  }

  struct SparksAnswer: ResponseEncodable {
    var stepMs: Int64
    var endMs: Int64
    var hosts: [String: [String: [Double?]]]
  }

  func sparks(_ request: Request, _ context: ConsoleContext) async throws -> SparksAnswer {
    let names = (request.uri.queryParameters["hosts"].map(String.init) ?? "").split(separator: ",").map(String.init)
    guard names.count <= 500 else { throw APIError.badRequest("at most 500 hosts at a time") }
    let end = Date().unixMilliseconds
    return SparksAnswer(
      stepMs: Fleet.sparkStepMs, endMs: end / Fleet.sparkStepMs * Fleet.sparkStepMs,
      hosts: fleet.sparks(names, endMs: end))
  }

  struct HostAnswer: ResponseEncodable {
    var host: HostRow
    var info: HostInfoView?
    var latest: LatestView?
    var alerts: [AlertView]
    var commands: [CommandSummary]
  }

  func host(_ request: Request, _ context: ConsoleContext) async throws -> HostAnswer {
    let name = try context.parameters.require("name")
    guard let d = fleet.detail(name) else { throw APIError.notFound("no host '\(name)'") }
    let commands: [CommandSummary]
    do {
      commands = try await rpc.commands(host: name, limit: 20).commands.map(CommandSummary.init)
    } catch {
      // The page shows the host without its history rather than nothing.
      Counter(label: "console_upstream_failures_total", dimensions: [("path", "commands.list")]).increment()
      logger.warning("commands.list failed", metadata: ["host": "\(name)", "error": "\(error)"])
      commands = []
    }
    return HostAnswer(
      host: d.row, info: d.status.info.map { HostInfoView(d.status, $0) }, latest: d.latest.map(LatestView.init),
      alerts: d.alerts.map(AlertView.init), commands: commands)
  }

  struct SeriesAnswer: ResponseEncodable {
    struct One: Encodable {
      var key: String
      var points: [[Double]]
    }
    var metric: String
    var source: String
    var stepSeconds: UInt32
    var series: [One]
  }

  func series(_ request: Request, _ context: ConsoleContext) async throws -> SeriesAnswer {
    let name = try context.parameters.require("name")
    let query = try Self.seriesQuery(host: name, request.uri.queryParameters, nowMs: Date().unixMilliseconds)
    let answer = try await rpc.query(query)
    return SeriesAnswer(
      metric: query.metric, source: apiName(answer.source.description, prefix: "SERIES_SOURCE_"),
      stepSeconds: answer.stepSeconds,
      series: answer.series.map { s in
        .init(key: s.key, points: s.points.map { [Double($0.bucketUnixMs), $0.average, $0.minimum, $0.maximum] })
      })
  }

  /// A series request's query: `metric`, and optionally `from` and `to`
  /// (Unix ms, the last hour by default) and `step` (seconds).
  static func seriesQuery(host: String, _ q: Parameters, nowMs now: Int64) throws -> MetricsQueryRequest {
    guard let metric = q["metric"].map(String.init), !metric.isEmpty else {
      throw APIError.badRequest("metric is required")
    }
    let from = q["from"].flatMap { Int64($0) } ?? now - 3_600_000
    let to = q["to"].flatMap { Int64($0) } ?? now
    // `to - from` overflows for a `from` far in the past: a 400 error, not a crash.
    let (span, overflow) = to.subtractingReportingOverflow(from)
    guard from < to, !overflow, span <= 400 * 86_400_000 else {
      throw APIError.badRequest("from must be before to (400 days at most)")
    }
    let step = q["step"].flatMap { UInt32($0) } ?? 0
    return MetricsQueryRequest(hosts: [host], metric: metric, startUnixMs: from, endUnixMs: to, stepSeconds: step)
  }

  // MARK: Alerts and commands

  struct AlertsAnswer: ResponseEncodable {
    var alerts: [AlertView]
    var silences: [SilenceView]
  }

  func alerts(_ request: Request, _ context: ConsoleContext) async throws -> AlertsAnswer {
    let q = request.uri.queryParameters
    let answer = try await rpc.alerts(
      host: q["host"].map(String.init) ?? "", includeResolved: q["resolved"] == "1", limit: 500)
    let now = Date().unixMilliseconds
    let alerts = answer.alerts.map { a in
      var a = a
      a.silencedUntilUnixMs = max(a.silencedUntilUnixMs, Self.silencedUntil(a, by: answer.silences, nowMs: now))
      return AlertView(a)
    }
    return AlertsAnswer(alerts: alerts, silences: answer.silences.map(SilenceView.init))
  }

  /// Until when the silences mute an alert (0: they do not), matched as the
  /// Notifier matches them (`Silence.mutes`).
  static func silencedUntil(_ a: Alert, by silences: [Silence], nowMs: Int64) -> Int64 {
    silences.filter { $0.mutes(a, nowMs: nowMs) }.map(\.endsAtUnixMs).max() ?? 0
  }

  // MARK: Overview

  func overview(_ request: Request, _ context: ConsoleContext) async throws -> Overview {
    await overview()
  }

  func overview() async -> Overview {
    let made = await overviewCache.value(maxAge: settings.liveThrottle, logger: logger) {
      let rows = fleet.rows()
      let history = await historyCache.value(maxAge: .seconds(30), logger: logger) {
        try await fleetHistory(hosts: rows.map(\.name))
      }
      let commands = await commandsCache.value(maxAge: .seconds(5), logger: logger) {
        try await rpc.commands(limit: 10).commands.map(CommandSummary.init)
      }
      return Overview(
        rows: rows, alerts: fleet.openAlerts,
        fleet: history ?? Overview.Fleet(stepMs: 60_000, cpu: [], rx: [], tx: []), commands: commands ?? [])
    }
    return made
      ?? Overview(
        rows: fleet.rows(), alerts: fleet.openAlerts, fleet: .init(stepMs: 60_000, cpu: [], rx: [], tx: []),
        commands: [])
  }

  /// Fleet-wide CPU (mean of the hosts) and network (sum) over the last
  /// hour, by minute; asked for 50 hosts at a time, so each answer stays
  /// under metrics.query's point cap and the message size limit.
  func fleetHistory(hosts: [String]) async throws -> Overview.Fleet {
    let end = Date().unixMilliseconds
    let start = end - 3_600_000
    func query(_ metric: String) async throws -> [Int64: (sum: Double, n: Int)] {
      var series: [Series] = []
      for chunk in stride(from: 0, to: hosts.count, by: 50) {
        series += try await rpc.query(
          MetricsQueryRequest(
            hosts: Array(hosts[chunk..<min(chunk + 50, hosts.count)]), metric: metric, startUnixMs: start,
            endUnixMs: end, stepSeconds: 60)
        ).series
      }
      var buckets: [Int64: (sum: Double, n: Int)] = [:]
      for s in series where s.key != "lo" {
        for p in s.points {
          let b = buckets[p.bucketUnixMs] ?? (0, 0)
          buckets[p.bucketUnixMs] = (b.sum + p.average, b.n + 1)
        }
      }
      return buckets
    }
    let cpu = try await query("cpu_percent")
    let rx = try await query("network_rx_bytes_per_second")
    let tx = try await query("network_tx_bytes_per_second")
    return Overview.Fleet(
      stepMs: 60_000,
      cpu: cpu.keys.sorted().map { [Double($0), cpu[$0]!.sum / Double(cpu[$0]!.n)] },
      rx: rx.keys.sorted().map { [Double($0), rx[$0]!.sum] },
      tx: tx.keys.sorted().map { [Double($0), tx[$0]!.sum] })
  }
}

/// The overview screen.
struct Overview: ResponseEncodable {
  struct Counts: Codable, Sendable {
    var total = 0, up = 0, warning = 0, critical = 0, down = 0
  }
  struct Busy: Codable, Sendable {
    var host: String
    var value: Double
  }
  struct Fleet: Codable, Sendable {
    var stepMs: Int64
    var cpu: [[Double]]
    var rx: [[Double]]
    var tx: [[Double]]
  }
  var type = "overview"
  var counts: Counts
  var firing: [AlertView]
  var busiest: [String: [Busy]]
  var fleet: Fleet
  var commands: [CommandSummary]
  var generatedAt: Int64

  init(rows: [HostRow], alerts: [Alert], fleet: Fleet, commands: [CommandSummary]) {
    var counts = Counts()
    for r in rows {
      counts.total += 1
      switch r.state {
      case "up": counts.up += 1
      case "warning": counts.warning += 1
      case "critical": counts.critical += 1
      default: counts.down += 1
      }
    }
    self.counts = counts
    firing = alerts.filter { $0.state == .firing }.map(AlertView.init)
    func top(_ value: (HostRow) -> Double?) -> [Busy] {
      rows.filter { $0.state != "down" }.compactMap { r in value(r).map { Busy(host: r.name, value: $0) } }
        .sorted { $0.value > $1.value }.prefix(5).map { $0 }
    }
    busiest = [
      "cpu": top(\.cpu), "memory": top(\.memory), "disk": top(\.disk), "temperature": top(\.temperature),
      "gpu": top(\.gpu),
    ]
    self.fleet = fleet
    self.commands = commands
    generatedAt = Date().unixMilliseconds
  }
}

/// One value computed now and then: callers within `maxAge` share it; a
/// failure is logged and counted, and answered with the last good value.
final class Cache<Value: Sendable>: Sendable {
  private let state = Mutex<(value: Value?, at: ContinuousClock.Instant?)>((nil, nil))
  let what: String

  init(what: String) { self.what = what }

  func value(maxAge: Duration, logger: Logger, _ make: @Sendable () async throws -> Value) async -> Value? {
    let now = ContinuousClock.now
    let (old, at) = state.withLock { ($0.value, $0.at) }
    if let old, let at, now - at < maxAge { return old }
    do {
      let fresh = try await make()
      state.withLock { $0 = (fresh, now) }
      return fresh
    } catch {
      Counter(label: "console_upstream_failures_total", dimensions: [("path", what)]).increment()
      logger.warning("cannot refresh", metadata: ["what": "\(what)", "error": "\(error)"])
      return old
    }
  }
}
