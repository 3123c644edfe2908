internal import CNATS
public import MirrorWire

#if canImport(Glibc)
  internal import Glibc
#endif

/// JetStream's "stream not found" API error code.
private let streamNotFound: UInt32 = 10059

extension BusConnection {
  /// Creates the stream, or updates it to `config` when it exists.
  /// Idempotent. The corresponding C functions are `js_GetStreamInfo`,
  /// `js_AddStream` and `js_UpdateStream`.
  @discardableResult
  public func ensureStream(_ config: StreamConfig) async throws(NATSError) -> StreamState {
    try await Blocking.run { () throws(NATSError) in
      var info: UnsafeMutablePointer<jsStreamInfo>?
      var jerr = jsErrCode(0)
      let lookup = js_GetStreamInfo(&info, self.js, config.name, nil, &jerr)
      if let info { jsStreamInfo_Destroy(info) }
      info = nil
      let exists: Bool
      if lookup == NATS_OK {
        exists = true
      } else if lookup == NATS_NOT_FOUND || jerr.rawValue == streamNotFound {
        exists = false
      } else {
        throw NATSError.last(lookup, "look up stream \(config.name)", jsCode: jerr)
      }
      return try Self.withCConfig(config) { (cfg) throws(NATSError) in
        jerr = jsErrCode(0)
        let status =
          exists
          ? js_UpdateStream(&info, self.js, cfg, nil, &jerr)
          : js_AddStream(&info, self.js, cfg, nil, &jerr)
        try natsCheck(status, "\(exists ? "update" : "create") stream \(config.name)", jsCode: jerr)
        defer { jsStreamInfo_Destroy(info) }
        return Self.state(of: info!)
      }
    }
  }

  /// The stream's current state. The corresponding C function is
  /// `js_GetStreamInfo`.
  public func streamState(_ name: String) async throws(NATSError) -> StreamState {
    try await Blocking.run { () throws(NATSError) in
      var info: UnsafeMutablePointer<jsStreamInfo>?
      var jerr = jsErrCode(0)
      try natsCheck(js_GetStreamInfo(&info, self.js, name, nil, &jerr), "look up stream \(name)", jsCode: jerr)
      defer { jsStreamInfo_Destroy(info) }
      return Self.state(of: info!)
    }
  }

  /// Deletes a stream (tests and tools). The corresponding C function is
  /// `js_DeleteStream`.
  public func deleteStream(_ name: String) async throws(NATSError) {
    try await Blocking.run { () throws(NATSError) in
      var jerr = jsErrCode(0)
      try natsCheck(js_DeleteStream(self.js, name, nil, &jerr), "delete stream \(name)", jsCode: jerr)
    }
  }

  /// Publishes to a stream and waits for the server's ack. With `msgID`,
  /// a repeat within the stream's duplicate window is not stored twice.
  /// The corresponding C function is `js_PublishMsg`.
  public func jetStreamPublish(
    _ subject: String, payload: [UInt8], headers: [String: String] = [:], msgID: String? = nil,
    timeout: Duration? = nil
  ) async throws(NATSError) -> PublishAck {
    try await Blocking.run { () throws(NATSError) in
      try self.jetStreamPublishBlocking(subject, payload: payload, headers: headers, msgID: msgID, timeout: timeout)
    }
  }

  /// Publishes a wire message with its headers and waits for the ack.
  public func jetStreamPublish<M: WireMessage>(
    _ subject: String, _ message: M, msgID: String? = nil, headers: [String: String] = [:]
  ) async throws(NATSError) -> PublishAck {
    try await jetStreamPublish(
      subject, payload: message.encode(), headers: headers.merging(BusHeader.describing(M.self)) { a, _ in a },
      msgID: msgID)
  }

  /// The blocking form, for callers that already own a thread (benchmarks,
  /// the agent's publisher thread).
  public func jetStreamPublishBlocking(
    _ subject: String, payload: [UInt8], headers: [String: String] = [:], msgID: String? = nil,
    timeout: Duration? = nil
  ) throws(NATSError) -> PublishAck {
    let msg = try Self.makeMessage(subject: subject, reply: nil, payload: payload, headers: headers)
    defer { natsMsg_Destroy(msg) }
    var opts = jsPubOptions()
    jsPubOptions_Init(&opts)
    if let timeout { opts.MaxWait = timeout.natsMilliseconds }
    var ack: UnsafeMutablePointer<jsPubAck>?
    var jerr = jsErrCode(0)
    let status: natsStatus =
      if let msgID {
        msgID.withCString { id in
          opts.MsgId = id
          return js_PublishMsg(&ack, js, msg, &opts, &jerr)
        }
      } else {
        js_PublishMsg(&ack, js, msg, &opts, &jerr)
      }
    try natsCheck(status, "publish to stream subject \(subject)", jsCode: jerr)
    defer { jsPubAck_Destroy(ack) }
    return PublishAck(
      stream: String(cString: ack!.pointee.Stream), sequence: ack!.pointee.Sequence,
      duplicate: ack!.pointee.Duplicate)
  }

  private static func state(of info: UnsafeMutablePointer<jsStreamInfo>) -> StreamState {
    let s = info.pointee.State
    return StreamState(
      name: String(cString: info.pointee.Config.pointee.Name), messages: s.Msgs, bytes: s.Bytes,
      firstSequence: s.FirstSeq, lastSequence: s.LastSeq, consumers: Int(s.Consumers))
  }

  private static func withCConfig<T>(
    _ config: StreamConfig, _ body: (UnsafeMutablePointer<jsStreamConfig>) throws(NATSError) -> T
  ) throws(NATSError) -> T {
    var cfg = jsStreamConfig()
    jsStreamConfig_Init(&cfg)
    let name = strdup(config.name)
    var subjects = config.subjects.map { UnsafePointer<CChar>(strdup($0)) }
    defer {
      free(name)
      subjects.forEach { free(UnsafeMutablePointer(mutating: $0)) }
    }
    cfg.Name = UnsafePointer(name)
    cfg.Storage = config.storage == .file ? js_FileStorage : js_MemoryStorage
    cfg.Retention =
      switch config.retention {
      case .limits: js_LimitsPolicy
      case .interest: js_InterestPolicy
      case .workQueue: js_WorkQueuePolicy
      }
    cfg.MaxAge = config.maxAge?.natsNanoseconds ?? 0
    cfg.MaxBytes = config.maxBytes
    cfg.MaxMsgs = config.maxMessages
    cfg.MaxMsgSize = config.maxMessageSize
    cfg.Duplicates = config.duplicateWindow.natsNanoseconds
    cfg.Replicas = Int64(config.replicas)
    return try subjects.withUnsafeMutableBufferPointer { (buffer) throws(NATSError) -> T in
      cfg.Subjects = buffer.baseAddress
      cfg.SubjectsLen = Int32(buffer.count)
      return try body(&cfg)
    }
  }
}
