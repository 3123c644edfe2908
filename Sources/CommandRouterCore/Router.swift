public import Crypto
import Foundation
public import Logging
import Metrics
public import MirrorBus
public import MirrorService
public import MirrorStore
public import MirrorWire
public import ServiceLifecycle

/// The CommandRouter: takes `CommandRequest`s (on `commands.pending`, or
/// `commands.submit` which answers at once), verifies who asks, authorises,
/// resolves the targets, records everything, and fans out one signed
/// `CommandDispatch` per host. It follows the results on
/// `commands.result.>` (a host may only speak for commands sent to it),
/// expires and times out what goes quiet, answers `commands.get` and
/// `commands.list`, and moves old audit rows to the archive.
public final class CommandRouter: Service, Sendable {
  public struct Settings: Sendable {
    public var keyID = "router"
    public var defaultTimeout: Duration = .seconds(60)
    public var defaultDeadline: Duration = .seconds(300)
    /// How long past its timeout a running command may stay silent.
    public var grace: Duration = .seconds(30)
    /// How far a request's submission time may be from now.
    public var maxSkew: Duration = .seconds(600)
    public var auditRetention: Duration = .seconds(30 * 86_400)
    public var sweepInterval: Duration = .seconds(1)
    /// How long a recorded target may stay undispatched (its publish
    /// failed) before the running router sends it again.
    public var redispatchAfter: Duration = .seconds(5)
    public init() {}
  }

  private let settings: Settings
  /// The raw 32-byte seed (swift-crypto's key type is not Sendable).
  private let signingSeed: Data
  private let bus: BusService
  private let database: PostgresClient
  private let logger: Logger
  private let forged = Counter(label: "router_forged_results_total")
  private let fetchFailures = Counter(label: "router_fetch_failures_total")
  private let dispatched = Counter(label: "router_dispatches_total")

  public init(
    settings: Settings, signingKey: Curve25519.Signing.PrivateKey, bus: BusService, database: PostgresClient,
    logger: Logger
  ) {
    self.settings = settings
    signingSeed = signingKey.rawRepresentation
    self.bus = bus
    self.database = database
    self.logger = logger
  }

  public func run() async throws {
    guard let connection = try? await bus.connection() else { return }
    let rpc = try [Subjects.commandsSubmit, Subjects.commandsGet, Subjects.commandsList].map {
      try connection.serve($0, service: "command-router", version: MirrorVersion.current)
    }
    await cancelWhenGracefulShutdown {
      await self.redispatchRecorded(connection)
      await withTaskGroup(of: Void.self) { group in
        for subscription in rpc {
          group.addTask { for await m in subscription { await self.answer(m, connection: connection) } }
        }
        group.addTask { await self.pendingLoop(connection) }
        group.addTask { await self.resultsLoop(connection) }
        group.addTask { await self.housekeeping() }
      }
    }
  }

  // MARK: Submitting

  /// What became of a request.
  enum Outcome {
    case dispatched([(host: String, via: String)])
    case refused(Refusal)
    /// Its id was recorded before: nothing runs again.
    case duplicate
    /// PostgreSQL could not be asked; nothing was recorded.
    case unavailable(String)
  }

  /// Handles one request end to end; the reply says what became of it.
  public func submit(_ request: CommandRequest, connection: BusConnection, fallbackID: String? = nil) async
    -> SubmitCommandResponse
  {
    let (r, outcome) = await carryOut(request, connection: connection, fallbackID: fallbackID)
    switch outcome {
    case .dispatched(let targets):
      return SubmitCommandResponse(commandId: r.id, state: .dispatched, hosts: targets.map(\.host))
    case .refused(let refusal):
      return SubmitCommandResponse(commandId: r.id, state: refusal.state, reason: refusal.description)
    case .duplicate:
      let id = r.id
      let record = try? await database.withConnection { try CommandStore.record(id, on: $0) }
      return SubmitCommandResponse(
        commandId: r.id, state: record?.state ?? .unspecified, hosts: record?.hosts.map(\.host) ?? [],
        reason: "duplicate: command \(r.id) was submitted before")
    case .unavailable(let error):
      return SubmitCommandResponse(commandId: r.id, state: .unspecified, reason: "unavailable: \(error)")
    }
  }

  /// Records the request (with the router's defaults filled in, returned),
  /// then dispatches it or says why not.
  func carryOut(_ request: CommandRequest, connection: BusConnection, fallbackID: String?) async -> (
    CommandRequest, Outcome
  ) {
    let signed = request
    var r = request
    if r.id.isEmpty { r.id = fallbackID ?? UUID().uuidString.lowercased() }
    let now = Date().unixMilliseconds
    if r.timeoutMs == 0 { r.timeoutMs = UInt32(clamping: settings.defaultTimeout.wholeMilliseconds) }
    if r.deadlineUnixMs == 0 { r.deadlineUnixMs = now + settings.defaultDeadline.wholeMilliseconds }
    let request = r
    let maxSkewMs = settings.maxSkew.wholeMilliseconds
    let outcome: Outcome
    do {
      outcome = try await database.withConnection { conn in
        try conn.transaction { conn -> Outcome in
          if try CommandStore.exists(request.id, on: conn) { return .duplicate }
          do {
            let plan = try Self.plan(request, signed: signed, nowMs: now, maxSkewMs: maxSkewMs, on: conn)
            try CommandStore.insert(request, state: .pending, reason: "", targets: plan, on: conn)
            return .dispatched(plan)
          } catch let refusal as Refusal {
            try CommandStore.insert(request, state: refusal.state, reason: refusal.description, targets: [], on: conn)
            return .refused(refusal)
          }
        }
      }
    } catch {
      logger.warning("cannot record a command", metadata: ["command_id": "\(request.id)", "error": "\(error)"])
      return (request, .unavailable("\(error)"))
    }
    switch outcome {
    case .refused(let refusal):
      Counter(label: "router_refused_total", dimensions: [("code", refusal.code)]).increment()
      logger.warning(
        "command refused",
        metadata: ["command_id": "\(request.id)", "requester": "\(request.requester)", "reason": "\(refusal)"])
    case .dispatched(let targets):
      await dispatch(request, to: targets, connection: connection)
      logger.info(
        "command dispatched",
        metadata: [
          "command_id": "\(request.id)", "requester": "\(request.operatorKeyId)", "hosts": "\(targets.map(\.host))",
        ])
    case .duplicate, .unavailable:
      break
    }
    return (request, outcome)
  }

  /// Who, what, where: the checks before anything is recorded as pending.
  /// `signed` is the request as received (the signature covers that), `r`
  /// the same with the router's defaults filled in.
  static func plan(
    _ r: CommandRequest, signed: CommandRequest, nowMs: Int64, maxSkewMs: Int64, on conn: PGConnection
  ) throws -> [(host: String, via: String)] {
    let (_, roles) = try Identity.verify(signed, on: conn)
    if r.submittedAtUnixMs != 0, abs(nowMs - r.submittedAtUnixMs) > maxSkewMs {
      throw Refusal(.rejected, "stale", "submitted \((nowMs - r.submittedAtUnixMs) / 1000) s from now")
    }
    guard r.deadlineUnixMs > nowMs else { throw Refusal(.expired, "expired", "the deadline has passed") }
    guard let action = r.action, action.builtin != .none || !action.argv.isEmpty else {
      throw Refusal(.rejected, "invalid_argument", "the request names no action")
    }
    let (hosts, unknown) = try CommandStore.resolve(r.target ?? CommandTarget(), on: conn)
    guard unknown.isEmpty else {
      throw Refusal(.rejected, "unknown_host", "not in the registry: \(unknown.joined(separator: ", "))")
    }
    guard !hosts.isEmpty else { throw Refusal(.rejected, "no_targets", "the target matches no host") }
    if action.builtin == .shell || action.builtin == .forward {
      guard hosts.count == 1, r.target?.kind == .hosts else {
        throw Refusal(.rejected, "invalid_argument", "a session is with one host, named")
      }
      guard action.sessionTokenSha256.count == 32 else {
        throw Refusal(.rejected, "invalid_argument", "a session needs the SHA-256 of its token")
      }
    }
    try Authorizer.authorize(roles: roles, action: action, hosts: hosts.map(\.name), on: conn)
    guard action.builtin == .wakeOnLan else { return hosts.map { ($0.name, $0.name) } }
    // Wake-on-LAN goes through an awake reflector, on the same network if
    // there is one.
    let awake = try CommandStore.resolve(CommandTarget(kind: .all), on: conn).hosts.filter(\.online)
    return try hosts.map { target in
      guard !target.macs.isEmpty || !action.mac.isEmpty else {
        throw Refusal(.rejected, "no_mac", "\(target.name) has no known MAC address")
      }
      let candidates = awake.filter { $0.name != target.name }
      let sameNetwork = candidates.first { c in
        c.addresses.contains { a in target.addresses.contains { Self.sameSlash24(a, $0) } }
      }
      guard let relay = sameNetwork ?? candidates.first else {
        throw Refusal(.rejected, "no_relay", "no awake host to send the Wake-on-LAN packet for \(target.name)")
      }
      return (target.name, relay.name)
    }
  }

  static func sameSlash24(_ a: String, _ b: String) -> Bool {
    let pa = a.split(separator: ".")
    let pb = b.split(separator: ".")
    return pa.count == 4 && pb.count == 4 && pa.prefix(3) == pb.prefix(3)
  }

  /// Signs and publishes the dispatch of each target, up to 32 waiting
  /// for their acks at once, then marks those sent dispatched in one
  /// statement (a result may come first: it wins, the mark only moves
  /// pending targets). The message id makes a repeat (after a restart) a
  /// no-op.
  func dispatch(_ r: CommandRequest, to targets: [(host: String, via: String)], connection: BusConnection) async {
    let sent = await withTaskGroup(of: String?.self) { group -> [String] in
      var sent: [String] = []
      var inFlight = 0
      for t in targets {
        if inFlight >= 32, let done = await group.next() {
          if let done { sent.append(done) }
          inFlight -= 1
        }
        group.addTask { await self.publishDispatch(r, host: t.host, via: t.via, connection: connection) ? t.host : nil }
        inFlight += 1
      }
      for await done in group { if let done { sent.append(done) } }
      return sent
    }
    guard !sent.isEmpty else { return }
    let id = r.id
    do {
      try await database.withConnection { try CommandStore.markDispatched(id, hosts: sent, on: $0) }
    } catch {
      // The dispatches went out; the sweep and the hosts' results settle the rows.
      logger.warning("dispatches not marked", metadata: ["command_id": "\(r.id)", "error": "\(error)"])
    }
  }

  /// One host's signed dispatch, published and acknowledged by the stream.
  private func publishDispatch(_ r: CommandRequest, host: String, via: String, connection: BusConnection) async -> Bool
  {
    var action = r.action ?? CommandAction()
    if action.builtin == .wakeOnLan, action.mac.isEmpty {
      let macs = try? await database.withConnection { conn in
        try CommandStore.resolve(CommandTarget(kind: .hosts, hosts: [host]), on: conn).hosts.first?.macs ?? []
      }
      action.mac = macs?.first ?? ""
    }
    let body = CommandDispatchBody(
      commandId: r.id, host: via, action: action, timeoutMs: r.timeoutMs, deadlineUnixMs: r.deadlineUnixMs,
      issuedAtUnixMs: Date().unixMilliseconds,
      requester: r.requester.isEmpty
        ? r.operatorKeyId : r.requester, outputLimitBytes: r.outputLimitBytes)
    let bytes = body.encode()
    do {
      let key = try Curve25519.Signing.PrivateKey(rawRepresentation: signingSeed)
      let dispatch = CommandDispatch(
        body: bytes, signature: [UInt8](try key.signature(for: bytes)), keyId: settings.keyID)
      _ = try await connection.jetStreamPublish(Subjects.commandsDispatch(via), dispatch, msgID: "\(r.id):\(host)")
      dispatched.increment()
      return true
    } catch {
      // Stays pending: sent again by the housekeeping (or at the next
      // start), unless its deadline passes first.
      logger.warning("cannot dispatch", metadata: ["command_id": "\(r.id)", "host": "\(host)", "error": "\(error)"])
      return false
    }
  }

  /// After a restart: targets recorded but not yet dispatched go out now.
  func redispatchRecorded(_ connection: BusConnection) async {
    var waiting: [(request: CommandRequest, host: String, via: String)] = []
    while !Task.isCancelled {
      do {
        waiting = try await database.withConnection { try CommandStore.undispatched(on: $0) }
        break
      } catch {
        try? await Task.sleep(for: .seconds(1))
      }
    }
    for w in waiting { await dispatch(w.request, to: [(w.host, w.via)], connection: connection) }
    if !waiting.isEmpty {
      logger.info("dispatched what a previous run had recorded", metadata: ["count": "\(waiting.count)"])
    }
  }

  /// While running: targets whose dispatch could not be published (NATS
  /// away, a stream electing a new leader) and that are still before their
  /// deadline go out again. The message id makes a repeat of one that did
  /// go out (its ack or its mark lost) a no-op.
  func redispatchStalled(_ connection: BusConnection) async throws {
    let after = settings.redispatchAfter
    let waiting = try await database.withConnection { try CommandStore.undispatched(olderThan: after, on: $0) }
    for w in waiting { await dispatch(w.request, to: [(w.host, w.via)], connection: connection) }
    if !waiting.isEmpty {
      logger.info("dispatched again what had not gone out", metadata: ["count": "\(waiting.count)"])
    }
  }

  // MARK: Consumers

  /// Binds a durable consumer on COMMANDS and hands every fetched message
  /// to `handle`, until cancelled.
  private func consume(
    _ connection: BusConnection, durable: String, filter: String, batch: Int, ackWait: Duration,
    _ handle: ([JetStreamMessage]) async -> Void
  ) async {
    let config = ConsumerConfig(durable: durable, filterSubject: filter, ackWait: ackWait)
    guard let consumer = await connection.pullConsumerRetrying(stream: Streams.commands.name, config, logger: logger)
    else { return }
    while !Task.isCancelled {
      // A long poll: answered as soon as messages arrive; shutdown closes
      // the subscription, which ends it.
      let messages: [JetStreamMessage]
      do {
        messages = try await withTaskCancellationHandler {
          try await consumer.fetch(batch: batch, timeout: .seconds(30))
        } onCancel: {
          consumer.close()
        }
      } catch {
        if Task.isCancelled { break }
        fetchFailures.increment()
        logger.warning("cannot fetch", metadata: ["consumer": "\(durable)", "error": "\(error)"])
        try? await Task.sleep(for: .milliseconds(500))
        continue
      }
      if !messages.isEmpty { await handle(messages) }
    }
  }

  private func pendingLoop(_ connection: BusConnection) async {
    await consume(
      connection, durable: "ROUTER_PENDING", filter: Subjects.commandsPending, batch: 16, ackWait: .seconds(60)
    ) { batch in
      for m in batch { await self.takePending(m, connection: connection) }
    }
  }

  private func takePending(_ m: JetStreamMessage, connection: BusConnection) async {
    guard let request = try? CommandRequest(decoding: m.payload) else {
      Counter(label: "router_refused_total", dimensions: [("code", "malformed")]).increment()
      logger.warning("not a CommandRequest on commands.pending", metadata: ["bytes": "\(m.payload.count)"])
      try? m.term()
      return
    }
    // Recorded (whatever its fate) or a repeat: done with. Not recorded: again later.
    if case .unavailable = await carryOut(request, connection: connection, fallbackID: "pending-\(m.streamSequence)")
      .1
    {
      try? m.nak(delay: .seconds(2))
    } else {
      try? m.ack()
    }
  }

  private func resultsLoop(_ connection: BusConnection) async {
    await consume(
      connection, durable: "ROUTER_RESULTS", filter: "commands.result.>", batch: 200, ackWait: .seconds(30)
    ) { batch in
      await announce(await record(batch), connection)
    }
  }

  /// Publishes the record of each command that is now final on
  /// `commands.state.<id>`, so a client waiting on it (mirrorctl exec, the
  /// console) learns at once, without polling `commands.get`.
  func announce(_ ids: [String], _ connection: BusConnection) async {
    for id in ids where Subjects.isValidHostToken(id) {
      do {
        guard let r = try await database.withConnection({ try CommandStore.record(id, on: $0) }), r.state.isFinal
        else { continue }
        try connection.publish(Subjects.commandsState(id), r)
      } catch {
        Counter(label: "router_announce_failures_total").increment()
        logger.warning("command state not announced", metadata: ["command_id": "\(id)", "error": "\(error)"])
      }
    }
  }

  /// Messages from `commands.result.<host>`, stored in one go: each if
  /// that host was sent the command (anything else is a forgery attempt),
  /// then each command touched is brought up to date once. Returns the
  /// commands that got a final result.
  func record(_ batch: [JetStreamMessage]) async -> [String] {
    enum Word: Sendable {
      case output(CommandOutput)
      case result(CommandResult)
    }
    var words: [(m: JetStreamMessage, via: String, word: Word)] = []
    for m in batch {
      let via = String(m.subject.split(separator: ".").last ?? "")
      let word: Word? =
        m.mirrorType == CommandOutput.fullName
        ? (try? CommandOutput(decoding: m.payload)).map { .output($0) }
        : (try? CommandResult(decoding: m.payload)).map { .result($0) }
      let claimedHost: String? =
        switch word {
        case .output(let o): o.host
        case .result(let r): r.host
        case nil: nil
        }
      guard let word, claimedHost == via else {
        forgery(m, via: via, why: word == nil ? "undecodable payload" : "payload host differs from the subject")
        continue
      }
      words.append((m, via, word))
    }
    guard !words.isEmpty else { return [] }
    let list = words
    do {
      let accepted = try await database.withConnection { conn -> [Bool] in
        try conn.transaction { conn -> [Bool] in
          var touched: [String] = []
          let accepted = try list.map { w -> Bool in
            switch w.word {
            case .output(let o): return try CommandStore.recordOutput(o, via: w.via, on: conn)
            case .result(let r):
              guard try CommandStore.recordResult(r, via: w.via, refresh: false, on: conn) else { return false }
              if !touched.contains(r.commandId) { touched.append(r.commandId) }
              return true
            }
          }
          for id in touched { try CommandStore.refresh(id, on: conn) }
          return accepted
        }
      }
      var finals: [String] = []
      for (w, ok) in zip(list, accepted) {
        guard ok else {
          forgery(w.m, via: w.via, why: "this host was never sent that command")
          continue
        }
        try? w.m.ack()
        if case .result(let r) = w.word, r.state.isFinal, !finals.contains(r.commandId) { finals.append(r.commandId) }
      }
      return finals
    } catch {
      logger.warning(
        "cannot store command results; will retry", metadata: ["count": "\(list.count)", "error": "\(error)"])
      for w in list { try? w.m.nak(delay: .seconds(1)) }
      return []
    }
  }

  private func forgery(_ m: JetStreamMessage, via: String, why: String) {
    forged.increment()
    logger.warning("forged or stray command result dropped", metadata: ["subject": "\(m.subject)", "why": "\(why)"])
    try? m.term()
  }

  private func housekeeping() async {
    var lastArchive = ContinuousClock.now - .seconds(3600)
    var lastRedispatch = ContinuousClock.now
    let grace = settings.grace
    let retentionMs = settings.auditRetention.wholeMilliseconds
    while !Task.isCancelled {
      do {
        let changed = try await database.withConnection { try CommandStore.sweep(grace: grace, on: $0) }
        if !changed.isEmpty {
          logger.info("commands expired or timed out", metadata: ["commands": "\(changed)"])
          if let connection = try? await bus.connection() { await announce(changed, connection) }
        }
        if ContinuousClock.now - lastRedispatch >= settings.redispatchAfter,
          let connection = try? await bus.connection()
        {
          lastRedispatch = .now
          try await redispatchStalled(connection)
        }
        if ContinuousClock.now - lastArchive >= .seconds(3600) {
          let cutoff = Date().unixMilliseconds - retentionMs
          let moved = try await database.withConnection { try CommandStore.archive(before: cutoff, on: $0) }
          if moved > 0 { logger.info("audit rows archived", metadata: ["commands": "\(moved)"]) }
          lastArchive = .now
        }
      } catch {
        logger.warning("command housekeeping failed; will retry", metadata: ["error": "\(error)"])
      }
      try? await Task.sleep(for: settings.sweepInterval)
    }
  }

  // MARK: Request/reply

  func answer(_ m: BusMessage, connection: BusConnection) async {
    do {
      switch m.subject {
      case Subjects.commandsSubmit:
        let request = try CommandRequest(decoding: m.payload)
        try connection.respond(to: m, with: await submit(request, connection: connection))
      case Subjects.commandsGet:
        let q = try GetCommandRequest(decoding: m.payload)
        let found = try await database.withConnection { conn -> CommandRecordWithOutput? in
          guard let record = try CommandStore.record(q.id, on: conn) else { return nil }
          return CommandRecordWithOutput(
            record: record, output: q.withOutput ? try CommandStore.output(q.id, on: conn) : [])
        }
        guard let found else {
          try connection.respond(to: m, with: RpcError(code: "not_found", message: "no command \(q.id)"))
          return
        }
        try connection.respond(to: m, with: found)
      default:
        let q = try ListCommandsRequest(decoding: m.payload)
        let records = try await database.withConnection { try CommandStore.list(q, on: $0) }
        try connection.respond(to: m, with: ListCommandsResponse(commands: records))
      }
    } catch {
      try? connection.respond(to: m, with: RpcError(answering: error))
    }
  }
}
