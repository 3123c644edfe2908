import Foundation
public import MirrorStore
public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// Writes validated batches, exactly once: in one transaction, the batch
/// keys go into `ingest_batches` (a key already there is a redelivery and
/// is skipped), the rows of the new batches go into the metrics tables with
/// COPY, and the hosts' last-seen times move on. The caller acks only after
/// this returns.
public enum MetricsWriter {
  public struct Key: Hashable, Sendable {
    public var host: String
    public var bootID: String
    public var sequence: UInt64
  }

  /// Stores what is new among `batches`; returns the keys that were new.
  public static func write(_ batches: [NormalizedBatch], autoRegister: Bool, on conn: PGConnection) throws -> Set<Key> {
    guard !batches.isEmpty else { return [] }
    return try conn.transaction { conn in
      let raw = batches.compactMap(\.batch)
      let inserted = try conn.query(
        """
        INSERT INTO ingest_batches (host, boot_id, seq, ts)
        SELECT h, b, s, to_timestamp(t / 1000.0) FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(h, b, s, t)
        ON CONFLICT DO NOTHING
        RETURNING host, boot_id, seq
        """,
        [
          PGArray.text(raw.map(\.host)), PGArray.text(raw.map(\.bootId)), PGArray.numbers(raw.map(\.sequence)),
          PGArray.numbers(raw.map(\.collectedAtUnixMs)),
        ])
      var new = Set<Key>()
      for row in inserted.rows {
        new.insert(
          Key(
            host: try row.decode(String.self, 0), bootID: try row.decode(String.self, 1),
            sequence: try row.decode(UInt64.self, 2)))
      }
      // A key new to the table may still come twice in one fetch (a
      // redelivery next to the original): keep its first copy only.
      var pending = new
      let fresh = batches.filter { b in
        guard let raw = b.batch else { return false }
        return pending.remove(Key(host: raw.host, bootID: raw.bootId, sequence: raw.sequence)) != nil
      }
      guard !fresh.isEmpty else { return new }
      try copyRows(fresh, conn)
      try storeLatest(fresh, conn)
      let hosts = Dictionary(
        fresh.compactMap(\.batch).map { ($0.host, $0) },
        uniquingKeysWith: { a, b in a.collectedAtUnixMs > b.collectedAtUnixMs ? a : b })
      let names = PGArray.text(hosts.keys.sorted())
      let seen = PGArray.numbers(hosts.keys.sorted().map { hosts[$0]!.collectedAtUnixMs })
      let boots = PGArray.text(hosts.keys.sorted().map { hosts[$0]!.bootId })
      if autoRegister {
        try conn.query(
          """
          INSERT INTO hosts (name, boot_id, last_seen_at)
          SELECT h, b, to_timestamp(t / 1000.0) FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(h, b, t)
          ON CONFLICT (name) DO UPDATE SET boot_id = EXCLUDED.boot_id,
            last_seen_at = GREATEST(hosts.last_seen_at, EXCLUDED.last_seen_at)
          """, [names, boots, seen])
      } else {
        try conn.query(
          """
          UPDATE hosts SET boot_id = u.b, last_seen_at = GREATEST(hosts.last_seen_at, to_timestamp(u.t / 1000.0))
          FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(h, b, t) WHERE hosts.name = u.h
          """, [names, boots, seen])
      }
      return new
    }
  }

  /// Keeps each host's newest batch (with its rates) for hosts.snapshot.
  static func storeLatest(_ batches: [NormalizedBatch], _ conn: PGConnection) throws {
    let latest = Dictionary(
      batches.compactMap { n in n.batch.map { ($0.host, n) } },
      uniquingKeysWith: { a, b in (a.batch?.collectedAtUnixMs ?? 0) >= (b.batch?.collectedAtUnixMs ?? 0) ? a : b })
    let hosts = latest.keys.sorted()
    try conn.query(
      """
      INSERT INTO host_latest (host, ts, normalized)
      SELECT h, to_timestamp(t / 1000.0), p FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS u(h, t, p)
      ON CONFLICT (host) DO UPDATE SET ts = EXCLUDED.ts, normalized = EXCLUDED.normalized
        WHERE host_latest.ts <= EXCLUDED.ts
      """,
      [
        PGArray.text(hosts), PGArray.numbers(hosts.map { latest[$0]?.batch?.collectedAtUnixMs ?? 0 }),
        PGArray.text(hosts.map { PGBytes(latest[$0]?.encode() ?? []).pgText }),
      ])
  }

  static func copyRows(_ batches: [NormalizedBatch], _ conn: PGConnection) throws {
    try conn.copyIn(
      "COPY metrics_cpu (host, ts, cpu_percent, load1, load5, load15, processes, uptime_seconds) FROM STDIN"
    ) { w in
      for n in batches {
        guard let b = n.batch, let cpu = b.cpu else { continue }
        w.field(b.host)
        w.field(Timestamp.text(b.collectedAtUnixMs))
        w.field(n.cpuPercent)
        w.field(cpu.load1)
        w.field(cpu.load5)
        w.field(cpu.load15)
        w.field(Int64(cpu.processesTotal))
        w.field(Int64(clamping: cpu.uptimeSeconds))
        try w.endRow()
      }
    }
    try conn.copyIn(
      "COPY metrics_memory (host, ts, total_bytes, used_bytes, available_bytes, cached_bytes, swap_total_bytes, swap_used_bytes, used_percent) FROM STDIN"
    ) { w in
      for n in batches {
        guard let b = n.batch, let m = b.memory else { continue }
        w.field(b.host)
        w.field(Timestamp.text(b.collectedAtUnixMs))
        for v in [m.totalBytes, m.usedBytes, m.availableBytes, m.cachedBytes, m.swapTotalBytes, m.swapUsedBytes] {
          w.field(Int64(clamping: v))
        }
        w.field(n.memoryUsedPercent)
        try w.endRow()
      }
    }
    try conn.copyIn(
      "COPY metrics_network (host, ts, interface, rx_bytes, tx_bytes, rx_errors, tx_errors, rx_dropped, tx_dropped, rx_bytes_per_second, tx_bytes_per_second, utilization_percent, speed_mbps) FROM STDIN"
    ) { w in
      for n in batches {
        guard let b = n.batch else { continue }
        let rates = Dictionary(n.interfaces.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for nic in b.interfaces {
          w.field(b.host)
          w.field(Timestamp.text(b.collectedAtUnixMs))
          w.field(nic.name)
          for v in [nic.rxBytes, nic.txBytes, nic.rxErrors, nic.txErrors, nic.rxDropped, nic.txDropped] {
            w.field(Int64(clamping: v))
          }
          let r = rates[nic.name]
          optional(w, r?.rxBytesPerSecond)
          optional(w, r?.txBytesPerSecond)
          optional(w, r?.utilizationPercent)
          optional(w, nic.speedMbps.map(Int64.init))
          try w.endRow()
        }
      }
    }
    try conn.copyIn(
      "COPY metrics_disk (host, ts, device, reads_completed, writes_completed, read_bytes, write_bytes, read_iops, write_iops, read_bytes_per_second, write_bytes_per_second, busy_percent, smart_health) FROM STDIN"
    ) { w in
      for n in batches {
        guard let b = n.batch else { continue }
        let rates = Dictionary(n.disks.map { ($0.device, $0) }, uniquingKeysWith: { a, _ in a })
        for d in b.disks {
          w.field(b.host)
          w.field(Timestamp.text(b.collectedAtUnixMs))
          w.field(d.device)
          for v in [d.readsCompleted, d.writesCompleted, d.readBytes, d.writeBytes] { w.field(Int64(clamping: v)) }
          let r = rates[d.device]
          optional(w, r?.readIops)
          optional(w, r?.writeIops)
          optional(w, r?.readBytesPerSecond)
          optional(w, r?.writeBytesPerSecond)
          optional(w, r?.busyPercent)
          w.field(Int64(d.smartHealth.rawValue))
          try w.endRow()
        }
      }
    }
    try conn.copyIn(
      "COPY metrics_mount (host, ts, mount_point, fs_type, total_bytes, used_bytes, available) FROM STDIN"
    ) { w in
      for n in batches {
        guard let b = n.batch else { continue }
        for m in b.mounts {
          w.field(b.host)
          w.field(Timestamp.text(b.collectedAtUnixMs))
          w.field(m.mountPoint)
          w.field(m.fsType)
          w.field(Int64(clamping: m.totalBytes))
          w.field(Int64(clamping: m.usedBytes))
          w.field(m.available)
          try w.endRow()
        }
      }
    }
    try conn.copyIn(
      "COPY metrics_gpu (host, ts, gpu_index, name, utilization_percent, memory_used_bytes, memory_total_bytes, temperature_celsius, power_draw_watts) FROM STDIN"
    ) { w in
      for n in batches {
        guard let b = n.batch else { continue }
        for g in b.gpus {
          w.field(b.host)
          w.field(Timestamp.text(b.collectedAtUnixMs))
          w.field(Int64(g.index))
          w.field(g.name)
          optional(w, g.utilizationPercent)
          optional(w, g.memoryUsedBytes.map { Int64(clamping: $0) })
          optional(w, g.memoryTotalBytes.map { Int64(clamping: $0) })
          optional(w, g.temperatureCelsius)
          optional(w, g.powerDrawWatts)
          try w.endRow()
        }
      }
    }
    try conn.copyIn("COPY metrics_temperature (host, ts, source, chip, label, celsius) FROM STDIN") { w in
      for n in batches {
        guard let b = n.batch else { continue }
        for t in b.temperatures {
          w.field(b.host)
          w.field(Timestamp.text(b.collectedAtUnixMs))
          w.field(t.source)
          w.field(t.chip)
          w.field(t.label)
          w.field(t.celsius)
          try w.endRow()
        }
      }
    }
    try conn.copyIn("COPY metrics_process (host, ts, pid, name, username, cpu_percent, rss_bytes) FROM STDIN") { w in
      for n in batches {
        guard let b = n.batch else { continue }
        var seen = Set<UInt32>()
        for p in b.topCpu + b.topMemory where seen.insert(p.pid).inserted {
          w.field(b.host)
          w.field(Timestamp.text(b.collectedAtUnixMs))
          w.field(Int64(p.pid))
          w.field(p.name)
          w.field(p.user)
          w.field(p.cpuPercent)
          w.field(Int64(clamping: p.rssBytes))
          try w.endRow()
        }
      }
    }
  }

  private static func optional<T: PGEncodable>(_ w: PGCopyWriter, _ v: T?) {
    if let v { w.field(v) } else { w.null() }
  }
}

/// PostgreSQL array literals for `unnest($1::text[])` parameters.
enum PGArray {
  static func text(_ values: [String]) -> String {
    "{"
      + values.map {
        "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
      }
      .joined(separator: ",") + "}"
  }

  static func numbers<T: BinaryInteger>(_ values: [T]) -> String {
    "{" + values.map { "\($0)" }.joined(separator: ",") + "}"
  }
}

/// Milliseconds since the epoch as a timestamptz literal in UTC.
enum Timestamp {
  static func text(_ ms: Int64) -> String {
    var t = time_t(ms / 1000)
    var tm = tm()
    gmtime_r(&t, &tm)
    let millis = Int(ms % 1000 + (ms % 1000 < 0 ? 1000 : 0))
    return String(
      format: "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
      tm.tm_min,
      tm.tm_sec, millis)
  }
}
