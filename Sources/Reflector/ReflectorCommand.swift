import ArgumentParser
import Foundation
import MirrorService
import MirrorWire
import ReflectorCore

@main
struct ReflectorCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "reflector",
    abstract: "MIRROR STAGE REFLECTOR: the host agent.",
    subcommands: [Run.self, Check.self, Collect.self],
    defaultSubcommand: Run.self)
}

extension ReflectorCommand {
  struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the agent.")

    @OptionGroup var options: CommonOptions

    func run() async throws {
      Malloc.oneArena()
      try await ServiceRunner.run(service: "reflector", defaultHTTPPort: 9105, options: options) { context in
        var settings = try AgentSettings(config: context.config)
        settings.trimStartupMemory = try context.config.bool("reflector.trim-startup-memory", default: true)
        var busOptions = context.settings.bus
        busOptions.name = "reflector-\(settings.host)"
        // The agent publishes into streams the services declare; a confined
        // host may not create streams, so it declares none.
        let bus = BusService(options: busOptions, streams: [], context: context)
        let agent = try Agent(
          settings: settings, bus: bus, collector: Collector(settings: settings.collectorSettings),
          logger: context.logger)
        // Remote commands only with the router's public key to check them by.
        guard let keyPath = context.config.string("commands.router-key") else {
          context.logger.info("remote commands are off: no commands.router-key")
          return [bus, agent]
        }
        let key: Data
        do {
          key = try DispatchVerifier.loadPublicKey(keyPath)
        } catch {
          throw ConfigError(
            key: "commands.router-key", problem: "\(keyPath): not an Ed25519 public key (\(error))",
            source: context.config.lookup("commands.router-key")?.source ?? "")
        }
        let policyPath = context.config.string("commands.policy")
        let policy = try policyPath.map { try CommandPolicy.load($0) } ?? CommandPolicy()
        let commands = CommandService(
          host: settings.host, bus: bus, verifier: try DispatchVerifier(routerPublicKey: key, host: settings.host),
          executor: CommandExecutor(policy: policy, collectNow: { agent.collectNow() }), logger: context.logger)
        context.logger.info(
          "remote commands are on",
          metadata: ["policy": "\(policyPath ?? "built-ins only")"])
        return [bus, agent, commands]
      }
    }
  }

  struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Validate the configuration and print what would be collected.")

    @OptionGroup var options: CommonOptions

    func run() throws {
      let config = try options.configValues()
      let service = try ServiceSettings(service: "reflector", defaultHTTPPort: 9105, config: config)
      let settings = try AgentSettings(config: config)
      let collector = Collector(settings: settings.collectorSettings)
      let batch = collector.collect(sequence: 0, intervalMs: 0)
      let info = collector.hostInfo(labels: settings.labels)
      print("configuration: ok")
      print("host:          \(settings.host)  (subject metrics.raw.\(settings.host))")
      print("nats:          \(service.bus.urls.joined(separator: ", "))")
      print(
        "interval:      \(settings.interval)   buffer: \(settings.bufferCapacity) batches   spool: \(settings.spoolDirectory ?? "none")"
      )
      print("labels:        \(settings.labels.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))")
      print("os:            \(info.osName) \(info.osVersion), kernel \(info.kernel) \(info.architecture)")
      print(
        "cpu:           \(info.cpuModel), \(info.cpuCores) cores, \(info.cpuThreads) threads, \(batch.cpu?.cores.count ?? 0) reported"
      )
      print("memory:        \(info.memoryTotalBytes / 1_048_576) MiB")
      print(
        "mounts:        \(batch.mounts.map { $0.mountPoint + ($0.available ? "" : " (unavailable)") }.joined(separator: ", "))"
      )
      print(
        "disks:         \(batch.disks.map(\.device).joined(separator: ", "))  smartctl: \(Programs.find("smartctl") ?? "not installed")"
      )
      let primary = info.primaryInterface.isEmpty ? "none" : info.primaryInterface
      let speed = info.primaryInterfaceSpeedMbps.map { "\($0) Mb/s" } ?? "speed unknown"
      print("interfaces:    \(batch.interfaces.map(\.name).joined(separator: ", "))  primary: \(primary) (\(speed))")
      print(
        "gpus:          \(batch.gpus.isEmpty ? "none (nvidia-smi: \(Programs.find("nvidia-smi") ?? "not installed"))" : batch.gpus.map(\.name).joined(separator: ", "))"
      )
      print("temperatures:  \(batch.temperatures.count) sensors")
      print(
        "latency:       \(settings.latencyTargets.isEmpty ? "no targets" : settings.latencyTargets.joined(separator: ", "))"
      )
      print("processes:     top \(settings.topK) by CPU and by memory")
      for e in batch.errors { print("warning:       \(e.collector): \(e.message)") }
    }
  }

  struct Collect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Collect one batch and print it.")

    @OptionGroup var options: CommonOptions

    @Flag(help: "Print JSON (the default and only format).")
    var json = false

    func run() throws {
      let settings = try AgentSettings(config: options.configValues())
      let collector = Collector(settings: settings.collectorSettings)
      // Two samples half a second apart, so utilisation and process CPU
      // have a delta to come from.
      _ = collector.collect(sequence: 0, intervalMs: 0)
      Thread.sleep(forTimeInterval: 0.5)
      let batch = collector.collect(sequence: 1, intervalMs: 500)
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      print(String(decoding: try encoder.encode(batch), as: UTF8.self))
    }
  }
}
