import Foundation
public import Logging
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

/// A minimal HTTP/1.1 server for `/metrics` and `/healthz`: GET only, one
/// request per connection, on a thread of its own (its calls block).
public final class HTTPServer: Service, @unchecked Sendable {
  public typealias Handler = @Sendable () -> HTTPResponse

  private let routes: [String: Handler]
  private let logger: Logger
  private let host: String
  private let requestedPort: Int
  // Set once in `bind()`, before the accept thread starts.
  private let listenFD = Atomic<Int32>(-1)
  private let boundPort = Atomic<Int>(0)

  public init(host: String, port: Int, routes: [String: Handler], logger: Logger) {
    self.host = host
    self.requestedPort = port
    self.routes = routes
    self.logger = logger
  }

  /// The port actually bound (useful with port 0).
  public var port: Int { boundPort.load(ordering: .acquiring) }

  /// Binds the socket; `run()` calls it when it was not called before.
  public func bind() throws {
    guard listenFD.load(ordering: .acquiring) < 0 else { return }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HTTPServerError("socket: \(String(cString: strerror(errno)))") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(requestedPort).bigEndian
    let resolved = host == "localhost" ? "127.0.0.1" : host
    guard inet_pton(AF_INET, resolved, &addr.sin_addr) == 1 else {
      close(fd)
      throw HTTPServerError("http.listen host '\(host)' is not an IPv4 address")
    }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Bool in
        Glibc.bind(fd, p, len) == 0 && getsockname(fd, p, &len) == 0
      }
    }
    guard bound, listen(fd, 64) == 0 else {
      let reason = String(cString: strerror(errno))
      close(fd)
      throw HTTPServerError("cannot listen on \(host):\(requestedPort): \(reason)")
    }
    boundPort.store(Int(UInt16(bigEndian: addr.sin_port)), ordering: .releasing)
    listenFD.store(fd, ordering: .releasing)
  }

  public func run() async throws {
    try bind()
    let fd = listenFD.load(ordering: .acquiring)
    logger.info("serving /metrics and /healthz", metadata: ["listen": "\(host):\(port)"])
    let thread = Thread { [routes, logger] in
      while true {
        let client = accept(fd, nil, nil)
        if client < 0 {
          if errno == EINTR { continue }
          break  // the listening socket was shut down
        }
        Self.serve(client, routes: routes, logger: logger)
      }
    }
    thread.name = "http-ops"
    thread.start()
    try? await gracefulShutdown()
    shutdown(fd, Int32(SHUT_RDWR))
    close(fd)
  }

  private static func serve(_ fd: Int32, routes: [String: Handler], logger: Logger) {
    defer { close(fd) }
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var request: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 2048)
    while request.count < 8192 {
      let n = recv(fd, &buffer, buffer.count, 0)
      if n <= 0 { return }
      request.append(contentsOf: buffer[0..<n])
      if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
      if let _ = request.firstRange(of: [13, 10, 13, 10]) { break }
    }
    let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
    let parts = line.split(separator: " ")
    let response: HTTPResponse
    if parts.count < 2 {
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
    case 503: "Service Unavailable"
    default: "Status"
    }
  }
}

public struct HTTPServerError: Error, CustomStringConvertible {
  public var description: String
  init(_ description: String) { self.description = description }
}
