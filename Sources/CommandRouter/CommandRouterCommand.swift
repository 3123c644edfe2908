import ArgumentParser
import MirrorService
import MirrorServiceStore

@main
struct CommandRouterCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "command-router",
    abstract: "MIRROR STAGE CommandRouter: authorises, signs, routes and audits remote commands.")

  @OptionGroup var options: CommonOptions

  func run() async throws {
    try await ServiceRunner.run(service: "command-router", defaultHTTPPort: 9102, options: options) { context in
      let bus = BusService(options: context.settings.bus, streams: [Streams.commands], context: context)
      let database = try DatabaseService(settings: context.settings, context: context)
      return [database, bus]
    }
  }
}
