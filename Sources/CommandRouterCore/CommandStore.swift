import Foundation
import MirrorBus
public import MirrorStore
public import MirrorWire

/// States as stored (lower-case names).
extension CommandState {
  public var stored: String {
    switch self {
    case .pending: "pending"
    case .dispatched: "dispatched"
    case .running: "running"
    case .succeeded: "succeeded"
    case .failed: "failed"
    case .timedOut: "timed_out"
    case .expired: "expired"
    case .rejected: "rejected"
    case .denied: "denied"
    default: "unspecified"
    }
  }

  public init(stored: String) {
    let all: [CommandState] = [
      .pending, .dispatched, .running, .succeeded, .failed, .timedOut, .expired, .rejected, .denied,
    ]
    self = all.first { $0.stored == stored } ?? .unspecified
  }

  public var isFinal: Bool { ![.pending, .dispatched, .running, .unspecified].contains(self) }

  /// The state of a command from the states of its hosts: still moving
  /// while any host is; otherwise succeeded only if every host did, else
  /// the first failure kind in this order.
  public static func aggregate(_ states: [CommandState]) -> CommandState {
    if states.isEmpty { return .rejected }
    if states.contains(.running) { return .running }
    if states.contains(.dispatched) { return .dispatched }
    if states.contains(.pending) { return .pending }
    for s in [CommandState.failed, .timedOut, .rejected, .expired, .denied] where states.contains(s) { return s }
    return .succeeded
  }
}

/// A target host as the registry knows it.
public struct TargetHost: Sendable, Hashable {
  public var name: String
  public var online: Bool
  public var addresses: [String]
  public var macs: [String]
}

/// The commands tables: targets, states, output, audit queries, archive.
public enum CommandStore {
  static let hostColumns = """
    SELECT h.name, \(HostSQL.online),
      array_to_string(h.addresses, ' '), array_to_string(h.mac_addresses, ' ') FROM hosts h
    """

  /// The hosts a target names, from the registry; names it gives that the
  /// registry does not know are returned in `unknown`.
  public static func resolve(_ t: CommandTarget, on conn: PGConnection) throws -> (
    hosts: [TargetHost], unknown: [String]
  ) {
    let rows: PGRows
    switch t.kind {
    case .hosts:
      rows = try conn.query("\(hostColumns) WHERE h.name = ANY($1::text[]) ORDER BY 1", [PGArray.text(t.hosts)])
    case .group:
      rows = try conn.query(
        """
        \(hostColumns) WHERE EXISTS (SELECT 1 FROM host_groups g WHERE g.name = $1 AND \(HostSQL.inGroup)) ORDER BY 1
        """, [t.group])
    case .selector:
      let object = Dictionary(t.selector.map { ($0.key, $0.value) }, uniquingKeysWith: { _, b in b })
      let json = String(
        decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
      rows = try conn.query("\(hostColumns) WHERE h.labels @> $1::jsonb ORDER BY 1", [json])
    case .all:
      rows = try conn.query("\(hostColumns) ORDER BY 1")
    default:
      throw Refusal(.rejected, "invalid_argument", "the request names no target")
    }
    let hosts = try rows.rows.map { row in
      TargetHost(
        name: try row.decode(String.self, 0), online: try row.decode(Bool.self, 1),
        addresses: try row.decode(String.self, 2).split(separator: " ").map(String.init),
        macs: try row.decode(String.self, 3).split(separator: " ").map(String.init))
    }
    let known = Set(hosts.map(\.name))
    return (hosts, t.kind == .hosts ? t.hosts.filter { !known.contains($0) } : [])
  }

  public static func describe(_ t: CommandTarget) -> String {
    switch t.kind {
    case .hosts: "hosts:" + t.hosts.joined(separator: ",")
    case .group: "group:" + t.group
    case .selector: "labels:" + t.selector.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    case .all: "all"
    default: "none"
    }
  }

  /// The record of a command id, if any.
  public static func exists(_ id: String, on conn: PGConnection) throws -> Bool {
    try conn.query("SELECT 1 FROM commands WHERE id = $1", [id]).count > 0
  }

  /// Records a request (whatever its fate) and its target rows.
  public static func insert(
    _ r: CommandRequest, state: CommandState, reason: String, targets: [(host: String, via: String)],
    on conn: PGConnection
  ) throws {
    try conn.query(
      """
      INSERT INTO commands (id, requester, reason, request, action, target, timeout_ms, deadline_at, state, state_reason,
        submitted_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8 / 1000.0), $9, $10, now())
      """,
      [
        r.id, r.requester, r.reason, PGBytes(r.encode()), actionName(r.action ?? CommandAction()),
        describe(r.target ?? CommandTarget()), Int64(r.timeoutMs), r.deadlineUnixMs, state.stored, reason,
      ])
    guard !targets.isEmpty else { return }
    try conn.query(
      """
      INSERT INTO command_targets (command_id, host, via, state)
      SELECT $1, h, v, $4 FROM unnest($2::text[], $3::text[]) AS u(h, v)
      """, [r.id, PGArray.text(targets.map(\.host)), PGArray.text(targets.map(\.via)), state.stored])
  }

  public static func markDispatched(_ id: String, hosts: [String], on conn: PGConnection) throws {
    try conn.query(
      """
      UPDATE command_targets SET state = 'dispatched', dispatched_at = now()
      WHERE command_id = $1 AND host = ANY($2::text[]) AND state = 'pending'
      """, [id, PGArray.text(hosts)])
    try refresh(id, on: conn)
  }

  /// The target row a result from `via` (the subject's host) may speak
  /// for: nil when that host was never sent this command.
  static func target(_ id: String, via: String, on conn: PGConnection) throws -> (host: String, state: CommandState)? {
    guard
      let row = try conn.query(
        "SELECT host, state FROM command_targets WHERE command_id = $1 AND via = $2", [id, via]
      ).rows.first
    else { return nil }
    return (try row.decode(String.self, 0), CommandState(stored: try row.decode(String.self, 1)))
  }

  /// Stores a chunk of output; false when `via` was never sent the command.
  public static func recordOutput(_ o: CommandOutput, via: String, on conn: PGConnection) throws -> Bool {
    guard let t = try target(o.commandId, via: via, on: conn) else { return false }
    let inserted = try conn.query(
      """
      INSERT INTO command_output (command_id, host, seq, channel, data, emitted_at)
      VALUES ($1, $2, $3, $4, $5, to_timestamp($6 / 1000.0)) ON CONFLICT DO NOTHING
      """,
      [
        o.commandId, t.host, Int64(clamping: o.chunkSequence), Int64(o.channel.rawValue), PGBytes(o.data),
        o.emittedAtUnixMs,
      ]
    ).affected
    try conn.query(
      """
      UPDATE command_targets SET output_bytes = output_bytes + $3,
        state = CASE WHEN state IN ('pending', 'dispatched') THEN 'running' ELSE state END,
        started_at = coalesce(started_at, to_timestamp($4 / 1000.0))
      WHERE command_id = $1 AND host = $2
      """, [o.commandId, t.host, inserted > 0 ? Int64(o.data.count) : 0, o.emittedAtUnixMs])
    // Only the first chunk moves the host (and maybe the command) to running.
    if t.state == .pending || t.state == .dispatched { try refresh(o.commandId, on: conn) }
    return true
  }

  /// Applies a host's word on a command; false when `via` was never sent it.
  /// A final state is never overwritten (a replay refused later does not
  /// undo the run that happened).
  /// `refresh`: recompute the command's state now (false: the caller
  /// does it once for a batch).
  public static func recordResult(_ r: CommandResult, via: String, refresh now: Bool = true, on conn: PGConnection)
    throws -> Bool
  {
    guard let t = try target(r.commandId, via: via, on: conn) else { return false }
    guard !t.state.isFinal else { return true }
    if r.state == .running {
      try conn.query(
        """
        UPDATE command_targets SET state = 'running', started_at = coalesce(started_at, to_timestamp($3 / 1000.0))
        WHERE command_id = $1 AND host = $2
        """, [r.commandId, t.host, r.startedAtUnixMs])
    } else {
      try conn.query(
        """
        UPDATE command_targets SET state = $3, reason = $4, exit_code = $5, signal = $6,
          started_at = coalesce(started_at, to_timestamp($7 / 1000.0)), finished_at = to_timestamp($8 / 1000.0),
          truncated = $9, output_bytes = greatest(output_bytes, $10)
        WHERE command_id = $1 AND host = $2
        """,
        [
          r.commandId, t.host, (r.state.isFinal ? r.state : .failed).stored, r.reason, r.exitCode.map { Int64($0) },
          r.signal.map { Int64($0) }, r.startedAtUnixMs, r.finishedAtUnixMs, r.truncated,
          Int64(clamping: r.outputBytes),
        ])
    }
    if now { try refresh(r.commandId, on: conn) }
    return true
  }

  /// Expires dispatches not started before their deadline and times out
  /// runs past their timeout plus `grace`; returns the commands changed.
  public static func sweep(grace: Duration, on conn: PGConnection) throws -> [String] {
    let changed = try conn.query(
      """
      WITH expired AS (
        UPDATE command_targets t SET state = 'expired', reason = 'not picked up before its deadline',
          finished_at = now()
        FROM commands c WHERE c.id = t.command_id AND t.state IN ('pending', 'dispatched') AND c.deadline_at < now()
        RETURNING t.command_id),
      timed AS (
        UPDATE command_targets t SET state = 'timed_out', finished_at = now(),
          reason = 'no result within the timeout and its grace period'
        FROM commands c WHERE c.id = t.command_id AND t.state = 'running'
          AND t.started_at + make_interval(secs => (c.timeout_ms + $1) / 1000.0) < now()
        RETURNING t.command_id)
      SELECT DISTINCT command_id FROM (SELECT * FROM expired UNION ALL SELECT * FROM timed) s
      """, [grace.wholeMilliseconds])
    let ids = try changed.rows.map { try $0.decode(String.self, 0) }
    for id in ids { try refresh(id, on: conn) }
    return ids
  }

  /// Sets a command's state from its hosts' states.
  static func refresh(_ id: String, on conn: PGConnection) throws {
    // The distinct states (a handful of rows, whatever the fan-out).
    let states = try conn.query("SELECT DISTINCT state FROM command_targets WHERE command_id = $1", [id]).rows.map {
      CommandState(stored: try $0.decode(String.self, 0))
    }
    guard !states.isEmpty else { return }
    try conn.query(
      "UPDATE commands SET state = $2, updated_at = now() WHERE id = $1 AND state <> $2",
      [id, CommandState.aggregate(states).stored])
  }

  /// Targets recorded but never dispatched (a router stopped in between,
  /// or their publish failed). `olderThan`: only those of commands recorded
  /// at least that long ago and not past their deadline (a running
  /// router's retry, which leaves alone what is being dispatched now).
  public static func undispatched(olderThan age: Duration? = nil, on conn: PGConnection) throws -> [(
    request: CommandRequest, host: String, via: String
  )] {
    let recent =
      age == nil
      ? "" : "AND c.submitted_at < now() - make_interval(secs => $1 / 1000.0) AND c.deadline_at > now()"
    let parameters: [(any PGEncodable)?] = age.map { [$0.wholeMilliseconds] } ?? []
    return try conn.query(
      """
      SELECT c.request, t.host, t.via FROM command_targets t JOIN commands c ON c.id = t.command_id
      WHERE t.state = 'pending' \(recent) ORDER BY c.submitted_at
      """, parameters
    ).rows.map { row in
      (
        try CommandRequest(decoding: try row.decode(PGBytes.self, 0).bytes), try row.decode(String.self, 1),
        try row.decode(String.self, 2)
      )
    }
  }

  // MARK: Audit queries

  public static func record(_ id: String, on conn: PGConnection) throws -> CommandRecord? {
    guard
      let row = try conn.query(
        "SELECT request, state, state_reason, (extract(epoch FROM updated_at) * 1000)::bigint FROM commands WHERE id = $1",
        [id]
      ).rows.first
    else { return nil }
    let hosts = try conn.query(
      """
      SELECT host, via, state, reason, exit_code, signal,
        coalesce((extract(epoch FROM dispatched_at) * 1000)::bigint, 0),
        coalesce((extract(epoch FROM started_at) * 1000)::bigint, 0),
        coalesce((extract(epoch FROM finished_at) * 1000)::bigint, 0), truncated, output_bytes
      FROM command_targets WHERE command_id = $1 ORDER BY host
      """, [id]
    ).rows.map { r in
      CommandHostStatus(
        host: try r.decode(String.self, 0), via: try r.decode(String.self, 1),
        state: CommandState(stored: try r.decode(String.self, 2)), reason: try r.decode(String.self, 3),
        exitCode: try r.decodeIfPresent(Int32.self, 4), signal: try r.decodeIfPresent(Int32.self, 5),
        dispatchedAtUnixMs: try r.decode(Int64.self, 6), startedAtUnixMs: try r.decode(Int64.self, 7),
        finishedAtUnixMs: try r.decode(Int64.self, 8), truncated: try r.decode(Bool.self, 9),
        outputBytes: try r.decode(UInt64.self, 10))
    }
    return CommandRecord(
      request: try CommandRequest(decoding: try row.decode(PGBytes.self, 0).bytes),
      state: CommandState(stored: try row.decode(String.self, 1)), reason: try row.decode(String.self, 2),
      hosts: hosts, updatedAtUnixMs: try row.decode(Int64.self, 3))
  }

  public static func output(_ id: String, on conn: PGConnection) throws -> [CommandOutput] {
    try conn.query(
      """
      SELECT host, seq, channel, data, (extract(epoch FROM emitted_at) * 1000)::bigint FROM command_output
      WHERE command_id = $1 ORDER BY host, seq
      """, [id]
    ).rows.map { r in
      CommandOutput(
        commandId: id, host: try r.decode(String.self, 0), chunkSequence: try r.decode(UInt64.self, 1),
        channel: OutputChannel(rawValue: try r.decode(Int32.self, 2)), data: try r.decode(PGBytes.self, 3).bytes,
        emittedAtUnixMs: try r.decode(Int64.self, 4))
    }
  }

  public static func list(_ q: ListCommandsRequest, on conn: PGConnection) throws -> [CommandRecord] {
    let ids = try conn.query(
      """
      SELECT c.id FROM commands c
      WHERE ($1 = '' OR EXISTS (SELECT 1 FROM command_targets t WHERE t.command_id = c.id AND t.host = $1))
        AND ($2 = '' OR c.requester = $2) AND ($3 = '' OR c.state = $3)
        AND ($4 = 0 OR c.submitted_at >= to_timestamp($4 / 1000.0))
        AND ($5 = 0 OR c.submitted_at < to_timestamp($5 / 1000.0))
      ORDER BY c.submitted_at DESC, c.id LIMIT $6
      """,
      [
        q.host, q.requester, q.state == .unspecified ? "" : q.state.stored, q.sinceUnixMs, q.untilUnixMs,
        Int64(q.limit == 0 ? 50 : min(q.limit, 1000)),
      ])
    return try ids.rows.compactMap { try record(try $0.decode(String.self, 0), on: conn) }
  }

  /// Moves finished commands submitted before `cutoffMs` (with their hosts
  /// and output) to the archive tables; returns how many.
  public static func archive(before cutoffMs: Int64, on conn: PGConnection) throws -> Int {
    try conn.transaction { conn in
      let cutoff = [cutoffMs] as [(any PGEncodable)?]
      let finished = "state NOT IN ('pending', 'dispatched', 'running') AND submitted_at < to_timestamp($1 / 1000.0)"
      let ofFinished = "command_id IN (SELECT id FROM commands WHERE \(finished))"
      try conn.query("INSERT INTO command_output_archive SELECT * FROM command_output WHERE \(ofFinished)", cutoff)
      try conn.query("INSERT INTO command_targets_archive SELECT * FROM command_targets WHERE \(ofFinished)", cutoff)
      try conn.query("INSERT INTO commands_archive SELECT * FROM commands WHERE \(finished)", cutoff)
      return try conn.query("DELETE FROM commands WHERE \(finished)", cutoff).affected
    }
  }
}
