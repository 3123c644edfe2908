import Foundation
public import MirrorWire

/// The scene as glTF 2.0 (JSON with the geometry in an embedded base64
/// buffer): every node a box sized and placed from the inventory (racks
/// turned by their rotation), rooms as floor slabs and racks as frames
/// (translucent), every link a line through its waypoints, materials from
/// state. Node names are the scene ids; `extras` carry the live values.
public enum GLTFExport {
  public static func document(_ scene: Scene) -> [UInt8] {
    var bin = Data()
    func append<T>(_ values: [T]) -> (offset: Int, length: Int) {
      while bin.count % 4 != 0 { bin.append(0) }
      let offset = bin.count
      values.withUnsafeBytes { bin.append(contentsOf: $0) }
      return (offset, bin.count - offset)
    }
    var bufferViews: [[String: Any]] = []
    var accessors: [[String: Any]] = []
    func view(_ r: (offset: Int, length: Int), target: Int) -> Int {
      bufferViews.append(["buffer": 0, "byteOffset": r.offset, "byteLength": r.length, "target": target])
      return bufferViews.count - 1
    }
    // A unit cube centred on the origin: 24 vertices (flat normals), 36 indices.
    var positions: [Float] = []
    var normals: [Float] = []
    var indices: [UInt16] = []
    let faces: [([Float], [[Float]])] = [
      ([1, 0, 0], [[0.5, -0.5, -0.5], [0.5, 0.5, -0.5], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5]]),
      ([-1, 0, 0], [[-0.5, -0.5, 0.5], [-0.5, 0.5, 0.5], [-0.5, 0.5, -0.5], [-0.5, -0.5, -0.5]]),
      ([0, 1, 0], [[-0.5, 0.5, -0.5], [-0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0.5, 0.5, -0.5]]),
      ([0, -1, 0], [[-0.5, -0.5, 0.5], [-0.5, -0.5, -0.5], [0.5, -0.5, -0.5], [0.5, -0.5, 0.5]]),
      ([0, 0, 1], [[0.5, -0.5, 0.5], [0.5, 0.5, 0.5], [-0.5, 0.5, 0.5], [-0.5, -0.5, 0.5]]),
      ([0, 0, -1], [[-0.5, -0.5, -0.5], [-0.5, 0.5, -0.5], [0.5, 0.5, -0.5], [0.5, -0.5, -0.5]]),
    ]
    for (normal, corners) in faces {
      let base = UInt16(positions.count / 3)
      for c in corners {
        positions += c
        normals += normal
      }
      indices += [base, base + 1, base + 2, base, base + 2, base + 3]
    }
    let cubePositions = view(append(positions), target: 34962)
    accessors.append([
      "bufferView": cubePositions, "componentType": 5126, "count": 24, "type": "VEC3",
      "min": [-0.5, -0.5, -0.5], "max": [0.5, 0.5, 0.5],
    ])
    let cubeNormals = view(append(normals), target: 34962)
    accessors.append(["bufferView": cubeNormals, "componentType": 5126, "count": 24, "type": "VEC3"])
    let cubeIndices = view(append(indices), target: 34963)
    accessors.append(["bufferView": cubeIndices, "componentType": 5123, "count": 36, "type": "SCALAR"])

    var materials: [[String: Any]] = []
    var materialIndex: [Material: Int] = [:]
    func material(_ m: Material) -> Int {
      if let i = materialIndex[m] { return i }
      let (r, g, b) = rgb(m.colorHex)
      let e = min(max(m.emissiveIntensity, 0), 1)
      var json: [String: Any] = [
        "name": "\(m.colorHex)/\(m.emissiveIntensity)/\(m.opacity)",
        "pbrMetallicRoughness": [
          "baseColorFactor": [r, g, b, m.opacity], "metallicFactor": 0.1, "roughnessFactor": 0.8,
        ],
        "emissiveFactor": [r * e, g * e, b * e],
      ]
      if m.opacity < 1 { json["alphaMode"] = "BLEND" }
      materials.append(json)
      materialIndex[m] = materials.count - 1
      return materials.count - 1
    }
    var meshes: [[String: Any]] = []
    var boxMesh: [Int: Int] = [:]
    func box(_ materialID: Int) -> Int {
      if let m = boxMesh[materialID] { return m }
      meshes.append([
        "primitives": [["attributes": ["POSITION": 0, "NORMAL": 1], "indices": 2, "material": materialID, "mode": 4]]
      ])
      boxMesh[materialID] = meshes.count - 1
      return meshes.count - 1
    }
    var nodes: [[String: Any]] = []
    func quaternionY(_ degrees: Double) -> [Double] {
      let half = degrees * .pi / 360
      return [0, sin(half), 0, cos(half)]
    }
    for room in scene.rooms {
      let o = room.origin ?? Vec3()
      let s = room.size ?? Vec3()
      let floor = material(Material(colorHex: "#d0d3d4", emissiveIntensity: 0, opacity: 0.35))
      nodes.append([
        "name": "room:\(room.id)", "mesh": box(floor), "translation": [o.x + s.x / 2, o.y - 0.01, o.z + s.z / 2],
        "scale": [s.x, 0.02, s.z], "extras": ["kind": "room", "height": s.y],
      ])
    }
    let rotation = Dictionary(scene.racks.map { ($0.id, $0.rotationDegrees) }, uniquingKeysWith: { a, _ in a })
    for rack in scene.racks {
      let p = rack.position ?? Vec3()
      let height = Double(rack.heightUnits) * 0.04445
      let frame = material(Material(colorHex: "#2c3e50", emissiveIntensity: 0, opacity: 0.25))
      nodes.append([
        "name": "rack:\(rack.id)", "mesh": box(frame), "translation": [p.x, p.y + height / 2, p.z],
        "rotation": quaternionY(rack.rotationDegrees), "scale": [0.6, height, 1.0],
        "extras": ["kind": "rack", "room": rack.room, "units": rack.heightUnits],
      ])
    }
    for n in scene.nodes {
      let p = n.position ?? Vec3()
      let s = n.size ?? Vec3(x: 0.4, y: 0.4, z: 0.4)
      // The same names and values as the JSON document (camelCase).
      var extras: [String: Any] = [
        "kind": "\(n.kind)", "health": "\(n.health)", "room": n.room, "label": n.label.isEmpty ? n.id : n.label,
      ]
      if !n.rack.isEmpty { extras["rack"] = n.rack }
      if let u = n.rackUnit { extras["rackUnit"] = u }
      if n.rackUnits > 0 { extras["rackUnits"] = n.rackUnits }
      if let v = n.cpuPercent { extras["cpuPercent"] = v }
      if let v = n.memoryPercent { extras["memoryPercent"] = v }
      if let v = n.temperatureCelsius { extras["temperatureCelsius"] = v }
      var json: [String: Any] = [
        "name": n.id, "mesh": box(material(n.material ?? Material(colorHex: "#95a5a6", opacity: 1))),
        "translation": [p.x, p.y, p.z], "scale": [s.x, s.y, s.z], "extras": extras,
      ]
      if let degrees = rotation[n.rack], degrees != 0 { json["rotation"] = quaternionY(degrees) }
      nodes.append(json)
    }
    let byID = Dictionary(scene.nodes.map { ($0.id, $0.position ?? Vec3()) }, uniquingKeysWith: { a, _ in a })
    for l in scene.links {
      guard let a = byID[l.sourceNode], let b = byID[l.targetNode] else { continue }
      // The cable's routed path; centre to centre only for a scene without one.
      let points = l.waypoints.count >= 2 ? l.waypoints : [a] + l.waypoints + [b]
      var line: [Float] = []
      for p in points { line += [Float(p.x), Float(p.y), Float(p.z)] }
      let v = view(append(line), target: 34962)
      accessors.append([
        "bufferView": v, "componentType": 5126, "count": points.count, "type": "VEC3",
        "min": (0..<3).map { axis in Double(stride(from: axis, to: line.count, by: 3).map { line[$0] }.min() ?? 0) },
        "max": (0..<3).map { axis in Double(stride(from: axis, to: line.count, by: 3).map { line[$0] }.max() ?? 0) },
      ])
      let m = material(l.material ?? Material(colorHex: "#95a5a6", opacity: 1))
      meshes.append(["primitives": [["attributes": ["POSITION": accessors.count - 1], "material": m, "mode": 3]]])
      var extras: [String: Any] = [
        "kind": "link", "rxBitsPerSecond": l.rxBitsPerSecond, "txBitsPerSecond": l.txBitsPerSecond,
        "thickness": l.thickness, "sourceNode": l.sourceNode, "sourcePort": l.sourcePort,
        "targetNode": l.targetNode, "targetPort": l.targetPort,
      ]
      if let u = l.utilizationPercent { extras["utilizationPercent"] = u }
      if let s = l.speedMbps { extras["speedMbps"] = s }
      nodes.append(["name": "link:\(l.id)", "mesh": meshes.count - 1, "extras": extras])
    }
    while bin.count % 4 != 0 { bin.append(0) }
    let gltf: [String: Any] = [
      "asset": ["version": "2.0", "generator": "MIRROR STAGE TwinService"],
      "scene": 0,
      "scenes": [
        [
          "name": "mirror-stage", "nodes": Array(0..<nodes.count),
          "extras": ["sequence": scene.sequence, "legend": Materials.legend],
        ]
      ],
      "nodes": nodes, "meshes": meshes, "materials": materials, "accessors": accessors, "bufferViews": bufferViews,
      "buffers": [
        ["byteLength": bin.count, "uri": "data:application/octet-stream;base64,\(bin.base64EncodedString())"]
      ],
    ]
    let data = (try? JSONSerialization.data(withJSONObject: gltf, options: [.sortedKeys])) ?? Data()
    return [UInt8](data)
  }

  static func rgb(_ hex: String) -> (Double, Double, Double) {
    let digits = hex.hasPrefix("#") ? String(hex.dropFirst()) : hex
    guard digits.count == 6, let v = UInt32(digits, radix: 16) else { return (0.6, 0.6, 0.6) }
    // sRGB to the linear factors glTF wants.
    func linear(_ c: UInt32) -> Double {
      let s = Double(c) / 255
      return s <= 0.04045 ? s / 12.92 : pow((s + 0.055) / 1.055, 2.4)
    }
    return (linear(v >> 16 & 0xFF), linear(v >> 8 & 0xFF), linear(v & 0xFF))
  }
}

/// The scene as JSON: the protobuf message's fields in camelCase, enums by
/// their protobuf names, absent optional values left out (docs/twin.md).
public enum SceneJSON {
  public static func document(_ scene: Scene) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return [UInt8]((try? encoder.encode(scene)) ?? Data())
  }
}
