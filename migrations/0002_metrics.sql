-- Metrics tables, partitioned by day on ts (native range partitions; a
-- DEFAULT partition catches anything outside the partitions made ahead, so
-- no accepted row is ever refused). Ingest creates partitions ahead and
-- drops those past the retention.

-- One row per stored batch: the exactly-once guard. A redelivered batch
-- finds its row and is not written again.
CREATE TABLE ingest_batches (
  host text NOT NULL,
  boot_id text NOT NULL,
  seq bigint NOT NULL,
  ts timestamptz NOT NULL,
  stored_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (host, boot_id, seq)
);
CREATE INDEX ingest_batches_ts ON ingest_batches (ts);

CREATE TABLE metrics_cpu (
  host text NOT NULL,
  ts timestamptz NOT NULL,
  cpu_percent double precision NOT NULL,
  load1 double precision NOT NULL,
  load5 double precision NOT NULL,
  load15 double precision NOT NULL,
  processes integer NOT NULL,
  uptime_seconds bigint NOT NULL,
  cores jsonb
) PARTITION BY RANGE (ts);

CREATE TABLE metrics_memory (
  host text NOT NULL,
  ts timestamptz NOT NULL,
  total_bytes bigint NOT NULL,
  used_bytes bigint NOT NULL,
  available_bytes bigint NOT NULL,
  cached_bytes bigint NOT NULL,
  swap_total_bytes bigint NOT NULL,
  swap_used_bytes bigint NOT NULL,
  used_percent double precision NOT NULL
) PARTITION BY RANGE (ts);

CREATE TABLE metrics_network (
  host text NOT NULL,
  ts timestamptz NOT NULL,
  interface text NOT NULL,
  rx_bytes bigint NOT NULL,
  tx_bytes bigint NOT NULL,
  rx_errors bigint NOT NULL,
  tx_errors bigint NOT NULL,
  rx_dropped bigint NOT NULL,
  tx_dropped bigint NOT NULL,
  rx_bytes_per_second double precision,
  tx_bytes_per_second double precision,
  utilization_percent double precision,
  speed_mbps integer
) PARTITION BY RANGE (ts);

CREATE TABLE metrics_disk (
  host text NOT NULL,
  ts timestamptz NOT NULL,
  device text NOT NULL,
  reads_completed bigint NOT NULL,
  writes_completed bigint NOT NULL,
  read_bytes bigint NOT NULL,
  write_bytes bigint NOT NULL,
  read_iops double precision,
  write_iops double precision,
  read_bytes_per_second double precision,
  write_bytes_per_second double precision,
  busy_percent double precision,
  smart_health smallint NOT NULL
) PARTITION BY RANGE (ts);

CREATE TABLE metrics_mount (
  host text NOT NULL,
  ts timestamptz NOT NULL,
  mount_point text NOT NULL,
  fs_type text NOT NULL,
  total_bytes bigint NOT NULL,
  used_bytes bigint NOT NULL,
  available boolean NOT NULL
) PARTITION BY RANGE (ts);

CREATE TABLE metrics_gpu (
  host text NOT NULL,
  ts timestamptz NOT NULL,
  gpu_index integer NOT NULL,
  name text NOT NULL,
  utilization_percent double precision,
  memory_used_bytes bigint,
  memory_total_bytes bigint,
  temperature_celsius double precision,
  power_draw_watts double precision
) PARTITION BY RANGE (ts);

CREATE TABLE metrics_temperature (
  host text NOT NULL,
  ts timestamptz NOT NULL,
  source text NOT NULL,
  chip text NOT NULL,
  label text NOT NULL,
  celsius double precision NOT NULL
) PARTITION BY RANGE (ts);

CREATE TABLE metrics_process (
  host text NOT NULL,
  ts timestamptz NOT NULL,
  pid integer NOT NULL,
  name text NOT NULL,
  username text NOT NULL,
  cpu_percent double precision NOT NULL,
  rss_bytes bigint NOT NULL
) PARTITION BY RANGE (ts);

CREATE TABLE metrics_cpu_default PARTITION OF metrics_cpu DEFAULT;
CREATE TABLE metrics_memory_default PARTITION OF metrics_memory DEFAULT;
CREATE TABLE metrics_network_default PARTITION OF metrics_network DEFAULT;
CREATE TABLE metrics_disk_default PARTITION OF metrics_disk DEFAULT;
CREATE TABLE metrics_mount_default PARTITION OF metrics_mount DEFAULT;
CREATE TABLE metrics_gpu_default PARTITION OF metrics_gpu DEFAULT;
CREATE TABLE metrics_temperature_default PARTITION OF metrics_temperature DEFAULT;
CREATE TABLE metrics_process_default PARTITION OF metrics_process DEFAULT;

CREATE INDEX metrics_cpu_host_ts ON metrics_cpu (host, ts);
CREATE INDEX metrics_memory_host_ts ON metrics_memory (host, ts);
CREATE INDEX metrics_network_host_ts ON metrics_network (host, ts);
CREATE INDEX metrics_disk_host_ts ON metrics_disk (host, ts);
CREATE INDEX metrics_mount_host_ts ON metrics_mount (host, ts);
CREATE INDEX metrics_gpu_host_ts ON metrics_gpu (host, ts);
CREATE INDEX metrics_temperature_host_ts ON metrics_temperature (host, ts);
CREATE INDEX metrics_process_host_ts ON metrics_process (host, ts);
