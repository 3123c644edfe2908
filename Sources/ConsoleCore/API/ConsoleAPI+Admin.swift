import Foundation
import Hummingbird
import MirrorService
import MirrorWire

/// Alerts (acknowledge, silence, end a silence), the twin's scene, and the
/// users' administration (admins only). Every change is audited.
extension ConsoleAPI {
  // MARK: Alerts

  struct AckRequest: Decodable { var comment: String? }

  func acknowledge(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    let session = try requireActor(context)
    let id = try context.parameters.require("id")
    let body = try await request.decode(as: AckRequest.self, context: context)
    let alert = try await rpc.acknowledge(
      AckAlertRequest(alertId: id, by: session.user, comment: String((body.comment ?? "").prefix(500))))
    try await accounts.audit(
      user: session.user, address: context.address, action: "ack_alert", outcome: "ok", detail: id)
    fleet.apply(alert: alert)
    return try context.responseEncoder.encode(AlertView(alert), from: request, context: context)
  }

  struct SilenceBody: Decodable {
    var alertId, rule, host, comment: String?
    var minutes: Double
  }

  func silence(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    let session = try requireActor(context)
    let b = try await request.decode(as: SilenceBody.self, context: context)
    guard b.minutes > 0, b.minutes <= 366 * 1440 else {
      throw APIError.badRequest("minutes: more than 0, up to a year")
    }
    let silence = try await rpc.silence(
      SilenceRequest(
        alertId: b.alertId ?? "", rule: b.rule ?? "", host: b.host ?? "", durationMs: UInt64(b.minutes * 60_000),
        by: session.user, comment: String((b.comment ?? "").prefix(500))))
    try await accounts.audit(
      user: session.user, address: context.address, action: "silence", outcome: "ok", detail: silence.id)
    return try context.responseEncoder.encode(SilenceView(silence), from: request, context: context)
  }

  func endSilence(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    let session = try requireActor(context)
    let id = try context.parameters.require("id")
    _ = try await rpc.endSilence(EndSilenceRequest(id: id, by: session.user))
    try await accounts.audit(
      user: session.user, address: context.address, action: "end_silence", outcome: "ok", detail: id)
    return Response(status: .noContent)
  }

  func requireActor(_ context: ConsoleContext) throws -> Session {
    let session = try context.requireSession()
    guard session.mayAct else { throw APIError.forbidden("viewers may look, not act") }
    return session
  }

  // MARK: Network

  /// The twin's scene in its JSON form (docs/twin.md: the protobuf's
  /// fields in camelCase, the same names as the diffs on the live stream).
  func scene(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    let scene = try await rpc.scene()
    return Response(
      status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
      body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(scene))))
  }

  // MARK: Users

  struct UsersAnswer: ResponseEncodable { var users: [UserView] }

  func requireAdmin(_ context: ConsoleContext) throws -> Session {
    let session = try context.requireSession()
    guard session.isAdmin else { throw APIError.forbidden("only admins manage users") }
    return session
  }

  func users(_ request: Request, _ context: ConsoleContext) async throws -> UsersAnswer {
    let session = try requireAdmin(context)
    return UsersAnswer(users: try await accounts.users(currentSession: session.tokenHash))
  }

  struct NewUser: Decodable {
    var name, role, password: String
    var displayName: String?
  }

  func addUser(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    let session = try requireAdmin(context)
    let b = try await request.decode(as: NewUser.self, context: context)
    try await adminChange(session, context, "add_user", b.name) {
      try await accounts.create(name: b.name, role: b.role, password: b.password, displayName: b.displayName ?? "")
    }
    return Response(status: .created)
  }

  struct UserChange: Decodable {
    var role: String?
    var disabled: Bool?
    var displayName: String?
  }

  func changeUser(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    let session = try requireAdmin(context)
    let name = try context.parameters.require("name")
    let b = try await request.decode(as: UserChange.self, context: context)
    if name == session.user, b.disabled == true || (b.role.map { $0 != "admin" } ?? false) {
      throw APIError.badRequest("an admin cannot disable or demote themselves")
    }
    let what = [
      b.role.map { "role=\($0)" }, b.disabled.map { "disabled=\($0)" }, b.displayName.map { "displayName=\($0)" },
    ].compactMap { $0 }
    try await adminChange(session, context, "change_user", "\(name) \(what.joined(separator: " "))") {
      try await accounts.update(name: name, role: b.role, disabled: b.disabled, displayName: b.displayName)
    }
    return Response(status: .noContent)
  }

  func resetTOTP(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    let session = try requireAdmin(context)
    let name = try context.parameters.require("name")
    try await adminChange(session, context, "reset_totp", name) { try await accounts.resetTOTP(name: name) }
    return Response(status: .noContent)
  }

  func removeUser(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    let session = try requireAdmin(context)
    let name = try context.parameters.require("name")
    guard name != session.user else { throw APIError.badRequest("an admin cannot remove themselves") }
    try await adminChange(session, context, "remove_user", name) { try await accounts.remove(name: name) }
    return Response(status: .noContent)
  }

  func endSession(_ request: Request, _ context: ConsoleContext) async throws -> Response {
    let session = try requireAdmin(context)
    guard let id = Int64(try context.parameters.require("id")) else { throw APIError.badRequest("a session id") }
    guard let whose = try await accounts.endSession(id: id) else { throw APIError.notFound("no session \(id)") }
    try await accounts.audit(
      user: session.user, address: context.address, action: "end_session", outcome: "ok", detail: "\(whose) #\(id)")
    return Response(status: .noContent)
  }

  /// Runs an admin change; an `AccountError` becomes 400, and the outcome
  /// either way goes to the audit trail.
  func adminChange(
    _ session: Session, _ context: ConsoleContext, _ action: String, _ detail: String,
    _ change: () async throws -> Void
  ) async throws {
    do {
      try await change()
    } catch let e as AccountError {
      try await accounts.audit(
        user: session.user, address: context.address, action: action, outcome: "refused", detail: "\(detail): \(e)")
      throw e.conflict ? APIError(.conflict, "exists", e.description) : APIError.badRequest(e.description)
    }
    try await accounts.audit(
      user: session.user, address: context.address, action: action, outcome: "ok", detail: detail)
    logger.notice(
      "user administration", metadata: ["by": "\(session.user)", "action": "\(action)", "detail": "\(detail)"])
  }
}
