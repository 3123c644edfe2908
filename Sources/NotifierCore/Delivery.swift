import Foundation
public import MirrorWire

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// One HTTP request to a channel.
public struct OutgoingRequest: Sendable, Equatable {
  public var url: String
  public var headers: [String: String]
  public var body: [UInt8]
}

/// What became of a request.
public enum DeliveryOutcome: Sendable, Equatable {
  case delivered
  /// Worth another try (5xx, 429, no connection), maybe after a delay the
  /// server asked for.
  case retry(String, after: Duration?)
  /// Will not work by trying again (4xx): counted and given up.
  case rejected(String)
}

/// Sends requests; the real one is `URLSessionSender`.
public protocol HTTPSender: Sendable {
  func post(_ request: OutgoingRequest) async -> DeliveryOutcome
}

/// Builds the request each kind of channel expects.
public enum MessageFormatter {
  public struct Item: Sendable {
    public var alert: Alert
    public var kind: NotificationKind
    public init(alert: Alert, kind: NotificationKind) {
      self.alert = alert
      self.kind = kind
    }
  }

  static func status(_ kind: NotificationKind) -> String {
    switch kind {
    case .firing: "FIRING"
    case .resolved: "RESOLVED"
    case .repeated: "STILL FIRING"
    }
  }

  /// Title and text of a message carrying these alerts (one, or a group).
  public static func text(_ items: [Item], settings: NotifierSettings) -> (title: String, body: String) {
    func title(_ i: Item) -> String { Template.render(settings.titleTemplate, i.alert, status: status(i.kind)) }
    func body(_ i: Item) -> String {
      let b = Template.render(settings.bodyTemplate, i.alert, status: status(i.kind))
      return i.alert.description.isEmpty ? b : "\(b)\n\(i.alert.description)"
    }
    if items.count == 1 { return (title(items[0]), body(items[0])) }
    let resolved = items.filter { $0.kind == .resolved }.count
    var parts: [String] = []
    if items.count - resolved > 0 { parts.append("\(items.count - resolved) firing") }
    if resolved > 0 { parts.append("\(resolved) resolved") }
    let hosts = Set(items.map(\.alert.host))
    let where_ = hosts.count == 1 ? " on \(hosts.first ?? "")" : " on \(hosts.count) hosts"
    let lines = items.map { "• \(title($0)): \(body($0).replacingOccurrences(of: "\n", with: " "))" }
    return ("\(items.count) alerts\(where_): \(parts.joined(separator: ", "))", lines.joined(separator: "\n"))
  }

  public static func request(for channel: Channel, items: [Item], settings: NotifierSettings) -> OutgoingRequest {
    let (title, body) = text(items, settings: settings)
    let worst = items.filter { $0.kind != .resolved }.map(\.alert.severity.rawValue).max()
    switch channel.kind {
    case .ntfy:
      var headers = [
        "Content-Type": "text/plain; charset=utf-8", "Title": headerValue(title),
        "Priority": priority(worst), "Tags": tags(worst, hosts: items.map(\.alert.host)),
      ]
      if let token = channel.token { headers["Authorization"] = "Bearer \(token)" }
      for (k, v) in channel.headers { headers[k] = v }
      return OutgoingRequest(url: channel.url, headers: headers, body: Array(body.utf8))
    case .telegram:
      var text = "<b>\(html(title))</b>\n\(html(body))"
      if text.count > 4000 { text = String(text.prefix(3990)) + "…" }
      let json: [String: Any] = [
        "chat_id": channel.chatID, "text": text, "parse_mode": "HTML", "disable_web_page_preview": true,
      ]
      return OutgoingRequest(
        url: "\(channel.url)/bot\(channel.token ?? "")/sendMessage", headers: ["Content-Type": "application/json"],
        body: encode(json))
    case .webhook:
      var headers = ["Content-Type": "application/json"]
      if let token = channel.token { headers["Authorization"] = "Bearer \(token)" }
      for (k, v) in channel.headers { headers[k] = v }
      let json: [String: Any]
      if channel.format == "slack" {
        json = ["text": "*\(title)*\n\(body)"]
      } else {
        json = [
          "version": "1", "title": title, "text": body,
          "status": worst == nil ? "resolved" : "firing",
          "alerts": items.map { webhookAlert($0) },
        ]
      }
      return OutgoingRequest(url: channel.url, headers: headers, body: encode(json))
    }
  }

  static func webhookAlert(_ i: Item) -> [String: Any] {
    let a = i.alert
    var labels: [String: String] = [:]
    for l in a.labels { labels[l.key] = l.value }
    var out: [String: Any] = [
      "id": a.id, "rule": a.rule, "host": a.host, "severity": severityName(a.severity), "state": stateName(a.state),
      "notification": i.kind.rawValue, "summary": a.summary, "labels": labels, "value": a.value,
      "threshold": a.threshold, "started_at_unix_ms": a.startedAtUnixMs,
    ]
    if !a.description.isEmpty { out["description"] = a.description }
    if a.resolvedAtUnixMs > 0 { out["resolved_at_unix_ms"] = a.resolvedAtUnixMs }
    return out
  }

  /// ntfy priorities: 5 urgent (critical), 4 high (warning), 3 default
  /// (info), 2 low (only resolutions).
  static func priority(_ worst: Int32?) -> String {
    switch worst {
    case Severity.critical.rawValue: "5"
    case Severity.warning.rawValue: "4"
    case nil: "2"
    default: "3"
    }
  }

  static func tags(_ worst: Int32?, hosts: [String]) -> String {
    let emoji =
      switch worst {
      case Severity.critical.rawValue: "rotating_light"
      case Severity.warning.rawValue: "warning"
      case nil: "white_check_mark"
      default: "information_source"
      }
    var seen: [String] = []
    for h in hosts where !seen.contains(h) && seen.count < 5 { seen.append(h) }
    return ([emoji] + seen).joined(separator: ",")
  }

  /// Header values are ASCII: anything else is sent RFC 2047 encoded
  /// (ntfy decodes it).
  static func headerValue(_ s: String) -> String {
    if s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return s }
    return "=?UTF-8?B?\(Data(s.utf8).base64EncodedString())?="
  }

  static func html(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;")
  }

  static func encode(_ json: [String: Any]) -> [UInt8] {
    let data =
      (try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    return [UInt8](data)
  }
}

/// Sends with URLSession (libcurl underneath: http and https).
public struct URLSessionSender: HTTPSender {
  let timeout: Duration

  public init(timeout: Duration = .seconds(10)) { self.timeout = timeout }

  public func post(_ r: OutgoingRequest) async -> DeliveryOutcome {
    guard let url = URL(string: r.url) else { return .rejected("not a URL") }
    var request = URLRequest(url: url, timeoutInterval: Double(timeout.wholeMilliseconds) / 1000)
    request.httpMethod = "POST"
    for (k, v) in r.headers { request.setValue(v, forHTTPHeaderField: k) }
    request.httpBody = Data(r.body)
    let session = URLSession(configuration: .ephemeral)
    defer { session.finishTasksAndInvalidate() }
    return await withCheckedContinuation { continuation in
      session.dataTask(with: request) { _, response, error in
        if let error = error as? URLError {
          // The message of a URLError names the URL, which may hold a token.
          continuation.resume(returning: .retry("network error \(error.code.rawValue)", after: nil))
          return
        }
        if error != nil {
          continuation.resume(returning: .retry("network error", after: nil))
          return
        }
        guard let http = response as? HTTPURLResponse else {
          continuation.resume(returning: .retry("no HTTP response", after: nil))
          return
        }
        continuation.resume(
          returning: Self.outcome(status: http.statusCode, retryAfter: http.value(forHTTPHeaderField: "Retry-After")))
      }.resume()
    }
  }

  static func outcome(status: Int, retryAfter: String?) -> DeliveryOutcome {
    switch status {
    case 200..<300: .delivered
    case 429: .retry("HTTP 429", after: retryAfter.flatMap(Int.init).map { .seconds($0) })
    case 408, 500..<600: .retry("HTTP \(status)", after: nil)
    default: .rejected("HTTP \(status)")
    }
  }
}
