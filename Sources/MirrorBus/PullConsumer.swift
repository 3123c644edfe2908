internal import CNATS
import Dispatch
public import MirrorWire

#if canImport(Glibc)
  internal import Glibc
#endif

/// A message fetched from a durable pull consumer. Payload, headers and
/// JetStream metadata are copied; acknowledging publishes to the message's
/// ack subject, so the value is freely Sendable.
public struct JetStreamMessage: Sendable {
  public var subject: String
  public var headers: [String: String]
  public var payload: [UInt8]
  /// How many times the server has delivered this message (1 = first time).
  public var deliveryCount: UInt64
  public var streamSequence: UInt64
  public var consumerSequence: UInt64
  /// When the server stored it, nanoseconds since the epoch.
  public var timestampNanos: Int64
  let ackSubject: String
  let connection: BusConnection

  public var mirrorType: String? { headers[BusHeader.mirrorType] }

  /// When it arrived, in milliseconds since the epoch: when JetStream
  /// stored it (so a redelivery is as old as the message), never later than
  /// `now`, and `now` when the server gave no time.
  public func arrivedMs(notAfter now: Int64) -> Int64 {
    timestampNanos > 0 ? min(now, timestampNanos / 1_000_000) : now
  }

  public func decode<M: WireMessage>(_: M.Type, limit: Int = WireLimits.defaultMaxMessageBytes) throws(WireError) -> M {
    try M(decoding: payload, limit: limit)
  }

  /// Done: never redeliver. Send only after the effect is committed.
  public func ack() throws(NATSError) { try connection.publishRaw(ackSubject, "+ACK") }

  /// Done, and wait for the server to confirm it recorded the ack.
  public func ackSync(timeout: Duration = .seconds(2)) async throws(NATSError) {
    _ = try await connection.request(ackSubject, payload: Array("+ACK".utf8), timeout: timeout)
  }

  /// Not processed: redeliver, after `delay` when given.
  public func nak(delay: Duration? = nil) throws(NATSError) {
    if let delay {
      try connection.publishRaw(ackSubject, "-NAK {\"delay\": \(delay.natsNanoseconds)}")
    } else {
      try connection.publishRaw(ackSubject, "-NAK")
    }
  }

  /// Never process: the server stops delivering it (bad input).
  public func term() throws(NATSError) { try connection.publishRaw(ackSubject, "+TERM") }

  /// Still working: resets the server's ack timer.
  public func inProgress() throws(NATSError) { try connection.publishRaw(ackSubject, "+WPI") }
}

extension BusConnection {
  func publishRaw(_ subject: String, _ text: String) throws(NATSError) {
    var text = text
    let status = text.withUTF8 { buffer in
      natsConnection_Publish(nc, subject, buffer.baseAddress, Int32(buffer.count))
    }
    try natsCheck(status, "acknowledge on \(subject)")
  }

  /// Binds to (creating if needed) a durable pull consumer on `stream`.
  /// The corresponding C function is `js_PullSubscribe`.
  public func pullConsumer(stream: String, _ config: ConsumerConfig) async throws(NATSError) -> PullConsumer {
    try await Blocking.run { () throws(NATSError) in try PullConsumer(connection: self, stream: stream, config: config)
    }
  }
}

/// A durable JetStream pull consumer. Fetches run one at a time on the
/// consumer's own queue (libnats forbids concurrent fetches on one
/// subscription); any number of processes may bind the same durable to share
/// the work.
public final class PullConsumer: @unchecked Sendable {
  // Only touched on `queue`, or in deinit.
  private let sub: OpaquePointer
  private let queue: DispatchQueue
  let connection: BusConnection
  public let stream: String
  public let config: ConsumerConfig

  init(connection: BusConnection, stream: String, config: ConsumerConfig) throws(NATSError) {
    var jsOpts = jsOptions()
    jsOptions_Init(&jsOpts)
    var subOpts = jsSubOptions()
    jsSubOptions_Init(&subOpts)
    var sub: OpaquePointer?
    var jerr = jsErrCode(0)
    let streamName = strdup(stream)
    let durable = strdup(config.durable)
    defer {
      free(streamName)
      free(durable)
    }
    let filter = strdup(config.filterSubject)
    defer { free(filter) }
    let policy: jsDeliverPolicy =
      switch config.deliverPolicy {
      case .all: js_DeliverAll
      case .new: js_DeliverNew
      case .last: js_DeliverLast
      }
    // The consumer is created here, not by the subscribe call: libnats
    // deletes a consumer its subscribe created when the subscription is
    // drained or unsubscribed, durable or not, and every graceful shutdown
    // drains. Created here, it outlives the process, as a durable must.
    var cc = jsConsumerConfig()
    jsConsumerConfig_Init(&cc)
    cc.Durable = UnsafePointer(durable)
    // With a name, libnats creates through `CONSUMER.CREATE.<stream>.<name>.<filter>`
    // (not `CONSUMER.DURABLE.CREATE`), whose filter the server checks
    // against the body: the only form a confined host's permissions allow.
    cc.Name = UnsafePointer(durable)
    cc.FilterSubject = UnsafePointer(filter)
    cc.AckPolicy = js_AckExplicit
    cc.AckWait = config.ackWait.natsNanoseconds
    cc.MaxDeliver = Int64(config.maxDeliver)
    cc.MaxAckPending = Int64(config.maxAckPending)
    cc.DeliverPolicy = policy
    var added = js_AddConsumer(nil, connection.js, streamName, &cc, nil, &jerr)
    if added != NATS_OK, jerr == JSConsumerNameExistErr || jerr == JSConsumerExistingActiveErr {
      // It exists with other settings: take the new ones where the server
      // allows, and bind to it either way.
      jerr = jsErrCode(0)
      added = js_UpdateConsumer(nil, connection.js, streamName, &cc, nil, &jerr)
      if added != NATS_OK {
        // Bound with its old settings: say which could not change.
        connection.logger.warning(
          "consumer kept its earlier settings",
          metadata: [
            "durable": "\(config.durable)", "stream": "\(stream)",
            "error": "\(String(cString: natsStatus_GetText(added))) (JetStream error \(jerr.rawValue))",
          ])
        added = NATS_OK
      }
    }
    try natsCheck(added, "create consumer \(config.durable) on \(stream)", jsCode: jerr)
    subOpts.Stream = UnsafePointer(streamName)
    subOpts.Config.AckPolicy = js_AckExplicit
    subOpts.Config.AckWait = config.ackWait.natsNanoseconds
    subOpts.Config.MaxDeliver = Int64(config.maxDeliver)
    subOpts.Config.MaxAckPending = Int64(config.maxAckPending)
    subOpts.Config.DeliverPolicy = policy
    let status = js_PullSubscribe(&sub, connection.js, config.filterSubject, config.durable, &jsOpts, &subOpts, &jerr)
    try natsCheck(status, "bind pull consumer \(config.durable) on \(stream)", jsCode: jerr)
    self.sub = sub!
    self.connection = connection
    self.stream = stream
    self.config = config
    self.queue = DispatchQueue(label: "mirrorstage.nats.pull.\(config.durable)")
  }

  deinit {
    // Only the local handle: the consumer stays on the server.
    natsSubscription_Destroy(sub)
  }

  /// Ends the subscription here (the durable stays on the server): a fetch
  /// waiting on another thread returns at once, and later ones fail. For a
  /// long-polling consumer whose task is cancelled. The corresponding C
  /// function is `natsSubscription_Unsubscribe`.
  public func close() {
    natsSubscription_Unsubscribe(sub)
  }

  /// Fetches up to `batch` messages, waiting at most `timeout` for the
  /// first; an empty array means none arrived in time. The corresponding C
  /// function is `natsSubscription_Fetch`.
  public func fetch(batch: Int, timeout: Duration = .seconds(1)) async throws(NATSError) -> [JetStreamMessage] {
    try await Blocking.run(on: queue) { () throws(NATSError) in
      var list = natsMsgList()
      var jerr = jsErrCode(0)
      let status = natsSubscription_Fetch(&list, self.sub, Int32(batch), timeout.natsMilliseconds, &jerr)
      defer { natsMsgList_Destroy(&list) }
      if status == NATS_TIMEOUT { return [] }
      try natsCheck(status, "fetch from \(self.config.durable)", jsCode: jerr)
      var out: [JetStreamMessage] = []
      out.reserveCapacity(Int(list.Count))
      for i in 0..<Int(list.Count) {
        guard let msg = list.Msgs[i] else { continue }
        out.append(self.copy(msg))
      }
      return out
    }
  }

  private func copy(_ msg: OpaquePointer) -> JetStreamMessage {
    let base = BusConnection.copy(msg)
    var delivered: UInt64 = 1
    var streamSeq: UInt64 = 0
    var consumerSeq: UInt64 = 0
    var timestamp: Int64 = 0
    var meta: UnsafeMutablePointer<jsMsgMetaData>?
    if natsMsg_GetMetaData(&meta, msg) == NATS_OK, let meta {
      delivered = meta.pointee.NumDelivered
      streamSeq = meta.pointee.Sequence.Stream
      consumerSeq = meta.pointee.Sequence.Consumer
      timestamp = meta.pointee.Timestamp
      jsMsgMetaData_Destroy(meta)
    }
    return JetStreamMessage(
      subject: base.subject, headers: base.headers, payload: base.payload, deliveryCount: delivered,
      streamSequence: streamSeq, consumerSequence: consumerSeq, timestampNanos: timestamp,
      ackSubject: base.reply ?? "", connection: connection)
  }
}
