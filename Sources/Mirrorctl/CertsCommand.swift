import ArgumentParser
import Foundation
import MirrorService

struct CertsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "certs",
    abstract: "TLS for NATS: a private CA, the server's certificate, client certificates and their revocation.",
    discussion: """
      Files are PEM under DIR/certs. DIR/tls.conf is the nats-server `tls` block (TLS required, client \
      certificates verified against the CA and pinned); every command that changes it says to reload the server.
      """,
    subcommands: [Init.self, Server.self, Host.self, Client.self, Revoke.self, List.self])

  struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Make the CA (DIR/certs/ca.pem and its key ca-key.pem): ECDSA P-256, self-signed.")

    @Option(help: "Where the credentials live.") var dir: String = "nats-auth"
    @Option(help: "Validity in days.") var days: Int = 3650

    func run() throws {
      let ca = CertificateAuthority(dir: dir)
      try ca.initialize(days: days)
      print("wrote \(ca.caCertificate) and \(ca.caKey)")
    }
  }

  struct Server: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Issue the nats-server's certificate and write DIR/tls.conf.")

    @Option(help: "Where the credentials live.") var dir: String = "nats-auth"
    @Option(help: "The server's DNS names and IP addresses, comma-separated (e.g. nats.lan,10.0.0.2).")
    var name: String
    @Option(help: "Validity in days.") var days: Int = 365

    func run() throws {
      let names = name.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
      guard !names.isEmpty else { throw ValidationError("--name needs at least one DNS name or IP address") }
      let ca = CertificateAuthority(dir: dir)
      try ca.issueServer(names: names, days: days)
      print("wrote \(ca.serverCertificate), \(ca.serverKey) and \(ca.tlsConfig); reload nats-server")
    }
  }

  struct Host: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Issue host NAME's client certificate (CN=host-NAME) and add it to the pinned set.",
      discussion: """
        Writes DIR/certs/hosts/NAME.pem and NAME-key.pem and, when the host has NATS credentials \
        (creds add-host), its reflector settings with the TLS files. A certificate issued before stays valid \
        until it is revoked (certs revoke NAME --serial S) or expires.
        """)

    @Argument(help: "The host name (its subject token).") var name: String
    @Option(help: "Where the credentials live.") var dir: String = "nats-auth"
    @Option(help: "Validity in days.") var days: Int = 365

    func run() throws {
      guard Subjects.isValidHostToken(name) else {
        throw ValidationError("'\(name)' is not a host subject token (letters, digits, - and _)")
      }
      let ca = CertificateAuthority(dir: dir)
      let entry = try ca.issueClient(
        commonName: CertificateAuthority.hostCommonName(name), days: days,
        certificatePath: ca.hostCertificate(name), keyPath: ca.hostKey(name))
      try CredsCommand.writeReflectorSettings(dir: dir, host: name)
      print("wrote \(ca.hostCertificate(name)) (serial \(entry.serial)) and its key; reload nats-server")
    }
  }

  struct Client: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Issue a client certificate for something that is not a host (CN=NAME): the EGO services, an operator.")

    @Argument(help: "The client's name, e.g. services.") var name: String
    @Option(help: "Where the credentials live.") var dir: String = "nats-auth"
    @Option(help: "Validity in days.") var days: Int = 365

    func run() throws {
      guard Subjects.isValidHostToken(name), !name.hasPrefix("host-") else {
        throw ValidationError("'\(name)' must be letters, digits, - and _, and not start with host-")
      }
      let ca = CertificateAuthority(dir: dir)
      let entry = try ca.issueClient(
        commonName: name, days: days, certificatePath: ca.clientCertificate(name), keyPath: ca.clientKey(name))
      print("wrote \(ca.clientCertificate(name)) (serial \(entry.serial)) and its key; reload nats-server")
    }
  }

  struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Revoke host NAME's client certificates (or a client's, with --client): out of the pinned set.",
      discussion: """
        Records each revoked serial in DIR/revoked.txt and rewrites DIR/tls.conf without them. They stop \
        working when nats-server reloads its configuration (nats-server --signal reload).
        """)

    @Argument(help: "The host (or, with --client, the client) name.") var name: String
    @Option(help: "Where the credentials live.") var dir: String = "nats-auth"
    @Flag(help: "NAME is a client of certs client, not a host.") var client = false
    @Option(help: "Revoke only the certificate with this serial (hex, as certs list shows it).") var serial: String?

    func run() throws {
      let ca = CertificateAuthority(dir: dir)
      let commonName = client ? name : CertificateAuthority.hostCommonName(name)
      let revoked = try ca.revoke(name: commonName, serial: serial)
      guard !revoked.isEmpty else { throw Failure("no valid certificate of \(commonName) to revoke") }
      for entry in revoked { print("revoked \(entry.name) serial \(entry.serial)") }
      print("wrote \(ca.revokedFile) and \(ca.tlsConfig); reload nats-server")
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The client certificates that may connect.")

    @Option(help: "Where the credentials live.") var dir: String = "nats-auth"

    func run() throws {
      for entry in try CertificateAuthority(dir: dir).pinned() {
        print("\(entry.name)\t\(entry.serial)\tuntil \(entry.date)")
      }
    }
  }
}
