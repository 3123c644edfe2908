import ArgumentParser
import ConsoleCore
import MirrorService
import MirrorServiceStore

@main
struct ConsoleCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "console",
    abstract: "MIRROR STAGE Console: the web dashboard (login with TOTP, live hosts, host detail).")

  @OptionGroup var options: CommonOptions

  func run() async throws {
    try await ServiceRunner.run(service: "console", defaultHTTPPort: 9109, options: options) { context in
      let settings = try ConsoleSettings(config: context.config)
      let bus = BusService(options: context.settings.bus, streams: [], context: context)
      let database = try DatabaseService(settings: context.settings, context: context)
      let console = ConsoleServer(
        settings: settings, bus: bus, database: database.client, logger: context.logger)
      return [database, bus, console]
    }
  }
}
