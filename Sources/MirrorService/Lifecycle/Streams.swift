public import MirrorBus

/// The JetStream streams of the system (docs/architecture.md).
public enum Streams {
  public static let metrics = StreamConfig(
    name: "METRICS", subjects: ["metrics.raw.>"], maxAge: .seconds(6 * 3600), maxMessageSize: 1 << 20,
    duplicateWindow: .seconds(600))
  public static let metricsNormalized = StreamConfig(
    name: "METRICS_NORM", subjects: ["metrics.normalized.>"], maxAge: .seconds(3600), duplicateWindow: .seconds(120))
  public static let events = StreamConfig(
    name: "EVENTS", subjects: ["events.>"], maxAge: .seconds(7 * 86400), duplicateWindow: .seconds(600))
  public static let commands = StreamConfig(
    name: "COMMANDS", subjects: ["commands.pending", "commands.dispatch.>", "commands.result.>"],
    maxAge: .seconds(30 * 86400), duplicateWindow: .seconds(600))
  public static let alerts = StreamConfig(
    name: "ALERTS", subjects: ["alerts.info.>", "alerts.warning.>", "alerts.critical.>"], maxAge: .seconds(30 * 86400),
    duplicateWindow: .seconds(600))

  public static let all = [metrics, metricsNormalized, events, commands, alerts]
}

/// Subject names; the host is always the last token.
public enum Subjects {
  public static func metricsRaw(_ host: String) -> String { "metrics.raw.\(host)" }
  public static func metricsNormalized(_ host: String) -> String { "metrics.normalized.\(host)" }
  public static let metricsRejected = "metrics.rejected"
  public static func events(_ host: String) -> String { "events.\(host)" }
  public static let commandsPending = "commands.pending"
  public static func commandsDispatch(_ host: String) -> String { "commands.dispatch.\(host)" }
  public static func commandsResult(_ host: String) -> String { "commands.result.\(host)" }
  /// The router's word that a command reached its final state (core NATS:
  /// its `CommandRecord`), for clients waiting on it.
  public static func commandsState(_ id: String) -> String { "commands.state.\(id)" }
  /// An interactive session's frames (core NATS, `SessionFrame`): client
  /// to host, and host to client.
  public static func sessionIn(_ host: String, _ id: String) -> String { "sessions.\(host).\(id).in" }
  public static func sessionOut(_ host: String, _ id: String) -> String { "sessions.\(host).\(id).out" }
  public static func alerts(_ severity: String, _ host: String) -> String { "alerts.\(severity).\(host)" }
  public static let visualizationUpdates = "visualization.updates"
  // Request/reply (Ingest).
  public static let hostsRegister = "hosts.register"
  public static let hostsList = "hosts.list"
  public static let hostsGet = "hosts.get"
  public static let hostsSnapshot = "hosts.snapshot"
  public static let metricsQuery = "metrics.query"
  // Request/reply (CommandRouter).
  public static let commandsSubmit = "commands.submit"
  public static let commandsGet = "commands.get"
  public static let commandsList = "commands.list"
  // Request/reply (TwinService).
  public static let twinSceneGet = "twin.scene.get"
  // Request/reply (Notifier).
  public static let alertsList = "alerts.list"
  public static let alertsAck = "alerts.ack"
  public static let alertsSilence = "alerts.silence"
  public static let alertsUnsilence = "alerts.unsilence"

  /// A host name usable as one subject token: no dots, wildcards or spaces.
  public static func isValidHostToken(_ host: String) -> Bool {
    !host.isEmpty && host.utf8.count <= 253
      && host.utf8.allSatisfy { b in
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F
      }
  }
}
