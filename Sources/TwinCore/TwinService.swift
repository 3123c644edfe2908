import Foundation
public import Logging
import Metrics
import MirrorBus
public import MirrorService
import MirrorWire
public import ServiceLifecycle

/// The TwinService: follows `metrics.normalized.>`, keeps the twin, and
/// once an interval publishes what changed on `visualization.updates` and
/// the whole scene in the TWIN key-value bucket; answers `twin.scene.get`
/// (protobuf, JSON or glTF); reloads the inventory when its file changes.
public final class TwinService: Service, Sendable {
  public struct Settings: Sendable {
    public var inventoryPath: String?
    public var interval: Duration = .seconds(5)
    public var reloadCheck: Duration = .seconds(2)
    public var model = TwinModel.Settings()
    public var bucket = "TWIN"
    public var consumer = "TWIN"
    public init() {}
  }

  enum Input: Sendable {
    case batches([JetStreamMessage], Completion)
    case tick
    case reload
    case request(BusMessage)
  }

  let settings: Settings
  let bus: BusService
  let logger: Logger
  let inputs: AsyncStream<Input>
  let inputContinuation: AsyncStream<Input>.Continuation
  let initialInventory: Inventory

  public init(settings: Settings, inventory: Inventory, bus: BusService, logger: Logger) {
    self.settings = settings
    self.bus = bus
    self.logger = logger
    initialInventory = inventory
    (inputs, inputContinuation) = AsyncStream.makeStream(of: Input.self)
  }

  public func run() async throws {
    guard let connection = try? await bus.connection() else { return }
    let rpc = try connection.serve(Subjects.twinSceneGet, service: "twin-service", version: MirrorVersion.current)
    await cancelWhenGracefulShutdown {
      let kv = await self.bucket(connection)
      let model = TwinModel(inventory: self.initialInventory, settings: self.settings.model)
      if let kv, let bytes = try? await kv.get("scene"), let stored = try? Scene(decoding: bytes, limit: 64 << 20) {
        model.resume(from: stored)
        self.logger.info(
          "resumed from the stored scene",
          metadata: ["sequence": "\(stored.sequence)", "nodes": "\(stored.nodes.count)"])
      }
      let box = Handover(model)
      await withTaskGroup(of: Void.self) { group in
        group.addTask { await self.loop(box, connection: connection, kv: kv) }
        group.addTask { await self.consume(connection) }
        group.addTask {
          while !Task.isCancelled {
            try? await Task.sleep(for: self.settings.interval)
            self.inputContinuation.yield(.tick)
          }
        }
        if self.settings.inventoryPath != nil {
          group.addTask {
            while !Task.isCancelled {
              try? await Task.sleep(for: self.settings.reloadCheck)
              self.inputContinuation.yield(.reload)
            }
          }
        }
        group.addTask { for await m in rpc { self.inputContinuation.yield(.request(m)) } }
        await group.next()
        group.cancelAll()
      }
    }
    inputContinuation.finish()
  }

  func bucket(_ connection: BusConnection) async -> KeyValueStore? {
    while !Task.isCancelled {
      do {
        return try await connection.keyValue(bucket: settings.bucket)
      } catch {
        logger.warning("key-value bucket not ready; retrying", metadata: ["error": "\(error)"])
        try? await Task.sleep(for: .seconds(1))
      }
    }
    return nil
  }

  func consume(_ connection: BusConnection) async {
    let config = ConsumerConfig(
      durable: settings.consumer, filterSubject: "metrics.normalized.>", ackWait: .seconds(30), deliverPolicy: .new)
    await connection.feed(stream: Streams.metricsNormalized.name, config, logger: logger) { messages, done in
      inputContinuation.yield(.batches(messages, done))
    }
  }

  func loop(_ box: Handover<TwinModel>, connection: BusConnection, kv: KeyValueStore?) async {
    let model = box.value
    // The file as last read (compared whole: an inventory is small, and
    // modification times can be too coarse to tell two quick edits apart).
    var lastInventory = settings.inventoryPath.flatMap { FileManager.default.contents(atPath: $0) }
    for await input in inputs {
      switch input {
      case .batches(let messages, let done):
        let now = Date().unixMilliseconds
        for m in messages {
          do {
            model.observe(try NormalizedBatch(decoding: m.payload), arrivedMs: m.arrivedMs(notAfter: now))
          } catch {
            Counter(label: "twin_bad_input_total", dimensions: [("reason", "malformed")]).increment()
            logger.warning("not a NormalizedBatch", metadata: ["subject": "\(m.subject)", "error": "\(error)"])
          }
          // The twin is a view: what it lost comes again with the next
          // batch, so a batch is done once seen.
          try? m.ack()
        }
        Counter(label: "twin_batches_total").increment(by: messages.count)
        done.finish()
      case .tick:
        await publish(model, connection: connection, kv: kv)
      case .reload:
        guard let path = settings.inventoryPath else { continue }
        let data = FileManager.default.contents(atPath: path)
        guard data != lastInventory else { continue }
        lastInventory = data
        do {
          guard let data else { throw YAMLFileError(file: path, line: 0, problem: "cannot read the file") }
          let inventory = try Inventory.parse(YAMLValue.parse(String(decoding: data, as: UTF8.self), file: path))
          model.replaceInventory(inventory)
          logger.info(
            "inventory reloaded",
            metadata: ["devices": "\(inventory.devices.count)", "links": "\(inventory.links.count)"])
          await publish(model, connection: connection, kv: kv)
        } catch {
          Counter(label: "twin_inventory_errors_total").increment()
          logger.error("inventory not reloaded; keeping the previous one", metadata: ["error": "\(error)"])
        }
      case .request(let m):
        answer(m, model: model, connection: connection)
      }
    }
  }

  func publish(_ model: TwinModel, connection: BusConnection, kv: KeyValueStore?) async {
    let started = ContinuousClock.now
    guard let diff = model.recompute(nowMs: Date().unixMilliseconds) else { return }
    Gauge(label: "twin_recompute_seconds").record(Double((ContinuousClock.now - started).wholeMilliseconds) / 1000)
    do {
      try connection.publish(Subjects.visualizationUpdates, diff)
    } catch {
      logger.warning("cannot publish a scene diff", metadata: ["error": "\(error)"])
    }
    Counter(label: "twin_diffs_total").increment()
    if let kv {
      do {
        try await kv.put("scene", model.scene.encode())
      } catch {
        Counter(label: "twin_store_errors_total").increment()
        logger.warning("cannot store the scene in the key-value bucket", metadata: ["error": "\(error)"])
      }
    }
  }

  func answer(_ m: BusMessage, model: TwinModel, connection: BusConnection) {
    do {
      let q = try GetSceneRequest(decoding: m.payload)
      if model.scene.sequence == 0 { model.recompute(nowMs: Date().unixMilliseconds) }
      let scene = model.scene
      switch q.format {
      case .json:
        try connection.respond(
          to: m,
          with: SceneDocument(
            format: .json, mediaType: "application/json", content: SceneJSON.document(scene), sequence: scene.sequence))
      case .gltf:
        try connection.respond(
          to: m,
          with: SceneDocument(
            format: .gltf, mediaType: "model/gltf+json", content: GLTFExport.document(scene),
            sequence: scene.sequence))
      default:
        try connection.respond(to: m, with: scene)
      }
    } catch {
      if error is WireError {
        Counter(label: "twin_bad_input_total", dimensions: [("reason", "malformed_request")]).increment()
      } else {
        logger.warning("cannot answer twin.scene.get", metadata: ["error": "\(error)"])
      }
      try? connection.respond(to: m, with: RpcError(answering: error))
    }
  }
}
