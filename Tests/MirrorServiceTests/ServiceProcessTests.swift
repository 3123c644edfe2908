import Foundation
import MirrorService
import MirrorStore
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The built executables, run as real processes against the harness's
/// nats-server and PostgreSQL.
@Suite final class ServiceProcessTests {
  let nats: NATSTestServer
  let db: PostgresTestDatabase

  init() throws {
    nats = try NATSTestServer()
    db = try PostgresTestDatabase("svc")
  }

  func launch(_ name: String, _ arguments: [String]) throws -> (Process, Pipe) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Harness.executable(name))
    p.arguments = arguments
    p.environment = ["PATH": "/usr/bin:/bin", "MIRROR_LOG_FORMAT": "json"]
    let pipe = Pipe()
    p.standardError = pipe
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    return (p, pipe)
  }

  @Test(arguments: ["ingest", "command-router", "notifier", "twin-service", "reflector"])
  func serviceStartsIsHealthyAndStopsOnSIGTERM(_ name: String) async throws {
    let port = Harness.freePort()
    var extra: [String] = []
    if name == "command-router" { extra = ["--set", "router.signing-key=\(try Self.routerKey())"] }
    let (process, pipe) = try launch(
      name, ["--nats-url", nats.url, "--database-url", db.url, "--http", "127.0.0.1:\(port)"] + extra)
    let healthy = await Harness.waitUntil(timeout: .seconds(20)) { Harness.httpGet(port, "/healthz")?.status == 200 }
    #expect(healthy, "\(name) did not become healthy: \(String(describing: Harness.httpGet(port, "/healthz")))")
    let health = Harness.httpGet(port, "/healthz")
    #expect(health?.body.contains("\"nats\":{\"healthy\":true") == true)
    let metrics = Harness.httpGet(port, "/metrics")
    #expect(metrics?.status == 200)
    #expect(Harness.httpGet(port, "/nope")?.status == 404)
    kill(process.processIdentifier, SIGTERM)
    let exited = await Harness.waitUntil(timeout: .seconds(15)) { !process.isRunning }
    #expect(exited, "\(name) did not stop on SIGTERM")
    let log = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    #expect(process.terminationStatus == 0, "\(name) exited with \(process.terminationStatus): \(log.suffix(3000))")
    #expect(log.contains("\"msg\":\"stopped\""), "\(log)")
  }

  /// SIGTERM ends a service within `shutdown.grace` (2 s here) when its
  /// database hangs (connections accepted, never answered) and when
  /// neither NATS nor PostgreSQL can be reached; the log says it is
  /// stopping.
  @Test(arguments: ["ingest", "command-router", "notifier", "twin-service", "console"])
  func sigtermEndsAServiceWithinTheGraceWhateverItWaitsFor(_ name: String) async throws {
    let hung = try BlackHole()
    let hungNATS = try BlackHole()
    let closed = Harness.freePort()
    var extra = ["--set", "shutdown.grace=2s", "--set", "nats.connect-timeout=10s"]
    if name == "command-router" { extra += ["--set", "router.signing-key=\(try Self.routerKey())"] }
    if name == "console" { extra += ["--set", "console.port=\(Harness.freePort())"] }
    for (natsURL, dbURL) in [
      (nats.url, "postgresql://mirror:mirror@127.0.0.1:\(hung.port)/mirror?connect_timeout=60"),
      ("nats://127.0.0.1:\(hungNATS.port)", "postgresql://mirror:mirror@127.0.0.1:\(closed)/mirror"),
    ] {
      let (process, pipe) = try launch(
        name, ["--nats-url", natsURL, "--database-url", dbURL, "--http", "127.0.0.1:\(Harness.freePort())"] + extra)
      try await Task.sleep(for: .seconds(3))
      #expect(process.isRunning, "\(name) is up, waiting")
      let signalled = ContinuousClock.now
      kill(process.processIdentifier, SIGTERM)
      let exited = await Harness.waitUntil(timeout: .seconds(10)) { !process.isRunning }
      let took = ContinuousClock.now - signalled
      if process.isRunning { kill(process.processIdentifier, SIGKILL) }
      let log = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      #expect(exited && took < .milliseconds(2600), "\(name) took \(took) (\(natsURL)): \(log.suffix(2000))")
      #expect(log.contains("\"msg\":\"stopping\""), "\(log.suffix(2000))")
    }
  }

  /// A router signing key made by `mirrorctl keys gen`; returns its path.
  static func routerKey() throws -> String {
    let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("router-\(UUID().uuidString)").path
    let r = try Harness.run(Harness.executable("mirrorctl"), ["keys", "gen", "--out", prefix])
    guard r.status == 0 else { throw HarnessError("keys gen: \(r.output)") }
    return prefix + ".key"
  }

  @Test func theRouterWithoutItsKeySaysSoAndStops() async throws {
    let garbage = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).key").path
    try "not a key\n".write(toFile: garbage, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: garbage) }
    for extra in [[], ["--set", "router.signing-key=\(garbage)"]] {
      let r = try Harness.run(
        Harness.executable("command-router"),
        ["--nats-url", nats.url, "--database-url", db.url, "--http", "127.0.0.1:\(Harness.freePort())"] + extra)
      #expect(r.status != 0)
      #expect(r.output.contains("router.signing-key"), "\(r.output)")
    }
  }

  @Test func unhealthyUntilTheDatabaseAnswers() async throws {
    let port = Harness.freePort()
    let deadDB = "postgresql://mirror:mirror@127.0.0.1:\(Harness.freePort())/mirror"
    let (process, _) = try launch(
      "ingest", ["--nats-url", nats.url, "--database-url", deadDB, "--http", "127.0.0.1:\(port)"])
    defer { process.terminate() }
    // Until the first attempt fails the check says "connecting"; the
    // attempt's error must then show, and the service stays unhealthy.
    var health: (status: Int, body: String)?
    let refused = await Harness.waitUntil {
      health = Harness.httpGet(port, "/healthz")
      return health?.body.contains("Connection refused") == true
    }
    #expect(refused, "\(String(describing: health))")
    #expect(health?.status == 503)
    #expect(process.isRunning, "a missing database is retried, not a crash")
  }

  @Test func twoProcessesMigratingAtOnceApplyEachMigrationOnce() async throws {
    let fresh = try PostgresTestDatabase("twoproc")
    let ports = [Harness.freePort(), Harness.freePort()]
    let processes = try ports.map { port in
      try launch("ingest", ["--nats-url", nats.url, "--database-url", fresh.url, "--http", "127.0.0.1:\(port)"]).0
    }
    defer { processes.forEach { $0.terminate() } }
    for port in ports {
      let healthy = await Harness.waitUntil(timeout: .seconds(20)) { Harness.httpGet(port, "/healthz")?.status == 200 }
      #expect(healthy)
    }
    let conn = try fresh.connect()
    let rows = try conn.query("SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version")
    #expect(try rows.rows.map { try $0.decode(Int.self, 0) } == Migration.all.map(\.version))
    #expect(try rows.rows.allSatisfy { try $0.decode(Int.self, 1) == 1 })
  }

  @Test func badConfigurationExitsWithTheKeyNamed() throws {
    let (process, pipe) = try launch("ingest", ["--set", "log.level=loud"])
    process.waitUntilExit()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    #expect(process.terminationStatus != 0)
    #expect(output.contains("log.level"), "\(output)")
  }
}

/// A TCP port that accepts connections and never says a word (its
/// backlog takes them; nothing reads): a hung server.
final class BlackHole {
  let fd: Int32
  let port: Int
  init() throws { (fd, port) = try Harness.listenLoopback(backlog: 128) }
  deinit { close(fd) }
}
