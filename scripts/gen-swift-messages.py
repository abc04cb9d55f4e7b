#!/usr/bin/env python3
"""Generates Swift value types for Protocols/*.proto (run by scripts/gen-proto).

Parses the subset of proto3 Starling uses (scalars, enums, messages, repeated fields,
map<string, double|string|bytes>, services whose rpcs carry a `// method: N` comment) and
writes, for each X.proto:

  Sources/StarlingWire/Messages/Generated/X.swift   structs, enums, C conversions, RPC tables
  Sources/StarlingWire/Messages/Generated/ProtocolInfo.swift   version and the list of RPCs
  Tests/StarlingWireTests/Generated/RandomMessages.swift   random values for round-trip tests

The C names it uses are protoc-c 1.4.1's (see c_name helpers below); the Swift code reaches the
protobuf-c structs through helpers in Sources/StarlingWire/Messages/ProtoSupport.swift.

Usage: gen-swift-messages.py PROTO_DIR SWIFT_OUT_DIR TESTS_OUT_DIR
Python 3 standard library only.
"""

import os
import re
import sys

# --------------------------------------------------------------------------------------------
# Parsing

SCALARS = {
    # proto type: (Swift type, Swift default, C kind)
    "double": ("Double", "0", "num"),
    "float": ("Float", "0", "num"),
    "int32": ("Int32", "0", "num"),
    "int64": ("Int64", "0", "num"),
    "uint32": ("UInt32", "0", "num"),
    "uint64": ("UInt64", "0", "num"),
    "sint32": ("Int32", "0", "num"),
    "sint64": ("Int64", "0", "num"),
    "fixed32": ("UInt32", "0", "num"),
    "fixed64": ("UInt64", "0", "num"),
    "sfixed32": ("Int32", "0", "num"),
    "sfixed64": ("Int64", "0", "num"),
    "bool": ("Bool", "false", "bool"),
    "string": ("String", '""', "string"),
    "bytes": ("[UInt8]", "[]", "bytes"),
}

MAP_VALUES = {"double", "string", "bytes"}


class ProtoError(Exception):
    pass


class Field:
    def __init__(self, name, type_, number, repeated, map_value, doc, line):
        self.name = name
        self.type = type_          # proto type name (for maps: the value type)
        self.number = number
        self.repeated = repeated
        self.map_value = map_value  # True for map<string, type>
        self.doc = doc
        self.line = line


class Message:
    def __init__(self, name, doc, file):
        self.name = name
        self.doc = doc
        self.file = file
        self.fields = []


class Enum:
    def __init__(self, name, doc, file):
        self.name = name
        self.doc = doc
        self.file = file
        self.values = []  # (name, number, doc)


class Rpc:
    def __init__(self, name, request, reply, method, doc, line):
        self.name = name
        self.request = request
        self.reply = reply
        self.method = method
        self.doc = doc
        self.line = line


class Service:
    def __init__(self, name, doc, file):
        self.name = name
        self.doc = doc
        self.file = file
        self.rpcs = []


class ProtoFile:
    def __init__(self, name):
        self.name = name
        self.imports = []
        self.package = None
        self.decls = []  # Message | Enum | Service in file order
        self.protocol_version = None


TOKEN = re.compile(r"""
    (?P<ws>[ \t\r]+) |
    (?P<nl>\n) |
    (?P<comment>//[^\n]*) |
    (?P<block>/\*.*?\*/) |
    (?P<string>"[^"\n]*") |
    (?P<number>-?[0-9]+) |
    (?P<ident>[A-Za-z_][A-Za-z0-9_.]*) |
    (?P<punct>[{}()\[\];=<>,])
""", re.VERBOSE | re.DOTALL)


def tokenize(text, path):
    tokens, comments = [], {}
    line, pos = 1, 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise ProtoError(f"{path}:{line}: unexpected character {text[pos]!r}")
        kind, value = m.lastgroup, m.group()
        if kind == "nl":
            line += 1
        elif kind == "comment":
            comments[line] = value[2:]
        elif kind == "block":
            line += value.count("\n")
        elif kind != "ws":
            tokens.append((kind, value, line))
        pos = m.end()
    return tokens, comments


class Parser:
    def __init__(self, path):
        self.path = path
        with open(path, encoding="utf-8") as f:
            text = f.read()
        self.tokens, self.comments = tokenize(text, path)
        self.i = 0
        self.file = ProtoFile(os.path.basename(path))
        m = re.search(r"^//\s*PROTOCOL_VERSION\s*=\s*([0-9]+)\s*$", text, re.M)
        if m:
            self.file.protocol_version = int(m.group(1))

    def error(self, message, line=None):
        if line is None:
            line = self.tokens[self.i][2] if self.i < len(self.tokens) else "end"
        raise ProtoError(f"{self.path}:{line}: {message}")

    def peek(self):
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def next(self):
        if self.i >= len(self.tokens):
            self.error("unexpected end of file")
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, value):
        tok = self.next()
        if tok[1] != value:
            self.error(f"expected {value!r}, found {tok[1]!r}", tok[2])
        return tok

    def ident(self):
        tok = self.next()
        if tok[0] != "ident":
            self.error(f"expected a name, found {tok[1]!r}", tok[2])
        return tok[1]

    def number(self):
        tok = self.next()
        if tok[0] != "number":
            self.error(f"expected a number, found {tok[1]!r}", tok[2])
        return int(tok[1])

    def doc(self, line):
        """The block of // comment lines directly above `line`."""
        lines = []
        ln = line - 1
        while ln in self.comments:
            lines.insert(0, self.comments[ln])
            ln -= 1
        out = []
        for text in lines:
            if text.startswith(" "):
                text = text[1:]
            out.append(text.rstrip())
        return out

    def parse(self):
        while self.i < len(self.tokens):
            kind, value, line = self.next()
            if value == "syntax":
                self.expect("=")
                tok = self.next()
                if tok[1] != '"proto3"':
                    self.error("only proto3 is supported", tok[2])
                self.expect(";")
            elif value == "package":
                self.file.package = self.ident()
                self.expect(";")
            elif value == "import":
                tok = self.next()
                if tok[0] != "string":
                    self.error("expected a file name after import", tok[2])
                self.file.imports.append(tok[1][1:-1])
                self.expect(";")
            elif value == "message":
                self.file.decls.append(self.message(line))
            elif value == "enum":
                self.file.decls.append(self.enum(line))
            elif value == "service":
                self.file.decls.append(self.service(line))
            elif value == "option":
                self.error("options are not supported by gen-swift-messages.py", line)
            else:
                self.error(f"unexpected {value!r}", line)
        if self.file.package != "starling":
            self.error("every file must say `package starling;`")
        return self.file

    def message(self, line):
        msg = Message(self.ident(), self.doc(line), self.file.name)
        self.expect("{")
        numbers, names = set(), set()
        while self.peek() != "}":
            kind, value, fline = self.next()
            if value in ("message", "enum", "oneof", "extensions", "reserved", "option",
                         "optional", "required", "group", "extend"):
                self.error(f"`{value}` inside a message is not supported "
                           "(top-level messages and enums only; no oneof; proto3 optional is "
                           "rejected by protoc-c 1.4.1)", fline)
            repeated, map_value = False, False
            if value == "repeated":
                repeated = True
                kind, value, fline = self.next()
            if value == "map":
                self.expect("<")
                key = self.ident()
                self.expect(",")
                type_ = self.ident()
                self.expect(">")
                if key != "string" or type_ not in MAP_VALUES:
                    self.error("only map<string, double|string|bytes> is supported", fline)
                map_value = True
                if repeated:
                    self.error("repeated map", fline)
            else:
                if kind != "ident":
                    self.error(f"expected a field type, found {value!r}", fline)
                type_ = value
            name = self.ident()
            self.expect("=")
            number = self.number()
            if self.peek() == "[":
                self.error("field options are not supported", fline)
            self.expect(";")
            if number in numbers or name in names:
                self.error(f"duplicate field {name} = {number} in {msg.name}", fline)
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                self.error(f"field names are lower_snake_case: {name}", fline)
            numbers.add(number)
            names.add(name)
            msg.fields.append(Field(name, type_, number, repeated, map_value,
                                    self.doc(fline), fline))
        self.expect("}")
        return msg

    def enum(self, line):
        en = Enum(self.ident(), self.doc(line), self.file.name)
        self.expect("{")
        while self.peek() != "}":
            kind, value, vline = self.next()
            if kind != "ident":
                self.error(f"expected an enum value, found {value!r}", vline)
            self.expect("=")
            number = self.number()
            if self.peek() == "[":
                self.error("enum value options are not supported", vline)
            self.expect(";")
            en.values.append((value, number, self.doc(vline)))
        self.expect("}")
        if not en.values or en.values[0][1] != 0:
            self.error(f"enum {en.name}: the first value must be 0", line)
        return en

    def service(self, line):
        svc = Service(self.ident(), self.doc(line), self.file.name)
        self.expect("{")
        while self.peek() != "}":
            kind, value, rline = self.next()
            if value != "rpc":
                self.error(f"expected rpc, found {value!r}", rline)
            name = self.ident()
            self.expect("(")
            if self.peek() == "stream":
                self.error("streaming rpcs are not supported", rline)
            request = self.ident()
            self.expect(")")
            self.expect("returns")
            self.expect("(")
            if self.peek() == "stream":
                self.error("streaming rpcs are not supported", rline)
            reply = self.ident()
            self.expect(")")
            if self.peek() == "{":
                self.error("rpc options are not supported", rline)
            self.expect(";")
            doc = self.doc(rline)
            method = None
            rest = []
            for text in doc:
                m = re.fullmatch(r"method:\s*([0-9]+)", text.strip())
                if m:
                    method = int(m.group(1))
                else:
                    rest.append(text)
            if method is None:
                self.error(f"rpc {name} needs a `// method: N` line in its doc comment", rline)
            svc.rpcs.append(Rpc(name, request, reply, method, rest, rline))
        self.expect("}")
        return svc


# --------------------------------------------------------------------------------------------
# Names

SWIFT_KEYWORDS = {
    "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import",
    "init", "inout", "internal", "let", "open", "operator", "private", "precedencegroup",
    "protocol", "public", "rethrows", "static", "struct", "subscript", "typealias", "var",
    "break", "case", "catch", "continue", "default", "defer", "do", "else", "fallthrough",
    "for", "guard", "if", "in", "repeat", "return", "throw", "switch", "where", "while", "as",
    "false", "is", "nil", "self", "Self", "super", "throws", "true", "try", "Any", "Type",
    "some", "any", "await", "consume", "copy", "borrowing", "consuming", "discard", "each",
}

# protoc-c appends "_" to field names that are C++ keywords (FieldName in c_helpers.cc).
CPP_KEYWORDS = {
    "NULL", "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool",
    "break", "case", "catch", "char", "class", "compl", "const", "constexpr", "const_cast",
    "continue", "decltype", "default", "delete", "do", "double", "dynamic_cast", "else", "enum",
    "explicit", "export", "extern", "false", "float", "for", "friend", "goto", "if", "inline",
    "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq", "nullptr",
    "operator", "or", "or_eq", "private", "protected", "public", "register",
    "reinterpret_cast", "return", "short", "signed", "sizeof", "static", "static_assert",
    "static_cast", "struct", "switch", "template", "this", "thread_local", "throw", "true",
    "try", "typedef", "typeid", "typename", "union", "unsigned", "virtual", "void", "volatile",
    "wchar_t", "while", "xor", "xor_eq",
}


def swift_ident(name):
    return f"`{name}`" if name in SWIFT_KEYWORDS else name


def lower_camel(snake):
    parts = [p for p in snake.split("_") if p]
    if not parts:
        return "_"
    out = parts[0].lower() + "".join(p[:1].upper() + p[1:].lower() for p in parts[1:])
    if out[0].isdigit():
        out = "_" + out
    return out


def field_lower_camel(snake):
    parts = snake.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def upper_snake(camel):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", camel).upper()


def camel_to_lower(name):
    """protoc-c's CamelToLower: '_' before an upper-case letter that follows a non-upper one."""
    out, was_upper = "", True
    for ch in name:
        is_upper = ch.isupper()
        if is_upper:
            if not was_upper:
                out += "_"
            out += ch.lower()
        else:
            out += ch
        was_upper = is_upper
    return out


def map_entry_name(field_name):
    """protobuf's map entry message name: field name in UpperCamel + 'Entry'."""
    out, upper_next = "", True
    for ch in field_name:
        if ch == "_":
            upper_next = True
        elif upper_next:
            out += ch.upper()
            upper_next = False
        else:
            out += ch
    return out + "Entry"


def c_type(msg_name):
    return f"Starling__{msg_name}"


def c_func(msg_name, suffix):
    return f"starling__{camel_to_lower(msg_name)}__{suffix}"


def c_field(name):
    name = name.lower()
    return name + "_" if name in CPP_KEYWORDS else name


def doc_lines(doc, indent):
    # `field_name` in a comment becomes the Swift property's name, `fieldName`.
    swiftify = lambda m: "`" + field_lower_camel(m.group(1)) + "`"
    lines = [re.sub(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`", swiftify, line) for line in doc]
    return [f"{indent}///" + (f" {line}" if line else "") for line in lines]


# --------------------------------------------------------------------------------------------
# Model checks


class Model:
    def __init__(self, files):
        self.files = files
        self.messages, self.enums = {}, {}
        for f in files:
            for d in f.decls:
                if isinstance(d, (Message, Enum)):
                    if d.name in self.messages or d.name in self.enums:
                        raise ProtoError(f"{f.name}: {d.name} is defined twice")
                    (self.messages if isinstance(d, Message) else self.enums)[d.name] = d
        self.check()

    def kind(self, type_):
        if type_ in SCALARS:
            return "scalar"
        if type_ in self.enums:
            return "enum"
        if type_ in self.messages:
            return "message"
        raise ProtoError(f"unknown type {type_}")

    def check(self):
        methods = {}
        versions = [f.protocol_version for f in self.files if f.protocol_version is not None]
        if len(versions) != 1:
            raise ProtoError("exactly one file must say `// PROTOCOL_VERSION = N`")
        self.protocol_version = versions[0]
        if "Status" not in self.messages or "StatusCode" not in self.enums:
            raise ProtoError("common.proto must define Status and StatusCode")
        for msg in self.messages.values():
            for f in msg.fields:
                try:
                    self.kind(f.type)
                except ProtoError as e:
                    raise ProtoError(f"{msg.file}:{f.line}: {e}")
            if msg.name.endswith("Reply"):
                first = msg.fields[0] if msg.fields else None
                if not (first and first.name == "status" and first.type == "Status"
                        and first.number == 1 and not first.repeated):
                    raise ProtoError(f"{msg.file}: {msg.name} must start with "
                                     "`Status status = 1;` (ErrorReply decodes as any reply)")
        for en in self.enums.values():
            prefix = upper_snake(en.name) + "_"
            expected_zero = "STATUS_CODE_OK" if en.name == "StatusCode" else prefix + "UNSPECIFIED"
            if en.values[0][0] != expected_zero:
                raise ProtoError(f"{en.file}: enum {en.name}: value 0 must be {expected_zero}")
            for value, _, _ in en.values:
                if not value.startswith(prefix):
                    raise ProtoError(f"{en.file}: enum value {value} must start with {prefix}")
        for f in self.files:
            for d in f.decls:
                if not isinstance(d, Service):
                    continue
                for rpc in d.rpcs:
                    where = f"{f.name}:{rpc.line}"
                    if rpc.request != rpc.name + "Request" or rpc.reply != rpc.name + "Reply":
                        raise ProtoError(f"{where}: rpc {rpc.name} must be "
                                         f"{rpc.name}({rpc.name}Request) returns ({rpc.name}Reply)")
                    for t in (rpc.request, rpc.reply):
                        if t not in self.messages:
                            raise ProtoError(f"{where}: unknown message {t}")
                    if rpc.method in methods:
                        raise ProtoError(f"{where}: method {rpc.method} is already used by "
                                         f"{methods[rpc.method]}")
                    methods[rpc.method] = f"{d.name}.{rpc.name}"
        # No message may contain itself (the random generator and Swift value types need it).
        for name in self.messages:
            self.check_acyclic(name, [])

    def check_acyclic(self, name, stack):
        if name in stack:
            raise ProtoError("recursive messages are not supported: " + " -> ".join(stack + [name]))
        for f in self.messages[name].fields:
            if not f.map_value and f.type in self.messages:
                self.check_acyclic(f.type, stack + [name])

    def swift_type(self, f):
        kind = self.kind(f.type)
        base = SCALARS[f.type][0] if kind == "scalar" else f.type
        if f.map_value:
            return f"[String: {base}]"
        if f.repeated:
            return f"[{base}]"
        if kind == "message":
            return f"{base}?"
        return base

    def swift_default(self, f):
        kind = self.kind(f.type)
        if f.map_value:
            return "[:]"
        if f.repeated:
            return "[]"
        if kind == "message":
            return "nil"
        if kind == "enum":
            return "." + enum_case_name(self.enums[f.type], self.enums[f.type].values[0][0])
        return SCALARS[f.type][1]

    def is_reply(self, msg):
        return msg.name.endswith("Reply")


def enum_case_name(en, value):
    prefix = upper_snake(en.name) + "_"
    return lower_camel(value[len(prefix):])


# --------------------------------------------------------------------------------------------
# Swift: messages and enums

HEADER = """// Generated by scripts/gen-swift-messages.py from Protocols/{src}. DO NOT EDIT.
// Regenerate with scripts/gen-proto after changing the .proto file.
"""


def gen_enum(model, en, out):
    out += doc_lines(en.doc, "")
    out.append(f"public enum {en.name}: Int32, Sendable, CaseIterable {{")
    for value, number, doc in en.values:
        out += doc_lines(doc, "    ")
        out.append(f"    case {swift_ident(enum_case_name(en, value))} = {number}")
    out.append("}")
    out.append("")
    zero = swift_ident(enum_case_name(en, en.values[0][0]))
    ct = c_type(en.name)
    out.append(f"extension {en.name} {{")
    out.append(f"    init(c: {ct}) {{ self = Self(rawValue: Int32(bitPattern: c.rawValue)) ?? .{zero} }}")
    out.append(f"    var cValue: {ct} {{ {ct}(rawValue: UInt32(bitPattern: rawValue)) }}")
    out.append("}")
    out.append("")


def decode_expr(model, msg, f):
    """Swift expression reading field f from the C struct value `c`."""
    cf = c_field(f.name)
    kind = model.kind(f.type)
    if f.map_value:
        value = {"double": "$0.value", "string": "protoString($0.value)",
                 "bytes": "protoBytes($0.value)"}[f.type]
        return f"protoMap(c.n_{cf}, c.{cf}) {{ (protoString($0.key), {value}) }}"
    if f.repeated:
        if kind == "message":
            return f"protoMessages(c.n_{cf}, c.{cf})"
        if kind == "enum":
            return f"protoArray(c.n_{cf}, c.{cf}) {{ {f.type}(c: $0) }}"
        ck = SCALARS[f.type][2]
        if ck == "string":
            return f"protoArray(c.n_{cf}, c.{cf}) {{ protoString($0) }}"
        if ck == "bytes":
            return f"protoArray(c.n_{cf}, c.{cf}) {{ protoBytes($0) }}"
        if ck == "bool":
            return f"protoArray(c.n_{cf}, c.{cf}) {{ $0 != 0 }}"
        return f"protoArray(c.n_{cf}, c.{cf})"
    if kind == "message":
        return f"protoMessage(c.{cf})"
    if kind == "enum":
        return f"{f.type}(c: c.{cf})"
    ck = SCALARS[f.type][2]
    if ck == "string":
        return f"protoString(c.{cf})"
    if ck == "bytes":
        return f"protoBytes(c.{cf})"
    if ck == "bool":
        return f"c.{cf} != 0"
    return f"c.{cf}"


def encode_lines(model, msg, f):
    """Swift statements writing field f into the C struct pointer `c`, allocating from `a`."""
    cf = c_field(f.name)
    sw = "self." + swift_ident(field_lower_camel(f.name))
    kind = model.kind(f.type)
    dst = f"c.pointee.{cf}"
    cnt = f"c.pointee.n_{cf}"
    if f.map_value:
        entry_init = f"starling__{camel_to_lower(msg.name)}__{camel_to_lower(map_entry_name(f.name))}__init"
        value = {"double": "v", "string": "a.string(v)", "bytes": "a.bytes(v)"}[f.type]
        return [f"{cnt} = {sw}.count",
                f"{dst} = a.map({sw}, {entry_init}) {{ e, k, v in e.pointee.key = a.string(k); e.pointee.value = {value} }}"]
    if f.repeated:
        if kind == "message":
            rhs = f"a.messages({sw})"
        elif kind == "enum":
            rhs = f"a.array({sw}) {{ $0.cValue }}"
        else:
            ck = SCALARS[f.type][2]
            rhs = {"string": f"a.array({sw}) {{ a.string($0) }}",
                   "bytes": f"a.array({sw}) {{ a.bytes($0) }}",
                   "bool": f"a.array({sw}) {{ $0 ? 1 : 0 }}",
                   "num": f"a.array({sw})"}[ck]
        return [f"{cnt} = {sw}.count", f"{dst} = {rhs}"]
    if kind == "message":
        return [f"{dst} = a.message({sw})"]
    if kind == "enum":
        return [f"{dst} = {sw}.cValue"]
    ck = SCALARS[f.type][2]
    rhs = {"string": f"a.string({sw})", "bytes": f"a.bytes({sw})",
           "bool": f"{sw} ? 1 : 0", "num": sw}[ck]
    return [f"{dst} = {rhs}"]


def gen_message(model, msg, out):
    name = msg.name
    out += doc_lines(msg.doc, "")
    out.append(f"public struct {name}: ProtoMessage {{")
    out.append(f"    public static var protoName: String {{ \"starling.{name}\" }}")
    out.append("")
    for f in msg.fields:
        out += doc_lines(f.doc, "    ")
        out.append(f"    public var {swift_ident(field_lower_camel(f.name))}: "
                   f"{model.swift_type(f)} = {model.swift_default(f)}")
    if msg.fields:
        out.append("")
    out.append("    public init() {}")
    if msg.fields:
        out.append("")
        params = ", ".join(f"{swift_ident(field_lower_camel(f.name))}: {model.swift_type(f)}"
                           f" = {model.swift_default(f)}" for f in msg.fields)
        out.append(f"    public init({params}) {{")
        for f in msg.fields:
            n = swift_ident(field_lower_camel(f.name))
            out.append(f"        self.{n} = {n}")
        out.append("    }")
    out.append("")
    out.append("    public func pack(into allocate: (Int) throws -> UnsafeMutableRawPointer) rethrows {")
    out.append("        try protoPack(self, allocate)")
    out.append("    }")
    out.append("")
    out.append("    public init(unpacking bytes: UnsafeRawBufferPointer) throws {")
    out.append(f"        self = try protoUnpack(bytes, {c_func(name, 'unpack')})")
    out.append("    }")
    out.append("}")
    out.append("")
    conformances = "ProtoCBacked"
    if model.is_reply(msg):
        conformances += ", ProtoReply"
    out.append(f"extension {name}: {conformances} {{")
    if msg.fields:
        out.append(f"    init(c p: UnsafePointer<{c_type(name)}>) {{")
        out.append("        let c = p.pointee")
        for f in msg.fields:
            out.append(f"        self.{swift_ident(field_lower_camel(f.name))} = {decode_expr(model, msg, f)}")
        out.append("    }")
    else:
        out.append(f"    init(c p: UnsafePointer<{c_type(name)}>) {{}}")
    out.append("")
    out.append(f"    func fill(_ c: UnsafeMutablePointer<{c_type(name)}>, _ a: ProtoArena) {{")
    out.append(f"        {c_func(name, 'init')}(c)")
    for f in msg.fields:
        for line in encode_lines(model, msg, f):
            out.append("        " + line)
    out.append("    }")
    out.append("}")
    out.append("")


def gen_service(model, svc, out):
    out += doc_lines(svc.doc, "")
    out.append(f"/// The RPCs of service `{svc.name}`.")
    out.append(f"public enum {svc.name}RPC {{")
    for rpc in svc.rpcs:
        out += doc_lines(rpc.doc, "    ")
        out.append(f"    public static let {swift_ident(field_lower_camel(camel_to_lower(rpc.name)))} = "
                   f"RPC<{rpc.request}, {rpc.reply}>(method: {rpc.method}, "
                   f"name: \"{svc.name}.{rpc.name}\")")
    out.append("}")
    out.append("")


def gen_swift_file(model, pf):
    out = [HEADER.format(src=pf.name), "import CProtobufC", "import StarlingProtoC", ""]
    for d in pf.decls:
        if isinstance(d, Enum):
            gen_enum(model, d, out)
    for d in pf.decls:
        if isinstance(d, Message):
            gen_message(model, d, out)
    for d in pf.decls:
        if isinstance(d, Service):
            gen_service(model, d, out)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def gen_protocol_info(model):
    out = [HEADER.format(src="*.proto"),
           "/// The wire protocol version (PROTOCOL_VERSION in Protocols/common.proto), compared by",
           "/// `Handshake.Hello`: peers with another version are refused.",
           f"public let starlingProtocolVersion: UInt32 = {model.protocol_version}",
           "",
           "/// Every RPC of every service, by method number: for dispatch tables, logs and tests.",
           "public let allRPCs: [(method: UInt32, name: String)] = ["]
    rpcs = []
    for pf in model.files:
        for d in pf.decls:
            if isinstance(d, Service):
                rpcs += [(r.method, f"{d.name}.{r.name}") for r in d.rpcs]
    for method, name in sorted(rpcs):
        out.append(f"    ({method}, \"{name}\"),")
    out.append("]")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Swift: random values for the round-trip tests

RANDOM_HELPERS = """
/// SplitMix64: a small seeded generator, so a failing round trip can be replayed.
struct ProtoTestRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private let sampleStrings = [
    "", "a", "node-1", "héllo wörld", "日本語のテキスト", "emoji 🚀🧪", "e\\u{301}", "tab\\tnew\\nline",
    "quote \\"' \\\\ backslash", String(repeating: "x", count: 300),
]

func rString(_ rng: inout some RandomNumberGenerator) -> String {
    if Bool.random(using: &rng) { return sampleStrings.randomElement(using: &rng)! }
    let scalars = (0..<Int.random(in: 0...24, using: &rng)).map { _ -> Character in
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return Character(Unicode.Scalar(UInt8.random(in: 1...127, using: &rng)))
        case 1: return Character(Unicode.Scalar(UInt32.random(in: 0xA0...0x7FF, using: &rng))!)
        case 2: return Character(Unicode.Scalar(UInt32.random(in: 0x3040...0x9FFF, using: &rng))!)
        default: return Character(Unicode.Scalar(UInt32.random(in: 0x1F300...0x1F64F, using: &rng))!)
        }
    }
    return String(scalars)
}

func rBytes(_ rng: inout some RandomNumberGenerator) -> [UInt8] {
    let count: Int
    switch Int.random(in: 0..<8, using: &rng) {
    case 0: return []
    case 1: return [UInt8](repeating: 0, count: Int.random(in: 1...8, using: &rng))
    case 2: count = Int.random(in: 0...1500, using: &rng)
    default: count = Int.random(in: 0...40, using: &rng)
    }
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBytes { buffer in
        var word = rng.next()
        for i in 0..<buffer.count {
            if i % 8 == 0 { word = rng.next() }
            buffer[i] = UInt8(truncatingIfNeeded: word >> ((i % 8) * 8))
        }
    }
    return out
}

func rInt<T: FixedWidthInteger>(_ rng: inout some RandomNumberGenerator) -> T {
    switch Int.random(in: 0..<6, using: &rng) {
    case 0: return 0
    case 1: return T.max
    case 2: return T.min
    case 3: return T.random(in: T.min...T.max, using: &rng)
    case 4: return T(truncatingIfNeeded: Int8.random(in: -1...1, using: &rng))
    default: return T(truncatingIfNeeded: Int.random(in: 0...1000, using: &rng))
    }
}

func rFloat<T: BinaryFloatingPoint>(_ rng: inout some RandomNumberGenerator) -> T
where T.RawSignificand: FixedWidthInteger {
    switch Int.random(in: 0..<8, using: &rng) {
    case 0: return 0
    case 1: return -0.0
    case 2: return T.infinity
    case 3: return -T.infinity
    case 4: return T.greatestFiniteMagnitude
    case 5: return T.leastNonzeroMagnitude
    default: return T.random(in: -1e6...1e6, using: &rng)
    }
}

func rBool(_ rng: inout some RandomNumberGenerator) -> Bool { Bool.random(using: &rng) }

func rEnum<E: CaseIterable>(_ rng: inout some RandomNumberGenerator) -> E {
    E.allCases.randomElement(using: &rng)!
}

func rMessage<R: RandomNumberGenerator, M>(_ rng: inout R, _ make: (inout R) -> M) -> M? {
    Int.random(in: 0..<4, using: &rng) == 0 ? nil : make(&rng)
}

func rList<R: RandomNumberGenerator, T>(_ rng: inout R, _ make: (inout R) -> T) -> [T] {
    let n = Int.random(in: 0..<8, using: &rng) < 2 ? 0 : Int.random(in: 1...4, using: &rng)
    return (0..<n).map { _ in make(&rng) }
}

func rMap<R: RandomNumberGenerator, T>(_ rng: inout R, _ make: (inout R) -> T) -> [String: T] {
    var out: [String: T] = [:]
    for _ in 0..<(Int.random(in: 0..<3, using: &rng) == 0 ? 0 : Int.random(in: 1...4, using: &rng)) {
        out[rString(&rng)] = make(&rng)
    }
    return out
}

/// Packs, unpacks and compares one value: nil when equal, else a description of the difference.
func roundTripMismatch<M: ProtoMessage>(_ message: M) throws -> String? {
    let bytes = message.serializedBytes()
    let back = try M(serializedBytes: bytes)
    return back == message ? nil : "\\(M.protoName) changed in a round trip of \\(bytes.count) bytes:\\n  sent \\(message)\\n  got  \\(back)"
}
"""


def random_expr(model, f):
    kind = model.kind(f.type)
    if kind == "message":
        one = f"{f.type}.random(using: &$0)"
    elif kind == "enum":
        one = "rEnum(&$0)"
    else:
        ck = SCALARS[f.type][2]
        if ck == "num":
            one = "rFloat(&$0)" if f.type in ("double", "float") else "rInt(&$0)"
        else:
            one = {"string": "rString(&$0)", "bytes": "rBytes(&$0)", "bool": "rBool(&$0)"}[ck]
    if f.map_value:
        return f"rMap(&rng) {{ {one} }}"
    if f.repeated:
        return f"rList(&rng) {{ {one} }}"
    if kind == "message":
        return f"rMessage(&rng) {{ {one} }}"
    return one.replace("&$0", "&rng")


def gen_random(model):
    out = [HEADER.format(src="*.proto"), "import StarlingWire", RANDOM_HELPERS]
    messages = [d for pf in model.files for d in pf.decls if isinstance(d, Message)]
    for msg in messages:
        out.append(f"extension {msg.name} {{")
        out.append(f"    static func random(using rng: inout some RandomNumberGenerator) -> {msg.name} {{")
        if not msg.fields:
            out.append(f"        {msg.name}()")
        else:
            out.append(f"        var m = {msg.name}()")
            for f in msg.fields:
                out.append(f"        m.{swift_ident(field_lower_camel(f.name))} = {random_expr(model, f)}")
            out.append("        return m")
        out.append("    }")
        out.append("}")
        out.append("")
    out.append("/// One round trip of a random value, for every message type.")
    out.append("let allMessageRoundTrips: [(name: String, "
               "check: @Sendable (inout ProtoTestRNG) throws -> String?)] = [")
    for msg in messages:
        out.append(f"    (\"{msg.name}\", {{ try roundTripMismatch({msg.name}.random(using: &$0)) }}),")
    out.append("]")
    out.append("")
    out.append("/// Decodes bytes as each reply type and returns its status (ErrorReply compatibility).")
    out.append("let allReplyStatusDecoders: [(name: String, "
               "decode: @Sendable ([UInt8]) throws -> Status?)] = [")
    for msg in messages:
        if model.is_reply(msg):
            out.append(f"    (\"{msg.name}\", {{ try {msg.name}(serializedBytes: $0).status }}),")
    out.append("]")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------


def main(argv):
    if len(argv) != 4:
        print("usage: gen-swift-messages.py PROTO_DIR SWIFT_OUT_DIR TESTS_OUT_DIR", file=sys.stderr)
        return 2
    proto_dir, swift_out, tests_out = argv[1:]
    paths = sorted(os.path.join(proto_dir, n) for n in os.listdir(proto_dir) if n.endswith(".proto"))
    try:
        files = [Parser(p).parse() for p in paths]
        model = Model(files)
    except ProtoError as e:
        print(f"gen-swift-messages: {e}", file=sys.stderr)
        return 1
    os.makedirs(swift_out, exist_ok=True)
    os.makedirs(tests_out, exist_ok=True)
    outputs = {os.path.join(swift_out, pf.name[:-len(".proto")] + ".swift"): gen_swift_file(model, pf)
               for pf in files}
    outputs[os.path.join(swift_out, "ProtocolInfo.swift")] = gen_protocol_info(model)
    outputs[os.path.join(tests_out, "RandomMessages.swift")] = gen_random(model)
    for path, text in outputs.items():
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
