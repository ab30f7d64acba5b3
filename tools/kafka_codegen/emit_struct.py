"""Emits the C++ struct, decode, encode and min_wire_size code of one Kafka message schema.

Wire rules (Kafka protocol guide, KIP-482 for flexible versions):
- a field is on the wire in its `versions`; in a flexible version a field with `taggedVersions`
  goes to the tagged-field section instead (written only when not at its default, ascending tag);
- strings/bytes/records/arrays are compact in flexible versions (a field may opt out with its
  own "flexibleVersions": "none", as RequestHeader.ClientId does);
- every struct ends with a tagged-field section in flexible versions; unknown tags are skipped;
- nullable structs carry an int8 presence marker (-1 = null, 1 = present);
- encoding a non-default value in a version without the field is an error unless `ignorable`.
"""

from schema import PRIMITIVES


def cpp_string_literal(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class StructEmitter:
    def __init__(self, message):
        self.m = message
        self.flex_cond = message.flexible.cond("ver")

    # ---- types and defaults -------------------------------------------------------------
    def elem_cpp(self, elem):
        if elem in PRIMITIVES:
            return PRIMITIVES[elem][0]
        if elem == "string":
            return "std::string"
        if elem in ("bytes", "records"):
            return "Buffer"
        return elem

    def value_cpp(self, f):
        if f.kind == "prim":
            return PRIMITIVES[f.type][0]
        if f.kind == "string":
            return "std::string"
        if f.kind == "bytes":
            return "Buffer"
        if f.kind == "array":
            return f"std::vector<{self.elem_cpp(f.elem)}>"
        return f.type

    def field_cpp(self, f):
        t = self.value_cpp(f)
        return f"std::optional<{t}>" if f.ever_nullable else t

    def prim_default(self, f):
        d = f.default
        if f.type == "bool":
            return "true" if str(d).lower() == "true" else "false"
        if f.type == "uuid":
            return None
        if d is None or d == "":
            return "0.0" if f.type == "float64" else "0"
        if f.type == "float64":
            return repr(float(d))
        v = int(str(d), 0)
        if f.type == "int64" and v == -(2**63):
            return "INT64_MIN"
        if f.type == "int32" and v == -(2**31):
            return "INT32_MIN"
        return str(v)

    def default_null(self, f):
        return f.ever_nullable and str(f.default) == "null"

    def initializer(self, f):
        if f.kind == "prim":
            d = self.prim_default(f)
            return "" if d is None else f" = {d}"
        if self.default_null(f):
            return " = std::nullopt"
        if f.kind == "string":
            d = "" if f.default in (None, "null") else str(f.default)
            return f" = std::string({cpp_string_literal(d)})" if f.ever_nullable else (
                f" = {cpp_string_literal(d)}" if d else "")
        if f.ever_nullable:
            return f" = {self.value_cpp(f)}{{}}"
        return ""

    def is_default(self, f, x):
        """C++ expression: x (a field) holds its default value."""
        if f.kind == "prim":
            if f.type == "uuid":
                return f"{x}.is_zero()"
            return f"{x} == {self.prim_default(f)}"
        if self.default_null(f):
            return f"!{x}.has_value()"
        if f.kind == "string":
            d = "" if f.default in (None, "null") else str(f.default)
            if f.ever_nullable:
                return f"({x}.has_value() && *{x} == {cpp_string_literal(d)})"
            return f"{x} == {cpp_string_literal(d)}"
        if f.kind in ("bytes", "array"):
            return f"({x}.has_value() && {x}->empty())" if f.ever_nullable else f"{x}.empty()"
        # struct
        if f.ever_nullable:
            return f"({x}.has_value() && *{x} == {f.type}{{}})"
        return f"{x} == {f.type}{{}}"

    def compact(self, f):
        if f.flexible_override is not None:
            return f"({f.flexible_override.cond('ver')})"
        return "flex"

    # ---- min wire size ------------------------------------------------------------------
    def min_size_expr(self, f):
        c = self.compact(f)
        if f.kind == "prim":
            return str(PRIMITIVES[f.type][1])
        if f.kind == "string":
            return f"({c} ? 1u : 2u)"
        if f.kind in ("bytes", "array"):
            return f"({c} ? 1u : 4u)"
        if f.ever_nullable:
            return "1"
        return f"{f.type}::min_wire_size(ver)"

    def elem_min_size_expr(self, f):
        e = f.elem
        if e in PRIMITIVES:
            return str(PRIMITIVES[e][1])
        if e == "string":
            return f"({self.compact(f)} ? 1u : 2u)"
        if e in ("bytes", "records"):
            return f"({self.compact(f)} ? 1u : 4u)"
        return f"{e}::min_wire_size(ver)"

    # ---- decode ---------------------------------------------------------------------------
    def decode_scalar(self, kind, typ, target, c, nullable_cond, reader, what):
        """Lines decoding one value of `typ` into `target` (an lvalue)."""
        if kind == "prim":
            suffix = PRIMITIVES[typ][2]
            return [f"MQ_RETURN_IF_ERROR({reader}.read_{suffix}(&{target}));"]
        if kind in ("string", "bytes"):
            fn = "string" if kind == "string" else "bytes"
            if nullable_cond is None:
                return [f"MQ_RETURN_IF_ERROR({reader}.read_{fn}({c}, &{target}));"]
            return [
                f"if ({nullable_cond}) {{",
                f"  MQ_RETURN_IF_ERROR({reader}.read_nullable_{fn}({c}, &{target}));",
                "} else {",
                f"  MQ_RETURN_IF_ERROR({reader}.read_{fn}({c}, &{target}.emplace()));",
                "}",
            ]
        # struct
        if nullable_cond is None:
            return [f"MQ_RETURN_IF_ERROR({target}.decode({reader}, ver));"]
        return [
            "{",
            "  std::int8_t present = 1;",
            f"  if ({nullable_cond}) MQ_RETURN_IF_ERROR({reader}.read_int8(&present));",
            "  if (present < 0) {",
            f"    {target}.reset();",
            "  } else {",
            f"    MQ_RETURN_IF_ERROR({target}.emplace().decode({reader}, ver));",
            "  }",
            "}",
        ]

    def decode_field(self, f, reader):
        target = f"this->{f.name}"
        c = self.compact(f)
        ncond = f"({f.nullable.cond('ver')})" if f.ever_nullable else None
        if f.kind != "array":
            return self.decode_scalar(f.kind, f.type, target, c, ncond, reader, f.kafka_name)
        elem = f.elem
        ekind = "prim" if elem in PRIMITIVES else (
            "string" if elem == "string" else "bytes" if elem in ("bytes", "records") else "struct")
        vec = f"{target}.emplace()" if f.ever_nullable else target
        null_branch = (f"if (!({f.nullable.cond('ver')})) return Status::corruption("
                       f"\"kafka: null array {self.m.name}.{f.kafka_name}\");\n    {target}.reset();"
                       if f.ever_nullable else
                       f"return Status::corruption(\"kafka: null array {self.m.name}.{f.kafka_name}\");")
        lines = [
            "{",
            "  std::int32_t count = 0;",
            f"  MQ_RETURN_IF_ERROR({reader}.read_array_length({c}, {self.elem_min_size_expr(f)}, &count));",
            "  if (count < 0) {",
            f"    {null_branch}",
            "  } else {",
            f"    auto& items = {vec};",
            "    for (std::int32_t i = 0; i < count; ++i) {",
            f"      {self.elem_cpp(elem)} item{{}};",
        ]
        for line in self.decode_scalar(ekind, elem, "item", c, None, reader, f.kafka_name):
            lines.append("      " + line)
        lines += ["      items.push_back(std::move(item));", "    }", "  }", "}"]
        return lines

    # ---- encode ---------------------------------------------------------------------------
    def encode_scalar(self, kind, typ, value, c, nullable_cond, writer, what, optional):
        """Lines encoding `value`; if optional, value is a std::optional."""
        if kind == "prim":
            suffix = PRIMITIVES[typ][2]
            return [f"{writer}.write_{suffix}({value});"]
        fn = "string" if kind == "string" else "bytes"
        if kind in ("string", "bytes"):
            if not optional:
                return [f"MQ_RETURN_IF_ERROR({writer}.write_{fn}({c}, {value}));"]
            return [
                f"if (!{value}.has_value()) {{",
                f"  if (!({nullable_cond})) return Status::invalid_argument(\"kafka: "
                f"{what} is null but not nullable in version \" + std::to_string(ver));",
                f"  {writer}.write_null_{fn}({c});",
                "} else {",
                f"  MQ_RETURN_IF_ERROR({writer}.write_{fn}({c}, *{value}));",
                "}",
            ]
        if not optional:
            return [f"MQ_RETURN_IF_ERROR({value}.encode({writer}, ver));"]
        return [
            f"if (!{value}.has_value()) {{",
            f"  if (!({nullable_cond})) return Status::invalid_argument(\"kafka: "
            f"{what} is null but not nullable in version \" + std::to_string(ver));",
            f"  {writer}.write_int8(-1);",
            "} else {",
            f"  if ({nullable_cond}) {writer}.write_int8(1);",
            f"  MQ_RETURN_IF_ERROR({value}->encode({writer}, ver));",
            "}",
        ]

    def encode_field(self, f, writer):
        value = f"this->{f.name}"
        c = self.compact(f)
        what = f"{self.m.name}.{f.kafka_name}"
        ncond = f.nullable.cond("ver")
        if f.kind != "array":
            return self.encode_scalar(f.kind, f.type, value, c, ncond, writer, what, f.ever_nullable)
        elem = f.elem
        ekind = "prim" if elem in PRIMITIVES else (
            "string" if elem == "string" else "bytes" if elem in ("bytes", "records") else "struct")
        lines = []
        items = value
        if f.ever_nullable:
            lines += [
                f"if (!{value}.has_value()) {{",
                f"  if (!({ncond})) return Status::invalid_argument(\"kafka: {what} is null but "
                "not nullable in version \" + std::to_string(ver));",
                f"  {writer}.write_null_array({c});",
                "} else {",
            ]
            items = f"(*{value})"
        body = [f"MQ_RETURN_IF_ERROR({writer}.write_array_length({c}, {items}.size()));",
                f"for (const auto& item : {items}) {{"]
        body += ["  " + l for l in self.encode_scalar(ekind, elem, "item", c, None, writer, what, False)]
        body += ["}"]
        if f.ever_nullable:
            lines += ["  " + l for l in body] + ["}"]
        else:
            lines += body
        return lines

    # ---- whole struct ---------------------------------------------------------------------
    def declaration(self, s, indent, top_extra):
        p = " " * indent
        out = [f"{p}struct {s.name} {{"]
        out += [p + "  " + l for l in top_extra]
        for f in s.fields:
            out.append(f"{p}  {self.field_cpp(f)} {f.name}{self.initializer(f)};")
        out += [
            f"{p}  // Decodes this struct at `ver` (fields start from their defaults).",
            f"{p}  Status decode(KafkaReader& in, std::int16_t ver);",
            f"{p}  Status encode(KafkaWriter& out, std::int16_t ver) const;",
            f"{p}  // Fewest bytes one encoding can take: bounds array counts before allocation.",
            f"{p}  static std::size_t min_wire_size(std::int16_t ver);",
            f"{p}  bool operator==(const {s.name}&) const = default;",
            f"{p}}};",
        ]
        return out

    def qualified(self, s):
        return self.m.name if s.name == self.m.name else f"{self.m.name}::{s.name}"

    def definitions(self, s):
        q = self.qualified(s)
        body_fields = [f for f in s.fields if f.tagged.empty()]
        tagged = sorted([f for f in s.fields if not f.tagged.empty()], key=lambda f: f.tag)
        out = []
        # min_wire_size
        out.append(f"std::size_t {q}::min_wire_size([[maybe_unused]] std::int16_t ver) {{")
        out.append(f"  [[maybe_unused]] const bool flex = {self.flex_cond};")
        out.append("  std::size_t n = 0;")
        for f in body_fields:
            out.append(f"  if ({f.versions.cond('ver')}) n += {self.min_size_expr(f)};")
        out.append("  if (flex) n += 1;")
        out.append("  return n;")
        out.append("}")
        out.append("")
        # decode
        out.append(f"Status {q}::decode([[maybe_unused]] KafkaReader& in, [[maybe_unused]] std::int16_t ver) {{")
        out.append(f"  [[maybe_unused]] const bool flex = {self.flex_cond};")
        out.append(f"  *this = {s.name}{{}};")
        for f in body_fields:
            out.append(f"  if ({f.versions.cond('ver')}) {{")
            out += ["    " + l for l in self.decode_field(f, "in")]
            out.append("  }")
        out += [
            "  if (flex) {",
            "    std::uint32_t tagged_count = 0;",
            "    MQ_RETURN_IF_ERROR(in.read_uvarint32(&tagged_count));",
            "    if (tagged_count > in.remaining()) {",
            "      return Status::corruption(\"kafka: tagged field count exceeds the input\");",
            "    }",
            "    for (std::uint32_t t = 0; t < tagged_count; ++t) {",
            "      std::uint32_t tag = 0;",
            "      std::uint32_t size = 0;",
            "      MQ_RETURN_IF_ERROR(in.read_uvarint32(&tag));",
            "      MQ_RETURN_IF_ERROR(in.read_uvarint32(&size));",
            "      BufferView tagged_bytes;",
            "      MQ_RETURN_IF_ERROR(in.read_raw(size, &tagged_bytes));",
        ]
        if tagged:
            out.append("      KafkaReader tr(tagged_bytes);")
            out.append("      switch (tag) {")
            for f in tagged:
                out.append(f"        case {f.tag}:")
                out.append(f"          if (!({f.tagged.cond('ver')})) break;  // unknown in this version")
                out += ["          " + l for l in self.decode_field(f, "tr")]
                out.append("          if (!tr.at_end()) {")
                out.append(f"            return Status::corruption(\"kafka: tagged field {s.name}."
                           f"{f.kafka_name} has trailing bytes\");")
                out.append("          }")
                out.append("          break;")
            out.append("        default:")
            out.append("          break;  // unknown tagged fields are skipped (KIP-482)")
            out.append("      }")
        out += ["    }", "  }", "  return Status::ok();", "}", ""]
        # encode
        out.append(f"Status {q}::encode([[maybe_unused]] KafkaWriter& out, [[maybe_unused]] std::int16_t ver) const {{")
        out.append(f"  [[maybe_unused]] const bool flex = {self.flex_cond};")
        for f in s.fields:
            if f.ignorable:
                continue
            out.append(f"  if (!({f.versions.cond('ver')}) && !({self.is_default(f, 'this->' + f.name)})) {{")
            out.append(f"    return Status::invalid_argument(\"kafka: {s.name}.{f.kafka_name} "
                       "is not supported in version \" + std::to_string(ver));")
            out.append("  }")
        for f in body_fields:
            out.append(f"  if ({f.versions.cond('ver')}) {{")
            out += ["    " + l for l in self.encode_field(f, "out")]
            out.append("  }")
        out.append("  if (flex) {")
        if not tagged:
            out.append("    out.write_uvarint(0);")
        else:
            out.append("    std::uint64_t tagged_count = 0;")
            for f in tagged:
                out.append(f"    if (({f.tagged.cond('ver')}) && !({self.is_default(f, 'this->' + f.name)})) ++tagged_count;")
            out.append("    out.write_uvarint(tagged_count);")
            for f in tagged:  # ascending tag order
                out.append(f"    if (({f.tagged.cond('ver')}) && !({self.is_default(f, 'this->' + f.name)})) {{")
                out.append("      Buffer tagged_bytes;")
                out.append("      KafkaWriter tw(&tagged_bytes);")
                out += ["      " + l for l in self.encode_field(f, "tw")]
                out.append(f"      out.write_uvarint({f.tag});")
                out.append("      out.write_uvarint(tagged_bytes.size());")
                out.append("      out.write_raw(tagged_bytes.view());")
                out.append("    }")
        out += ["  }", "  return Status::ok();", "}", ""]
        return out

    # ---- random population (test support) ---------------------------------------------
    def random_value(self, kind, typ, target, nullable_cond, optional):
        if kind == "prim":
            if typ == "bool":
                return [f"{target} = rng.chance(1, 2);"]
            if typ == "float64":
                return [f"{target} = static_cast<double>(rng.uniform(1000000)) / 64.0;"]
            if typ == "uuid":
                return [f"for (auto& b : {target}.bytes) b = static_cast<std::uint8_t>(rng.next());"]
            return [f"{target} = random_int<{PRIMITIVES[typ][0]}>(rng);"]
        lines = []
        t = target
        if optional:
            lines.append(f"if (({nullable_cond}) && rng.chance(1, 4)) {{ {target}.reset(); }} else {{")
            t = f"{target}.emplace()"
        if kind == "string":
            lines.append(f"  {t} = random_string(rng);")
        elif kind == "bytes":
            lines.append(f"  {t} = random_bytes(rng);")
        else:
            lines.append(f"  randomize({t}, rng, ver);")
        if optional:
            lines.append("}")
        return lines

    def randomize_definition(self, s):
        q = self.qualified(s)
        out = [f"void randomize({q}& m, Prng& rng, [[maybe_unused]] std::int16_t ver) {{",
               f"  m = {q}{{}};"]
        for f in s.fields:
            out.append(f"  if ({f.versions.cond('ver')}) {{")
            target = f"m.{f.name}"
            ncond = f.nullable.cond("ver")
            if f.kind != "array":
                out += ["    " + l for l in self.random_value(f.kind, f.type, target, ncond, f.ever_nullable)]
            else:
                elem = f.elem
                ekind = "prim" if elem in PRIMITIVES else (
                    "string" if elem == "string" else "bytes" if elem in ("bytes", "records") else "struct")
                vec = target
                if f.ever_nullable:
                    out.append(f"    if (({ncond}) && rng.chance(1, 4)) {{ {target}.reset(); }} else {{")
                    vec = f"{target}.emplace()"
                else:
                    out.append("    {")
                out.append(f"      auto& items = {vec};")
                out.append("      std::size_t count = rng.uniform(3);")
                out.append("      for (std::size_t i = 0; i < count; ++i) {")
                out.append("        std::remove_cvref_t<decltype(items)>::value_type item{};")
                out += ["        " + l for l in self.random_value(ekind, elem, "item", None, False)]
                out.append("        items.push_back(std::move(item));")
                out.append("      }")
                out.append("    }")
            out.append("  }")
        out.append("}")
        out.append("")
        return out
