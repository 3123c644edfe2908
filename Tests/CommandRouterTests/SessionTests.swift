import Crypto
import Foundation
import MirrorBus
import MirrorService
import MirrorWire
import ReflectorCore
import TestSupport
import Testing

@testable import CommandRouterCore

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// Interactive sessions through the real router and reflector command
/// services: a shell on a PTY (input, resize, Ctrl-C, exit status), its
/// recording replayed, refusals by policy, by role and for a forged token,
/// the idle timeout, and a TCP forward carrying real HTTP both ways.
extension RouterTests {
  static func sessionPolicies(forwardPort: Int = 0) -> [String: CommandPolicy] {
    var open = CommandPolicy()
    open.sessions.shell = true
    open.sessions.shellProgram = "/bin/sh"
    open.sessions.forward = ["127.0.0.1:\(forwardPort)"]
    var closed = CommandPolicy()
    closed.commands = [["echo", "**"]]
    var idle = open
    idle.sessions.idleTimeout = .seconds(1)
    return ["node1": open, "node2": closed, "node3": idle]
  }

  /// Everything a session's client saw, and its end.
  final class Seen: Sendable {
    let output = Shared<[UInt8]>([])
    let ends = Shared<[SessionFrame]>([])
    let forward = Shared<ForwardClient?>(nil)
    var text: String { String(decoding: output.value, as: UTF8.self) }
    func handle(_ event: SessionEvent) {
      guard case .frame(let f) = event else { return }
      switch f.kind {
      case .data where f.stream == 0: output.withLock { $0 += f.data }
      case .end: ends.withLock { $0.append(f) }
      default: forward.value?.receive(f)
      }
    }
    func waitFor(_ text: String, timeout: Duration = .seconds(10)) async -> Bool {
      await Harness.waitUntil(timeout: timeout) { self.text.contains(text) }
    }
  }

  func openSession(
    _ bus: BusConnection, host: String, action: CommandAction, user: String = "root",
    key: Curve25519.Signing.PrivateKey? = nil, seen: Seen
  ) async throws -> (SessionClient, CommandRequest) {
    let token = SessionClient.makeToken()
    var a = action
    a.sessionTokenSha256 = SessionClient.digest(token)
    let r = try request(
      CommandTarget(kind: .hosts, hosts: [host]), a, by: user, key: key ?? admin, timeoutMs: 120_000,
      deadline: Date().unixMilliseconds + 60_000)
    let client = try await SessionClient.open(r, token: token, on: bus) { seen.handle($0) }
    return (client, r)
  }

  @Test func aShellSessionIsInteractiveRecordedAndReplayable() async throws {
    try db.connect().execute("INSERT INTO hosts (name, last_seen_at) VALUES ('node3', now()) ON CONFLICT DO NOTHING")
    try await withSystem(reflectors: ["node1", "node2"], policies: Self.sessionPolicies()) { bus, _ in
      let seen = Seen()
      let (client, r) = try await openSession(
        bus, host: "node1", action: CommandAction(builtin: .shell, cols: 100, rows: 30), seen: seen)
      try client.input(Array("echo hi-$((6*7))\n".utf8))
      #expect(await seen.waitFor("hi-42"))
      try client.input(Array("stty size\n".utf8))
      #expect(await seen.waitFor("30 100"))
      try client.resize(cols: 132, rows: 50)
      try client.input(Array("stty size\n".utf8))
      #expect(await seen.waitFor("50 132"))
      // Ctrl-C reaches the foreground job through the PTY: the 30 s sleep
      // ends and the shell answers at once.
      try client.input(Array("sleep 30\n".utf8))
      #expect(await seen.waitFor("sleep 30"))
      try await Task.sleep(for: .milliseconds(300))
      let interrupted = ContinuousClock.now
      try client.input([3])
      try client.input(Array("echo after-$((1+1))\n".utf8))
      #expect(await seen.waitFor("after-2", timeout: .seconds(10)))
      #expect(ContinuousClock.now - interrupted < .seconds(10))
      try client.input(Array("exit 3\n".utf8))
      #expect(await Harness.waitUntil(timeout: .seconds(10)) { !seen.ends.value.isEmpty })
      #expect(seen.ends.value.first?.exitCode == 3)
      #expect(client.link.lost == 0)
      client.close()

      let done = try await final(bus, r.id)
      #expect(done.record?.state == .failed && done.record?.hosts.first?.exitCode == 3)
      #expect(done.record.map { actionName($0.request?.action ?? CommandAction()) } == "session:shell")
      // The recording replays to exactly what the client saw, and has the
      // input and the resize.
      let cast = Asciicast.render(done)
      #expect(Asciicast.output(ofCast: cast) == seen.text)
      let lines = cast.split(separator: "\n")
      #expect(lines.first?.contains("\"version\":2") == true && lines.first?.contains("\"width\":100") == true)
      #expect(lines.contains { $0.contains("\"i\"") && $0.contains("echo hi-") })
      #expect(lines.contains { $0.contains("\"r\", \"132x50\"") })

      // mirrorctl shell with input from a pipe: the lines run, the end of
      // input is an end of file to the shell, the exit status is the shell's.
      let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent("op-\(UUID().uuidString).key").path
      try admin.rawRepresentation.base64EncodedString().write(toFile: keyFile, atomically: true, encoding: .utf8)
      defer { unlink(keyFile) }
      let mirrorctl = Harness.executable("mirrorctl")
      let script =
        "printf 'echo via-$((6*7))\\nexit 4\\n' | '\(mirrorctl)' shell node1 --nats-url '\(nats.url)' --user root --key '\(keyFile)' --reason pipe"
      let (status, output) = await withCheckedContinuation { c in
        Thread.detachNewThread { c.resume(returning: (try? Harness.run("/bin/sh", ["-c", script])) ?? (-1, "")) }
      }
      #expect(status == 4, "\(output)")
      #expect(output.contains("via-42"))
      // Refused by the host's policy: a clear line and a failure status.
      let url = nats.url
      let refused: (status: Int32, output: String) = await withCheckedContinuation { c in
        Thread.detachNewThread {
          c.resume(
            returning: (try? Harness.run(
              mirrorctl, ["shell", "node2", "--nats-url", url, "--user", "root", "--key", keyFile])) ?? (-1, ""))
        }
      }
      #expect(refused.status == 1 && refused.output.contains("does not allow interactive shells"), "\(refused.output)")
    }
  }

  @Test func sessionsAreRefusedByPolicyRoleAndForgedTokensAndEndWhenIdle() async throws {
    try db.connect().execute("INSERT INTO hosts (name, last_seen_at) VALUES ('node3', now()) ON CONFLICT DO NOTHING")
    try await withSystem(reflectors: ["node1", "node2", "node3"], policies: Self.sessionPolicies()) { bus, _ in
      // The host's policy has no shells.
      let byPolicy = await #expect(throws: SessionRefused.self) {
        _ = try await self.openSession(bus, host: "node2", action: CommandAction(builtin: .shell), seen: Seen())
      }
      #expect(
        byPolicy?.state == .rejected && byPolicy?.description.contains("does not allow interactive shells") == true)
      // alice's role may run `echo` on web hosts, not open a shell.
      let byRole = await #expect(throws: SessionRefused.self) {
        _ = try await self.openSession(
          bus, host: "node1", action: CommandAction(builtin: .shell), user: "alice", key: self.alice, seen: Seen())
      }
      #expect(byRole?.state == .denied && byRole?.description.contains("session:shell") == true)
      // Two hosts at once: not a session.
      var two = CommandAction(builtin: .shell)
      two.sessionTokenSha256 = SessionClient.digest(SessionClient.makeToken())
      let both = try request(Self.hosts12, two, by: "root", key: admin)
      #expect(try await submit(bus, both).state == .rejected)

      // Someone who learns the command id but not the token is ignored.
      let seen = Seen()
      let (client, r) = try await openSession(bus, host: "node1", action: CommandAction(builtin: .shell), seen: seen)
      let intruder = try SessionClient(
        connection: bus, host: "node1", commandID: r.id, token: SessionClient.makeToken()
      ) { _ in }
      try intruder.input(Array("echo pwned-$((2*3))\n".utf8))
      // Bytes that are no SessionFrame at all: dropped, the session goes on.
      try bus.publish(Subjects.sessionIn("node1", r.id), payload: [0xff, 0xff, 0xff, 0x01])
      try client.input(Array("echo mine-$((2*3))\n".utf8))
      #expect(await seen.waitFor("mine-6"))
      try await Task.sleep(for: .milliseconds(300))
      #expect(!seen.text.contains("pwned-6"))
      intruder.close()
      try client.end()
      #expect(await Harness.waitUntil(timeout: .seconds(10)) { !seen.ends.value.isEmpty })
      #expect(seen.ends.value.first?.reason == "the client hung up")
      client.close()
      let recorded = try await final(bus, r.id)
      #expect(!Asciicast.render(recorded).contains("pwned"))

      // node3 hangs up a session idle for a second.
      let quiet = Seen()
      let (idle, idleRequest) = try await openSession(
        bus, host: "node3", action: CommandAction(builtin: .shell), seen: quiet)
      #expect(await Harness.waitUntil(timeout: .seconds(10)) { !quiet.ends.value.isEmpty })
      #expect(quiet.ends.value.first?.reason.hasPrefix("idle") == true)
      idle.close()
      #expect(try await final(bus, idleRequest.id).record?.state == .timedOut)
    }
  }

  @Test func aPortForwardCarriesRealHTTPBothWays() async throws {
    let service = try HTTPReceiver()
    let big = String(repeating: "0123456789abcdef", count: 200_000)  // 3.2 MB each way
    service.respond(body: big)
    try await withSystem(reflectors: ["node1", "node2"], policies: Self.sessionPolicies(forwardPort: service.port)) {
      bus, _ in
      // Not a port node1 allows.
      let other = await #expect(throws: SessionRefused.self) {
        _ = try await self.openSession(
          bus, host: "node1", action: CommandAction(builtin: .forward, forwardAddress: "127.0.0.1", forwardPort: 22),
          seen: Seen())
      }
      #expect(other?.description.contains("does not allow forwarding to 127.0.0.1:22") == true)

      let (fd, port) = try ForwardClient.listen(port: 0)
      let seen = Seen()
      let forward = ForwardClient(listener: fd)
      seen.forward.withLock { $0 = forward }
      let (client, r) = try await openSession(
        bus, host: "node1",
        action: CommandAction(builtin: .forward, forwardAddress: "127.0.0.1", forwardPort: UInt32(service.port)),
        seen: seen)
      Thread.detachNewThread { forward.serve(client) }
      for i in 0..<2 {
        var post = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/through/\(i)")!)
        post.httpMethod = "POST"
        post.httpBody = Data(big.utf8)
        let (body, response) = try await URLSession.shared.data(for: post)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        #expect(body.count == big.utf8.count && String(decoding: body, as: UTF8.self) == big)
      }
      let got = service.requests
      #expect(got.map(\.path) == ["/through/0", "/through/1"])
      #expect(got.allSatisfy { $0.body.count == big.utf8.count })
      try client.end()
      #expect(await Harness.waitUntil(timeout: .seconds(10)) { !seen.ends.value.isEmpty })
      forward.stop()
      client.close()
      let done = try await final(bus, r.id)
      #expect(done.record?.state == .succeeded)
      #expect(done.record?.hosts.first?.reason.hasPrefix("2 connections") == true)
      let log = String(decoding: done.output.flatMap(\.data), as: UTF8.self)
      #expect(log.contains("connection 1 opened") && log.contains("connection 2 closed"))
    }
  }
}
