// libFuzzer target: a service's YAML configuration file, read into
// `ConfigValues` and the typed settings built from it (every service's
// common settings, the reflector's, the console's). Built and run by
// bench/fuzz.sh.
import ConsoleCore
import MirrorService
import ReflectorCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  guard let config = try? ConfigValues.parse(yaml: text, file: "fuzz.yaml") else { return 0 }
  _ = try? ServiceSettings(service: "fuzz", defaultHTTPPort: 9000, config: config)
  _ = try? AgentSettings(config: config)
  _ = try? ConsoleSettings(config: config)
  return 0
}
