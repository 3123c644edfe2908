import Foundation
import HummingbirdOTP

/// RFC 6238 codes (SHA-1, 6 digits, 30 s), computed by hummingbird-auth's
/// `TOTP`. A code is accepted for its own time step and the one on either
/// side (clock drift), and only for a step after the last one used, so a
/// code seen once cannot be replayed.
public enum TOTPCode {
  static let step: Int64 = 30

  /// A secret of 32 characters from the base-32 alphabet: `TOTP` keys HMAC
  /// with the secret's UTF-8 bytes, and the URI carries those bytes in
  /// base 32, so any authenticator computes the same codes (160 bits, as
  /// RFC 4226 recommends).
  static func generateSecret() -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    return String((0..<32).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
  }

  /// The `otpauth://` URI an authenticator app scans.
  static func uri(secret: String, user: String) -> String {
    TOTP(secret: secret).createAuthenticatorURL(label: "MIRROR STAGE:\(user)", issuer: "MIRROR STAGE")
  }

  /// The time step the code matches, if it is a current code newer than
  /// `after`.
  static func verify(_ code: String, secret: String, after lastStep: Int64, now: Date = Date()) -> Int64? {
    let digits = code.filter { !$0.isWhitespace }
    guard digits.count == 6, let value = Int(digits), digits.allSatisfy(\.isASCII) else { return nil }
    let totp = TOTP(secret: secret)
    let current = Int64(now.timeIntervalSince1970) / step
    for candidate in [current, current - 1, current + 1] where candidate > lastStep {
      if totp.compute(date: Date(timeIntervalSince1970: Double(candidate * step))) == value { return candidate }
    }
    return nil
  }
}
