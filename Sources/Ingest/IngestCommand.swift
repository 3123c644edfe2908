import ArgumentParser
import IngestCore
import MirrorService
import MirrorServiceHTTP
import MirrorServiceStore
import MirrorStore

@main
struct IngestCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ingest",
    abstract: "MIRROR STAGE Ingest: validates metric batches and stores them in PostgreSQL.")

  @OptionGroup var options: CommonOptions

  func run() async throws {
    // Each fetch allocates and frees tens of megabytes (decoded batches,
    // COPY buffers): keep the pages for the next one, in two arenas (the
    // pipeline's two stages) so that what is kept is bounded.
    Malloc.arenas(2)
    Malloc.keepFreed(upTo: 128 << 20)
    try await ServiceRunner.run(service: "ingest", defaultHTTPPort: 9101, options: options, ops: HummingbirdOps.factory)
    { context in
      let c = context.config
      var settings = IngestPipeline.Settings()
      settings.fetchBatch = try c.int("ingest.fetch-batch", default: 2000, range: 1...10_000)
      settings.validation.maxAge = try c.duration("ingest.max-age", default: .seconds(3600))
      settings.validation.maxFuture = try c.duration("ingest.max-future", default: .seconds(300))
      settings.validation.autoRegister = try c.bool("ingest.auto-register", default: true)
      settings.validation.ratePerSecond = Double(try c.int("ingest.rate-per-host", default: 2, range: 1...10_000))
      settings.validation.burst = Double(try c.int("ingest.burst-per-host", default: 120, range: 1...1_000_000))
      var storage = StorageSettings()
      storage.lateness = settings.validation.maxAge
      storage.retention = try c.duration("storage.retention", default: .seconds(30 * 86_400))
      storage.hourlyRetention = try c.duration("storage.hourly-retention", default: .seconds(180 * 86_400))
      storage.dailyRetention = try c.duration("storage.daily-retention", default: .seconds(1_825 * 86_400))
      storage.partitionsAhead = try c.int("storage.partitions-ahead", default: 3, range: 1...60)
      storage.compressAfter = try c.duration("storage.compress-after", default: .seconds(7 * 86_400))
      let maintenanceInterval = try c.duration("storage.maintenance-interval", default: .seconds(60))
      guard storage.retention > settings.validation.maxAge + .seconds(86_400) else {
        throw ConfigError(
          key: "storage.retention", problem: "must be more than a day longer than ingest.max-age",
          source: "configuration")
      }
      let bus = BusService(
        options: context.settings.bus, streams: [Streams.metrics, Streams.metricsNormalized], context: context)
      let database = try DatabaseService(settings: context.settings, context: context)
      let registry = HostRegistry(bus: bus, database: database.client, logger: context.logger)
      let pipeline = IngestPipeline(
        settings: settings, bus: bus, database: database.client, registry: registry, logger: context.logger)
      let url = context.settings.databaseURL
      let queries = QueryService(
        bus: bus, database: PostgresClient(url: url, applicationName: "ingest-query", logger: context.logger),
        timescale: { database.capabilities?.timescale ?? false }, logger: context.logger)
      let maintainer = StorageMaintainer(
        settings: storage, interval: maintenanceInterval,
        database: PostgresClient(url: url, applicationName: "ingest-maintenance", logger: context.logger),
        capabilities: { database.capabilities }, logger: context.logger)
      return [database, bus, registry, pipeline, queries, maintainer]
    }
  }
}
