#!/usr/bin/env python3
"""Emit the Swift wire types for proto/ from a protoc descriptor set.

Each message becomes a Sendable Swift struct whose encode()/init(decoding:)
go through the protobuf-c code that protoc-c generated for the same files.
Usage: gen_swift.py DESCRIPTOR_SET OUT_DIR
"""
import os
import re
import sys

from google.protobuf import descriptor_pb2 as d

F = d.FieldDescriptorProto
SCALARS = {
    F.TYPE_DOUBLE: ("Double", "0"),
    F.TYPE_FLOAT: ("Float", "0"),
    F.TYPE_INT64: ("Int64", "0"),
    F.TYPE_SINT64: ("Int64", "0"),
    F.TYPE_SFIXED64: ("Int64", "0"),
    F.TYPE_UINT64: ("UInt64", "0"),
    F.TYPE_FIXED64: ("UInt64", "0"),
    F.TYPE_INT32: ("Int32", "0"),
    F.TYPE_SINT32: ("Int32", "0"),
    F.TYPE_SFIXED32: ("Int32", "0"),
    F.TYPE_UINT32: ("UInt32", "0"),
    F.TYPE_FIXED32: ("UInt32", "0"),
}
WRAPPERS = {
    ".google.protobuf.DoubleValue": "Double",
    ".google.protobuf.FloatValue": "Float",
    ".google.protobuf.Int64Value": "Int64",
    ".google.protobuf.UInt64Value": "UInt64",
    ".google.protobuf.Int32Value": "Int32",
    ".google.protobuf.UInt32Value": "UInt32",
    ".google.protobuf.BoolValue": "Bool",
}
SWIFT_KEYWORDS = {"default", "protocol", "operator", "repeat", "in", "is", "where", "func", "var",
                  "let", "class", "struct", "enum", "import", "return", "self", "Type", "extension",
                  "internal", "public", "private", "static", "switch", "case", "init", "deinit"}


def camel(snake, upper=False):
    parts = snake.split("_")
    s = parts[0].lower() + "".join(p[:1].upper() + p[1:].lower() for p in parts[1:])
    if upper:
        s = s[:1].upper() + s[1:]
    return s


def c_snake(name):
    """protobuf-c's CamelCase to lower_snake conversion."""
    return re.sub(r"(?<=[^A-Z])([A-Z])", r"_\1", name).lower()


def c_type(package, name):
    return "__".join(p[:1].upper() + p[1:] for p in package.split(".")) + "__" + name


def c_func(package, name):
    return "__".join(package.split(".")) + "__" + c_snake(name)


def swift_ident(name):
    return f"`{name}`" if name in SWIFT_KEYWORDS else name


class Gen:
    def __init__(self, fds):
        self.fds = fds
        self.messages = {}  # full name -> (package, DescriptorProto)
        self.enums = {}  # full name -> (package, EnumDescriptorProto)
        for f in fds.file:
            for m in f.message_type:
                self.messages[f".{f.package}.{m.name}"] = (f.package, m)
            for e in f.enum_type:
                self.enums[f".{f.package}.{e.name}"] = (f.package, e)

    # -- enums --------------------------------------------------------------
    def enum(self, package, e):
        prefix = re.sub(r"(?<!^)([A-Z])", r"_\1", e.name).upper() + "_"
        out = [f"/// `{package}.{e.name}`: an open set, unknown values are kept."]
        out.append(f"public struct {e.name}: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {{")
        out.append("  public var rawValue: Int32")
        out.append("  public init(rawValue: Int32) { self.rawValue = rawValue }")
        names = []
        for v in e.value:
            n = v.name[len(prefix):] if v.name.startswith(prefix) else v.name
            n = swift_ident(camel(n.lower()))
            names.append((n, v.number, v.name))
            out.append(f"  public static let {n} = {e.name}(rawValue: {v.number})")
        out.append("  public var description: String {")
        out.append("    switch rawValue {")
        for n, num, full in names:
            out.append(f"    case {num}: \"{full}\"")
        out.append(f"    default: \"{e.name}(\\(rawValue))\"")
        out.append("    }")
        out.append("  }")
        out.append("  /// JSON as in protobuf's JSON mapping: the value's name, or its number when unknown.")
        out.append("  public func encode(to encoder: any Encoder) throws {")
        out.append("    var c = encoder.singleValueContainer()")
        out.append("    switch rawValue {")
        for n, num, full in names:
            out.append(f"    case {num}: try c.encode(\"{full}\")")
        out.append("    default: try c.encode(rawValue)")
        out.append("    }")
        out.append("  }")
        out.append("  /// Accepts the value's name or its number.")
        out.append("  public init(from decoder: any Decoder) throws {")
        out.append("    let c = try decoder.singleValueContainer()")
        out.append("    if let n = try? c.decode(Int32.self) {")
        out.append("      self.init(rawValue: n)")
        out.append("      return")
        out.append("    }")
        out.append("    switch try c.decode(String.self) {")
        for n, num, full in names:
            out.append(f"    case \"{full}\": self.init(rawValue: {num})")
        out.append(f"    default: throw DecodingError.dataCorruptedError(in: c, debugDescription: \"not a {e.name} name\")")
        out.append("    }")
        out.append("  }")
        out.append("}")
        return "\n".join(out)

    # -- messages -----------------------------------------------------------
    def field_info(self, f):
        """(swift type, default, kind) where kind drives the C bridging."""
        rep = f.label == F.LABEL_REPEATED
        if f.type in SCALARS:
            t, dflt = SCALARS[f.type]
            kind = "scalar"
        elif f.type == F.TYPE_BOOL:
            t, dflt, kind = "Bool", "false", "bool"
        elif f.type == F.TYPE_STRING:
            t, dflt, kind = "String", '""', "string"
        elif f.type == F.TYPE_BYTES:
            t, dflt, kind = "[UInt8]", "[]", "bytes"
        elif f.type == F.TYPE_ENUM:
            t = f.type_name.split(".")[-1]
            dflt, kind = f"{t}(rawValue: 0)", "enum"
        elif f.type == F.TYPE_MESSAGE:
            if f.type_name in WRAPPERS:
                if rep:
                    raise SystemExit(f"repeated wrapper {f.name} is not supported")
                return WRAPPERS[f.type_name] + "?", "nil", "wrapper"
            t = f.type_name.split(".")[-1]
            if rep:
                return f"[{t}]", "[]", "rep_message"
            return t + "?", "nil", "message"
        else:
            raise SystemExit(f"unsupported field type {f.type} ({f.name})")
        if rep:
            if kind == "bytes":
                raise SystemExit(f"repeated bytes {f.name} is not supported")
            return f"[{t}]", "[]", "rep_" + kind
        return t, dflt, kind

    def message(self, package, m):
        full = f"{package}.{m.name}"
        ct, cf = c_type(package, m.name), c_func(package, m.name)
        fields = []
        for f in m.field:
            t, dflt, kind = self.field_info(f)
            fields.append((f, swift_ident(camel(f.name)), t, dflt, kind))
        o = []
        o.append(f"/// `{full}`.")
        o.append(f"public struct {m.name}: WireMessage {{")
        o.append(f"  public static let fullName = \"{full}\"")
        for f, n, t, dflt, kind in fields:
            o.append(f"  public var {n}: {t}")
        if fields:
            params = ", ".join(f"{n}: {t} = {dflt}" for f, n, t, dflt, kind in fields)
            o.append(f"  public init({params}) {{")
            for f, n, t, dflt, kind in fields:
                o.append(f"    self.{n} = {n}")
            o.append("  }")
        else:
            o.append("  public init() {}")
        o.append("}")
        o.append("")
        o.append(f"extension {m.name}: CBridged {{")
        o.append(f"  typealias CStruct = {ct}")
        o.append(f"  static func cPackedSize(_ p: UnsafePointer<{ct}>) -> Int {{ {cf}__get_packed_size(p) }}")
        o.append(f"  static func cPack(_ p: UnsafePointer<{ct}>, _ out: UnsafeMutablePointer<UInt8>) -> Int {{ {cf}__pack(p, out) }}")
        o.append(f"  static func cUnpack(")
        o.append(f"    _ allocator: UnsafeMutablePointer<ProtobufCAllocator>, _ n: Int, _ data: UnsafePointer<UInt8>?")
        o.append(f"  ) -> UnsafeMutablePointer<{ct}>? {{ {cf}__unpack(allocator, n, data) }}")
        o.append("  public func encode() -> [UInt8] { cEncode() }")
        o.append("  public init(decoding bytes: [UInt8], limit: Int) throws(WireError) {")
        o.append("    self = try Self.cDecode(bytes, limit: limit)")
        o.append("  }")
        o.append("")
        # C -> Swift
        o.append(f"  init(c m: {ct}) {{")
        if not fields:
            o.append("    self.init()")
        for f, n, t, dflt, kind in fields:
            cn = f.name
            src = f"m.{cn}"
            if kind == "scalar":
                e = src
            elif kind == "bool":
                e = f"{src} != 0"
            elif kind == "string":
                e = f"wireString({src})"
            elif kind == "bytes":
                e = f"wireBytes({src})"
            elif kind == "enum":
                e = f"{t}(rawValue: wireEnumRaw({src}))"
            elif kind == "wrapper":
                e = f"{src}.map {{ $0.pointee.value{' != 0' if t == 'Bool?' else ''} }}"
            elif kind == "message":
                e = f"{src}.map {{ {t[:-1]}(c: $0.pointee) }}"
            elif kind == "rep_scalar":
                e = f"wireArray({src}, m.n_{cn}) {{ $0 }}"
            elif kind == "rep_bool":
                e = f"wireArray({src}, m.n_{cn}) {{ $0 != 0 }}"
            elif kind == "rep_string":
                e = f"wireArray({src}, m.n_{cn}) {{ wireString($0) }}"
            elif kind == "rep_enum":
                e = f"wireArray({src}, m.n_{cn}) {{ {t[1:-1]}(rawValue: wireEnumRaw($0)) }}"
            elif kind == "rep_message":
                e = f"wireArray({src}, m.n_{cn}) {{ {t[1:-1]}(c: $0!.pointee) }}"
            else:
                raise SystemExit(kind)
            o.append(f"    self.{n} = {e}")
        o.append("  }")
        o.append("")
        # Swift -> C
        o.append(f"  func cValue(_ a: CArena) -> {ct} {{")
        o.append(f"    var m = {ct}()")
        o.append(f"    {cf}__init(&m)")
        for f, n, t, dflt, kind in fields:
            cn = f.name
            if kind == "scalar":
                o.append(f"    m.{cn} = {n}")
            elif kind == "bool":
                o.append(f"    m.{cn} = {n} ? 1 : 0")
            elif kind == "string":
                o.append(f"    m.{cn} = a.string({n})")
            elif kind == "bytes":
                o.append(f"    m.{cn} = a.bytes({n})")
            elif kind == "enum":
                o.append(f"    m.{cn} = wireCEnum({n}.rawValue)")
            elif kind == "wrapper":
                wt = f.type_name.split(".")[-1]
                wct = c_type("google.protobuf", wt)
                wcf = c_func("google.protobuf", wt)
                conv = f"v ? 1 : 0" if t == "Bool?" else "v"
                o.append(f"    if let v = {n} {{")
                o.append(f"      let w = a.allocate({wct}.self)")
                o.append(f"      {wcf}__init(w)")
                o.append(f"      w.pointee.value = {conv}")
                o.append(f"      m.{cn} = w")
                o.append("    }")
            elif kind == "message":
                o.append(f"    if let v = {n} {{ m.{cn} = a.store(v.cValue(a)) }}")
            elif kind.startswith("rep_"):
                o.append(f"    m.n_{cn} = {n}.count")
                if kind == "rep_scalar":
                    o.append(f"    m.{cn} = a.array({n}) {{ $0 }}")
                elif kind == "rep_bool":
                    o.append(f"    m.{cn} = a.array({n}) {{ $0 ? 1 : 0 }}")
                elif kind == "rep_string":
                    o.append(f"    m.{cn} = a.array({n}) {{ a.string($0) }}")
                elif kind == "rep_enum":
                    o.append(f"    m.{cn} = a.array({n}) {{ wireCEnum($0.rawValue) }}")
                elif kind == "rep_message":
                    o.append(f"    m.{cn} = a.array({n}) {{ Optional(a.store($0.cValue(a))) }}")
        o.append("    return m")
        o.append("  }")
        o.append("}")
        return "\n".join(o)

    def file(self, f):
        out = [
            "// Generated by scripts/generate.sh from " + f.name + ". Do not edit.",
            "",
            "internal import CMirrorWire",
            "",
        ]
        for e in f.enum_type:
            out.append(self.enum(f.package, e))
            out.append("")
        for m in f.message_type:
            out.append(self.message(f.package, m))
            out.append("")
        return "\n".join(out).rstrip() + "\n"


def main():
    fds = d.FileDescriptorSet()
    with open(sys.argv[1], "rb") as fh:
        fds.ParseFromString(fh.read())
    out_dir = sys.argv[2]
    g = Gen(fds)
    names = []
    for f in fds.file:
        if not f.package.startswith("mirrorstage."):
            continue
        base = os.path.basename(f.name).replace(".proto", "")
        path = os.path.join(out_dir, base.capitalize() + ".pb.swift")
        with open(path, "w") as fh:
            fh.write(g.file(f))
        for m in f.message_type:
            names.append(m.name)
    with open(os.path.join(out_dir, "AllMessages.pb.swift"), "w") as fh:
        fh.write("// Generated by scripts/generate.sh. Do not edit.\n\n")
        fh.write("/// Every message type of the schema, by full name (for tools that decode any payload).\n")
        fh.write("public let allWireMessageTypes: [any WireMessage.Type] = [\n")
        for n in names:
            fh.write(f"  {n}.self,\n")
        fh.write("]\n")


if __name__ == "__main__":
    main()
