import ArgumentParser
import MirrorService
import MirrorServiceStore

@main
struct NotifierCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "notifier",
    abstract: "MIRROR STAGE Notifier: alert rules and delivery to ntfy, Telegram and webhooks.")

  @OptionGroup var options: CommonOptions

  func run() async throws {
    try await ServiceRunner.run(service: "notifier", defaultHTTPPort: 9104, options: options) { context in
      let bus = BusService(options: context.settings.bus, streams: [Streams.alerts, Streams.events], context: context)
      let database = try DatabaseService(settings: context.settings, context: context)
      return [database, bus]
    }
  }
}
