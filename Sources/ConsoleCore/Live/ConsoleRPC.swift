import MirrorBus
public import MirrorService
public import MirrorWire

/// The services' request/reply subjects the console uses, typed. Each call
/// waits `timeout` at most; a service that does not answer is a
/// `NATSError` (timeout or no responders), an `RpcError` reply a
/// `RemoteError`.
public struct ConsoleRPC: Sendable {
  let bus: BusService
  let timeout: Duration

  public init(bus: BusService, timeout: Duration = .seconds(3)) {
    self.bus = bus
    self.timeout = timeout
  }

  func call<Q: WireMessage, R: WireMessage>(_ subject: String, _ q: Q, _: R.Type) async throws -> R {
    try await bus.connection().request(subject, q, expecting: R.self, timeout: timeout)
  }

  public func hosts() async throws -> ListHostsResponse {
    try await call(Subjects.hostsList, ListHostsRequest(), ListHostsResponse.self)
  }

  public func query(_ q: MetricsQueryRequest) async throws -> MetricsQueryResponse {
    try await call(Subjects.metricsQuery, q, MetricsQueryResponse.self)
  }

  public func alerts(host: String, includeResolved: Bool, limit: UInt32 = 0) async throws -> ListAlertsResponse {
    try await call(
      Subjects.alertsList, ListAlertsRequest(includeResolved: includeResolved, host: host, limit: limit),
      ListAlertsResponse.self)
  }

  public func commands(host: String = "", limit: UInt32 = 20) async throws -> ListCommandsResponse {
    try await call(Subjects.commandsList, ListCommandsRequest(host: host, limit: limit), ListCommandsResponse.self)
  }

  public func commands(_ q: ListCommandsRequest) async throws -> ListCommandsResponse {
    try await call(Subjects.commandsList, q, ListCommandsResponse.self)
  }

  public func command(id: String) async throws -> CommandRecordWithOutput {
    try await call(
      Subjects.commandsGet, GetCommandRequest(id: id, withOutput: true), CommandRecordWithOutput.self)
  }

  public func acknowledge(_ q: AckAlertRequest) async throws -> Alert {
    try await call(Subjects.alertsAck, q, Alert.self)
  }

  public func silence(_ q: SilenceRequest) async throws -> Silence {
    try await call(Subjects.alertsSilence, q, Silence.self)
  }

  public func endSilence(_ q: EndSilenceRequest) async throws -> Silence {
    try await call(Subjects.alertsUnsilence, q, Silence.self)
  }

  /// The twin's scene, as protobuf: a third of its JSON document's size
  /// (4.4 MB against 12.7 MB at 10,000 nodes and 20,000 links, where NATS's
  /// payload limit is 8 MB); a longer wait.
  public func scene() async throws -> Scene {
    try await bus.connection().request(
      Subjects.twinSceneGet, GetSceneRequest(format: .protobuf), expecting: Scene.self, timeout: timeout * 3,
      limit: 64 << 20)
  }

  public func submit(_ request: CommandRequest) async throws -> SubmitCommandResponse {
    try await call(Subjects.commandsSubmit, request, SubmitCommandResponse.self)
  }
}
