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

  /// Batches with everything the transaction sends already encoded (COPY
  /// rows, array parameters), so that it can be built on another thread
  /// while the connection is busy with the previous transaction.
  public struct Prepared: Sendable {
    public let batches: [NormalizedBatch]
    let keys: [String]
    let tables: [(sql: String, encoded: [UInt8])]
    let hosts: [String]
    let latest: [String]

    /// `encoded`, when given, holds each batch's protobuf encoding (the
    /// pipeline has it already, for publishing) so it is not encoded again.
    public init(_ batches: [NormalizedBatch], encoded: [[UInt8]]? = nil) {
      self.batches = batches
      let raw = batches.compactMap(\.batch)
      keys = [
        PGArray.text(raw.map(\.host)), PGArray.text(raw.map(\.bootId)), PGArray.numbers(raw.map(\.sequence)),
        PGArray.numbers(raw.map(\.collectedAtUnixMs)),
      ]
      tables = MetricsWriter.encodeRows(batches)
      // The newest batch of each host (its index): last seen, boot, hosts.snapshot.
      let newest = Dictionary(
        batches.indices.compactMap { i in batches[i].batch.map { ($0.host, i) } },
        uniquingKeysWith: { a, b in
          (batches[a].batch?.collectedAtUnixMs ?? 0) >= (batches[b].batch?.collectedAtUnixMs ?? 0) ? a : b
        })
      let names = newest.keys.sorted()
      let latestIndex = names.map { newest[$0]! }
      let seen = PGArray.numbers(latestIndex.map { batches[$0].batch?.collectedAtUnixMs ?? 0 })
      hosts = [PGArray.text(names), PGArray.text(latestIndex.map { batches[$0].batch?.bootId ?? "" }), seen]
      latest = [
        PGArray.text(names), seen,
        PGArray.text(latestIndex.map { PGBytes(encoded?[$0] ?? batches[$0].encode()).pgText }),
      ]
    }
  }

  /// Stores what is new among `batches`; returns the keys that were new.
  public static func write(_ batches: [NormalizedBatch], autoRegister: Bool, on conn: PGConnection) throws -> Set<Key> {
    try write(Prepared(batches), autoRegister: autoRegister, on: conn)
  }

  /// Stores what is new among the prepared batches; returns the keys that were new.
  public static func write(_ prepared: Prepared, autoRegister: Bool, on conn: PGConnection) throws -> Set<Key> {
    let batches = prepared.batches
    guard !batches.isEmpty else { return [] }
    return try conn.transaction { conn in
      let inserted = try conn.query(
        """
        INSERT INTO ingest_batches (host, boot_id, seq, ts)
        SELECT h, b, s, to_timestamp(t / 1000.0) FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(h, b, s, t)
        ON CONFLICT DO NOTHING
        RETURNING host, boot_id, seq
        """, prepared.keys)
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
      // Usually all are new and the prepared rows go as they are.
      let rows = fresh.count == batches.count ? prepared : Prepared(fresh)
      for table in rows.tables { try conn.copyIn(table.sql, encoded: table.encoded) }
      try conn.query(
        """
        INSERT INTO host_latest (host, ts, normalized)
        SELECT h, to_timestamp(t / 1000.0), p FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS u(h, t, p)
        ON CONFLICT (host) DO UPDATE SET ts = EXCLUDED.ts, normalized = EXCLUDED.normalized
          WHERE host_latest.ts <= EXCLUDED.ts
        """, rows.latest)
      if autoRegister {
        try conn.query(
          """
          INSERT INTO hosts (name, boot_id, last_seen_at)
          SELECT h, b, to_timestamp(t / 1000.0) FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(h, b, t)
          ON CONFLICT (name) DO UPDATE SET boot_id = EXCLUDED.boot_id,
            last_seen_at = GREATEST(hosts.last_seen_at, EXCLUDED.last_seen_at)
          """, rows.hosts)
      } else {
        try conn.query(
          """
          UPDATE hosts SET boot_id = u.b, last_seen_at = GREATEST(hosts.last_seen_at, to_timestamp(u.t / 1000.0))
          FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(h, b, t) WHERE hosts.name = u.h
          """, rows.hosts)
      }
      return new
    }
  }

  /// Encodes a detached COPY of `sql`'s rows.
  static func encode(_ sql: String, _ body: (PGCopyWriter) throws -> Void) rethrows -> (sql: String, encoded: [UInt8]) {
    let w = PGCopyWriter()
    try body(w)
    return (sql, w.bytes)
  }

  /// The COPY rows of every metrics table.
  static func encodeRows(_ batches: [NormalizedBatch]) -> [(sql: String, encoded: [UInt8])] {
    var tables: [(sql: String, encoded: [UInt8])] = []
    tables.append(
      encode(
        "COPY metrics_cpu (host, ts, cpu_percent, load1, load5, load15, processes, uptime_seconds) FROM STDIN"
      ) { w in
        for n in batches {
          guard let b = n.batch, let cpu = b.cpu else { continue }
          let ts = Timestamp.text(b.collectedAtUnixMs)
          w.field(b.host)
          w.field(ts)
          w.field(n.cpuPercent)
          w.field(cpu.load1)
          w.field(cpu.load5)
          w.field(cpu.load15)
          w.field(Int64(cpu.processesTotal))
          w.field(Int64(clamping: cpu.uptimeSeconds))
          w.nextRow()
        }
      })
    tables.append(
      encode(
        "COPY metrics_memory (host, ts, total_bytes, used_bytes, available_bytes, cached_bytes, swap_total_bytes, swap_used_bytes, used_percent) FROM STDIN"
      ) { w in
        for n in batches {
          guard let b = n.batch, let m = b.memory else { continue }
          let ts = Timestamp.text(b.collectedAtUnixMs)
          w.field(b.host)
          w.field(ts)
          for v in [m.totalBytes, m.usedBytes, m.availableBytes, m.cachedBytes, m.swapTotalBytes, m.swapUsedBytes] {
            w.field(Int64(clamping: v))
          }
          w.field(n.memoryUsedPercent)
          w.nextRow()
        }
      })
    tables.append(
      encode(
        "COPY metrics_network (host, ts, interface, rx_bytes, tx_bytes, rx_errors, tx_errors, rx_dropped, tx_dropped, rx_bytes_per_second, tx_bytes_per_second, utilization_percent, speed_mbps) FROM STDIN"
      ) { w in
        for n in batches {
          guard let b = n.batch else { continue }
          let ts = Timestamp.text(b.collectedAtUnixMs)
          let rates = Dictionary(n.interfaces.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
          for nic in b.interfaces {
            w.field(b.host)
            w.field(ts)
            w.field(nic.name)
            for v in [nic.rxBytes, nic.txBytes, nic.rxErrors, nic.txErrors, nic.rxDropped, nic.txDropped] {
              w.field(Int64(clamping: v))
            }
            let r = rates[nic.name]
            optional(w, r?.rxBytesPerSecond)
            optional(w, r?.txBytesPerSecond)
            optional(w, r?.utilizationPercent)
            optional(w, nic.speedMbps.map(Int64.init))
            w.nextRow()
          }
        }
      })
    tables.append(
      encode(
        "COPY metrics_disk (host, ts, device, reads_completed, writes_completed, read_bytes, write_bytes, read_iops, write_iops, read_bytes_per_second, write_bytes_per_second, busy_percent, smart_health) FROM STDIN"
      ) { w in
        for n in batches {
          guard let b = n.batch else { continue }
          let ts = Timestamp.text(b.collectedAtUnixMs)
          let rates = Dictionary(n.disks.map { ($0.device, $0) }, uniquingKeysWith: { a, _ in a })
          for d in b.disks {
            w.field(b.host)
            w.field(ts)
            w.field(d.device)
            for v in [d.readsCompleted, d.writesCompleted, d.readBytes, d.writeBytes] { w.field(Int64(clamping: v)) }
            let r = rates[d.device]
            optional(w, r?.readIops)
            optional(w, r?.writeIops)
            optional(w, r?.readBytesPerSecond)
            optional(w, r?.writeBytesPerSecond)
            optional(w, r?.busyPercent)
            w.field(Int64(d.smartHealth.rawValue))
            w.nextRow()
          }
        }
      })
    tables.append(
      encode(
        "COPY metrics_mount (host, ts, mount_point, fs_type, total_bytes, used_bytes, available) FROM STDIN"
      ) { w in
        for n in batches {
          guard let b = n.batch else { continue }
          let ts = Timestamp.text(b.collectedAtUnixMs)
          for m in b.mounts {
            w.field(b.host)
            w.field(ts)
            w.field(m.mountPoint)
            w.field(m.fsType)
            w.field(Int64(clamping: m.totalBytes))
            w.field(Int64(clamping: m.usedBytes))
            w.field(m.available)
            w.nextRow()
          }
        }
      })
    tables.append(
      encode(
        "COPY metrics_gpu (host, ts, gpu_index, name, utilization_percent, memory_used_bytes, memory_total_bytes, temperature_celsius, power_draw_watts) FROM STDIN"
      ) { w in
        for n in batches {
          guard let b = n.batch else { continue }
          let ts = Timestamp.text(b.collectedAtUnixMs)
          for g in b.gpus {
            w.field(b.host)
            w.field(ts)
            w.field(Int64(g.index))
            w.field(g.name)
            optional(w, g.utilizationPercent)
            optional(w, g.memoryUsedBytes.map { Int64(clamping: $0) })
            optional(w, g.memoryTotalBytes.map { Int64(clamping: $0) })
            optional(w, g.temperatureCelsius)
            optional(w, g.powerDrawWatts)
            w.nextRow()
          }
        }
      })
    tables.append(
      encode("COPY metrics_temperature (host, ts, source, chip, label, celsius) FROM STDIN") { w in
        for n in batches {
          guard let b = n.batch else { continue }
          let ts = Timestamp.text(b.collectedAtUnixMs)
          for t in b.temperatures {
            w.field(b.host)
            w.field(ts)
            w.field(t.source)
            w.field(t.chip)
            w.field(t.label)
            w.field(t.celsius)
            w.nextRow()
          }
        }
      })
    tables.append(
      encode("COPY metrics_process (host, ts, pid, name, username, cpu_percent, rss_bytes) FROM STDIN") { w in
        for n in batches {
          guard let b = n.batch else { continue }
          let ts = Timestamp.text(b.collectedAtUnixMs)
          var seen = Set<UInt32>()
          for p in b.topCpu + b.topMemory where seen.insert(p.pid).inserted {
            w.field(b.host)
            w.field(ts)
            w.field(Int64(p.pid))
            w.field(p.name)
            w.field(p.user)
            w.field(p.cpuPercent)
            w.field(Int64(clamping: p.rssBytes))
            w.nextRow()
          }
        }
      })
    return tables
  }

  private static func optional<T: PGEncodable>(_ w: PGCopyWriter, _ v: T?) {
    if let v { w.field(v) } else { w.null() }
  }
}

/// Milliseconds since the epoch as a timestamptz literal in UTC
/// (`2026-11-22 06:05:09.123+00`), without Foundation's formatter (it was a
/// third of Ingest's CPU time).
enum Timestamp {
  static func text(_ ms: Int64) -> String {
    var t = time_t(Int64((Double(ms) / 1000).rounded(.down)))
    var tm = tm()
    gmtime_r(&t, &tm)
    let millis = Int(ms - Int64(t) * 1000)
    var out = [UInt8](repeating: UInt8(ascii: "0"), count: 26)
    func put(_ value: Int, at: Int, digits: Int) {
      var v = value
      for i in stride(from: at + digits - 1, through: at, by: -1) {
        out[i] = UInt8(ascii: "0") + UInt8(v % 10)
        v /= 10
      }
    }
    put(Int(tm.tm_year) + 1900, at: 0, digits: 4)
    out[4] = UInt8(ascii: "-")
    put(Int(tm.tm_mon) + 1, at: 5, digits: 2)
    out[7] = UInt8(ascii: "-")
    put(Int(tm.tm_mday), at: 8, digits: 2)
    out[10] = UInt8(ascii: " ")
    put(Int(tm.tm_hour), at: 11, digits: 2)
    out[13] = UInt8(ascii: ":")
    put(Int(tm.tm_min), at: 14, digits: 2)
    out[16] = UInt8(ascii: ":")
    put(Int(tm.tm_sec), at: 17, digits: 2)
    out[19] = UInt8(ascii: ".")
    put(millis, at: 20, digits: 3)
    out[23] = UInt8(ascii: "+")
    return String(decoding: out, as: UTF8.self)
  }
}
