// libFuzzer target: every protobuf decode entry point (`init(decoding:)`
// of each message of the schema). Built and run by bench/fuzz.sh.
import Foundation
import MirrorWire
import TestSupport

/// The first byte picks the message type, the rest is its payload. What
/// decodes must encode to bytes that decode again, to the same encoding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let type = allWireMessageTypes[Int(data[0]) % allWireMessageTypes.count]
  roundTrip(type, Array(UnsafeBufferPointer(start: data + 1, count: size - 1)))
  return 0
}

func roundTrip<M: WireMessage>(_: M.Type, _ bytes: [UInt8]) {
  guard let message = try? M(decoding: bytes) else { return }
  let encoded = message.encode()
  guard let again = try? M(decoding: encoded) else { fatalError("\(M.fullName): its own encoding does not decode") }
  guard again.encode() == encoded else { fatalError("\(M.fullName): the encoding changed after a round trip") }
}

/// With MIRROR_FUZZ_SEEDS=DIR: writes a seed corpus (each type, empty and
/// with every field set by the sample rule) into DIR and exits.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzWireInitialize(
  _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
  guard let dir = ProcessInfo.processInfo.environment["MIRROR_FUZZ_SEEDS"] else { return 0 }
  for (i, type) in allWireMessageTypes.enumerated() {
    for (n, payload) in seeds(type).enumerated() {
      _ = FileManager.default.createFile(atPath: "\(dir)/wire-\(i)-\(n)", contents: Data([UInt8(i)] + payload))
    }
  }
  exit(0)
}

func seeds<M: WireMessage>(_: M.Type) -> [[UInt8]] {
  [Sample.make(M.self).encode(), (try? M(decoding: [])).map { $0.encode() } ?? []]
}
