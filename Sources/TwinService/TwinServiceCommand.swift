import ArgumentParser
import MirrorService

@main
struct TwinServiceCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "twin-service",
    abstract: "MIRROR STAGE TwinService: the live digital twin of the network.")

  @OptionGroup var options: CommonOptions

  func run() async throws {
    try await ServiceRunner.run(service: "twin-service", defaultHTTPPort: 9103, options: options) { context in
      let bus = BusService(options: context.settings.bus, streams: [Streams.metricsNormalized], context: context)
      return [bus]
    }
  }
}
