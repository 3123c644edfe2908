internal import CNATS
import Dispatch
public import Logging
public import MirrorWire
import Synchronization

#if canImport(Glibc)
  internal import Glibc
#endif

/// A connection to NATS with its JetStream context.
///
/// libnats documents `natsConnection` and `jsCtx` as safe to use from any
/// thread ("the connection object is thread safe"), which is why this class
/// is `@unchecked Sendable`: it holds only those handles and immutable data.
public final class BusConnection: @unchecked Sendable {
  let nc: OpaquePointer
  let js: OpaquePointer
  public let options: BusOptions
  let logger: Logger
  /// Our own reference to the callback box; libnats holds another (+1 via
  /// passRetained), released by the closed callback, so the box outlives
  /// both whichever goes first.
  private let events: ConnectionEvents
  /// The micro services this connection answers for, by name.
  private let micro = Mutex<[String: MicroService]>([:])

  /// The state of the link to the server, as libnats last reported it.
  public var isConnected: Bool { natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED }

  /// Counts of disconnects and reconnects since connect.
  public var disconnects: Int { events.disconnects.load(ordering: .relaxed) }
  public var reconnects: Int { events.reconnects.load(ordering: .relaxed) }

  /// Connects, blocking a dedicated thread, never the caller's executor.
  /// The corresponding C function is `natsConnection_Connect`.
  public static func connect(_ options: BusOptions, logger: Logger) async throws(NATSError) -> BusConnection {
    try await Blocking.run { () throws(NATSError) in try BusConnection(options: options, logger: logger) }
  }

  private init(options: BusOptions, logger: Logger) throws(NATSError) {
    BusLibrary.open()
    self.options = options
    var logger = logger
    logger[metadataKey: "nats"] = "\(options.urls.joined(separator: ","))"
    self.logger = logger
    let box = ConnectionEvents(logger: logger)
    let events = Unmanaged.passRetained(box)

    var opts: OpaquePointer?
    var conn: OpaquePointer?
    do throws(NATSError) {
      try natsCheck(natsOptions_Create(&opts), "create NATS options")
      defer { natsOptions_Destroy(opts) }
      try Self.apply(options, to: opts, events: events)
      let target = options.urls.joined(separator: ",")
      let status = natsConnection_Connect(&conn, opts)
      if status == NATS_NOT_YET_CONNECTED && options.retryOnFailedConnect {
        logger.warning("NATS not reachable yet; connecting in the background")
      } else {
        try natsCheck(status, "connect to \(target)")
      }
    } catch {
      // A connection that was never made runs no callbacks: release here.
      events.release()
      throw error
    }
    // From here on the closed callback, the last one libnats makes,
    // releases `events`.
    var jsOpts = jsOptions()
    jsOptions_Init(&jsOpts)
    jsOpts.Wait = options.jetStreamTimeout.natsMilliseconds
    var ctx: OpaquePointer?
    let jsStatus = natsConnection_JetStream(&ctx, conn, &jsOpts)
    guard jsStatus == NATS_OK, let ctx else {
      let error = NATSError.last(jsStatus, "create JetStream context")
      natsConnection_Destroy(conn)
      throw error
    }
    self.nc = conn!
    self.js = ctx
    self.events = box
    logger.info("connected to NATS", metadata: ["connected": "\(isConnected)"])
  }

  deinit {
    events.closing.store(true, ordering: .relaxed)
    jsCtx_Destroy(js)
    natsConnection_Close(nc)
    natsConnection_Destroy(nc)
  }

  private static func apply(_ o: BusOptions, to opts: OpaquePointer?, events: Unmanaged<ConnectionEvents>)
    throws(NATSError)
  {
    var urls = o.urls.map { strdup($0) }
    defer { urls.forEach { free($0) } }
    let status = urls.withUnsafeMutableBufferPointer { buffer in
      buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) {
        natsOptions_SetServers(opts, $0, Int32(buffer.count))
      }
    }
    try natsCheck(status, "set NATS servers")
    try natsCheck(natsOptions_SetName(opts, o.name), "set client name")
    if let user = o.user {
      try natsCheck(natsOptions_SetUserInfo(opts, user, o.password), "set NATS user")
    }
    if let token = o.token { try natsCheck(natsOptions_SetToken(opts, token), "set NATS token") }
    if let creds = o.credentialsFile {
      try natsCheck(natsOptions_SetUserCredentialsFromFiles(opts, creds, nil), "load credentials \(creds)")
    }
    if let seed = o.nkeySeedFile, let pub = o.nkeyPublicKey {
      try natsCheck(natsOptions_SetNKeyFromSeed(opts, pub, seed), "load NKey seed \(seed)")
    }
    if o.tls || o.tlsCAFile != nil || o.tlsCertFile != nil {
      try natsCheck(natsOptions_SetSecure(opts, true), "enable TLS")
      if let ca = o.tlsCAFile {
        try natsCheck(natsOptions_LoadCATrustedCertificates(opts, ca), "load CA \(ca)")
      }
      if let cert = o.tlsCertFile, let key = o.tlsKeyFile {
        try natsCheck(natsOptions_LoadCertificatesChain(opts, cert, key), "load client certificate \(cert)")
      }
    }
    if let prefix = o.inboxPrefix {
      try natsCheck(natsOptions_SetCustomInboxPrefix(opts, prefix), "set inbox prefix")
    }
    try natsCheck(natsOptions_SetTimeout(opts, o.connectTimeout.natsMilliseconds), "set connect timeout")
    try natsCheck(natsOptions_SetMaxReconnect(opts, Int32(o.maxReconnect)), "set max reconnect")
    try natsCheck(natsOptions_SetReconnectWait(opts, o.reconnectWait.natsMilliseconds), "set reconnect wait")
    try natsCheck(
      natsOptions_SetReconnectJitter(opts, o.reconnectJitter.natsMilliseconds, o.reconnectJitter.natsMilliseconds),
      "set reconnect jitter")
    // Keep publishing into libnats' buffer while reconnecting.
    try natsCheck(natsOptions_SetReconnectBufSize(opts, 8 << 20), "set reconnect buffer")
    let closure = events.toOpaque()
    try natsCheck(
      natsOptions_SetDisconnectedCB(opts, { _, c in ConnectionEvents.from(c).disconnected() }, closure), "set callback")
    try natsCheck(
      natsOptions_SetReconnectedCB(opts, { _, c in ConnectionEvents.from(c).reconnected() }, closure), "set callback")
    try natsCheck(
      natsOptions_SetClosedCB(
        opts,
        { _, c in
          // The last callback for this connection: balance passRetained.
          Unmanaged<ConnectionEvents>.fromOpaque(c!).takeRetainedValue().didClose()
        }, closure), "set callback")
    try natsCheck(
      natsOptions_SetErrorHandler(opts, { _, _, status, c in ConnectionEvents.from(c).asyncError(status) }, closure),
      "set callback")
    if o.retryOnFailedConnect {
      try natsCheck(
        natsOptions_SetRetryOnFailedConnect(opts, true, { _, c in ConnectionEvents.from(c).reconnected() }, closure),
        "set retry on failed connect")
    }
  }

  // MARK: Core NATS

  /// Publishes raw bytes with headers. The corresponding C function is
  /// `natsConnection_PublishMsg`; it only buffers, so it does not block.
  public func publish(_ subject: String, payload: [UInt8], headers: [String: String] = [:]) throws(NATSError) {
    let msg = try Self.makeMessage(subject: subject, reply: nil, payload: payload, headers: headers)
    defer { natsMsg_Destroy(msg) }
    try natsCheck(natsConnection_PublishMsg(nc, msg), "publish to \(subject)")
  }

  /// Publishes a wire message with its `Content-Type`/`Mirror-Type` headers.
  public func publish<M: WireMessage>(_ subject: String, _ message: M, headers: [String: String] = [:])
    throws(NATSError)
  {
    try publish(
      subject, payload: message.encode(), headers: headers.merging(BusHeader.describing(M.self)) { a, _ in a })
  }

  /// Answers a request: publishes `message` to its reply subject.
  public func respond<M: WireMessage>(to request: BusMessage, with message: M) throws(NATSError) {
    guard let reply = request.reply else { return }
    try publish(reply, message)
    if let arrived = request.receivedAt, let service = request.service, let micro = micro.withLock({ $0[service] }) {
      let elapsed = ContinuousClock.now - arrived
      micro.record(
        subject: request.subject,
        nanos: elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000,
        error: (message as? RpcError).map { "\($0.code): \($0.message)" })
    }
  }

  /// Subscribes to a request/reply subject of `service` (its queue group
  /// too), and makes it an endpoint of the service's NATS micro identity:
  /// `$SRV.PING|INFO|STATS` answered, its requests, errors and processing
  /// time counted as they are answered with `respond(to:with:)`.
  public func serve(_ subject: String, service: String, version: String, bufferSize: Int = 4096) throws(NATSError)
    -> BusSubscription
  {
    let (m, new) = micro.withLock { all -> (MicroService, Bool) in
      if let m = all[service] { return (m, false) }
      let m = MicroService(name: service, version: version)
      all[service] = m
      return (m, true)
    }
    m.add(subject: subject, queueGroup: service)
    if new { try m.start(on: self) }
    return try BusSubscription(
      connection: self, subject: subject, queueGroup: service, bufferSize: bufferSize, service: service)
  }

  /// The micro service of that name on this connection, if it serves any.
  public func microService(_ name: String) -> MicroService? { micro.withLock { $0[name] } }

  /// Sends a request and waits for one reply. The corresponding C function
  /// is `natsConnection_RequestMsg`; a timeout throws status `.timeout`, no
  /// listener throws `.noResponders`.
  public func request(
    _ subject: String, payload: [UInt8], headers: [String: String] = [:], timeout: Duration = .seconds(2)
  ) async throws(NATSError) -> BusMessage {
    try await Blocking.run { () throws(NATSError) in
      let msg = try Self.makeMessage(subject: subject, reply: nil, payload: payload, headers: headers)
      defer { natsMsg_Destroy(msg) }
      var reply: OpaquePointer?
      try natsCheck(natsConnection_RequestMsg(&reply, self.nc, msg, timeout.natsMilliseconds), "request \(subject)")
      defer { natsMsg_Destroy(reply) }
      return Self.copy(reply!)
    }
  }

  /// Sends a wire-message request and decodes the reply as `R` (at most
  /// `limit` bytes).
  public func request<Q: WireMessage, R: WireMessage>(
    _ subject: String, _ message: Q, expecting: R.Type, timeout: Duration = .seconds(2),
    limit: Int = WireLimits.defaultMaxMessageBytes
  ) async throws -> R {
    let reply = try await request(
      subject, payload: message.encode(), headers: BusHeader.describing(Q.self), timeout: timeout)
    return try reply.decode(R.self, limit: limit)
  }

  /// Sends everything buffered and waits for the server's acknowledgement.
  public func flush(timeout: Duration = .seconds(2)) async throws(NATSError) {
    try await Blocking.run { () throws(NATSError) in
      try natsCheck(natsConnection_FlushTimeout(self.nc, timeout.natsMilliseconds), "flush")
    }
  }

  /// How many servers the connection knows: the URLs it was given and the
  /// cluster's others the server told it of (1 for a single server). The
  /// corresponding C function is `natsConnection_GetServers`.
  public var knownServers: Int {
    var servers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
    var count: Int32 = 0
    guard natsConnection_GetServers(nc, &servers, &count) == NATS_OK, let servers else { return 1 }
    for i in 0..<Int(count) { free(servers[i]) }
    free(servers)
    return max(1, Int(count))
  }

  /// Drains subscriptions and closes; in-flight callbacks finish first.
  /// Returns once libnats has closed the connection and run its closed
  /// callback (or after `timeout` and a second), so a process that exits
  /// next does not exit under a libnats thread still calling into Swift.
  public func drain(timeout: Duration = .seconds(5)) async {
    events.closing.store(true, ordering: .relaxed)
    let started = await Blocking.run { natsConnection_DrainTimeout(self.nc, timeout.natsMilliseconds) }
    if started != NATS_OK { natsConnection_Close(nc) }
    // Woken by the closed callback (no polling).
    guard !events.closed.load(ordering: .acquiring) else { return }
    let wait = DispatchTime.now() + .milliseconds(Int((timeout + .seconds(1)).wholeMilliseconds))
    _ = await Blocking.run { self.events.closedSignal.wait(timeout: wait) }
  }

  // MARK: Helpers

  static func makeMessage(subject: String, reply: String?, payload: [UInt8], headers: [String: String])
    throws(NATSError)
    -> OpaquePointer
  {
    var msg: OpaquePointer?
    let status =
      payload.isEmpty
      ? natsMsg_Create(&msg, subject, reply, nil, 0)
      : payload.withUnsafeBufferPointer { buffer in
        buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
          natsMsg_Create(&msg, subject, reply, $0, Int32(buffer.count))
        }
      }
    try natsCheck(status, "create message for \(subject)")
    for (key, value) in headers {
      let s = natsMsgHeader_Set(msg, key, value)
      if s != NATS_OK {
        let error = NATSError.last(s, "set header \(key)")
        natsMsg_Destroy(msg)
        throw error
      }
    }
    return msg!
  }

  /// Copies subject, reply, headers and payload out of a libnats message.
  /// The message copied out; with `headers`, only those headers.
  static func copy(_ msg: OpaquePointer, headers only: [String]? = nil) -> BusMessage {
    let subject = String(cString: natsMsg_GetSubject(msg))
    let reply = natsMsg_GetReply(msg).map { String(cString: $0) }
    let count = Int(natsMsg_GetDataLength(msg))
    var payload: [UInt8] = []
    if count > 0, let data = natsMsg_GetData(msg) {
      payload = data.withMemoryRebound(to: UInt8.self, capacity: count) {
        Array(UnsafeBufferPointer(start: $0, count: count))
      }
    }
    guard let only else {
      var m = BusMessage(subject: subject, reply: reply, headers: headers(of: msg), payload: payload)
      m.receivedAt = .now
      return m
    }
    var headers: [String: String] = [:]
    for key in only {
      var value: UnsafePointer<CChar>?
      if natsMsgHeader_Get(msg, key, &value) == NATS_OK, let value { headers[key] = String(cString: value) }
    }
    return BusMessage(subject: subject, reply: reply, headers: headers, payload: payload)
  }

  static func headers(of msg: OpaquePointer) -> [String: String] {
    var keys: UnsafeMutablePointer<UnsafePointer<CChar>?>?
    var count: Int32 = 0
    guard natsMsgHeader_Keys(msg, &keys, &count) == NATS_OK, let keys else { return [:] }
    defer { free(keys) }
    var result: [String: String] = [:]
    for i in 0..<Int(count) {
      guard let key = keys[i] else { continue }
      var value: UnsafePointer<CChar>?
      if natsMsgHeader_Get(msg, key, &value) == NATS_OK, let value {
        result[String(cString: key)] = String(cString: value)
      }
    }
    return result
  }
}

@available(*, unavailable)
extension ConnectionEvents: Sendable {}

/// Receives libnats' connection callbacks (on libnats' own threads).
final class ConnectionEvents {
  let logger: Logger
  let disconnects = Atomic<Int>(0)
  let reconnects = Atomic<Int>(0)
  /// Set when we close the connection ourselves: the disconnect that
  /// follows is expected.
  let closing = Atomic<Bool>(false)
  /// Set when the closed callback has finished.
  let closed = Atomic<Bool>(false)
  /// Signalled then (once: one `drain` waits on it).
  let closedSignal = DispatchSemaphore(value: 0)

  init(logger: Logger) { self.logger = logger }

  static func from(_ closure: UnsafeMutableRawPointer?) -> ConnectionEvents {
    Unmanaged<ConnectionEvents>.fromOpaque(closure!).takeUnretainedValue()
  }

  func disconnected() {
    disconnects.add(1, ordering: .relaxed)
    if !closing.load(ordering: .relaxed) { logger.warning("NATS disconnected") }
  }

  func reconnected() {
    reconnects.add(1, ordering: .relaxed)
    logger.info("NATS connected")
  }

  func didClose() {
    logger.info("NATS connection closed")
    closed.store(true, ordering: .releasing)
    closedSignal.signal()
  }

  func asyncError(_ status: natsStatus) {
    logger.error("NATS asynchronous error", metadata: ["status": "\(String(cString: natsStatus_GetText(status)))"])
  }
}

/// libnats' library-wide state.
enum BusLibrary {
  private static let opened: Bool = {
    // -1: libnats' default spin count for its internal locks.
    nats_Open(-1) == NATS_OK
  }()

  static func open() { _ = opened }
}
