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
    public var fetchBatch = 500
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
      var backoff = Duration.milliseconds(200)
      while !Task.isCancelled {
        let messages: [JetStreamMessage]
        do {
          messages = try await consumer.fetch(batch: self.settings.fetchBatch, timeout: .seconds(1))
        } catch {
          try? await Task.sleep(for: .milliseconds(500))
          continue
        }
        if messages.isEmpty { continue }
        if await self.process(messages, connection: connection) {
          backoff = .milliseconds(200)
        } else {
          try? await Task.sleep(for: backoff)
          backoff = min(backoff * 2, .seconds(15))
        }
      }
    }
  }

  /// One fetched batch; false when the database failed (nothing acked).
  func process(_ messages: [JetStreamMessage], connection: BusConnection) async -> Bool {
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    var accepted: [(JetStreamMessage, MetricsBatch)] = []
    for m in messages {
      switch validator.validate(subject: m.subject, payload: m.payload, isKnown: registry.isKnown, nowMs: now) {
      case .success(let batch): accepted.append((m, batch))
      case .failure(let rejected): reject(m, rejected, connection: connection)
      }
    }
    guard !accepted.isEmpty else { return true }
    let snapshot = deriver.snapshot()
    let normalized = accepted.map { deriver.derive($0.1) }
    let autoRegister = settings.validation.autoRegister
    do {
      let new = try await database.withConnection { conn in
        try MetricsWriter.write(normalized, autoRegister: autoRegister, on: conn)
      }
      for (m, _) in accepted { try? m.ack() }
      stored.increment(by: new.count)
      duplicates.increment(by: accepted.count - new.count)
      for n in normalized {
        guard let b = n.batch, new.contains(.init(host: b.host, bootID: b.bootId, sequence: b.sequence)) else {
          continue
        }
        try? connection.publish(
          Subjects.metricsNormalized(b.host), n, headers: [BusHeader.msgID: "\(b.host):\(b.bootId):\(b.sequence)"])
      }
      return true
    } catch {
      deriver.restore(snapshot)
      dbFailures.increment()
      logger.warning("cannot store; will retry", metadata: ["error": "\(error)", "messages": "\(accepted.count)"])
      for (m, _) in accepted { try? m.nak(delay: .seconds(1)) }
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

/// The rate deriver of the pipeline: used by one fetch loop at a time.
final class DeriverBox: @unchecked Sendable {
  // Only touched from the pipeline's single fetch loop.
  private var deriver = RateDeriver()
  func derive(_ b: MetricsBatch) -> NormalizedBatch { deriver.derive(b) }
  func snapshot() -> RateDeriver { deriver.copy() }
  func restore(_ d: RateDeriver) { deriver = d }
}
