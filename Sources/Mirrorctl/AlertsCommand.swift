import ArgumentParser
import Foundation
import MirrorBus
import MirrorService
import MirrorWire
import NotifierCore

struct AlertsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "alerts", abstract: "Current and recent alerts (alerts.list); acknowledge and silence them.",
    subcommands: [List.self, Ack.self, SilenceCommand.self], defaultSubcommand: List.self)

  static func by(_ given: String?) -> String {
    given ?? ProcessInfo.processInfo.environment["USER"] ?? "mirrorctl"
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Pending and firing alerts.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Resolved ones too.") var all = false
    @Option(help: "Only this host.") var host: String = ""
    @Option(help: "At most this many.") var limit: UInt32 = 200
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() async throws {
      let bus = try await connection.connect()
      let reply: ListAlertsResponse
      do {
        reply = try await bus.request(
          Subjects.alertsList, ListAlertsRequest(includeResolved: all, host: host, limit: limit),
          expecting: ListAlertsResponse.self, timeout: connection.replyTimeout)
      } catch { throw Failure("alerts.list: \(describe(error))") }
      if json { return try printJSON(reply) }
      let now = Date().unixMilliseconds
      print(
        Format.table(
          ["ID", "STATE", "SEVERITY", "HOST", "RULE", "SINCE", "ACK", "SUMMARY"],
          reply.alerts.map { a in
            [
              a.id, stateName(a.state), severityName(a.severity), a.host, a.rule,
              Format.age(a.startedAtUnixMs, now: now), a.acknowledged ? a.acknowledgedBy : "-", a.summary,
            ]
          }))
      if !reply.silences.isEmpty {
        print("\nsilences:")
        for s in reply.silences {
          let what = [
            s.alertId.isEmpty ? nil : "alert \(s.alertId)", s.rule.isEmpty ? nil : "rule \(s.rule)",
            s.host.isEmpty ? nil : "host \(s.host)",
          ].compactMap { $0 }.joined(separator: ", ")
          print("  \(what) for \(Format.age(now, now: s.endsAtUnixMs)) more, by \(s.by): \(s.comment)")
        }
      }
    }
  }

  struct Ack: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Acknowledge a firing alert: it stays firing but is not sent again.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The alert's id (see mirrorctl alerts).") var id: String
    @Option(help: "Who acknowledges (default: $USER).") var by: String?

    func run() async throws {
      let bus = try await connection.connect()
      do {
        let a = try await bus.request(
          Subjects.alertsAck, AckAlertRequest(alertId: id, by: AlertsCommand.by(by)), expecting: Alert.self,
          timeout: connection.replyTimeout)
        print("acknowledged \(a.id) (\(a.rule) on \(a.host)) by \(a.acknowledgedBy)")
      } catch { throw Failure("alerts.ack: \(describe(error))") }
    }
  }

  struct SilenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "silence", abstract: "Mute notifications of an alert, a rule or hosts (globs) for a while.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "One alert's id.") var alert: String = ""
    @Option(help: "A rule name or glob.") var rule: String = ""
    @Option(help: "A host name or glob.") var host: String = ""
    @Option(name: .customLong("for"), help: "How long, e.g. 30m, 2h, 1d.") var duration: String
    @Option(help: "Why.") var comment: String = ""
    @Option(help: "Who silences (default: $USER).") var by: String?

    func run() async throws {
      guard let d = ConfigValues.parseDuration(duration), d > .zero else {
        throw ValidationError("--for must be a duration such as 30m, 2h, 1d")
      }
      let bus = try await connection.connect()
      do {
        let s = try await bus.request(
          Subjects.alertsSilence,
          SilenceRequest(
            alertId: alert, rule: rule, host: host, durationMs: UInt64(d.wholeMilliseconds), by: AlertsCommand.by(by),
            comment: comment), expecting: Silence.self, timeout: connection.replyTimeout)
        print("silence \(s.id) until \(Date(timeIntervalSince1970: Double(s.endsAtUnixMs) / 1000))")
      } catch { throw Failure("alerts.silence: \(describe(error))") }
    }
  }
}
