internal import CNATS

/// A failed libnats call: the status, the operation and libnats' own text.
/// Safe to log: it never carries credentials or payloads.
public struct NATSError: Error, Hashable, Sendable, CustomStringConvertible {
  /// libnats' `natsStatus`, as an open set of values.
  public struct Status: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let ok = Status(rawValue: Int32(NATS_OK.rawValue))
    public static let timeout = Status(rawValue: Int32(NATS_TIMEOUT.rawValue))
    public static let noServer = Status(rawValue: Int32(NATS_NO_SERVER.rawValue))
    public static let noResponders = Status(rawValue: Int32(NATS_NO_RESPONDERS.rawValue))
    public static let notFound = Status(rawValue: Int32(NATS_NOT_FOUND.rawValue))
    public static let connectionClosed = Status(rawValue: Int32(NATS_CONNECTION_CLOSED.rawValue))
    public static let notPermitted = Status(rawValue: Int32(NATS_NOT_PERMITTED.rawValue))
    public static let invalidArg = Status(rawValue: Int32(NATS_INVALID_ARG.rawValue))
    public static let connectionAuthFailed = Status(rawValue: Int32(NATS_CONNECTION_AUTH_FAILED.rawValue))
    public static let notYetConnected = Status(rawValue: Int32(NATS_NOT_YET_CONNECTED.rawValue))
    public static let ioError = Status(rawValue: Int32(NATS_IO_ERROR.rawValue))
    public static let slowConsumer = Status(rawValue: Int32(NATS_SLOW_CONSUMER.rawValue))
    public static let illegalState = Status(rawValue: Int32(NATS_ILLEGAL_STATE.rawValue))
    public static let maxPayload = Status(rawValue: Int32(NATS_MAX_PAYLOAD.rawValue))
    public static let sslError = Status(rawValue: Int32(NATS_SSL_ERROR.rawValue))
    public static let error = Status(rawValue: Int32(NATS_ERR.rawValue))

    public var description: String {
      String(cString: natsStatus_GetText(natsStatus(rawValue: UInt32(bitPattern: rawValue))))
    }
  }

  public var status: Status
  /// What we were doing, e.g. `connect nats://127.0.0.1:4222`.
  public var operation: String
  /// libnats' last error text on the failing thread, or the status text.
  public var text: String
  /// The JetStream API error code (e.g. 10059 stream not found), 0 if none.
  public var jetStreamCode: Int

  public init(status: Status, operation: String, text: String, jetStreamCode: Int = 0) {
    self.status = status
    self.operation = operation
    self.text = text
    self.jetStreamCode = jetStreamCode
  }

  public var description: String {
    var s = "\(operation): \(text)"
    if jetStreamCode != 0 { s += " (JetStream error \(jetStreamCode))" }
    return s
  }

  /// Builds the error for a failed call, reading libnats' per-thread last
  /// error at once (before any suspension point).
  static func last(_ status: natsStatus, _ operation: String, jsCode: jsErrCode = jsErrCode(0)) -> NATSError {
    var lastStatus = NATS_OK
    let lastText = nats_GetLastError(&lastStatus).map { String(cString: $0) } ?? ""
    let statusText = String(cString: natsStatus_GetText(status))
    let text = lastText.isEmpty ? statusText : lastText
    return NATSError(
      status: Status(rawValue: Int32(bitPattern: status.rawValue)), operation: operation, text: text,
      jetStreamCode: Int(jsCode.rawValue))
  }
}

/// Checks a libnats return code; the one place statuses become errors.
@inline(__always)
func natsCheck(_ status: natsStatus, _ operation: @autoclosure () -> String, jsCode: jsErrCode = jsErrCode(0))
  throws(NATSError)
{
  if status != NATS_OK { throw NATSError.last(status, operation(), jsCode: jsCode) }
}
