import ArgumentParser
import ConsoleCore
import MirrorService
import MirrorServiceHTTP
import MirrorServiceStore

@main
struct ConsoleCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "console",
    abstract: "MIRROR STAGE Console: the web dashboard (login with TOTP, live hosts, host detail).")

  @OptionGroup var options: CommonOptions

  func run() async throws {
    // Every batch decoded and dropped: keep the freed pages for the next
    // (glibc's trimming and consolidating was a tenth of the console's CPU
    // with 1,000 hosts), in two arenas so what is kept stays bounded.
    Malloc.arenas(2)
    Malloc.keepFreed(upTo: 32 << 20)
    try await ServiceRunner.run(
      service: "console", defaultHTTPPort: 9109, options: options, ops: HummingbirdOps.factory
    ) { context in
      let settings = try ConsoleSettings(config: context.config)
      let bus = BusService(options: context.settings.bus, streams: [], context: context)
      let database = try DatabaseService(settings: context.settings, context: context)
      let console = ConsoleServer(
        settings: settings, bus: bus, database: database.client, logger: context.logger)
      return [database, bus, console]
    }
  }
}
