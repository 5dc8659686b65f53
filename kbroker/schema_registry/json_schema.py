"""JSON Schema: checked with ``jsonschema`` (the draft the schema names, else 2020-12), compared with
Confluent's JSON Schema compatibility rules.

Confluent compares the old schema ("original") with the new one ("update"): BACKWARD compares old to new,
FORWARD new to old, FULL both ways. Every difference has a type, and the change is compatible when all
its differences are in Confluent's set of compatible types (``COMPATIBLE`` below, from its
``SchemaDiff.COMPATIBLE_CHANGES``). Implemented here: type changes (integer to number is an extension),
string lengths and patterns, numeric bounds and ``multipleOf``, enums and ``const``, objects (properties
against open, closed and partially open content models, ``required``, ``additionalProperties``,
``min/maxProperties``), arrays (``items``, ``min/maxItems``, ``uniqueItems``), ``anyOf``/``oneOf``/
``allOf`` (sum and product types, singleton unions), ``not``, and ``$ref`` to local definitions and to
referenced schemas. Not compared: ``dependencies``/``dependentSchemas``, tuple ``items``'
additional items, ``if``/``then``/``else``.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

import jsonschema
import jsonschema.validators

COMPATIBLE = frozenset({
    "ID_CHANGED", "DESCRIPTION_CHANGED", "TITLE_CHANGED", "DEFAULT_CHANGED", "SCHEMA_REMOVED", "TYPE_EXTENDED",
    "MAX_LENGTH_INCREASED", "MAX_LENGTH_REMOVED", "MIN_LENGTH_DECREASED", "MIN_LENGTH_REMOVED", "PATTERN_REMOVED",
    "MAXIMUM_INCREASED", "MAXIMUM_REMOVED", "MINIMUM_DECREASED", "MINIMUM_REMOVED", "EXCLUSIVE_MAXIMUM_INCREASED",
    "EXCLUSIVE_MAXIMUM_REMOVED", "EXCLUSIVE_MINIMUM_DECREASED", "EXCLUSIVE_MINIMUM_REMOVED", "MULTIPLE_OF_REDUCED",
    "MULTIPLE_OF_REMOVED", "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED", "REQUIRED_ATTRIBUTE_REMOVED",
    "MAX_PROPERTIES_INCREASED", "MAX_PROPERTIES_REMOVED", "MIN_PROPERTIES_DECREASED", "MIN_PROPERTIES_REMOVED",
    "ADDITIONAL_PROPERTIES_ADDED", "ADDITIONAL_PROPERTIES_EXTENDED",
    "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
    "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL", "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
    "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
    "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "MAX_ITEMS_INCREASED", "MAX_ITEMS_REMOVED", "MIN_ITEMS_DECREASED", "MIN_ITEMS_REMOVED", "UNIQUE_ITEMS_REMOVED",
    "ENUM_ARRAY_EXTENDED", "COMBINED_TYPE_EXTENDED", "PRODUCT_TYPE_NARROWED", "SUM_TYPE_EXTENDED",
    "NOT_TYPE_NARROWED",
})

_TYPE_KEYS = {"properties": "object", "additionalProperties": "object", "required": "object",
              "patternProperties": "object", "items": "array", "maxItems": "array", "minItems": "array",
              "maxLength": "string", "minLength": "string", "pattern": "string",
              "maximum": "number", "minimum": "number", "multipleOf": "number"}


class JsonSchema:
    schema_type = "JSON"

    def __init__(self, raw, deps: dict):
        self.raw = raw
        self.deps = deps  # reference name -> parsed JSON
        self.canonical = json.dumps(raw, separators=(",", ":"))

    def normalized(self) -> str:
        return json.dumps(self.raw, separators=(",", ":"), sort_keys=True)

    def decode(self, payload: bytes):
        return json.loads(payload)


def parse(schema_str: str, deps: list[tuple[str, str]]) -> JsonSchema:
    try:
        raw = json.loads(schema_str)
        if not isinstance(raw, (dict, bool)):
            raise ValueError("a JSON schema is an object or a boolean")
        cls = jsonschema.validators.validator_for(raw, default=jsonschema.Draft202012Validator) \
            if isinstance(raw, dict) else jsonschema.Draft202012Validator
        cls.check_schema(raw)
        dep_map = {name: json.loads(s) for name, s in deps}
    except (ValueError, jsonschema.SchemaError) as e:
        msg = e.message if isinstance(e, jsonschema.SchemaError) else str(e)
        raise ValueError(f"Invalid schema: {msg}") from None
    return JsonSchema(raw, dep_map)


class _Ctx:
    def __init__(self, original: JsonSchema, update: JsonSchema):
        self.roots = (original, update)
        self.diffs: list[tuple[str, str]] = []
        self.seen: set = set()

    def add(self, path: str, kind: str) -> None:
        self.diffs.append((path, kind))

    def sub(self) -> "_Ctx":
        c = _Ctx(*self.roots)
        c.seen = self.seen
        return c

    def compatible(self) -> bool:
        return all(k in COMPATIBLE for _, k in self.diffs)


def _pointer(doc, fragment: str):
    for part in [unquote(p).replace("~1", "/").replace("~0", "~") for p in fragment.lstrip("/").split("/") if p]:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def _deref(schema, root: JsonSchema, depth: int = 0):
    """Follow ``$ref`` (local, or to a referenced schema by its reference name) to the schema it names."""
    while isinstance(schema, dict) and "$ref" in schema and depth < 32:
        ref = schema["$ref"]
        base, _, frag = ref.partition("#")
        doc = root.raw if not base else root.deps.get(base)
        if doc is None:
            return schema
        try:
            schema = _pointer(doc, frag)
        except (KeyError, IndexError, ValueError, TypeError):
            return schema
        depth += 1
    return schema


def _kind(s) -> str:
    if s is True or s == {}:
        return "empty"
    if s is False:
        return "false"
    if not isinstance(s, dict):
        return "empty"
    for key in ("allOf", "anyOf", "oneOf"):
        if key in s:
            return "combined"
    t = s.get("type")
    if isinstance(t, list):
        return "combined" if len(t) != 1 else _type_kind(t[0])
    if t is not None:
        return _type_kind(t)
    if "enum" in s or "const" in s:
        return "enum"
    if "not" in s:
        return "not"
    for key, kind in _TYPE_KEYS.items():
        if key in s:
            return kind
    return "empty"


def _type_kind(t: str) -> str:
    return "number" if t == "integer" else t


def _combined(s) -> tuple[str, list]:
    for key in ("allOf", "anyOf", "oneOf"):
        if key in s:
            return key, list(s[key])
    types = s["type"]
    rest = {k: v for k, v in s.items() if k != "type"}
    return "anyOf", [dict(rest, type=t) for t in types]


def compare(ctx: _Ctx, original, update, path: str) -> None:
    original = _deref(original, ctx.roots[0])
    update = _deref(update, ctx.roots[1])
    ok, uk = _kind(original), _kind(update)
    if ok != "combined" and uk == "combined":
        crit, subs = _combined(update)
        if len(subs) == 1:
            sub = ctx.sub()
            compare(sub, original, subs[0], path)
            if sub.compatible():
                ctx.diffs += sub.diffs
                return
        elif crit in ("anyOf", "oneOf"):
            for s in subs:
                sub = ctx.sub()
                compare(sub, original, s, path)
                if sub.compatible():
                    ctx.diffs += sub.diffs
                    ctx.add(path, "SUM_TYPE_EXTENDED")
                    return
    elif ok == "combined" and uk != "combined":
        crit, subs = _combined(original)
        if len(subs) == 1:
            sub = ctx.sub()
            compare(sub, subs[0], update, path)
            if sub.compatible():
                ctx.diffs += sub.diffs
                return
    if ok != uk:
        if ok == "false" or uk == "empty":
            return
        ctx.add(path, "TYPE_CHANGED")
        return
    if not isinstance(original, dict) or not isinstance(update, dict):
        return
    key = (id(original), id(update))
    if key in ctx.seen:
        return
    ctx.seen.add(key)
    for attr, kind in (("$id", "ID_CHANGED"), ("title", "TITLE_CHANGED"), ("description", "DESCRIPTION_CHANGED"),
                       ("default", "DEFAULT_CHANGED")):
        if original.get(attr) != update.get(attr):
            ctx.add(path, kind)
    {"string": _string, "number": _number, "enum": _enum, "combined": _combined_diff, "not": _not,
     "object": _object, "array": _array}.get(ok, lambda *a: None)(ctx, original, update, path)


def _bound(ctx, o, u, key, path, name, larger_ok: bool) -> None:
    a, b = o.get(key), u.get(key)
    if a == b:
        return
    if a is None:
        ctx.add(f"{path}/{key}", f"{name}_ADDED")
    elif b is None:
        ctx.add(f"{path}/{key}", f"{name}_REMOVED")
    elif isinstance(a, bool) or isinstance(b, bool):  # draft-4 exclusiveMaximum: true/false
        ctx.add(f"{path}/{key}", f"{name}_{'REMOVED' if not b else 'ADDED'}")
    else:
        bigger = b > a
        ctx.add(f"{path}/{key}", f"{name}_{'INCREASED' if bigger else 'DECREASED'}")


def _string(ctx, o, u, path) -> None:
    _bound(ctx, o, u, "maxLength", path, "MAX_LENGTH", True)
    _bound(ctx, o, u, "minLength", path, "MIN_LENGTH", False)
    if o.get("pattern") != u.get("pattern"):
        kind = "PATTERN_ADDED" if "pattern" not in o else "PATTERN_REMOVED" if "pattern" not in u else "PATTERN_CHANGED"
        ctx.add(f"{path}/pattern", kind)


def _number(ctx, o, u, path) -> None:
    oi, ui = o.get("type") == "integer", u.get("type") == "integer"
    if oi and not ui:
        ctx.add(path, "TYPE_EXTENDED")
    elif ui and not oi:
        ctx.add(path, "TYPE_NARROWED")
    _bound(ctx, o, u, "maximum", path, "MAXIMUM", True)
    _bound(ctx, o, u, "minimum", path, "MINIMUM", False)
    _bound(ctx, o, u, "exclusiveMaximum", path, "EXCLUSIVE_MAXIMUM", True)
    _bound(ctx, o, u, "exclusiveMinimum", path, "EXCLUSIVE_MINIMUM", False)
    a, b = o.get("multipleOf"), u.get("multipleOf")
    if a != b:
        if a is None:
            ctx.add(f"{path}/multipleOf", "MULTIPLE_OF_ADDED")
        elif b is None:
            ctx.add(f"{path}/multipleOf", "MULTIPLE_OF_REMOVED")
        elif a % b == 0:
            ctx.add(f"{path}/multipleOf", "MULTIPLE_OF_REDUCED")
        elif b % a == 0:
            ctx.add(f"{path}/multipleOf", "MULTIPLE_OF_EXPANDED")
        else:
            ctx.add(f"{path}/multipleOf", "MULTIPLE_OF_CHANGED")


def _values(s) -> list:
    return list(s["enum"]) if "enum" in s else [s["const"]] if "const" in s else []


def _enum(ctx, o, u, path) -> None:
    a, b = _values(o), _values(u)
    if a == b:
        return
    if all(x in b for x in a):
        ctx.add(f"{path}/enum", "ENUM_ARRAY_EXTENDED")
    elif all(x in a for x in b):
        ctx.add(f"{path}/enum", "ENUM_ARRAY_NARROWED")
    else:
        ctx.add(f"{path}/enum", "ENUM_ARRAY_CHANGED")


def _combined_diff(ctx, o, u, path) -> None:
    oc, osubs = _combined(o)
    uc, usubs = _combined(u)
    if oc != uc:
        if uc == "anyOf" or (oc == "allOf" and uc == "oneOf"):
            ctx.add(path, "COMBINED_TYPE_EXTENDED")
        else:
            ctx.add(path, "COMBINED_TYPE_CHANGED")
            return
    # Pair each original subschema with a compatible update subschema, each used once.
    free = list(range(len(usubs)))
    for i, os_ in enumerate(osubs):
        for j in free:
            sub = ctx.sub()
            compare(sub, os_, usubs[j], f"{path}/{oc}/{i}")
            if sub.compatible():
                ctx.diffs += sub.diffs
                free.remove(j)
                break
        else:
            if len(osubs) <= len(usubs) or oc != "allOf":
                ctx.add(f"{path}/{oc}/{i}", "COMBINED_TYPE_SUBSCHEMAS_CHANGED")
    if len(usubs) > len(osubs):
        ctx.add(path, "PRODUCT_TYPE_EXTENDED" if uc == "allOf" else "SUM_TYPE_EXTENDED")
    elif len(usubs) < len(osubs):
        ctx.add(path, "PRODUCT_TYPE_NARROWED" if uc == "allOf" else "SUM_TYPE_NARROWED")


def _not(ctx, o, u, path) -> None:
    sub = ctx.sub()
    compare(sub, u["not"], o["not"], f"{path}/not")  # reversed: a wider "not" narrows
    if not sub.compatible():
        ctx.add(path, "NOT_TYPE_EXTENDED")
    elif sub.diffs:
        ctx.add(path, "NOT_TYPE_NARROWED")


def _permits_additional(s) -> bool:
    return s.get("additionalProperties", True) is not False


def _additional_schema(s):
    a = s.get("additionalProperties")
    return a if isinstance(a, dict) and a != {} else None


def _open(s) -> bool:
    return not s.get("patternProperties") and _additional_schema(s) is None and _permits_additional(s)


def _partial(s, name: str):
    for pattern, schema in (s.get("patternProperties") or {}).items():
        if re.search(pattern, name):
            return schema
    return _additional_schema(s)


def _object(ctx, o, u, path) -> None:
    oprops, uprops = o.get("properties") or {}, u.get("properties") or {}
    oreq, ureq = set(o.get("required") or ()), set(u.get("required") or ())
    for name in oprops:
        if name in uprops:
            if name in oreq and name not in ureq:
                ctx.add(f"{path}/required/{name}", "REQUIRED_ATTRIBUTE_REMOVED")
            elif name in ureq and name not in oreq:
                has_default = isinstance(uprops[name], dict) and "default" in uprops[name]
                ctx.add(f"{path}/required/{name}",
                        "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED" if has_default else "REQUIRED_ATTRIBUTE_ADDED")
    for name in list(oprops) + [n for n in uprops if n not in oprops]:
        ppath = f"{path}/properties/{name}"
        if name not in uprops:
            if _open(u):
                ctx.add(ppath, "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL")
                continue
            partial = _partial(u, name)
            if partial is not None:
                sub = ctx.sub()
                compare(sub, oprops[name], partial, ppath)
                ctx.diffs += sub.diffs
                ctx.add(ppath, "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL" if sub.compatible()
                        else "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL")
            elif oprops[name] is False:
                ctx.add(ppath, "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL")
            else:
                ctx.add(ppath, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL")
        elif name not in oprops:
            if _open(o):
                empty = _kind(_deref(uprops[name], ctx.roots[1])) == "empty"
                ctx.add(ppath, "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL" if empty
                        else "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL")
                continue
            partial = _partial(o, name)
            if partial is not None:
                sub = ctx.sub()
                compare(sub, partial, uprops[name], ppath)
                ctx.diffs += sub.diffs
                ctx.add(ppath, "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL" if sub.compatible()
                        else "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL")
            if name in ureq:
                has_default = isinstance(uprops[name], dict) and "default" in uprops[name]
                ctx.add(ppath, "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL" if has_default
                        else "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL")
            else:
                ctx.add(ppath, "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL")
        else:
            compare(ctx, oprops[name], uprops[name], ppath)
    apath = f"{path}/additionalProperties"
    if _permits_additional(o) != _permits_additional(u):
        ctx.add(apath, "ADDITIONAL_PROPERTIES_ADDED" if _permits_additional(u) else "ADDITIONAL_PROPERTIES_REMOVED")
    elif _additional_schema(o) is None and _additional_schema(u) is not None:
        ctx.add(apath, "ADDITIONAL_PROPERTIES_NARROWED")
    elif _additional_schema(u) is None and _additional_schema(o) is not None:
        ctx.add(apath, "ADDITIONAL_PROPERTIES_EXTENDED")
    elif _additional_schema(o) is not None:
        compare(ctx, _additional_schema(o), _additional_schema(u), apath)
    _bound(ctx, o, u, "maxProperties", path, "MAX_PROPERTIES", True)
    _bound(ctx, o, u, "minProperties", path, "MIN_PROPERTIES", False)


def _array(ctx, o, u, path) -> None:
    _bound(ctx, o, u, "maxItems", path, "MAX_ITEMS", True)
    _bound(ctx, o, u, "minItems", path, "MIN_ITEMS", False)
    if bool(o.get("uniqueItems")) != bool(u.get("uniqueItems")):
        ctx.add(f"{path}/uniqueItems", "UNIQUE_ITEMS_ADDED" if u.get("uniqueItems") else "UNIQUE_ITEMS_REMOVED")
    oi, ui = o.get("items"), u.get("items")
    if isinstance(oi, list) or isinstance(ui, list):
        if oi != ui:
            ctx.add(f"{path}/items", "TYPE_CHANGED")
        return
    if oi is None and ui is None:
        return
    if oi is None:
        ctx.add(f"{path}/items", "SCHEMA_ADDED")
    elif ui is None:
        ctx.add(f"{path}/items", "SCHEMA_REMOVED")
    else:
        compare(ctx, oi, ui, f"{path}/items")


def incompatibilities(original: JsonSchema, update: JsonSchema) -> list[str]:
    """Confluent's diff of ``original`` (what was written) to ``update`` (what reads it)."""
    ctx = _Ctx(original, update)
    compare(ctx, original.raw, update.raw, "#")
    return [f"{{errorType:'{kind}', description:'Found incompatible change: Difference{{jsonPath='{p}', "
            f"type={kind}}}'}}" for p, kind in ctx.diffs if kind not in COMPATIBLE]
