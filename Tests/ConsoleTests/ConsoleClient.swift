import Crypto
import Foundation
import TestSupport
import Testing

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// A browser's side of the console API for tests: one cookie jar (the
/// session cookie), the CSRF token, JSON in and out.
final class ConsoleClient: @unchecked Sendable {
  let base: String
  var cookie: String?
  var csrf: String?
  let session: URLSession

  struct Answer {
    var status: Int
    var headers: [String: String]
    var body: Data
    var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) ?? [:] }
    var text: String { String(decoding: body, as: UTF8.self) }
  }

  init(port: Int) {
    base = "http://127.0.0.1:\(port)"
    let configuration = URLSessionConfiguration.ephemeral
    configuration.httpShouldSetCookies = false
    configuration.httpCookieAcceptPolicy = .never
    session = URLSession(configuration: configuration)
  }

  @discardableResult
  func send(
    _ method: String, _ path: String, json: Any? = nil, body: Data? = nil, csrf sendCSRF: Bool = true,
    headers: [String: String] = [:]
  ) async throws -> Answer {
    var request = URLRequest(url: URL(string: base + path)!)
    request.httpMethod = method
    if let json {
      request.httpBody = try JSONSerialization.data(withJSONObject: json)
      request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    } else if let body {
      request.httpBody = body
      request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    if let cookie { request.setValue("mirror_session=\(cookie)", forHTTPHeaderField: "Cookie") }
    if sendCSRF, let csrf, method != "GET" { request.setValue(csrf, forHTTPHeaderField: "X-CSRF-Token") }
    for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
    let (data, response) = try await session.data(for: request)
    let http = response as! HTTPURLResponse
    var headers: [String: String] = [:]
    for (k, v) in http.allHeaderFields { headers[String(describing: k).lowercased()] = String(describing: v) }
    if let setCookie = headers["set-cookie"], let value = setCookie.split(separator: ";").first,
      value.hasPrefix("mirror_session=")
    {
      let token = String(value.dropFirst("mirror_session=".count))
      cookie = token.isEmpty ? nil : token
    }
    let answer = Answer(status: http.statusCode, headers: headers, body: data)
    if let token = answer.json["csrf"] as? String { csrf = token }
    return answer
  }

  /// Logs in (enrolling TOTP the first time) and expects it to work;
  /// returns the user's TOTP secret.
  @discardableResult
  func logIn(_ user: String, _ password: String) async throws -> String? {
    var secret: String?
    let answer = try await login(user, password, secret: &secret)
    #expect(answer.status == 200, "\(user): \(answer.text)")
    return secret
  }

  /// Logs in with password and a TOTP code, enrolling first if the user
  /// has not: the code comes from `RFC6238`, not from the console's code.
  func login(_ user: String, _ password: String, secret: inout String?) async throws -> Answer {
    var code = ""
    if let secret { code = RFC6238.code(secret: secret) }
    let answer = try await send("POST", "/api/v1/session", json: ["user": user, "password": password, "code": code])
    guard answer.json["stage"] as? String == "enrol", let uri = answer.json["otpauth"] as? String else { return answer }
    let s = try #require(RFC6238.secret(fromURI: uri))
    secret = s
    return try await send("POST", "/api/v1/session/enrol", json: ["code": RFC6238.code(secret: s)])
  }
}

/// RFC 6238 (TOTP, SHA-1, 6 digits, 30 s) written from the RFC for the
/// tests, independent of the console's (hummingbird-auth's) code.
enum RFC6238 {
  static func code(secret: [UInt8], at date: Date = Date()) -> String {
    var counter = UInt64(date.timeIntervalSince1970 / 30).bigEndian
    let message = withUnsafeBytes(of: &counter) { Array($0) }
    let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: SymmetricKey(data: secret)))
    let offset = Int(mac[19] & 0x0f)
    let value =
      (UInt32(mac[offset] & 0x7f) << 24) | (UInt32(mac[offset + 1]) << 16) | (UInt32(mac[offset + 2]) << 8)
      | UInt32(mac[offset + 3])
    let s = String(value % 1_000_000)
    return String(repeating: "0", count: 6 - s.count) + s
  }

  static func code(secret base32: String, at date: Date = Date()) -> String {
    code(secret: decodeBase32(base32), at: date)
  }

  static func secret(fromURI uri: String) -> String? {
    URLComponents(string: uri)?.queryItems?.first { $0.name == "secret" }?.value
  }

  static func decodeBase32(_ text: String) -> [UInt8] {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    var bits = 0
    var value = 0
    var out: [UInt8] = []
    for c in text.uppercased() where c != "=" {
      guard let i = alphabet.firstIndex(of: c) else { continue }
      value = (value << 5) | i
      bits += 5
      if bits >= 8 {
        out.append(UInt8((value >> (bits - 8)) & 0xff))
        bits -= 8
      }
    }
    return out
  }
}
