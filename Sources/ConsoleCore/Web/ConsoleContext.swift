public import Hummingbird
public import HummingbirdWebSocket
import Logging
import NIOCore

/// The request context of every console route: the session (once the
/// session middleware found one) and the client's address.
public struct ConsoleContext: RequestContext, WebSocketRequestContext {
  public var coreContext: CoreRequestContextStorage
  public let webSocket: WebSocketHandlerReference<ConsoleContext>
  public var session: Session?
  public let address: String
  /// The connection, so a live stream that cannot deliver can close it.
  let channel: any Channel

  public init(source: ApplicationRequestContextSource) {
    coreContext = .init(source: source)
    webSocket = .init()
    session = nil
    channel = source.channel
    address = source.channel.remoteAddress?.ipAddress ?? ""
  }

  /// Every request body the console takes is small JSON.
  public var maxUploadSize: Int { 64 * 1024 }

  /// The logged-in session; the session middleware guarantees one on the
  /// routes it guards.
  func requireSession() throws -> Session {
    guard let session, session.stage == .ready else { throw APIError.unauthenticated }
    return session
  }
}

/// An API error as JSON: `{"error": code, "message": ...}` with its status.
public struct APIError: Error, HTTPResponseError, Sendable {
  public var status: HTTPResponse.Status
  public var code: String
  public var message: String

  public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
    self.status = status
    self.code = code
    self.message = message
  }

  static let unauthenticated = APIError(.unauthorized, "unauthenticated", "log in first")
  static let csrf = APIError(.forbidden, "csrf", "missing or wrong X-CSRF-Token")
  static func forbidden(_ message: String) -> APIError { APIError(.forbidden, "forbidden", message) }
  static func badRequest(_ message: String) -> APIError { APIError(.badRequest, "bad_request", message) }
  static func notFound(_ message: String) -> APIError { APIError(.notFound, "not_found", message) }

  struct Body: Encodable {
    var error: String
    var message: String
  }

  public func response(from request: Request, context: some RequestContext) throws -> Response {
    var response = try context.responseEncoder.encode(
      Body(error: code, message: message), from: request, context: context)
    response.status = status
    return response
  }
}
