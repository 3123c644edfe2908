#!/usr/bin/env python3
"""Interop check of our protobuf-c encoding against Google's Python protobuf.

  interop.py SWIFT_DIR OUT_DIR

Generates Python classes from proto/ with `protoc --python_out`, builds every
message of mirrorstage.v1 by the sample rule (see Tests/TestSupport/
SampleDecoder.swift; implemented here independently, from the descriptors),
and:
  1. parses SWIFT_DIR/<full name>.bin (encoded by our Swift/protobuf-c code)
     and checks it equals the sample built here;
  2. writes the sample serialized by Python to OUT_DIR/<full name>.bin, for
     the Swift side to decode and compare.
Exit status 0 only if every message type was present and equal.
"""
import glob
import importlib
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor as D
from google.protobuf import text_format

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FD = D.FieldDescriptor
WRAPPERS = {
    "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
}


def h(name):
    return sum((i + 1) * b for i, b in enumerate(name.encode())) % 100000 + 1


def scalar(ftype, name, index):
    i = index or 0
    if ftype == FD.TYPE_STRING:
        return f"{name}-{index}" if index is not None else f"{name}-ü✓"
    if ftype in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return -h(name) + i
    if ftype in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return -h(name) * 1000003 + i
    if ftype in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return h(name) + i
    if ftype in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return h(name) * 4000000007 + i
    if ftype == FD.TYPE_DOUBLE:
        return h(name) + 0.25 + i
    if ftype == FD.TYPE_FLOAT:
        return h(name) + 0.5 + i
    if ftype == FD.TYPE_BOOL:
        return True
    if ftype == FD.TYPE_BYTES:
        return bytes([h(name) % 256, 0])
    raise SystemExit(f"no sample rule for type {ftype} ({name})")


def fill(msg):
    for f in msg.DESCRIPTOR.fields:
        name = f.json_name
        if f.type == FD.TYPE_MESSAGE and f.message_type.full_name in WRAPPERS:
            inner = f.message_type.fields_by_name["value"]
            getattr(msg, f.name).value = scalar(inner.type, name, None)
        elif f.label == FD.LABEL_REPEATED:
            target = getattr(msg, f.name)
            for i in range(2):
                if f.type == FD.TYPE_MESSAGE:
                    fill(target.add())
                elif f.type == FD.TYPE_ENUM:
                    target.append(i + 1)
                else:
                    target.append(scalar(f.type, name, i))
        elif f.type == FD.TYPE_MESSAGE:
            sub = getattr(msg, f.name)
            sub.SetInParent()
            fill(sub)
        elif f.type == FD.TYPE_ENUM:
            setattr(msg, f.name, 1)
        else:
            setattr(msg, f.name, scalar(f.type, name, None))
    return msg


def load_modules(tmp):
    protos = sorted(glob.glob(os.path.join(ROOT, "proto/mirrorstage/v1/*.proto")))
    subprocess.run(["protoc", f"--python_out={tmp}", f"-I{ROOT}/proto", "-I/usr/include", *protos], check=True)
    sys.path.insert(0, tmp)
    mods = []
    for p in protos:
        base = os.path.basename(p)[:-len(".proto")]
        mods.append(importlib.import_module(f"mirrorstage.v1.{base}_pb2"))
    return mods


def main():
    swift_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    failures = []
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for mod in load_modules(tmp):
            for name, desc in mod.DESCRIPTOR.message_types_by_name.items():
                cls = getattr(mod, name)
                expected = fill(cls())
                full = desc.full_name
                with open(os.path.join(out_dir, full + ".bin"), "wb") as fh:
                    fh.write(expected.SerializeToString())
                path = os.path.join(swift_dir, full + ".bin")
                if not os.path.exists(path):
                    failures.append(f"{full}: no Swift encoding was written")
                    continue
                parsed = cls()
                with open(path, "rb") as fh:
                    parsed.ParseFromString(fh.read())
                checked += 1
                if parsed != expected:
                    failures.append(
                        f"{full}: Swift bytes decode differently\n--- python sample\n"
                        + text_format.MessageToString(expected)
                        + "--- decoded from Swift\n"
                        + text_format.MessageToString(parsed))
    for f in failures:
        print("FAIL", f)
    print(f"interop: {checked} message types checked, {len(failures)} failed")
    sys.exit(1 if failures or checked == 0 else 0)


if __name__ == "__main__":
    main()
