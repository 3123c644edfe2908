import ArgumentParser
import MirrorService

@main
struct IngestCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ingest",
    abstract: "MIRROR STAGE Ingest: validates metric batches and stores them in PostgreSQL.")

  @OptionGroup var options: CommonOptions

  func run() async throws {
    try await ServiceRunner.run(service: "ingest", defaultHTTPPort: 9101, options: options) { context in
      let bus = BusService(
        options: context.settings.bus, streams: [Streams.metrics, Streams.metricsNormalized], context: context)
      let database = DatabaseService(settings: context.settings, context: context)
      return [database, bus]
    }
  }
}
