"""Avro schemas: parsed with fastavro, checked with the Avro specification's schema resolution rules.

``incompatibilities(reader, writer)`` says why data written with ``writer`` cannot be read with ``reader``
(spec 1.11, "Schema Resolution"), in the words of Avro's SchemaCompatibility (Confluent's checker):

- same primitive type, or a promotion: int to long, float or double; long to float or double; float to
  double; string to bytes and bytes to string;
- records: the same full name (or the reader's aliases name the writer); every reader field is in the
  writer (by name or the reader field's aliases) with a readable type, or has a default;
- enums: the same name; every writer symbol is a reader symbol unless the reader has a default;
- fixed: the same name and size; arrays: readable items; maps: readable values;
- a writer union: every branch readable; a reader union: some branch reads the (non-union) writer.

Logical types are read as their underlying types (as Avro's resolution does). References are named types
defined in other registered schemas, parsed first into the same name table.
"""

from __future__ import annotations

import base64
import decimal
import io
import json
import uuid

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
PROMOTIONS = {"int": {"long", "float", "double"}, "long": {"float", "double"}, "float": {"double"},
              "string": {"bytes"}, "bytes": {"string"}}


class AvroSchema:
    schema_type = "AVRO"

    def __init__(self, raw, parsed, names: dict):
        self.raw = raw  # the JSON as given
        self.parsed = parsed  # fastavro's parsed schema (names fully qualified)
        self.names = names  # full name -> parsed named type, this schema's and its references'
        self.canonical = json.dumps(raw, separators=(",", ":"))
        self._reader = None

    def normalized(self) -> str:
        """Confluent's normalize for Avro: a canonical JSON text; here the parsed form, names fully
        qualified and shorthand types expanded, without whitespace (defaults, docs and aliases kept)."""
        return json.dumps(_strip_hints(self.parsed), separators=(",", ":"))

    def decode(self, payload: bytes):
        if self._reader is None:  # fastavro's reader parses again: named types from references inlined
            self._reader = fastavro.parse_schema(self.raw, named_schemas=dict(self.names), expand=True,
                                                 _write_hint=False)
        return _jsonable(fastavro.schemaless_reader(io.BytesIO(payload), self._reader))


def _strip_hints(s):
    if isinstance(s, dict):
        return {k: _strip_hints(v) for k, v in s.items() if not k.startswith("__")}
    if isinstance(s, list):
        return [_strip_hints(x) for x in s]
    return s


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(v).decode()
    if isinstance(v, (decimal.Decimal, uuid.UUID)):
        return str(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def parse(schema_str: str, deps: list[tuple[str, str]]) -> AvroSchema:
    """``deps`` are the referenced schemas, each after its own references. Raises ValueError."""
    names: dict = {}
    try:
        for _name, dep_str in deps:
            fastavro.parse_schema(json.loads(dep_str), named_schemas=names, _write_hint=False)
        raw = json.loads(schema_str)
        parsed = fastavro.parse_schema(raw, named_schemas=names, _write_hint=False)
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"Invalid schema: {e}") from None
    return AvroSchema(raw, parsed, names)


def _resolve(s, names):
    while isinstance(s, str) and s not in PRIMITIVES:
        s = names[s]
    if isinstance(s, dict) and s.get("type") in PRIMITIVES:
        return s["type"]
    return s


def _kind(s) -> str:
    if isinstance(s, str):
        return s
    if isinstance(s, list):
        return "union"
    return s["type"]


def _name_matches(reader: dict, writer: dict) -> bool:
    if reader.get("name") == writer.get("name"):
        return True
    return writer.get("name") in (reader.get("aliases") or ())


class _Checker:
    def __init__(self, reader_names, writer_names, new_is_reader: bool):
        self.rn, self.wn = reader_names, writer_names
        self.new_is_reader = new_is_reader
        self.out: list[str] = []
        self.seen: set = set()

    def _say(self, error_type: str, description: str, info: str) -> None:
        self.out.append(f"{{errorType:'{error_type}', description:'{description}', additionalInfo:'{info}'}}")

    def compatible(self, reader, writer) -> bool:
        saved = self.out
        self.out = []
        self.check(reader, writer, "/")
        ok = not self.out
        self.out = saved
        return ok

    def check(self, reader, writer, path: str) -> None:
        r = _resolve(reader, self.rn)
        w = _resolve(writer, self.wn)
        rk, wk = _kind(r), _kind(w)
        if wk == "union":
            for i, branch in enumerate(w):
                self.check(r, branch, f"{path}{i}" if path.endswith("/") else f"{path}/{i}")
            return
        if rk == "union":
            if not any(self.compatible(branch, w) for branch in r):
                self._say("MISSING_UNION_BRANCH", f"The {self._old()} schema has a branch at path '{path}' "
                          f"that is missing in the {self._new()} schema", f"reader union lacking writer type: "
                          f"{wk.upper()}")
            return
        if rk != wk:
            if rk not in PROMOTIONS.get(wk, ()):
                self._say("TYPE_MISMATCH", f"The type (path '{path}') of a field in the {self._new()} schema "
                          f"does not match with the {self._old()} schema", f"reader type: {rk.upper()} not "
                          f"compatible with writer type: {wk.upper()}")
            return
        if rk in PRIMITIVES:
            return
        if rk == "record":
            key = (r.get("name"), w.get("name"))
            if key in self.seen:
                return
            self.seen.add(key)
            if not _name_matches(r, w):
                self._say("NAME_MISMATCH", f"The name of the schema has changed (path '{path}')",
                          f"expected: {w.get('name')}")
                return
            writer_fields = {f["name"]: f for f in w.get("fields", [])}
            for i, field in enumerate(r.get("fields", [])):
                wf = writer_fields.get(field["name"])
                if wf is None:
                    for alias in field.get("aliases") or ():
                        if alias in writer_fields:
                            wf = writer_fields[alias]
                            break
                fpath = f"{path.rstrip('/')}/fields/{i}"
                if wf is None:
                    if "default" not in field:
                        self._say("READER_FIELD_MISSING_DEFAULT_VALUE",
                                  f"The field '{field['name']}' at path '{fpath}' in the {self._new()} schema has "
                                  f"no default value and is missing in the {self._old()} schema", field["name"])
                else:
                    self.check(field["type"], wf["type"], f"{fpath}/type")
        elif rk == "enum":
            if not _name_matches(r, w):
                self._say("NAME_MISMATCH", f"The name of the schema has changed (path '{path}')",
                          f"expected: {w.get('name')}")
                return
            missing = [s for s in w.get("symbols", []) if s not in r.get("symbols", [])]
            if missing and "default" not in r:
                self._say("MISSING_ENUM_SYMBOLS", f"The {self._new()} schema is missing enum symbols "
                          f"'{missing}' at path '{path.rstrip('/')}/symbols' in the {self._old()} schema",
                          str(missing))
        elif rk == "fixed":
            if not _name_matches(r, w):
                self._say("NAME_MISMATCH", f"The name of the schema has changed (path '{path}')",
                          f"expected: {w.get('name')}")
            elif r.get("size") != w.get("size"):
                self._say("FIXED_SIZE_MISMATCH", f"The size of FIXED type field at path '{path}' in the "
                          f"{self._old()} schema does not match with the {self._new()} schema",
                          f"expected: {w.get('size')}, found: {r.get('size')}")
        elif rk == "array":
            self.check(r["items"], w["items"], f"{path.rstrip('/')}/items")
        elif rk == "map":
            self.check(r["values"], w["values"], f"{path.rstrip('/')}/values")

    # In BACKWARD the new schema reads (it is the reader); in FORWARD the old one does.
    def _new(self) -> str:
        return "new" if self.new_is_reader else "old"

    def _old(self) -> str:
        return "old" if self.new_is_reader else "new"


def incompatibilities(reader: AvroSchema, writer: AvroSchema, new_is_reader: bool = True) -> list[str]:
    c = _Checker(reader.names, writer.names, new_is_reader)
    c.check(reader.parsed, writer.parsed, "/")
    return c.out
