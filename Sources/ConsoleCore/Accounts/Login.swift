import Foundation
public import Logging
import Metrics
import Synchronization

/// What a login attempt came to.
public enum LoginOutcome: Sendable, Equatable {
  /// Logged in: a `ready` session.
  case ready(token: String, csrf: String, user: String, roles: [String])
  /// Password right, TOTP not enrolled yet: an `enrol` session and the URI.
  case enrol(token: String, csrf: String, otpauth: String)
  case refused(LoginRefusal)
}

/// Why a login was refused: the code goes to the browser, the audit and the
/// `console_logins_total{outcome}` counter.
public struct LoginRefusal: Error, Sendable, Equatable {
  public var code: String
  public var message: String
  public var status: Int
  public static let invalidCredentials = LoginRefusal(
    code: "invalid_credentials", message: "wrong user name or password", status: 401)
  /// A wrong code answers as a wrong password does (the browser learns
  /// nothing about which factor failed); the audit and the counter say
  /// `invalid_totp`.
  public static let invalidTOTP = LoginRefusal(
    code: "invalid_credentials", message: "wrong user name, password or code", status: 401)
  public static let locked = LoginRefusal(
    code: "locked", message: "too many failed logins: the account is locked for a while", status: 423)
  public static let rateLimited = LoginRefusal(
    code: "rate_limited", message: "too many login attempts from this address; wait a minute", status: 429)
  public static let busy = LoginRefusal(
    code: "busy", message: "too many logins at once; try again in a moment", status: 429)
}

/// Password + TOTP login with per-user lockout and per-address rate limit;
/// every attempt audited and counted.
public final class Login: Sendable {
  public struct Settings: Sendable {
    public var maxFailures = 10
    public var lockout: Duration = .seconds(900)
    public var attemptsPerMinute = 20
    public init() {}
  }

  let accounts: Accounts
  let sessions: Sessions
  let settings: Settings
  let logger: Logger
  private let attempts = Mutex<[String: [ContinuousClock.Instant]]>([:])
  /// Password checks running now: each is a quarter second of a core, so
  /// at most `maxConcurrentChecks` at once, the rest refused (429).
  private let checking = Mutex(0)
  static let maxConcurrentChecks = 4
  /// Verifying a password against a dummy hash when the user does not
  /// exist keeps a missing user as slow as a wrong password.
  private static let dummyHash = Accounts.hashPassword("not a real password")

  public init(accounts: Accounts, sessions: Sessions, settings: Settings, logger: Logger) {
    self.accounts = accounts
    self.sessions = sessions
    self.settings = settings
    self.logger = logger
  }

  static func count(_ outcome: String) {
    Counter(label: "console_logins_total", dimensions: [("outcome", outcome)]).increment()
  }

  /// Whether `address` may try again now (a sliding minute).
  func admit(_ address: String) -> Bool {
    let now = ContinuousClock.now
    return attempts.withLock { table in
      var recent = (table[address] ?? []).filter { now - $0 < .seconds(60) }
      guard recent.count < settings.attemptsPerMinute else {
        table[address] = recent
        return false
      }
      recent.append(now)
      table[address] = recent
      if table.count > 10_000 { table = table.filter { !$0.value.isEmpty && now - $0.value.last! < .seconds(60) } }
      return true
    }
  }

  public func attempt(user: String, password: String, code: String, address: String, userAgent: String) async throws
    -> LoginOutcome
  {
    // What a refusal writes names the user only when it is a user name: a
    // hostile body is not copied into the log or the audit.
    let named = Accounts.isValidName(user) ? user : "<invalid>"
    func refuse(_ r: LoginRefusal, _ outcome: String? = nil, _ detail: String = "") async throws -> LoginOutcome {
      let outcome = outcome ?? r.code
      Self.count(outcome)
      logger.notice("login refused", metadata: ["user": "\(named)", "address": "\(address)", "reason": "\(outcome)"])
      try await accounts.audit(user: named, address: address, action: "login", outcome: outcome, detail: detail)
      return .refused(r)
    }
    guard admit(address) else {
      // Counted, logged once a minute at most per address by `admit`'s
      // window: no audit row per refused attempt (a flood would fill it).
      Self.count(LoginRefusal.rateLimited.code)
      return .refused(.rateLimited)
    }
    guard Accounts.isValidName(user), password.utf8.count <= 1024, let account = try await accounts.find(user),
      let hash = account.passwordHash, !account.disabled
    else {
      _ = try await checkPassword(password, hash: Self.dummyHash)
      return try await refuse(.invalidCredentials, nil, "unknown or disabled user")
    }
    if let until = account.lockedUntilMs, until > Date().unixMilliseconds {
      return try await refuse(.locked)
    }
    guard let passwordOK = try await checkPassword(password, hash: hash) else {
      Self.count(LoginRefusal.busy.code)
      return .refused(.busy)
    }
    guard passwordOK else {
      let locked = try await accounts.recordFailure(
        userID: account.id, maxFailures: settings.maxFailures, lockout: settings.lockout)
      return try await refuse(locked ? .locked : .invalidCredentials, nil, "wrong password")
    }
    if !account.totpEnrolled {
      let secret = try await accounts.beginEnrolment(userID: account.id)
      let (token, csrf) = try await sessions.create(
        userID: account.id, stage: .enrol, address: address, userAgent: userAgent)
      Self.count("enrol")
      try await accounts.audit(user: user, address: address, action: "login", outcome: "enrol")
      return .enrol(token: token, csrf: csrf, otpauth: TOTPCode.uri(secret: secret, user: user))
    }
    guard let secret = account.totpSecret,
      let step = TOTPCode.verify(code, secret: secret, after: account.totpLastStep),
      try await accounts.recordSuccess(userID: account.id, totpStep: step)
    else {
      let locked = try await accounts.recordFailure(
        userID: account.id, maxFailures: settings.maxFailures, lockout: settings.lockout)
      return try await refuse(locked ? .locked : .invalidTOTP, locked ? "locked" : "invalid_totp", "wrong code")
    }
    let (token, csrf) = try await sessions.create(
      userID: account.id, stage: .ready, address: address, userAgent: userAgent)
    Self.count("ok")
    logger.info("login", metadata: ["user": "\(user)", "address": "\(address)"])
    try await accounts.audit(user: user, address: address, action: "login", outcome: "ok")
    return .ready(token: token, csrf: csrf, user: user, roles: account.roles)
  }

  /// Confirms an enrolment with the first code; the half-session is
  /// replaced by a `ready` one.
  public func confirmEnrolment(_ session: Session, code: String, address: String, userAgent: String) async throws
    -> LoginOutcome
  {
    guard session.stage == .enrol, let account = try await accounts.find(id: session.userID),
      let secret = account.totpSecret, let step = TOTPCode.verify(code, secret: secret, after: account.totpLastStep),
      try await accounts.confirmEnrolment(userID: account.id, step: step)
    else {
      Self.count("invalid_totp")
      try await accounts.audit(user: session.user, address: address, action: "enrol", outcome: "invalid_totp")
      return .refused(.invalidTOTP)
    }
    try await sessions.delete(session)
    let (token, csrf) = try await sessions.create(
      userID: account.id, stage: .ready, address: address, userAgent: userAgent)
    Self.count("enrolled")
    logger.info("totp enrolled", metadata: ["user": "\(session.user)", "address": "\(address)"])
    try await accounts.audit(user: session.user, address: address, action: "enrol", outcome: "ok")
    return .ready(token: token, csrf: csrf, user: account.name, roles: account.roles)
  }

  /// A fresh TOTP code from a logged-in person, before something that
  /// needs more than a session (registering a signing key, a command on
  /// many hosts). Like a login's code: good once, and a wrong one counts
  /// towards the lockout.
  public func confirmCode(_ session: Session, code: String, address: String, action: String) async throws -> Bool {
    guard let account = try await accounts.find(id: session.userID), let secret = account.totpSecret,
      account.totpEnrolled, !account.disabled
    else { return false }
    if account.lockedUntilMs.map({ $0 > Date().unixMilliseconds }) ?? false {
      Self.count("locked")
      try await accounts.audit(user: session.user, address: address, action: action, outcome: "locked")
      return false
    }
    guard let step = TOTPCode.verify(code, secret: secret, after: account.totpLastStep),
      try await accounts.recordSuccess(userID: account.id, totpStep: step)
    else {
      Self.count("invalid_totp")
      _ = try await accounts.recordFailure(
        userID: account.id, maxFailures: settings.maxFailures, lockout: settings.lockout)
      try await accounts.audit(user: session.user, address: address, action: action, outcome: "invalid_totp")
      return false
    }
    return true
  }

  public func logout(_ session: Session, address: String) async throws {
    try await sessions.delete(session)
    Self.count("logout")
    try await accounts.audit(user: session.user, address: address, action: "logout", outcome: "ok")
  }

  /// bcrypt off the cooperative pool, at most `maxConcurrentChecks` at
  /// once; nil when that many are running.
  func checkPassword(_ password: String, hash: String) async throws -> Bool? {
    let admitted = checking.withLock { n -> Bool in
      guard n < Self.maxConcurrentChecks else { return false }
      n += 1
      return true
    }
    guard admitted else { return nil }
    defer { checking.withLock { $0 -= 1 } }
    return try await Accounts.verifyOffPool(password, hash: hash)
  }

  /// The secret of an enrolment in progress (for its QR code).
  func enrolmentURI(_ session: Session) async throws -> String? {
    guard session.stage == .enrol, let account = try await accounts.find(id: session.userID), !account.totpEnrolled,
      let secret = account.totpSecret
    else { return nil }
    return TOTPCode.uri(secret: secret, user: account.name)
  }
}
