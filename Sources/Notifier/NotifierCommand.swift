import ArgumentParser
import Foundation
import MirrorService
import MirrorServiceHTTP
import MirrorServiceStore
import MirrorStore
import NotifierCore

@main
struct NotifierCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "notifier",
    abstract: "MIRROR STAGE Notifier: alert rules and delivery to ntfy, Telegram and webhooks.",
    subcommands: [Run.self, Check.self, Defaults.self], defaultSubcommand: Run.self)

  struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the Notifier (the default).")

    @OptionGroup var options: CommonOptions

    func run() async throws {
      try await ServiceRunner.run(
        service: "notifier", defaultHTTPPort: 9104, options: options, ops: HummingbirdOps.factory
      ) { context in
        let c = context.config
        let rules: NotifierRules
        do {
          rules = try NotifierRules.load(c.string("notifier.rules"))
        } catch {
          throw ConfigError(
            key: "notifier.rules", problem: "\(error)", source: c.lookup("notifier.rules")?.source ?? "")
        }
        var settings = NotifierService.Settings()
        settings.tick = try c.duration("notifier.tick", default: .seconds(1))
        settings.hostsRefresh = try c.duration("notifier.hosts-refresh", default: .seconds(30))
        let bus = BusService(
          options: context.settings.bus, streams: [Streams.alerts, Streams.events, Streams.metricsNormalized],
          context: context)
        let database = try DatabaseService(settings: context.settings, context: context)
        let notifier = NotifierService(
          rules: rules, settings: settings, bus: bus,
          database: PostgresClient(
            url: context.settings.databaseURL, applicationName: "notifier", logger: context.logger),
          logger: context.logger)
        return [database, bus, notifier]
      }
    }
  }

  struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Check a rules file: prints what it defines, or the file, line and problem.")

    @Option(name: .long, help: "The rules file.") var rules: String

    func run() throws {
      do {
        let r = try NotifierRules.load(rules)
        print("\(rules): ok: \(r.rules.count) rules, \(r.channels.count) channels, \(r.routes.count) routes")
        for rule in r.rules {
          print("  \(rule.name) (\(rule.kind.name), \(severityName(rule.severity)))")
        }
      } catch {
        FileHandle.standardError.write(Data("\(error)\n".utf8))
        throw ExitCode(1)
      }
    }
  }

  struct Defaults: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the built-in default rules.")
    func run() { print(DefaultRules.yaml) }
  }
}
