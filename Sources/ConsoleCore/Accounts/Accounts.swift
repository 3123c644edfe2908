import Crypto
import Foundation
import HummingbirdBcrypt
public import MirrorStore
import NIOPosix

/// A user as the console's login sees it.
public struct Account: Sendable, Hashable {
  public var id: Int64
  public var name: String
  public var displayName: String
  public var passwordHash: String?
  public var totpSecret: String?
  public var totpEnrolled: Bool
  public var totpLastStep: Int64
  public var disabled: Bool
  public var failedLogins: Int
  public var lockedUntilMs: Int64?
  public var roles: [String]
}

/// A user as `mirrorctl users list` shows it.
public struct AccountSummary: Sendable, Hashable {
  public var name: String
  public var roles: [String]
  public var disabled: Bool
  public var totpEnrolled: Bool
  public var hasPassword: Bool
}

/// The users, roles and credentials of people who log in to the console,
/// in PostgreSQL (`users`, `user_roles`, the login columns of migration
/// 0007). Shared by the console and `mirrorctl users`.
public struct Accounts: Sendable {
  public static let roles = ["admin", "operator", "viewer"]

  let database: PostgresClient

  public init(database: PostgresClient) { self.database = database }

  /// A new password for a person to type: 20 characters of an alphabet
  /// without look-alikes (~115 bits).
  public static func generatePassword() -> String {
    let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    return String((0..<20).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
  }

  /// bcrypt (cost 12) of a password. The corresponding C function is
  /// hummingbird-auth's `c_hb_bcrypt_hashpass`.
  public static func hashPassword(_ password: String) -> String { Bcrypt.hash(password, cost: 12) }

  public static func verifyPassword(_ password: String, hash: String) -> Bool {
    Bcrypt.verify(password, hash: hash)
  }

  /// `verifyPassword` on NIO's thread pool: a quarter second of CPU that
  /// must not hold a thread of the cooperative pool (the live streams and
  /// the bus loops run there).
  static func verifyOffPool(_ password: String, hash: String) async throws -> Bool {
    try await NIOThreadPool.singleton.runIfActive { verifyPassword(password, hash: hash) }
  }

  public func find(_ name: String) async throws -> Account? {
    try await find(where: "u.name = $1", name)
  }

  func find(id: Int64) async throws -> Account? { try await find(where: "u.id = $1", id) }

  private func find(where condition: String, _ key: any PGEncodable) async throws -> Account? {
    let rows = try await database.query(
      """
      SELECT u.id, u.name, u.display_name, u.password_hash, u.totp_secret, u.totp_enrolled, u.totp_last_step,
             u.disabled, u.failed_logins, (extract(epoch FROM u.locked_until) * 1000)::bigint,
             coalesce(string_agg(r.role, ',' ORDER BY r.role), '')
      FROM users u LEFT JOIN user_roles r ON r.user_id = u.id WHERE \(condition) GROUP BY u.id
      """, [key])
    guard let row = rows.rows.first else { return nil }
    return Account(
      id: try row.decode(Int64.self, 0), name: try row.decode(String.self, 1),
      displayName: try row.decode(String.self, 2), passwordHash: try row.decodeIfPresent(String.self, 3),
      totpSecret: try row.decodeIfPresent(String.self, 4), totpEnrolled: try row.decode(Bool.self, 5),
      totpLastStep: try row.decode(Int64.self, 6), disabled: try row.decode(Bool.self, 7),
      failedLogins: try row.decode(Int.self, 8), lockedUntilMs: try row.decodeIfPresent(Int64.self, 9),
      roles: try row.decode(String.self, 10).split(separator: ",").map(String.init))
  }

  /// Adds a user with one role and a password, or gives an existing user
  /// that role and a new password (and a fresh TOTP enrolment).
  public func add(name: String, role: String, password: String, displayName: String = "") async throws {
    guard Self.roles.contains(role) else { throw AccountError("unknown role '\(role)' (one of \(Self.roles))") }
    guard Self.isValidName(name) else {
      throw AccountError("'\(name)' is not a user name (letters, digits, '.', '-', '_'; at most 64)")
    }
    let hash = Self.hashPassword(password)
    _ = try await database.transaction { conn in
      let id = try conn.query(
        """
        INSERT INTO users (name, display_name, password_hash) VALUES ($1, $2, $3)
        ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, totp_secret = NULL,
          totp_enrolled = false, failed_logins = 0, locked_until = NULL, disabled = false
        RETURNING id
        """, [name, displayName, hash]
      ).rows[0].decode(Int64.self, 0)
      _ = try conn.query("DELETE FROM user_roles WHERE user_id = $1", [id])
      _ = try conn.query("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)", [id, role])
      _ = try conn.query("DELETE FROM console_sessions WHERE user_id = $1", [id])
    }
  }

  public func list() async throws -> [AccountSummary] {
    let rows = try await database.query(
      """
      SELECT u.name, coalesce(string_agg(r.role, ',' ORDER BY r.role), ''), u.disabled, u.totp_enrolled,
             u.password_hash IS NOT NULL
      FROM users u LEFT JOIN user_roles r ON r.user_id = u.id GROUP BY u.id ORDER BY u.name
      """)
    return try rows.rows.map { row in
      AccountSummary(
        name: try row.decode(String.self, 0),
        roles: try row.decode(String.self, 1).split(separator: ",").map(String.init),
        disabled: try row.decode(Bool.self, 2), totpEnrolled: try row.decode(Bool.self, 3),
        hasPassword: try row.decode(Bool.self, 4))
    }
  }

  /// Counts a failed login; the `maxFailures`-th in a row locks the account
  /// for `lockout`. Returns whether the account is now locked.
  func recordFailure(userID: Int64, maxFailures: Int, lockout: Duration) async throws -> Bool {
    let rows = try await database.query(
      """
      UPDATE users SET
        failed_logins = CASE WHEN locked_until <= now() THEN 1 ELSE failed_logins + 1 END,
        locked_until = CASE
          WHEN (CASE WHEN locked_until <= now() THEN 1 ELSE failed_logins + 1 END) >= $2
            THEN now() + make_interval(secs => $3)
          WHEN locked_until <= now() THEN NULL ELSE locked_until END
      WHERE id = $1 RETURNING failed_logins >= $2
      """, [userID, maxFailures, Double(lockout.components.seconds)])
    return try rows.rows.first?.decode(Bool.self, 0) ?? false
  }

  /// A successful login: failures forgotten, and the TOTP step used up.
  /// False when another request used this step (or a later one) first: two
  /// logins racing with one code get one session.
  func recordSuccess(userID: Int64, totpStep: Int64) async throws -> Bool {
    try await !database.query(
      """
      UPDATE users SET failed_logins = 0, locked_until = NULL, totp_last_step = $2
      WHERE id = $1 AND totp_last_step < $2 AND (locked_until IS NULL OR locked_until <= now()) RETURNING id
      """, [userID, totpStep]
    ).rows.isEmpty
  }

  /// A new, not yet confirmed TOTP secret for the user.
  func beginEnrolment(userID: Int64) async throws -> String {
    let secret = TOTPCode.generateSecret()
    _ = try await database.query(
      "UPDATE users SET totp_secret = $2, totp_enrolled = false WHERE id = $1", [userID, secret])
    return secret
  }

  func confirmEnrolment(userID: Int64, step: Int64) async throws -> Bool {
    try await !database.query(
      """
      UPDATE users SET totp_enrolled = true, totp_last_step = $2, failed_logins = 0
      WHERE id = $1 AND NOT totp_enrolled AND totp_last_step < $2 RETURNING id
      """, [userID, step]
    ).rows.isEmpty
  }

  /// Audit lines older than `age` go.
  func purgeAudit(olderThan age: Duration) async throws {
    _ = try await database.query(
      "DELETE FROM console_audit WHERE at < now() - make_interval(secs => $1)", [Double(age.components.seconds)])
  }

  /// One line of the console's audit trail.
  func audit(user: String, address: String, action: String, outcome: String, detail: String = "") async throws {
    _ = try await database.query(
      "INSERT INTO console_audit (user_name, address, action, outcome, detail) VALUES ($1, $2, $3, $4, $5)",
      [user, address, action, outcome, detail])
  }

  static func isValidName(_ name: String) -> Bool {
    !name.isEmpty && name.utf8.count <= 64
      && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0) }
      && name.unicodeScalars.allSatisfy(\.isASCII)
  }
}

/// A refusal of `mirrorctl users` or the console's account calls.
public struct AccountError: Error, Sendable, CustomStringConvertible {
  public var description: String
  /// The name is taken (HTTP 409), rather than a bad request.
  public var conflict = false
  public init(_ description: String, conflict: Bool = false) {
    self.description = description
    self.conflict = conflict
  }
}
