import Foundation
public import MirrorStore
public import MirrorWire

/// A request that cannot be answered, with the RpcError code to reply.
public struct QueryError: Error, Sendable, Hashable, CustomStringConvertible {
  public var code: String
  public var message: String
  public init(_ code: String, _ message: String) {
    self.code = code
    self.message = message
  }
  public var description: String { "\(code): \(message)" }
}

/// The read side of Ingest: hosts with their state, the latest batch of
/// each, and bucketed time series. Synchronous, on one connection.
public enum Queries {
  static let hostColumns = """
    SELECT h.name, h.info, (extract(epoch FROM h.registered_at) * 1000)::bigint,
      coalesce((extract(epoch FROM h.last_seen_at) * 1000)::bigint, 0),
      \(HostSQL.online) AS online, h.interval_ms, h.labels::text,
      to_json(ARRAY(SELECT g.name FROM host_groups g WHERE \(HostSQL.inGroup) ORDER BY 1))::text AS groups
    """

  public static func listHosts(_ request: ListHostsRequest, on conn: PGConnection) throws -> ListHostsResponse {
    let rows = try conn.query(
      """
      SELECT * FROM (\(hostColumns) FROM hosts h WHERE h.labels @> $1::jsonb) s
      WHERE ($2 = '' OR $2 IN (SELECT json_array_elements_text(s.groups::json))) AND (NOT $3 OR s.online)
      ORDER BY 1
      """,
      [labelsJSON(request.labels), request.group, request.onlineOnly])
    return ListHostsResponse(hosts: try rows.rows.map(hostStatus))
  }

  public static func getHost(_ request: GetHostRequest, on conn: PGConnection) throws -> HostStatus {
    let rows = try conn.query("\(hostColumns) FROM hosts h WHERE h.name = $1", [request.host])
    guard let row = rows.rows.first else { throw QueryError("not_found", "no host named '\(request.host)'") }
    return try hostStatus(row)
  }

  public static func snapshot(_ request: HostsSnapshotRequest, on conn: PGConnection) throws -> HostsSnapshotResponse {
    let rows = try conn.query(
      """
      \(hostColumns), l.normalized FROM hosts h LEFT JOIN host_latest l ON l.host = h.name
      WHERE cardinality($1::text[]) = 0 OR h.name = ANY($1::text[]) ORDER BY 1
      """, [PGArray.text(request.hosts)])
    let hosts = try rows.rows.map { row in
      let latest = try row.decodeIfPresent(PGBytes.self, 8).map { try NormalizedBatch(decoding: $0.bytes) }
      return HostSnapshot(status: try hostStatus(row), latest: latest)
    }
    return HostsSnapshotResponse(hosts: hosts, generatedAtUnixMs: Date().unixMilliseconds)
  }

  static func hostStatus(_ row: PGRow) throws -> HostStatus {
    let info = try row.decodeIfPresent(PGBytes.self, 1).map { try HostInfo(decoding: $0.bytes) }
    let labels = (try? JSONSerialization.jsonObject(with: Data(try row.decode(String.self, 6).utf8))) as? [String: Any]
    let groups = (try? JSONSerialization.jsonObject(with: Data(try row.decode(String.self, 7).utf8))) as? [String]
    return HostStatus(
      name: try row.decode(String.self, 0), info: info, registeredAtUnixMs: try row.decode(Int64.self, 2),
      lastSeenAtUnixMs: try row.decode(Int64.self, 3), online: try row.decode(Bool.self, 4),
      intervalMs: try row.decode(UInt32.self, 5), groups: groups ?? [],
      labels: (labels ?? [:]).map { Label(key: $0.key, value: "\($0.value)") }.sorted { $0.key < $1.key })
  }

  static func labelsJSON(_ labels: [Label]) -> String {
    let object = Dictionary(labels.map { ($0.key, $0.value) }, uniquingKeysWith: { _, b in b })
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self)
  }

  // MARK: metrics.query

  /// The most points one query may return (all series together).
  public static let maxPoints = 100_000
  static let hour: Int64 = 3600
  static let day: Int64 = 86_400

  /// The plan of a query: bucket width and where the points come from.
  public struct Plan: Sendable, Hashable {
    public var start: Int64
    public var end: Int64
    public var stepSeconds: Int64
    public var source: SeriesSource
  }

  public static func plan(_ r: MetricsQueryRequest, nowMs: Int64) throws(QueryError) -> Plan {
    let end = r.endUnixMs == 0 ? nowMs : r.endUnixMs
    let start = r.startUnixMs == 0 ? end - hour * 1000 : r.startUnixMs
    guard end > start else { throw QueryError("invalid_argument", "the end must be after the start") }
    let rangeSeconds = (end - start + 999) / 1000
    var step = Int64(r.stepSeconds)
    if step == 0 {
      step = max(5, (rangeSeconds + 299) / 300)
      // Long ranges read the rollups: round the step to whole hours or days.
      if rangeSeconds > 60 * day {
        step = roundUp(step, day)
      } else if rangeSeconds > 2 * day {
        step = roundUp(step, hour)
      }
    }
    let source: SeriesSource
    if step >= day {
      step = roundUp(step, day)
      source = .daily
    } else if step >= hour {
      step = roundUp(step, hour)
      source = .hourly
    } else {
      source = .raw
    }
    guard rangeSeconds / step <= Int64(maxPoints) else {
      throw QueryError("invalid_argument", "\(rangeSeconds / step) buckets per series is too many; use a larger step")
    }
    let alignedStart = start - ((start % (step * 1000)) + step * 1000) % (step * 1000)
    return Plan(start: alignedStart, end: end, stepSeconds: step, source: source)
  }

  static func roundUp(_ v: Int64, _ unit: Int64) -> Int64 { (v + unit - 1) / unit * unit }

  public static func metrics(
    _ r: MetricsQueryRequest, on conn: PGConnection, timescale: Bool, nowMs: Int64
  ) throws -> MetricsQueryResponse {
    guard let metric = MetricCatalog.named(r.metric) else {
      throw QueryError(
        "invalid_argument",
        "unknown metric '\(r.metric)'; known: \(MetricCatalog.all.map(\.name).joined(separator: ", "))")
    }
    let plan = try plan(r, nowMs: nowMs)
    let inner: String
    switch plan.source {
    case .raw:
      inner = """
        SELECT host, (\(metric.key)) AS key, ts AS t, 1::bigint AS samples, (\(metric.value))::double precision AS total,
          (\(metric.value))::double precision AS minimum, (\(metric.value))::double precision AS maximum
        FROM \(metric.table)
        """
    case .hourly, .daily:
      let suffix = plan.source == .hourly ? "1h" : "1d"
      inner =
        timescale
        ? "SELECT host, key, bucket AS t, samples, total, minimum, maximum FROM \(TimescaleStorage.aggregateName(metric.name, suffix))"
        : "SELECT host, key, bucket AS t, samples, total, minimum, maximum FROM metrics_rollup_\(suffix) WHERE metric = '\(metric.name)'"
    default:
      throw QueryError("internal", "no source")
    }
    let rows = try conn.query(
      """
      SELECT host, key, (extract(epoch FROM b) * 1000)::bigint, sum(total) / sum(samples), min(minimum), max(maximum),
        sum(samples)::bigint
      FROM (SELECT host, key, date_bin(make_interval(secs => $1::double precision), t, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS b,
          samples, total, minimum, maximum
        FROM (\(inner)) src
        WHERE t >= $2::timestamptz AND t < $3::timestamptz AND total IS NOT NULL
          AND (cardinality($4::text[]) = 0 OR host = ANY($4::text[])) AND ($5 = '' OR key = $5)) s
      GROUP BY host, key, b ORDER BY host, key, b
      LIMIT \(maxPoints + 1)
      """,
      [plan.stepSeconds, Timestamp.text(plan.start), Timestamp.text(plan.end), PGArray.text(r.hosts), r.key])
    guard rows.count <= maxPoints else {
      throw QueryError("invalid_argument", "more than \(maxPoints) points; narrow the hosts or use a larger step")
    }
    var series: [Series] = []
    for row in rows.rows {
      let host = try row.decode(String.self, 0)
      let key = try row.decode(String.self, 1)
      let point = SeriesPoint(
        bucketUnixMs: try row.decode(Int64.self, 2), average: try row.decode(Double.self, 3),
        minimum: try row.decode(Double.self, 4), maximum: try row.decode(Double.self, 5),
        samples: try row.decode(UInt64.self, 6))
      if let last = series.last, last.host == host, last.key == key {
        series[series.count - 1].points.append(point)
      } else {
        series.append(Series(host: host, metric: metric.name, key: key, points: [point]))
      }
    }
    return MetricsQueryResponse(series: series, stepSeconds: UInt32(plan.stepSeconds), source: plan.source)
  }
}
