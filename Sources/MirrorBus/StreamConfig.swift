/// A JetStream stream as the project declares it; `ensureStream` makes the
/// server's stream match it.
public struct StreamConfig: Sendable, Hashable {
  public enum Storage: Sendable, Hashable { case file, memory }
  public enum Retention: Sendable, Hashable { case limits, interest, workQueue }

  public var name: String
  public var subjects: [String]
  public var storage: Storage
  public var retention: Retention
  /// Messages older than this are removed; nil keeps them by age forever.
  public var maxAge: Duration?
  /// -1 for no limit.
  public var maxBytes: Int64
  public var maxMessages: Int64
  public var maxMessageSize: Int32
  /// The window in which a repeated `Nats-Msg-Id` is dropped.
  public var duplicateWindow: Duration
  public var replicas: Int

  public init(
    name: String, subjects: [String], storage: Storage = .file, retention: Retention = .limits,
    maxAge: Duration? = nil, maxBytes: Int64 = -1, maxMessages: Int64 = -1, maxMessageSize: Int32 = -1,
    duplicateWindow: Duration = .seconds(120), replicas: Int = 1
  ) {
    self.name = name
    self.subjects = subjects
    self.storage = storage
    self.retention = retention
    self.maxAge = maxAge
    self.maxBytes = maxBytes
    self.maxMessages = maxMessages
    self.maxMessageSize = maxMessageSize
    self.duplicateWindow = duplicateWindow
    self.replicas = replicas
  }
}

/// What the server reports about a stream.
public struct StreamState: Sendable, Hashable {
  public var name: String
  public var messages: UInt64
  public var bytes: UInt64
  public var firstSequence: UInt64
  public var lastSequence: UInt64
  public var consumers: Int
}

/// The server's acknowledgement of a JetStream publish.
public struct PublishAck: Sendable, Hashable {
  public var stream: String
  public var sequence: UInt64
  /// True when the `Nats-Msg-Id` was seen within the duplicate window and
  /// the message was not stored again.
  public var duplicate: Bool
}

/// A durable pull consumer's settings.
public struct ConsumerConfig: Sendable, Hashable {
  public var durable: String
  public var filterSubject: String
  /// How long the server waits for an ack before redelivering.
  public var ackWait: Duration
  /// -1 redelivers forever.
  public var maxDeliver: Int
  public var maxAckPending: Int
  public var deliverPolicy: DeliverPolicy

  public enum DeliverPolicy: Sendable, Hashable { case all, new, last }

  public init(
    durable: String, filterSubject: String, ackWait: Duration = .seconds(30), maxDeliver: Int = -1,
    maxAckPending: Int = 20_000, deliverPolicy: DeliverPolicy = .all
  ) {
    self.durable = durable
    self.filterSubject = filterSubject
    self.ackWait = ackWait
    self.maxDeliver = maxDeliver
    self.maxAckPending = maxAckPending
    self.deliverPolicy = deliverPolicy
  }
}
