import Foundation
public import MirrorStore
public import MirrorWire

/// The `alerts`, `silences` and `notifications` tables.
public enum AlertStore {
  static let columns = """
    id, fingerprint, rule, host, severity, state, labels::text, summary, description, value, threshold,
    (extract(epoch FROM started_at) * 1000)::bigint, (extract(epoch FROM updated_at) * 1000)::bigint,
    coalesce((extract(epoch FROM resolved_at) * 1000)::bigint, 0),
    coalesce((extract(epoch FROM notified_at) * 1000)::bigint, 0), coalesce(acknowledged_by, ''),
    acknowledged_comment
    """

  static func decode(_ row: PGRow) throws -> StoredAlert {
    var a = Alert()
    a.id = try row.decode(String.self, 0)
    a.rule = try row.decode(String.self, 2)
    a.host = try row.decode(String.self, 3)
    a.severity = NotifierRules.severity(try row.decode(String.self, 4)) ?? .warning
    a.state = state(try row.decode(String.self, 5))
    a.labels = labels(fromJSON: try row.decode(String.self, 6))
    a.summary = try row.decode(String.self, 7)
    a.description = try row.decode(String.self, 8)
    a.value = try row.decode(Double.self, 9)
    a.threshold = try row.decode(Double.self, 10)
    a.startedAtUnixMs = try row.decode(Int64.self, 11)
    a.updatedAtUnixMs = try row.decode(Int64.self, 12)
    a.resolvedAtUnixMs = try row.decode(Int64.self, 13)
    a.acknowledgedBy = try row.decode(String.self, 15)
    a.acknowledged = !a.acknowledgedBy.isEmpty
    a.acknowledgedComment = try row.decode(String.self, 16)
    return StoredAlert(
      alert: a, fingerprint: try row.decode(String.self, 1), notifiedAtMs: try row.decode(Int64.self, 14))
  }

  static func state(_ s: String) -> AlertState {
    switch s {
    case "pending": .pending
    case "firing": .firing
    case "resolved": .resolved
    default: .unspecified
    }
  }

  static func labelsJSON(_ labels: [Label]) -> String {
    var map: [String: String] = [:]
    for l in labels { map[l.key] = l.value }
    let data = (try? JSONSerialization.data(withJSONObject: map, options: [.sortedKeys])) ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self)
  }

  static func labels(fromJSON text: String) -> [Label] {
    let map = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    return map.map { Label(key: $0.key, value: "\($0.value)") }.sorted { $0.key < $1.key }
  }

  /// The alerts that were pending or firing.
  public static func loadOpen(on conn: PGConnection) throws -> [StoredAlert] {
    try conn.query("SELECT \(columns) FROM alerts WHERE state <> 'resolved'").rows.map(decode)
  }

  /// Stores what the engine decided, in order (call inside a transaction).
  /// Returns the alerts whose state changed, to publish after the commit.
  public static func apply(_ actions: [AlertAction], on conn: PGConnection) throws -> [Alert] {
    var changed: [Alert] = []
    for action in actions {
      switch action {
      case .save(let a):
        let fp = AlertEngine.fingerprint(a.rule, a.host, Template.series(of: a))
        if a.state != .resolved {
          // An open row of an older episode (should not exist) is closed.
          try conn.query(
            "UPDATE alerts SET state = 'resolved', resolved_at = now() WHERE fingerprint = $1 AND id <> $2 AND state <> 'resolved'",
            [fp, a.id])
        }
        try conn.query(
          """
          INSERT INTO alerts (id, fingerprint, rule, host, severity, state, labels, summary, description, value,
            threshold, started_at, updated_at, firing_at, resolved_at)
          VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, to_timestamp($12 / 1000.0),
            to_timestamp($13 / 1000.0), CASE WHEN $6 = 'firing' THEN to_timestamp($13 / 1000.0) END,
            CASE WHEN $6 = 'resolved' THEN to_timestamp($14 / 1000.0) END)
          ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, summary = EXCLUDED.summary,
            value = EXCLUDED.value, updated_at = EXCLUDED.updated_at,
            firing_at = coalesce(alerts.firing_at, EXCLUDED.firing_at), resolved_at = EXCLUDED.resolved_at
          """,
          [
            a.id, fp, a.rule, a.host, severityName(a.severity), stateName(a.state), labelsJSON(a.labels), a.summary,
            a.description, a.value, a.threshold, a.startedAtUnixMs, a.updatedAtUnixMs, a.resolvedAtUnixMs,
          ])
        changed.append(a)
      case .discard(let a):
        try conn.query("DELETE FROM alerts WHERE id = $1 AND state = 'pending'", [a.id])
        var gone = a
        gone.state = .resolved
        changed.append(gone)
      case .notify(let a, let kind, let channels):
        for c in channels {
          try conn.query(
            "INSERT INTO notifications (channel, alert_id, kind, alert) VALUES ($1, $2, $3, $4)",
            [c, a.id, kind.rawValue, PGBytes(a.encode())])
        }
        try conn.query("UPDATE alerts SET notified_at = now() WHERE id = $1", [a.id])
      }
    }
    return changed
  }

  public static func list(_ q: ListAlertsRequest, nowMs: Int64, on conn: PGConnection) throws -> ListAlertsResponse {
    let limit = Int(q.limit == 0 ? 200 : min(q.limit, 5000))
    let rows = try conn.query(
      """
      SELECT \(columns) FROM alerts
      WHERE ($1 OR state <> 'resolved') AND ($2 = '' OR host = $2)
      ORDER BY (state = 'resolved'), updated_at DESC LIMIT $3
      """, [q.includeResolved, q.host, limit])
    var out = ListAlertsResponse()
    out.alerts = try rows.rows.map { try decode($0).alert }
    out.silences = try activeSilences(nowMs: nowMs, on: conn)
    return out
  }

  /// Marks an open alert acknowledged; nil when there is no such open alert.
  public static func acknowledge(_ id: String, by: String, comment: String = "", on conn: PGConnection) throws
    -> Alert?
  {
    let rows = try conn.query(
      """
      UPDATE alerts SET acknowledged_by = $2, acknowledged_at = now(), acknowledged_comment = $3
      WHERE id = $1 AND state <> 'resolved' RETURNING \(columns)
      """, [id, by, comment])
    return try rows.rows.first.map { try decode($0).alert }
  }

  public static func insertSilence(_ s: Silence, on conn: PGConnection) throws {
    try conn.query(
      """
      INSERT INTO silences (id, alert_id, rule, host, ends_at, created_by, comment, created_at)
      VALUES ($1, $2, $3, $4, to_timestamp($5 / 1000.0), $6, $7, to_timestamp($8 / 1000.0))
      """, [s.id, s.alertId, s.rule, s.host, s.endsAtUnixMs, s.by, s.comment, s.createdAtUnixMs])
  }

  /// Ends an active silence now; nil when there is none with that id.
  public static func endSilence(_ id: String, nowMs: Int64, on conn: PGConnection) throws -> Silence? {
    guard
      try !conn.query(
        "UPDATE silences SET ends_at = to_timestamp($2 / 1000.0) WHERE id = $1 AND ends_at > to_timestamp($2 / 1000.0) RETURNING id",
        [id, nowMs]
      ).rows.isEmpty
    else { return nil }
    return Silence(id: id, endsAtUnixMs: nowMs)
  }

  public static func activeSilences(nowMs: Int64, on conn: PGConnection) throws -> [Silence] {
    try conn.query(
      """
      SELECT id, alert_id, rule, host, (extract(epoch FROM ends_at) * 1000)::bigint, created_by, comment,
        (extract(epoch FROM created_at) * 1000)::bigint
      FROM silences WHERE ends_at > to_timestamp($1 / 1000.0) ORDER BY created_at
      """, [nowMs]
    ).rows.map { r in
      Silence(
        id: try r.decode(String.self, 0), alertId: try r.decode(String.self, 1), rule: try r.decode(String.self, 2),
        host: try r.decode(String.self, 3), endsAtUnixMs: try r.decode(Int64.self, 4), by: try r.decode(String.self, 5),
        comment: try r.decode(String.self, 6), createdAtUnixMs: try r.decode(Int64.self, 7))
    }
  }

  /// Labels, groups and last batch of every registered host.
  public static func hosts(on conn: PGConnection) throws -> (
    meta: [String: HostMeta], lastSeen: [String: (ms: Int64, intervalMs: Int64)]
  ) {
    let rows = try conn.query(
      """
      SELECT h.name, h.labels::text,
        coalesce(array_to_string(ARRAY(SELECT g.name FROM host_groups g WHERE \(HostSQL.inGroup)), ','), ''),
        coalesce((extract(epoch FROM h.last_seen_at) * 1000)::bigint, 0), h.interval_ms
      FROM hosts h
      """)
    var meta: [String: HostMeta] = [:]
    var seen: [String: (ms: Int64, intervalMs: Int64)] = [:]
    for r in rows.rows {
      let name = try r.decode(String.self, 0)
      var labels: [String: String] = [:]
      for l in Self.labels(fromJSON: try r.decode(String.self, 1)) { labels[l.key] = l.value }
      let groups = try r.decode(String.self, 2).split(separator: ",").map(String.init)
      meta[name] = HostMeta(labels: labels, groups: Set(groups))
      let ms = try r.decode(Int64.self, 3)
      if ms > 0 { seen[name] = (ms, Int64(try r.decode(Int.self, 4))) }
    }
    return (meta, seen)
  }

  // MARK: The outbox

  public struct Queued: Sendable {
    public var id: Int64
    public var channel: String
    public var kind: NotificationKind
    public var alert: Alert
    public var attempts: Int
    public var ageMs: Int64
  }

  /// Notifications due now, oldest first.
  public static func due(limit: Int, on conn: PGConnection) throws -> [Queued] {
    try conn.query(
      """
      SELECT id, channel, kind, alert, attempts, (extract(epoch FROM now() - created_at) * 1000)::bigint
      FROM notifications WHERE state = 'queued' AND next_attempt_at <= now() ORDER BY id LIMIT $1
      """, [limit]
    ).rows.compactMap { r in
      guard let alert = try? Alert(decoding: try r.decode(PGBytes.self, 3).bytes) else { return nil }
      return Queued(
        id: try r.decode(Int64.self, 0), channel: try r.decode(String.self, 1),
        kind: NotificationKind(rawValue: try r.decode(String.self, 2)) ?? .firing, alert: alert,
        attempts: try r.decode(Int.self, 4), ageMs: try r.decode(Int64.self, 5))
    }
  }

  public static func markSent(_ ids: [Int64], on conn: PGConnection) throws {
    try conn.query(
      "UPDATE notifications SET state = 'sent', sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1::bigint[])",
      [PGArray.numbers(ids)])
  }

  /// Another try after `delayMs`, or `failed` when the attempts are used up.
  public static func markFailed(_ ids: [Int64], error: String, delayMs: Int64?, on conn: PGConnection) throws {
    try conn.query(
      """
      UPDATE notifications SET attempts = attempts + 1, last_error = $2,
        state = CASE WHEN $3::bigint IS NULL THEN 'failed' ELSE 'queued' END,
        next_attempt_at = now() + make_interval(secs => coalesce($3::bigint, 0) / 1000.0)
      WHERE id = ANY($1::bigint[])
      """, [PGArray.numbers(ids), error, delayMs])
  }
}
