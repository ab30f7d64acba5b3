"""Model of Apache Kafka's JSON message schemas (the stripped form in src/protocol/messages/).

A schema has apiKey, type (request/response/header/data), name, validVersions, flexibleVersions,
fields and optionally commonStructs. See docs/kafka_apis.md and
../shared/kafka-protocol/README.md for the format. Python 3 standard library only.
"""

import json
import re

PRIMITIVES = {
    # kafka type: (C++ type, fixed wire size, reader suffix)
    "bool": ("bool", 1, "bool"),
    "int8": ("std::int8_t", 1, "int8"),
    "int16": ("std::int16_t", 2, "int16"),
    "uint16": ("std::uint16_t", 2, "uint16"),
    "int32": ("std::int32_t", 4, "int32"),
    "uint32": ("std::uint32_t", 4, "uint32"),
    "int64": ("std::int64_t", 8, "int64"),
    "float64": ("double", 8, "float64"),
    "uuid": ("Uuid", 16, "uuid"),
}

CPP_KEYWORDS = {
    "alignas", "alignof", "and", "asm", "auto", "bool", "break", "case", "catch", "char",
    "class", "const", "continue", "default", "delete", "do", "double", "else", "enum",
    "explicit", "export", "extern", "false", "float", "for", "friend", "goto", "if", "inline",
    "int", "long", "mutable", "namespace", "new", "not", "operator", "or", "private",
    "protected", "public", "register", "return", "short", "signed", "sizeof", "static",
    "struct", "switch", "template", "this", "throw", "true", "try", "typedef", "union",
    "unsigned", "using", "virtual", "void", "volatile", "while", "xor",
    # names the generated code itself uses
    "in", "out", "ver", "flex", "rng", "decode", "encode", "min_wire_size",
}


class SchemaError(Exception):
    pass


def snake_case(name):
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
    return s + "_field" if s in CPP_KEYWORDS else s


def pascal_from_upper_snake(name):
    return "".join(part.capitalize() for part in name.lower().split("_"))


class Versions:
    """A version range: "3+", "0-2", "5", "none"."""

    def __init__(self, text):
        text = (text or "none").strip()
        self.text = text
        if text == "none":
            self.lo, self.hi = None, None
        elif text.endswith("+"):
            self.lo, self.hi = int(text[:-1]), None
        elif "-" in text:
            lo, hi = text.split("-")
            self.lo, self.hi = int(lo), int(hi)
        else:
            self.lo = self.hi = int(text)

    def empty(self):
        return self.lo is None

    def contains(self, v):
        return self.lo is not None and v >= self.lo and (self.hi is None or v <= self.hi)

    def cond(self, var="ver"):
        """A C++ boolean expression testing var against this range."""
        if self.lo is None:
            return "false"
        parts = []
        if self.lo > 0:
            parts.append(f"{var} >= {self.lo}")
        if self.hi is not None:
            parts.append(f"{var} <= {self.hi}")
        return " && ".join(parts) if parts else "true"

    def intersect(self, other):
        if self.empty() or other.empty():
            return Versions("none")
        lo = max(self.lo, other.lo)
        his = [h for h in (self.hi, other.hi) if h is not None]
        hi = min(his) if his else None
        if hi is not None and hi < lo:
            return Versions("none")
        r = Versions("none")
        r.lo, r.hi = lo, hi
        r.text = f"{lo}+" if hi is None else f"{lo}-{hi}"
        return r


class Field:
    def __init__(self, raw, message):
        self.raw = raw
        self.kafka_name = raw["name"]
        self.name = snake_case(raw["name"])
        self.type = raw["type"]
        if "versions" not in raw:
            raise SchemaError(f"{message}: field {self.kafka_name} has no versions")
        self.versions = Versions(raw["versions"])
        self.nullable = Versions(raw.get("nullableVersions", "none"))
        self.tagged = Versions(raw.get("taggedVersions", "none"))
        self.tag = raw.get("tag")
        self.ignorable = bool(raw.get("ignorable", False))
        self.default = raw.get("default")
        self.flexible_override = Versions(raw["flexibleVersions"]) if "flexibleVersions" in raw else None
        self.fields = raw.get("fields")
        if not self.tagged.empty():
            if self.tag is None:
                raise SchemaError(f"{message}: tagged field {self.kafka_name} has no tag")
            if self.tagged.text != self.versions.text:
                raise SchemaError(f"{message}: {self.kafka_name}: taggedVersions != versions")
        if self.type.startswith("[]"):
            self.kind = "array"
            self.elem = self.type[2:]
        elif self.type in PRIMITIVES:
            self.kind = "prim"
        elif self.type == "string":
            self.kind = "string"
        elif self.type in ("bytes", "records"):
            self.kind = "bytes"
        else:
            self.kind = "struct"
        self.ever_nullable = not self.nullable.empty()
        if self.ever_nullable and self.kind == "prim":
            raise SchemaError(f"{message}: primitive {self.kafka_name} cannot be nullable")

    def elem_is_struct(self):
        return self.kind == "array" and self.elem not in PRIMITIVES and self.elem not in (
            "string", "bytes", "records")

    def struct_name(self):
        if self.kind == "struct":
            return self.type
        if self.elem_is_struct():
            return self.elem
        return None


class Struct:
    def __init__(self, name, raw_fields, message):
        self.name = name
        self.fields = [Field(f, message) for f in raw_fields]


class Message:
    def __init__(self, path, text=None):
        raw = json.loads(text if text is not None else open(path, encoding="utf-8").read())
        self.raw = raw
        self.path = path
        self.name = raw["name"]
        self.kind = raw["type"]
        self.api_key = raw.get("apiKey")
        self.valid = Versions(raw["validVersions"])
        self.flexible = Versions(raw.get("flexibleVersions", "none"))
        self.top = Struct(self.name, raw["fields"], self.name)
        self.common = {c["name"]: c for c in raw.get("commonStructs", [])}
        # All struct types of this message, children before parents (post-order).
        self.structs = []
        seen = set()
        self._collect(self.top, seen)

    def _collect(self, struct, seen):
        for f in struct.fields:
            sname = f.struct_name()
            if sname is None or sname in seen:
                continue
            if f.fields is not None:
                child = Struct(sname, f.fields, self.name)
            elif sname in self.common:
                child = Struct(sname, self.common[sname]["fields"], self.name)
            else:
                raise SchemaError(f"{self.name}: unknown struct type {sname}")
            seen.add(sname)
            self._collect(child, seen)
            self.structs.append(child)
        if struct is self.top:
            self.structs.append(struct)
