import Foundation
public import Logging
import Metrics
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A response of the operations endpoint.
public struct HTTPResponse: Sendable {
  public var status: Int
  public var contentType: String
  public var body: [UInt8]

  public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: [UInt8]) {
    self.status = status
    self.contentType = contentType
    self.body = body
  }

  public init(status: Int, text: String) {
    self.init(status: status, body: Array(text.utf8))
  }
}

/// The operations endpoint (`/metrics`, `/healthz`) as a service: the
/// EGO services serve it with Hummingbird (`MirrorServiceHTTP`), the
/// reflector with `HTTPServer` (ADR 0007).
public protocol OpsServer: Service {
  /// Binds the socket (before the other services start, so a port in use
  /// fails at once).
  func bind() async throws
}

/// Makes the operations server of a process from its listen address and
/// routes.
public typealias OpsServerFactory =
  @Sendable (_ host: String, _ port: Int, _ routes: [String: HTTPServer.Handler], _ logger: Logger) -> any OpsServer

/// A small HTTP/1.1 server for `/metrics` and `/healthz` on one thread of
/// its own: GET and HEAD, one request per connection, up to 128
/// connections at once, driven by poll() so a slow or idle client holds
/// only its own slot; a client that has not sent its request within
/// `requestTimeout` (2 s) is closed. IPv4, or IPv6 (dual-stack for `::`).
/// What the reflector uses: no event-loop threads, no allocator arenas of a
/// framework in a 10 MiB agent (ADR 0007).
public final class HTTPServer: OpsServer, @unchecked Sendable {
  public typealias Handler = @Sendable () -> HTTPResponse

  private let routes: [String: Handler]
  private let logger: Logger
  private let host: String
  private let requestedPort: Int
  private let requestTimeout: Duration
  static let maxConnections = 128
  // Set once in `bind()`, before the serving thread starts.
  private let listenFD = Atomic<Int32>(-1)
  private let boundPort = Atomic<Int>(0)

  public init(
    host: String, port: Int, routes: [String: Handler], logger: Logger, requestTimeout: Duration = .seconds(2)
  ) {
    self.host = host
    self.requestedPort = port
    self.routes = routes
    self.logger = logger
    self.requestTimeout = requestTimeout
  }

  /// The factory for `ServiceRunner`.
  public static let factory: OpsServerFactory = { host, port, routes, logger in
    HTTPServer(host: host, port: port, routes: routes, logger: logger)
  }

  /// The port actually bound (useful with port 0).
  public var port: Int { boundPort.load(ordering: .acquiring) }

  /// Binds the socket; `run()` calls it when it was not called before.
  public func bind() throws {
    guard listenFD.load(ordering: .acquiring) < 0 else { return }
    let resolved = host == "localhost" ? "127.0.0.1" : host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    let v6 = resolved.contains(":")
    let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HTTPServerError("socket: \(String(cString: strerror(errno)))") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    if v6 {
      var zero: Int32 = 0
      setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
    }
    // A numeric address of either family; the port it got (sin_port and
    // sin6_port are at the same place).
    var hints = addrinfo()
    hints.ai_family = v6 ? AF_INET6 : AF_INET
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE
    var found: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(resolved, "\(requestedPort)", &hints, &found) == 0, let address = found else {
      close(fd)
      throw HTTPServerError("http.listen host '\(host)' is not an IP address")
    }
    defer { freeaddrinfo(found) }
    var name = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let bound =
      Glibc.bind(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0
      && withUnsafeMutablePointer(to: &name) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
      }
    if bound {
      let port = withUnsafeBytes(of: &name) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
      boundPort.store(Int(port), ordering: .releasing)
    }
    guard bound, listen(fd, 128) == 0 else {
      let reason = String(cString: strerror(errno))
      close(fd)
      throw HTTPServerError("cannot listen on \(host):\(requestedPort): \(reason)")
    }
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    listenFD.store(fd, ordering: .releasing)
  }

  public func run() async throws {
    try bind()
    let fd = listenFD.load(ordering: .acquiring)
    var pipeFDs: [Int32] = [-1, -1]
    guard pipe(&pipeFDs) == 0 else { throw HTTPServerError("pipe: \(String(cString: strerror(errno)))") }
    logger.info("serving /metrics and /healthz", metadata: ["listen": "\(host):\(port)"])
    let done = DispatchSemaphore(value: 0)
    let wake = pipeFDs[0]
    let thread = Thread { [routes, logger, requestTimeout] in
      Self.serve(listener: fd, wake: wake, routes: routes, logger: logger, requestTimeout: requestTimeout)
      done.signal()
    }
    thread.name = "http-ops"
    thread.start()
    try? await gracefulShutdown()
    _ = write(pipeFDs[1], [UInt8(1)], 1)
    await withCheckedContinuation { c in
      Thread.detachNewThread {
        done.wait()
        c.resume()
      }
    }
    close(pipeFDs[0])
    close(pipeFDs[1])
    close(fd)
  }

  /// One client: what it sent so far, and until when it may send the rest.
  private struct Client {
    var fd: Int32
    var request: [UInt8] = []
    var deadline: ContinuousClock.Instant
  }

  private static func serve(
    listener: Int32, wake: Int32, routes: [String: Handler], logger: Logger, requestTimeout: Duration
  ) {
    var clients: [Client] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      var fds = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
      if clients.count < maxConnections { fds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0)) }
      fds += clients.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
      let now = ContinuousClock.now
      let next = clients.map(\.deadline).min().map { max(.zero, $0 - now) } ?? .seconds(60)
      let ready = poll(&fds, nfds_t(fds.count), Int32(clamping: next.wholeMilliseconds + 1))
      if ready < 0 && errno != EINTR { break }
      if fds[0].revents != 0 { break }  // shutdown
      let offset = clients.count < maxConnections ? 2 : 1
      if offset == 2, fds[1].revents & Int16(POLLIN) != 0 {
        while clients.count < maxConnections {
          let c = accept(listener, nil, nil)
          guard c >= 0 else { break }
          _ = fcntl(c, F_SETFD, FD_CLOEXEC)
          _ = fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK)
          clients.append(Client(fd: c, deadline: .now + requestTimeout))
        }
      }
      var finished = Set<Int32>()
      for (i, p) in fds.dropFirst(offset).enumerated() where p.revents != 0 {
        let n = buffer.withUnsafeMutableBytes { recv(p.fd, $0.baseAddress, $0.count, 0) }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
        guard n > 0 else {
          finished.insert(p.fd)
          continue
        }
        clients[i].request += buffer[0..<n]
        let request = clients[i].request
        if request.count > 8192 {
          respond(p.fd, request: [], routes: routes, status: 431)
          finished.insert(p.fd)
        } else if request.firstRange(of: [13, 10, 13, 10]) != nil {
          respond(p.fd, request: request, routes: routes, status: nil)
          finished.insert(p.fd)
        }
      }
      // Whoever has not sent a whole request in time is let go.
      let late = ContinuousClock.now
      for c in clients where c.deadline <= late && !finished.contains(c.fd) {
        HTTPServer.timedOut.increment()
        finished.insert(c.fd)
      }
      if !finished.isEmpty {
        for fd in finished { close(fd) }
        clients.removeAll { finished.contains($0.fd) }
      }
    }
    for c in clients { close(c.fd) }
    logger.debug("operations endpoint stopped")
  }

  static let timedOut = Counter(label: "http_ops_clients_timed_out_total")

  private static func respond(_ fd: Int32, request: [UInt8], routes: [String: Handler], status forced: Int?) {
    let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
    let parts = line.split(separator: " ")
    let response: HTTPResponse
    if let forced {
      response = HTTPResponse(status: forced, text: "request too large\n")
    } else if parts.count < 2 {
      response = HTTPResponse(status: 400, text: "bad request\n")
    } else if parts[0] != "GET" && parts[0] != "HEAD" {
      response = HTTPResponse(status: 405, text: "method not allowed\n")
    } else {
      let path = String(parts[1].split(separator: "?", maxSplits: 1).first ?? "")
      response = routes[path]?() ?? HTTPResponse(status: 404, text: "not found\n")
    }
    var head = "HTTP/1.1 \(response.status) \(reason(response.status))\r\n"
    head += "Content-Type: \(response.contentType)\r\nContent-Length: \(response.body.count)\r\n"
    head += "Connection: close\r\n\r\n"
    var out = Array(head.utf8)
    if parts.first != "HEAD" { out += response.body }
    // The answer (a few KiB of metrics) goes to the socket's buffer; a
    // client that does not read it gets what fits within 2 s.
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var sent = 0
    while sent < out.count {
      let n = out[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      if n <= 0 { break }
      sent += n
    }
  }

  private static func reason(_ status: Int) -> String {
    switch status {
    case 200: "OK"
    case 400: "Bad Request"
    case 404: "Not Found"
    case 405: "Method Not Allowed"
    case 431: "Request Header Fields Too Large"
    case 503: "Service Unavailable"
    default: "Status"
    }
  }
}

public struct HTTPServerError: Error, CustomStringConvertible {
  public var description: String
  init(_ description: String) { self.description = description }
}
