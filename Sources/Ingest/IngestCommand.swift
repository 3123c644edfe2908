import ArgumentParser
import IngestCore
import MirrorService

@main
struct IngestCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ingest",
    abstract: "MIRROR STAGE Ingest: validates metric batches and stores them in PostgreSQL.")

  @OptionGroup var options: CommonOptions

  func run() async throws {
    try await ServiceRunner.run(service: "ingest", defaultHTTPPort: 9101, options: options) { context in
      let c = context.config
      var settings = IngestPipeline.Settings()
      settings.fetchBatch = try c.int("ingest.fetch-batch", default: 500, range: 1...10_000)
      settings.validation.maxAge = try c.duration("ingest.max-age", default: .seconds(3600))
      settings.validation.maxFuture = try c.duration("ingest.max-future", default: .seconds(300))
      settings.validation.autoRegister = try c.bool("ingest.auto-register", default: true)
      settings.validation.ratePerSecond = Double(try c.int("ingest.rate-per-host", default: 2, range: 1...10_000))
      settings.validation.burst = Double(try c.int("ingest.burst-per-host", default: 120, range: 1...1_000_000))
      let bus = BusService(
        options: context.settings.bus, streams: [Streams.metrics, Streams.metricsNormalized], context: context)
      let database = DatabaseService(settings: context.settings, context: context)
      let registry = HostRegistry(bus: bus, database: database.client, logger: context.logger)
      let pipeline = IngestPipeline(
        settings: settings, bus: bus, database: database.client, registry: registry, logger: context.logger)
      return [database, bus, registry, pipeline]
    }
  }
}
