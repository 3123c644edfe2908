public import Crypto
import Foundation
public import MirrorStore
public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// Why a request is not carried out; the code goes into the reply and the
/// audit trail.
public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
  public var state: CommandState
  public var code: String
  public var message: String
  public init(_ state: CommandState, _ code: String, _ message: String) {
    self.state = state
    self.code = code
    self.message = message
  }
  public var description: String { "\(code): \(message)" }
}

/// Who asks, from something a client cannot forge: an Ed25519 signature by
/// a key registered for a user (`users.public_key`), over the request with
/// the signature field empty. The request's `operator_key_id` names the
/// user; `requester` must be that name (or empty).
public enum Identity {
  /// The bytes a signature covers.
  public static func signedBytes(_ request: CommandRequest) -> [UInt8] {
    var r = request
    r.operatorSignature = []
    return r.encode()
  }

  public static func sign(_ request: CommandRequest, user: String, key: Curve25519.Signing.PrivateKey) throws
    -> CommandRequest
  {
    var r = request
    r.operatorKeyId = user
    r.requester = user
    r.operatorSignature = [UInt8](try key.signature(for: signedBytes(r)))
    return r
  }

  /// The verified user and their roles. `operator_key_id` is the user's
  /// name (their `users.public_key`) or `<user>/<key id>` (one of their
  /// browser keys in `user_keys`, not revoked).
  public static func verify(_ request: CommandRequest, on conn: PGConnection) throws -> (
    user: String, roles: Set<String>
  ) {
    guard !request.operatorSignature.isEmpty, !request.operatorKeyId.isEmpty else {
      throw Refusal(.denied, "unauthenticated", "the request carries no operator signature")
    }
    let parts = request.operatorKeyId.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
    let user = String(parts[0])
    let keyID = parts.count > 1 ? String(parts[1]) : nil
    let rows = try conn.query(
      """
      SELECT \(keyID == nil ? "u.public_key" : "(SELECT k.public_key FROM user_keys k WHERE k.user_id = u.id AND k.id = $2 AND k.revoked_at IS NULL)"),
        u.disabled, coalesce(string_agg(r.role, ',' ORDER BY r.role), '')
      FROM users u LEFT JOIN user_roles r ON r.user_id = u.id WHERE u.name = $1 GROUP BY u.id
      """, keyID.map { [user, $0] } ?? [user])
    guard let row = rows.rows.first, let key = try row.decodeIfPresent(PGBytes.self, 0) else {
      throw Refusal(.denied, "unauthenticated", "no user '\(user)' with the key '\(request.operatorKeyId)'")
    }
    guard try !row.decode(Bool.self, 1) else {
      throw Refusal(.denied, "unauthenticated", "user '\(user)' is disabled")
    }
    guard let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: key.bytes),
      publicKey.isValidSignature(request.operatorSignature, for: signedBytes(request))
    else {
      throw Refusal(
        .denied, "bad_signature", "the signature does not verify with the key '\(request.operatorKeyId)'")
    }
    guard request.requester.isEmpty || request.requester == user else {
      throw Refusal(.denied, "bad_signature", "requester '\(request.requester)' is not the signing user")
    }
    if let keyID {
      _ = try? conn.query("UPDATE user_keys SET last_used_at = now() WHERE id = $1", [keyID])
    }
    let roles = Set(try row.decode(String.self, 2).split(separator: ",").map(String.init))
    return (user, roles)
  }
}

/// The name of an action for the rules: "builtin:restart_service" or
/// "argv:" + the argv joined by spaces (with a shell: "shell:" + the line);
/// an interactive shell "session:shell", a port forward
/// "session:forward:<address>:<port>".
public func actionName(_ a: CommandAction) -> String {
  switch a.builtin {
  case .restartService: return "builtin:restart_service"
  case .wakeOnLan: return "builtin:wake_on_lan"
  case .collectNow: return "builtin:collect_now"
  case .shell: return "session:shell"
  case .forward: return "session:forward:\(a.forwardAddress):\(a.forwardPort)"
  default: return (a.shell ? "shell:" : "argv:") + a.argv.joined(separator: " ")
  }
}

/// Roles and rules from PostgreSQL: admins may run anything anywhere; other
/// roles what `command_rules` lets them, on the groups it names.
public enum Authorizer {
  public static func authorize(
    roles: Set<String>, action: CommandAction, hosts: [String], on conn: PGConnection
  ) throws {
    if roles.contains("admin") { return }
    guard !roles.isEmpty else { throw Refusal(.denied, "forbidden", "the user has no role") }
    let name = actionName(action)
    let rules = try conn.query(
      "SELECT action, host_group FROM command_rules WHERE role = ANY($1::text[])",
      [PGArray.text(roles.sorted())])
    let groups = Set(
      try rules.rows.compactMap { row -> String? in
        let pattern = try row.decode(String.self, 0)
        return fnmatch(pattern, name, 0) == 0 ? try row.decode(String.self, 1) : nil
      })
    guard !groups.isEmpty else {
      throw Refusal(.denied, "forbidden", "roles \(roles.sorted()) may not run '\(name)'")
    }
    if groups.contains("*") { return }
    // Every host must be in one of the allowed groups.
    let covered = try conn.query(
      """
      SELECT h.name FROM hosts h WHERE h.name = ANY($1::text[]) AND EXISTS (
        SELECT 1 FROM host_groups g WHERE g.name = ANY($2::text[]) AND \(HostSQL.inGroup))
      """, [PGArray.text(hosts), PGArray.text(groups.sorted())])
    let allowed = Set(try covered.rows.map { try $0.decode(String.self, 0) })
    let outside = hosts.filter { !allowed.contains($0) }
    guard outside.isEmpty else {
      throw Refusal(
        .denied, "forbidden",
        "'\(name)' is not allowed on \(outside.joined(separator: ", ")) for roles \(roles.sorted())")
    }
  }
}
