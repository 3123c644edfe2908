import Foundation
public import MirrorWire
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// How many bytes of a stream may be in flight before the sender waits
/// for the peer's acknowledgement: a slow reader at one end slows the
/// writer at the other instead of overflowing a NATS subscription.
public final class CreditWindow: @unchecked Sendable {
  public let limit: UInt64
  private let condition = NSCondition()
  private var sent: UInt64 = 0
  private var acked: UInt64 = 0
  private var closed = false

  public init(limit: UInt64 = 1 << 20) { self.limit = limit }

  /// Waits until `n` more bytes fit; false once closed.
  public func reserve(_ n: Int) -> Bool {
    condition.lock()
    defer { condition.unlock() }
    while !closed, sent - acked + UInt64(n) > limit { condition.wait() }
    guard !closed else { return false }
    sent += UInt64(n)
    return true
  }

  /// The peer has consumed `total` bytes of the stream so far.
  public func ack(_ total: UInt64) {
    condition.lock()
    acked = max(acked, min(total, sent))
    condition.broadcast()
    condition.unlock()
  }

  public func close() {
    condition.lock()
    closed = true
    condition.broadcast()
    condition.unlock()
  }
}

/// One forwarded TCP connection over a session. Bytes read from the socket
/// go out as DATA frames of `id` within a `CreditWindow`; DATA from the
/// peer is written to the socket in order and acknowledged every 128 KiB;
/// a CLOSE either way half-closes, and the socket is closed once both
/// directions are done. The same on the host (a connection to the
/// service) and on the client (a connection accepted on the local port).
public final class ForwardStream: Sendable {
  public let id: UInt32
  private let fd: Int32
  private let link: SessionLink
  private let window = CreditWindow()
  private let writer: DispatchQueue
  private struct State {
    var written: UInt64 = 0
    var ackSent: UInt64 = 0
    var readDone = false
    var writeDone = false
    var closed = false
  }
  private let state = Mutex(State())
  private let readBytes = Atomic<UInt64>(0)
  private let onFinish: @Sendable (_ stream: ForwardStream, _ sent: UInt64, _ received: UInt64) -> Void

  /// `onFinish` gets the bytes read from the socket and written to it.
  public init(
    id: UInt32, fd: Int32, link: SessionLink,
    onFinish: @escaping @Sendable (_ stream: ForwardStream, _ read: UInt64, _ written: UInt64) -> Void
  ) {
    self.id = id
    self.fd = fd
    self.link = link
    self.onFinish = onFinish
    writer = DispatchQueue(label: "forward.\(id)")
  }

  /// Starts the thread reading the socket.
  public func start() {
    Thread.detachNewThread { [self] in
      var buffer = [UInt8](repeating: 0, count: 32768)
      while true {
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0, window.reserve(n) else { break }
        _ = readBytes.add(UInt64(n), ordering: .relaxed)
        guard (try? link.send(.data(Array(buffer[0..<n]), stream: id))) != nil else { break }
      }
      try? link.send(SessionFrame(kind: .close, stream: id))
      finish { $0.readDone = true }
    }
  }

  /// A frame of this stream from the peer.
  public func receive(_ frame: SessionFrame) {
    switch frame.kind {
    case .data:
      writer.async { [self] in
        guard !state.withLock({ $0.writeDone }) else { return }
        guard Self.writeAll(fd, frame.data) else {
          abort()
          return
        }
        let ack = state.withLock { s -> UInt64? in
          s.written += UInt64(frame.data.count)
          guard s.written - s.ackSent >= 128 << 10 else { return nil }
          s.ackSent = s.written
          return s.written
        }
        if let ack { try? link.send(SessionFrame(kind: .ack, stream: id, acked: ack)) }
      }
    case .ack:
      window.ack(frame.acked)
    case .close:
      writer.async { [self] in
        shutdown(fd, Int32(SHUT_WR))
        finish { $0.writeDone = true }
      }
    default:
      break
    }
  }

  /// Ends both directions now (the session is over).
  public func abort() {
    window.close()
    shutdown(fd, Int32(SHUT_RDWR))
    writer.async { [self] in finish { $0.writeDone = true } }
  }

  private func finish(_ change: (inout State) -> Void) {
    let (done, written) = state.withLock { s -> (Bool, UInt64) in
      change(&s)
      guard s.readDone, s.writeDone, !s.closed else { return (false, 0) }
      s.closed = true
      return (true, s.written)
    }
    guard done else { return }
    close(fd)
    onFinish(self, readBytes.load(ordering: .relaxed), written)
  }

  static func writeAll(_ fd: Int32, _ data: [UInt8]) -> Bool {
    var offset = 0
    while offset < data.count {
      let n = data.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else { return false }
      offset += n
    }
    return true
  }
}
