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

/// Starts the built `ingest` executable (next to the test binary).
func launchIngest(natsURL: String, databaseURL: String, extra: [String] = []) throws -> Process {
  try Harness.launch(
    "ingest",
    [
      "--nats-url", natsURL, "--database-url", databaseURL, "--http", "127.0.0.1:\(Harness.freePort())", "--log-level",
      "error",
    ] + extra)
}

/// The real `ingest` executable, killed with SIGKILL while batches stream in.
@Suite final class IngestCrashTests {
  let nats: NATSTestServer
  let db: PostgresTestDatabase

  init() throws {
    nats = try NATSTestServer()
    db = try PostgresTestDatabase("crash")
  }

  func launchIngest() throws -> Process {
    try IngestTests.launchIngest(natsURL: nats.url, databaseURL: db.url, extra: ["--set", "ingest.fetch-batch=20"])
  }

  func stored() -> Int {
    (try? db.connect().query("SELECT count(*) FROM metrics_cpu")[0].decode(Int.self, 0)) ?? -1
  }

  @Test func killedMidStreamAndRestartedStoresExactlyN() async throws {
    let bus = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    try await bus.ensureStream(Streams.metrics)
    let first = try launchIngest()
    let n = 600
    let now = Date().unixMilliseconds
    let publisher = Task {
      for i in 0..<n {
        let b = batch(host: "c\(i % 10)", seq: UInt64(i + 1), at: now - Int64(n - i) * 100)
        _ = try await bus.jetStreamPublish("metrics.raw.\(b.host)", b, msgID: "\(b.host):\(b.bootId):\(b.sequence)")
      }
    }
    // Kill it once some, but not all, batches are stored.
    #expect(await Harness.waitUntil(timeout: .seconds(30)) { self.stored() > 50 })
    kill(first.processIdentifier, SIGKILL)
    first.waitUntilExit()
    let atKill = stored()
    #expect(atKill < n, "killed mid-stream: \(atKill) of \(n) stored")
    try await publisher.value
    let second = try launchIngest()
    defer {
      kill(second.processIdentifier, SIGTERM)
      second.waitUntilExit()
    }
    let all = await Harness.waitUntil(timeout: .seconds(60)) { self.stored() >= n }
    #expect(all, "\(stored()) of \(n)")
    try await Task.sleep(for: .seconds(1))
    #expect(stored() == n, "exactly N, no duplicates")
    let distinct = try db.connect().query("SELECT count(DISTINCT (host, ts)) FROM metrics_cpu")[0].decode(Int.self, 0)
    #expect(distinct == n)
  }
}

/// PostgreSQL taken away for 10 s while batches stream in.
@Suite final class IngestDatabaseOutageTests {
  @Test func postgresStoppedForTenSecondsLosesNothing() async throws {
    let nats = try NATSTestServer()
    let pg = try PostgresPrivateCluster()
    let bus = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    try await bus.ensureStream(Streams.metrics)
    let p = try launchIngest(natsURL: nats.url, databaseURL: pg.url)
    defer {
      kill(p.processIdentifier, SIGTERM)
      p.waitUntilExit()
    }
    func stored() -> Int {
      (try? PGConnection(url: pg.url, connectTimeout: 1).query("SELECT count(*) FROM metrics_cpu")[0].decode(
        Int.self, 0)) ?? -1
    }
    let n = 200
    let now = Date().unixMilliseconds
    func send(_ range: Range<Int>) async throws {
      for i in range {
        let b = batch(host: "pg\(i % 5)", seq: UInt64(i + 1), at: now - Int64(n - i) * 100)
        _ = try await bus.jetStreamPublish("metrics.raw.\(b.host)", b, msgID: "\(b.host):\(b.bootId):\(b.sequence)")
      }
    }
    try await send(0..<50)
    #expect(await Harness.waitUntil(timeout: .seconds(30)) { stored() == 50 })
    try pg.stop()
    try await send(50..<150)
    try await Task.sleep(for: .seconds(10))
    try pg.start()
    try await send(150..<n)
    let all = await Harness.waitUntil(timeout: .seconds(60)) { stored() >= n }
    #expect(all, "\(stored()) of \(n)")
    try await Task.sleep(for: .seconds(1))
    #expect(stored() == n, "exactly N after PostgreSQL returned")
  }
}
