import Foundation
public import Logging
import Metrics
import MirrorBus
public import MirrorService
public import MirrorStore
import MirrorWire
public import ServiceLifecycle

/// The durable consumer of `metrics.raw.>` (shared by every Ingest
/// replica): validates each message, stores a fetched batch in one
/// transaction, acks only after the commit, publishes the normalized batch,
/// and rejects bad input to `metrics.rejected` with its reason (terminated,
/// never redelivered). PostgreSQL away: nothing is acked, fetching pauses,
/// retries back off.
public final class IngestPipeline: Service, Sendable {
  public struct Settings: Sendable {
    public var durable = "INGEST"
    public var fetchBatch = 2000
    public var validation = BatchValidator.Settings()
    public init() {}
  }

  private let settings: Settings
  private let bus: BusService
  private let database: PostgresClient
  private let registry: HostRegistry
  private let validator: BatchValidator
  private let deriver = DeriverBox()
  private let logger: Logger
  private let stored = Counter(label: "ingest_batches_stored_total")
  private let duplicates = Counter(label: "ingest_batches_duplicate_total")
  private let dbFailures = Counter(label: "ingest_database_failures_total")

  public init(settings: Settings, bus: BusService, database: PostgresClient, registry: HostRegistry, logger: Logger) {
    self.settings = settings
    self.bus = bus
    self.database = database
    self.registry = registry
    validator = BatchValidator(settings: settings.validation)
    self.logger = logger
  }

  public func run() async throws {
    guard let connection = try? await bus.connection() else { return }
    let config = ConsumerConfig(
      durable: settings.durable, filterSubject: "metrics.raw.>", ackWait: .seconds(30), maxDeliver: -1,
      maxAckPending: 50_000)
    guard let consumer = await connection.pullConsumerRetrying(stream: Streams.metrics.name, config, logger: logger)
    else { return }
    await cancelWhenGracefulShutdown {
      // Two stages: the next fetch is received, decoded, validated, its
      // rates derived and its rows encoded while the current one is written.
      var backoff = Duration.milliseconds(200)
      var next = Task { await self.fetchAndPrepare(consumer, connection: connection) }
      while !Task.isCancelled {
        let fetched = await next.value
        next = Task { await self.fetchAndPrepare(consumer, connection: connection) }
        guard let current = fetched else {
          // The fetch itself failed (NATS away): wait before the next one.
          try? await Task.sleep(for: .milliseconds(500))
          continue
        }
        guard !current.accepted.isEmpty else { continue }
        if await self.store(current, connection: connection) {
          backoff = .milliseconds(200)
          continue
        }
        // The database failed: the fetch prepared meanwhile derived its
        // rates after this one, so it goes back too, and the rates roll back
        // to before this one.
        if let ahead = await next.value {
          for (m, _) in ahead.accepted { try? m.nak(delay: .seconds(1)) }
        }
        self.deriver.restore(current.rates)
        try? await Task.sleep(for: backoff)
        backoff = min(backoff * 2, .seconds(15))
        next = Task { await self.fetchAndPrepare(consumer, connection: connection) }
      }
      next.cancel()
    }
  }

  /// A message that passed validation, with its decoded batch.
  typealias Accepted = (message: JetStreamMessage, batch: MetricsBatch)

  /// A fetch ready to be written.
  struct Prepared: Sendable {
    var accepted: [Accepted]
    /// The rate state before this fetch (restored when its write fails).
    var rates: RateDeriver.State
    var rows: MetricsWriter.Prepared
    /// The `metrics.normalized` payload of each accepted message.
    var normalized: [[UInt8]]
  }

  /// Fetches up to `fetchBatch` messages, validates them (rejects are dealt
  /// with here), derives rates and encodes rows. Nil when the fetch failed.
  func fetchAndPrepare(_ consumer: PullConsumer, connection: BusConnection) async -> Prepared? {
    let messages: [JetStreamMessage]
    do {
      messages = try await consumer.fetch(batch: settings.fetchBatch, timeout: .seconds(1))
    } catch {
      Counter(label: "ingest_fetch_failures_total").increment()
      logger.warning("cannot fetch batches", metadata: ["error": "\(error)"])
      return nil
    }
    return prepare(messages, connection: connection)
  }

  func prepare(_ messages: [JetStreamMessage], connection: BusConnection) -> Prepared {
    let now = Date().unixMilliseconds
    var accepted: [Accepted] = []
    accepted.reserveCapacity(messages.count)
    for m in messages {
      switch validator.validate(subject: m.subject, payload: m.payload, isKnown: registry.isKnown, nowMs: now) {
      case .success(let batch): accepted.append((m, batch))
      case .failure(let rejected): reject(m, rejected, connection: connection)
      }
    }
    let snapshot = deriver.snapshot()
    var normalized: [NormalizedBatch] = []
    var payloads: [[UInt8]] = []
    normalized.reserveCapacity(accepted.count)
    payloads.reserveCapacity(accepted.count)
    for i in accepted.indices {
      var n = deriver.rates(accepted[i].batch)
      // The batch goes out as received: its bytes are spliced in, not encoded again.
      payloads.append(WireSplice.appendingMessageField(1, accepted[i].message.payload, to: n.encode()))
      n.batch = accepted[i].batch
      normalized.append(n)
    }
    return Prepared(
      accepted: accepted, rates: snapshot, rows: MetricsWriter.Prepared(normalized, encoded: payloads),
      normalized: payloads)
  }

  /// Stores a prepared fetch in one transaction, acks it after the commit
  /// and publishes the normalized batches; false when the database failed
  /// (nothing acked, all nak'ed with a delay).
  func store(_ p: Prepared, connection: BusConnection) async -> Bool {
    let autoRegister = settings.validation.autoRegister
    let rows = p.rows
    do {
      let new = try await database.withConnection { conn in
        try MetricsWriter.write(rows, autoRegister: autoRegister, on: conn)
      }
      stored.increment(by: new.count)
      duplicates.increment(by: p.accepted.count - new.count)
      // Acks and the normalized batches go out while the next write runs
      // (an ack lost to a crash here only means a redelivery, stored once).
      // Read in place (a copied message or batch retains every field).
      let logger = self.logger
      Task {
        // Failures are counted and logged once per fetch (an unacked batch
        // is redelivered and stored once; a normalized batch not published
        // is missing for the twin and the notifier until the next one).
        var ackFailures = 0
        var publishFailures = 0
        var lastError = ""
        for i in p.accepted.indices {
          do { try p.accepted[i].message.ack() } catch {
            ackFailures += 1
            lastError = "\(error)"
          }
        }
        // No message id: a batch's normalized form is published once, by
        // the replica whose transaction stored its key, so the stream has
        // nothing to deduplicate (and keeps no id map for its window).
        let headers = BusHeader.describing(NormalizedBatch.self)
        let allNew = new.count == p.accepted.count
        for i in p.accepted.indices {
          let host = p.accepted[i].batch.host
          guard allNew || new.contains(MetricsWriter.Key(p.accepted[i].batch)) else { continue }
          do {
            try connection.publish(Subjects.metricsNormalized(host), payload: p.normalized[i], headers: headers)
          } catch {
            publishFailures += 1
            lastError = "\(error)"
          }
        }
        if ackFailures + publishFailures > 0 {
          Counter(label: "ingest_ack_failures_total").increment(by: ackFailures)
          Counter(label: "ingest_normalized_publish_failures_total").increment(by: publishFailures)
          logger.warning(
            "acks or normalized batches not sent",
            metadata: ["acks": "\(ackFailures)", "publishes": "\(publishFailures)", "error": "\(lastError)"])
        }
      }
      return true
    } catch {
      dbFailures.increment()
      logger.warning("cannot store; will retry", metadata: ["error": "\(error)", "messages": "\(p.accepted.count)"])
      for (m, _) in p.accepted { try? m.nak(delay: .seconds(1)) }
      return false
    }
  }

  private func reject(_ m: JetStreamMessage, _ r: Rejected, connection: BusConnection) {
    Counter(label: "ingest_rejected_total", dimensions: [("reason", r.reason.rawValue)]).increment()
    logger.warning(
      "batch rejected", metadata: ["reason": "\(r.reason)", "subject": "\(m.subject)", "detail": "\(r.message)"])
    let error = RpcError(
      code: r.reason.rawValue, message: r.message,
      details: [Label(key: "subject", value: m.subject), Label(key: "stream_sequence", value: "\(m.streamSequence)")])
    try? connection.publish(Subjects.metricsRejected, error, headers: ["Mirror-Reject-Reason": r.reason.rawValue])
    try? m.term()
  }
}

/// The rate deriver of the pipeline. Only the prepare stage touches it,
/// and its runs never overlap: each starts after the previous one was
/// awaited (a rollback happens after the stage in flight was awaited too).
final class DeriverBox: @unchecked Sendable {
  private var deriver = RateDeriver()
  func rates(_ b: MetricsBatch) -> NormalizedBatch { deriver.rates(b) }
  func snapshot() -> RateDeriver.State { deriver.state }
  func restore(_ s: RateDeriver.State) { deriver.state = s }
}
