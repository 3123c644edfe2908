// libFuzzer target: the JSON mapping of the wire messages (their Codable
// conformance, as mirrorctl prints and reads them). Built and run by
// bench/fuzz.sh.
import Foundation
import MirrorWire
import TestSupport

/// The first byte picks the message type, the rest is JSON. What decodes
/// must encode to protobuf that decodes again, and back to JSON.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWireJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let type = allWireMessageTypes[Int(data[0]) % allWireMessageTypes.count]
  roundTrip(type, Data(UnsafeBufferPointer(start: data + 1, count: size - 1)))
  return 0
}

func roundTrip<M: WireMessage>(_: M.Type, _ json: Data) {
  guard let message = try? JSONDecoder().decode(M.self, from: json) else { return }
  let encoded = message.encode()
  guard let again = try? M(decoding: encoded) else { fatalError("\(M.fullName): its own encoding does not decode") }
  guard again.encode() == encoded else { fatalError("\(M.fullName): the encoding changed after a round trip") }
  _ = try? JSONEncoder().encode(again)
}

/// With MIRROR_FUZZ_SEEDS=DIR: writes a seed corpus (each type with every
/// field set by the sample rule, as JSON) into DIR and exits.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzWireJSONInitialize(
  _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
  guard let dir = ProcessInfo.processInfo.environment["MIRROR_FUZZ_SEEDS"] else { return 0 }
  for (i, type) in allWireMessageTypes.enumerated() {
    _ = FileManager.default.createFile(atPath: "\(dir)/json-\(i)", contents: Data([UInt8(i)] + seed(type)))
  }
  exit(0)
}

func seed<M: WireMessage>(_: M.Type) -> [UInt8] {
  let encoder = JSONEncoder()
  encoder.outputFormatting = .sortedKeys
  return (try? encoder.encode(Sample.make(M.self))).map { [UInt8]($0) } ?? []
}
