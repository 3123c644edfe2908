import Foundation
public import MirrorBus
public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// What a session's client hears: a frame from the host, or the router's
/// word that the command is final (e.g. refused by the host's policy
/// before a session ever started).
public enum SessionEvent: Sendable {
  case frame(SessionFrame)
  case final(CommandRecord)
}

/// The client end of a session (mirrorctl, the console, tests): subscribed
/// to the host's frames and the command's final state before the command
/// is submitted, so nothing passes unseen; every frame it sends carries
/// the token.
public final class SessionClient: Sendable {
  public let host: String
  public let commandID: String
  public let link: SessionLink
  private let state: BusHandlerSubscription

  /// 32 random bytes; the request carries their SHA-256.
  public static func makeToken() -> [UInt8] {
    var g = SystemRandomNumberGenerator()
    return (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
  }

  public init(
    connection: BusConnection, host: String, commandID: String, token: [UInt8],
    handler: @escaping @Sendable (SessionEvent) -> Void
  ) throws(NATSError) {
    self.host = host
    self.commandID = commandID
    link = try SessionLink(
      connection: connection, send: Subjects.sessionIn(host, commandID),
      receive: Subjects.sessionOut(host, commandID), token: token
    ) { handler(.frame($0)) }
    state = try connection.subscribe(Subjects.commandsState(commandID), pending: 16) { m in
      if let r = try? CommandRecord(decoding: m.payload, limit: 16 << 20) { handler(.final(r)) }
    }
  }

  public func input(_ data: [UInt8]) throws(NATSError) { try link.send(.data(data)) }
  public func resize(cols: UInt32, rows: UInt32) throws(NATSError) {
    try link.send(SessionFrame(kind: .resize, cols: cols, rows: rows))
  }
  /// Hangs up: the host ends the shell (SIGHUP) or the forwards.
  public func end() throws(NATSError) { try link.send(SessionFrame(kind: .end)) }

  public func close() {
    link.close()
    state.unsubscribe()
  }
}

/// The client end of a port forward: each connection accepted on the
/// local socket is opened on the host (OPEN, answered by OPEN or CLOSE
/// with a reason) and then carried by a `ForwardStream`.
public final class ForwardClient: Sendable {
  private let listener: Int32
  private let streams = Shared<[UInt32: ForwardStream]>([:])
  private let waiting = Shared<[UInt32: Int32]>([:])
  private let next = Shared<UInt32>(0)
  private let client = Shared<SessionClient?>(nil)
  private let onNote: @Sendable (String) -> Void

  /// `listener`: a listening socket (see `listen(port:)`).
  public init(listener: Int32, onNote: @escaping @Sendable (String) -> Void = { _ in }) {
    self.listener = listener
    self.onNote = onNote
  }

  /// A listening TCP socket on 127.0.0.1:`port` (0: any free port).
  public static func listen(port: UInt16) throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw ForwardError("socket: \(String(cString: strerror(errno)))") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, Glibc.listen(fd, 64) == 0 else {
      let why = String(cString: strerror(errno))
      close(fd)
      throw ForwardError("cannot listen on 127.0.0.1:\(port): \(why)")
    }
    var actual = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &actual) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, UInt16(bigEndian: actual.sin_port))
  }

  /// Frames of the session, from `SessionClient`'s handler.
  public func receive(_ frame: SessionFrame) {
    switch frame.kind {
    case .open:
      guard let fd = waiting.withLock({ $0.removeValue(forKey: frame.stream) }), let link = client.value?.link else {
        return
      }
      let stream = ForwardStream(id: frame.stream, fd: fd, link: link) { [streams] stream, _, _ in
        streams.withLock { _ = $0.removeValue(forKey: stream.id) }
      }
      streams.withLock { $0[frame.stream] = stream }
      stream.start()
    case .close where waiting.value[frame.stream] != nil:
      if let fd = waiting.withLock({ $0.removeValue(forKey: frame.stream) }) { close(fd) }
      onNote("connection \(frame.stream) refused by the host: \(frame.reason)")
    case .end:
      stop()
    default:
      streams.withLock { $0[frame.stream] }?.receive(frame)
    }
  }

  /// Accepts connections until `stop` (blocking: a thread of its own).
  public func serve(_ session: SessionClient) {
    client.withLock { $0 = session }
    while true {
      let fd = accept(listener, nil, nil)
      if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
      if fd < 0 {
        if errno == EINTR || errno == ECONNABORTED { continue }
        break
      }
      let id = next.withLock {
        $0 += 1
        return $0
      }
      waiting.withLock { $0[id] = fd }
      if (try? session.link.send(SessionFrame(kind: .open, stream: id))) == nil {
        waiting.withLock { _ = $0.removeValue(forKey: id) }
        close(fd)
      }
    }
  }

  /// Stops accepting and ends every connection.
  public func stop() {
    shutdown(listener, Int32(SHUT_RDWR))
    for stream in streams.value.values { stream.abort() }
    for fd in waiting.withLock({ w -> [Int32] in
      defer { w = [:] }
      return Array(w.values)
    }) {
      close(fd)
    }
  }
}

public struct ForwardError: Error, CustomStringConvertible {
  public var description: String
  public init(_ d: String) { description = d }
}
