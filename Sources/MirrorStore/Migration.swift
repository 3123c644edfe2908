public import Logging

/// One numbered schema change (`migrations/NNNN_name.sql`).
public struct Migration: Sendable, Hashable {
  public var version: Int
  public var name: String
  public var sql: String

  public init(version: Int, name: String, sql: String) {
    self.version = version
    self.name = name
    self.sql = sql
  }
}

/// Whether to use TimescaleDB for the metrics tables.
public enum TimescaleMode: String, Sendable, CaseIterable {
  /// Use it when the extension is installable on the server.
  case auto
  /// Require it; start-up fails without it.
  case on
  /// Plain PostgreSQL (native partitions) even when it is available.
  case off
}

/// What the database offers, recorded in `mirror_settings` at start-up so
/// later migrations and services branch on it.
public struct StoreCapabilities: Sendable, Hashable {
  public var timescale: Bool
}

/// Applies pending migrations, one transaction each, under an advisory lock
/// so replicas that start at once apply each migration exactly once.
public enum MigrationRunner {
  /// The advisory lock key ("MIRROR" in ASCII).
  static let lockKey: Int64 = 0x4D49_5252_4F52

  /// Applies what is pending and returns the versions applied now.
  @discardableResult
  public static func migrate(
    _ conn: PGConnection, migrations: [Migration] = Migration.all, timescale: TimescaleMode = .auto,
    logger: Logger
  ) throws -> (applied: [Int], capabilities: StoreCapabilities) {
    try conn.query("SELECT pg_advisory_lock($1)", [lockKey])
    defer { _ = try? conn.query("SELECT pg_advisory_unlock($1)", [lockKey]) }
    try conn.execute(
      """
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )
      """)
    let capabilities = try detectCapabilities(conn, mode: timescale)
    let done = Set(try conn.query("SELECT version FROM schema_migrations").rows.map { try $0.decode(Int.self, 0) })
    var applied: [Int] = []
    for migration in migrations.sorted(by: { $0.version < $1.version }) where !done.contains(migration.version) {
      try conn.transaction { conn in
        try conn.execute(migration.sql)
        try conn.query(
          "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [migration.version, migration.name])
      }
      logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
      applied.append(migration.version)
    }
    try conn.query(
      """
      INSERT INTO mirror_settings (key, value) VALUES ('timescaledb', $1)
      ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
      """, [capabilities.timescale ? "on" : "off"])
    return (applied, capabilities)
  }

  static func detectCapabilities(_ conn: PGConnection, mode: TimescaleMode) throws -> StoreCapabilities {
    if mode == .off { return StoreCapabilities(timescale: false) }
    let available = try conn.query("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").count > 0
    if !available {
      if mode == .on {
        throw PostgresError(
          sqlState: .init(rawValue: "58P01"),
          message: "timescale is 'on' but the timescaledb extension is not available on this server")
      }
      return StoreCapabilities(timescale: false)
    }
    try conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    return StoreCapabilities(timescale: true)
  }

  /// The recorded capabilities (after `migrate`).
  public static func capabilities(_ conn: PGConnection) throws -> StoreCapabilities {
    let rows = try conn.query("SELECT value FROM mirror_settings WHERE key = 'timescaledb'")
    return StoreCapabilities(timescale: try rows.rows.first?.decode(String.self, 0) == "on")
  }
}
