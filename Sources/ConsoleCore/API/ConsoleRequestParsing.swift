import Foundation
import Hummingbird
import HummingbirdCore
import MirrorWire

/// The API's request parsing without a server, for the fuzz targets
/// (bench/Fuzz): a body decoded as its handler decodes it (the context's
/// `JSONDecoder`), then the same static checks the handler runs before it
/// looks at a session, the database or the bus (`target`, `action`,
/// `checkSelector`, `command(of:)`, `seriesQuery`). A bad input throws.
public enum ConsoleRequestParsing {
  /// What the bytes are: a JSON body of one endpoint, or a query string.
  public enum Input: UInt8, CaseIterable, Sendable {
    case login, enrol, addKey, prepare, submit, acknowledge, silence, newUser, userChange
    /// The query string of `GET /api/v1/hosts/:name/series`.
    case seriesQuery
  }

  public static func parse(_ input: Input, _ data: [UInt8]) throws {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    let json = Data(data)
    switch input {
    case .login: _ = try decoder.decode(ConsoleAPI.LoginRequest.self, from: json)
    case .enrol: _ = try decoder.decode(ConsoleAPI.EnrolRequest.self, from: json)
    case .addKey: _ = try decoder.decode(ConsoleAPI.AddKeyRequest.self, from: json)
    case .prepare:
      let body = try decoder.decode(ConsoleAPI.PrepareRequest.self, from: json)
      _ = try ConsoleAPI.target(body.target)
      _ = try ConsoleAPI.action(body.action)
    case .submit:
      let command = try ConsoleAPI.command(of: try decoder.decode(ConsoleAPI.SubmitRequest.self, from: json))
      if let target = command.target, target.kind == .selector { try ConsoleAPI.checkSelector(target.selector) }
    case .acknowledge: _ = try decoder.decode(ConsoleAPI.AckRequest.self, from: json)
    case .silence: _ = try decoder.decode(ConsoleAPI.SilenceBody.self, from: json)
    case .newUser: _ = try decoder.decode(ConsoleAPI.NewUser.self, from: json)
    case .userChange: _ = try decoder.decode(ConsoleAPI.UserChange.self, from: json)
    case .seriesQuery:
      let uri = URI("/api/v1/hosts/h/series?" + String(decoding: data, as: UTF8.self))
      _ = try ConsoleAPI.seriesQuery(host: "h", uri.queryParameters, nowMs: 1_800_000_000_000)
    }
  }
}
