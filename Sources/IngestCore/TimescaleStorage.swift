public import MirrorStore

/// The TimescaleDB path, set up once at start when the extension is
/// available (`mirror_settings.timescaledb = on`): the metrics tables become
/// hypertables with daily chunks, compressed after `compressAfter`, dropped
/// after `retention`; every catalog metric gets hourly and daily continuous
/// aggregates with the same columns as the plain path's rollup tables, and
/// `metrics.query` reads those instead.
///
/// Not exercised by the tests: TimescaleDB cannot be installed on the
/// machines this project is built on (see docs/ingest.md).
public enum TimescaleStorage {
  public static func setUp(on conn: PGConnection, settings: StorageSettings) throws {
    for table in StorageMaintenance.partitionedTables {
      let kind = try conn.query("SELECT relkind::text FROM pg_class WHERE relname = $1", [table]).rows.first?
        .decode(String.self, 0)
      if kind == "p" {
        // Migration 0002 made a natively partitioned table: rebuild it as a
        // hypertable, keeping its rows.
        try conn.transaction { conn in
          try conn.execute(
            """
            ALTER TABLE \(table) RENAME TO \(table)_native;
            CREATE TABLE \(table) (LIKE \(table)_native INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
            SELECT create_hypertable('\(table)', 'ts', chunk_time_interval => INTERVAL '1 day');
            INSERT INTO \(table) SELECT * FROM \(table)_native;
            DROP TABLE \(table)_native CASCADE;
            CREATE INDEX IF NOT EXISTS \(table)_host_ts ON \(table) (host, ts);
            """)
        }
      }
      try conn.execute(
        """
        ALTER TABLE \(table) SET (timescaledb.compress, timescaledb.compress_segmentby = 'host',
          timescaledb.compress_orderby = 'ts DESC');
        SELECT remove_compression_policy('\(table)', if_exists => true);
        SELECT add_compression_policy('\(table)', compress_after => \(interval(settings.compressAfter)));
        SELECT remove_retention_policy('\(table)', if_exists => true);
        SELECT add_retention_policy('\(table)', drop_after => \(interval(settings.retention)));
        """)
    }
    for m in MetricCatalog.all {
      for (suffix, width, keep) in [
        ("1h", "1 hour", settings.hourlyRetention), ("1d", "1 day", settings.dailyRetention),
      ] {
        let view = aggregateName(m.name, suffix)
        try conn.execute(
          """
          CREATE MATERIALIZED VIEW IF NOT EXISTS \(view)
          WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
          SELECT host, (\(m.key)) AS key, time_bucket(INTERVAL '\(width)', ts) AS bucket,
            count(\(m.value)) AS samples, sum((\(m.value))::double precision) AS total,
            min((\(m.value))::double precision) AS minimum, max((\(m.value))::double precision) AS maximum
          FROM \(m.table) GROUP BY 1, 2, 3 WITH NO DATA;
          SELECT add_continuous_aggregate_policy('\(view)',
            start_offset => \(interval(settings.lateness + .seconds(suffix == "1h" ? 7_200 : 2 * 86_400))),
            end_offset => INTERVAL '\(width)', schedule_interval => INTERVAL '\(suffix == "1h" ? "15 minutes" : "6 hours")',
            if_not_exists => true);
          SELECT remove_retention_policy('\(view)', if_exists => true);
          SELECT add_retention_policy('\(view)', drop_after => \(interval(keep)));
          """)
      }
    }
  }

  static func aggregateName(_ metric: String, _ suffix: String) -> String { "rollup_\(suffix)_\(metric)" }

  static func interval(_ d: Duration) -> String { "INTERVAL '\(d.components.seconds) seconds'" }
}
