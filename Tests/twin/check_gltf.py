"""Checks a glTF 2.0 file with an independent reader (pygltflib): it loads,
passes pygltflib's validator, every accessor fits its buffer view and the
buffer, and the named nodes are there. Prints one JSON line with what it
found; exits 1 with the reason otherwise.

    python3 check_gltf.py FILE [NODE_NAME ...]
"""
import json
import struct
import sys

import pygltflib
from pygltflib.validator import validate

path, expected = sys.argv[1], sys.argv[2:]
gltf = pygltflib.GLTF2().load(path)
validate(gltf)  # raises on a structural problem
if gltf.asset.version != "2.0":
    sys.exit(f"asset version {gltf.asset.version}")
blob = gltf.get_data_from_buffer_uri(gltf.buffers[0].uri)
if len(blob) != gltf.buffers[0].byteLength:
    sys.exit(f"buffer is {len(blob)} bytes, byteLength says {gltf.buffers[0].byteLength}")
sizes = {5126: 4, 5123: 2, 5125: 4}
widths = {"SCALAR": 1, "VEC3": 3}
for i, a in enumerate(gltf.accessors):
    view = gltf.bufferViews[a.bufferView]
    need = (a.byteOffset or 0) + a.count * sizes[a.componentType] * widths[a.type]
    if need > view.byteLength or view.byteOffset + view.byteLength > len(blob):
        sys.exit(f"accessor {i} overruns its view")
    if a.type == "VEC3" and a.min:
        floats = struct.unpack_from(f"<{a.count * 3}f", blob, view.byteOffset + (a.byteOffset or 0))
        for axis in range(3):
            values = floats[axis::3]
            if len(a.min) != 3 or len(a.max) != 3:
                sys.exit(f"accessor {i} min/max have {a.min} {a.max}")
            if abs(min(values) - a.min[axis]) > 1e-4 or abs(max(values) - a.max[axis]) > 1e-4:
                sys.exit(f"accessor {i} min/max do not match its data")
names = [n.name for n in gltf.nodes]
missing = [n for n in expected if n not in names]
if missing:
    sys.exit(f"missing nodes: {missing}")
for n in gltf.nodes:
    if n.mesh is None or n.mesh >= len(gltf.meshes):
        sys.exit(f"node {n.name} has no mesh")
print(json.dumps({
    "nodes": len(gltf.nodes), "meshes": len(gltf.meshes), "materials": len(gltf.materials),
    "names": names, "extras": {n.name: n.extras for n in gltf.nodes},
}))
