import ArgumentParser
import Foundation
import MirrorBus
import MirrorService
import MirrorWire

struct TwinCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "twin", abstract: "The digital twin (twin.scene.get).", subcommands: [Export.self])

  struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Write the scene to FILE as glTF 2.0 (open it in any glTF viewer), JSON, or protobuf.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "gltf, json or protobuf.") var format: String = "gltf"
    @Argument(help: "Where to write it ('-' for standard output).") var file: String

    func run() async throws {
      let wanted: SceneFormat
      switch format.lowercased() {
      case "gltf": wanted = .gltf
      case "json": wanted = .json
      case "protobuf", "pb": wanted = .protobuf
      default: throw ValidationError("--format must be gltf, json or protobuf")
      }
      let bus = try await connection.connect()
      let bytes: [UInt8]
      let summary: String
      do {
        if wanted == .protobuf {
          let scene = try await bus.request(
            Subjects.twinSceneGet, GetSceneRequest(format: .protobuf), expecting: Scene.self,
            timeout: connection.replyTimeout)
          bytes = scene.encode()
          summary = "scene \(scene.sequence): \(scene.nodes.count) nodes, \(scene.links.count) links"
        } else {
          let doc = try await bus.request(
            Subjects.twinSceneGet, GetSceneRequest(format: wanted), expecting: SceneDocument.self,
            timeout: connection.replyTimeout)
          bytes = doc.content
          summary = "scene \(doc.sequence) as \(doc.mediaType)"
        }
      } catch { throw Failure("twin.scene.get: \(describe(error))") }
      if file == "-" {
        FileHandle.standardOutput.write(Data(bytes))
        return
      }
      do {
        try Data(bytes).write(to: URL(fileURLWithPath: file))
      } catch { throw Failure("cannot write \(file): \(error)") }
      FileHandle.standardError.write(Data("wrote \(file): \(summary), \(bytes.count) bytes\n".utf8))
    }
  }
}
