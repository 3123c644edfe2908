import Crypto
import Foundation
import Hummingbird
import Metrics
import MirrorService
import MirrorWire
import Synchronization

/// Commands from the browser (docs/console.md, ADR 0005): the browser holds
/// a non-extractable Ed25519 key registered for its user after a fresh
/// TOTP; the console builds the request, the browser signs its bytes, the
/// CommandRouter verifies the signature and its rules. A command on all
/// hosts or on more than `console.confirm-above` needs a fresh TOTP too.
extension ConsoleAPI {
  // MARK: Keys

  struct AddKeyRequest: Decodable {
    var publicKey: String
    var label: String?
    var code: String
  }
  struct KeyAnswer: ResponseEncodable { var keyId: String }
  struct KeysAnswer: ResponseEncodable { var keys: [UserKeyView] }

  func addKey(_ request: Request, _ context: ConsoleContext) async throws -> KeyAnswer {
    let session = try requireRunner(context)
    let body = try await request.decode(as: AddKeyRequest.self, context: context)
    guard let key = Data(base64Encoded: body.publicKey), key.count == 32 else {
      throw APIError.badRequest("publicKey is not a base64 raw Ed25519 key (32 bytes)")
    }
    guard try await login.confirmCode(session, code: body.code, address: context.address, action: "add_key") else {
      throw APIError(.forbidden, "totp_required", "a fresh code from your authenticator is needed")
    }
    let id = try await accounts.addKey(userID: session.userID, publicKey: [UInt8](key), label: body.label ?? "")
    try await accounts.audit(user: session.user, address: context.address, action: "add_key", outcome: "ok", detail: id)
    logger.info("signing key registered", metadata: ["user": "\(session.user)", "key_id": "\(id)"])
    return KeyAnswer(keyId: id)
  }

  func listKeys(_ request: Request, _ context: ConsoleContext) async throws -> KeysAnswer {
    let session = try context.requireSession()
    return KeysAnswer(keys: try await accounts.keys(userID: session.userID))
  }

  func revokeKey(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    let session = try context.requireSession()
    let id = try context.parameters.require("key")
    guard try await accounts.revokeKey(userID: session.userID, keyID: id) else {
      throw APIError.notFound("no key \(id)")
    }
    try await accounts.audit(
      user: session.user, address: context.address, action: "revoke_key", outcome: "ok", detail: id)
    return Response(status: .noContent)
  }

  /// The session of an operator or admin: only they run commands.
  func requireRunner(_ context: ConsoleContext) throws -> Session {
    let session = try context.requireSession()
    guard session.mayAct else {
      throw APIError.forbidden("role \(session.roles.joined(separator: ",")) may not run commands")
    }
    return session
  }

  // MARK: Prepare and submit

  struct PrepareRequest: Decodable {
    struct Target: Decodable {
      var kind: String
      var hosts: [String]?
      var group: String?
      var selector: String?
    }
    struct Action: Decodable {
      var argv: [String]?
      var shell: String?
      var builtin: String?
      var service: String?
      var mac: String?
      var broadcast: String?
      var cols: UInt32?
      var rows: UInt32?
    }
    var target: Target
    var action: Action
    var reason: String
    var timeoutSeconds: UInt32?
    var keyId: String
    var code: String?
  }
  struct PrepareAnswer: ResponseEncodable {
    var id: String
    var request: String
    var hosts: [String]
    var dangerous: Bool
  }

  func prepare(_ request: Request, _ context: ConsoleContext) async throws -> PrepareAnswer {
    let session = try requireRunner(context)
    let body = try await request.decode(as: PrepareRequest.self, context: context)
    guard try await accounts.hasKey(userID: session.userID, keyID: body.keyId) else {
      throw APIError(.forbidden, "unknown_key", "this browser's key is not registered (or was revoked)")
    }
    let reason = body.reason.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !reason.isEmpty, reason.utf8.count <= 500 else { throw APIError.badRequest("a reason (up to 500 bytes)") }
    let target = try Self.target(body.target)
    var action = try Self.action(body.action)
    let isShell = action.builtin == .shell
    let timeout = body.timeoutSeconds ?? (isShell ? 8 * 3600 : 30)
    guard (1...(isShell ? 8 * 3600 : 3600)).contains(timeout) else {
      throw APIError.badRequest("timeoutSeconds: 1 to \(isShell ? "28800" : "3600")")
    }
    if isShell, target.kind != .hosts || target.hosts.count != 1 {
      throw APIError.badRequest("a terminal is on one host")
    }
    let hosts = fleet.resolve(target)
    // A terminal always asks for a fresh code.
    let dangerous = isShell || isDangerous(target, reaching: hosts.count)
    let now = Date().unixMilliseconds
    let id = UUID().uuidString.lowercased()
    if isShell { action.sessionTokenSha256 = terminals.prepare(id: id, user: session.user, nowMs: now) }
    let command = CommandRequest(
      id: id, target: target, action: action, timeoutMs: timeout * 1000,
      deadlineUnixMs: now + 120_000, requester: session.user, reason: reason, submittedAtUnixMs: now,
      operatorKeyId: "\(session.user)/\(body.keyId)")
    if dangerous {
      guard let code = body.code,
        try await login.confirmCode(session, code: code, address: context.address, action: "confirm_command")
      else {
        throw APIError(
          .forbidden, "totp_required",
          isShell
            ? "a terminal needs a fresh code"
            : "a command on \(target.kind == .all ? "all hosts" : "\(hosts.count) hosts") needs a fresh code")
      }
      confirmed.add(Self.fingerprint(command, user: session.user), nowMs: now)
      try await accounts.audit(
        user: session.user, address: context.address, action: "confirm_command", outcome: "ok",
        detail: "\(command.id) on \(target.kind == .all ? "all hosts" : "\(hosts.count) hosts")")
    }
    return PrepareAnswer(
      id: command.id, request: Data(command.encode()).base64EncodedString(), hosts: hosts, dangerous: dangerous)
  }

  /// Whether a target needs a fresh code: all hosts, more than
  /// `confirm-above` as the console counts them, or a group or selector
  /// while the console knows no hosts yet (it cannot count them).
  /// `reaching`: the hosts it resolves to now (`fleet.resolve`).
  func isDangerous(_ t: CommandTarget, reaching count: Int) -> Bool {
    switch t.kind {
    case .all: return true
    case .group, .selector: return fleet.hostNames.isEmpty || count > settings.confirmAbove
    default: return count > settings.confirmAbove
    }
  }

  /// What a confirmation is good for: these exact bytes (unsigned) from
  /// this user, so a confirmed id cannot carry another target or action.
  static func fingerprint(_ command: CommandRequest, user: String) -> String {
    var unsigned = command
    unsigned.operatorSignature = []
    let digest = SHA256.hash(data: unsigned.encode() + Array(user.utf8))
    return digest.map { String(format: "%02x", $0) }.joined()
  }

  /// A selector as the router reads it: every key once, none empty (the
  /// router keeps the last value of a repeated key, so a repeated key would
  /// count fewer hosts here than it reaches there).
  static func checkSelector(_ labels: [Label]) throws {
    let keys = labels.map(\.key)
    guard !keys.contains(""), Set(keys).count == keys.count else {
      throw APIError.badRequest("selector: each key once, none empty")
    }
  }

  static func target(_ t: PrepareRequest.Target) throws -> CommandTarget {
    switch t.kind {
    case "hosts":
      let hosts = (t.hosts ?? []).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
      guard !hosts.isEmpty, hosts.count <= 10_000, hosts.allSatisfy(Subjects.isValidHostToken) else {
        throw APIError.badRequest("hosts: one or more host names")
      }
      return CommandTarget(kind: .hosts, hosts: hosts)
    case "group":
      guard let g = t.group, !g.isEmpty else { throw APIError.badRequest("group: a group name") }
      return CommandTarget(kind: .group, group: g)
    case "selector":
      let pairs = (t.selector ?? "").split(separator: ",").map { $0.split(separator: "=", maxSplits: 1) }
      guard !pairs.isEmpty, pairs.allSatisfy({ $0.count == 2 && !$0[0].isEmpty }) else {
        throw APIError.badRequest("selector: key=value[,key=value]")
      }
      let labels = pairs.map {
        Label(key: $0[0].trimmingCharacters(in: .whitespaces), value: $0[1].trimmingCharacters(in: .whitespaces))
      }
      try checkSelector(labels)
      return CommandTarget(kind: .selector, selector: labels)
    case "all": return CommandTarget(kind: .all)
    default: throw APIError.badRequest("target.kind: hosts, group, selector or all")
    }
  }

  static func action(_ a: PrepareRequest.Action) throws -> CommandAction {
    switch a.builtin {
    case nil, "":
      if let line = a.shell, !line.isEmpty { return CommandAction(argv: [line], shell: true) }
      guard let argv = a.argv, !argv.isEmpty, !argv[0].isEmpty, argv.count <= 256 else {
        throw APIError.badRequest("action: argv, shell or builtin")
      }
      return CommandAction(argv: argv)
    case "restart_service":
      guard let s = a.service, !s.isEmpty else { throw APIError.badRequest("restart_service needs a service") }
      return CommandAction(builtin: .restartService, service: s)
    case "wake_on_lan":
      return CommandAction(builtin: .wakeOnLan, mac: a.mac ?? "", broadcastAddress: a.broadcast ?? "")
    case "collect_now": return CommandAction(builtin: .collectNow)
    case "shell":
      let cols = min(max(a.cols ?? 80, 20), 500)
      let rows = min(max(a.rows ?? 24, 5), 200)
      return CommandAction(builtin: .shell, cols: cols, rows: rows)
    default: throw APIError.badRequest("builtin: restart_service, wake_on_lan, collect_now or shell")
    }
  }

  struct SubmitRequest: Decodable {
    /// The CommandRequest, protobuf-encoded (base64): from `prepare`, with
    /// `signature` the browser's Ed25519 signature of exactly these bytes;
    /// or already signed (`mirrorctl`-style, no `signature`).
    var request: String
    var signature: String?
  }
  struct SubmitAnswer: ResponseEncodable {
    var id: String
    var commandId: String
    var state: String
    var hosts: [String]
    var reason: String
  }

  /// The console checks the role, that the signer is the session's user and
  /// that a dangerous scope was confirmed; the CommandRouter verifies the
  /// signature and its rules.
  func submit(_ request: Request, _ context: ConsoleContext) async throws -> SubmitAnswer {
    let session = try requireRunner(context)
    let body = try await request.decode(as: SubmitRequest.self, context: context)
    let command = try Self.command(of: body)
    let signer = command.operatorKeyId.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
    guard signer == session.user, command.requester.isEmpty || command.requester == session.user else {
      throw APIError.forbidden("the command is signed as '\(command.operatorKeyId)', not as '\(session.user)'")
    }
    let target = command.target ?? CommandTarget()
    if target.kind == .selector { try Self.checkSelector(target.selector) }
    let isSession = command.action?.builtin == .shell || command.action?.builtin == .forward
    if isSession || isDangerous(target, reaching: fleet.resolve(target).count) {
      guard confirmed.take(Self.fingerprint(command, user: session.user), nowMs: Date().unixMilliseconds) else {
        Counter(label: "console_commands_refused_total", dimensions: [("reason", "unconfirmed")]).increment()
        try await accounts.audit(
          user: session.user, address: context.address, action: "submit_command", outcome: "unconfirmed",
          detail: command.id)
        throw APIError(.forbidden, "totp_required", "a command on this many hosts needs a fresh code (prepare it)")
      }
    }
    // A terminal listens before the router dispatches it.
    if isSession {
      guard
        command.action?.builtin == .shell, target.hosts.count == 1,
        try terminals.start(
          id: command.id, user: session.user, host: target.hosts[0], connection: await rpc.bus.connection(),
          nowMs: Date().unixMilliseconds) != nil
      else {
        throw APIError(.forbidden, "not_prepared", "a terminal is opened from a request prepared here")
      }
    }
    let answer: SubmitCommandResponse
    do { answer = try await rpc.submit(command) } catch {
      if isSession { terminals.discard(command.id) }
      throw error
    }
    if isSession, answer.state != .dispatched && answer.state != .running { terminals.discard(command.id) }
    Counter(label: "console_commands_total", dimensions: [("state", "\(answer.state)")]).increment()
    logger.info(
      "command submitted",
      metadata: ["user": "\(session.user)", "command_id": "\(answer.commandId)", "state": "\(answer.state)"])
    let state = apiName(answer.state.description, prefix: "COMMAND_STATE_")
    return SubmitAnswer(
      id: answer.commandId, commandId: answer.commandId, state: state, hosts: answer.hosts, reason: answer.reason)
  }

  /// The command a submit body carries: its base64 CommandRequest, with
  /// the browser's signature when the body has one.
  static func command(of body: SubmitRequest) throws -> CommandRequest {
    guard let bytes = Data(base64Encoded: body.request), bytes.count <= 64 * 1024,
      var command = try? CommandRequest(decoding: [UInt8](bytes))
    else { throw APIError.badRequest("request is not a base64 CommandRequest") }
    if let signature = body.signature {
      guard let sig = Data(base64Encoded: signature), sig.count == 64 else {
        throw APIError.badRequest("signature is not a base64 Ed25519 signature")
      }
      command.operatorSignature = [UInt8](sig)
    }
    return command
  }

  // MARK: History

  struct CommandsAnswer: ResponseEncodable { var commands: [CommandSummary] }

  func commands(_ request: Request, _ context: ConsoleContext) async throws -> CommandsAnswer {
    let q = request.uri.queryParameters
    var list = ListCommandsRequest(limit: min(q["limit"].flatMap { UInt32($0) } ?? 50, 500))
    list.host = q["host"].map(String.init) ?? ""
    list.requester = q["user"].map(String.init) ?? ""
    if let s = q["state"], !s.isEmpty {
      guard
        let state = (1...9).map(CommandState.init(rawValue:)).first(where: {
          apiName($0.description, prefix: "COMMAND_STATE_") == s
        })
      else {
        throw APIError.badRequest("unknown state '\(s)'")
      }
      list.state = state
    }
    list.sinceUnixMs = q["since"].flatMap { Int64($0) } ?? 0
    list.untilUnixMs = q["until"].flatMap { Int64($0) } ?? 0
    let answer = try await rpc.commands(list)
    return CommandsAnswer(commands: answer.commands.map(CommandSummary.init))
  }

  struct CommandAnswer: ResponseEncodable {
    var command: CommandSummary
    var output: [CommandOutputMessage]
  }

  func command(_ request: Request, _ context: ConsoleContext) async throws -> CommandAnswer {
    let id = try context.parameters.require("id")
    let found = try await rpc.command(id: id)
    guard let record = found.record else { throw APIError.notFound("no command \(id)") }
    // What was typed in a terminal (passwords too) is for admins and the
    // one who typed it.
    let session = try context.requireSession()
    let mayReadInput = session.roles.contains("admin") || record.request?.requester == session.user
    return CommandAnswer(
      command: CommandSummary(record),
      output: found.output.filter { mayReadInput || $0.channel != .input }.map(CommandOutputMessage.init))
  }

  /// A terminal's recording as asciicast v2, for the replay (admins and
  /// the one who typed it).
  func cast(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    let session = try context.requireSession()
    let id = try context.parameters.require("id")
    let found = try await rpc.command(id: id)
    guard let record = found.record else { throw APIError.notFound("no command \(id)") }
    guard session.roles.contains("admin") || record.request?.requester == session.user else {
      throw APIError.forbidden("a terminal's recording is for admins and the one who typed it")
    }
    var headers = HTTPFields()
    headers[.contentType] = "application/x-asciicast; charset=utf-8"
    headers[.contentDisposition] = "attachment; filename=\"\(id).cast\""
    return Response(
      status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: Asciicast.render(found))))
  }
}

/// Requests prepared with a fresh TOTP (by `fingerprint`), good for one
/// submit within two minutes. Held by this console process: several
/// replicas behind a load balancer need sticky sessions for it.
final class ConfirmedCommands: Sendable {
  private let ids = Mutex<[String: Int64]>([:])

  func add(_ id: String, nowMs: Int64) {
    ids.withLock { ids in
      ids = ids.filter { $0.value > nowMs }
      ids[id] = nowMs + 120_000
    }
  }

  func take(_ id: String, nowMs: Int64) -> Bool {
    ids.withLock { ($0.removeValue(forKey: id) ?? 0) > nowMs }
  }
}
