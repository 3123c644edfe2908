import ArgumentParser
import Foundation
import MirrorService

struct CredsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "creds", abstract: "NATS credentials that confine each host to its own subjects.",
    subcommands: [AddHost.self, RemoveHost.self, Services.self])

  struct AddHost: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "add-host",
      abstract: "Make NAME's NATS user (an NKey) and rebuild the server's authorization block.",
      discussion: """
        Writes DIR/hosts/NAME.nk (the host's NKey seed: a secret), DIR/hosts/NAME.conf (the user, named by its \
        public key, and its permissions), DIR/hosts/NAME.reflector.yaml (the reflector's nats settings) and \
        DIR/authorization.conf (every host plus the NKey user of the EGO services, whose seed is in \
        DIR/services.nk and public key in DIR/services.pub), for the nats-server configuration to include. \
        Run again for a host to give it a new key; the old one stops working when the server reloads.
        """)

    @Argument(help: "The host name (its subject token).") var name: String
    @Option(help: "Where the credentials live.") var dir: String = "nats-auth"

    func run() throws {
      guard Subjects.isValidHostToken(name) else {
        throw ValidationError("'\(name)' is not a host subject token (letters, digits, - and _)")
      }
      try FileManager.default.createDirectory(atPath: "\(dir)/hosts", withIntermediateDirectories: true)
      let key = NKey()
      try CredsCommand.write(key.seed + "\n", to: "\(dir)/hosts/\(name).nk")
      try CredsCommand.write(
        Self.userEntry(host: name, publicKey: key.publicKey), to: "\(dir)/hosts/\(name).conf")
      try CredsCommand.writeReflectorSettings(dir: dir, host: name)
      try CredsCommand.writeAuthorization(dir: dir)
      print(
        "wrote \(dir)/hosts/\(name).nk, \(dir)/hosts/\(name).conf, \(dir)/hosts/\(name).reflector.yaml and "
          + "\(dir)/authorization.conf; reload nats-server (nats-server --signal reload) to apply it")
    }

    /// A host may publish only its own metrics, events, command results and
    /// session output (and ask to register), use the JetStream API only for
    /// its own command consumer, and receive only on its own inbox prefix,
    /// dispatch subject and sessions' input.
    ///
    /// The consumer may be created only through the subject that carries
    /// its filter (`CONSUMER.CREATE.<stream>.<name>.<filter>`, nats-server
    /// 2.9+, which refuses a body whose filter differs): through the other
    /// forms a host could give its own consumer another host's dispatch
    /// subject and read those.
    static func userEntry(host h: String, publicKey: String) -> String {
      let consumer = "COMMANDS.reflector_\(h)"
      let publish = [
        "metrics.raw.\(h)", "events.\(h)", "commands.result.\(h)", "hosts.register", "sessions.\(h).*.out",
        "$JS.API.CONSUMER.INFO.\(consumer)", "$JS.API.CONSUMER.CREATE.\(consumer).commands.dispatch.\(h)",
        "$JS.API.CONSUMER.MSG.NEXT.\(consumer)", "$JS.ACK.\(consumer).>",
      ]
      let subscribe = ["_INBOX_\(h).>", "commands.dispatch.\(h)", "sessions.\(h).*.in"]
      func list(_ s: [String]) -> String { "[" + s.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
      return """
            # host \(h)
            {nkey: "\(publicKey)", permissions: {
              publish: {allow: \(list(publish))}
              subscribe: {allow: \(list(subscribe))}
            }}
        """
    }
  }

  struct RemoveHost: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "remove-host",
      abstract: "Delete NAME's NATS user (its NKey) and rebuild the authorization block.",
      discussion: "The host is refused from the next reload of nats-server on (nats-server --signal reload).")

    @Argument(help: "The host name.") var name: String
    @Option(help: "Where the credentials live.") var dir: String = "nats-auth"

    func run() throws {
      guard Subjects.isValidHostToken(name), FileManager.default.fileExists(atPath: "\(dir)/hosts/\(name).conf") else {
        throw Failure("no host '\(name)' in \(dir)/hosts")
      }
      for suffix in ["conf", "nk", "reflector.yaml"] {
        try? FileManager.default.removeItem(atPath: "\(dir)/hosts/\(name).\(suffix)")
      }
      try CredsCommand.writeAuthorization(dir: dir)
      print("removed host \(name); wrote \(dir)/authorization.conf; reload nats-server to apply it")
    }
  }

  struct Services: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "The EGO services' NKey: print its public key, or make a new one (--new).",
      discussion: """
        The seed is DIR/services.nk, the public key DIR/services.pub: the services' nats.nkey-seed and \
        nats.nkey-public. With --new the old key stops working when nats-server reloads.
        """)

    @Option(help: "Where the credentials live.") var dir: String = "nats-auth"
    @Flag(help: "Replace the key.") var new = false

    func run() throws {
      try FileManager.default.createDirectory(atPath: "\(dir)/hosts", withIntermediateDirectories: true)
      if new { try? FileManager.default.removeItem(atPath: "\(dir)/services.nk") }
      try CredsCommand.writeAuthorization(dir: dir)
      print(try String(contentsOfFile: "\(dir)/services.pub", encoding: .utf8), terminator: "")
    }
  }

  /// Where the reflector finds its secrets on the host; the settings file
  /// names them there, and its header says which file to copy to which.
  static let hostSeedPath = "/etc/mirror-stage/nats.nk"
  static let hostCAPath = "/etc/mirror-stage/nats-ca.pem"
  static let hostCertPath = "/etc/mirror-stage/nats-cert.pem"
  static let hostKeyPath = "/etc/mirror-stage/nats-key.pem"

  /// Writes DIR/hosts/NAME.reflector.yaml from what DIR holds for the host:
  /// its NKey (`creds add-host`) and, once `certs host` has made one, its
  /// client certificate.
  static func writeReflectorSettings(dir: String, host: String) throws {
    let seedFile = "\(dir)/hosts/\(host).nk"
    guard let seed = try? String(contentsOfFile: seedFile, encoding: .utf8) else { return }
    let key: NKey
    do { key = try NKey(seed: seed) } catch { throw Failure("\(seedFile): \(error)") }
    let certs = CertificateAuthority(dir: dir)
    let tls = FileManager.default.fileExists(atPath: certs.hostCertificate(host))
    var text = """
      # NATS settings of the reflector on \(host) (mirrorctl creds add-host\(tls ? ", certs host" : "")).
      # Put them in /etc/mirror-stage/reflector.yaml and copy, owned by root, mode 0600:
      #   \(seedFile) -> \(hostSeedPath)

      """
    if tls {
      text += """
        #   \(certs.caCertificate) -> \(hostCAPath)
        #   \(certs.hostCertificate(host)) -> \(hostCertPath)
        #   \(certs.hostKey(host)) -> \(hostKeyPath)
        # The server requires TLS: its URLs are tls://, e.g. urls: [tls://10.0.0.2:4222].

        """
    }
    text += """
      nats:
        nkey-public: \(key.publicKey)
        nkey-seed: \(hostSeedPath)
        inbox-prefix: _INBOX_\(host)

      """
    if tls {
      text += """
          tls-ca: \(hostCAPath)
          tls-cert: \(hostCertPath)
          tls-key: \(hostKeyPath)

        """
    }
    text += """
      reflector:
        host: \(host)

      """
    try write(text, to: "\(dir)/hosts/\(host).reflector.yaml")
  }

  /// Rebuilds DIR/authorization.conf: the EGO services' NKey user (made on
  /// first use) and every host's entry.
  static func writeAuthorization(dir: String) throws {
    let fm = FileManager.default
    let services: NKey
    if let seed = try? String(contentsOfFile: "\(dir)/services.nk", encoding: .utf8) {
      do { services = try NKey(seed: seed) } catch { throw Failure("\(dir)/services.nk: \(error)") }
    } else {
      services = NKey()
      try write(services.seed + "\n", to: "\(dir)/services.nk")
    }
    try write(services.publicKey + "\n", to: "\(dir)/services.pub", mode: 0o644)
    var entries = ["    # the EGO services (seed: services.nk)", "    {nkey: \"\(services.publicKey)\"}"]
    // A directory made before NKeys: its services password keeps working
    // until the file is deleted, so the services can move over first.
    if let old = try? String(contentsOfFile: "\(dir)/services.password", encoding: .utf8) {
      let password = old.trimmingCharacters(in: .whitespacesAndNewlines)
      entries.append("    {user: \"services\", password: \"\(password)\"}")
      print(
        "warning: \(dir)/services.password is still accepted; move the services to the NKey in \(dir)/services.nk "
          + "(nats.nkey-seed, nats.nkey-public) and delete it")
    }
    let hosts = try fm.contentsOfDirectory(atPath: "\(dir)/hosts").filter { $0.hasSuffix(".conf") }.sorted()
    for file in hosts {
      var entry = try String(contentsOfFile: "\(dir)/hosts/\(file)", encoding: .utf8)
      while entry.last?.isNewline == true { entry.removeLast() }
      entries.append(entry)
    }
    try write(
      """
      # Generated by mirrorctl creds add-host; include it in the nats-server configuration.
      authorization {
        users = [
      \(entries.joined(separator: "\n"))
        ]
      }

      """, to: "\(dir)/authorization.conf")
  }

  /// Writes a file whole, readable by its owner only unless `mode` says otherwise.
  static func write(_ text: String, to path: String, mode: Int = 0o600) throws {
    let fm = FileManager.default
    // createFile keeps an existing file's mode: remove it so `mode` holds.
    try? fm.removeItem(atPath: path)
    guard fm.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
      throw Failure("cannot write \(path)")
    }
  }
}
