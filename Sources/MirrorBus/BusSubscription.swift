internal import CNATS
import Synchronization

/// A core NATS subscription delivered as an `AsyncSequence`.
///
/// libnats calls back on its own thread; each message is copied and yielded
/// into a bounded stream (newest kept). Messages the stream or libnats had
/// to drop are counted in `dropped`, never lost silently.
public final class BusSubscription: AsyncSequence, @unchecked Sendable {
  public typealias Element = BusMessage

  // natsSubscription is documented thread-safe for Unsubscribe/GetDropped.
  private let sub: OpaquePointer
  private let box: SubscriptionBox
  private let stream: AsyncStream<BusMessage>
  public let subject: String

  init(connection: BusConnection, subject: String, queueGroup: String?, bufferSize: Int, service: String? = nil)
    throws(NATSError)
  {
    let (stream, continuation) = AsyncStream<BusMessage>.makeStream(bufferingPolicy: .bufferingNewest(bufferSize))
    let box = SubscriptionBox(continuation: continuation, service: service)
    let closure = Unmanaged.passRetained(box).toOpaque()
    var sub: OpaquePointer?
    let handler: natsMsgHandler = { _, _, msg, closure in
      let box = Unmanaged<SubscriptionBox>.fromOpaque(closure!).takeUnretainedValue()
      defer { natsMsg_Destroy(msg) }
      box.deliver(BusConnection.copy(msg!))
    }
    let status =
      if let queueGroup {
        natsConnection_QueueSubscribe(&sub, connection.nc, subject, queueGroup, handler, closure)
      } else {
        natsConnection_Subscribe(&sub, connection.nc, subject, handler, closure)
      }
    guard status == NATS_OK, let sub else {
      let error = NATSError.last(status, "subscribe to \(subject)")
      Unmanaged<SubscriptionBox>.fromOpaque(closure).release()
      throw error
    }
    // Released exactly once, when libnats says no callback will follow.
    natsSubscription_SetOnCompleteCB(
      sub,
      { closure in
        let box = Unmanaged<SubscriptionBox>.fromOpaque(closure!).takeRetainedValue()
        box.finish()
      }, closure)
    natsSubscription_SetPendingLimits(sub, Int32(Swift.max(bufferSize, 1024)), 64 << 20)
    self.sub = sub
    self.box = box
    self.stream = stream
    self.subject = subject
    continuation.onTermination = { [weak self] _ in self?.unsubscribe() }
  }

  deinit {
    natsSubscription_Unsubscribe(sub)
    natsSubscription_Destroy(sub)
  }

  /// Messages dropped by the bounded buffer or by libnats (slow consumer).
  public var dropped: Int {
    var libnatsDropped: Int64 = 0
    natsSubscription_GetDropped(sub, &libnatsDropped)
    return box.dropped.load(ordering: .relaxed) + Int(libnatsDropped)
  }

  /// Stops delivery; the sequence ends after what is buffered.
  public func unsubscribe() {
    natsSubscription_Unsubscribe(sub)
  }

  public func makeAsyncIterator() -> AsyncStream<BusMessage>.Iterator {
    stream.makeAsyncIterator()
  }
}

@available(*, unavailable)
extension SubscriptionBox: Sendable {}

final class SubscriptionBox {
  let continuation: AsyncStream<BusMessage>.Continuation
  let dropped = Atomic<Int>(0)
  let service: String?

  init(continuation: AsyncStream<BusMessage>.Continuation, service: String? = nil) {
    self.continuation = continuation
    self.service = service
  }

  func deliver(_ message: BusMessage) {
    var message = message
    message.service = service
    if case .dropped = continuation.yield(message) { dropped.add(1, ordering: .relaxed) }
  }

  func finish() { continuation.finish() }
}

extension BusConnection {
  /// Subscribes to `subject` (wildcards allowed); with `queueGroup`, each
  /// message goes to one member of the group.
  public func subscribe(_ subject: String, queueGroup: String? = nil, bufferSize: Int = 4096) throws(NATSError)
    -> BusSubscription
  {
    try BusSubscription(connection: self, subject: subject, queueGroup: queueGroup, bufferSize: bufferSize)
  }
}

/// A core NATS subscription whose messages are handled on libnats' delivery
/// thread, one at a time, in order: no hand-over to the Swift executor. For
/// a high-rate subscription whose handler is short and never blocks (a
/// `Mutex`-guarded update): it saves a thread wake-up a message. libnats
/// bounds what waits for the handler; what it drops is counted in `dropped`.
/// Of the headers, only `Mirror-Type` is copied (what `decode` reads).
public final class BusHandlerSubscription: @unchecked Sendable {
  // natsSubscription is documented thread-safe for Unsubscribe/GetDropped.
  private let sub: OpaquePointer
  public let subject: String

  init(connection: BusConnection, subject: String, pending: Int, handler: @escaping @Sendable (BusMessage) -> Void)
    throws(NATSError)
  {
    let box = HandlerBox(handler)
    let closure = Unmanaged.passRetained(box).toOpaque()
    var sub: OpaquePointer?
    let status = natsConnection_Subscribe(
      &sub, connection.nc, subject,
      { _, _, msg, closure in
        defer { natsMsg_Destroy(msg) }
        Unmanaged<HandlerBox>.fromOpaque(closure!).takeUnretainedValue().handler(
          BusConnection.copy(msg!, headers: [BusHeader.mirrorType]))
      }, closure)
    guard status == NATS_OK, let sub else {
      let error = NATSError.last(status, "subscribe to \(subject)")
      Unmanaged<HandlerBox>.fromOpaque(closure).release()
      throw error
    }
    // Released exactly once, when libnats says no callback will follow.
    natsSubscription_SetOnCompleteCB(sub, { Unmanaged<HandlerBox>.fromOpaque($0!).release() }, closure)
    natsSubscription_SetPendingLimits(sub, Int32(Swift.max(pending, 1024)), 64 << 20)
    self.sub = sub
    self.subject = subject
  }

  deinit {
    natsSubscription_Unsubscribe(sub)
    natsSubscription_Destroy(sub)
  }

  /// Messages libnats dropped because the handler fell behind.
  public var dropped: Int {
    var n: Int64 = 0
    natsSubscription_GetDropped(sub, &n)
    return Int(n)
  }

  /// Stops delivery; a handler already running finishes.
  public func unsubscribe() { natsSubscription_Unsubscribe(sub) }
}

private final class HandlerBox: Sendable {
  let handler: @Sendable (BusMessage) -> Void
  init(_ handler: @escaping @Sendable (BusMessage) -> Void) { self.handler = handler }
}

extension BusConnection {
  /// Subscribes to `subject` with `handler` called on libnats' delivery
  /// thread for each message (see `BusHandlerSubscription`).
  public func subscribe(
    _ subject: String, pending: Int = 8192, handler: @escaping @Sendable (BusMessage) -> Void
  ) throws(NATSError) -> BusHandlerSubscription {
    try BusHandlerSubscription(connection: self, subject: subject, pending: pending, handler: handler)
  }
}
