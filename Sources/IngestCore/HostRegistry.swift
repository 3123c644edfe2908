import Foundation
public import Logging
import MirrorBus
public import MirrorService
public import MirrorStore
import MirrorWire
public import ServiceLifecycle
import Synchronization

/// Answers `hosts.register` (upserts the `hosts` row from the host's
/// `HostInfo` and returns its settings) and keeps the set of known hosts
/// for validation.
public final class HostRegistry: Service, Sendable {
  private let bus: BusService
  private let database: PostgresClient
  private let logger: Logger
  private let known = Mutex<Set<String>>([])

  public init(bus: BusService, database: PostgresClient, logger: Logger) {
    self.bus = bus
    self.database = database
    self.logger = logger
  }

  public func isKnown(_ host: String) -> Bool { known.withLock { $0.contains(host) } }

  public func refresh() async throws {
    let names = try await database.query("SELECT name FROM hosts").rows.map { try $0.decode(String.self, 0) }
    known.withLock { $0 = Set(names) }
  }

  public func run() async throws {
    guard let connection = try? await bus.connection() else { return }
    var loaded = false
    while !loaded, !Task.isShuttingDownGracefully, !Task.isCancelled {
      do {
        try await refresh()
        loaded = true
      } catch {
        try? await Task.sleep(for: .seconds(1))
      }
    }
    let requests = try connection.serve(Subjects.hostsRegister, service: "ingest", version: MirrorVersion.current)
    await cancelWhenGracefulShutdown {
      for await request in requests {
        await self.answer(request, connection: connection)
      }
    }
  }

  func answer(_ request: BusMessage, connection: BusConnection) async {
    do {
      let register = try request.decode(RegisterHostRequest.self)
      guard let info = register.info, Subjects.isValidHostToken(info.hostname) else {
        try connection.respond(to: request, with: RpcError(code: "invalid_argument", message: "no valid host name"))
        return
      }
      let labels =
        "{"
        + info.labels.map { "\(JSONLogHandler.quote($0.key)):\(JSONLogHandler.quote($0.value))" }.joined(separator: ",")
        + "}"
      let bytes = PGBytes(info.encode())
      let rows = try await database.query(
        """
        INSERT INTO hosts (name, machine_id, boot_id, os_name, os_version, kernel, architecture, cpu_model, cpu_cores,
          memory_total_bytes, agent_version, primary_interface, primary_interface_speed_mbps, addresses, mac_addresses,
          labels, info, updated_at, last_seen_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::text[], $15::text[], $16::jsonb, $17, now(), now())
        ON CONFLICT (name) DO UPDATE SET machine_id = EXCLUDED.machine_id, boot_id = EXCLUDED.boot_id,
          os_name = EXCLUDED.os_name, os_version = EXCLUDED.os_version, kernel = EXCLUDED.kernel,
          architecture = EXCLUDED.architecture, cpu_model = EXCLUDED.cpu_model, cpu_cores = EXCLUDED.cpu_cores,
          memory_total_bytes = EXCLUDED.memory_total_bytes, agent_version = EXCLUDED.agent_version,
          primary_interface = EXCLUDED.primary_interface,
          primary_interface_speed_mbps = EXCLUDED.primary_interface_speed_mbps, addresses = EXCLUDED.addresses,
          mac_addresses = EXCLUDED.mac_addresses, labels = EXCLUDED.labels, info = EXCLUDED.info, updated_at = now(),
          last_seen_at = now()
        RETURNING interval_ms
        """,
        [
          info.hostname, info.machineId, info.bootId, info.osName, info.osVersion, info.kernel, info.architecture,
          info.cpuModel, Int64(info.cpuCores), Int64(clamping: info.memoryTotalBytes), info.agentVersion,
          info.primaryInterface, info.primaryInterfaceSpeedMbps.map { Int64($0) },
          PGArray.text(info.addresses.map(\.address)),
          PGArray.text(info.hardwareAddresses.map(\.mac)), labels, bytes,
        ])
      known.withLock { _ = $0.insert(info.hostname) }
      let interval = try rows.rows.first?.decode(Int.self, 0) ?? 5000
      try connection.respond(
        to: request, with: RegisterHostResponse(host: info.hostname, accepted: true, intervalMs: UInt32(interval)))
      logger.info("host registered", metadata: ["host": "\(info.hostname)"])
    } catch {
      logger.warning("registration failed", metadata: ["error": "\(error)"])
      try? connection.respond(to: request, with: RpcError(code: "unavailable", message: "\(error)", retryable: true))
    }
  }
}
