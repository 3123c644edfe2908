import ArgumentParser
import Foundation
import Logging
import MirrorBus

@main
struct Mirrorctl: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "mirrorctl",
    abstract: "MIRROR STAGE command line: hosts, live metrics and any bus message as JSON.",
    subcommands: [
      HostsCommand.self, TopCommand.self, QueryCommand.self, TailCommand.self, ExecCommand.self, ShellCommand.self,
      ForwardCommand.self,
      CommandsCommand.self,
      AlertsCommand.self, TwinCommand.self, KeysCommand.self, CredsCommand.self, CertsCommand.self, UsersCommand.self,
    ])
}

/// How mirrorctl reaches NATS: flags, else MIRROR_NATS_URL / MIRROR_NATS_CREDS
/// / MIRROR_NATS_NKEY / MIRROR_NATS_TLS_*, else the local server.
struct ConnectionOptions: ParsableArguments {
  @Option(name: .customLong("nats-url"), help: "NATS server URL(s), comma-separated (env MIRROR_NATS_URL).")
  var natsURL: String?

  @Option(name: .customLong("creds"), help: "NATS credentials file (env MIRROR_NATS_CREDS).")
  var credentials: String?

  @Option(
    name: .customLong("nkey"),
    help: "NKey seed file, e.g. services.nk of mirrorctl creds (env MIRROR_NATS_NKEY).")
  var nkey: String?

  @Option(name: .customLong("tls-ca"), help: "CA of the server's certificate (env MIRROR_NATS_TLS_CA).")
  var tlsCA: String?

  @Option(name: .customLong("tls-cert"), help: "Client certificate (env MIRROR_NATS_TLS_CERT).")
  var tlsCert: String?

  @Option(name: .customLong("tls-key"), help: "Client certificate's key (env MIRROR_NATS_TLS_KEY).")
  var tlsKey: String?

  @Option(name: .customLong("inbox-prefix"), help: "Inbox prefix for replies (for confined NATS users).")
  var inboxPrefix: String?

  @Option(help: "How long to wait for a reply.")
  var timeout: Double = 5

  func connect() async throws -> BusConnection {
    let env = ProcessInfo.processInfo.environment
    let urls = (natsURL ?? env["MIRROR_NATS_URL"] ?? "nats://127.0.0.1:4222").split(separator: ",").map(String.init)
    let seedFile = nkey ?? env["MIRROR_NATS_NKEY"]
    var publicKey: String?
    if let seedFile {
      do {
        publicKey = try NKey(seed: String(contentsOfFile: seedFile, encoding: .utf8)).publicKey
      } catch {
        throw Failure("cannot read the NKey seed \(seedFile): \(error)")
      }
    }
    let options = BusOptions(
      urls: urls, name: "mirrorctl", credentialsFile: credentials ?? env["MIRROR_NATS_CREDS"],
      nkeySeedFile: seedFile, nkeyPublicKey: publicKey, tlsCAFile: tlsCA ?? env["MIRROR_NATS_TLS_CA"],
      tlsCertFile: tlsCert ?? env["MIRROR_NATS_TLS_CERT"], tlsKeyFile: tlsKey ?? env["MIRROR_NATS_TLS_KEY"],
      inboxPrefix: inboxPrefix, maxReconnect: 0)
    var logger = Logger(label: "mirrorctl")
    logger.logLevel = .critical
    do {
      return try await BusConnection.connect(options, logger: logger)
    } catch {
      throw Failure("cannot connect to NATS at \(urls.joined(separator: ",")): \(error)")
    }
  }

  var replyTimeout: Duration { .milliseconds(Int64(timeout * 1000)) }
}

/// A failure at run time (not a usage error): printed as "Error: ...", exit 1.
struct Failure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// Errors from a service reply, shown as one line.
func describe(_ error: any Error) -> String {
  if let remote = error as? RemoteError { return "\(remote.error.code): \(remote.error.message)" }
  return "\(error)"
}

func printJSON<T: Encodable>(_ value: T, pretty: Bool = true) throws {
  let encoder = JSONEncoder()
  encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
  print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Writes to standard output at once (no buffering: tail and top are live).
func emit(_ text: String) {
  FileHandle.standardOutput.write(Data(text.utf8))
}
