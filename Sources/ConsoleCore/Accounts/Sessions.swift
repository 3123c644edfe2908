import Crypto
import Foundation
public import MirrorStore

/// A logged-in browser (or one half-way through enrolment).
public struct Session: Sendable, Hashable {
  public enum Stage: String, Sendable { case enrol, ready }
  public var userID: Int64
  public var user: String
  public var displayName: String
  public var roles: [String]
  public var stage: Stage
  public var csrf: String
  public var expiresAtMs: Int64
  public var tokenHash: [UInt8]

  public var isAdmin: Bool { roles.contains("admin") }
  /// May submit commands at all (the router still checks its rules).
  public var mayAct: Bool { roles.contains("admin") || roles.contains("operator") }
}

/// Sessions in `console_sessions`: the cookie holds a random 256-bit token,
/// the table its SHA-256. Ending at the TTL, after the idle timeout, at
/// logout, or when the user is disabled or removed.
public struct Sessions: Sendable {
  let database: PostgresClient
  let ttl: Duration
  let idleTimeout: Duration

  public init(database: PostgresClient, ttl: Duration, idleTimeout: Duration) {
    self.database = database
    self.ttl = ttl
    self.idleTimeout = idleTimeout
  }

  static func randomToken() -> String {
    var bytes = [UInt8](repeating: 0, count: 32)
    for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
    return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
      .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
  }

  static func hash(_ token: String) -> [UInt8] { Array(SHA256.hash(data: Array(token.utf8))) }

  /// A new session; returns the token for the cookie and its CSRF token.
  func create(userID: Int64, stage: Session.Stage, address: String, userAgent: String) async throws -> (
    token: String, csrf: String
  ) {
    let token = Self.randomToken()
    let csrf = Self.randomToken()
    // An enrolment half-session lasts ten minutes at most.
    let lifetime = stage == .ready ? ttl : min(ttl, .seconds(600))
    _ = try await database.query(
      """
      INSERT INTO console_sessions (token_hash, user_id, stage, csrf, address, user_agent, expires_at)
      VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
      """,
      [
        PGBytes(Self.hash(token)), userID, stage.rawValue, csrf, address, String(userAgent.prefix(200)),
        Double(lifetime.components.seconds),
      ])
    return (token, csrf)
  }

  /// The live session of a token, touched; nil when unknown, expired, idle
  /// too long, or its user is disabled.
  func find(token: String) async throws -> Session? {
    guard token.utf8.count <= 64 else { return nil }
    let rows = try await database.query(
      """
      UPDATE console_sessions s SET last_seen_at = now()
      FROM users u
      WHERE s.token_hash = $1 AND u.id = s.user_id AND NOT u.disabled AND s.expires_at > now()
        AND s.last_seen_at > now() - make_interval(secs => $2)
      RETURNING s.user_id, u.name, u.display_name, s.stage, s.csrf, (extract(epoch FROM s.expires_at) * 1000)::bigint,
        (SELECT coalesce(string_agg(r.role, ',' ORDER BY r.role), '') FROM user_roles r WHERE r.user_id = u.id)
      """, [PGBytes(Self.hash(token)), Double(idleTimeout.components.seconds)])
    guard let row = rows.rows.first else { return nil }
    return Session(
      userID: try row.decode(Int64.self, 0), user: try row.decode(String.self, 1),
      displayName: try row.decode(String.self, 2),
      roles: try row.decode(String.self, 6).split(separator: ",").map(String.init),
      stage: Session.Stage(rawValue: try row.decode(String.self, 3)) ?? .enrol, csrf: try row.decode(String.self, 4),
      expiresAtMs: try row.decode(Int64.self, 5), tokenHash: Self.hash(token))
  }

  func delete(_ session: Session) async throws {
    _ = try await database.query("DELETE FROM console_sessions WHERE token_hash = $1", [PGBytes(session.tokenHash)])
  }

  /// Sessions past their end, removed now and then.
  func purgeExpired() async throws {
    _ = try await database.query(
      "DELETE FROM console_sessions WHERE expires_at < now() OR last_seen_at < now() - make_interval(secs => $1)",
      [Double(idleTimeout.components.seconds)])
  }
}
