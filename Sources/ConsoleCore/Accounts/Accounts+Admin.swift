import Foundation
import MirrorStore

/// A user as the console's user administration shows it.
public struct UserView: Codable, Sendable, Hashable {
  public struct SessionView: Codable, Sendable, Hashable {
    public var id: Int64
    public var createdAt, lastSeenAt: Int64
    public var address, userAgent: String
    public var current: Bool
  }
  public var name, displayName: String
  public var roles: [String]
  public var disabled, totpEnrolled: Bool
  public var lockedUntil, lastLoginAt: Int64?
  public var sessions: [SessionView]
}

/// A command-signing key made in a person's browser.
public struct UserKeyView: Codable, Sendable, Hashable {
  public var keyId, label: String
  public var createdAt: Int64
  public var lastUsedAt: Int64?
}

/// What an admin may do to the users (Console 2/2), and the browser keys.
/// Every change is audited by the caller.
extension Accounts {
  public func users(currentSession: [UInt8]? = nil) async throws -> [UserView] {
    let rows = try await database.query(
      """
      SELECT u.name, u.display_name, coalesce(string_agg(DISTINCT r.role, ','), ''), u.disabled, u.totp_enrolled,
        (extract(epoch FROM u.locked_until) * 1000)::bigint,
        (SELECT (extract(epoch FROM max(a.at)) * 1000)::bigint FROM console_audit a
          WHERE a.user_name = u.name AND a.action = 'login' AND a.outcome = 'ok')
      FROM users u LEFT JOIN user_roles r ON r.user_id = u.id GROUP BY u.id ORDER BY u.name
      """)
    let sessions = try await database.query(
      """
      SELECT u.name, s.id, (extract(epoch FROM s.created_at) * 1000)::bigint,
        (extract(epoch FROM s.last_seen_at) * 1000)::bigint, s.address, s.user_agent, s.token_hash = $1
      FROM console_sessions s JOIN users u ON u.id = s.user_id
      WHERE s.stage = 'ready' AND s.expires_at > now() ORDER BY s.last_seen_at DESC
      """, [PGBytes(currentSession ?? [])])
    var byUser: [String: [UserView.SessionView]] = [:]
    for r in sessions.rows {
      byUser[try r.decode(String.self, 0), default: []].append(
        .init(
          id: try r.decode(Int64.self, 1), createdAt: try r.decode(Int64.self, 2),
          lastSeenAt: try r.decode(Int64.self, 3), address: try r.decode(String.self, 4),
          userAgent: try r.decode(String.self, 5), current: try r.decode(Bool.self, 6)))
    }
    return try rows.rows.map { r in
      let name = try r.decode(String.self, 0)
      return UserView(
        name: name, displayName: try r.decode(String.self, 1),
        roles: try r.decode(String.self, 2).split(separator: ",").map(String.init).sorted(),
        disabled: try r.decode(Bool.self, 3), totpEnrolled: try r.decode(Bool.self, 4),
        lockedUntil: try r.decodeIfPresent(Int64.self, 5), lastLoginAt: try r.decodeIfPresent(Int64.self, 6),
        sessions: byUser[name] ?? [])
    }
  }

  /// Adds a new user; an existing name is refused (unlike `mirrorctl users
  /// add`, which also resets).
  public func create(name: String, role: String, password: String, displayName: String) async throws {
    guard Self.roles.contains(role) else { throw AccountError("unknown role '\(role)' (one of \(Self.roles))") }
    guard Self.isValidName(name) else {
      throw AccountError("'\(name)' is not a user name (letters, digits, '.', '-', '_'; at most 64)")
    }
    guard password.count >= 12 else { throw AccountError("the password needs at least 12 characters") }
    let hash = Self.hashPassword(password)
    // One statement decides: two admins adding the same name at once get
    // one user, not one reset by the other.
    let created = try await database.transaction { conn -> Bool in
      guard
        let id = try conn.query(
          """
          INSERT INTO users (name, display_name, password_hash) VALUES ($1, $2, $3)
          ON CONFLICT (name) DO NOTHING RETURNING id
          """, [name, displayName, hash]
        ).rows.first?.decode(Int64.self, 0)
      else { return false }
      _ = try conn.query("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)", [id, role])
      return true
    }
    guard created else { throw AccountError("user '\(name)' exists", conflict: true) }
  }

  /// Changes a user's role, display name or disabled flag (nil: unchanged).
  /// Disabling ends their sessions.
  public func update(name: String, role: String?, disabled: Bool?, displayName: String?) async throws {
    if let role, !Self.roles.contains(role) { throw AccountError("unknown role '\(role)' (one of \(Self.roles))") }
    guard let account = try await find(name) else { throw AccountError.notFound(name) }
    _ = try await database.transaction { conn in
      if let role {
        _ = try conn.query("DELETE FROM user_roles WHERE user_id = $1", [account.id])
        _ = try conn.query("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)", [account.id, role])
      }
      if let displayName {
        _ = try conn.query("UPDATE users SET display_name = $2 WHERE id = $1", [account.id, displayName])
      }
      if let disabled {
        _ = try conn.query("UPDATE users SET disabled = $2 WHERE id = $1", [account.id, disabled])
        if disabled { _ = try conn.query("DELETE FROM console_sessions WHERE user_id = $1", [account.id]) }
      }
    }
  }

  /// Forgets the user's TOTP key (they enrol again at their next login)
  /// and ends their sessions.
  public func resetTOTP(name: String) async throws {
    guard let account = try await find(name) else { throw AccountError.notFound(name) }
    _ = try await database.transaction { conn in
      _ = try conn.query(
        "UPDATE users SET totp_secret = NULL, totp_enrolled = false, failed_logins = 0, locked_until = NULL WHERE id = $1",
        [account.id])
      _ = try conn.query("DELETE FROM console_sessions WHERE user_id = $1", [account.id])
    }
  }

  /// Removes a user, their roles, sessions and keys. Their past commands
  /// and audit lines stay (they name the user, not a row).
  public func remove(name: String) async throws {
    guard try await !database.query("DELETE FROM users WHERE name = $1 RETURNING id", [name]).rows.isEmpty else {
      throw AccountError.notFound(name)
    }
  }

  /// Ends one session; returns whose it was.
  public func endSession(id: Int64) async throws -> String? {
    try await database.query(
      "DELETE FROM console_sessions s USING users u WHERE s.id = $1 AND u.id = s.user_id RETURNING u.name", [id]
    ).rows.first?.decode(String.self, 0)
  }

  // MARK: Browser keys

  public func addKey(userID: Int64, publicKey: [UInt8], label: String) async throws -> String {
    let id = Sessions.randomToken().prefix(16).replacingOccurrences(of: "-", with: "x")
      .replacingOccurrences(of: "_", with: "y")
    _ = try await database.query(
      "INSERT INTO user_keys (id, user_id, public_key, label) VALUES ($1, $2, $3, $4)",
      [id, userID, PGBytes(publicKey), String(label.prefix(100))])
    return id
  }

  public func keys(userID: Int64) async throws -> [UserKeyView] {
    try await database.query(
      """
      SELECT id, label, (extract(epoch FROM created_at) * 1000)::bigint, (extract(epoch FROM last_used_at) * 1000)::bigint
      FROM user_keys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at
      """, [userID]
    ).rows.map {
      UserKeyView(
        keyId: try $0.decode(String.self, 0), label: try $0.decode(String.self, 1),
        createdAt: try $0.decode(Int64.self, 2), lastUsedAt: try $0.decodeIfPresent(Int64.self, 3))
    }
  }

  /// Whether the user has this key, not revoked.
  public func hasKey(userID: Int64, keyID: String) async throws -> Bool {
    try await !database.query(
      "SELECT 1 FROM user_keys WHERE user_id = $1 AND id = $2 AND revoked_at IS NULL", [userID, keyID]
    ).rows.isEmpty
  }

  public func revokeKey(userID: Int64, keyID: String) async throws -> Bool {
    try await !database.query(
      "UPDATE user_keys SET revoked_at = now() WHERE user_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING id",
      [userID, keyID]
    ).rows.isEmpty
  }
}

extension AccountError {
  static func notFound(_ name: String) -> AccountError { AccountError("no user '\(name)'") }
}
