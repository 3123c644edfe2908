import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A local HTTP server standing in for ntfy, Telegram or a webhook: it
/// records every request whole (method, path, headers, body) and answers
/// with the statuses it is told to, in order (then 200).
public final class HTTPReceiver: Sendable {
  public struct Request: Sendable {
    public var method: String
    public var path: String
    /// Header names in lower case.
    public var headers: [String: String]
    public var body: [UInt8]
    public var receivedAt: ContinuousClock.Instant
    /// What the receiver answered.
    public var status = 200
    public var text: String { String(decoding: body, as: UTF8.self) }
    public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }
  }

  private let fd: Int32
  public let port: Int
  final class State: Sendable {
    let m = Mutex<(requests: [Request], statuses: [Int], body: String)>(([], [], "{\"ok\":true}"))
    func withLock<T>(_ body: (inout (requests: [Request], statuses: [Int], body: String)) -> T) -> T {
      m.withLock { body(&$0) }
    }
  }
  private let state = State()

  public init() throws {
    let (fd, port) = try Harness.listenLoopback()
    self.fd = fd
    self.port = port
    let thread = Thread { [fd, state] in
      while true {
        let client = accept(fd, nil, nil)
        if client < 0 {
          if errno == EINTR { continue }
          return
        }
        Self.serve(client, state)
      }
    }
    thread.start()
  }

  deinit {
    shutdown(fd, Int32(SHUT_RDWR))
    close(fd)
  }

  public var url: String { "http://127.0.0.1:\(port)" }

  /// The next answers, e.g. [500, 500]: then 200 again.
  public func respond(with statuses: [Int]) { state.withLock { $0.statuses = statuses } }

  /// The body of 2xx answers from now on.
  public func respond(body: String) { state.withLock { $0.body = body } }

  /// Every request, answered well or not.
  public var requests: [Request] { state.withLock { $0.requests } }

  /// The requests answered with 2xx: what was delivered.
  public var delivered: [Request] { requests.filter { $0.status / 100 == 2 } }

  /// Waits until `count` deliveries arrived (or the timeout); returns them.
  public func waitFor(_ count: Int, timeout: Duration = .seconds(15)) async -> [Request] {
    let deadline = ContinuousClock.now + timeout
    while delivered.count < count, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
    return delivered
  }

  private static func serve(_ client: Int32, _ state: State) {
    defer { close(client) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    var headerEnd: Int?
    var contentLength = 0
    while true {
      if let end = headerEnd, data.count >= end + contentLength { break }
      let n = recv(client, &buffer, buffer.count, 0)
      if n <= 0 { return }
      data.append(contentsOf: buffer[0..<n])
      if headerEnd == nil, let r = data.firstRange(of: [13, 10, 13, 10]) {
        headerEnd = r.upperBound
        let head = String(decoding: data[..<r.lowerBound], as: UTF8.self)
        for line in head.split(separator: "\r\n").dropFirst() {
          let parts = line.split(separator: ":", maxSplits: 1)
          if parts.count == 2, parts[0].lowercased() == "content-length" {
            contentLength = Int(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
          }
        }
        if head.lowercased().contains("expect: 100-continue") {
          let cont = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
          _ = cont.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
      }
    }
    guard let end = headerEnd else { return }
    let head = String(decoding: data[..<(end - 4)], as: UTF8.self)
    let lines = head.split(separator: "\r\n")
    let first = lines.first?.split(separator: " ") ?? []
    var headers: [String: String] = [:]
    for line in lines.dropFirst() {
      let parts = line.split(separator: ":", maxSplits: 1)
      if parts.count == 2 { headers[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces) }
    }
    var request = Request(
      method: first.count > 0 ? String(first[0]) : "", path: first.count > 1 ? String(first[1]) : "", headers: headers,
      body: Array(data[end..<min(data.count, end + contentLength)]), receivedAt: .now)
    let (status, body) = state.withLock { s -> (Int, String) in
      let status = s.statuses.isEmpty ? 200 : s.statuses.removeFirst()
      request.status = status
      s.requests.append(request)
      return (status, status / 100 == 2 ? s.body : "{\"ok\":false}")
    }
    let response =
      "HTTP/1.1 \(status) X\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
    let bytes = Array(response.utf8)
    _ = bytes.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
  }
}
