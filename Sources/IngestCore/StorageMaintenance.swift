import Foundation
import MirrorBus
public import MirrorStore

/// Settings shared by both storage paths (native partitions and
/// TimescaleDB).
public struct StorageSettings: Sendable, Hashable {
  /// Raw rows older than this are removed (the exactly-once keys sooner:
  /// after `lateness` and an hour).
  public var retention: Duration = .seconds(30 * 86_400)
  public var hourlyRetention: Duration = .seconds(180 * 86_400)
  public var dailyRetention: Duration = .seconds(1_825 * 86_400)
  /// Daily partitions made ahead of today.
  public var partitionsAhead = 3
  /// TimescaleDB only: chunks older than this are compressed.
  public var compressAfter: Duration = .seconds(7 * 86_400)
  /// How late a batch may still arrive (Ingest's max age): rollups of the
  /// hours within it are recomputed on every run.
  public var lateness: Duration = .seconds(3_600)
  public init() {}
}

/// What one maintenance run did.
public struct MaintenanceReport: Sendable, Hashable {
  public var partitionsCreated: [String] = []
  public var partitionsDropped: [String] = []
  public var rowsDeleted = 0
  public var rolledUpFromMs: Int64?
}

/// The plain-PostgreSQL storage chores Ingest runs every minute: daily
/// partitions made ahead (rows already in the DEFAULT partition move into
/// them), retention by dropping whole partitions, and hour and day rollups
/// of the metric catalog. With TimescaleDB, `TimescaleStorage` sets up
/// hypertables, compression, retention and continuous aggregates once, and
/// only the key cleanup runs here.
public enum StorageMaintenance {
  public static let partitionedTables = [
    "metrics_cpu", "metrics_memory", "metrics_network", "metrics_disk", "metrics_mount", "metrics_gpu",
    "metrics_temperature", "metrics_process",
  ]
  static let dayMs: Int64 = 86_400_000
  static let hourMs: Int64 = 3_600_000
  /// Only one replica maintains at a time ("MIRMNT").
  static let lockKey: Int64 = 0x4D49_524D_4E54
  static let watermarkKey = "rollup.watermark_unix_ms"

  /// One run; nil when another replica holds the maintenance lock.
  public static func run(
    on conn: PGConnection, nowMs: Int64, settings: StorageSettings, timescale: Bool
  ) throws -> MaintenanceReport? {
    let locked = try conn.query("SELECT pg_try_advisory_lock($1)", [lockKey]).rows.first?.decode(Bool.self, 0)
    guard locked == true else { return nil }
    defer { _ = try? conn.query("SELECT pg_advisory_unlock($1)", [lockKey]) }
    var report = MaintenanceReport()
    let cutoff = nowMs - settings.retention.wholeMilliseconds
    if !timescale {
      report.partitionsCreated = try ensurePartitions(on: conn, nowMs: nowMs, ahead: settings.partitionsAhead)
      report.partitionsDropped = try dropPartitions(on: conn, before: cutoff)
      for table in partitionedTables {
        report.rowsDeleted += try conn.query(
          "DELETE FROM \(table)_default WHERE ts < $1::timestamptz", [Timestamp.text(cutoff)]
        ).affected
      }
      report.rolledUpFromMs = try rollUp(on: conn, nowMs: nowMs, lateness: settings.lateness)
      report.rowsDeleted += try conn.query(
        "DELETE FROM metrics_rollup_1h WHERE bucket < $1::timestamptz",
        [Timestamp.text(nowMs - settings.hourlyRetention.wholeMilliseconds)]
      ).affected
      report.rowsDeleted += try conn.query(
        "DELETE FROM metrics_rollup_1d WHERE bucket < $1::timestamptz",
        [Timestamp.text(nowMs - settings.dailyRetention.wholeMilliseconds)]
      ).affected
    }
    // A key only guards against a second copy of its batch, and a batch
    // older than the lateness (Ingest's max age) is refused as stale anyway:
    // keys live that long plus an hour for clocks that disagree, not as long
    // as the rows (at 10,000 hosts that is 173 million keys a day).
    let keyCutoff = nowMs - (settings.lateness + .seconds(3_600)).wholeMilliseconds
    report.rowsDeleted += try conn.query(
      "DELETE FROM ingest_batches WHERE ts < $1::timestamptz", [Timestamp.text(max(cutoff, keyCutoff))]
    ).affected
    return report
  }

  static func partitionName(_ table: String, dayStartMs: Int64) -> String {
    var t = time_t(dayStartMs / 1000)
    var tm = tm()
    gmtime_r(&t, &tm)
    return String(format: "%@_p%04d%02d%02d", table, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday)
  }

  /// The UTC day a partition name stands for, or nil for other tables.
  static func partitionDay(_ name: String, table: String) -> Int64? {
    let prefix = table + "_p"
    guard name.hasPrefix(prefix) else { return nil }
    let digits = name.dropFirst(prefix.count)
    guard digits.count == 8, let n = Int(digits) else { return nil }
    var tm = tm()
    tm.tm_year = Int32(n / 10_000) - 1900
    tm.tm_mon = Int32(n / 100 % 100) - 1
    tm.tm_mday = Int32(n % 100)
    return Int64(timegm(&tm)) * 1000
  }

  /// Makes the daily partitions from yesterday to `ahead` days after today;
  /// rows of those days already in the DEFAULT partition move in.
  static func ensurePartitions(on conn: PGConnection, nowMs: Int64, ahead: Int) throws -> [String] {
    let today = nowMs - ((nowMs % dayMs) + dayMs) % dayMs
    var created: [String] = []
    for offset in -1...max(0, ahead) {
      let start = today + Int64(offset) * dayMs
      let end = start + dayMs
      for table in partitionedTables {
        let name = partitionName(table, dayStartMs: start)
        let exists = try conn.query("SELECT to_regclass($1) IS NOT NULL", [name]).rows.first?.decode(Bool.self, 0)
        if exists == true { continue }
        let from = Timestamp.text(start)
        let to = Timestamp.text(end)
        try conn.transaction { conn in
          try conn.execute(
            """
            CREATE TABLE \(name) (LIKE \(table) INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
            INSERT INTO \(name) SELECT * FROM \(table)_default WHERE ts >= '\(from)' AND ts < '\(to)';
            DELETE FROM \(table)_default WHERE ts >= '\(from)' AND ts < '\(to)';
            ALTER TABLE \(table) ATTACH PARTITION \(name) FOR VALUES FROM ('\(from)') TO ('\(to)');
            """)
        }
        created.append(name)
      }
    }
    return created
  }

  /// Drops the daily partitions that end at or before `cutoff`.
  static func dropPartitions(on conn: PGConnection, before cutoff: Int64) throws -> [String] {
    var dropped: [String] = []
    for table in partitionedTables {
      let children = try conn.query(
        """
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1 ORDER BY 1
        """, [table])
      for row in children.rows {
        let name = try row.decode(String.self, 0)
        guard let day = partitionDay(name, table: table), day + dayMs <= cutoff else { continue }
        try conn.execute("DROP TABLE \(name)")
        dropped.append(name)
      }
    }
    return dropped
  }

  /// Recomputes the hourly rollups of every hour that may have changed
  /// since the last run (late batches included), then the daily rollups of
  /// the days those hours fall in. Returns where it started.
  static func rollUp(on conn: PGConnection, nowMs: Int64, lateness: Duration) throws -> Int64 {
    let settled = floor(nowMs - lateness.wholeMilliseconds, hourMs)
    let mark = try conn.query("SELECT value FROM mirror_settings WHERE key = $1", [watermarkKey]).rows.first
      .map { try $0.decode(Int64.self, 0) }
    let from = min(mark ?? settled, settled)
    try rollUp(on: conn, from: from, to: nowMs + hourMs)
    try conn.query(
      """
      INSERT INTO mirror_settings (key, value) VALUES ($1, $2)
      ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
      """, [watermarkKey, "\(settled)"])
    return from
  }

  /// Rollups of the hours in [from, to) and of the days those hours touch.
  public static func rollUp(on conn: PGConnection, from: Int64, to: Int64) throws {
    let hourFrom = Timestamp.text(floor(from, hourMs))
    let hourTo = Timestamp.text(to)
    try conn.transaction { conn in
      for m in MetricCatalog.all {
        try conn.query(
          """
          INSERT INTO metrics_rollup_1h (host, metric, key, bucket, samples, total, minimum, maximum)
          SELECT host, $1, k, date_bin('1 hour', ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS b,
            count(v), sum(v), min(v), max(v)
          FROM (SELECT host, ts, (\(m.key)) AS k, (\(m.value))::double precision AS v FROM \(m.table)
            WHERE ts >= $2::timestamptz AND ts < $3::timestamptz) s
          WHERE v IS NOT NULL
          GROUP BY host, k, b
          ON CONFLICT (metric, host, key, bucket) DO UPDATE SET samples = EXCLUDED.samples, total = EXCLUDED.total,
            minimum = EXCLUDED.minimum, maximum = EXCLUDED.maximum
          """, [m.name, hourFrom, hourTo])
      }
      try conn.query(
        """
        INSERT INTO metrics_rollup_1d (host, metric, key, bucket, samples, total, minimum, maximum)
        SELECT host, metric, key, date_bin('1 day', bucket, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS b,
          sum(samples), sum(total), min(minimum), max(maximum)
        FROM metrics_rollup_1h WHERE bucket >= $1::timestamptz AND bucket < $2::timestamptz
        GROUP BY host, metric, key, b
        ON CONFLICT (metric, host, key, bucket) DO UPDATE SET samples = EXCLUDED.samples, total = EXCLUDED.total,
          minimum = EXCLUDED.minimum, maximum = EXCLUDED.maximum
        """, [Timestamp.text(floor(from, dayMs)), Timestamp.text(floor(to, dayMs) + dayMs)])
    }
  }

  static func floor(_ ms: Int64, _ unit: Int64) -> Int64 { ms - ((ms % unit) + unit) % unit }
}
