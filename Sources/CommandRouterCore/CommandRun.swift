import Foundation
import Metrics
public import MirrorBus
import MirrorService
public import MirrorWire

/// Submits a signed command and waits for it without a timer on the path:
/// the output and the hosts' results as they come on `commands.result.*`,
/// and the router's announcement on `commands.state.<id>` when the command
/// is final. Output is complete and in order per host: chunks are counted
/// against each host's result (`chunks`), and whatever did not come live
/// (a late start, a dropped message) is read once from the audit record
/// (`commands.get` with output).
public enum CommandRun {
  public struct Outcome: Sendable {
    public var reply: SubmitCommandResponse
    /// The final record; nil when the command was not dispatched.
    public var record: CommandRecord?
    /// Chunks read back from the audit record because they did not come live.
    public var recovered: Int
  }

  enum Event: Sendable {
    case output(CommandOutput)
    case result(CommandResult)
    case state(CommandRecord)
  }

  /// `onOutput` sees every chunk once, in order per host.
  public static func run(
    _ request: CommandRequest, on bus: BusConnection, replyTimeout: Duration = .seconds(5),
    wait: Duration, onOutput: @escaping @Sendable (CommandOutput) -> Void = { _ in }
  ) async throws -> Outcome {
    try await run(request, on: bus, replyTimeout: replyTimeout, wait: wait, losing: { _ in false }, onOutput: onOutput)
  }

  /// As above; `losing` drops live chunks as a lossy network would (tests),
  /// `maxQueued` bounds the chunks waiting to be handled.
  static func run(
    _ request: CommandRequest, on bus: BusConnection, replyTimeout: Duration, wait: Duration,
    losing: @escaping @Sendable (CommandOutput) -> Bool, maxQueued: Int = 65_536,
    onOutput: @escaping @Sendable (CommandOutput) -> Void
  ) async throws -> Outcome {
    let id = request.id
    let (events, feed) = AsyncStream<Event>.makeStream()
    // Output waiting for this loop is bounded: past `maxQueued` chunks a
    // chunk is dropped (and counted) — the host's result says how many it
    // sent, so the gap is read back from the audit record like any lost
    // chunk. Results and the final state are never dropped.
    let queued = Shared(0)
    let dropped = Counter(label: "command_run_output_dropped_total")
    // Subscribed before the submit: nothing of this command can pass unseen.
    let results = try bus.subscribe("commands.result.*", pending: 1 << 16) { m in
      if m.mirrorType == CommandOutput.fullName {
        if let o = try? CommandOutput(decoding: m.payload), o.commandId == id,
          m.subject == Subjects.commandsResult(o.host), !losing(o)
        {
          let room = queued.withLock { n -> Bool in
            guard n < maxQueued else { return false }
            n += 1
            return true
          }
          if room { feed.yield(.output(o)) } else { dropped.increment() }
        }
      } else if let r = try? CommandResult(decoding: m.payload), r.commandId == id,
        m.subject == Subjects.commandsResult(r.host)
      {
        feed.yield(.result(r))
      }
    }
    let states = try bus.subscribe(Subjects.commandsState(id), pending: 16) { m in
      if let r = try? CommandRecord(decoding: m.payload, limit: 16 << 20) { feed.yield(.state(r)) }
    }
    defer {
      results.unsubscribe()
      states.unsubscribe()
      feed.finish()
    }
    try await bus.flush()
    let reply = try await bus.request(
      Subjects.commandsSubmit, request, expecting: SubmitCommandResponse.self, timeout: replyTimeout)
    guard reply.state == .dispatched || reply.state == .running else {
      return Outcome(reply: reply, record: nil, recovered: 0)
    }
    let targets = Set(reply.hosts)
    // Per host: the next chunk to hand on, and chunks that came early.
    var next: [String: UInt64] = [:]
    var held: [String: [UInt64: CommandOutput]] = [:]
    var delivered: [String: UInt64] = [:]
    func take(_ o: CommandOutput) {
      let n = next[o.host, default: 1]
      guard o.chunkSequence >= n, held[o.host]?[o.chunkSequence] == nil else { return }
      held[o.host, default: [:]][o.chunkSequence] = o
      flush(o.host, through: nil)
    }
    /// Hands on the held chunks in order; with `through`, past gaps too.
    func flush(_ host: String, through gapsAllowed: Bool?) {
      var n = next[host, default: 1]
      while var waiting = held[host], !waiting.isEmpty {
        var found = waiting.removeValue(forKey: n)
        if found == nil, gapsAllowed == true, let first = waiting.keys.min() {
          found = waiting.removeValue(forKey: first)
        }
        guard let o = found else { break }
        held[host] = waiting
        onOutput(o)
        delivered[host, default: 0] += 1
        n = o.chunkSequence + 1
      }
      next[host] = n
    }
    var expected: [String: UInt64] = [:]
    var finals: [String: CommandResult] = [:]
    var final: CommandRecord?
    let timer = Task {
      try? await Task.sleep(for: wait)
      feed.finish()
    }
    defer { timer.cancel() }
    for await event in events {
      switch event {
      case .output(let o):
        queued.withLock { $0 -= 1 }
        if targets.contains(o.host) { take(o) }
      case .result(let r) where targets.contains(r.host):
        expected[r.host] = r.chunks
        finals[r.host] = r
      case .state(let r) where r.state.isFinal:
        final = r
      default:
        break
      }
      // Every host's own final word and all its chunks: done, without
      // waiting for the router to store them (it announces what only it
      // decides: expiry, timeouts).
      if final == nil,
        targets.allSatisfy({ h in
          finals[h].map { $0.state.isFinal } == true && delivered[h, default: 0] == expected[h]
            && held[h, default: [:]].isEmpty
        })
      {
        let hosts = reply.hosts.compactMap { finals[$0] }.map { (r: CommandResult) -> CommandHostStatus in
          CommandHostStatus(
            host: r.host, via: r.host, state: r.state, reason: r.reason, exitCode: r.exitCode, signal: r.signal,
            startedAtUnixMs: r.startedAtUnixMs, finishedAtUnixMs: r.finishedAtUnixMs, truncated: r.truncated,
            outputBytes: r.outputBytes)
        }
        let record = CommandRecord(
          request: request, state: CommandState.aggregate(hosts.map { $0.state }), hosts: hosts,
          updatedAtUnixMs: Date().unixMilliseconds)
        return Outcome(reply: reply, record: record, recovered: 0)
      }
      guard let record = final else { continue }
      // Every host that ran told how many chunks it sent; all of them here?
      let complete = record.hosts.allSatisfy { h in
        guard let n = expected[h.host] else { return h.outputBytes == 0 && h.startedAtUnixMs == 0 }
        return delivered[h.host, default: 0] == n && held[h.host, default: [:]].isEmpty
      }
      if complete { return Outcome(reply: reply, record: record, recovered: 0) }
      // Not all came live: the audit record has every stored chunk.
      let stored = try await bus.request(
        Subjects.commandsGet, GetCommandRequest(id: id, withOutput: true), expecting: CommandRecordWithOutput.self,
        timeout: replyTimeout, limit: 64 << 20)
      func count() -> Int {
        Int(delivered.values.reduce(UInt64(0), +)) + held.values.map(\.count).reduce(0, +)
      }
      let before = count()
      for o in stored.output where targets.contains(o.host) { take(o) }
      let recovered = count() - before
      // What the record lacks too is gone for good: the rest, in order.
      for host in held.keys { flush(host, through: true) }
      return Outcome(reply: reply, record: stored.record ?? record, recovered: recovered)
    }
    throw CommandRunError.noFinalState(id)
  }
}

public enum CommandRunError: Error, CustomStringConvertible {
  case noFinalState(String)
  public var description: String {
    switch self {
    case .noFinalState(let id): "no final state for \(id) in time"
    }
  }
}
