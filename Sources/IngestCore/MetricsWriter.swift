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
///
/// The keys are first copied in as they are (a COPY, the cheap path: almost
/// every fetch is all new). A key already stored, or twice in the fetch,
/// breaks its unique index; that transaction is rolled back and the fetch
/// written again with `INSERT … ON CONFLICT DO NOTHING RETURNING`, which
/// tells the new batches from the repeats.
public enum MetricsWriter {
  public struct Key: Hashable, Sendable {
    public var host: String
    public var bootID: String
    public var sequence: UInt64

    init(host: String, bootID: String, sequence: UInt64) {
      self.host = host
      self.bootID = bootID
      self.sequence = sequence
    }

    init(_ b: MetricsBatch) { self.init(host: b.host, bootID: b.bootId, sequence: b.sequence) }
  }

  /// Batches with everything the transaction sends already encoded (COPY
  /// rows, array parameters), so that it can be built on another thread
  /// while the connection is busy with the previous transaction.
  public struct Prepared: Sendable {
    public let batches: [NormalizedBatch]
    /// The batch keys as COPY rows of `ingest_batches`.
    let keyRows: [UInt8]
    let tables: [(sql: String, encoded: [UInt8])]
    let hosts: [String]
    let latest: [any PGEncodable]

    /// `encoded`, when given, holds each batch's protobuf encoding (the
    /// pipeline has it already, for publishing) so it is not encoded again.
    public init(_ batches: [NormalizedBatch], encoded: [[UInt8]]? = nil) {
      self.batches = batches
      (keyRows, tables) = MetricsWriter.encodeRows(batches)
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
        PGByteaArray(latestIndex.map { encoded?[$0] ?? batches[$0].encode() }),
      ]
    }
  }

  /// Stores what is new among `batches`; returns the keys that were new.
  public static func write(_ batches: [NormalizedBatch], autoRegister: Bool, on conn: PGConnection) throws -> Set<Key> {
    try write(Prepared(batches), autoRegister: autoRegister, on: conn)
  }

  /// Stores what is new among the prepared batches; returns the keys that were new.
  public static func write(_ prepared: Prepared, autoRegister: Bool, on conn: PGConnection) throws -> Set<Key> {
    guard !prepared.batches.isEmpty else { return [] }
    do {
      return try conn.transaction { conn in
        try conn.copyIn("COPY ingest_batches (host, boot_id, seq, ts) FROM STDIN", encoded: prepared.keyRows)
        try writeRows(prepared, autoRegister: autoRegister, on: conn)
        return Set(prepared.batches.compactMap { $0.batch.map(Key.init) })
      }
    } catch let error as PostgresError where error.sqlState == .uniqueViolation {
      return try writeNew(prepared, autoRegister: autoRegister, on: conn)
    }
  }

  /// The path for a fetch with repeats: only the batches whose keys are new.
  static func writeNew(_ prepared: Prepared, autoRegister: Bool, on conn: PGConnection) throws -> Set<Key> {
    let batches = prepared.batches
    let raw = batches.compactMap(\.batch)
    let keys = [
      PGArray.text(raw.map(\.host)), PGArray.text(raw.map(\.bootId)), PGArray.numbers(raw.map(\.sequence)),
      PGArray.numbers(raw.map(\.collectedAtUnixMs)),
    ]
    return try conn.transaction { conn in
      let inserted = try conn.query(
        """
        INSERT INTO ingest_batches (host, boot_id, seq, ts)
        SELECT h, b, s, to_timestamp(t / 1000.0) FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(h, b, s, t)
        ON CONFLICT DO NOTHING
        RETURNING host, boot_id, seq
        """, keys)
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
        return pending.remove(Key(raw)) != nil
      }
      guard !fresh.isEmpty else { return new }
      try writeRows(fresh.count == batches.count ? prepared : Prepared(fresh), autoRegister: autoRegister, on: conn)
      return new
    }
  }

  /// The metrics rows, each host's newest batch and its last-seen time.
  static func writeRows(_ rows: Prepared, autoRegister: Bool, on conn: PGConnection) throws {
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
  }

  static let copySQL = [
    "COPY metrics_cpu (host, ts, cpu_percent, load1, load5, load15, processes, uptime_seconds) FROM STDIN",
    "COPY metrics_memory (host, ts, total_bytes, used_bytes, available_bytes, cached_bytes, swap_total_bytes, swap_used_bytes, used_percent) FROM STDIN",
    "COPY metrics_network (host, ts, interface, rx_bytes, tx_bytes, rx_errors, tx_errors, rx_dropped, tx_dropped, rx_bytes_per_second, tx_bytes_per_second, utilization_percent, speed_mbps) FROM STDIN",
    "COPY metrics_disk (host, ts, device, reads_completed, writes_completed, read_bytes, write_bytes, read_iops, write_iops, read_bytes_per_second, write_bytes_per_second, busy_percent, smart_health) FROM STDIN",
    "COPY metrics_mount (host, ts, mount_point, fs_type, total_bytes, used_bytes, available) FROM STDIN",
    "COPY metrics_gpu (host, ts, gpu_index, name, utilization_percent, memory_used_bytes, memory_total_bytes, temperature_celsius, power_draw_watts) FROM STDIN",
    "COPY metrics_temperature (host, ts, source, chip, label, celsius) FROM STDIN",
    "COPY metrics_process (host, ts, pid, name, username, cpu_percent, rss_bytes) FROM STDIN",
  ]

  /// The COPY rows of every metrics table, in one pass over the batches
  /// (each batch is read once, not once per table).
  static func encodeRows(_ batches: [NormalizedBatch]) -> (keys: [UInt8], tables: [(sql: String, encoded: [UInt8])]) {
    var keys = PGCopyEncoder(capacity: batches.count * 90)
    var cpu = PGCopyEncoder(capacity: batches.count * 80)
    var memory = PGCopyEncoder(capacity: batches.count * 140)
    var network = PGCopyEncoder(capacity: batches.count * 600)
    var disk = PGCopyEncoder(capacity: batches.count * 1200)
    var mount = PGCopyEncoder(capacity: batches.count * 600)
    var gpu = PGCopyEncoder(capacity: batches.count * 300)
    var temperature = PGCopyEncoder(capacity: batches.count * 1000)
    var process = PGCopyEncoder(capacity: batches.count * 1200)
    for n in batches {
      guard let b = n.batch else { continue }
      let ts = Timestamp.bytes(b.collectedAtUnixMs)
      func start(_ w: inout PGCopyEncoder) {
        w.field(b.host)
        w.field(unescaped: ts)
      }
      keys.field(b.host)
      keys.field(b.bootId)
      keys.field(Int64(clamping: b.sequence))  // validated: at most Int64.max
      keys.field(unescaped: ts)
      keys.nextRow()
      if let c = b.cpu {
        start(&cpu)
        cpu.field(n.cpuPercent)
        cpu.field(c.load1)
        cpu.field(c.load5)
        cpu.field(c.load15)
        cpu.field(Int64(c.processesTotal))
        cpu.field(Int64(clamping: c.uptimeSeconds))
        cpu.nextRow()
      }
      if let m = b.memory {
        start(&memory)
        memory.field(Int64(clamping: m.totalBytes))
        memory.field(Int64(clamping: m.usedBytes))
        memory.field(Int64(clamping: m.availableBytes))
        memory.field(Int64(clamping: m.cachedBytes))
        memory.field(Int64(clamping: m.swapTotalBytes))
        memory.field(Int64(clamping: m.swapUsedBytes))
        memory.field(n.memoryUsedPercent)
        memory.nextRow()
      }
      for nic in b.interfaces {
        start(&network)
        network.field(nic.name)
        network.field(Int64(clamping: nic.rxBytes))
        network.field(Int64(clamping: nic.txBytes))
        network.field(Int64(clamping: nic.rxErrors))
        network.field(Int64(clamping: nic.txErrors))
        network.field(Int64(clamping: nic.rxDropped))
        network.field(Int64(clamping: nic.txDropped))
        let r = n.interfaces.first { $0.name == nic.name }
        network.field(r?.rxBytesPerSecond)
        network.field(r?.txBytesPerSecond)
        network.field(r?.utilizationPercent)
        network.field(nic.speedMbps.map(Int64.init))
        network.nextRow()
      }
      for d in b.disks {
        start(&disk)
        disk.field(d.device)
        disk.field(Int64(clamping: d.readsCompleted))
        disk.field(Int64(clamping: d.writesCompleted))
        disk.field(Int64(clamping: d.readBytes))
        disk.field(Int64(clamping: d.writeBytes))
        let r = n.disks.first { $0.device == d.device }
        disk.field(r?.readIops)
        disk.field(r?.writeIops)
        disk.field(r?.readBytesPerSecond)
        disk.field(r?.writeBytesPerSecond)
        disk.field(r?.busyPercent)
        disk.field(Int64(d.smartHealth.rawValue))
        disk.nextRow()
      }
      for m in b.mounts {
        start(&mount)
        mount.field(m.mountPoint)
        mount.field(m.fsType)
        mount.field(Int64(clamping: m.totalBytes))
        mount.field(Int64(clamping: m.usedBytes))
        mount.field(m.available)
        mount.nextRow()
      }
      for g in b.gpus {
        start(&gpu)
        gpu.field(Int64(g.index))
        gpu.field(g.name)
        gpu.field(g.utilizationPercent)
        gpu.field(g.memoryUsedBytes.map { Int64(clamping: $0) })
        gpu.field(g.memoryTotalBytes.map { Int64(clamping: $0) })
        gpu.field(g.temperatureCelsius)
        gpu.field(g.powerDrawWatts)
        gpu.nextRow()
      }
      for t in b.temperatures {
        start(&temperature)
        temperature.field(t.source)
        temperature.field(t.chip)
        temperature.field(t.label)
        temperature.field(t.celsius)
        temperature.nextRow()
      }
      // A process in both top-k lists is one row.
      let processes = b.topCpu + b.topMemory
      for (i, p) in processes.enumerated() where !processes[..<i].contains(where: { $0.pid == p.pid }) {
        start(&process)
        process.field(Int64(p.pid))
        process.field(p.name)
        process.field(p.user)
        process.field(p.cpuPercent)
        process.field(Int64(clamping: p.rssBytes))
        process.nextRow()
      }
    }
    return (
      keys.bytes, zip(copySQL, [cpu, memory, network, disk, mount, gpu, temperature, process]).map { ($0, $1.bytes) }
    )
  }
}

/// Milliseconds since the epoch as a timestamptz literal in UTC
/// (`2026-11-22 06:05:09.123+00`), without Foundation's formatter (it was a
/// third of Ingest's CPU time).
enum Timestamp {
  static func text(_ ms: Int64) -> String { String(decoding: bytes(ms), as: UTF8.self) }

  static func bytes(_ ms: Int64) -> [UInt8] {
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
    return out
  }
}
