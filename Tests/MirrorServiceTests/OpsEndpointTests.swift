import Foundation
import Logging
import MirrorService
import MirrorServiceHTTP
import ServiceLifecycle
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The operations endpoint cannot be stalled: with 50 idle connections and
/// a client dripping one byte every 200 ms held open, /healthz still
/// answers in under 100 ms — for the reflector's poll-driven `HTTPServer`
/// and the EGO services' Hummingbird one; IPv6 too.
@Suite(.serialized) final class OpsEndpointTests {
  static let routes: [String: HTTPServer.Handler] = ["/healthz": { HTTPResponse(status: 200, text: "ok\n") }]

  /// Connects to host:port (IPv4 or IPv6).
  static func connect(_ host: String, _ port: Int) -> Int32? {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, "\(port)", &hints, &list) == 0, let ai = list else { return nil }
    defer { freeaddrinfo(list) }
    let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0, Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
      if fd >= 0 { close(fd) }
      return nil
    }
    return fd
  }

  /// One GET: the status line and how long it took.
  static func get(_ host: String, _ port: Int, _ path: String) -> (status: String, elapsed: Duration)? {
    let started = ContinuousClock.now
    guard let fd = connect(host, port) else { return nil }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let request = Array("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var answer: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let n = recv(fd, &buffer, buffer.count, 0)
      if n <= 0 { break }
      answer += buffer[0..<n]
    }
    let line = String(decoding: answer.prefix { $0 != 13 }, as: UTF8.self)
    return (line, ContinuousClock.now - started)
  }

  static var hasIPv6Loopback: Bool {
    ((try? String(contentsOfFile: "/proc/net/if_inet6", encoding: .utf8)) ?? "").contains(
      "00000000000000000000000000000001")
  }

  func withServer(
    _ server: any Service, host: String, port: Int, _ body: () async throws -> Void
  ) async throws {
    let group = ServiceGroup(services: [server], logger: Harness.logger)
    let running = Task { try await group.run() }
    #expect(await Harness.waitUntil(timeout: .seconds(10)) { Self.get(host, port, "/healthz") != nil })
    do { try await body() } catch {
      await group.triggerGracefulShutdown()
      throw error
    }
    await group.triggerGracefulShutdown()
    _ = await running.result
  }

  func stall(_ host: String, _ port: Int) async throws {
    // 50 connections that never send anything, and one that drips.
    let idle = (0..<50).compactMap { _ in Self.connect(host, port) }
    defer { idle.forEach { close($0) } }
    #expect(idle.count == 50)
    let drip = try #require(Self.connect(host, port))
    defer { close(drip) }
    let dripping = Thread {
      for b in Array("GET /healthz HTTP/1.1\r\nX-Slow: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 40) {
        var byte = b
        if send(drip, &byte, 1, Int32(MSG_NOSIGNAL)) <= 0 { return }
        Thread.sleep(forTimeInterval: 0.2)
      }
    }
    dripping.start()
    try await Task.sleep(for: .milliseconds(300))
    var worst = Duration.zero
    for _ in 0..<20 {
      let answer = try #require(Self.get(host, port, "/healthz"))
      #expect(answer.status.hasPrefix("HTTP/1.1 200"), "\(answer.status)")
      worst = max(worst, answer.elapsed)
    }
    #expect(worst < .milliseconds(100), "slowest /healthz \(worst)")
  }

  @Test func theReflectorsServerIsNotStalledAndLetsSlowClientsGo() async throws {
    let port = Harness.freePort()
    let server = HTTPServer(
      host: "127.0.0.1", port: port, routes: Self.routes, logger: Harness.logger, requestTimeout: .seconds(1))
    try await withServer(server, host: "127.0.0.1", port: port) {
      try await stall("127.0.0.1", port)
      // An idle client is closed after the request timeout.
      let idle = try #require(Self.connect("127.0.0.1", port))
      defer { close(idle) }
      var timeout = timeval(tv_sec: 3, tv_usec: 0)
      setsockopt(idle, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
      let started = ContinuousClock.now
      var byte: UInt8 = 0
      #expect(recv(idle, &byte, 1, 0) == 0, "closed by the server")
      #expect(ContinuousClock.now - started < .milliseconds(2500))
    }
  }

  @Test func theServicesHummingbirdEndpointIsNotStalled() async throws {
    let port = Harness.freePort()
    let server = HummingbirdOps(host: "127.0.0.1", port: port, routes: Self.routes, logger: Harness.logger)
    try await withServer(server, host: "127.0.0.1", port: port) {
      try await stall("127.0.0.1", port)
      #expect(Self.get("127.0.0.1", port, "/nope")?.status.hasPrefix("HTTP/1.1 404") == true)
    }
  }

  @Test func bothListenOnIPv6() async throws {
    #expect(Self.hasIPv6Loopback, "this machine has no ::1")
    let a = Harness.freePort()
    try await withServer(
      HTTPServer(host: "[::1]", port: a, routes: Self.routes, logger: Harness.logger), host: "::1", port: a
    ) {
      #expect(Self.get("::1", a, "/healthz")?.status.hasPrefix("HTTP/1.1 200") == true)
    }
    let b = Harness.freePort()
    try await withServer(
      HummingbirdOps(host: "[::1]", port: b, routes: Self.routes, logger: Harness.logger), host: "::1", port: b
    ) {
      #expect(Self.get("::1", b, "/healthz")?.status.hasPrefix("HTTP/1.1 200") == true)
    }
  }
}
