import Crypto
import Foundation
import MirrorBus
import MirrorService
import MirrorServiceStore
import MirrorStore
import MirrorWire
import ReflectorCore
import ServiceLifecycle
import TestSupport
import Testing

@testable import CommandRouterCore

/// The router with real reflector command services, a real nats-server and
/// PostgreSQL: identity, rules, fan-out, results, forgeries, expiry,
/// timeouts, the pending subject, a restart, the archive.
@Suite(.serialized) final class RouterTests {
  let nats: NATSTestServer
  let db: PostgresTestDatabase
  let routerKey = Curve25519.Signing.PrivateKey()
  let admin = Curve25519.Signing.PrivateKey()
  let alice = Curve25519.Signing.PrivateKey()
  let bob = Curve25519.Signing.PrivateKey()

  init() throws {
    nats = try NATSTestServer()
    db = try PostgresTestDatabase("router")
    let conn = try db.connect()
    try MigrationRunner.migrate(conn, timescale: .off, logger: Harness.logger)
    for (name, key, role) in [("root", admin, "admin"), ("alice", alice, "operator"), ("bob", bob, "viewer")] {
      try conn.query(
        "INSERT INTO users (name, public_key) VALUES ($1, $2)",
        [name, PGBytes([UInt8](key.publicKey.rawRepresentation))])
      try conn.query("INSERT INTO user_roles SELECT id, $2 FROM users WHERE name = $1", [name, role])
    }
    try conn.execute(
      """
      INSERT INTO hosts (name, addresses, mac_addresses, labels, last_seen_at) VALUES
        ('node1', '{10.1.1.11}', '{aa:bb:cc:00:00:01}', '{"role": "web"}', now()),
        ('node2', '{10.1.1.12}', '{aa:bb:cc:00:00:02}', '{"role": "db"}', now()),
        ('sleepy', '{10.1.1.13}', '{aa:bb:cc:00:00:03}', '{}', now() - interval '1 day'),
        ('ghost', '{10.9.9.9}', '{}', '{}', now());
      INSERT INTO host_groups (name, selector) VALUES ('web', '{"role": "web"}');
      INSERT INTO command_rules (role, action, host_group) VALUES ('operator', 'argv:echo *', 'web');
      """)
  }

  /// The router and reflectors for node1 and node2, running until `body` ends.
  func withSystem(
    routerSettings: CommandRouter.Settings = .init(), reflectors: [String] = ["node1", "node2"],
    policies: [String: CommandPolicy] = [:], _ body: (BusConnection, () async -> Void) async throws -> Void
  ) async throws {
    let config = ConfigValues(overrides: ["nats.urls": nats.url, "database.url": db.url])
    let settings = try ServiceSettings(service: "command-router", defaultHTTPPort: 0, config: config)
    let context = ServiceContext(settings: settings, config: config, logger: Harness.logger, health: Health())
    var policy = CommandPolicy()
    policy.commands = [["echo", "**"], ["sh", "-c", "*"]]
    var agents: [any Service] = []
    for host in reflectors {
      let busService = BusService(options: settings.bus, streams: [Streams.commands], context: context)
      agents.append(busService)
      agents.append(
        CommandService(
          host: host, bus: busService,
          verifier: try DispatchVerifier(routerPublicKey: routerKey.publicKey.rawRepresentation, host: host),
          executor: CommandExecutor(policy: policies[host] ?? policy, collectNow: {}), logger: Harness.logger))
    }
    let agentGroup = ServiceGroup(services: agents, logger: Harness.logger)
    let agentsRunning = Task { try await agentGroup.run() }
    func startRouter() -> (ServiceGroup, Task<Void, any Error>) {
      let bus = BusService(options: settings.bus, streams: [Streams.commands], context: context)
      let router = CommandRouter(
        settings: routerSettings, signingKey: routerKey, bus: bus,
        database: PostgresClient(url: db.url, logger: Harness.logger), logger: Harness.logger)
      let group = ServiceGroup(services: [bus, router], logger: Harness.logger)
      return (group, Task { try await group.run() })
    }
    var (routerGroup, routerRunning) = startRouter()
    let client = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    // Every reflector's consumer and the router's two are bound.
    #expect(
      await Harness.waitUntil(timeout: .seconds(20)) {
        (try? await client.streamState("COMMANDS").consumers) ?? 0 >= reflectors.count + 2
      })
    let restart = {
      await routerGroup.triggerGracefulShutdown()
      _ = await routerRunning.result
      (routerGroup, routerRunning) = startRouter()
    }
    do { try await body(client, restart) } catch {
      await routerGroup.triggerGracefulShutdown()
      await agentGroup.triggerGracefulShutdown()
      throw error
    }
    await routerGroup.triggerGracefulShutdown()
    await agentGroup.triggerGracefulShutdown()
    _ = await routerRunning.result
    _ = await agentsRunning.result
  }

  func request(
    _ target: CommandTarget, _ action: CommandAction, by user: String?, key: Curve25519.Signing.PrivateKey?,
    timeoutMs: UInt32 = 10_000, deadline: Int64 = 0
  ) throws -> CommandRequest {
    let r = CommandRequest(
      id: UUID().uuidString.lowercased(), target: target, action: action, timeoutMs: timeoutMs,
      deadlineUnixMs: deadline, reason: "test", submittedAtUnixMs: Date().unixMilliseconds)
    guard let user, let key else { return r }
    return try Identity.sign(r, user: user, key: key)
  }

  func submit(_ bus: BusConnection, _ r: CommandRequest) async throws -> SubmitCommandResponse {
    try await bus.request(Subjects.commandsSubmit, r, expecting: SubmitCommandResponse.self, timeout: .seconds(10))
  }

  /// The record once it is final (or the last one seen).
  func final(_ bus: BusConnection, _ id: String, timeout: Duration = .seconds(20)) async throws
    -> CommandRecordWithOutput
  {
    var last: CommandRecordWithOutput?
    _ = await Harness.waitUntil(timeout: timeout) {
      last = try? await bus.request(
        Subjects.commandsGet, GetCommandRequest(id: id, withOutput: true), expecting: CommandRecordWithOutput.self)
      return last?.record?.state.isFinal == true
    }
    return try #require(last)
  }

  static let hosts12 = CommandTarget(kind: .hosts, hosts: ["node1", "node2"])

  @Test func anAdminRunsOnTwoHostsAndEverythingIsAudited() async throws {
    try await withSystem { bus, _ in
      let r = try request(
        Self.hosts12, CommandAction(argv: ["sh", "-c", "echo hi from $0; exit 3"]), by: "root", key: admin)
      let reply = try await submit(bus, r)
      #expect(reply.state == .dispatched && reply.hosts == ["node1", "node2"], "\(reply)")
      let done = try await final(bus, r.id)
      let record = try #require(done.record)
      #expect(record.state == .failed, "exit 3 on both")
      #expect(record.hosts.map(\.exitCode) == [3, 3])
      #expect(record.hosts.allSatisfy { $0.startedAtUnixMs > 0 && $0.finishedAtUnixMs >= $0.startedAtUnixMs })
      #expect(record.request?.operatorKeyId == "root")
      let text = Dictionary(grouping: done.output, by: \.host).mapValues {
        String(decoding: $0.flatMap(\.data), as: UTF8.self)
      }
      #expect(text == ["node1": "hi from sh\n", "node2": "hi from sh\n"])
      let list = try await bus.request(
        Subjects.commandsList, ListCommandsRequest(host: "node2", requester: "root"),
        expecting: ListCommandsResponse.self)
      #expect(list.commands.map { $0.request?.id } == [r.id])
      // Submitting the same request again runs nothing twice.
      let again = try await submit(bus, r)
      #expect(again.state == .failed && again.reason.hasPrefix("duplicate"))
    }
  }

  /// mirrorctl exec's way: submit, then wait on events only — the output
  /// on commands.result, the router's announcement on commands.state.<id>.
  /// Output is complete and in order per host, even when chunks are lost on
  /// the way (read back once from the audit record).
  @Test func aCommandRunWaitsOnEventsAndItsOutputIsCompleteAndInOrder() async throws {
    try await withSystem { bus, _ in
      // Thirty lines a few milliseconds apart: thirty chunks or so.
      let script = CommandAction(
        argv: ["sh", "-c", "i=0; while [ $i -lt 30 ]; do echo line $i; sleep 0.02; i=$((i+1)); done"])
      let expected = (0..<30).map { "line \($0)\n" }.joined()
      final class Collected: @unchecked Sendable {
        let lock = NSLock()
        var chunks: [String: [UInt64]] = [:]
        var text: [String: String] = [:]
        func add(_ o: CommandOutput) {
          lock.withLock {
            chunks[o.host, default: []].append(o.chunkSequence)
            text[o.host, default: ""] += String(decoding: o.data, as: UTF8.self)
          }
        }
      }
      enum Delivery: CaseIterable { case whole, lossy, late, bounded }
      for delivery in Delivery.allCases {
        let seen = Collected()
        let r = try request(Self.hosts12, script, by: "root", key: admin)
        let outcome = try await CommandRun.run(
          r, on: bus, replyTimeout: .seconds(10), wait: .seconds(30),
          losing: { o in
            switch delivery {
            case .whole, .bounded: false
            // Every third chunk of node2 never arrives live.
            case .lossy: o.host == "node2" && o.chunkSequence % 3 == 0
            // As a client that subscribed after both hosts' first five
            // chunks had gone by.
            case .late: o.chunkSequence <= 5
            }
          },
          // Bounded: at most one chunk waiting; whatever does not fit is
          // read back from the audit record.
          maxQueued: delivery == .bounded ? 1 : 65_536, onOutput: seen.add)
        let record = try #require(outcome.record, "\(outcome.reply)")
        #expect(record.state == .succeeded && record.hosts.count == 2)
        #expect(seen.text["node1"] == expected && seen.text["node2"] == expected, "\(delivery)")
        for host in ["node1", "node2"] {
          let chunks = seen.chunks[host] ?? []
          #expect(
            chunks.count > 5 && chunks == Array(1...UInt64(chunks.count)), "every chunk once, in order: \(chunks)")
        }
        if delivery != .bounded {
          #expect((outcome.recovered > 0) == (delivery != .whole), "recovered \(outcome.recovered)")
        }
        if delivery == .late { #expect(outcome.recovered >= 10) }
      }
      // A command refused outright: the reply says so, nothing to wait for.
      let denied = try await CommandRun.run(
        try request(Self.hosts12, script, by: nil, key: nil), on: bus, wait: .seconds(5))
      #expect(denied.record == nil && denied.reply.state == .denied)
    }
  }

  @Test func identityAndRulesDecide() async throws {
    try await withSystem { bus, _ in
      let echo = CommandAction(argv: ["echo", "ok"])
      let web = CommandTarget(kind: .group, group: "web")
      var tampered = try request(web, echo, by: "alice", key: alice)
      tampered.action = CommandAction(argv: ["echo", "something else"])
      let cases: [(String, CommandRequest, CommandState, String)] = [
        ("unsigned", try request(web, echo, by: nil, key: nil), .denied, "unauthenticated"),
        ("tampered", tampered, .denied, "bad_signature"),
        ("key of another user", try request(web, echo, by: "alice", key: bob), .denied, "bad_signature"),
        ("viewer", try request(web, echo, by: "bob", key: bob), .denied, "forbidden"),
        (
          "operator outside the group",
          try request(CommandTarget(kind: .hosts, hosts: ["node2"]), echo, by: "alice", key: alice),
          .denied, "forbidden"
        ),
        (
          "operator, action not in a rule",
          try request(web, CommandAction(argv: ["sh", "-c", "id"]), by: "alice", key: alice), .denied, "forbidden"
        ),
        (
          "unknown host", try request(CommandTarget(kind: .hosts, hosts: ["nowhere"]), echo, by: "root", key: admin),
          .rejected, "unknown_host"
        ),
        (
          "past its deadline", try request(web, echo, by: "root", key: admin, deadline: 1_000), .expired, "expired"
        ),
      ]
      for (name, r, state, code) in cases {
        let reply = try await submit(bus, r)
        #expect(reply.state == state && reply.reason.hasPrefix(code), "\(name): \(reply)")
        let stored = try db.connect().query("SELECT state FROM commands WHERE id = $1", [r.id])
        #expect(try stored.rows.first?.decode(String.self, 0) == state.stored, "\(name) is in the audit trail")
      }
      // The operator within the rule: runs.
      let allowed = try request(web, echo, by: "alice", key: alice)
      #expect(try await submit(bus, allowed).state == .dispatched)
      #expect(try await final(bus, allowed.id).record?.state == .succeeded)
    }
  }

  @Test func forgedResultsExpiryAndTimeouts() async throws {
    var settings = CommandRouter.Settings()
    settings.grace = .zero
    settings.sweepInterval = .milliseconds(200)
    try await withSystem(routerSettings: settings) { bus, _ in
      let r = try request(
        CommandTarget(kind: .hosts, hosts: ["node1"]), CommandAction(argv: ["sh", "-c", "sleep 1"]), by: "root",
        key: admin)
      #expect(try await submit(bus, r).state == .dispatched)
      // node2 speaks for a command never sent to it; node1's subject with node2 in the payload.
      for (subject, host) in [("commands.result.node2", "node2"), ("commands.result.node1", "node2")] {
        _ = try await bus.jetStreamPublish(
          subject,
          CommandResult(commandId: r.id, host: host, state: .failed, exitCode: 99, reason: "forged"),
          msgID: UUID().uuidString)
      }
      let record = try #require(try await final(bus, r.id).record)
      #expect(record.state == .succeeded, "the forgeries changed nothing")
      #expect(record.hosts.map(\.exitCode) == [0])

      // A host that never picks it up: expired after the deadline.
      let late = try request(
        CommandTarget(kind: .hosts, hosts: ["ghost"]), CommandAction(argv: ["echo"]), by: "root", key: admin,
        deadline: Date().unixMilliseconds + 1_500)
      #expect(try await submit(bus, late).state == .dispatched)
      #expect(try await final(bus, late.id).record?.state == .expired)

      // A host that starts and then goes silent: timed out.
      let silent = try request(
        CommandTarget(kind: .hosts, hosts: ["ghost"]), CommandAction(argv: ["echo"]), by: "root", key: admin,
        timeoutMs: 500)
      #expect(try await submit(bus, silent).state == .dispatched)
      _ = try await bus.jetStreamPublish(
        "commands.result.ghost",
        CommandResult(
          commandId: silent.id, host: "ghost", state: .running,
          startedAtUnixMs: Date().unixMilliseconds), msgID: UUID().uuidString)
      let timedOut = try await final(bus, silent.id)
      #expect(timedOut.record?.state == .timedOut, "\(String(describing: timedOut.record))")
    }
  }

  @Test func wakeOnLANGoesThroughAnAwakeNeighbour() async throws {
    try await withSystem { bus, _ in
      let r = try request(
        CommandTarget(kind: .hosts, hosts: ["sleepy"]), CommandAction(builtin: .wakeOnLan), by: "root", key: admin)
      #expect(try await submit(bus, r).state == .dispatched)
      let stored = try db.connect().query("SELECT via FROM command_targets WHERE command_id = $1", [r.id])
      #expect(try stored.rows.first?.decode(String.self, 0) == "node1", "same /24, awake, first by name")
      let record = try await final(bus, r.id).record
      #expect(record?.hosts.first?.host == "sleepy" && record?.hosts.first?.via == "node1")
      #expect(record?.state == .succeeded, "\(String(describing: record))")
    }
  }

  @Test func pendingSubjectRestartAndArchive() async throws {
    try await withSystem { bus, restart in
      // Garbage on commands.pending is dropped (counted, logged), and does not hold up what follows.
      _ = try await bus.jetStreamPublish(Subjects.commandsPending, payload: [0xFF, 0x01], msgID: "garbage")
      // On commands.pending (no reply): carried out all the same.
      let viaStream = try request(Self.hosts12, CommandAction(argv: ["echo", "queued"]), by: "root", key: admin)
      _ = try await bus.jetStreamPublish(Subjects.commandsPending, viaStream, msgID: viaStream.id)
      #expect(try await final(bus, viaStream.id).record?.state == .succeeded)

      // A router restart while a command runs: it finishes, once.
      let long = try request(
        CommandTarget(kind: .hosts, hosts: ["node1"]), CommandAction(argv: ["sh", "-c", "sleep 1; echo done"]),
        by: "root", key: admin)
      #expect(try await submit(bus, long).state == .dispatched)
      await restart()
      let done = try await final(bus, long.id)
      #expect(done.record?.state == .succeeded)
      #expect(String(decoding: done.output.flatMap(\.data), as: UTF8.self) == "done\n", "one run, output once")

      // Recorded but never dispatched (a router stopped in between): the next start sends it.
      let orphan = try request(
        CommandTarget(kind: .hosts, hosts: ["node2"]), CommandAction(argv: ["echo", "late"]), by: "root", key: admin)
      var withDefaults = orphan
      withDefaults.deadlineUnixMs = Date().unixMilliseconds + 60_000
      let conn = try db.connect()
      try CommandStore.insert(withDefaults, state: .pending, reason: "", targets: [("node2", "node2")], on: conn)
      await restart()
      let late = try await final(bus, orphan.id)
      #expect(late.record?.state == .succeeded)
      #expect(String(decoding: late.output.flatMap(\.data), as: UTF8.self) == "late\n")

      // Audit rows past the retention move to the archive, output and all.
      let moved = try CommandStore.archive(before: Date().unixMilliseconds + 1000, on: conn)
      #expect(moved >= 3)
      #expect(try conn.query("SELECT count(*) FROM commands WHERE id = $1", [long.id])[0].decode(Int.self, 0) == 0)
      #expect(
        try conn.query("SELECT count(*) FROM commands_archive WHERE id = $1", [long.id])[0].decode(Int.self, 0) == 1)
      #expect(
        try conn.query("SELECT count(*) FROM command_output_archive WHERE command_id = $1", [long.id])[0].decode(
          Int.self, 0) >= 1)
    }
  }

  @Test func aDispatchThatCouldNotBePublishedIsSentAgainWhileRunning() async throws {
    var settings = CommandRouter.Settings()
    settings.redispatchAfter = .milliseconds(300)
    try await withSystem(routerSettings: settings) { bus, _ in
      // Recorded, but its publish failed (a NATS node lost, the stream
      // electing a leader: "no responders"), and the router keeps running:
      // its housekeeping sends it again, and it runs once.
      let stalled = try request(
        CommandTarget(kind: .hosts, hosts: ["node1"]), CommandAction(argv: ["echo", "again"]), by: "root", key: admin)
      var withDefaults = stalled
      withDefaults.deadlineUnixMs = Date().unixMilliseconds + 60_000
      try CommandStore.insert(
        withDefaults, state: .pending, reason: "", targets: [("node1", "node1")], on: try db.connect())
      let done = try await final(bus, stalled.id)
      #expect(done.record?.state == .succeeded, "\(String(describing: done.record))")
      #expect(String(decoding: done.output.flatMap(\.data), as: UTF8.self) == "again\n", "one run, output once")
    }
  }

  @Test func theReflectorExecutableRunsCommandsWithItsKeyAndPolicy() async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("router-exe-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try (routerKey.publicKey.rawRepresentation.base64EncodedString() + "\n").write(
      toFile: "\(dir)/router.pub", atomically: true, encoding: .utf8)
    try "commands:\n  - [echo, \"**\"]\n".write(toFile: "\(dir)/policy.yaml", atomically: true, encoding: .utf8)
    try db.connect().execute("INSERT INTO hosts (name, last_seen_at) VALUES ('exe1', now())")
    let reflector = try Harness.launch(
      "reflector",
      [
        "run", "--nats-url", nats.url, "--http", "127.0.0.1:\(Harness.freePort())", "--log-level", "error",
        "--set", "reflector.host=exe1", "--set", "commands.router-key=\(dir)/router.pub",
        "--set", "commands.policy=\(dir)/policy.yaml",
      ])
    defer {
      if reflector.isRunning {
        reflector.terminate()
        reflector.waitUntilExit()
      }
    }
    try await withSystem(reflectors: []) { bus, _ in
      // Its consumer is bound once the stream has one more.
      #expect(
        await Harness.waitUntil(timeout: .seconds(20)) { (try? await bus.streamState("COMMANDS").consumers) == 3 })
      let ok = try request(
        CommandTarget(kind: .hosts, hosts: ["exe1"]), CommandAction(argv: ["echo", "from", "the", "binary"]),
        by: "root", key: admin)
      #expect(try await submit(bus, ok).state == .dispatched)
      let done = try await final(bus, ok.id)
      #expect(done.record?.state == .succeeded)
      #expect(String(decoding: done.output.flatMap(\.data), as: UTF8.self) == "from the binary\n")
      let refused = try request(
        CommandTarget(kind: .hosts, hosts: ["exe1"]), CommandAction(argv: ["id"]), by: "root", key: admin)
      #expect(try await submit(bus, refused).state == .dispatched)
      let no = try await final(bus, refused.id)
      #expect(no.record?.state == .rejected && no.record?.hosts.first?.reason.hasPrefix("not_allowed") == true)
    }
    // Its command fetch is a 30 s long poll; SIGTERM still stops it at once
    // (the wait is ended by closing the subscription).
    let stopping = ContinuousClock.now
    reflector.terminate()
    reflector.waitUntilExit()
    #expect(ContinuousClock.now - stopping < .seconds(10))
  }
}
