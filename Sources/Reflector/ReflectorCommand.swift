import ArgumentParser
import MirrorService

@main
struct ReflectorCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "reflector",
    abstract: "MIRROR STAGE REFLECTOR: the host agent.",
    subcommands: [Run.self],
    defaultSubcommand: Run.self)

  struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the agent.")

    @OptionGroup var options: CommonOptions

    func run() async throws {
      try await ServiceRunner.run(service: "reflector", defaultHTTPPort: 9105, options: options) { context in
        // The agent publishes into streams the services declare; a confined
        // host may not create streams, so it declares none.
        [BusService(options: context.settings.bus, streams: [], context: context)]
      }
    }
  }
}
