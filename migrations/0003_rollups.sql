-- Hour and day rollups of every metric of the query catalog
-- (IngestCore/MetricCatalog.swift), maintained by Ingest from the raw
-- tables (StorageMaintainer), and the latest batch of each host for
-- hosts.snapshot.

CREATE TABLE metrics_rollup_1h (
  host text NOT NULL,
  metric text NOT NULL,
  -- The interface, device, mount or sensor; '' for host-wide metrics.
  key text NOT NULL,
  bucket timestamptz NOT NULL,
  samples bigint NOT NULL,
  total double precision NOT NULL,
  minimum double precision NOT NULL,
  maximum double precision NOT NULL,
  PRIMARY KEY (metric, host, key, bucket)
);
CREATE INDEX metrics_rollup_1h_bucket ON metrics_rollup_1h (bucket);

CREATE TABLE metrics_rollup_1d (LIKE metrics_rollup_1h INCLUDING ALL);

-- The newest stored NormalizedBatch of each host (protobuf), written in
-- the same transaction as its rows.
CREATE TABLE host_latest (
  host text PRIMARY KEY,
  ts timestamptz NOT NULL,
  normalized bytea NOT NULL
);
-- Rewritten with every batch: not worth compressing.
ALTER TABLE host_latest ALTER COLUMN normalized SET STORAGE EXTERNAL;
