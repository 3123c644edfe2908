import CommandRouterCore
import Crypto
import Foundation
import MirrorBus
import MirrorService
import MirrorServiceStore
import MirrorStore
import MirrorWire
import ServiceLifecycle
import TestSupport
import Testing

@testable import ConsoleCore

/// The console's API against a real nats-server and PostgreSQL (and a
/// real CommandRouter for the command path): logins, TOTP, lockout, CSRF,
/// roles, headers, bad input.
@Suite(.serialized) final class ConsoleAPITests {
  let nats: NATSTestServer
  let db: PostgresTestDatabase
  let routerKey = Curve25519.Signing.PrivateKey()
  let viewerKey = Curve25519.Signing.PrivateKey()

  init() throws {
    nats = try NATSTestServer()
    db = try PostgresTestDatabase("console")
    let conn = try db.connect()
    try MigrationRunner.migrate(conn, timescale: .off, logger: Harness.logger)
    try conn.execute(
      """
      INSERT INTO hosts (name, last_seen_at) VALUES ('node1', now());
      INSERT INTO command_rules (role, action, host_group) VALUES ('operator', 'argv:echo *', '*');
      """)
  }

  /// The console (and a CommandRouter) running until `body` ends.
  func withConsole(
    _ tweak: (inout ConsoleSettings) -> Void = { _ in },
    _ body: (Int, BusConnection, ConsoleServer) async throws -> Void
  ) async throws {
    let accounts = Accounts(database: PostgresClient(url: db.url, logger: Harness.logger))
    try await accounts.add(name: "ada", role: "admin", password: "correct horse battery")
    try await accounts.add(name: "vic", role: "viewer", password: "viewer password 1")
    try await accounts.add(name: "lock", role: "viewer", password: "lock password 1")
    _ = try await accounts.database.query(
      "UPDATE users SET public_key = $1 WHERE name = 'vic'", [PGBytes([UInt8](viewerKey.publicKey.rawRepresentation))])
    let port = Harness.freePort()
    let config = ConfigValues(overrides: ["nats.urls": nats.url, "database.url": db.url])
    let serviceSettings = try ServiceSettings(service: "console", defaultHTTPPort: 0, config: config)
    let context = ServiceContext(settings: serviceSettings, config: config, logger: Harness.logger, health: Health())
    var settings = ConsoleSettings()
    settings.port = port
    settings.staticDirectory = Harness.root.appendingPathComponent("Sources/ConsoleCore/Public").path
    settings.liveThrottle = .milliseconds(100)
    tweak(&settings)
    let bus = BusService(options: serviceSettings.bus, streams: [Streams.commands], context: context)
    let database = PostgresClient(url: db.url, logger: Harness.logger)
    let console = ConsoleServer(settings: settings, bus: bus, database: database, logger: Harness.logger)
    let routerBus = BusService(options: serviceSettings.bus, streams: [Streams.commands], context: context)
    let router = CommandRouter(
      settings: .init(), signingKey: routerKey, bus: routerBus, database: database, logger: Harness.logger)
    let group = ServiceGroup(services: [bus, routerBus, router, console], logger: Harness.logger)
    let running = Task { try await group.run() }
    let client = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    #expect(await Harness.waitUntil { Harness.isListening(port) })
    do { try await body(port, client, console) } catch {
      await group.triggerGracefulShutdown()
      throw error
    }
    await client.drain()
    await group.triggerGracefulShutdown()
    _ = await running.result
  }

  static let apiRoutes = [
    ("GET", "/api/v1/session"), ("POST", "/api/v1/session/logout"), ("GET", "/api/v1/overview"),
    ("GET", "/api/v1/hosts"), ("GET", "/api/v1/sparks?hosts=node1"), ("GET", "/api/v1/hosts/node1"),
    ("GET", "/api/v1/hosts/node1/series?metric=cpu_percent"), ("GET", "/api/v1/alerts"),
    ("GET", "/api/v1/commands"), ("POST", "/api/v1/commands"), ("GET", "/api/v1/session/enrolment.svg"),
  ]

  @Test func everyAPIRouteWithoutASessionIs401() async throws {
    try await withConsole { port, _, _ in
      let browser = ConsoleClient(port: port)
      for (method, path) in Self.apiRoutes {
        let a = try await browser.send(method, path, json: method == "POST" ? [:] : nil)
        #expect(a.status == 401, "\(method) \(path) answered \(a.status)")
        #expect(a.json["error"] as? String == "unauthenticated", "\(method) \(path): \(a.text)")
      }
      // A made-up cookie is no session either.
      browser.cookie = "forged-token"
      #expect(try await browser.send("GET", "/api/v1/hosts").status == 401)
    }
  }

  @Test func passwordAndTOTPLogInAndTheHeadersAreStrict() async throws {
    try await withConsole { port, _, _ in
      let browser = ConsoleClient(port: port)
      var secret: String?
      // First login: enrolment (the QR code is an SVG), then a code.
      let first = try await browser.send(
        "POST", "/api/v1/session", json: ["user": "ada", "password": "correct horse battery"])
      #expect(first.json["stage"] as? String == "enrol")
      let uri = try #require(first.json["otpauth"] as? String)
      #expect(uri.hasPrefix("otpauth://totp/"))
      let qr = try await browser.send("GET", "/api/v1/session/enrolment.svg")
      #expect(qr.status == 200 && qr.headers["content-type"] == "image/svg+xml" && qr.text.contains("<svg"))
      // The enrolment half-session reaches nothing else.
      #expect(try await browser.send("GET", "/api/v1/hosts").status == 401)
      secret = RFC6238.secret(fromURI: uri)
      let enrolled = try await browser.send(
        "POST", "/api/v1/session/enrol", json: ["code": RFC6238.code(secret: try #require(secret))])
      #expect(enrolled.status == 200 && enrolled.json["stage"] as? String == "ready")
      let cookie = try #require(enrolled.headers["set-cookie"])
      #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains("Secure"))
      let me = try await browser.send("GET", "/api/v1/session")
      #expect(me.status == 200 && me.json["user"] as? String == "ada" && me.json["roles"] as? [String] == ["admin"])
      let csp = try #require(me.headers["content-security-policy"])
      #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("default-src 'self'"))
      #expect(me.headers["x-content-type-options"] == "nosniff" && me.headers["x-frame-options"] == "DENY")
      let page = try await browser.send("GET", "/")
      #expect(page.status == 200 && page.headers["content-security-policy"] == csp)

      // Logout without the CSRF token: 403; with it: the session is gone.
      #expect(try await browser.send("POST", "/api/v1/session/logout", csrf: false).status == 403)
      #expect(try await browser.send("POST", "/api/v1/session/logout").status == 204)
      #expect(try await browser.send("GET", "/api/v1/hosts").status == 401)

      // The next login needs a current code; the one just used is spent.
      let second = ConsoleClient(port: port)
      let again = try await second.login("ada", "correct horse battery", secret: &secret)
      // Refused as a wrong password is (the browser learns nothing about
      // which factor failed); the audit says which.
      #expect(again.status == 401 && again.json["error"] as? String == "invalid_credentials", "\(again.text)")
      let audit = try db.connect().query(
        "SELECT action, outcome FROM console_audit WHERE user_name = 'ada' ORDER BY id")
      let trail = try audit.rows.map { "\(try $0.decode(String.self, 0)):\(try $0.decode(String.self, 1))" }
      #expect(trail == ["login:enrol", "enrol:ok", "logout:ok", "login:invalid_totp"])
    }
  }

  @Test func secureCookiesWhenServedOverTLS() async throws {
    try await withConsole({ $0.secureCookies = true }) { port, _, _ in
      let a = try await ConsoleClient(port: port).send(
        "POST", "/api/v1/session", json: ["user": "ada", "password": "correct horse battery"])
      #expect(a.headers["set-cookie"]?.contains("Secure") == true)
    }
  }

  @Test func aWrongCodeIsRefusedAndCountedAndTenFailuresLock() async throws {
    try await withConsole { port, _, _ in
      let browser = ConsoleClient(port: port)
      let secret = try await browser.logIn("lock", "lock password 1")
      let other = ConsoleClient(port: port)
      let wrongCode = try await other.send(
        "POST", "/api/v1/session", json: ["user": "lock", "password": "lock password 1", "code": "000000"])
      #expect(wrongCode.status == 401 && wrongCode.json["error"] as? String == "invalid_credentials")
      for _ in 0..<9 {
        let a = try await other.send(
          "POST", "/api/v1/session", json: ["user": "lock", "password": "wrong", "code": ""])
        #expect(a.status == 401 || a.status == 423)
      }
      // Ten failures in a row: locked, even with the right password and code.
      let locked = try await other.send(
        "POST", "/api/v1/session",
        json: ["user": "lock", "password": "lock password 1", "code": RFC6238.code(secret: try #require(secret))])
      #expect(locked.status == 423 && locked.json["error"] as? String == "locked", "\(locked.text)")
      let row = try db.connect().query("SELECT failed_logins, locked_until > now() FROM users WHERE name = 'lock'")
      #expect(try row.rows[0].decode(Int.self, 0) >= 10 && row.rows[0].decode(Bool.self, 1))
      let failures = try db.connect().query(
        "SELECT count(*) FROM console_audit WHERE user_name = 'lock' AND outcome IN ('invalid_totp', 'invalid_credentials', 'locked')"
      )
      #expect(try failures.rows[0].decode(Int.self, 0) == 11)
    }
  }

  @Test func oneAddressIsRateLimited() async throws {
    try await withConsole({ $0.login.attemptsPerMinute = 5 }) { port, _, _ in
      let browser = ConsoleClient(port: port)
      var statuses: [Int] = []
      for i in 0..<7 {
        statuses.append(
          try await browser.send("POST", "/api/v1/session", json: ["user": "nobody\(i)", "password": "x"]).status)
      }
      #expect(statuses == [401, 401, 401, 401, 401, 429, 429])
      // Refused attempts are counted, not written one by one to the audit.
      let rows = try db.connect().query("SELECT outcome, count(*) FROM console_audit GROUP BY 1")
      let audit = try Dictionary(
        uniqueKeysWithValues: rows.rows.map { (try $0.decode(String.self, 0), try $0.decode(Int.self, 1)) })
      #expect(audit == ["invalid_credentials": 5], "\(audit)")
    }
  }

  @Test func aViewerCannotSubmitACommandToTheConsoleNorDirectlyToTheRouter() async throws {
    try await withConsole { port, bus, _ in
      let browser = ConsoleClient(port: port)
      try await browser.logIn("vic", "viewer password 1")
      let request = try Identity.sign(
        CommandRequest(
          id: UUID().uuidString.lowercased(), target: CommandTarget(kind: .hosts, hosts: ["node1"]),
          action: CommandAction(argv: ["echo", "hi"]), timeoutMs: 5_000, reason: "test",
          submittedAtUnixMs: Date().unixMilliseconds), user: "vic", key: viewerKey)
      let encoded = Data(request.encode()).base64EncodedString()
      let refused = try await browser.send("POST", "/api/v1/commands", json: ["request": encoded])
      #expect(refused.status == 403 && refused.json["error"] as? String == "forbidden", "\(refused.text)")
      // Without the CSRF token the console refuses before it looks further.
      #expect(try await browser.send("POST", "/api/v1/commands", json: ["request": encoded], csrf: false).status == 403)
      // The same signed request sent straight to the router: denied there.
      let direct = try await bus.request(
        Subjects.commandsSubmit, request, expecting: SubmitCommandResponse.self, timeout: .seconds(10))
      #expect(direct.state == .denied, "\(direct)")
      #expect(direct.reason.contains("forbidden"), "\(direct.reason)")
    }
  }

  @Test func anAdminsCommandSignedAsSomeoneElseIsRefused() async throws {
    try await withConsole { port, _, _ in
      let browser = ConsoleClient(port: port)
      try await browser.logIn("ada", "correct horse battery")
      let forged = try Identity.sign(
        CommandRequest(id: "x", target: CommandTarget(kind: .all), action: CommandAction(argv: ["true"])), user: "vic",
        key: viewerKey)
      let a = try await browser.send(
        "POST", "/api/v1/commands", json: ["request": Data(forged.encode()).base64EncodedString()])
      #expect(a.status == 403, "\(a.text)")
      let garbage = try await browser.send("POST", "/api/v1/commands", json: ["request": "%%%not base64"])
      #expect(garbage.status == 400 && garbage.json["error"] as? String == "bad_request")
    }
  }

  /// Bad input: malformed JSON, oversized lists, an undecodable batch on
  /// the bus: clear errors, and the console keeps serving.
  @Test func badInputGetsClearErrors() async throws {
    try await withConsole { port, bus, console in
      let browser = ConsoleClient(port: port)
      let malformed = try await browser.send("POST", "/api/v1/session", body: Data("{not json".utf8))
      #expect(malformed.status == 400, "\(malformed.text)")
      try await browser.logIn("ada", "correct horse battery")
      let many = (0..<501).map { "h\($0)" }.joined(separator: ",")
      #expect(try await browser.send("GET", "/api/v1/sparks?hosts=\(many)").status == 400)
      #expect(try await browser.send("GET", "/api/v1/hosts/node1/series").status == 400)
      #expect(try await browser.send("GET", "/api/v1/hosts/nobody").status == 404)
      // No ingest answers metrics.query here: a clear 502, not a hang.
      let upstream = try await browser.send("GET", "/api/v1/hosts/node1/series?metric=cpu_percent")
      #expect(upstream.status == 502 && upstream.json["error"] as? String == "unavailable", "\(upstream.text)")

      // Garbage, a batch for another host than its subject and one with a
      // name no host can have are dropped (and counted); the feed goes on.
      try bus.publish("metrics.normalized.evil", payload: [0xff, 0xff, 0xff])
      try await publishBatch(bus, host: "evil<img src=x onerror=alert(1)>", subject: "metrics.normalized.evil", cpu: 1)
      try await publishBatch(bus, host: "node9", subject: "metrics.normalized.node1", cpu: 2)
      try await publishBatch(bus, host: "good-01", subject: "metrics.normalized.good-01", cpu: 42)
      #expect(await Harness.waitUntil { console.fleet.hostNames.contains("good-01") })
      #expect(Set(console.fleet.hostNames).isDisjoint(with: ["evil<img src=x onerror=alert(1)>", "node9"]))
      let hosts = try await browser.send("GET", "/api/v1/hosts")
      let rows = try #require(hosts.json["hosts"] as? [[String: Any]])
      #expect(rows.first { $0["name"] as? String == "good-01" }?["cpu"] as? Double == 42)
      // Only the chart library is served from /usr/share/javascript.
      #expect(try await browser.send("GET", "/vendor/dygraphs/dygraph.min.js").status == 200)
      #expect(try await browser.send("GET", "/vendor/jquery/jquery.js").status == 404)
    }
  }

  @Test func theLiveStreamNeedsASessionAndTheConsolesOrigin() async throws {
    try await withConsole { port, _, _ in
      let browser = ConsoleClient(port: port)
      #expect(!Self.upgrade(port, cookie: nil, origin: nil).hasPrefix("HTTP/1.1 101"))
      try await browser.logIn("ada", "correct horse battery")
      let cookie = try #require(browser.cookie)
      let same = Self.upgrade(port, cookie: cookie, origin: "http://127.0.0.1:\(port)")
      #expect(same.hasPrefix("HTTP/1.1 101"), "\(same)")
      let crossSite = Self.upgrade(port, cookie: cookie, origin: "http://evil.example")
      #expect(!crossSite.hasPrefix("HTTP/1.1 101") && crossSite.hasPrefix("HTTP/1.1 "), "\(crossSite)")
    }
  }

  @Test func aLiveStreamEndsWithItsSession() async throws {
    try await withConsole({ $0.liveSessionCheck = .milliseconds(200) }) { port, _, _ in
      let browser = ConsoleClient(port: port)
      try await browser.logIn("ada", "correct horse battery")
      let cookie = try #require(browser.cookie)
      let fd = try #require(Harness.connectTCP(port))
      defer { close(fd) }
      #expect(Self.upgrade(fd: fd, port: port, cookie: cookie, origin: nil).hasPrefix("HTTP/1.1 101"))
      #expect(try await browser.send("POST", "/api/v1/session/logout").status == 204)
      // The server closes the socket: recv reaches the end within seconds.
      var timeout = timeval(tv_sec: 10, tv_usec: 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
      let started = ContinuousClock.now
      var buffer = [UInt8](repeating: 0, count: 4096)
      while recv(fd, &buffer, buffer.count, 0) > 0 {}
      #expect(ContinuousClock.now - started < .seconds(5))
    }
  }

  /// A WebSocket handshake by hand; returns the status line.
  static func upgrade(_ port: Int, cookie: String?, origin: String?) -> String {
    guard let fd = Harness.connectTCP(port) else { return "no connection" }
    defer { close(fd) }
    return upgrade(fd: fd, port: port, cookie: cookie, origin: origin)
  }

  static func upgrade(fd: Int32, port: Int, cookie: String?, origin: String?) -> String {
    var request =
      "GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    if let cookie { request += "Cookie: mirror_session=\(cookie)\r\n" }
    if let origin { request += "Origin: \(origin)\r\n" }
    request += "\r\n"
    let bytes = Array(request.utf8)
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var buffer = [UInt8](repeating: 0, count: 1024)
    let n = recv(fd, &buffer, buffer.count, 0)
    guard n > 0 else { return "closed" }
    return String(decoding: buffer[0..<n], as: UTF8.self).components(separatedBy: "\r\n").first ?? ""
  }

  func publishBatch(_ bus: BusConnection, host: String, subject: String, cpu: Double) async throws {
    let batch = NormalizedBatch(
      batch: MetricsBatch(
        host: host, bootId: "b", sequence: 1, collectedAtUnixMs: Date().unixMilliseconds, intervalMs: 5_000,
        cpu: CpuStats(load1: 0.5)),
      cpuPercent: cpu, memoryUsedPercent: 10)
    try bus.publish(subject, batch)
    try await bus.flush()
  }
}

/// The live stream's per-browser state: bounded whatever the browser does.
@Suite struct LiveClientTests {
  @Test func aBrowserThatNeverReadsCostsBoundedMemory() {
    let client = LiveClient()
    client.watch(.hosts)
    for round in 0..<50 {
      for h in 0..<1_000 { client.note(.host("h\(h)")) }
      client.note(.alert(Alert(id: "a\(round)", host: "h1", state: .firing)))
    }
    let p = client.take()
    #expect(p.hosts.count == 1_000)
    #expect(p.alerts.count == 50)
    for i in 0..<500 { client.note(.alert(Alert(id: "b\(i)", state: .firing))) }
    #expect(client.take().alerts.count == LiveClient.maxPendingAlerts)
    // A browser on one host's page hears nothing of the others.
    client.watch(.host("h7"))
    _ = client.take()
    client.note(.host("h8"))
    #expect(client.take().detail == false)
    client.note(.host("h7"))
    #expect(client.take().detail == true)
  }

  @Test func theTestsTOTPMatchesRFC6238() {
    // RFC 6238 appendix B, SHA-1, the 20-byte ASCII key, 8 digits → the
    // last 6 of 94287082 at 59 s.
    let key = Array("12345678901234567890".utf8)
    #expect(RFC6238.code(secret: key, at: Date(timeIntervalSince1970: 59)) == "287082")
    #expect(RFC6238.code(secret: key, at: Date(timeIntervalSince1970: 1_111_111_109)) == "081804")
  }

  @Test func aHostThatStopsReportingTurnsDown() {
    let fleet = Fleet()
    let now: Int64 = 1_000_000_000
    fleet.apply(
      batch: NormalizedBatch(
        batch: MetricsBatch(host: "a", collectedAtUnixMs: now, intervalMs: 5_000), cpuPercent: 5),
      arrivedMs: now)
    #expect(fleet.rows(nowMs: now + 1_000).first?.state == "up")
    #expect(fleet.rows(nowMs: now + 16_000).first?.state == "down")
  }
}

/// `mirrorctl users`: the administrator's way to add people.
@Suite struct UsersCommandTests {
  @Test func addListAndRefuseBadInput() async throws {
    let db = try PostgresTestDatabase("users")
    try MigrationRunner.migrate(try db.connect(), timescale: .off, logger: Harness.logger)
    let mirrorctl = Harness.executable("mirrorctl")
    let added = try await Harness.runDetached(
      mirrorctl, ["users", "add", "alice", "--role", "operator", "--database-url", db.url])
    #expect(added.status == 0, "\(added.output)")
    let password = try #require(added.output.split(separator: "\n").first { $0.hasPrefix("password: ") })
      .dropFirst("password: ".count)
    #expect(password.count == 20)
    let account = try #require(
      try await Accounts(database: PostgresClient(url: db.url, logger: Harness.logger)).find("alice"))
    #expect(account.roles == ["operator"] && !account.totpEnrolled)
    #expect(Accounts.verifyPassword(String(password), hash: try #require(account.passwordHash)))
    let list = try await Harness.runDetached(mirrorctl, ["users", "list", "--database-url", db.url])
    #expect(list.output.contains("alice") && list.output.contains("operator"), "\(list.output)")
    for (args, expected) in [
      (["users", "add", "bob", "--role", "root"], "--role must be one of"),
      (["users", "add", "<b>", "--role", "viewer"], "is not a user name"),
      (["users", "add", "bob", "--role", "viewer", "--password-file", "/nonexistent"], "cannot read"),
    ] {
      let r = try await Harness.runDetached(mirrorctl, args + ["--database-url", db.url])
      #expect(r.status != 0 && r.output.contains(expected), "\(args): \(r.output)")
    }
    let unreachable = try await Harness.runDetached(
      mirrorctl, ["users", "list", "--database-url", "postgresql://x:y@127.0.0.1:1/z"])
    #expect(unreachable.status != 0, "\(unreachable.output)")
  }
}
