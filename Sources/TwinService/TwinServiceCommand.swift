import ArgumentParser
import MirrorService
import MirrorServiceHTTP
import TwinCore

@main
struct TwinServiceCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "twin-service",
    abstract: "MIRROR STAGE TwinService: the live digital twin of the network.")

  @OptionGroup var options: CommonOptions

  func run() async throws {
    try await ServiceRunner.run(
      service: "twin-service", defaultHTTPPort: 9103, options: options, ops: HummingbirdOps.factory
    ) { context in
      let c = context.config
      var settings = TwinService.Settings()
      settings.inventoryPath = c.string("twin.inventory")
      settings.interval = try c.duration("twin.interval", default: .seconds(5))
      settings.model.downAfterIntervals = Int64(try c.int("twin.down-after-intervals", default: 3, range: 1...100))
      settings.model.layoutSeed = UInt64(try c.int("twin.layout-seed", default: 42, range: 0...Int.max))
      var inventory = Inventory()
      if let path = settings.inventoryPath {
        do {
          inventory = try Inventory.load(path)
        } catch {
          throw ConfigError(
            key: "twin.inventory", problem: "\(error)", source: c.lookup("twin.inventory")?.source ?? "")
        }
      }
      let bus = BusService(options: context.settings.bus, streams: [Streams.metricsNormalized], context: context)
      let twin = TwinService(settings: settings, inventory: inventory, bus: bus, logger: context.logger)
      return [bus, twin]
    }
  }
}
