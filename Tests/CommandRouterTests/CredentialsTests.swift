import Crypto
import Foundation
import MirrorBus
import MirrorService
import MirrorWire
import ReflectorCore
import ServiceLifecycle
import TestSupport
import Testing

/// `mirrorctl creds add-host` against a real nats-server running the
/// configuration it generates: a host signs in with its NKey and can use
/// its own subjects and nothing of another host's.
@Suite(.serialized) final class CredentialsTests {
  let dir: String
  let nats: NATSTestServer
  /// Each host's NKey public key, as its reflector settings name it.
  let publicKeys: [String: String]
  let services: String

  init() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("creds-\(UUID().uuidString)").path
    self.dir = dir
    let mirrorctl = Harness.executable("mirrorctl")
    for host in ["a", "b"] {
      let r = try Harness.run(mirrorctl, ["creds", "add-host", host, "--dir", dir])
      guard r.status == 0 else { throw HarnessError("creds add-host \(host): \(r.output)") }
    }
    func publicKey(_ host: String) throws -> String {
      let yaml = try String(contentsOfFile: "\(dir)/hosts/\(host).reflector.yaml", encoding: .utf8)
      let line = yaml.split(separator: "\n").first { $0.contains("nkey-public:") } ?? ""
      return line.split(separator: " ").last.map(String.init) ?? ""
    }
    publicKeys = ["a": try publicKey("a"), "b": try publicKey("b")]
    services = try String(contentsOfFile: "\(dir)/services.pub", encoding: .utf8).trimmingCharacters(
      in: .whitespacesAndNewlines)
    try "include \"authorization.conf\"\n".write(toFile: "\(dir)/server.conf", atomically: true, encoding: .utf8)
    nats = try NATSTestServer(arguments: ["-c", "\(dir)/server.conf"])
  }

  deinit { try? FileManager.default.removeItem(atPath: dir) }

  /// Connects as host `host` (its public key, `seed`'s private key: its
  /// own unless told otherwise), or as the EGO services.
  func connect(_ host: String?, seed: String? = nil) async throws -> BusConnection {
    let options =
      host.map {
        BusOptions(
          urls: [nats.url], nkeySeedFile: "\(dir)/hosts/\(seed ?? $0).nk", nkeyPublicKey: publicKeys[$0],
          inboxPrefix: "_INBOX_\($0)", maxReconnect: 0, jetStreamTimeout: .seconds(1))
      } ?? BusOptions(urls: [nats.url], nkeySeedFile: "\(dir)/services.nk", nkeyPublicKey: services)
    return try await BusConnection.connect(options, logger: Harness.logger)
  }

  @Test func aHostUsesItsOwnSubjectsAndNoneOfAnother() async throws {
    let admin = try await connect(nil)
    for s in [Streams.metrics, Streams.events, Streams.commands] { try await admin.ensureStream(s) }
    // Without credentials: refused outright.
    await #expect(throws: NATSError.self) {
      _ = try await BusConnection.connect(BusOptions(urls: [self.nats.url], maxReconnect: 0), logger: Harness.logger)
    }
    let a = try await connect("a")

    // Its own metrics: stored, with the JetStream ack back on its own inbox.
    let ack = try await a.jetStreamPublish("metrics.raw.a", MetricsBatch(host: "a", sequence: 1), msgID: "a-1")
    #expect(ack.sequence == 1)
    // As host b: refused, nothing stored.
    for subject in ["metrics.raw.b", "events.b", "commands.result.b"] {
      await #expect(throws: (any Error).self, "\(subject)") {
        _ = try await a.jetStreamPublish(
          subject, payload: [1], msgID: UUID().uuidString, timeout: .milliseconds(500))
      }
    }
    #expect(try await admin.streamState("METRICS").messages == 1)

    // b's dispatches: not to a's subscription, not through b's consumer.
    let spy = try a.subscribe("commands.dispatch.b")
    try? await a.flush()
    _ = try await admin.jetStreamPublish("commands.dispatch.b", payload: [7], msgID: "for-b")
    #expect(await Harness.collect(spy, count: 1, timeout: .seconds(1)).isEmpty)
    await #expect(throws: NATSError.self) {
      _ = try await a.pullConsumer(
        stream: "COMMANDS", ConsumerConfig(durable: "reflector_b", filterSubject: "commands.dispatch.b"))
    }
    // Nor through a consumer of its own that filters b's subject, by any
    // form of the create call: refused (no reply) or answered with an error.
    for subject in [
      "$JS.API.CONSUMER.DURABLE.CREATE.COMMANDS.reflector_a", "$JS.API.CONSUMER.CREATE.COMMANDS.reflector_a",
      "$JS.API.CONSUMER.CREATE.COMMANDS.reflector_a.commands.dispatch.b",
      "$JS.API.CONSUMER.CREATE.COMMANDS.reflector_a.commands.dispatch.a",
    ] {
      let create = """
        {"stream_name": "COMMANDS", "config": {"durable_name": "reflector_a", "name": "reflector_a",
         "filter_subject": "commands.dispatch.b", "ack_policy": "explicit", "deliver_policy": "all"}}
        """
      let reply = try? await a.request(subject, payload: Array(create.utf8), timeout: .milliseconds(500))
      #expect(reply.map { String(decoding: $0.payload, as: UTF8.self).contains("\"error\"") } ?? true, "\(subject)")
    }
    #expect(try await admin.streamState("COMMANDS").consumers == 0)

    // Sessions: its own input and output; not b's keystrokes, not b's output.
    let ownInput = try a.subscribe("sessions.a.s1.in")
    try a.publish("sessions.a.s1.out", payload: [1])
    let peek = try a.subscribe("sessions.b.s2.in")
    try? await a.flush()
    try admin.publish("sessions.a.s1.in", payload: [2])
    try admin.publish("sessions.b.s2.in", payload: [3])
    #expect(await Harness.collect(ownInput, count: 1, timeout: .seconds(2)).map(\.payload) == [[2]])
    #expect(await Harness.collect(peek, count: 1, timeout: .seconds(1)).isEmpty)
    let bOutput = try admin.subscribe("sessions.b.>")
    try await admin.flush()
    try? a.publish("sessions.b.s2.out", payload: [4])
    try? await a.flush()
    #expect(await Harness.collect(bOutput, count: 1, timeout: .seconds(1)).isEmpty)

    // Registration (request/reply through its inbox) works.
    let responder = try admin.subscribe(Subjects.hostsRegister)
    try await admin.flush()
    let answering = Task {
      for await m in responder {
        try? admin.respond(to: m, with: RegisterHostResponse(host: "a", accepted: true, intervalMs: 5000))
      }
    }
    defer { answering.cancel() }
    let reply = try await a.request(
      Subjects.hostsRegister, RegisterHostRequest(info: HostInfo(hostname: "a")), expecting: RegisterHostResponse.self)
    #expect(reply.accepted)

    // Its own commands: the reflector's command service, confined as a, runs a signed dispatch.
    let key = Curve25519.Signing.PrivateKey()
    // The settings as creds add-host wrote them for the host, with the seed where this test keeps it.
    let config = try ConfigValues.load(
      file: "\(dir)/hosts/a.reflector.yaml", environment: [:],
      overrides: ["nats.urls": nats.url, "nats.nkey-seed": "\(dir)/hosts/a.nk"])
    let settings = try ServiceSettings(service: "reflector", defaultHTTPPort: 0, config: config)
    let context = ServiceContext(settings: settings, config: config, logger: Harness.logger, health: Health())
    let bus = BusService(options: settings.bus, streams: [], context: context)
    var policy = CommandPolicy()
    policy.commands = [["echo", "**"]]
    let service = CommandService(
      host: "a", bus: bus, verifier: try DispatchVerifier(routerPublicKey: key.publicKey.rawRepresentation, host: "a"),
      executor: CommandExecutor(policy: policy, collectNow: {}), logger: Harness.logger)
    let group = ServiceGroup(services: [bus, service], logger: Harness.logger)
    let running = Task { try await group.run() }
    #expect(
      await Harness.waitUntil(timeout: .seconds(10)) { (try? await admin.streamState("COMMANDS").consumers) == 1 })
    let results = try admin.subscribe("commands.result.a")
    try await admin.flush()
    let body = CommandDispatchBody(
      commandId: "c1", host: "a", action: CommandAction(argv: ["echo", "confined"]), timeoutMs: 5000,
      deadlineUnixMs: Date().unixMilliseconds + 60_000)
    let dispatch = CommandDispatch(body: body.encode(), signature: [UInt8](try key.signature(for: body.encode())))
    _ = try await admin.jetStreamPublish("commands.dispatch.a", dispatch, msgID: "c1:a")
    let messages = await Harness.collect(results, count: 3, timeout: .seconds(10))
    let final = messages.compactMap { m -> CommandResult? in
      m.mirrorType == CommandResult.fullName ? try? CommandResult(decoding: m.payload) : nil
    }.first { $0.state.rawValue != CommandState.running.rawValue }
    #expect(final?.state == .succeeded, "\(messages.map { $0.mirrorType ?? "?" })")
    let output = messages.compactMap { m -> CommandOutput? in
      m.mirrorType == CommandOutput.fullName ? try? CommandOutput(decoding: m.payload) : nil
    }
    #expect(String(decoding: output.flatMap(\.data), as: UTF8.self) == "confined\n")
    await group.triggerGracefulShutdown()
    _ = await running.result
  }

  /// The NKey is the credential: another key's seed with a's public key,
  /// or no key, is refused; no password is left to guess.
  @Test func aHostWithAnotherKeyIsRefused() async throws {
    let a = try await connect("a")
    #expect(a.isConnected)
    await #expect(throws: NATSError.self) { _ = try await self.connect("a", seed: "b") }
    await #expect(throws: NATSError.self) {
      _ = try await BusConnection.connect(
        BusOptions(urls: [self.nats.url], user: "host-a", password: "", maxReconnect: 0), logger: Harness.logger)
    }
    // A key the server does not know (another directory's) is refused too.
    let other = dir + "-other"
    defer { try? FileManager.default.removeItem(atPath: other) }
    #expect(try Harness.run(Harness.executable("mirrorctl"), ["creds", "add-host", "a", "--dir", other]).status == 0)
    let yaml = try String(contentsOfFile: "\(other)/hosts/a.reflector.yaml", encoding: .utf8)
    let stranger = try #require(
      yaml.split(separator: "\n").first { $0.contains("nkey-public:") }?.split(separator: " ").last)
    #expect(String(stranger) != publicKeys["a"])
    await #expect(throws: NATSError.self) {
      _ = try await BusConnection.connect(
        BusOptions(
          urls: [self.nats.url], nkeySeedFile: "\(other)/hosts/a.nk", nkeyPublicKey: String(stranger),
          maxReconnect: 0), logger: Harness.logger)
    }

    // What was written: seeds only their owner can read, no password anywhere.
    for file in ["hosts/a.nk", "hosts/b.nk", "services.nk"] {
      let attributes = try FileManager.default.attributesOfItem(atPath: "\(dir)/\(file)")
      #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(file)")
    }
    let authorization = try String(contentsOfFile: "\(dir)/authorization.conf", encoding: .utf8)
    #expect(!authorization.contains("password"))
    #expect(authorization.contains("{nkey: \"\(publicKeys["a"]!)\", permissions:"))
    let settings = try String(contentsOfFile: "\(dir)/hosts/a.reflector.yaml", encoding: .utf8)
    #expect(settings.contains("inbox-prefix: _INBOX_a") && settings.contains("nkey-seed: /etc/mirror-stage/nats.nk"))
  }

  /// `creds remove-host` takes the host's key out: after a reload it is
  /// refused, the other host is not. So does a new key for the services.
  @Test func aRemovedHostIsRefusedAfterReload() async throws {
    let mirrorctl = Harness.executable("mirrorctl")
    let open = try await connect("b")
    #expect(open.isConnected)
    // b's seed as the thief kept it.
    let kept = "\(dir)/b-kept.nk"
    try FileManager.default.copyItem(atPath: "\(dir)/hosts/b.nk", toPath: kept)
    let r = try Harness.run(mirrorctl, ["creds", "remove-host", "b", "--dir", dir])
    #expect(r.status == 0, "\(r.output)")
    #expect(!FileManager.default.fileExists(atPath: "\(dir)/hosts/b.nk"))
    try nats.reload()
    // The reload closes b's open connection too.
    #expect(await Harness.waitUntil(timeout: .seconds(5)) { !open.isConnected })
    await #expect(throws: NATSError.self) {
      _ = try await BusConnection.connect(
        BusOptions(
          urls: [self.nats.url], nkeySeedFile: kept, nkeyPublicKey: self.publicKeys["b"],
          maxReconnect: 0), logger: Harness.logger)
    }
    #expect(try await connect("a").isConnected)

    let old = try await connect(nil)
    #expect(old.isConnected)
    let oldSeed = "\(dir)/services-old.nk"
    try FileManager.default.copyItem(atPath: "\(dir)/services.nk", toPath: oldSeed)
    let renewed = try Harness.run(mirrorctl, ["creds", "services", "--new", "--dir", dir])
    let newKey = renewed.output.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(renewed.status == 0 && newKey.hasPrefix("U") && newKey != services, "\(renewed.output)")
    try nats.reload()
    #expect(await Harness.waitUntil(timeout: .seconds(5)) { !old.isConnected })
    await #expect(throws: NATSError.self) {
      _ = try await BusConnection.connect(
        BusOptions(
          urls: [self.nats.url], nkeySeedFile: oldSeed, nkeyPublicKey: self.services,
          maxReconnect: 0), logger: Harness.logger)
    }
    let fresh = try await BusConnection.connect(
      BusOptions(urls: [nats.url], nkeySeedFile: "\(dir)/services.nk", nkeyPublicKey: newKey, maxReconnect: 0),
      logger: Harness.logger)
    #expect(fresh.isConnected)
    let missing = try Harness.run(mirrorctl, ["creds", "remove-host", "b", "--dir", dir])
    #expect(missing.status != 0 && missing.output.contains("no host 'b'"), "\(missing.output)")
  }

  @Test func badNamesAndExistingKeysAreRefused() throws {
    let mirrorctl = Harness.executable("mirrorctl")
    for bad in ["a.b", "*", "a b", ""] {
      let r = try Harness.run(mirrorctl, ["creds", "add-host", bad, "--dir", dir])
      #expect(r.status != 0 && r.output.contains("not a host subject token"), "\(bad): \(r.output)")
    }
    #expect(!FileManager.default.fileExists(atPath: "\(dir)/hosts/a.b.conf"))
    let prefix = "\(dir)/op"
    #expect(try Harness.run(mirrorctl, ["keys", "gen", "--out", prefix]).status == 0)
    let before = try String(contentsOfFile: prefix + ".key", encoding: .utf8)
    let again = try Harness.run(mirrorctl, ["keys", "gen", "--out", prefix])
    #expect(again.status != 0 && again.output.contains("exists"), "\(again.output)")
    #expect(try String(contentsOfFile: prefix + ".key", encoding: .utf8) == before, "the old key is kept")
    let attributes = try FileManager.default.attributesOfItem(atPath: prefix + ".key")
    #expect((attributes[.posixPermissions] as? Int) == 0o600)
    // exec without an operator: a usage error, nothing sent.
    let noOperator = try Harness.run(mirrorctl, ["exec", "a", "--nats-url", nats.url, "--", "echo"])
    #expect(noOperator.status != 0 && noOperator.output.contains("MIRROR_OPERATOR"), "\(noOperator.output)")
  }
}
