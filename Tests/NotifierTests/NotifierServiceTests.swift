import Foundation
import MirrorBus
import MirrorService
import MirrorServiceStore
import MirrorStore
import MirrorWire
import NotifierCore
import ServiceLifecycle
import TestSupport
import Testing

/// The Notifier against a real nats-server, PostgreSQL, and local HTTP
/// receivers speaking the ntfy, Telegram and webhook APIs.
@Suite(.serialized) final class NotifierServiceTests {
  let nats: NATSTestServer
  let db: PostgresTestDatabase
  let ntfy: HTTPReceiver
  let telegram: HTTPReceiver
  let hook: HTTPReceiver

  init() throws {
    nats = try NATSTestServer()
    db = try PostgresTestDatabase("notifier")
    try MigrationRunner.migrate(try db.connect(), timescale: .off, logger: Harness.logger)
    ntfy = try HTTPReceiver()
    telegram = try HTTPReceiver()
    hook = try HTTPReceiver()
  }

  func channels(groupWait: String = "200ms") -> String {
    """
    settings: {group-wait: \(groupWait), retry-initial: 300ms, repeat-interval: 1h}
    include-defaults: false
    channels:
      - {name: phone, type: ntfy, url: "\(ntfy.url)/lab-alerts", token-env: NTFY_TOKEN}
      - {name: ops, type: telegram, url: "\(telegram.url)", token-env: TG_TOKEN, chat-id: "-1001234"}
      - {name: hook, type: webhook, url: "\(hook.url)/hook", headers: {X-Source: mirror}}
    routes:
      - {severity: critical, channels: [phone, ops, hook]}
      - {channels: [phone]}

    """
  }

  static let env = ["NTFY_TOKEN": "tk_test", "TG_TOKEN": "123:abc"]

  /// The Notifier running `rules` until `body` ends; `restart` stops it
  /// (as a crash would: no goodbye) and starts a new one.
  func withNotifier(
    _ rules: String, _ body: (BusConnection, _ restart: () async throws -> Void) async throws -> Void
  ) async throws {
    let parsed = try NotifierRules.parse(YAMLValue.parse(rules, file: "test.yaml"), environment: Self.env)
    let config = ConfigValues(overrides: ["nats.urls": nats.url, "database.url": db.url])
    let settings = try ServiceSettings(service: "notifier", defaultHTTPPort: 0, config: config)
    let context = ServiceContext(settings: settings, config: config, logger: Harness.logger, health: Health())
    var service = NotifierService.Settings()
    service.tick = .milliseconds(200)
    func start() -> (ServiceGroup, Task<Void, any Error>) {
      let bus = BusService(
        options: settings.bus, streams: [Streams.alerts, Streams.events, Streams.metricsNormalized], context: context)
      let notifier = NotifierService(
        rules: parsed, settings: service, bus: bus, database: PostgresClient(url: db.url, logger: Harness.logger),
        logger: Harness.logger)
      let group = ServiceGroup(services: [bus, notifier], logger: Harness.logger)
      return (group, Task { try await group.run() })
    }
    var (group, running) = start()
    let client = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    let ready = await Harness.waitUntil(timeout: .seconds(20)) {
      let metrics = (try? await client.streamState(Streams.metricsNormalized.name).consumers) ?? 0
      let events = (try? await client.streamState(Streams.events.name).consumers) ?? 0
      return metrics >= 1 && events >= 1
    }
    #expect(ready)
    let restart = {
      running.cancel()
      _ = await running.result
      (group, running) = start()
      try await Task.sleep(for: .milliseconds(300))
    }
    defer { running.cancel() }
    try await body(client, restart)
    await group.triggerGracefulShutdown()
    _ = await running.result
  }

  func alertRows(_ host: String) throws -> [(state: String, notified: Bool)] {
    try db.connect().query(
      "SELECT state, notified_at IS NOT NULL FROM alerts WHERE host = $1 ORDER BY started_at", [host]
    ).rows.map { (try $0.decode(String.self, 0), try $0.decode(Bool.self, 1)) }
  }

  @Test func ntfyTelegramAndWebhookGetExactlyTheRequestsTheirAPIsExpect() async throws {
    let rules =
      channels() + """
        rules:
          - {name: disk-full, kind: threshold, metric: disk.used_percent, op: '>', value: 90, severity: critical, clear-for: 0s, summary: "{{series}} is {{value}} % full on {{host}}"}
        """
    try await withNotifier(rules) { client, _ in
      let alerts = try client.subscribe("alerts.critical.nas1")
      try await client.publishNormalized(normalized("nas1", at: Date().unixMilliseconds, mounts: [("/srv", 95)]))
      let phone = await ntfy.waitFor(1)
      let tg = await telegram.waitFor(1)
      let web = await hook.waitFor(1)
      try #require(phone.count == 1 && tg.count == 1 && web.count == 1)
      // ntfy: POST to the topic URL, title/priority/tags headers, token.
      let n = phone[0]
      #expect(n.method == "POST")
      #expect(n.path == "/lab-alerts")
      #expect(n.headers["title"] == "FIRING disk-full on nas1")
      #expect(n.headers["priority"] == "5")
      #expect(n.headers["tags"] == "rotating_light,nas1")
      #expect(n.headers["authorization"] == "Bearer tk_test")
      #expect(n.text == "/srv is 95 % full on nas1")
      // Telegram: Bot API sendMessage with the chat id, HTML.
      let t = tg[0]
      #expect(t.method == "POST")
      #expect(t.path == "/bot123:abc/sendMessage")
      #expect(t.headers["content-type"] == "application/json")
      let tj = try #require(t.json)
      #expect(tj["chat_id"] as? String == "-1001234")
      #expect(tj["parse_mode"] as? String == "HTML")
      #expect(tj["text"] as? String == "<b>FIRING disk-full on nas1</b>\n/srv is 95 % full on nas1")
      // Webhook: our JSON, with the configured header.
      let w = web[0]
      #expect(w.path == "/hook")
      #expect(w.headers["x-source"] == "mirror")
      let wj = try #require(w.json)
      #expect(wj["status"] as? String == "firing")
      let first = try #require((wj["alerts"] as? [[String: Any]])?.first)
      #expect(first["rule"] as? String == "disk-full")
      #expect(first["host"] as? String == "nas1")
      #expect((first["labels"] as? [String: String])?["mount"] == "/srv")
      // The state change is on alerts.critical.nas1 and in the table.
      let published = await Harness.collect(alerts, count: 1)
      let a = try Alert(decoding: try #require(published.first).payload)
      #expect(a.state == .firing && a.rule == "disk-full")
      #expect(try alertRows("nas1").map(\.state) == ["firing"])
      // Resolved: one more message each, marked resolved.
      try await client.publishNormalized(normalized("nas1", at: Date().unixMilliseconds + 1, mounts: [("/srv", 40)]))
      let resolved = await ntfy.waitFor(2)
      #expect(resolved.count == 2)
      #expect(resolved.last?.headers["title"] == "RESOLVED disk-full on nas1")
      #expect(resolved.last?.headers["priority"] == "2")
      #expect(resolved.last?.headers["tags"] == "white_check_mark,nas1")
      #expect(await telegram.waitFor(2).count == 2)
      #expect(try alertRows("nas1").map(\.state) == ["resolved"])
    }
  }

  @Test func alertsThatFireTogetherGoOutAsOneMessage() async throws {
    let rules =
      channels(groupWait: "1s") + """
        rules:
          - {name: hot, kind: threshold, metric: cpu.percent, op: '>', value: 80}
        """
    try await withNotifier(rules) { client, _ in
      let now = Date().unixMilliseconds
      for h in ["r1", "r2", "r3", "r4"] { try await client.publishNormalized(normalized(h, at: now, cpu: 95)) }
      let got = await ntfy.waitFor(1)
      try await Task.sleep(for: .seconds(2))
      #expect(ntfy.delivered.count == 1, "one grouped message, not four")
      #expect(got.first?.headers["title"] == "4 alerts on 4 hosts: 4 firing")
      #expect(got.first?.text.components(separatedBy: "\n").count == 4)
    }
  }

  @Test func aHostThatStopsSendingIsOneDownAndOneResolvedAcrossARestart() async throws {
    let rules =
      channels() + """
        rules:
          - {name: host-down, kind: absence, intervals: 2, severity: critical, summary: "{{host}} stopped reporting"}
          - {name: hot, kind: threshold, metric: cpu.percent, op: '>', value: 80, severity: critical}
        """
    try await withNotifier(rules) { client, restart in
      var seq: Int64 = 0
      func beat(cpu: Double = 10) async throws {
        seq += 1
        try await client.publishNormalized(
          normalized("pc7", at: Date().unixMilliseconds + seq, cpu: cpu, interval: 1000))
      }
      for _ in 0..<3 {
        try await beat()
        try await Task.sleep(for: .milliseconds(500))
      }
      // Silence from pc7: after two intervals, "down", once.
      let down = await ntfy.waitFor(1)
      #expect(down.first?.headers["title"] == "FIRING host-down on pc7")
      try await Task.sleep(for: .seconds(2))
      #expect(ntfy.delivered.count == 1)
      // A restart while it is down sends nothing again.
      try await restart()
      try await Task.sleep(for: .seconds(2))
      #expect(
        ntfy.delivered.count == 1,
        "no second 'down' after the restart: \(ntfy.delivered.map { $0.headers["title"] ?? "" })")
      // Back, and hot: resolved, and the CPU alert it could not send before.
      try await beat(cpu: 95)
      let back = await ntfy.waitFor(2)
      #expect(back.count == 2)
      #expect(
        back.last?.headers["title"]?.contains("RESOLVED host-down on pc7") == true
          || back.last?.text.contains("RESOLVED host-down") == true)
      #expect(try alertRows("pc7").map(\.state).sorted() == ["firing", "resolved"])
    }
  }

  @Test func aReceiverAnswering500ThenOKGetsOneDeliveryAfterARetry() async throws {
    ntfy.respond(with: [500, 503])
    let rules =
      channels() + """
        rules:
          - {name: hot, kind: threshold, metric: cpu.percent, op: '>', value: 80}
        """
    try await withNotifier(rules) { client, _ in
      try await client.publishNormalized(normalized("w1", at: Date().unixMilliseconds, cpu: 99))
      let delivered = await ntfy.waitFor(1)
      try await Task.sleep(for: .seconds(1))
      #expect(delivered.count == 1)
      #expect(ntfy.requests.map(\.status) == [500, 503, 200])
      let row = try db.connect().query("SELECT state, attempts FROM notifications WHERE channel = 'phone'")
      #expect(row.count == 1)
      #expect(try row[0].decode(String.self, 0) == "sent")
      #expect(try row[0].decode(Int.self, 1) == 3)
    }
  }

  @Test func aChannelOverItsRateLimitHoldsTheRestQueuedNotDropped() async throws {
    let rules = """
      settings: {group-wait: 100ms}
      include-defaults: false
      channels:
        - {name: phone, type: ntfy, url: "\(ntfy.url)/slow", per-minute: 2}
      rules:
        - {name: hot, kind: threshold, metric: cpu.percent, op: '>', value: 80}
      """
    try await withNotifier(rules) { client, _ in
      // Five alerts, far enough apart not to be grouped.
      for i in 0..<5 {
        try await client.publishNormalized(normalized("rl\(i)", at: Date().unixMilliseconds, cpu: 99))
        try await Task.sleep(for: .milliseconds(400))
      }
      try await Task.sleep(for: .seconds(1))
      #expect(ntfy.delivered.count == 2, "two a minute")
      let queued = try db.connect().query(
        "SELECT count(*) FROM notifications WHERE channel = 'phone' AND state = 'queued'")
      #expect(try queued[0].decode(Int.self, 0) == 3, "the rest wait in the outbox")
    }
  }

  @Test func aNotificationQueuedBeforeARestartIsSentOnceAfterIt() async throws {
    // Every attempt fails until the notifier has been restarted.
    ntfy.respond(with: Array(repeating: 500, count: 1000))
    let rules =
      channels() + """
        rules:
          - {name: hot, kind: threshold, metric: cpu.percent, op: '>', value: 80}
        """
    try await withNotifier(rules) { client, restart in
      try await client.publishNormalized(normalized("w2", at: Date().unixMilliseconds, cpu: 99))
      #expect(await Harness.waitUntil { ntfy.requests.count >= 1 })
      try await restart()
      ntfy.respond(with: [])
      let delivered = await ntfy.waitFor(1, timeout: .seconds(20))
      try await Task.sleep(for: .seconds(1))
      #expect(delivered.count == 1)
      #expect(delivered.first?.headers["title"] == "FIRING hot on w2")
    }
  }

  @Test func listAcknowledgeAndSilenceOverRequestReply() async throws {
    let rules =
      channels() + """
        rules:
          - {name: hot, kind: threshold, metric: cpu.percent, op: '>', value: 80}
        """
    try await withNotifier(rules) { client, _ in
      // A silence first: alerts of quiet-* are kept, not sent.
      let silence = try await client.request(
        Subjects.alertsSilence,
        SilenceRequest(host: "quiet-*", durationMs: 3_600_000, by: "ops", comment: "maintenance"),
        expecting: Silence.self)
      #expect(silence.host == "quiet-*" && silence.endsAtUnixMs > Date().unixMilliseconds)
      try await client.publishNormalized(normalized("quiet-1", at: Date().unixMilliseconds, cpu: 99))
      try await client.publishNormalized(normalized("loud-1", at: Date().unixMilliseconds, cpu: 99))
      #expect(await ntfy.waitFor(1).count == 1)
      try await Task.sleep(for: .seconds(1))
      #expect(ntfy.delivered.count == 1)
      #expect(ntfy.delivered.first?.headers["title"] == "FIRING hot on loud-1")
      let list = try await client.request(Subjects.alertsList, ListAlertsRequest(), expecting: ListAlertsResponse.self)
      #expect(Set(list.alerts.map(\.host)) == ["quiet-1", "loud-1"])
      #expect(list.silences.map(\.id) == [silence.id])
      let loud = try #require(list.alerts.first { $0.host == "loud-1" })
      let acked = try await client.request(
        Subjects.alertsAck, AckAlertRequest(alertId: loud.id, by: "ops", comment: "on it"), expecting: Alert.self)
      #expect(acked.acknowledged && acked.acknowledgedBy == "ops" && acked.acknowledgedComment == "on it")
      let again = try await client.request(
        Subjects.alertsList, ListAlertsRequest(host: "loud-1"), expecting: ListAlertsResponse.self)
      #expect(again.alerts.first?.acknowledged == true && again.alerts.first?.acknowledgedComment == "on it")
      // Ending the silence: quiet-* is heard again, and the silence is gone.
      let ended = try await client.request(
        Subjects.alertsUnsilence, EndSilenceRequest(id: silence.id, by: "ops"), expecting: Silence.self)
      #expect(ended.id == silence.id)
      let unknown = try await client.request(
        Subjects.alertsUnsilence, EndSilenceRequest(id: silence.id, by: "ops"), expecting: RpcError.self)
      #expect(unknown.code == "not_found")
      try await client.publishNormalized(normalized("quiet-2", at: Date().unixMilliseconds, cpu: 99))
      // quiet-1 (held by the silence) and quiet-2, in one grouped message.
      #expect(
        await Harness.waitUntil { ntfy.delivered.contains { $0.headers["title"] == "2 alerts on 2 hosts: 2 firing" } },
        "\(ntfy.delivered.map { $0.headers["title"] ?? "" })")
      let after = try await client.request(Subjects.alertsList, ListAlertsRequest(), expecting: ListAlertsResponse.self)
      #expect(after.silences.isEmpty)
      // Bad requests get an RpcError, not silence.
      let missing = try await client.request(
        Subjects.alertsAck, AckAlertRequest(alertId: "nope", by: "ops"), expecting: RpcError.self)
      #expect(missing.code == "not_found")
      let unbounded = try await client.request(
        Subjects.alertsSilence, SilenceRequest(host: "x", by: "ops"), expecting: RpcError.self)
      #expect(unbounded.code == "invalid_argument")
      let aimless = try await client.request(
        Subjects.alertsSilence, SilenceRequest(durationMs: 60_000, by: "ops"), expecting: RpcError.self)
      #expect(aimless.code == "invalid_argument" && aimless.message.contains("name an alert, a rule or a host"))
      let garbage = try await client.request(Subjects.alertsList, payload: [0xFF, 0xFF, 0xFF], timeout: .seconds(5))
      #expect(try RpcError(decoding: garbage.payload).code == "invalid_argument")
    }
  }

  @Test func malformedInputIsDroppedAndTheRestStillWorks() async throws {
    let rules =
      channels() + """
        rules:
          - {name: hot, kind: threshold, metric: cpu.percent, op: '>', value: 80}
          - {name: broken, kind: event, events: [command_failed]}
        """
    try await withNotifier(rules) { client, _ in
      _ = try await client.jetStreamPublish(Subjects.metricsNormalized("bad"), payload: [0x0A, 0xFF, 0x01])
      // An event whose host is not its subject's: refused.
      _ = try await client.jetStreamPublish(
        Subjects.events("mallory"), Event(host: "victim", kind: .commandFailed), msgID: "forged")
      _ = try await client.jetStreamPublish(
        Subjects.events("e1"), Event(host: "e1", kind: .commandFailed, source: "router", message: "exit 3"), msgID: "ok"
      )
      try await client.publishNormalized(normalized("good", at: Date().unixMilliseconds, cpu: 99))
      // Both alerts, grouped in one message.
      let got = await ntfy.waitFor(1)
      try await Task.sleep(for: .milliseconds(800))
      #expect(ntfy.delivered.count == 1)
      #expect(got.first?.headers["title"] == "2 alerts on 2 hosts: 2 firing")
      let lines = Set(got.first?.text.components(separatedBy: "\n") ?? [])
      #expect(lines.contains { $0.hasPrefix("• FIRING hot on good") })
      #expect(lines.contains { $0.hasPrefix("• FIRING broken on e1") })
      #expect(try alertRows("victim").isEmpty)
    }
  }
}
