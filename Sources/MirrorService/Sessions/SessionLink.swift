import Foundation
import Metrics
public import MirrorBus
public import MirrorWire
import Synchronization

/// One end of an interactive session on core NATS: frames go out on one
/// subject numbered from 1, frames come in on the other and are handed to
/// `handler` in the order sent (one publisher, one connection); a gap in
/// the numbers is counted as lost.
public final class SessionLink: Sendable {
  private let connection: BusConnection
  private let outbound: String
  private let sent = Mutex<UInt64>(0)
  private let subscription = Mutex<BusHandlerSubscription?>(nil)
  private let counters = Shared<(expected: UInt64, lost: UInt64)>((1, 0))
  /// Stamped on every outgoing frame (the client's token; empty on the host).
  private let token: [UInt8]

  public init(
    connection: BusConnection, send outbound: String, receive inbound: String, token: [UInt8] = [],
    handler: @escaping @Sendable (SessionFrame) -> Void
  ) throws(NATSError) {
    self.connection = connection
    self.outbound = outbound
    self.token = token
    let counters = self.counters
    let undecodable = Counter(label: "session_frames_undecodable_total")
    let sub = try connection.subscribe(inbound, pending: 65536) { message in
      guard let frame = try? SessionFrame(decoding: message.payload) else {
        undecodable.increment()
        return
      }
      counters.withLock { c in
        if frame.sequence > c.expected { c.lost += frame.sequence - c.expected }
        c.expected = max(c.expected, frame.sequence + 1)
      }
      handler(frame)
    }
    subscription.withLock { $0 = sub }
  }

  /// Frames that did not arrive (a gap in the sequence), and what libnats
  /// dropped for a handler that fell behind.
  public var lost: UInt64 {
    counters.withLock { $0.lost } + UInt64(subscription.withLock { $0?.dropped ?? 0 })
  }

  /// Sends a frame, numbered; the number and the publish are one step, so
  /// frames leave in their order.
  public func send(_ frame: SessionFrame) throws(NATSError) {
    var f = frame
    f.token = token
    try sent.withLock { (n: inout UInt64) throws(NATSError) in
      n += 1
      f.sequence = n
      try connection.publish(outbound, payload: f.encode())
    }
  }

  /// Stops receiving; frames already being handled finish.
  public func close() {
    subscription.withLock { $0?.unsubscribe() }
  }
}

extension SessionFrame {
  public static func data(_ bytes: [UInt8], stream: UInt32 = 0) -> SessionFrame {
    SessionFrame(kind: .data, data: bytes, stream: stream)
  }
}
