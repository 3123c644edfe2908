import Foundation
import MirrorStore
import TestSupport
import Testing

@testable import ConsoleCore

#if canImport(Glibc)
  import Glibc
#endif

/// The console as a person uses it: Debian's headless Chromium, driven by
/// selenium (`Tests/console/browser_test.py`), against the real stack:
/// nats-server, PostgreSQL, ingest, command-router, three reflectors and
/// the console, each its own process. Screenshots are kept in
/// `.build/test-artifacts/console/`.
@Suite(.serialized) final class ConsoleBrowserTests {
  let nats: NATSTestServer
  let db: PostgresTestDatabase
  let work: URL
  let artifacts: URL
  var processes: [String: Process] = [:]

  init() throws {
    nats = try NATSTestServer()
    db = try PostgresTestDatabase("browser")
    try MigrationRunner.migrate(try db.connect(), timescale: .off, logger: Harness.logger)
    work = FileManager.default.temporaryDirectory.appendingPathComponent(Harness.uniqueName("console-browser"))
    artifacts = Harness.root.appendingPathComponent(".build/test-artifacts/console")
    try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
  }

  deinit {
    for p in processes.values where p.isRunning { p.terminate() }
    try? FileManager.default.removeItem(at: work)
  }

  /// Starts one of the package's executables, its output in the artefacts.
  func start(_ name: String, _ binary: String, _ arguments: [String]) throws {
    let log = artifacts.appendingPathComponent("\(name).log")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let handle = try FileHandle(forWritingTo: log)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Harness.executable(binary))
    p.arguments = arguments
    p.standardOutput = handle
    p.standardError = handle
    try p.run()
    processes[name] = p
  }

  /// A reflector for `host` reporting every 2 s, taking commands signed by
  /// the router's key (`keys`.pub), with these labels and settings.
  func startReflector(_ host: String, keys: String, labels: String, _ extra: [String] = []) throws {
    try start(
      host, "reflector",
      [
        "--nats-url", nats.url, "--http", "127.0.0.1:\(Harness.freePort())", "--set", "reflector.host=\(host)",
        "--set", "reflector.interval=2s", "--set", "reflector.spool-dir=\(work.appendingPathComponent(host).path)",
        "--set", "reflector.labels=\(labels)", "--set", "commands.router-key=\(keys).pub",
      ] + extra)
  }

  /// The console on a free port (returned), serving the repository's
  /// front end, with the admin ada and the viewer vic.
  func startConsole(_ extra: [String] = []) async throws -> Int {
    let port = Harness.freePort()
    try start(
      "console", "console",
      [
        "--nats-url", nats.url, "--database-url", db.url, "--http", "127.0.0.1:\(Harness.freePort())", "--set",
        "console.port=\(port)", "--set",
        "console.static-dir=\(Harness.root.appendingPathComponent("Sources/ConsoleCore/Public").path)", "--set",
        "console.refresh=2s",
      ] + extra)
    let accounts = Accounts(database: PostgresClient(url: db.url, logger: Harness.logger))
    try await accounts.add(name: "ada", role: "admin", password: "correct horse battery")
    try await accounts.add(name: "vic", role: "viewer", password: "viewer password 1")
    #expect(await Harness.waitUntil(timeout: .seconds(30)) { Harness.isListening(port) })
    return port
  }

  @Test func aPersonLogsInAndWatchesTheFleetLive() async throws {
    let keys = work.appendingPathComponent("router").path
    try Harness.run(Harness.executable("mirrorctl"), ["keys", "gen", "--out", keys])
    let common = ["--nats-url", nats.url, "--database-url", db.url]
    try start("ingest", "ingest", common + ["--http", "127.0.0.1:\(Harness.freePort())"])
    try start(
      "command-router", "command-router",
      common + ["--http", "127.0.0.1:\(Harness.freePort())", "--set", "router.signing-key=\(keys).key"])
    // The notifier owns the EVENTS stream the reflectors publish their
    // start to (and raises the alerts).
    try start("notifier", "notifier", common + ["--http", "127.0.0.1:\(Harness.freePort())"])
    let hostile = "<img src=x onerror=alert(1)>"
    for host in ["web-01", "web-02", "db-01"] {
      try startReflector(host, keys: keys, labels: "note=\(hostile),tier=\(host.hasPrefix("web") ? "web" : "db")")
    }
    let port = try await startConsole()
    // Every reflector reports before the browser looks.
    let client = ConsoleClient(port: port)
    let secret = try await client.logIn("vic", "viewer password 1")
    let reporting = await Harness.waitUntil(timeout: .seconds(40)) {
      let rows = (try? await client.send("GET", "/api/v1/hosts").json["hosts"] as? [[String: Any]]) ?? []
      return rows.filter { $0["state"] as? String == "up" && $0["cpu"] != nil }.count == 3
    }
    #expect(reporting, "three reflectors reporting through ingest and the console")

    let script = Harness.root.appendingPathComponent("Tests/console/browser_test.py").path
    let result = try await Harness.runDetached(
      "/usr/bin/env", ["python3", script],
      environment: [
        "CONSOLE_URL": "http://127.0.0.1:\(port)", "CONSOLE_USER": "ada", "CONSOLE_PASSWORD": "correct horse battery",
        "CONSOLE_VIEWER": "vic", "CONSOLE_VIEWER_PASSWORD": "viewer password 1",
        "CONSOLE_VIEWER_SECRET": secret ?? "", "CONSOLE_HOSTS": "web-01,web-02,db-01",
        "CONSOLE_STOP_PID": "\(processes["db-01"]!.processIdentifier)", "CONSOLE_STOP_HOST": "db-01",
        "CONSOLE_ARTIFACTS": artifacts.path, "CONSOLE_DOCS": docShots,
      ])
    print(result.output)
    #expect(result.status == 0, "browser test failed:\n\(result.output)")
  }

  /// MIRROR_DOC_SHOTS=1: the browser tests copy their screenshots of each
  /// screen to docs/screenshots.
  var docShots: String {
    ProcessInfo.processInfo.environment["MIRROR_DOC_SHOTS"] == nil
      ? "" : Harness.root.appendingPathComponent("docs/screenshots").path
  }

  /// Console 2/2 as a person uses it (`Tests/console/browser_actions.py`):
  /// commands on one host and on a group of three with a fresh code,
  /// alerts acknowledged and silenced until the notifications stop, the 2D,
  /// 3D and rack views of the twin live, and the users' administration.
  @Test func anOperatorActsOnTheFleetAndSeesTheNetwork() async throws {
    let keys = work.appendingPathComponent("router").path
    try Harness.run(Harness.executable("mirrorctl"), ["keys", "gen", "--out", keys])
    let conn = try db.connect()
    try conn.execute(#"INSERT INTO host_groups (name, selector) VALUES ('lab', '{"site": "lab"}')"#)
    let common = ["--nats-url", nats.url, "--database-url", db.url]
    func http() -> [String] { ["--http", "127.0.0.1:\(Harness.freePort())"] }
    try start("ingest", "ingest", common + http())
    try start("command-router", "command-router", common + http() + ["--set", "router.signing-key=\(keys).key"])
    // Every host's CPU is above -1 %: an alert per host, repeated every 2 s
    // until acknowledged, to a local ntfy receiver the browser test runs.
    let ntfyPort = Harness.freePort()
    let rules = work.appendingPathComponent("rules.yaml")
    try """
    settings: {group-wait: 100ms, retry-initial: 300ms, repeat-interval: 2s}
    include-defaults: false
    channels:
      - {name: phone, type: ntfy, url: "http://127.0.0.1:\(ntfyPort)/lab"}
    routes:
      - {channels: [phone]}
    rules:
      - {name: busy, kind: threshold, metric: cpu.percent, op: '>', value: -1, for: 0s, severity: warning,
         summary: "busy {{host}}"}
    """.write(to: rules, atomically: true, encoding: .utf8)
    try start("notifier", "notifier", common + http() + ["--set", "notifier.rules=\(rules.path)"])
    let inventory = work.appendingPathComponent("inventory.yaml")
    try """
    site: lab
    rooms:
      - name: lab
        origin: [0, 0, 0]
        size: [5, 2.8, 4]
        racks:
          - name: rack-a
            position: [1.5, 0, 1]
            units: 12
            devices:
              - {name: sw-core, kind: switch, unit: 12}
              - {name: web-01, kind: host, unit: 3}
              - {name: web-02, kind: host, unit: 4}
              - {name: db-01, kind: host, unit: 6, height: 2}
        devices:
          - {name: lab-ap, kind: access_point, position: [4, 2.6, 3]}
    links:
      - {from: "web-01:eth0", to: "sw-core:1", speed: 1000}
      - {from: "web-02:eth0", to: "sw-core:2", speed: 1000}
      - {from: "db-01:eth0", to: "sw-core:3", speed: 1000}
      - {from: "lab-ap:lan", to: "sw-core:24", speed: 1000}
    """.write(to: inventory, atomically: true, encoding: .utf8)
    try start(
      "twin-service", "twin-service",
      common + http() + ["--set", "twin.inventory=\(inventory.path)", "--set", "twin.interval=1s"])
    for host in ["web-01", "web-02", "db-01"] {
      try startReflector(
        host, keys: keys, labels: "site=lab",
        ["--set", "commands.policy=\(Harness.root.appendingPathComponent("config/commands-policy.yaml").path)"])
    }
    let port = try await startConsole(["--set", "console.confirm-above=2"])
    let admin = ConsoleClient(port: port)
    let adminSecret = try await admin.logIn("ada", "correct horse battery")
    let viewerSecret = try await ConsoleClient(port: port).logIn("vic", "viewer password 1")
    let reporting = await Harness.waitUntil(timeout: .seconds(40)) {
      let rows = (try? await admin.send("GET", "/api/v1/hosts").json["hosts"] as? [[String: Any]]) ?? []
      return rows.filter { $0["state"] as? String != "down" && $0["cpu"] != nil }.count == 3
        && rows.allSatisfy { ($0["groups"] as? [String]) == ["lab"] }
    }
    #expect(reporting, "three reflectors reporting, in the group lab")
    let scene = await Harness.waitUntil(timeout: .seconds(30)) {
      (try? await admin.send("GET", "/api/v1/twin/scene").text.contains("HEALTH_OK")) ?? false
    }
    #expect(scene, "the twin's scene through the console")

    let script = Harness.root.appendingPathComponent("Tests/console/browser_actions.py").path
    let result = try await Harness.runDetached(
      "/usr/bin/env", ["python3", script],
      environment: [
        "CONSOLE_URL": "http://127.0.0.1:\(port)", "CONSOLE_USER": "ada", "CONSOLE_PASSWORD": "correct horse battery",
        "CONSOLE_SECRET": adminSecret ?? "", "CONSOLE_VIEWER": "vic", "CONSOLE_VIEWER_PASSWORD": "viewer password 1",
        "CONSOLE_VIEWER_SECRET": viewerSecret ?? "", "CONSOLE_HOSTS": "web-01,web-02,db-01",
        "CONSOLE_STOP_PID": "\(processes["db-01"]!.processIdentifier)", "CONSOLE_STOP_HOST": "db-01",
        "CONSOLE_NTFY_PORT": "\(ntfyPort)", "CONSOLE_ARTIFACTS": artifacts.path,
        "CONSOLE_DOCS": docShots,
      ])
    print(result.output)
    #expect(result.status == 0, "browser test failed:\n\(result.output)")

    // Every request/reply service of the stack speaks NATS micro, as an
    // independent client reads it; ingest counted the console's hosts.list.
    let micro = try Harness.run(
      "/usr/bin/env",
      [
        "python3", Harness.root.appendingPathComponent("Tests/micro/check_micro.py").path, nats.url,
        "ingest,command-router,notifier,twin-service", "ingest:hosts.list:1:0", "command-router:commands.submit:2:0",
        "twin-service:twin.scene.get:1:0", "notifier:alerts.ack:1:0",
      ])
    #expect(micro.status == 0, "\(micro.output)")
  }
}
