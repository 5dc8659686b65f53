"""Generate the codec modules in kbroker/wire/messages/ from protocol/messages/*.json.

    python tools/gen.py            # write the modules
    python tools/gen.py --check    # exit 1 if a committed module is stale

For every API, every struct and every version the generator writes one
straight-line decode function and one encode function; versions whose code is
the same share one function. Runs of fixed-width fields are read and written
with one precompiled ``struct.Struct``. Version checks are resolved here, at
generation time, so the generated code has none.

The schema format is described in protocol/README.md.
"""

from __future__ import annotations

import argparse
import json
import keyword
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "protocol" / "messages"
OUT = ROOT / "kbroker" / "wire" / "messages"
ERRORS_OUT = ROOT / "kbroker" / "wire" / "error_codes.py"

FIXED = {  # type -> (struct format char, default literal)
    "int8": ("b", "0"),
    "int16": ("h", "0"),
    "int32": ("i", "0"),
    "int64": ("q", "0"),
    "uint16": ("H", "0"),
    "uint32": ("I", "0"),
    "float64": ("d", "0.0"),
    "bool": ("?", "False"),
}
VARIABLE = {"string", "bytes", "records", "uuid"}


class VersionRange:
    """A version set as the schemas write it: "3", "3+", "3-7" or "none"."""

    def __init__(self, text: str):
        text = str(text)
        if text == "none":
            self.lo, self.hi = 1, 0
        elif text.endswith("+"):
            self.lo, self.hi = int(text[:-1]), 1 << 15
        elif "-" in text:
            lo, hi = text.split("-")
            self.lo, self.hi = int(lo), int(hi)
        else:
            self.lo = self.hi = int(text)

    def __contains__(self, v: int) -> bool:
        return self.lo <= v <= self.hi


@dataclass
class Field:
    name: str
    type: str  # element type for arrays
    is_array: bool
    versions: VersionRange
    nullable: VersionRange
    tag: int | None
    tagged: VersionRange
    default: object
    struct: "Struct | None" = None

    def present(self, v: int) -> bool:
        return v in self.versions

    def is_tagged(self, v: int) -> bool:
        return self.tag is not None and v in self.tagged

    def default_literal(self) -> str:
        """The Python literal for this field's default (Kafka's rules: 0, '', empty, null records)."""
        if self.is_array:
            return "None" if self._explicit_null else "[]"
        if self.struct is not None:
            return "None"
        d = self.default
        if self.type in FIXED:
            if d is None:
                return FIXED[self.type][1]
            if self.type == "bool":
                return "True" if d else "False"
            if self.type == "float64":
                return repr(float(d))
            return repr(int(d))
        if self.type == "string":
            return "None" if self._explicit_null else repr(d if d is not None else "")
        return {"bytes": "b''", "records": "None", "uuid": "ZERO_UUID"}[self.type]

    _explicit_null: bool = False


@dataclass
class Struct:
    name: str  # class name, e.g. ProduceRequest or TopicProduceData
    fields: list[Field]
    children: list["Struct"] = field(default_factory=list)


def parse_fields(raw: list[dict], owner: Struct, all_structs: dict[str, Struct]) -> list[Field]:
    out = []
    for r in raw:
        typ = r["type"]
        is_array = typ.startswith("[]")
        base = typ[2:] if is_array else typ
        f = Field(
            name=r["name"] + ("_" if keyword.iskeyword(r["name"]) else ""),
            type=base,
            is_array=is_array,
            versions=VersionRange(r["versions"]),
            nullable=VersionRange(r.get("nullable", "none")),
            tag=r.get("tag"),
            tagged=VersionRange(r.get("tagged", "none")),
            default=r.get("default"),
        )
        f._explicit_null = "default" in r and r["default"] is None
        if "fields" in r:
            if base in all_structs:  # a common struct used twice: one class
                f.struct = all_structs[base]
            else:
                s = Struct(base, [])
                all_structs[base] = s
                s.fields = parse_fields(r["fields"], s, all_structs)
                owner.children.append(s)
                f.struct = s
        out.append(f)
    return out


class Emitter:
    """Writes one module; keeps the shared Struct objects and the functions by body."""

    def __init__(self):
        self.lines: list[str] = []
        self.structs: dict[str, str] = {}  # format -> name
        self.funcs: dict[str, str] = {}  # body text -> canonical name
        self.names: set[str] = set()

    def struct_for(self, fmt: str) -> str:
        if fmt not in self.structs:
            self.structs[fmt] = f"_S{len(self.structs)}"
        return self.structs[fmt]

    def func(self, name: str, params: str, body: list[str], alt_name: str | None = None) -> str:
        """Emit a function unless one with the same body exists; ``alt_name`` is used when ``name`` is
        taken by a different body (a request and a response struct with the same name)."""
        key = params + "\n" + "\n".join(body)
        if key in self.funcs:
            return self.funcs[key]
        if name in self.names:
            assert alt_name is not None and alt_name not in self.names, name
            name = alt_name
        self.names.add(name)
        self.funcs[key] = name
        self.lines.append(f"def {name}({params}):")
        self.lines.extend("    " + b if b else "" for b in body)
        self.lines.append("")
        self.lines.append("")
        return name


# -- decoding -----------------------------------------------------------------

def reader(f: Field, v: int, flexible: bool, element: bool = False) -> str:
    # For an array, `nullable` is about the array itself; its elements are never null.
    nullable = v in f.nullable and not element
    t = f.type
    if t == "string":
        return ("read_compact_nullable_string" if nullable else "read_compact_string") if flexible else (
            "read_nullable_string" if nullable else "read_string")
    if t in ("bytes", "records"):
        return ("read_compact_nullable_bytes" if nullable else "read_compact_bytes") if flexible else (
            "read_nullable_bytes" if nullable else "read_bytes")
    if t == "uuid":
        return "read_uuid"
    raise AssertionError(t)


def gen_decoder(em: Emitter, s: Struct, cls_path: str, v: int, flexible: bool) -> str:
    body: list[str] = [f"o = _new({cls_path})"]
    run: list[Field] = []

    def flush_run():
        if not run:
            return
        fmt = ">" + "".join(FIXED[f.type][0] for f in run)
        sname = em.struct_for(fmt)
        size = _calcsize(fmt)
        targets = ", ".join(f"o.{f.name}" for f in run)
        if len(run) == 1:
            targets += ","
        body.append(f"{targets} = {sname}.unpack_from(buf, pos)")
        body.append(f"pos += {size}")
        run.clear()

    for f in s.fields:
        if not f.present(v):
            body.append(f"o.{f.name} = {f.default_literal()}")
            continue
        if f.is_tagged(v):
            body.append(f"o.{f.name} = {f.default_literal()}")
            continue
        if not f.is_array and f.struct is None and f.type in FIXED:
            run.append(f)
            continue
        flush_run()
        body.extend(decode_value(em, f, v, flexible, f"o.{f.name}", cls_path))
    flush_run()
    if flexible:
        tagged = [f for f in s.fields if f.present(v) and f.is_tagged(v)]
        if not tagged:
            body.append("pos = skip_tagged_fields(buf, pos)")
        else:
            body.append("n, pos = read_uvarint(buf, pos)")
            body.append("for _ in range(n):")
            body.append("    tag, pos = read_uvarint(buf, pos)")
            body.append("    size, pos = read_uvarint(buf, pos)")
            body.append("    end = pos + size")
            body.append("    if end > len(buf):")
            body.append("        raise DecodeError('tagged field runs past the end of the buffer')")
            first = True
            for f in sorted(tagged, key=lambda f: f.tag):
                body.append(f"    {'if' if first else 'elif'} tag == {f.tag}:")
                first = False
                body.extend("        " + line for line in decode_value(em, f, v, flexible, f"o.{f.name}", cls_path))
            # A known field must fill exactly the size its tag announced; unknown ones are skipped.
            body.append("    else:")
            body.append("        pos = end")
            body.append("    if pos != end:")
            body.append("        raise DecodeError('a tagged field does not match its size')")
    body.append("return o, pos")
    top = cls_path.split(".")[0]
    return em.func(f"_d_{s.name}_v{v}", "buf, pos", body, f"_d_{top}_{s.name}_v{v}")


def decode_value(em: Emitter, f: Field, v: int, flexible: bool, target: str, cls_path: str) -> list[str]:
    nullable = v in f.nullable
    if f.is_array:
        lines = ["n, pos = read_compact_array_len(buf, pos)" if flexible else "n, pos = read_array_len(buf, pos)"]
        if nullable:
            lines.append("if n < 0:")
            lines.append(f"    {target} = None")
            lines.append("else:")
            ind = "    "
        else:
            lines.append("if n < 0:")
            lines.append(f"    raise DecodeError('null for non-nullable array {f.name}')")
            ind = ""
        if f.struct is not None:
            fn = gen_decoder(em, f.struct, f"{cls_path.split('.')[0]}.{f.struct.name}", v, flexible)
            lines.append(f"{ind}a = []")
            lines.append(f"{ind}for _ in range(n):")
            lines.append(f"{ind}    e, pos = {fn}(buf, pos)")
            lines.append(f"{ind}    a.append(e)")
        elif f.type in FIXED:
            ch, _ = FIXED[f.type]
            lines.append(f"{ind}a = list(_struct.unpack_from(f'>{{n}}{ch}', buf, pos))")
            lines.append(f"{ind}pos += n * {_calcsize('>' + ch)}")
        else:
            rd = reader(f, v, flexible, element=True)
            lines.append(f"{ind}a = []")
            lines.append(f"{ind}for _ in range(n):")
            lines.append(f"{ind}    e, pos = {rd}(buf, pos)")
            lines.append(f"{ind}    a.append(e)")
        lines.append(f"{ind}{target} = a")
        return lines
    if f.struct is not None:
        fn = gen_decoder(em, f.struct, f"{cls_path.split('.')[0]}.{f.struct.name}", v, flexible)
        if nullable:
            return [
                "(marker,) = _I8.unpack_from(buf, pos)",
                "pos += 1",
                "if marker < 0:",
                f"    {target} = None",
                "else:",
                f"    {target}, pos = {fn}(buf, pos)",
            ]
        return [f"{target}, pos = {fn}(buf, pos)"]
    if f.type in FIXED:
        ch, _ = FIXED[f.type]
        sname = em.struct_for(">" + ch)
        return [f"({target},) = {sname}.unpack_from(buf, pos)", f"pos += {_calcsize('>' + ch)}"]
    return [f"{target}, pos = {reader(f, v, flexible)}(buf, pos)"]


# -- encoding -----------------------------------------------------------------

def writer(f: Field, flexible: bool) -> str:
    t = f.type
    if t == "string":
        return "write_compact_string" if flexible else "write_string"
    if t in ("bytes", "records"):
        return "write_compact_bytes" if flexible else "write_bytes"
    if t == "uuid":
        return "write_uuid"
    raise AssertionError(t)


def gen_encoder(em: Emitter, s: Struct, cls_path: str, v: int, flexible: bool) -> str:
    body: list[str] = []
    run: list[Field] = []

    def flush_run():
        if not run:
            return
        fmt = ">" + "".join(FIXED[f.type][0] for f in run)
        sname = em.struct_for(fmt)
        args = ", ".join(f"o.{f.name}" for f in run)
        body.append(f"out += {sname}.pack({args})")
        run.clear()

    for f in s.fields:
        if not f.present(v) or f.is_tagged(v):
            continue
        if not f.is_array and f.struct is None and f.type in FIXED:
            run.append(f)
            continue
        flush_run()
        body.extend(encode_value(em, f, v, flexible, f"o.{f.name}", "out", cls_path))
    flush_run()
    if flexible:
        tagged = sorted((f for f in s.fields if f.present(v) and f.is_tagged(v)), key=lambda f: f.tag)
        if not tagged:
            body.append("out.append(0)")
        else:
            body.append("t = []")
            for f in tagged:
                dflt = f.default_literal()
                # Kafka writes a tagged field only when it differs from its default.
                if f.is_array and dflt == "None":
                    cond = f"o.{f.name} is not None"
                elif f.is_array and v in f.nullable:
                    cond = f"o.{f.name} is None or o.{f.name}"
                elif f.is_array:
                    cond = f"o.{f.name}"
                elif f.struct is not None:
                    cond = f"o.{f.name} is not None"
                else:
                    cond = f"o.{f.name} != {dflt}"
                body.append(f"if {cond}:")
                body.append("    b = bytearray()")
                body.extend("    " + line for line in encode_value(em, f, v, flexible, f"o.{f.name}", "b", cls_path))
                body.append(f"    t.append(({f.tag}, b))")
            body.append("write_tagged(out, t)")
    if not body:
        body.append("pass")
    top = cls_path.split(".")[0]
    return em.func(f"_e_{s.name}_v{v}", "o, out", body, f"_e_{top}_{s.name}_v{v}")


def encode_value(em: Emitter, f: Field, v: int, flexible: bool, src: str, out: str, cls_path: str) -> list[str]:
    nullable = v in f.nullable
    if f.is_array:
        lines = [f"a = {src}"]
        if nullable:
            lines.append("if a is None:")
            lines.append(f"    {out}.append(0)" if flexible else f"    {out} += b'\\xff\\xff\\xff\\xff'")
            lines.append("else:")
            ind = "    "
        else:
            lines.append("if a is None:")
            lines.append("    a = ()")
            ind = ""
        lines.append(f"{ind}write_uvarint({out}, len(a) + 1)" if flexible else f"{ind}{out} += _I32.pack(len(a))")
        if f.struct is not None:
            fn = gen_encoder(em, f.struct, cls_path, v, flexible)
            lines.append(f"{ind}for e in a:")
            lines.append(f"{ind}    {fn}(e, {out})")
        elif f.type in FIXED:
            ch, _ = FIXED[f.type]
            lines.append(f"{ind}{out} += _struct.pack(f'>{{len(a)}}{ch}', *a)")
        else:
            wr = writer(f, flexible)
            lines.append(f"{ind}for e in a:")
            lines.append(f"{ind}    {wr}({out}, e)")
        return lines
    if f.struct is not None:
        fn = gen_encoder(em, f.struct, cls_path, v, flexible)
        sub = f"{cls_path.split('.')[0]}.{f.struct.name}"
        if nullable:
            return [
                f"if {src} is None:",
                f"    {out} += b'\\xff'",
                "else:",
                f"    {out} += b'\\x01'",
                f"    {fn}({src}, {out})",
            ]
        return [f"{fn}({src} if {src} is not None else {sub}(), {out})"]
    if f.type in FIXED:
        ch, _ = FIXED[f.type]
        return [f"{out} += {em.struct_for('>' + ch)}.pack({src})"]
    if f.type in ("string", "bytes", "records") and not nullable:
        # None where the version cannot say null: write the empty value, as for arrays and structs,
        # rather than a null the client would refuse (e.g. a topic name in Metadata v0-11).
        empty = '""' if f.type == "string" else 'b""'
        return [f"{writer(f, flexible)}({out}, {src} or {empty})"]
    return [f"{writer(f, flexible)}({out}, {src})"]


def _calcsize(fmt: str) -> int:
    import struct

    return struct.calcsize(fmt)


# -- classes --------------------------------------------------------------------

def gen_class(s: Struct, indent: str) -> list[str]:
    lines = [f"{indent}class {s.name}(Message):"]
    names = [f.name for f in s.fields]
    lines.append(f"{indent}    __slots__ = ({''.join(repr(n) + ', ' for n in names)})")
    for child in (flatten(s) if not indent else []):
        lines.append("")
        lines.extend(gen_class(child, indent + "    "))
    if s.fields:
        params = []
        for f in s.fields:
            d = f.default_literal()
            if d == "[]":
                # A fresh list per instance. A nullable array takes () as "not given", so that an
                # explicit None stays None.
                d = "()" if _ever_nullable(f) else "None"
            params.append(f"{f.name}={d}")
        lines.append("")
        lines.append(f"{indent}    def __init__(self, {', '.join(params)}):")
        for f in s.fields:
            d = f.default_literal()
            if d == "[]" and _ever_nullable(f):
                lines.append(f"{indent}        self.{f.name} = [] if {f.name} == () else {f.name}")
            elif d == "[]":
                lines.append(f"{indent}        self.{f.name} = [] if {f.name} is None else {f.name}")
            else:
                lines.append(f"{indent}        self.{f.name} = {f.name}")
    return lines


def _ever_nullable(f: Field) -> bool:
    return f.nullable.lo <= f.nullable.hi


def flatten(s: Struct) -> list[Struct]:
    out = []
    for c in s.children:
        out.append(c)
        out.extend(flatten(c))
    return out


def gen_module(schema: dict) -> str:
    em = Emitter()
    name = schema["name"]
    header = [
        f"# Generated by tools/gen.py from protocol/messages/{snake(name)}.json: do not edit by hand.",
        f'"""{name} (API key {schema["api_key"]}): requests {schema["request"]["versions"]}, '
        f'flexible {schema["request"]["flexible"]}."""',
        "",
        "import struct as _struct",
        "",
        "from ..message import Message, _new",
        "from ..primitives import (  # noqa: F401",
        "    I8 as _I8, I32 as _I32, ZERO_UUID, DecodeError,",
        "    read_uvarint, write_uvarint, skip_tagged_fields, write_tagged,",
        "    read_string, read_nullable_string, read_compact_string, read_compact_nullable_string,",
        "    write_string, write_compact_string,",
        "    read_bytes, read_nullable_bytes, read_compact_bytes, read_compact_nullable_bytes,",
        "    write_bytes, write_compact_bytes, read_uuid, write_uuid,",
        "    read_array_len, read_compact_array_len,",
        ")",
        "",
        f"API_KEY = {schema['api_key']}",
        f"NAME = {name!r}",
        "",
    ]
    classes: list[str] = []
    tables: list[str] = []
    for side, suffix in (("request", "Request"), ("response", "Response")):
        sd = schema[side]
        top = Struct(name + suffix, [])
        structs: dict[str, Struct] = {}
        top.fields = parse_fields(sd["fields"], top, structs)
        vr = VersionRange(sd["versions"])
        flex = VersionRange(sd["flexible"])
        classes.extend(gen_class(top, ""))
        classes.append("")
        classes.append("")
        dec, enc = {}, {}
        for v in range(vr.lo, vr.hi + 1):
            dec[v] = gen_decoder(em, top, top.name, v, v in flex)
            enc[v] = gen_encoder(em, top, top.name, v, v in flex)
        up = side.upper()
        tables.append(f"{up}_VERSIONS = ({vr.lo}, {vr.hi})")
        tables.append(f"{up}_FLEXIBLE_FROM = {flex.lo if flex.lo <= flex.hi else None}")
        tables.append(f"{up}_DECODERS = {{{', '.join(f'{v}: {fn}' for v, fn in dec.items())}}}")
        tables.append(f"{up}_ENCODERS = {{{', '.join(f'{v}: {fn}' for v, fn in enc.items())}}}")
        tables.append(f"{top.name}.API_KEY = API_KEY")
        tables.append("")
    structs_lines = [f"{n} = _struct.Struct({fmt!r})" for fmt, n in em.structs.items()]
    parts = header + classes + structs_lines + ["", ""] + em.lines + tables
    text = "\n".join(parts).rstrip() + "\n"
    return text


def snake(name: str) -> str:
    import re

    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def gen_index(schemas: list[dict]) -> str:
    ordered = sorted(schemas, key=lambda s: s["api_key"])
    lines = [
        "# Generated by tools/gen.py: do not edit by hand.",
        '"""Every API the schemas describe, by API key.',
        "",
        "A codec module is imported the first time it is asked for (``BY_KEY[0]`` or",
        "``from kbroker.wire.messages import produce``), so that starting a broker does not pay for all of them.",
        '"""',
        "",
        "import importlib",
        "from collections.abc import Mapping",
        "",
        "MODULES = {",
    ]
    lines += [f"    {s['api_key']}: {snake(s['name'])!r}," for s in ordered]
    lines += ["}", "", "NAMES = {"]
    lines += [f"    {s['api_key']}: {s['name']!r}," for s in ordered]
    lines += [
        "}",
        "",
        "",
        "class _ByKey(Mapping):",
        "    def __getitem__(self, api_key):",
        "        return importlib.import_module(f\".{MODULES[api_key]}\", __name__)",
        "",
        "    def __iter__(self):",
        "        return iter(MODULES)",
        "",
        "    def __len__(self):",
        "        return len(MODULES)",
        "",
        "",
        "BY_KEY = _ByKey()",
    ]
    return "\n".join(lines) + "\n"


def gen_error_codes() -> str:
    codes = json.loads((ROOT / "protocol" / "errors.json").read_text())
    lines = [
        "# Generated by tools/gen.py from protocol/errors.json: do not edit by hand.",
        '"""Kafka\'s error codes, by Kafka\'s names."""',
        "",
        "from enum import IntEnum",
        "",
        "",
        "class ErrorCode(IntEnum):",
    ]
    lines += [f"    {name} = {code}" for name, code in codes.items()]
    return "\n".join(lines) + "\n"


def generate() -> dict[Path, str]:
    schemas = [json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.json"))]
    files = {OUT / f"{snake(s['name'])}.py": gen_module(s) for s in schemas}
    files[OUT / "__init__.py"] = gen_index(schemas)
    files[ERRORS_OUT] = gen_error_codes()
    return files


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="fail if the committed modules are stale")
    args = ap.parse_args()
    files = generate()
    if args.check:
        stale = [str(p.relative_to(ROOT)) for p, text in files.items() if not p.exists() or p.read_text() != text]
        extra = [str(p.relative_to(ROOT)) for p in OUT.glob("*.py") if p not in files]
        if stale or extra:
            print("stale generated modules (run `make gen`):", *stale, *extra, sep="\n  ")
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for p in OUT.glob("*.py"):
        if p not in files:
            p.unlink()
    for p, text in files.items():
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
