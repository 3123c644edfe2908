import Foundation
import MirrorBus
import MirrorService
import MirrorWire
import TestSupport
import Testing

/// `mirrorctl certs` against a real nats-server running the `tls` block it
/// generates (TLS required, client certificates verified and pinned) with
/// the NKey authorization of `creds add-host`.
@Suite(.serialized) final class CertificatesTests {
  let dir: String
  /// Another CA, with a certificate for host a that the server must not take.
  let other: String
  let nats: NATSTestServer
  let mirrorctl = Harness.executable("mirrorctl")

  init() throws {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("certs-\(UUID().uuidString)").path
    dir = base + "/auth"
    other = base + "/other"
    let steps: [[String]] = [
      ["creds", "add-host", "a", "--dir", dir], ["creds", "add-host", "b", "--dir", dir],
      ["certs", "init", "--dir", dir], ["certs", "server", "--dir", dir, "--name", "localhost,127.0.0.1"],
      ["certs", "host", "a", "--dir", dir], ["certs", "host", "b", "--dir", dir],
      ["certs", "client", "services", "--dir", dir],
      ["certs", "init", "--dir", other], ["certs", "host", "a", "--dir", other],
    ]
    for step in steps {
      let r = try Harness.run(mirrorctl, step)
      guard r.status == 0 else { throw HarnessError("mirrorctl \(step.joined(separator: " ")): \(r.output)") }
    }
    try "include \"authorization.conf\"\ninclude \"tls.conf\"\n".write(
      toFile: "\(dir)/server.conf", atomically: true, encoding: .utf8)
    nats = try NATSTestServer(arguments: ["-c", "\(dir)/server.conf"])
  }

  deinit { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }

  var tlsURL: String { "tls://127.0.0.1:\(nats.port)" }

  func publicKey(_ host: String) throws -> String {
    let yaml = try String(contentsOfFile: "\(dir)/hosts/\(host).reflector.yaml", encoding: .utf8)
    let line = try #require(yaml.split(separator: "\n").first { $0.contains("nkey-public:") })
    return String(line.split(separator: " ").last ?? "")
  }

  /// Host `host`'s NKey, with TLS files as given (its own by default).
  func options(
    _ host: String, url: String? = nil, ca: String? = nil, cert: String? = nil, key: String? = nil, tls: Bool = true
  ) throws -> BusOptions {
    BusOptions(
      urls: [url ?? tlsURL], nkeySeedFile: "\(dir)/hosts/\(host).nk", nkeyPublicKey: try publicKey(host), tls: tls,
      tlsCAFile: tls ? (ca ?? "\(dir)/certs/ca.pem") : nil,
      tlsCertFile: tls ? (cert ?? "\(dir)/certs/hosts/\(host).pem") : nil,
      tlsKeyFile: tls ? (key ?? "\(dir)/certs/hosts/\(host)-key.pem") : nil, inboxPrefix: "_INBOX_\(host)",
      maxReconnect: 0)
  }

  func services() async throws -> BusConnection {
    let pub = try String(contentsOfFile: "\(dir)/services.pub", encoding: .utf8).trimmingCharacters(
      in: .whitespacesAndNewlines)
    return try await BusConnection.connect(
      BusOptions(
        urls: [tlsURL], nkeySeedFile: "\(dir)/services.nk", nkeyPublicKey: pub, tlsCAFile: "\(dir)/certs/ca.pem",
        tlsCertFile: "\(dir)/certs/clients/services.pem", tlsKeyFile: "\(dir)/certs/clients/services-key.pem"),
      logger: Harness.logger)
  }

  /// Host a, with the settings `creds add-host` and `certs host` wrote for
  /// it (file paths moved to where this test keeps the files), stores its
  /// own metrics over TLS.
  @Test func aHostWithItsCertificateConnects() async throws {
    let admin = try await services()
    try await admin.ensureStream(Streams.metrics)
    var yaml = try String(contentsOfFile: "\(dir)/hosts/a.reflector.yaml", encoding: .utf8)
    for (installed, here) in [
      ("/etc/mirror-stage/nats.nk", "\(dir)/hosts/a.nk"), ("/etc/mirror-stage/nats-ca.pem", "\(dir)/certs/ca.pem"),
      ("/etc/mirror-stage/nats-cert.pem", "\(dir)/certs/hosts/a.pem"),
      ("/etc/mirror-stage/nats-key.pem", "\(dir)/certs/hosts/a-key.pem"),
    ] {
      #expect(yaml.contains(installed), "\(installed)")
      yaml = yaml.replacingOccurrences(of: installed, with: here)
    }
    try yaml.write(toFile: "\(dir)/a.yaml", atomically: true, encoding: .utf8)
    let config = try ConfigValues.load(file: "\(dir)/a.yaml", environment: [:], overrides: ["nats.urls": tlsURL])
    let settings = try ServiceSettings(service: "reflector", defaultHTTPPort: 0, config: config)
    #expect(settings.bus.tlsCertFile == "\(dir)/certs/hosts/a.pem")
    let a = try await BusConnection.connect(settings.bus, logger: Harness.logger)
    let ack = try await a.jetStreamPublish("metrics.raw.a", MetricsBatch(host: "a", sequence: 1), msgID: "a-1")
    #expect(ack.sequence == 1)
    #expect(try await admin.streamState("METRICS").messages == 1)
  }

  /// Without TLS, without a certificate, or with one from another CA: refused.
  @Test func whatIsNotTheCAsIsRefused() async throws {
    // The control: these options get in.
    _ = try await BusConnection.connect(try options("a"), logger: Harness.logger)
    await #expect(throws: NATSError.self, "plain nats://") {
      _ = try await BusConnection.connect(
        try self.options("a", url: self.nats.url, tls: false), logger: Harness.logger)
    }
    await #expect(throws: NATSError.self, "TLS without a client certificate") {
      _ = try await BusConnection.connect(
        BusOptions(
          urls: [self.tlsURL], nkeySeedFile: "\(self.dir)/hosts/a.nk", nkeyPublicKey: try self.publicKey("a"),
          tlsCAFile: "\(self.dir)/certs/ca.pem", maxReconnect: 0), logger: Harness.logger)
    }
    await #expect(throws: NATSError.self, "a certificate of another CA") {
      _ = try await BusConnection.connect(
        try self.options(
          "a", cert: "\(self.other)/certs/hosts/a.pem", key: "\(self.other)/certs/hosts/a-key.pem"),
        logger: Harness.logger)
    }
  }

  /// `certs revoke a` takes a's certificate out of the pinned set: after a
  /// reload a cannot connect, b and the services still can.
  @Test func aRevokedCertificateIsRefusedAfterReload() async throws {
    let before = try await BusConnection.connect(try options("a"), logger: Harness.logger)
    #expect(before.isConnected)
    let listed = try Harness.run(mirrorctl, ["certs", "list", "--dir", dir])
    let serial = try #require(
      listed.output.split(separator: "\n").first { $0.hasPrefix("host-a\t") }?.split(separator: "\t").dropFirst().first)

    let r = try Harness.run(mirrorctl, ["certs", "revoke", "a", "--dir", dir])
    #expect(r.status == 0, "\(r.output)")
    #expect(try String(contentsOfFile: "\(dir)/revoked.txt", encoding: .utf8).contains(serial))
    let again = try Harness.run(mirrorctl, ["certs", "revoke", "a", "--dir", dir])
    #expect(again.status != 0 && again.output.contains("no valid certificate"), "\(again.output)")
    try nats.reload()

    await #expect(throws: NATSError.self, "a's revoked certificate") {
      _ = try await BusConnection.connect(try self.options("a"), logger: Harness.logger)
    }
    let b = try await BusConnection.connect(try options("b"), logger: Harness.logger)
    #expect(b.isConnected)
    let admin = try await services()
    #expect(admin.isConnected)

    // A new certificate for a (a new key) gets in again after the next reload.
    #expect(try Harness.run(mirrorctl, ["certs", "host", "a", "--dir", dir]).status == 0)
    try nats.reload()
    let renewed = try await BusConnection.connect(try options("a"), logger: Harness.logger)
    #expect(renewed.isConnected)
  }

  /// mirrorctl reaches a TLS server with the services' NKey and a client
  /// certificate of its own (it gets as far as asking: no ingest answers here).
  @Test func mirrorctlConnectsWithAnNKeyAndACertificate() throws {
    #expect(try Harness.run(mirrorctl, ["certs", "client", "operator", "--dir", dir]).status == 0)
    try nats.reload()
    let common = ["hosts", "--nats-url", tlsURL, "--timeout", "0.5", "--nkey", "\(dir)/services.nk"]
    let tls = [
      "--tls-ca", "\(dir)/certs/ca.pem", "--tls-cert", "\(dir)/certs/clients/operator.pem", "--tls-key",
      "\(dir)/certs/clients/operator-key.pem",
    ]
    let connected = try Harness.run(mirrorctl, common + tls)
    #expect(
      connected.output.contains("hosts.list:") && !connected.output.contains("cannot connect"), "\(connected.output)")
    let withoutCertificate = try Harness.run(mirrorctl, common + ["--tls-ca", "\(dir)/certs/ca.pem"])
    #expect(withoutCertificate.output.contains("cannot connect to NATS"), "\(withoutCertificate.output)")
    let withoutKey = try Harness.run(mirrorctl, ["hosts", "--nats-url", tlsURL, "--timeout", "0.5"] + tls)
    #expect(withoutKey.output.contains("cannot connect to NATS"), "\(withoutKey.output)")
  }

  @Test func badNamesAndASecondCAAreRefused() throws {
    let init2 = try Harness.run(mirrorctl, ["certs", "init", "--dir", dir])
    #expect(init2.status != 0 && init2.output.contains("exists"), "\(init2.output)")
    for bad in ["a.b", "*", ""] {
      let r = try Harness.run(mirrorctl, ["certs", "host", bad, "--dir", dir])
      #expect(r.status != 0 && r.output.contains("not a host subject token"), "\(bad): \(r.output)")
    }
    let noCA = try Harness.run(mirrorctl, ["certs", "host", "c", "--dir", dir + "-none"])
    #expect(noCA.status != 0 && noCA.output.contains("certs init"), "\(noCA.output)")
    for key in ["ca-key.pem", "server-key.pem", "hosts/a-key.pem", "clients/services-key.pem"] {
      let attributes = try FileManager.default.attributesOfItem(atPath: "\(dir)/certs/\(key)")
      #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(key)")
    }
  }
}
