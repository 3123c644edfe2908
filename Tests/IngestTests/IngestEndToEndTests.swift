import Foundation
import IngestCore
import Logging
import MirrorBus
import MirrorService
import MirrorServiceStore
import MirrorStore
import MirrorWire
import ServiceLifecycle
import TestSupport
import Testing

/// Ingest against a real nats-server and PostgreSQL.
@Suite(.serialized) final class IngestEndToEndTests {
  let nats: NATSTestServer
  let db: PostgresTestDatabase

  init() throws {
    nats = try NATSTestServer()
    db = try PostgresTestDatabase("ingest")
  }

  func withIngest(_ body: (BusConnection) async throws -> Void) async throws {
    let config = ConfigValues(overrides: ["nats.urls": nats.url, "database.url": db.url])
    let settings = try ServiceSettings(service: "ingest", defaultHTTPPort: 0, config: config)
    let context = ServiceContext(settings: settings, config: config, logger: Harness.logger, health: Health())
    let bus = BusService(
      options: settings.bus, streams: [Streams.metrics, Streams.metricsNormalized], context: context)
    let database = try DatabaseService(settings: settings, context: context)
    let registry = HostRegistry(bus: bus, database: database.client, logger: Harness.logger)
    let pipeline = IngestPipeline(
      settings: .init(), bus: bus, database: database.client, registry: registry, logger: Harness.logger)
    let queries = QueryService(
      bus: bus, database: PostgresClient(url: db.url, logger: Harness.logger), timescale: { false },
      logger: Harness.logger)
    let group = ServiceGroup(services: [database, bus, registry, pipeline, queries], logger: Harness.logger)
    let running = Task { try await group.run() }
    let client = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    #expect(await Harness.waitUntil { (try? await client.streamState("METRICS")) != nil })
    do { try await body(client) } catch {
      await group.triggerGracefulShutdown()
      _ = await running.result
      throw error
    }
    await group.triggerGracefulShutdown()
    try await running.value
  }

  func count(_ table: String) throws -> Int {
    try db.connect().query("SELECT count(*) FROM \(table)")[0].decode(Int.self, 0)
  }

  func publish(_ bus: BusConnection, _ b: MetricsBatch, msgID: String? = nil) async throws {
    _ = try await bus.jetStreamPublish(
      "metrics.raw.\(b.host)", b, msgID: msgID ?? "\(b.host):\(b.bootId):\(b.sequence)")
  }

  @Test func nBatchesInExactlyNStoredAndBadInputRejected() async throws {
    try await withIngest { bus in
      let rejected = try bus.subscribe("metrics.rejected")
      try await bus.flush()
      let now = Date().unixMilliseconds
      let n = 40
      for i in 0..<n {
        var b = batch(host: "h\(i % 4)", seq: UInt64(i + 1), at: now - Int64(n - i) * 1000)
        b.interfaces = [NetworkInterface(name: "eth0", rxBytes: UInt64(i) * 1_000_000, txBytes: 0, speedMbps: 1000)]
        try await publish(bus, b)
      }
      // The same batch again under another message id: stored once anyway.
      try await publish(bus, batch(host: "h1", seq: 2, at: now - Int64(n - 1) * 1000), msgID: "redelivery-1")
      // Bad input.
      _ = try await bus.jetStreamPublish("metrics.raw.h1", payload: [0xFF, 0xFF, 0xFF], msgID: "garbage")
      _ = try await bus.jetStreamPublish("metrics.raw.h2", batch(host: "h3", seq: 500, at: now), msgID: "mismatch")
      _ = try await bus.jetStreamPublish(
        "metrics.raw.h1", batch(host: "h1", seq: 501, at: now - 7_200_000), msgID: "stale")

      let stored = await Harness.waitUntil(timeout: .seconds(20)) { (try? self.count("metrics_cpu")) == n }
      #expect(stored, "metrics_cpu has \((try? self.count("metrics_cpu")) ?? -1) rows")
      try await Task.sleep(for: .milliseconds(500))
      #expect(try count("metrics_cpu") == n, "no second row for the redelivered batch")
      #expect(try count("ingest_batches") == n)
      #expect(try count("metrics_network") == n)
      #expect(try count("metrics_memory") == n)
      #expect(try count("hosts") == 4, "auto-registered")
      let messages = await Harness.collect(rejected, count: 3)
      #expect(messages.allSatisfy { $0.mirrorType == RpcError.fullName })
      #expect(
        messages.map { $0.headers["Mirror-Reject-Reason"] ?? "?" }.sorted() == ["host_mismatch", "malformed", "stale"])
      // Derived rates were stored: 1 MB per second between consecutive batches of a host (4 s apart).
      let rate = try db.connect().query(
        "SELECT rx_bytes_per_second FROM metrics_network WHERE host = 'h1' AND rx_bytes_per_second IS NOT NULL ORDER BY ts LIMIT 1"
      )
      #expect(try rate.rows.first?.decode(Double.self, 0) == 1_000_000)
      let normalized = try await bus.streamState("METRICS_NORM").messages
      #expect(normalized == UInt64(n))
    }
  }

  @Test func hostsRegisterUpsertsTheHost() async throws {
    try await withIngest { bus in
      let info = HostInfo(
        hostname: "reg1", addresses: [NetworkAddress(interfaceName: "eth0", address: "10.0.0.7", prefixLength: 24)],
        hardwareAddresses: [HardwareAddress(interfaceName: "eth0", mac: "aa:bb:cc:dd:ee:ff")], osName: "Debian",
        kernel: "6.1", cpuModel: "EPYC", cpuCores: 8, memoryTotalBytes: 1 << 34, agentVersion: "0.1.0",
        labels: [Label(key: "rack", value: "r1")], primaryInterface: "eth0", primaryInterfaceSpeedMbps: 1000)
      var reply: RegisterHostResponse?
      _ = await Harness.waitUntil {
        reply = try? await bus.request(
          "hosts.register", RegisterHostRequest(info: info), expecting: RegisterHostResponse.self,
          timeout: .milliseconds(500))
        return reply != nil
      }
      #expect(reply?.accepted == true)
      #expect(reply?.intervalMs == 5000)
      let row = try db.connect().query(
        "SELECT cpu_cores, primary_interface_speed_mbps, labels->>'rack', mac_addresses[1], addresses[1] FROM hosts WHERE name = 'reg1'"
      )[0]
      #expect(try row.decode(Int.self, 0) == 8)
      #expect(try row.decode(Int.self, 1) == 1000)
      #expect(try row.decode(String.self, 2) == "r1")
      #expect(try row.decode(String.self, 3) == "aa:bb:cc:dd:ee:ff")
      #expect(try row.decode(String.self, 4) == "10.0.0.7")
      let bad = try await bus.request("hosts.register", payload: [0xFF, 0x01], timeout: .seconds(2))
      #expect(bad.mirrorType == RpcError.fullName)
    }
  }

  @Test func hostsAndMetricsQueriesOverNATS() async throws {
    try await withIngest { bus in
      let now = Date().unixMilliseconds
      for i in 0..<12 {
        var b = batch(host: "q\(i % 3)", seq: UInt64(i + 1), at: now - Int64(12 - i) * 1000)
        b.cpu?.utilizationPercent = Double(10 * (i % 3) + i / 3)
        b.interfaces = [NetworkInterface(name: "eth0", rxBytes: UInt64(i) * 10_000, speedMbps: 100)]
        try await publish(bus, b)
      }
      #expect(await Harness.waitUntil(timeout: .seconds(20)) { (try? self.count("metrics_cpu")) == 12 })
      try db.connect().execute(
        """
        UPDATE hosts SET labels = '{"rack": "r1"}' WHERE name IN ('q0', 'q1');
        INSERT INTO host_groups (name, selector) VALUES ('rack1', '{"rack": "r1"}'), ('pets', '{}');
        INSERT INTO host_group_members (group_name, host) VALUES ('pets', 'q2');
        UPDATE hosts SET last_seen_at = now() - interval '1 hour' WHERE name = 'q2';
        """)

      let all = try await bus.request(Subjects.hostsList, ListHostsRequest(), expecting: ListHostsResponse.self)
      #expect(all.hosts.map(\.name) == ["q0", "q1", "q2"])
      #expect(all.hosts.map(\.online) == [true, true, false], "q2 not seen for an hour")
      #expect(all.hosts[0].groups == ["rack1"] && all.hosts[2].groups == ["pets"])
      let rack = try await bus.request(
        Subjects.hostsList, ListHostsRequest(labels: [Label(key: "rack", value: "r1")]),
        expecting: ListHostsResponse.self)
      #expect(rack.hosts.map(\.name) == ["q0", "q1"])
      let pets = try await bus.request(
        Subjects.hostsList, ListHostsRequest(group: "pets"), expecting: ListHostsResponse.self)
      #expect(pets.hosts.map(\.name) == ["q2"])
      let online = try await bus.request(
        Subjects.hostsList, ListHostsRequest(onlineOnly: true), expecting: ListHostsResponse.self)
      #expect(online.hosts.map(\.name) == ["q0", "q1"])

      let one = try await bus.request(Subjects.hostsGet, GetHostRequest(host: "q1"), expecting: HostStatus.self)
      #expect(one.name == "q1" && one.labels == [Label(key: "rack", value: "r1")] && one.intervalMs == 5000)
      #expect(abs(one.lastSeenAtUnixMs - (now - 2 * 1000)) < 2, "the newest batch of q1")
      await #expect(throws: RemoteError.self) {
        _ = try await bus.request(Subjects.hostsGet, GetHostRequest(host: "nobody"), expecting: HostStatus.self)
      }

      let snapshot = try await bus.request(
        Subjects.hostsSnapshot, HostsSnapshotRequest(), expecting: HostsSnapshotResponse.self)
      #expect(snapshot.hosts.map { $0.status?.name ?? "" } == ["q0", "q1", "q2"])
      #expect(snapshot.hosts.map { $0.latest?.batch?.sequence ?? 0 } == [10, 11, 12], "the latest batch of each")
      #expect(snapshot.hosts[0].latest?.cpuPercent == 3)
      #expect(snapshot.hosts[0].latest?.interfaces.first?.rxBytesPerSecond == 10_000, "30 kB in 3 s")

      let series = try await bus.request(
        Subjects.metricsQuery,
        MetricsQueryRequest(hosts: ["q0", "q2"], metric: "cpu_percent", startUnixMs: now - 70_000, endUnixMs: now + 1),
        expecting: MetricsQueryResponse.self)
      #expect(series.source == .raw)
      #expect(series.series.map(\.host) == ["q0", "q2"])
      #expect(series.series[0].points.map(\.samples).reduce(0, +) == 4)
      #expect(series.series[1].points.map(\.maximum).max() == 23)
      #expect(series.series[1].points.map(\.minimum).min() == 20)
      let rates = try await bus.request(
        Subjects.metricsQuery,
        MetricsQueryRequest(
          metric: "network_rx_bytes_per_second", startUnixMs: now - 70_000, endUnixMs: now, stepSeconds: 3600,
          key: "eth0"), expecting: MetricsQueryResponse.self)
      #expect(rates.source == .hourly)

      // Bad queries get a reason, never silence.
      for (subject, payload, code) in [
        (Subjects.metricsQuery, MetricsQueryRequest(metric: "nonsense").encode(), "invalid_argument"),
        (Subjects.metricsQuery, [0xFF, 0xFF], "invalid_argument"),
        (Subjects.hostsList, [0x0A, 0x10], "invalid_argument"),
        (
          Subjects.metricsQuery, MetricsQueryRequest(metric: "cpu_percent", startUnixMs: 5, endUnixMs: 4).encode(),
          "invalid_argument"
        ),
      ] as [(String, [UInt8], String)] {
        let reply = try await bus.request(subject, payload: payload, timeout: .seconds(2))
        #expect(reply.mirrorType == RpcError.fullName)
        #expect((try? RpcError(decoding: reply.payload))?.code == code, "\(subject)")
      }
    }
  }

  /// The built `mirrorctl`, run against the NATS server at `url`.
  static func mirrorctl(_ arguments: [String], url: String) async throws -> (status: Int32, output: String) {
    return try await Harness.runDetached(Harness.executable("mirrorctl"), arguments + ["--nats-url", url])
  }

  static func jsonLines(_ output: String) -> [[String: Any]] {
    output.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
  }

  /// Runs `mirrorctl tail ...` while `publish` repeats (until tail has what
  /// it waits for): no guessing when its subscription is up.
  static func tail(_ arguments: [String], url: String, publish: () throws -> Void) async throws -> (Int32, String) {
    let done = DoneFlag()
    let run = Task.detached {
      defer { done.set() }
      return try await mirrorctl(["tail"] + arguments + ["--seconds", "30"], url: url)
    }
    while !done.isSet {
      try publish()
      try await Task.sleep(for: .milliseconds(200))
    }
    let result = try await run.value
    return (result.status, result.output)
  }

  @Test func mirrorctlShowsHostsTopAndAnyMessageAsJSON() async throws {
    let url = nats.url
    try await withIngest { bus in
      let now = Date().unixMilliseconds
      for i in 0..<4 {
        var b = batch(host: "m\(i % 2)", seq: UInt64(i + 1), at: now - Int64(4 - i) * 1000)
        b.cpu?.utilizationPercent = 42.5
        try await publish(bus, b)
      }
      #expect(await Harness.waitUntil(timeout: .seconds(20)) { (try? self.count("metrics_cpu")) == 4 })

      let hosts = try await Self.mirrorctl(["hosts", "--json"], url: url)
      try #require(hosts.status == 0, "\(hosts.output)")
      let listed = try JSONSerialization.jsonObject(with: Data(hosts.output.utf8)) as? [[String: Any]]
      #expect(listed?.compactMap { $0["name"] as? String } == ["m0", "m1"])
      let table = try await Self.mirrorctl(["hosts"], url: url)
      #expect(table.output.hasPrefix("HOST") && table.output.contains("m1    up"), "\(table.output)")

      let top = try await Self.mirrorctl(["top", "--once"], url: url)
      #expect(top.status == 0)
      let rows = top.output.split(separator: "\n")
      #expect(rows.count == 3 && rows[0].hasPrefix("HOST  STATE  CPU%"), "\(top.output)")
      #expect(rows.dropFirst().allSatisfy { $0.contains(" up ") && $0.contains("42.5") }, "\(top.output)")

      // A message with its headers: the type comes from Mirror-Type.
      let (status, output) = try await Self.tail(["tailtest.>", "--count", "3"], url: url) {
        try bus.publish("tailtest.any", batch(host: "t1", seq: 9, at: 1234))
      }
      #expect(status == 0, "\(output)")
      let lines = Self.jsonLines(output)
      #expect(lines.count == 3)
      #expect(lines.allSatisfy { $0["type"] as? String == "mirrorstage.v1.MetricsBatch" })
      let message = lines.first?["message"] as? [String: Any]
      #expect(message?["host"] as? String == "t1" && message?["collectedAtUnixMs"] as? Int == 1234)

      // No headers: the type from the subject; garbage is shown with its error, not dropped.
      let (_, rawOutput) = try await Self.tail(["metrics.raw.>", "--count", "2"], url: url) {
        try bus.publish("metrics.raw.x", payload: batch(host: "x", seq: 1, at: 5).encode())
        try bus.publish("metrics.raw.y", payload: [0xFF, 0x00])
      }
      let decoded = Self.jsonLines(rawOutput)
      #expect(decoded.count == 2, "\(rawOutput)")
      #expect(decoded.contains { ($0["message"] as? [String: Any])?["host"] as? String == "x" }, "\(rawOutput)")
      #expect(decoded.contains { $0["error"] != nil && $0["bytes"] as? Int == 2 }, "\(rawOutput)")

      let unreachable = try await Self.mirrorctl(["hosts"], url: "nats://127.0.0.1:\(Harness.freePort())")
      #expect(unreachable.status == 1 && unreachable.output.contains("cannot connect to NATS"))
    }
  }
}

/// Set once by one task, read by another.
final class DoneFlag: @unchecked Sendable {
  private let lock = NSLock()
  private var value = false
  func set() { lock.withLock { value = true } }
  var isSet: Bool { lock.withLock { value } }
}
