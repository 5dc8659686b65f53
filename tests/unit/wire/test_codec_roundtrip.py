"""Round trips of the generated codec for every (API, side, version), checked against the schemas.

For each case a message is built with every field the class has set to a value that is not its default
(strings with non-ASCII characters, negative and large integers, two-element arrays of structs, tagged
fields set), encoded, and decoded again. What comes back must equal what the schema says survives in
that version: fields the version does not have come back as their defaults, everything else unchanged.
Three variants per case: "full" (every value set), "nulls" (every field that is nullable in the version
is None) and "empty" (strings, bytes and arrays empty, where the version allows); a fourth, "unset", sets
None where the version cannot encode null, which must come back as the empty value.

The same encodings are then fed with trailing bytes (the decoder must stop at the right position) and
cut short (every proper prefix must raise DecodeError or struct.error, never anything else).

The schema walker and the message builder at the top of this module are reused by the other codec
tests (kafka-python comparison, fuzzing, golden bytes); they read protocol/messages/*.json directly, not
through tools/gen.py, so that they check the generator instead of repeating it.
"""

from __future__ import annotations

import json
import keyword
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kbroker.wire.messages import BY_KEY
from kbroker.wire.primitives import ZERO_UUID, DecodeError

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_DIR = ROOT / "protocol" / "messages"


# -- the schemas, read independently of tools/gen.py -------------------------------------------------

def parse_range(text) -> tuple[int, int]:
    """A schema version range ("3", "3+", "3-7", "none") as an inclusive (lo, hi); empty is (1, 0)."""
    text = str(text)
    if text == "none":
        return (1, 0)
    if text.endswith("+"):
        return (int(text[:-1]), 1 << 15)
    if "-" in text:
        lo, hi = text.split("-")
        return (int(lo), int(hi))
    return (int(text), int(text))


def _in(v: int, r: tuple[int, int]) -> bool:
    return r[0] <= v <= r[1]


FIXED_TYPES = ("int8", "int16", "int32", "int64", "uint16", "uint32", "float64", "bool")


@dataclass
class FieldSpec:
    name: str  # the Python attribute name
    type: str  # the element type for arrays; the struct name for structs
    is_array: bool
    versions: tuple[int, int]
    nullable: tuple[int, int]
    tag: int | None
    tagged: tuple[int, int]
    raw: dict
    fields: list["FieldSpec"] | None = None  # for struct types

    @property
    def is_struct(self) -> bool:
        return self.fields is not None

    def present(self, v: int) -> bool:
        return _in(v, self.versions)

    def nullable_in(self, v: int) -> bool:
        return _in(v, self.nullable)

    def tagged_in(self, v: int) -> bool:
        return self.tag is not None and _in(v, self.tagged)

    def default(self):
        """The value a decoder fills in when the field is absent (protocol/README.md)."""
        if "default" in self.raw:
            d = self.raw["default"]
            if d is None:
                return None
            if self.type == "float64":
                return float(d)
            return d
        if self.is_array:
            return []
        if self.is_struct:
            return None  # the generated classes use None for "no struct", Kafka an empty struct
        return {
            "int8": 0, "int16": 0, "int32": 0, "int64": 0, "uint16": 0, "uint32": 0,
            "float64": 0.0, "bool": False, "string": "", "bytes": b"", "records": None, "uuid": ZERO_UUID,
        }[self.type]


def parse_fields(raw_fields: list[dict]) -> list[FieldSpec]:
    out = []
    for r in raw_fields:
        typ = r["type"]
        is_array = typ.startswith("[]")
        base = typ[2:] if is_array else typ
        name = r["name"] + ("_" if keyword.iskeyword(r["name"]) else "")
        out.append(FieldSpec(
            name=name, type=base, is_array=is_array,
            versions=parse_range(r["versions"]),
            nullable=parse_range(r.get("nullable", "none")),
            tag=r.get("tag"),
            tagged=parse_range(r.get("tagged", "none")),
            raw=r,
            fields=parse_fields(r["fields"]) if "fields" in r else None,
        ))
    return out


@dataclass
class SideSpec:
    api_key: int
    api_name: str
    side: str  # "request" or "response"
    versions: tuple[int, int]
    flexible: tuple[int, int]
    fields: list[FieldSpec]
    module: object = field(repr=False, default=None)

    @property
    def cls(self):
        return getattr(self.module, self.api_name + self.side.capitalize())

    @property
    def decoders(self):
        return getattr(self.module, self.side.upper() + "_DECODERS")

    @property
    def encoders(self):
        return getattr(self.module, self.side.upper() + "_ENCODERS")

    def version_list(self) -> list[int]:
        return list(range(self.versions[0], self.versions[1] + 1))


def load_schemas() -> dict[int, dict]:
    out = {}
    for p in sorted(SCHEMA_DIR.glob("*.json")):
        j = json.loads(p.read_text())
        out[j["api_key"]] = j
    return out


SCHEMAS = load_schemas()


def side_spec(api_key: int, side: str) -> SideSpec:
    j = SCHEMAS[api_key]
    s = j[side]
    return SideSpec(api_key, j["name"], side, parse_range(s["versions"]), parse_range(s["flexible"]),
                    parse_fields(s["fields"]), BY_KEY[api_key])


ALL_SIDES = [side_spec(k, side) for k in sorted(SCHEMAS) for side in ("request", "response")]
ALL_CASES = [(s, v) for s in ALL_SIDES for v in s.version_list()]


def case_id(case) -> str:
    s, v = case
    return f"{s.api_name}{s.side.capitalize()}-v{v}"


# -- building populated messages ---------------------------------------------------------------------

VARIANTS = ("full", "nulls", "empty")


def _h(path: str) -> int:
    return zlib.crc32(path.encode())


def _int_value(typ: str, path: str, default) -> int:
    h = _h(path)
    bits = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}.get(typ)
    if bits is not None:
        # Spread over the whole signed range, negative values included, and use the extremes sometimes.
        span = 1 << bits
        choice = h % 8
        if choice == 0:
            v = -(span >> 1)
        elif choice == 1:
            v = (span >> 1) - 1
        else:
            v = (h * 2654435761) % span - (span >> 1)
    else:
        span = 1 << (16 if typ == "uint16" else 32)
        v = (h * 2654435761) % span
        if h % 5 == 0:
            v = span - 1  # above the signed maximum: catches a signed format char
    if v == default:
        v = v + 1 if v + 1 < (span >> 1 if bits else span) else v - 1
    return v


def primitive_value(typ: str, path: str, default, variant: str):
    """A deterministic value of ``typ`` that differs from ``default`` (except for "empty" strings/bytes)."""
    h = _h(path)
    if typ in ("int8", "int16", "int32", "int64", "uint16", "uint32"):
        return _int_value(typ, path, default)
    if typ == "bool":
        return not default
    if typ == "float64":
        v = (h % 1000) / 8.0 - 60.25
        return v if v != default else v + 1.0
    if typ == "string":
        if variant == "empty":
            return ""
        return f"{path.rsplit('.', 1)[-1]}-{h % 997}-é✓日本"
    if typ == "bytes":
        if variant == "empty":
            return b""
        return bytes([h & 0xFF, 0x00, 0xFF, (h >> 8) & 0xFF]) + path.encode()
    if typ == "records":
        if variant == "empty":
            return b""
        # Opaque to the codec: any bytes do.
        return b"\x00" * 8 + struct.pack(">i", 9) + b"record!" + bytes([h & 0xFF, 2])
    if typ == "uuid":
        return uuid.UUID(int=(h * 0x9E3779B97F4A7C15 << 32 | h) & ((1 << 128) - 1) | 1)
    raise AssertionError(typ)


def build(side: SideSpec, v: int, variant: str = "full", *, expected: bool = False):
    """A populated top-level message.

    With ``expected=False`` every field of the class is set, whether or not version ``v`` has it; with
    ``expected=True`` the fields that ``v`` does not have are set to their defaults instead, which is what
    a decoder must return for the ``expected=False`` message encoded at ``v``.
    """
    return _build_struct(side.cls, side.cls, side.fields, v, variant, expected, side.api_name + side.side)


def _build_struct(top_cls, cls, fields: list[FieldSpec], v: int, variant: str, expected: bool, path: str):
    o = cls()
    for f in fields:
        fpath = f"{path}.{f.name}"
        if expected and not f.present(v):
            setattr(o, f.name, f.default())
            continue
        setattr(o, f.name, _build_value(top_cls, f, v, variant, expected, fpath))
    return o


def _build_value(top_cls, f: FieldSpec, v: int, variant: str, expected: bool, path: str):
    if variant == "nulls" and f.nullable_in(v):
        return None
    if variant == "unset" and not f.nullable_in(v) and (f.is_array or f.type in ("string", "bytes", "records")):
        # None where the version cannot encode null: the encoder writes the empty value instead.
        if not expected:
            return None
        return [] if f.is_array else {"string": "", "bytes": b"", "records": b""}[f.type]
    if f.is_array:
        if variant == "empty":
            return []
        if f.is_struct:
            sub = getattr(top_cls, f.type)
            return [_build_struct(top_cls, sub, f.fields, v, variant, expected, f"{path}[{i}]") for i in range(2)]
        return [primitive_value(f.type, f"{path}[{i}]", None, "full") for i in range(3)]
    if f.is_struct:
        sub = getattr(top_cls, f.type)
        return _build_struct(top_cls, sub, f.fields, v, variant, expected, path)
    return primitive_value(f.type, path, f.default(), variant)


def encode(side: SideSpec, v: int, obj) -> bytes:
    out = bytearray()
    side.encoders[v](obj, out)
    return bytes(out)


def decode(side: SideSpec, v: int, data, pos: int = 0):
    return side.decoders[v](data, pos)


# -- the schema and the generated classes agree ------------------------------------------------------

def _check_struct_shape(top_cls, cls, fields: list[FieldSpec]):
    assert tuple(cls.__slots__) == tuple(f.name for f in fields), cls.__qualname__
    fresh = cls()
    for f in fields:
        assert getattr(fresh, f.name) == f.default(), f"{cls.__qualname__}.{f.name}: constructor default"
        if f.is_struct:
            _check_struct_shape(top_cls, getattr(top_cls, f.type), f.fields)


@pytest.mark.parametrize("side", ALL_SIDES, ids=lambda s: f"{s.api_name}{s.side.capitalize()}")
def test_classes_match_schema(side: SideSpec):
    assert side.module.API_KEY == side.api_key
    _check_struct_shape(side.cls, side.cls, side.fields)
    assert sorted(side.decoders) == side.version_list()
    assert sorted(side.encoders) == side.version_list()


# -- round trips -------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_round_trip(case):
    side, v = case
    for variant in VARIANTS:
        obj = build(side, v, variant)
        want = build(side, v, variant, expected=True)
        data = encode(side, v, obj)
        got, end = decode(side, v, data)
        assert end == len(data), variant
        assert got == want, variant
        # Decoding is the inverse of encoding on what the version keeps.
        assert encode(side, v, got) == data, variant
        assert encode(side, v, want) == data, variant


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_none_where_the_version_has_no_null_is_encoded_as_empty(case):
    # Kafka's own serializer throws here; a broker is better off sending "" or [] than a null that the
    # client refuses (a Metadata v0-11 topic known only by id, JoinGroup v0-6's protocol_name, ...).
    side, v = case
    data = encode(side, v, build(side, v, "unset"))
    got, end = decode(side, v, data)
    assert end == len(data)
    assert got == build(side, v, "unset", expected=True)


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_decode_stops_at_the_end_of_the_message(case):
    side, v = case
    for variant in VARIANTS:
        data = encode(side, v, build(side, v, variant))
        # Trailing bytes are the next message's business; a leading offset must be honoured.
        trailing = b"\x05\xff\x00\x80garbage"
        got, end = decode(side, v, data + trailing)
        assert end == len(data)
        got2, end2 = decode(side, v, memoryview(b"abc" + data + trailing), 3)
        assert end2 == 3 + len(data)
        assert got == got2 == build(side, v, variant, expected=True)


def _prefix_lengths(n: int) -> list[int]:
    """Every proper prefix length (all of them take about 2 s for every case); a spread sample plus both
    ends should an encoding ever grow past 4 KiB."""
    if n <= 4096:
        return list(range(n))
    step = max(1, n // 48)
    return sorted(set(range(0, 16)) | set(range(0, n, step)) | set(range(n - 16, n)))


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_every_proper_prefix_is_refused(case):
    side, v = case
    for variant in VARIANTS:
        data = encode(side, v, build(side, v, variant))
        for cut in _prefix_lengths(len(data)):
            with pytest.raises((DecodeError, struct.error)):
                decode(side, v, memoryview(data[:cut]))


def test_every_api_has_cases():
    assert {s.api_key for s in ALL_SIDES} == set(BY_KEY)
    assert len(ALL_CASES) > 300


# -- generator features no Kafka schema of ours uses yet ------------------------------------------------

INNER_FIELDS = [  # a struct used twice: the schemas repeat its fields at each use
    {"name": "count", "type": "int32", "versions": "1+"},
    {"name": "labels", "type": "[]string", "versions": "1+", "nullable": "3+"},
    {"name": "note", "type": "string", "versions": "3+", "tag": 0, "tagged": "3+"},
]

SYNTHETIC = {
    "api_key": 32000,
    "name": "Synthetic",
    "request": {
        "versions": "0-3",
        "flexible": "2+",
        "fields": [
            {"name": "ratio", "type": "float64", "versions": "0+"},
            {"name": "port", "type": "uint16", "versions": "0+"},
            {"name": "enabled", "type": "bool", "versions": "1+", "default": True},
            {"name": "from", "type": "string", "versions": "0+"},
            {"name": "gone", "type": "int16", "versions": "0-1", "default": 7},
            {"name": "maybe", "type": "Inner", "versions": "1+", "nullable": "1+", "fields": INNER_FIELDS},
            {"name": "ids", "type": "[]uuid", "versions": "0+"},
            {"name": "offsets", "type": "[]int64", "versions": "0+", "nullable": "1+"},
            {"name": "weights", "type": "[]float64", "versions": "3+"},
            {"name": "flags", "type": "[]bool", "versions": "0+"},
            {"name": "ports", "type": "[]uint16", "versions": "0+"},
            {"name": "blob", "type": "bytes", "versions": "0+", "nullable": "2+"},
            {"name": "recs", "type": "records", "versions": "0+"},
            {"name": "opt_recs", "type": "records", "versions": "0+", "nullable": "0+"},
            {
                "name": "items", "type": "[]Item", "versions": "0+",
                "fields": [
                    {"name": "key", "type": "string", "versions": "0+"},
                    {"name": "inner", "type": "Inner", "versions": "1+", "nullable": "1+", "fields": INNER_FIELDS},
                    {"name": "hint", "type": "int64", "versions": "2+", "tag": 7, "tagged": "2+", "default": -1},
                ],
            },
            {"name": "label", "type": "string", "versions": "2+", "nullable": "2+", "default": None,
             "tag": 0, "tagged": "2+"},
            {"name": "epoch", "type": "int32", "versions": "2+", "tag": 1, "tagged": "2+", "default": -1},
            {
                "name": "leader", "type": "Leader", "versions": "2+", "tag": 2, "tagged": "2+",
                "fields": [
                    {"name": "leader_id", "type": "int32", "versions": "2+", "default": -1},
                    {"name": "leader_epoch", "type": "int32", "versions": "2+", "default": -1},
                ],
            },
            {"name": "maybe_list", "type": "[]int32", "versions": "2+", "nullable": "2+", "default": None,
             "tag": 3, "tagged": "2+"},
            {"name": "tagged_blob", "type": "bytes", "versions": "2+", "tag": 4, "tagged": "2+"},
            {"name": "names", "type": "[]string", "versions": "3+", "nullable": "3+", "tag": 130, "tagged": "3+"},
        ],
    },
    "response": {
        "versions": "0-1",
        "flexible": "none",
        "fields": [
            {"name": "error_code", "type": "int16", "versions": "0+"},
            {"name": "message", "type": "string", "versions": "1+", "nullable": "1+", "default": ""},
        ],
    },
}


def _synthetic_module():
    """tools/gen.py's module for SYNTHETIC, executed as if it lived in kbroker/wire/messages/."""
    import importlib.util
    import sys
    import types

    spec = importlib.util.spec_from_file_location("_kbroker_gen_under_test", ROOT / "tools" / "gen.py")
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(gen)
    finally:
        del sys.modules[spec.name]
    source = gen.gen_module(SYNTHETIC)
    mod = types.ModuleType("kbroker.wire.messages._synthetic")
    mod.__package__ = "kbroker.wire.messages"
    exec(compile(source, "<synthetic>", "exec"), mod.__dict__)
    return mod


SYNTHETIC_MODULE = _synthetic_module()
SYNTHETIC_SIDES = [
    SideSpec(SYNTHETIC["api_key"], SYNTHETIC["name"], side, parse_range(SYNTHETIC[side]["versions"]),
             parse_range(SYNTHETIC[side]["flexible"]), parse_fields(SYNTHETIC[side]["fields"]), SYNTHETIC_MODULE)
    for side in ("request", "response")
]
SYNTHETIC_CASES = [(s, v) for s in SYNTHETIC_SIDES for v in s.version_list()]


@pytest.mark.parametrize("side", SYNTHETIC_SIDES, ids=lambda s: s.side)
def test_synthetic_classes_match_schema(side):
    _check_struct_shape(side.cls, side.cls, side.fields)


@pytest.mark.parametrize("case", SYNTHETIC_CASES, ids=case_id)
def test_synthetic_round_trips(case):
    # Every test above, on a schema with the types and shapes our Kafka schemas do not use (yet):
    # float64, uint16, arrays of uuid/bool/float64/uint16, a keyword name, non-nullable records,
    # a nullable struct used twice, tagged structs, tagged nullable arrays, a tag above 127.
    test_round_trip(case)
    test_decode_stops_at_the_end_of_the_message(case)
    test_every_proper_prefix_is_refused(case)
    test_none_where_the_version_has_no_null_is_encoded_as_empty(case)


def test_synthetic_wire_layout():
    side = SYNTHETIC_SIDES[0]
    R = side.cls
    # v2: flexible. An untouched message writes no tagged field at all.
    o = R(ratio=0.5, port=65535, from_="x", ids=[], offsets=[], flags=[True], ports=[1], blob=None,
          recs=b"", opt_recs=None, items=[])
    data = encode(side, 2, o)
    assert data == (
        b"\x3f\xe0\x00\x00\x00\x00\x00\x00" + b"\xff\xff" + b"\x01"  # ratio, port, enabled
        + b"\x02x"  # from
        + b"\xff"  # maybe: null
        + b"\x01" + b"\x01" + b"\x02\x01" + b"\x02\x00\x01"  # ids, offsets, flags, ports
        + b"\x00" + b"\x01" + b"\x00"  # blob null, recs empty, opt_recs null
        + b"\x01"  # items
        + b"\x00"  # no tagged fields
    )
    # Tagged fields go out in tag order, each only when it differs from its default.
    o.epoch, o.label, o.maybe_list = 5, "l", []
    data = encode(side, 2, o)
    assert data.endswith(b"\x03" + b"\x00\x02\x02l" + b"\x01\x04\x00\x00\x00\x05" + b"\x03\x01\x01")
