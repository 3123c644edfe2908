import Crypto
import Foundation
import MirrorService
import MirrorWire
import ReflectorCore
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

func run(_ argv: [String], timeout: Duration = .seconds(10), limit: Int = 1 << 20) -> (
  RunOutcome, stdout: [UInt8], stderr: [UInt8]
) {
  var out: [UInt8] = []
  var err: [UInt8] = []
  let outcome = ProcessRunner.run(argv: argv, timeout: timeout, killGrace: .milliseconds(500), outputLimit: limit) {
    channel, data in
    if channel == .stdout { out += data } else { err += data }
  }
  return (outcome, out, err)
}

/// Gone, or a zombie waiting for its (new) parent: not running.
func isRunning(_ pid: Int32) -> Bool {
  guard kill(pid, 0) == 0 else { return false }
  guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
    let close = stat.lastIndex(of: ")")
  else { return false }
  return stat[stat.index(close, offsetBy: 2)] != "Z"
}

@Suite struct ProcessRunnerTests {
  @Test func exitCodeStdoutAndStderr() {
    let (o, out, err) = run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    #expect(o.exitCode == 3)
    #expect(o.signal == nil)
    #expect(String(decoding: out, as: UTF8.self) == "out\n")
    #expect(String(decoding: err, as: UTF8.self) == "err\n")
    #expect(!o.timedOut)
    #expect(o.finishedAt >= o.startedAt)
  }

  @Test func shellMetacharactersInArgvAreNotInterpreted() {
    let (o, out, _) = run(["echo", "$(id)", ";", "ls", "|", "cat", "`whoami`", "&&", "rm", "-rf", "/nonexistent*"])
    #expect(o.exitCode == 0)
    #expect(String(decoding: out, as: UTF8.self) == "$(id) ; ls | cat `whoami` && rm -rf /nonexistent*\n")
  }

  @Test func processTreeIsKilledOnTimeoutWithNoOrphans() async throws {
    let start = ContinuousClock.now
    let (o, out, _) = run(
      ["sh", "-c", "sleep 300 & echo $!; (sleep 300 & echo $!; wait) & sleep 1; echo $$; wait"],
      timeout: .milliseconds(1500))
    #expect(o.timedOut)
    #expect(o.signal == SIGTERM)
    #expect(ContinuousClock.now - start < .seconds(5))
    let pids = String(decoding: out, as: UTF8.self).split(separator: "\n").compactMap { Int32($0) }
    #expect(pids.count == 3, "two sleepers and the shell: \(pids)")
    let allGone = await Harness.waitUntil(timeout: .seconds(3)) { pids.allSatisfy { !isRunning($0) } }
    #expect(allGone, "still running: \(pids.filter(isRunning))")
  }

  @Test func processIgnoringSIGTERMIsKilled() {
    let (o, _, _) = run(["sh", "-c", "trap '' TERM; sleep 300"], timeout: .milliseconds(300))
    #expect(o.timedOut)
    #expect(o.signal == SIGKILL)
  }

  @Test func outputIsCappedAndMarkedTruncated() {
    let (o, out, _) = run(["head", "-c", "3000000", "/dev/zero"], limit: 1 << 20)
    #expect(o.exitCode == 0)
    #expect(o.truncated)
    #expect(out.count == 1 << 20)
    #expect(o.outputBytes == 3_000_000)
    #expect(o.chunks >= 1)
  }

  @Test func unknownProgramIsASpawnError() {
    let (o, _, _) = run(["/nonexistent/program"])
    #expect(o.spawnError?.contains("cannot start /nonexistent/program") == true)
  }
}

@Suite struct WakeOnLANTests {
  @Test func magicPacketLayout() throws {
    let p = try WakeOnLAN.packet(mac: "aa:bb:cc:dd:ee:ff")
    #expect(p.count == 102)
    #expect(p.prefix(6).allSatisfy { $0 == 0xFF })
    #expect(Array(p[6..<12]) == [0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF])
    #expect(Array(p[96..<102]) == [0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF])
    #expect(throws: WakeOnLAN.Failure.self) { try WakeOnLAN.packet(mac: "aa:bb:cc") }
    #expect(throws: WakeOnLAN.Failure.self) { try WakeOnLAN.packet(mac: "zz:bb:cc:dd:ee:ff") }
  }

  @Test func packetIsSentOverUDP() throws {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        _ = bind(fd, $0, len)
        _ = getsockname(fd, $0, &len)
      }
    }
    var tv = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    try WakeOnLAN.send(mac: "01-23-45-67-89-ab", to: "127.0.0.1", port: UInt16(bigEndian: addr.sin_port))
    var buffer = [UInt8](repeating: 0, count: 200)
    let n = recv(fd, &buffer, buffer.count, 0)
    #expect(n == 102)
    #expect(Array(buffer[6..<12]) == [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB])
  }
}

/// A router key for tests, and dispatches signed with it (or not).
struct TestRouter {
  let key = Curve25519.Signing.PrivateKey()
  var publicKey: Data { key.publicKey.rawRepresentation }

  func dispatch(
    _ id: String, host: String = "node1", argv: [String] = ["uptime"], builtin: BuiltinAction = .none,
    deadline: Int64 = Date().unixMilliseconds + 60_000, timeoutMs: UInt32 = 5000,
    signedBy signer: Curve25519.Signing.PrivateKey? = nil, shell: Bool = false, service: String = "", mac: String = "",
    broadcast: String = ""
  ) throws -> [UInt8] {
    let body = CommandDispatchBody(
      commandId: id, host: host,
      action: CommandAction(
        argv: argv, shell: shell, builtin: builtin, service: service, mac: mac, broadcastAddress: broadcast),
      timeoutMs: timeoutMs, deadlineUnixMs: deadline, issuedAtUnixMs: Date().unixMilliseconds,
      requester: "alice"
    ).encode()
    let signature = try (signer ?? key).signature(for: body)
    return CommandDispatch(body: body, signature: Array(signature), keyId: "router-1").encode()
  }
}

@Suite struct DispatchVerifierTests {
  let router = TestRouter()
  var now: Int64 { Date().unixMilliseconds }

  func verifier() throws -> DispatchVerifier { try DispatchVerifier(routerPublicKey: router.publicKey, host: "node1") }

  @Test func validDispatchIsAccepted() throws {
    let body = try verifier().verify(router.dispatch("c1"), nowUnixMs: now).get()
    #expect(body.commandId == "c1")
    #expect(body.action?.argv == ["uptime"])
  }

  @Test func forgedDispatchIsRefused() throws {
    let forged = try router.dispatch("c2", signedBy: Curve25519.Signing.PrivateKey())
    let error = #expect(throws: Rejection.self) { try self.verifier().verify(forged, nowUnixMs: self.now).get() }
    #expect(error?.code == .badSignature)
  }

  @Test func tamperedBodyIsRefused() throws {
    var dispatch = try CommandDispatch(decoding: router.dispatch("c3"))
    var body = try CommandDispatchBody(decoding: dispatch.body)
    body.action?.argv = ["rm", "-rf", "/"]
    dispatch.body = body.encode()
    let error = #expect(throws: Rejection.self) {
      try self.verifier().verify(dispatch.encode(), nowUnixMs: self.now).get()
    }
    #expect(error?.code == .badSignature)
  }

  @Test func unsignedDispatchIsRefused() throws {
    var dispatch = try CommandDispatch(decoding: router.dispatch("c4"))
    dispatch.signature = []
    let error = #expect(throws: Rejection.self) {
      try self.verifier().verify(dispatch.encode(), nowUnixMs: self.now).get()
    }
    #expect(error?.code == .unsigned)
  }

  @Test func expiredDispatchIsRefused() throws {
    let error = #expect(throws: Rejection.self) {
      try self.verifier().verify(self.router.dispatch("c5", deadline: self.now - 1000), nowUnixMs: self.now).get()
    }
    #expect(error?.code == .expired)
  }

  @Test func replayedDispatchIsRefused() throws {
    let v = try verifier()
    let payload = try router.dispatch("c6")
    #expect(throws: Never.self) { try v.verify(payload, nowUnixMs: self.now).get() }
    let error = #expect(throws: Rejection.self) { try v.verify(payload, nowUnixMs: self.now).get() }
    #expect(error?.code == .replayed)
  }

  @Test func dispatchForAnotherHostIsRefused() throws {
    let error = #expect(throws: Rejection.self) {
      try self.verifier().verify(self.router.dispatch("c7", host: "node2"), nowUnixMs: self.now).get()
    }
    #expect(error?.code == .wrongHost)
  }

  @Test(arguments: [[], [0xFF, 0xFF, 0xFF], Array("hello".utf8)] as [[UInt8]])
  func garbageIsMalformedOrUnsigned(_ bytes: [UInt8]) throws {
    let error = #expect(throws: Rejection.self) { try self.verifier().verify(bytes, nowUnixMs: self.now).get() }
    #expect(error?.code == .malformed || error?.code == .unsigned)
  }
}

@Suite struct CommandPolicyTests {
  func write(_ yaml: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UUID().uuidString).yaml").path
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @Test func defaultAllowsOnlyBuiltins() {
    let p = CommandPolicy()
    #expect(!p.allows(argv: ["uptime"]))
    #expect(!p.allowShell)
    #expect(p.builtins == ["restart_service", "wake_on_lan", "collect_now"])
  }

  @Test func patterns() throws {
    let p = try CommandPolicy.load(
      write(
        """
        commands:
          - [uptime]
          - [/usr/bin/df, -h, "**"]
          - [systemctl, status, "*"]
        services: ["nginx", "postgresql@*"]
        """))
    #expect(p.allows(argv: ["uptime"]))
    #expect(p.allows(argv: ["/usr/bin/uptime"]), "a bare name matches the program by any path")
    #expect(!p.allows(argv: ["uptime", "-p"]))
    #expect(p.allows(argv: ["/usr/bin/df", "-h"]))
    #expect(p.allows(argv: ["/usr/bin/df", "-h", "/", "/home"]))
    #expect(!p.allows(argv: ["df", "-h"]), "a pattern with a path needs that path")
    #expect(p.allows(argv: ["systemctl", "status", "nginx"]))
    #expect(!p.allows(argv: ["systemctl", "stop", "nginx"]))
    #expect(!p.allows(argv: ["systemctl", "status", "a", "b"]))
    #expect(p.allows(service: "postgresql@15-main"))
    #expect(!p.allows(service: "sshd"))
  }

  @Test(
    "bad policy files name the setting",
    arguments: [
      ("allow_shell: maybe", "policy.allow_shell"),
      ("builtins: [reboot]", "policy.builtins"),
      ("commands: [uptime]", "policy.commands"),
      ("sandbox: docker", "policy.sandbox"),
      ("output_limit: -5", "policy.output_limit"),
      ("colour: blue", "policy.colour"),
      ("commands: [[a, b]\n  - x: [", "commands.policy"),
      // Found writing bench/fuzz.sh (FuzzPolicy): beyond Int64 milliseconds, they trapped.
      ("timeout_max: 1e20m", "policy.timeout_max"),
      ("sessions:\n  idle_timeout: 1e20m", "policy.sessions.idle_timeout"),
      // Found by bench/fuzz.sh (FuzzPolicy, minimised): a key that is a map
      // or a list stopped the process inside Yams.
      ("? a:", "commands.policy"),
      ("sessions: {[a, b]: 1}", "commands.policy"),
    ])
  func badPolicy(_ yaml: String, _ key: String) throws {
    let path = try write(yaml)
    let error = #expect(throws: ConfigError.self) { try CommandPolicy.load(path) }
    #expect(error?.key == key)
    #expect(error?.source == path)
  }

  @Test func executorRefusesWhatPolicyDoesNot() throws {
    let executor = CommandExecutor(policy: CommandPolicy(), collectNow: {})
    func body(_ action: CommandAction) -> CommandDispatchBody {
      CommandDispatchBody(commandId: "x", host: "h", action: action)
    }
    #expect(throws: Rejection.self) { try executor.plan(body(CommandAction(argv: ["uptime"]))).get() }
    #expect(throws: Rejection.self) { try executor.plan(body(CommandAction(argv: ["uptime"], shell: true))).get() }
    #expect(throws: Rejection.self) {
      try executor.plan(body(CommandAction(builtin: .restartService, service: "--now"))).get()
    }
    #expect(
      try executor.plan(body(CommandAction(builtin: .restartService, service: "nginx"))).get() == [
        "systemctl", "restart", "--", "nginx",
      ])
    var shellPolicy = CommandPolicy()
    shellPolicy.allowShell = true
    let shell = CommandExecutor(policy: shellPolicy, collectNow: {})
    #expect(
      try shell.plan(body(CommandAction(argv: ["echo", "a", "|", "wc"], shell: true))).get() == [
        "/bin/sh", "-c", "echo a | wc",
      ])
  }
}
