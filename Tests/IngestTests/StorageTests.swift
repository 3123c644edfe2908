import Foundation
import IngestCore
import MirrorStore
import MirrorWire
import TestSupport
import Testing

/// Partitions made ahead, retention and rollups on a real PostgreSQL.
@Suite(.serialized) final class StorageTests {
  let db: PostgresTestDatabase
  let conn: PGConnection
  static let day: Int64 = 86_400_000
  static let hour: Int64 = 3_600_000

  init() throws {
    db = try PostgresTestDatabase("storage")
    conn = try db.connect()
    try MigrationRunner.migrate(conn, timescale: .off, logger: Harness.logger)
  }

  func count(_ sql: String) throws -> Int { try conn.query(sql)[0].decode(Int.self, 0) }

  func exists(_ table: String) throws -> Bool {
    try conn.query("SELECT to_regclass($1) IS NOT NULL", [table])[0].decode(Bool.self, 0)
  }

  /// Writes batches the way Ingest does (rates derived in order).
  func write(_ batches: [MetricsBatch]) throws {
    let deriver = RateDeriver()
    _ = try MetricsWriter.write(batches.map { deriver.derive($0) }, autoRegister: true, on: conn)
  }

  static func floorDay(_ ms: Int64) -> Int64 { ms - ms % day }

  /// All new: the keys are copied in (the cheap path). A repeat (stored
  /// before, or twice in one fetch) breaks the key's unique index: the
  /// fetch is written again, and only its new batches are stored.
  @Test func repeatsAreStoredOnceWhicheverPathTheFetchTakes() throws {
    let now = Date().unixMilliseconds
    let a = batch(host: "w1", seq: 1, at: now - 3000)
    let b = batch(host: "w1", seq: 2, at: now - 2000)
    let c = batch(host: "w2", seq: 1, at: now - 1000)
    let d = batch(host: "w2", seq: 2, at: now)
    let deriver = RateDeriver()
    let first = try MetricsWriter.write([a, b].map { deriver.derive($0) }, autoRegister: true, on: conn)
    #expect(first.map(\.sequence).sorted() == [1, 2] && first.allSatisfy { $0.host == "w1" })
    // b again (stored before), c twice in the fetch, d new.
    let second = try MetricsWriter.write([b, c, c, d].map { deriver.derive($0) }, autoRegister: true, on: conn)
    #expect(Set(second.map { "\($0.host):\($0.sequence)" }) == ["w2:1", "w2:2"])
    #expect(try count("SELECT count(*)::int FROM metrics_cpu WHERE host IN ('w1', 'w2')") == 4)
    #expect(try count("SELECT count(*)::int FROM ingest_batches WHERE host IN ('w1', 'w2')") == 4)
    // Nothing new at all: nothing written, nothing returned.
    #expect(try MetricsWriter.write([a, d].map { deriver.derive($0) }, autoRegister: true, on: conn).isEmpty)
    #expect(try count("SELECT count(*)::int FROM metrics_cpu WHERE host IN ('w1', 'w2')") == 4)
    // The connection is still usable after the rolled-back fast path.
    #expect(try count("SELECT 1") == 1)
  }

  static func partition(_ table: String, _ dayStart: Int64) -> String {
    let d = Date(timeIntervalSince1970: Double(dayStart) / 1000)
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    let c = calendar.dateComponents([.year, .month, .day], from: d)
    return String(format: "%@_p%04d%02d%02d", table, c.year!, c.month!, c.day!)
  }

  @Test func partitionsAreMadeAheadAndRetentionDropsOldData() throws {
    let now = Date().unixMilliseconds
    let old = now - 40 * Self.day
    var settings = StorageSettings()
    settings.retention = .seconds(30 * 86_400)
    // 40 days ago: rows land in the DEFAULT partition (no partitions yet) ...
    try write((1...3).map { batch(host: "old", seq: UInt64($0), at: old + Int64($0) * 5000) })
    #expect(try count("SELECT count(*) FROM metrics_cpu_default") == 3)
    // ... and move into their day's partition when maintenance runs then.
    let first = try #require(try StorageMaintenance.run(on: conn, nowMs: old, settings: settings, timescale: false))
    let oldDay = Self.partition("metrics_cpu", Self.floorDay(old))
    #expect(first.partitionsCreated.contains(oldDay))
    #expect(first.partitionsCreated.count == 5 * StorageMaintenance.partitionedTables.count, "yesterday to today+3")
    #expect(try count("SELECT count(*) FROM metrics_cpu_default") == 0)
    #expect(try count("SELECT count(*) FROM \(oldDay)") == 3)
    // A day with no partition 35 days ago: its rows stay in DEFAULT.
    try write([batch(host: "old", seq: 10, at: now - 35 * Self.day)])
    // Today's rows.
    try write((1...5).map { batch(host: "new", seq: UInt64($0), at: now - Int64($0) * 5000) })
    #expect(try count("SELECT count(*) FROM metrics_cpu") == 9)

    let report = try #require(try StorageMaintenance.run(on: conn, nowMs: now, settings: settings, timescale: false))
    #expect(report.partitionsDropped.contains(oldDay))
    #expect(!(try exists(oldDay)))
    for ahead in 0...3 {
      #expect(try exists(Self.partition("metrics_memory", Self.floorDay(now) + Int64(ahead) * Self.day)))
    }
    #expect(try count("SELECT count(*) FROM metrics_cpu") == 5, "only the rows within the retention are left")
    #expect(try count("SELECT count(*) FROM metrics_cpu WHERE host = 'old'") == 0)
    #expect(try count("SELECT count(*) FROM metrics_memory WHERE host = 'old'") == 0)
    #expect(try count("SELECT count(*) FROM metrics_cpu_default") == 0, "today's rows moved into today's partition")
    #expect(try count("SELECT count(*) FROM ingest_batches WHERE host = 'old'") == 0, "the old keys are gone too")
    #expect(try count("SELECT count(*) FROM ingest_batches") == 5)
    // A second run changes nothing.
    let again = try #require(try StorageMaintenance.run(on: conn, nowMs: now, settings: settings, timescale: false))
    #expect(again.partitionsCreated.isEmpty && again.partitionsDropped.isEmpty && again.rowsDeleted == 0)
  }

  @Test func batchKeysAreKeptForTheLatenessNotTheRetention() throws {
    let now = Date().unixMilliseconds
    var settings = StorageSettings()
    settings.lateness = .seconds(3_600)
    // Keys 3 h old (past the lateness and its hour of margin) and 90 min old (within it).
    try write([batch(host: "k", seq: 1, at: now - 3 * Self.hour), batch(host: "k", seq: 2, at: now - 90 * 60_000)])
    _ = try #require(try StorageMaintenance.run(on: conn, nowMs: now, settings: settings, timescale: false))
    #expect(try count("SELECT count(*) FROM ingest_batches WHERE host = 'k'") == 1)
    #expect(try count("SELECT seq FROM ingest_batches WHERE host = 'k'") == 2)
    #expect(try count("SELECT count(*) FROM metrics_cpu WHERE host = 'k'") == 2, "the rows stay for the retention")
  }

  @Test func maintenanceRunsInOneReplicaAtATime() throws {
    let other = try db.connect()
    try other.query("SELECT pg_advisory_lock($1)", [Int64(0x4D49_524D_4E54)])
    #expect(try StorageMaintenance.run(on: conn, nowMs: 0, settings: .init(), timescale: false) == nil)
    try other.query("SELECT pg_advisory_unlock($1)", [Int64(0x4D49_524D_4E54)])
  }

  /// Two hosts over three hours, with varying values and rates.
  func threeHours(start: Int64) -> [MetricsBatch] {
    var out: [MetricsBatch] = []
    for host in ["a", "b"] {
      var rx: UInt64 = 0
      for i in 0..<(3 * 60) {
        var b = batch(host: host, seq: UInt64(i + 1), at: start + Int64(i) * 60_000)
        b.cpu?.utilizationPercent = Double((i * 37 + (host == "a" ? 0 : 11)) % 100)
        b.memory = MemoryStats(totalBytes: 1000, usedBytes: UInt64(100 + (i * 13) % 800))
        rx += UInt64((i % 7) * 60_000)
        b.interfaces = [NetworkInterface(name: "eth0", rxBytes: rx, speedMbps: 1000)]
        out.append(b)
      }
    }
    return out
  }

  struct Stat: Equatable {
    var samples = 0
    var total = 0.0
    var minimum = Double.infinity
    var maximum = -Double.infinity
    mutating func add(_ v: Double) {
      samples += 1
      total += v
      minimum = min(minimum, v)
      maximum = max(maximum, v)
    }
  }

  @Test func rollupsMatchTheRawDataTheySummarise() throws {
    let now = Date().unixMilliseconds
    let start = now - now % Self.hour - 5 * Self.hour
    let batches = threeHours(start: start)
    try write(batches)
    try StorageMaintenance.rollUp(on: conn, from: start, to: start + 3 * Self.hour)

    // Expected, computed here from what was sent.
    let deriver = RateDeriver()
    var cpu: [String: Stat] = [:]
    var rx: [String: Stat] = [:]
    var cpuDay: [String: Stat] = [:]
    for b in batches {
      let n = deriver.derive(b)
      let hourKey = "\(b.host)@\(b.collectedAtUnixMs - b.collectedAtUnixMs % Self.hour)"
      cpu[hourKey, default: Stat()].add(n.cpuPercent)
      cpuDay["\(b.host)@\(b.collectedAtUnixMs - b.collectedAtUnixMs % Self.day)", default: Stat()].add(n.cpuPercent)
      if n.elapsedMs > 0, let r = n.interfaces.first { rx[hourKey, default: Stat()].add(r.rxBytesPerSecond) }
    }
    func stored(_ table: String, _ metric: String) throws -> [String: Stat] {
      var out: [String: Stat] = [:]
      for row in try conn.query(
        """
        SELECT host, (extract(epoch FROM bucket) * 1000)::bigint, samples, total, minimum, maximum FROM \(table)
        WHERE metric = $1
        """, [metric]
      ).rows {
        out["\(try row.decode(String.self, 0))@\(try row.decode(Int64.self, 1))"] = Stat(
          samples: try row.decode(Int.self, 2), total: try row.decode(Double.self, 3),
          minimum: try row.decode(Double.self, 4), maximum: try row.decode(Double.self, 5))
      }
      return out
    }
    func close(_ a: [String: Stat], _ b: [String: Stat]) -> Bool {
      a.keys.sorted() == b.keys.sorted()
        && a.allSatisfy { k, v in
          let w = b[k]!
          return v.samples == w.samples && abs(v.total - w.total) < 1e-6 && v.minimum == w.minimum
            && v.maximum == w.maximum
        }
    }
    #expect(cpu.count == 6, "two hosts, three hours")
    #expect(close(try stored("metrics_rollup_1h", "cpu_percent"), cpu))
    #expect(close(try stored("metrics_rollup_1h", "network_rx_bytes_per_second"), rx))
    #expect(close(try stored("metrics_rollup_1d", "cpu_percent"), cpuDay))

    // metrics.query reads the hourly rollup for a one-hour step and the raw
    // rows for a minute step; both agree with what was sent.
    let hourly = try Queries.metrics(
      MetricsQueryRequest(
        hosts: ["a"], metric: "cpu_percent", startUnixMs: start, endUnixMs: start + 3 * Self.hour, stepSeconds: 3600),
      on: conn, timescale: false, nowMs: now)
    #expect(hourly.source == .hourly)
    let points = try #require(hourly.series.first?.points)
    #expect(points.count == 3)
    for p in points {
      let want = try #require(cpu["a@\(p.bucketUnixMs)"])
      #expect(p.samples == UInt64(want.samples))
      #expect(abs(p.average - want.total / Double(want.samples)) < 1e-9)
      #expect(p.minimum == want.minimum && p.maximum == want.maximum)
    }
    let raw = try Queries.metrics(
      MetricsQueryRequest(
        metric: "cpu_percent", startUnixMs: start, endUnixMs: start + 3 * Self.hour, stepSeconds: 1200),
      on: conn, timescale: false, nowMs: now)
    #expect(raw.source == .raw)
    #expect(raw.series.map(\.host) == ["a", "b"])
    #expect(raw.series.allSatisfy { $0.points.count == 9 && $0.points.allSatisfy { $0.samples == 20 } })
    let rawAverage = raw.series[0].points.prefix(3).map { $0.average * 20 }.reduce(0, +) / 60
    #expect(abs(rawAverage - points[0].average) < 1e-9, "raw and rollup agree on the first hour")

    // A late batch in an hour already rolled up: the next run counts it.
    var late = batch(host: "a", seq: 10_000, at: start + 30_000)
    late.cpu?.utilizationPercent = 100
    try write([late])
    try StorageMaintenance.rollUp(on: conn, from: start, to: start + Self.hour)
    let first = try #require(try stored("metrics_rollup_1h", "cpu_percent")["a@\(start)"])
    #expect(first.samples == cpu["a@\(start)"]!.samples + 1)
    #expect(first.maximum == 100)
  }

  @Test func queryPlansAndBadQueries() throws {
    let now: Int64 = 1_800_000_000_000
    let oneHour = try Queries.plan(MetricsQueryRequest(metric: "cpu_percent"), nowMs: now)
    #expect(oneHour.source == .raw && oneHour.stepSeconds == 12 && oneHour.end == now)
    let week = try Queries.plan(
      MetricsQueryRequest(metric: "cpu_percent", startUnixMs: now - 7 * Self.day, endUnixMs: now), nowMs: now)
    #expect(week.source == .hourly && week.stepSeconds == 3600)
    let year = try Queries.plan(
      MetricsQueryRequest(metric: "cpu_percent", startUnixMs: now - 365 * Self.day, endUnixMs: now), nowMs: now)
    #expect(year.source == .daily && year.stepSeconds == 2 * 86_400)
    #expect(throws: QueryError.self) {
      try Queries.plan(MetricsQueryRequest(metric: "cpu_percent", startUnixMs: now, endUnixMs: now - 1), nowMs: now)
    }
    #expect(throws: QueryError.self) {
      try Queries.plan(
        MetricsQueryRequest(metric: "cpu_percent", startUnixMs: now - 30 * Self.day, endUnixMs: now, stepSeconds: 1),
        nowMs: now)
    }
    #expect(throws: QueryError.self) {
      try Queries.metrics(MetricsQueryRequest(metric: "no_such_metric"), on: self.conn, timescale: false, nowMs: now)
    }
    // Every catalog metric is valid SQL against the raw tables and the rollups.
    for m in MetricCatalog.all {
      for step: UInt32 in [60, 3600, 86_400] {
        _ = try Queries.metrics(
          MetricsQueryRequest(metric: m.name, startUnixMs: now - 2 * Self.day, endUnixMs: now, stepSeconds: step),
          on: conn, timescale: false, nowMs: now)
      }
    }
  }
}
