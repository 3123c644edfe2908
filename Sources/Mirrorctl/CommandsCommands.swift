import ArgumentParser
import CommandRouterCore
import Foundation
import MirrorBus
import MirrorService
import MirrorWire

struct KeysCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "keys", abstract: "Ed25519 key pairs (the router's, an operator's).", subcommands: [Gen.self])

  struct Gen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Write PREFIX.key (private, mode 0600) and PREFIX.pub (public, base64).")
    @Option(help: "Path prefix of the two files.") var out: String = "router"
    @Flag(help: "Replace existing files.") var force = false

    func run() throws {
      if !force, FileManager.default.fileExists(atPath: out + ".key") {
        throw Failure("\(out).key exists (use --force to replace it)")
      }
      let key = try KeyFiles.generate(prefix: out)
      print("wrote \(out).key and \(out).pub (\(key.rawRepresentation.base64EncodedString()))")
    }
  }
}

/// "all", "group:NAME", "label:k=v,k=v" or "host1,host2".
func parseTarget(_ text: String) throws -> CommandTarget {
  if text == "all" { return CommandTarget(kind: .all) }
  if text.hasPrefix("group:") { return CommandTarget(kind: .group, group: String(text.dropFirst(6))) }
  if text.hasPrefix("label:") {
    let labels = try text.dropFirst(6).split(separator: ",").map { pair -> Label in
      let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
      guard kv.count == 2 else { throw ValidationError("label selector wants k=v, not '\(pair)'") }
      return Label(key: kv[0], value: kv[1])
    }
    return CommandTarget(kind: .selector, selector: labels)
  }
  let hosts = text.split(separator: ",").map(String.init)
  guard !hosts.isEmpty else { throw ValidationError("no target") }
  return CommandTarget(kind: .hosts, hosts: hosts)
}

struct ExecCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "exec",
    abstract: "Run a command on hosts, stream their output, exit with the command's status.",
    discussion: """
      TARGET is all, group:NAME, label:k=v[,k=v] or host[,host]. The request is signed with the operator's key
      (--user/--key or MIRROR_OPERATOR/MIRROR_OPERATOR_KEY). Exit status: the host's exit code for one host,
      otherwise 0 only if every host succeeded.
      """)

  @OptionGroup var connection: ConnectionOptions
  @Argument(help: "Where to run it.") var target: String
  @Argument(parsing: .postTerminator, help: "The argv (after --).") var argv: [String] = []
  @Option(help: "Operator (user) name (env MIRROR_OPERATOR).") var user: String?
  @Option(help: "Operator private key file (env MIRROR_OPERATOR_KEY).") var key: String?
  @Option(name: .customLong("run-timeout"), help: "Seconds the command may run.") var runTimeout: UInt32 = 60
  @Option(help: "Why (kept in the audit trail).") var reason: String = ""
  @Option(help: "Built-in: restart this systemd service.") var restart: String?
  @Flag(help: "Built-in: wake the target hosts (Wake-on-LAN through an awake neighbour).") var wake = false
  @Flag(name: .customLong("collect-now"), help: "Built-in: collect and publish a batch now.") var collectNow = false
  @Flag(help: "Run argv[0] as a shell line (only where the host's policy allows it).") var shell = false

  func run() async throws {
    let env = ProcessInfo.processInfo.environment
    guard let user = user ?? env["MIRROR_OPERATOR"], let keyPath = key ?? env["MIRROR_OPERATOR_KEY"] else {
      throw ValidationError("who is asking: --user and --key (or MIRROR_OPERATOR and MIRROR_OPERATOR_KEY)")
    }
    var action = CommandAction(argv: argv, shell: shell)
    if let restart { action = CommandAction(builtin: .restartService, service: restart) }
    if wake { action = CommandAction(builtin: .wakeOnLan) }
    if collectNow { action = CommandAction(builtin: .collectNow) }
    guard action.builtin != .none || !action.argv.isEmpty else {
      throw ValidationError("nothing to run: give -- ARGV... or a built-in")
    }
    let now = Date().unixMilliseconds
    let request = try Identity.sign(
      CommandRequest(
        id: UUID().uuidString.lowercased(), target: try parseTarget(target), action: action,
        timeoutMs: runTimeout * 1000, reason: reason, submittedAtUnixMs: now),
      user: user, key: try KeyFiles.loadPrivate(keyPath))

    let bus = try await connection.connect()
    let outcome: CommandRun.Outcome
    do {
      outcome = try await CommandRun.run(
        request, on: bus, replyTimeout: connection.replyTimeout, wait: .seconds(Int64(runTimeout) + 120)
      ) { o in
        let text = String(decoding: o.data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let body = lines.enumerated().compactMap { i, l in
          i == lines.count - 1 && l.isEmpty ? nil : "\(o.host) | \(l)\n"
        }.joined()
        (o.channel == .stderr ? FileHandle.standardError : FileHandle.standardOutput).write(Data(body.utf8))
      }
    } catch let e as CommandRunError {
      throw Failure(e.description)
    } catch { throw Failure("commands.submit: \(describe(error))") }
    let reply = outcome.reply
    guard let record = outcome.record else { throw Failure("\(reply.state.stored): \(reply.reason)") }

    for h in record.hosts where h.state != .succeeded {
      FileHandle.standardError.write(Data("\(h.host): \(h.state.stored) \(h.reason)\n".utf8))
    }
    if record.hosts.count == 1, let code = record.hosts[0].exitCode {
      throw ExitCode(code)
    }
    if record.state != .succeeded { throw ExitCode(1) }
  }
}

struct CommandsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "commands", abstract: "The command history (commands.list), or one command with --id.")

  @OptionGroup var connection: ConnectionOptions
  @Option(help: "Only commands run on this host.") var host: String = ""
  @Option(help: "Only commands of this requester.") var requester: String = ""
  @Option(help: "Only commands in this state (e.g. failed).") var state: String = ""
  @Option(help: "At most this many.") var limit: UInt32 = 50
  @Option(help: "One command, with its output.") var id: String?
  @Flag(help: "With --id: the session's recording as asciicast v2 (play it with asciinema play).") var cast = false
  @Flag(help: "Print JSON instead of a table.") var json = false

  func run() async throws {
    let bus = try await connection.connect()
    if let id {
      do {
        let r = try await bus.request(
          Subjects.commandsGet, GetCommandRequest(id: id, withOutput: true), expecting: CommandRecordWithOutput.self,
          timeout: connection.replyTimeout)
        if cast { return emit(Asciicast.render(r)) }
        return try printJSON(r)
      } catch { throw Failure("commands.get: \(describe(error))") }
    }
    let reply: ListCommandsResponse
    do {
      reply = try await bus.request(
        Subjects.commandsList,
        ListCommandsRequest(
          host: host, requester: requester, state: CommandState(stored: state), limit: limit),
        expecting: ListCommandsResponse.self, timeout: connection.replyTimeout)
    } catch { throw Failure("commands.list: \(describe(error))") }
    if json { return try printJSON(reply.commands) }
    let now = Date().unixMilliseconds
    print(
      Format.table(
        ["ID", "SUBMITTED", "REQUESTER", "STATE", "HOSTS", "ACTION"],
        reply.commands.map { c in
          [
            String(c.request?.id.prefix(8) ?? ""), Format.age(c.request?.submittedAtUnixMs ?? 0, now: now) + " ago",
            c.request?.requester ?? "", c.state.stored,
            c.hosts.map { "\($0.host):\($0.state.stored)" }.joined(separator: ","),
            actionName(c.request?.action ?? CommandAction()),
          ]
        }))
  }
}
