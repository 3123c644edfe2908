// libFuzzer target: the TwinService's inventory file, then the scene built
// from it (layout, a diff, the glTF and JSON exports). Built and run by
// bench/fuzz.sh.
import MirrorService
import MirrorWire
import TestSupport
import TwinCore

/// A batch with every field set (the sample rule), from host `web-1`.
let sample: NormalizedBatch = {
  var n = Sample.make(NormalizedBatch.self)
  n.batch?.host = "web-1"
  return n
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInventory(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  guard let doc = try? YAMLValue.parse(text, file: "fuzz.yaml"), let inventory = try? Inventory.parse(doc) else {
    return 0
  }
  let t0: Int64 = 1_800_000_000_000
  let model = TwinModel(inventory: inventory)
  model.observe(sample, arrivedMs: t0)
  model.recompute(nowMs: t0)
  let before = model.scene
  model.observe(sample, arrivedMs: t0 + 5000)
  if let diff = model.recompute(nowMs: t0 + 600_000) { _ = try? SceneDiffer.apply(diff, to: before) }
  _ = GLTFExport.document(model.scene)
  _ = SceneJSON.document(model.scene)
  return 0
}
