import Foundation
public import Logging
import Metrics
import MirrorBus
public import MirrorService
public import MirrorStore
import MirrorWire
public import ServiceLifecycle

/// The Notifier: evaluates the rules on every batch from
/// `metrics.normalized.>` and every event from `events.>`, keeps the alerts
/// in PostgreSQL, publishes their state changes on
/// `alerts.<severity>.<host>`, answers `alerts.list`, `alerts.ack` and
/// `alerts.silence`, and (through the Dispatcher) delivers notifications.
///
/// One task owns the engine: consumers and requests hand it their work and
/// wait, so the state changes are stored in the order they were decided,
/// and a message is acknowledged only after what it caused is committed.
public final class NotifierService: Service, Sendable {
  public struct Settings: Sendable {
    public var tick: Duration = .seconds(1)
    public var hostsRefresh: Duration = .seconds(30)
    public var consumerPrefix = "NOTIFIER"
    public init() {}
  }

  enum Input: Sendable {
    case metrics([JetStreamMessage], Completion)
    case events([JetStreamMessage], Completion)
    case tick
    case request(BusMessage)
  }

  let rules: NotifierRules
  let settings: Settings
  let bus: BusService
  let database: PostgresClient
  let dispatcher: Dispatcher
  let logger: Logger
  let inputs: AsyncStream<Input>
  let inputContinuation: AsyncStream<Input>.Continuation

  public init(
    rules: NotifierRules, settings: Settings = Settings(), bus: BusService, database: PostgresClient,
    sender: any HTTPSender = URLSessionSender(), logger: Logger
  ) {
    self.rules = rules
    self.settings = settings
    self.bus = bus
    self.database = database
    self.logger = logger
    dispatcher = Dispatcher(rules: rules, database: database, sender: sender, logger: logger)
    (inputs, inputContinuation) = AsyncStream.makeStream(of: Input.self)
  }

  public func run() async throws {
    guard let connection = try? await bus.connection() else { return }
    let rpc = try [Subjects.alertsList, Subjects.alertsAck, Subjects.alertsSilence, Subjects.alertsUnsilence].map {
      try connection.serve($0, service: "notifier", version: MirrorVersion.current)
    }
    await cancelWhenGracefulShutdown {
      let engine = await self.startEngine()
      await withTaskGroup(of: Void.self) { group in
        group.addTask { await self.loop(engine: engine, connection: connection) }
        group.addTask { await self.dispatcher.run() }
        group.addTask {
          await self.consume(
            connection, stream: Streams.metricsNormalized.name, durable: self.settings.consumerPrefix,
            filter: "metrics.normalized.>"
          ) { messages, c in .metrics(messages, c) }
        }
        group.addTask {
          await self.consume(
            connection, stream: Streams.events.name, durable: "\(self.settings.consumerPrefix)_EVENTS",
            filter: "events.>"
          ) { messages, c in .events(messages, c) }
        }
        group.addTask {
          while !Task.isCancelled {
            try? await Task.sleep(for: self.settings.tick)
            self.inputContinuation.yield(.tick)
          }
        }
        for subscription in rpc {
          group.addTask { for await m in subscription { self.inputContinuation.yield(.request(m)) } }
        }
        await group.next()
        group.cancelAll()
      }
    }
    inputContinuation.finish()
  }

  /// The engine with the alerts that were open, the hosts and silences;
  /// waits for PostgreSQL (nothing can be decided without what was open).
  func startEngine() async -> Handover<AlertEngine> {
    let engine = AlertEngine(rules: rules)
    while !Task.isCancelled {
      do {
        let now = Date().unixMilliseconds
        let (open, hosts, silences) = try await database.withConnection { conn in
          (
            try AlertStore.loadOpen(on: conn), try AlertStore.hosts(on: conn),
            try AlertStore.activeSilences(nowMs: now, on: conn)
          )
        }
        engine.restore(open)
        engine.setHosts(hosts.meta, lastSeen: hosts.lastSeen)
        engine.setSilences(silences)
        logger.info(
          "notifier ready",
          metadata: [
            "rules": "\(rules.rules.count)", "channels": "\(rules.channels.count)", "open_alerts": "\(open.count)",
          ])
        break
      } catch {
        logger.warning("cannot load alert state; will retry", metadata: ["error": "\(error)"])
        try? await Task.sleep(for: .seconds(1))
      }
    }
    return Handover(engine)
  }

  /// Fetches from a durable consumer and hands each batch to the loop,
  /// waiting until it has been dealt with.
  func consume(
    _ connection: BusConnection, stream: String, durable: String, filter: String,
    _ wrap: @escaping @Sendable ([JetStreamMessage], Completion) -> Input
  ) async {
    // A first start follows what happens from now on: alerting on an hour
    // of history would only page for the past. Later starts resume.
    let config = ConsumerConfig(durable: durable, filterSubject: filter, ackWait: .seconds(30), deliverPolicy: .new)
    await connection.feed(stream: stream, config, logger: logger) { messages, done in
      inputContinuation.yield(wrap(messages, done))
    }
  }

  // MARK: The loop

  func loop(engine box: Handover<AlertEngine>, connection: BusConnection) async {
    let engine = box.value
    var unsaved: [AlertAction] = []
    var lastRefresh = ContinuousClock.now
    for await input in inputs {
      switch input {
      case .metrics(let messages, let done):
        let now = Date().unixMilliseconds
        for m in messages {
          do {
            // A redelivered batch does not make a quiet host look alive now.
            engine.observe(try NormalizedBatch(decoding: m.payload), nowMs: m.arrivedMs(notAfter: now))
          } catch {
            badInput(m, "malformed", "not a NormalizedBatch: \(error)")
          }
        }
        Counter(label: "notifier_batches_total").increment(by: messages.count)
        unsaved += engine.drainActions()
        await settle(messages, unsaved: &unsaved, connection: connection)
        done.finish()
      case .events(let messages, let done):
        let now = Date().unixMilliseconds
        for m in messages {
          guard let e = try? Event(decoding: m.payload) else {
            badInput(m, "malformed", "not an Event")
            continue
          }
          guard m.subject == Subjects.events(e.host) else {
            badInput(m, "host_mismatch", "the event's host \(e.host) is not the subject's")
            continue
          }
          engine.observe(e, nowMs: m.arrivedMs(notAfter: now))
        }
        unsaved += engine.drainActions()
        await settle(messages, unsaved: &unsaved, connection: connection)
        done.finish()
      case .tick:
        if ContinuousClock.now - lastRefresh >= settings.hostsRefresh {
          lastRefresh = .now
          await refresh(engine)
        }
        engine.tick(nowMs: Date().unixMilliseconds)
        unsaved += engine.drainActions()
        await settle([], unsaved: &unsaved, connection: connection)
        Gauge(label: "notifier_alerts_open").record(engine.openCount)
      case .request(let m):
        await answer(m, engine: engine, connection: connection)
        unsaved += engine.drainActions()
        await settle([], unsaved: &unsaved, connection: connection)
      }
    }
  }

  /// Stores the decided actions; on success acks the messages and
  /// publishes the state changes, otherwise keeps the actions for the next
  /// try and lets the messages come again.
  func settle(_ messages: [JetStreamMessage], unsaved: inout [AlertAction], connection: BusConnection) async {
    guard !unsaved.isEmpty else {
      for m in messages { try? m.ack() }
      return
    }
    let actions = unsaved
    do {
      let changed = try await database.transaction { try AlertStore.apply(actions, on: $0) }
      unsaved.removeAll()
      for m in messages { try? m.ack() }
      if actions.contains(where: { if case .notify = $0 { true } else { false } }) { dispatcher.kick() }
      for a in changed {
        Counter(label: "notifier_alert_transitions_total", dimensions: [("state", stateName(a.state))]).increment()
        logger.info(
          "alert \(stateName(a.state))",
          metadata: ["alert_id": "\(a.id)", "rule": "\(a.rule)", "host": "\(a.host)", "summary": "\(a.summary)"])
        _ = try? await connection.jetStreamPublish(
          Subjects.alerts(severityName(a.severity), a.host), a, msgID: "\(a.id):\(stateName(a.state))")
      }
    } catch {
      Counter(label: "notifier_store_errors_total").increment()
      logger.warning(
        "cannot store alert state; will retry", metadata: ["error": "\(error)", "actions": "\(actions.count)"])
      for m in messages { try? m.nak(delay: .seconds(2)) }
    }
  }

  func badInput(_ m: JetStreamMessage, _ reason: String, _ why: String) {
    Counter(label: "notifier_bad_input_total", dimensions: [("reason", reason)]).increment()
    logger.warning("bad input dropped", metadata: ["subject": "\(m.subject)", "reason": "\(why)"])
    try? m.term()
  }

  func refresh(_ engine: AlertEngine) async {
    let now = Date().unixMilliseconds
    do {
      let (hosts, silences) = try await database.withConnection { conn in
        (try AlertStore.hosts(on: conn), try AlertStore.activeSilences(nowMs: now, on: conn))
      }
      engine.setHosts(hosts.meta, lastSeen: hosts.lastSeen)
      engine.setSilences(silences)
    } catch {
      logger.warning("cannot refresh hosts and silences", metadata: ["error": "\(error)"])
    }
  }

  // MARK: Requests

  func answer(_ m: BusMessage, engine: AlertEngine, connection: BusConnection) async {
    let now = Date().unixMilliseconds
    do {
      switch m.subject {
      case Subjects.alertsList:
        let q = try ListAlertsRequest(decoding: m.payload)
        let list = try await database.withConnection { try AlertStore.list(q, nowMs: now, on: $0) }
        try connection.respond(to: m, with: list)
      case Subjects.alertsAck:
        let q = try AckAlertRequest(decoding: m.payload)
        guard !q.alertId.isEmpty, !q.by.isEmpty else {
          try connection.respond(
            to: m, with: RpcError(code: "invalid_argument", message: "alert_id and by are required"))
          return
        }
        let (id, by, comment) = (q.alertId, q.by, q.comment)
        guard
          let stored = try await database.withConnection({
            try AlertStore.acknowledge(id, by: by, comment: comment, on: $0)
          })
        else {
          try connection.respond(to: m, with: RpcError(code: "not_found", message: "no open alert \(q.alertId)"))
          return
        }
        let acked = engine.acknowledge(id, by: by, comment: comment, nowMs: now) ?? stored
        logger.info("alert acknowledged", metadata: ["alert_id": "\(id)", "by": "\(by)"])
        try connection.respond(to: m, with: acked)
      case Subjects.alertsUnsilence:
        let q = try EndSilenceRequest(decoding: m.payload)
        guard !q.id.isEmpty, !q.by.isEmpty else {
          try connection.respond(to: m, with: RpcError(code: "invalid_argument", message: "id and by are required"))
          return
        }
        let ended = try await database.withConnection { conn -> (Silence?, [Silence]) in
          let ended = try AlertStore.endSilence(q.id, nowMs: now, on: conn)
          return (ended, try AlertStore.activeSilences(nowMs: now, on: conn))
        }
        engine.setSilences(ended.1)
        guard let silence = ended.0 else {
          try connection.respond(to: m, with: RpcError(code: "not_found", message: "no active silence \(q.id)"))
          return
        }
        logger.info("silence ended", metadata: ["silence_id": "\(q.id)", "by": "\(q.by)"])
        try connection.respond(to: m, with: silence)
      default:
        let q = try SilenceRequest(decoding: m.payload)
        guard q.durationMs > 0, q.durationMs <= 366 * 86_400_000, !q.by.isEmpty else {
          try connection.respond(
            to: m, with: RpcError(code: "invalid_argument", message: "by and a duration up to a year are required"))
          return
        }
        guard !q.alertId.isEmpty || !q.rule.isEmpty || !q.host.isEmpty else {
          try connection.respond(
            to: m, with: RpcError(code: "invalid_argument", message: "name an alert, a rule or a host to silence"))
          return
        }
        let silence = Silence(
          id: UUID().uuidString.lowercased(), alertId: q.alertId, rule: q.rule, host: q.host,
          endsAtUnixMs: now + Int64(q.durationMs), by: q.by, comment: q.comment, createdAtUnixMs: now)
        let active = try await database.withConnection { conn in
          try AlertStore.insertSilence(silence, on: conn)
          return try AlertStore.activeSilences(nowMs: now, on: conn)
        }
        engine.setSilences(active)
        logger.info(
          "silence created",
          metadata: ["silence_id": "\(silence.id)", "by": "\(q.by)", "until_ms": "\(silence.endsAtUnixMs)"])
        try connection.respond(to: m, with: silence)
      }
    } catch {
      if error is WireError {
        Counter(label: "notifier_bad_input_total", dimensions: [("reason", "malformed_request")]).increment()
      }
      try? connection.respond(to: m, with: RpcError(answering: error))
    }
  }
}
