import HTTPTypes
import Hummingbird
import Logging
import Metrics
import MirrorBus
import MirrorStore

/// Security headers on every response: a Content-Security-Policy without
/// `unsafe-inline`, no sniffing, no framing, no referrer.
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
  static var policy: String {
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
      + "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
  }

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
    -> Response
  {
    var response: Response
    do {
      response = try await next(request, context)
    } catch let error as any HTTPResponseError {
      response = try error.response(from: request, context: context)
    } catch {
      // Anything else is ours: a 500 that still carries the headers.
      Counter(label: "console_api_errors_total", dimensions: [("kind", "internal")]).increment()
      context.logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
      response = try APIError(.internalServerError, "internal", "the console failed; see its log").response(
        from: request, context: context)
    }
    response.headers[.contentSecurityPolicy] = Self.policy
    response.headers[.xContentTypeOptions] = "nosniff"
    response.headers[.referrerPolicy] = "no-referrer"
    response.headers[.xFrameOptions] = "DENY"
    if request.uri.path.hasPrefix("/api/") { response.headers[.cacheControl] = "no-store" }
    return response
  }
}

/// Finds the session of the request's cookie. With `required`, a request
/// without a `ready` session is refused with 401, and a state-changing one
/// without the session's CSRF token with 403.
struct SessionMiddleware: RouterMiddleware {
  typealias Context = ConsoleContext
  static let cookie = "mirror_session"
  let sessions: Sessions
  let required: Bool

  func handle(_ request: Request, context: ConsoleContext, next: (Request, ConsoleContext) async throws -> Response)
    async throws -> Response
  {
    var context = context
    if let token = request.cookies[Self.cookie]?.value {
      context.session = try await sessions.find(token: token)
    }
    guard required else { return try await next(request, context) }
    guard let session = context.session, session.stage == .ready else {
      Counter(label: "console_api_refused_total", dimensions: [("reason", "unauthenticated")]).increment()
      throw APIError.unauthenticated
    }
    if request.method != .get, request.method != .head {
      try Self.checkCSRF(request, session)
    }
    return try await next(request, context)
  }

  static func checkCSRF(_ request: Request, _ session: Session) throws {
    guard let token = request.headers[.csrfToken], constantTimeEqual(token, session.csrf) else {
      Counter(label: "console_api_refused_total", dimensions: [("reason", "csrf")]).increment()
      throw APIError.csrf
    }
  }
}

/// Maps a failing service call to an API error: the service did not
/// answer (502) or refused (its code, 400 or 404).
struct UpstreamErrorMiddleware<Context: RequestContext>: RouterMiddleware {
  let logger: Logger

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
    -> Response
  {
    do {
      return try await next(request, context)
    } catch let error as any HTTPResponseError {
      throw error
    } catch let error as RemoteError {
      let status: HTTPResponse.Status =
        switch error.error.code {
        case "not_found": .notFound
        case "invalid_argument": .badRequest
        default: .serviceUnavailable
        }
      if status == .serviceUnavailable {
        Counter(label: "console_upstream_failures_total", dimensions: [("path", context.endpointPath ?? "")])
          .increment()
        logger.warning("a service refused", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
      }
      throw APIError(status, error.error.code, error.error.message)
    } catch let error as PostgresError {
      Counter(label: "console_upstream_failures_total", dimensions: [("path", "database")]).increment()
      logger.warning("the database failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
      throw APIError(.serviceUnavailable, "unavailable", "the console's database did not answer")
    } catch let error as NATSError {
      Counter(label: "console_upstream_failures_total", dimensions: [("path", context.endpointPath ?? "")]).increment()
      logger.warning("a service did not answer", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
      throw APIError(.badGateway, "unavailable", "the service behind this did not answer: \(error)")
    } catch is DecodingError {
      Counter(label: "console_api_refused_total", dimensions: [("reason", "bad_json")]).increment()
      throw APIError.badRequest("the request body is not the expected JSON")
    }
  }
}

func constantTimeEqual(_ a: String, _ b: String) -> Bool {
  let x = Array(a.utf8)
  let y = Array(b.utf8)
  guard x.count == y.count else { return false }
  var diff: UInt8 = 0
  for i in x.indices { diff |= x[i] ^ y[i] }
  return diff == 0
}

extension HTTPField.Name {
  static let csrfToken = Self("X-CSRF-Token")!
  static let xFrameOptions = Self("X-Frame-Options")!
  static let referrerPolicy = Self("Referrer-Policy")!
  static let xContentTypeOptions = Self("X-Content-Type-Options")!
}
