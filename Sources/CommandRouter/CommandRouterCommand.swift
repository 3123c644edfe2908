import ArgumentParser
import CommandRouterCore
import MirrorService
import MirrorServiceHTTP
import MirrorServiceStore

@main
struct CommandRouterCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "command-router",
    abstract: "MIRROR STAGE CommandRouter: authorises, signs, routes and audits remote commands.")

  @OptionGroup var options: CommonOptions

  func run() async throws {
    try await ServiceRunner.run(
      service: "command-router", defaultHTTPPort: 9102, options: options, ops: HummingbirdOps.factory
    ) { context in
      let c = context.config
      guard let keyPath = c.string("router.signing-key") else {
        throw ConfigError(
          key: "router.signing-key", problem: "the router needs its Ed25519 private key (mirrorctl keys gen)",
          source: "configuration")
      }
      let key: Curve25519Key
      do {
        key = try KeyFiles.loadPrivate(keyPath)
      } catch {
        throw ConfigError(
          key: "router.signing-key", problem: "\(error)", source: c.lookup("router.signing-key")?.source ?? "")
      }
      var settings = CommandRouter.Settings()
      settings.keyID = c.string("router.key-id", default: "router")
      settings.defaultTimeout = try c.duration("router.default-timeout", default: .seconds(60))
      settings.defaultDeadline = try c.duration("router.default-deadline", default: .seconds(300))
      settings.grace = try c.duration("router.grace", default: .seconds(30))
      settings.maxSkew = try c.duration("router.max-skew", default: .seconds(600))
      settings.auditRetention = try c.duration("router.audit-retention", default: .seconds(30 * 86_400))
      let bus = BusService(options: context.settings.bus, streams: [Streams.commands], context: context)
      let database = try DatabaseService(settings: context.settings, context: context)
      let router = CommandRouter(
        settings: settings, signingKey: key, bus: bus, database: database.client, logger: context.logger)
      return [database, bus, router]
    }
  }
}
