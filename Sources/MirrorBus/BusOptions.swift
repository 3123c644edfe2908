/// How to reach and authenticate to NATS.
public struct BusOptions: Sendable, Hashable {
  /// One or more server URLs, e.g. `nats://10.0.0.2:4222`; tried in order.
  public var urls: [String]
  /// Client name shown by the server (`nats server report connections`).
  public var name: String
  public var user: String?
  public var password: String?
  public var token: String?
  /// A `.creds` file (JWT and NKey seed).
  public var credentialsFile: String?
  /// An NKey seed file with its public key, for NKey authentication.
  public var nkeySeedFile: String?
  public var nkeyPublicKey: String?
  /// TLS: on when any TLS file is given or `tls` is true.
  public var tls: Bool
  public var tlsCAFile: String?
  public var tlsCertFile: String?
  public var tlsKeyFile: String?
  /// The prefix of reply subjects. A host confined by subject permissions
  /// needs its own (see docs/security.md).
  public var inboxPrefix: String?
  public var connectTimeout: Duration
  /// -1 reconnects forever.
  public var maxReconnect: Int
  public var reconnectWait: Duration
  /// Upper bound of the random delay added to each reconnect wait, so a
  /// fleet does not reconnect all at once.
  public var reconnectJitter: Duration
  /// Keep trying in the background when the first connect fails, instead
  /// of failing.
  public var retryOnFailedConnect: Bool
  /// Default wait for JetStream API calls and publish acks.
  public var jetStreamTimeout: Duration

  public init(
    urls: [String] = ["nats://127.0.0.1:4222"], name: String = "mirror-stage", user: String? = nil,
    password: String? = nil, token: String? = nil, credentialsFile: String? = nil,
    nkeySeedFile: String? = nil, nkeyPublicKey: String? = nil, tls: Bool = false, tlsCAFile: String? = nil,
    tlsCertFile: String? = nil, tlsKeyFile: String? = nil, inboxPrefix: String? = nil,
    connectTimeout: Duration = .seconds(2), maxReconnect: Int = -1, reconnectWait: Duration = .seconds(1),
    reconnectJitter: Duration = .milliseconds(500), retryOnFailedConnect: Bool = false,
    jetStreamTimeout: Duration = .seconds(5)
  ) {
    self.urls = urls
    self.name = name
    self.user = user
    self.password = password
    self.token = token
    self.credentialsFile = credentialsFile
    self.nkeySeedFile = nkeySeedFile
    self.nkeyPublicKey = nkeyPublicKey
    self.tls = tls
    self.tlsCAFile = tlsCAFile
    self.tlsCertFile = tlsCertFile
    self.tlsKeyFile = tlsKeyFile
    self.inboxPrefix = inboxPrefix
    self.connectTimeout = connectTimeout
    self.maxReconnect = maxReconnect
    self.reconnectWait = reconnectWait
    self.reconnectJitter = reconnectJitter
    self.retryOnFailedConnect = retryOnFailedConnect
    self.jetStreamTimeout = jetStreamTimeout
  }
}

extension Duration {
  /// Whole milliseconds (truncated): what libnats, poll(2) and timestamps
  /// in milliseconds take. The one conversion every module uses.
  public var wholeMilliseconds: Int64 {
    let (seconds, attoseconds) = components
    return seconds * 1000 + attoseconds / 1_000_000_000_000_000
  }

  var natsMilliseconds: Int64 { wholeMilliseconds }

  /// Whole nanoseconds, as JetStream configurations take them.
  var natsNanoseconds: Int64 {
    let (seconds, attoseconds) = components
    return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
  }
}
