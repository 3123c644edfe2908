import Foundation
import MirrorBus
import MirrorService
import MirrorStore
import MirrorWire
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The `notifier` and `mirrorctl` executables as an operator runs them.
@Suite(.serialized) final class NotifierProcessTests {
  let nats: NATSTestServer
  let db: PostgresTestDatabase
  let ntfy: HTTPReceiver
  let dir: String

  init() throws {
    nats = try NATSTestServer()
    db = try PostgresTestDatabase("notifier_proc")
    ntfy = try HTTPReceiver()
    dir = NSTemporaryDirectory() + "notifier-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: dir) }

  func write(_ name: String, _ text: String) throws -> String {
    let path = "\(dir)/\(name)"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @Test func checkNamesTheFileAndLineOfAMistake() async throws {
    let good = try write(
      "good.yaml",
      "rules:\n  - {name: hot, kind: threshold, metric: cpu.percent, op: '>', value: 95, for: 1m}\n")
    let ok = try await Harness.runDetached(Harness.executable("notifier"), ["check", "--rules", good])
    #expect(ok.status == 0, "\(ok.output)")
    #expect(
      ok.output.contains("ok:") && ok.output.contains("hot (threshold, warning)") && ok.output.contains("host-down"))
    let bad = try write(
      "bad.yaml", "rules:\n  - name: hot\n    kind: threshold\n    metric: cpu.percent\n    op: '=>'\n    value: 1\n")
    let refused = try await Harness.runDetached(Harness.executable("notifier"), ["check", "--rules", bad])
    #expect(refused.status == 1)
    #expect(refused.output.contains("\(bad):5: rules[0].op: must be one of"), "\(refused.output)")
    // The service refuses to start on it, naming the same.
    let started = try await Harness.runDetached(
      Harness.executable("notifier"),
      ["--nats-url", nats.url, "--database-url", db.url, "--http", "127.0.0.1:0", "--set", "notifier.rules=\(bad)"])
    #expect(started.status != 0)
    #expect(started.output.contains("bad.yaml:5"), "\(started.output)")
  }

  func launchNotifier(_ rules: String, port: Int, databaseURL: String? = nil, log: String? = nil) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Harness.executable("notifier"))
    p.arguments = [
      "--nats-url", nats.url, "--database-url", databaseURL ?? db.url, "--http", "127.0.0.1:\(port)", "--set",
      "notifier.rules=\(rules)", "--set", "notifier.tick=200ms",
    ]
    p.environment = ["PATH": "/usr/bin:/bin", "NTFY_TOKEN": "tk_proc", "TG_TOKEN": "4242:SECRETTOKEN"]
    p.standardOutput = FileHandle.nullDevice
    if let log {
      _ = FileManager.default.createFile(atPath: log, contents: nil)
      p.standardError = FileHandle(forWritingAtPath: log)
    } else {
      p.standardError = FileHandle.nullDevice
    }
    try p.run()
    return p
  }

  /// A client, once the notifier's consumer on METRICS_NORM is bound.
  func connectWhenConsuming() async throws -> BusConnection {
    let client = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    #expect(
      await Harness.waitUntil(timeout: .seconds(30)) {
        ((try? await client.streamState(Streams.metricsNormalized.name).consumers) ?? 0) >= 1
      })
    return client
  }

  func mirrorctl(_ args: [String]) async throws -> (status: Int32, output: String) {
    try await Harness.runDetached(Harness.executable("mirrorctl"), args, environment: ["MIRROR_NATS_URL": nats.url])
  }

  @Test func mirrorctlRefusesASilenceWithoutAUsableDuration() async throws {
    for bad in ["soon", "0s"] {
      let r = try await mirrorctl(["alerts", "silence", "--host", "db*", "--for", bad])
      #expect(r.status != 0)
      #expect(r.output.contains("--for must be a duration"), "\(r.output)")
    }
  }

  @Test func badInputIsCountedAKilledNotifierSendsNothingTwiceAndMirrorctlAcks() async throws {
    let rules = try write(
      "rules.yaml",
      """
      settings: {group-wait: 100ms}
      include-defaults: false
      channels:
        - {name: phone, type: ntfy, url: "\(ntfy.url)/home", token-env: NTFY_TOKEN}
      rules:
        - {name: hot, kind: threshold, metric: cpu.percent, op: '>', value: 90, severity: critical}
      """)
    let port = Harness.freePort()
    var notifier = try launchNotifier(rules, port: port)
    defer { if notifier.isRunning { kill(notifier.processIdentifier, SIGKILL) } }
    let client = try await connectWhenConsuming()
    // Garbage on metrics.normalized: dropped, counted, and the service lives.
    _ = try await client.jetStreamPublish(Subjects.metricsNormalized("junk"), payload: [0x0A, 0xFF, 0x7F])
    #expect(
      await Harness.waitUntil {
        Harness.httpGet(port, "/metrics")?.body.contains("notifier_bad_input_total{reason=\"malformed\"} 1") == true
      }, "\(Harness.httpGet(port, "/metrics")?.body ?? "")")
    let now = Date().unixMilliseconds
    _ = try await client.jetStreamPublish(
      Subjects.metricsNormalized("db1"), normalized("db1", at: now, cpu: 97), msgID: "db1:1")
    let got = await ntfy.waitFor(1)
    #expect(got.first?.headers["title"] == "FIRING hot on db1")
    #expect(got.first?.headers["authorization"] == "Bearer tk_proc")
    // mirrorctl sees it and acknowledges it.
    let list = try await mirrorctl(["alerts"])
    #expect(list.status == 0 && list.output.contains("db1") && list.output.contains("firing"), "\(list.output)")
    let rows = try db.connect().query("SELECT id FROM alerts WHERE host = 'db1'")
    let id = try rows[0].decode(String.self, 0)
    let ack = try await mirrorctl(["alerts", "ack", id, "--by", "kim"])
    #expect(ack.status == 0 && ack.output.contains("acknowledged \(id)"), "\(ack.output)")
    let silence = try await mirrorctl(["alerts", "silence", "--host", "db*", "--for", "1h", "--comment", "patching"])
    #expect(silence.status == 0 && silence.output.contains("silence"), "\(silence.output)")
    let json = try await mirrorctl(["alerts", "--json"])
    #expect(json.output.contains("\"acknowledgedBy\" : \"kim\"") && json.output.contains("patching"), "\(json.output)")
    // Killed without warning, then started again: the alert is still
    // firing, and nobody is paged twice.
    kill(notifier.processIdentifier, SIGKILL)
    notifier.waitUntilExit()
    _ = try await client.jetStreamPublish(
      Subjects.metricsNormalized("db1"), normalized("db1", at: now + 5000, cpu: 98), msgID: "db1:2")
    notifier = try launchNotifier(rules, port: port)
    #expect(await Harness.waitUntil(timeout: .seconds(20)) { Harness.httpGet(port, "/healthz")?.status == 200 })
    try await Task.sleep(for: .seconds(2))
    #expect(ntfy.delivered.count == 1, "\(ntfy.delivered.map { $0.headers["title"] ?? "" })")
    let after = try await mirrorctl(["alerts", "--json"])
    #expect(after.output.contains("ALERT_STATE_FIRING"), "\(after.output)")
    kill(notifier.processIdentifier, SIGTERM)
    notifier.waitUntilExit()
    #expect(notifier.terminationStatus == 0)
  }

  @Test func anAlertDecidedWhilePostgresIsDownIsStoredAndSentWhenItReturns() async throws {
    let pg = try PostgresPrivateCluster()
    let rules = try write(
      "outage.yaml",
      """
      settings: {group-wait: 100ms}
      include-defaults: false
      channels:
        - {name: phone, type: ntfy, url: "\(ntfy.url)/home"}
      rules:
        - {name: hot, kind: threshold, metric: cpu.percent, op: '>', value: 90}
      """)
    let port = Harness.freePort()
    let notifier = try launchNotifier(rules, port: port, databaseURL: pg.url)
    defer {
      kill(notifier.processIdentifier, SIGTERM)
      notifier.waitUntilExit()
    }
    let client = try await connectWhenConsuming()
    try await Task.sleep(for: .milliseconds(500))
    try pg.stop()
    _ = try await client.jetStreamPublish(
      Subjects.metricsNormalized("web9"), normalized("web9", at: Date().unixMilliseconds, cpu: 99),
      msgID: "web9:1")
    // Counted and logged as a store error while it is down; nothing sent,
    // since nothing could be recorded.
    #expect(
      await Harness.waitUntil {
        Harness.httpGet(port, "/metrics")?.body.contains("notifier_store_errors_total") == true
      })
    #expect(ntfy.delivered.isEmpty)
    try pg.start()
    let got = await ntfy.waitFor(1, timeout: .seconds(30))
    #expect(got.first?.headers["title"] == "FIRING hot on web9")
    try await Task.sleep(for: .seconds(1))
    #expect(ntfy.delivered.count == 1)
    let state = try PGConnection(url: pg.url).query("SELECT state FROM alerts WHERE host = 'web9'")
    #expect(try state[0].decode(String.self, 0) == "firing")
  }

  @Test func aTelegramTokenNeverReachesTheLogEvenWhenDeliveryFails() async throws {
    let closed = Harness.freePort()
    let rules = try write(
      "tg.yaml",
      """
      settings: {group-wait: 100ms, retry-initial: 100ms, max-attempts: 2}
      include-defaults: false
      channels:
        - {name: ops, type: telegram, url: "http://127.0.0.1:\(closed)", token-env: TG_TOKEN, chat-id: "1"}
      rules:
        - {name: hot, kind: threshold, metric: cpu.percent, op: '>', value: 90}
      """)
    let port = Harness.freePort()
    let log = "\(dir)/notifier.log"
    let notifier = try launchNotifier(rules, port: port, log: log)
    defer {
      kill(notifier.processIdentifier, SIGTERM)
      notifier.waitUntilExit()
    }
    let client = try await connectWhenConsuming()
    _ = try await client.jetStreamPublish(
      Subjects.metricsNormalized("tg1"), normalized("tg1", at: Date().unixMilliseconds, cpu: 99),
      msgID: "tg1:1")
    func text() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
    #expect(await Harness.waitUntil { text().contains("given up after the last attempt") }, "\(text())")
    #expect(text().contains("notification not delivered; will retry"))
    #expect(!text().contains("SECRETTOKEN"), "the bot token is in the log")
    #expect(
      await Harness.waitUntil {
        Harness.httpGet(port, "/metrics")?.body.contains("notifier_delivery_failures_total{channel=\"ops\"} 1") == true
      })
  }
}
