"""The compatibility rules of each schema type, case by case (kbroker/schema_registry/avro.py,
json_schema.py, protobuf.py, schemas.py). BACKWARD: the new schema reads what the old one wrote."""

import json

import pytest

from kbroker.schema_registry import avro, json_schema, protobuf
from kbroker.schema_registry.schemas import check


def _avro(fields, name="R", **extra):
    return avro.parse(json.dumps(dict({"type": "record", "name": name, "fields": fields}, **extra)), [])


def _backward(old, new):
    return check("BACKWARD", new, [(1, old)])


def _forward(old, new):
    return check("FORWARD", new, [(1, old)])


@pytest.mark.parametrize("writer,reader,ok", [
    ("int", "long", True), ("int", "float", True), ("int", "double", True), ("long", "double", True),
    ("float", "double", True), ("string", "bytes", True), ("bytes", "string", True),
    ("long", "int", False), ("double", "float", False), ("string", "int", False), ("boolean", "int", False),
    (["null", "int"], ["null", "long"], True), (["null", "int"], "int", False), ("int", ["null", "int"], True),
    ("int", ["null", "string"], False),
    ({"type": "array", "items": "int"}, {"type": "array", "items": "long"}, True),
    ({"type": "map", "values": "long"}, {"type": "map", "values": "int"}, False),
    ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]},
     True),
    ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, {"type": "enum", "name": "E", "symbols": ["A"]}, False),
    ({"type": "enum", "name": "E", "symbols": ["A", "B"]},
     {"type": "enum", "name": "E", "symbols": ["A", "Z"], "default": "Z"}, True),
    ({"type": "fixed", "name": "F", "size": 4}, {"type": "fixed", "name": "F", "size": 8}, False),
    ({"type": "fixed", "name": "F", "size": 4}, {"type": "fixed", "name": "G", "size": 4}, False),
    ({"type": "string", "logicalType": "uuid"}, "string", True),
])
def test_avro_resolution_of_a_field_type(writer, reader, ok):
    old = _avro([{"name": "f", "type": writer}])
    new = _avro([{"name": "f", "type": reader}])
    assert (avro.incompatibilities(new, old) == []) is ok


def test_avro_fields_defaults_aliases_and_names():
    base = _avro([{"name": "a", "type": "int"}])
    assert _backward(base, _avro([{"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0}])) == []
    refused = _backward(base, _avro([{"name": "a", "type": "int"}, {"name": "b", "type": "int"}]))
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in refused[0] and "{compatibility: 'BACKWARD'}" in refused
    # Removing a field is backward compatible, forward only if the old reader has a default for it.
    assert _backward(base, _avro([])) == []
    assert _forward(base, _avro([])) != []
    assert _forward(_avro([{"name": "a", "type": "int", "default": 1}]), _avro([])) == []
    # A renamed field with an alias reads the old name; a renamed record with an alias too.
    assert _backward(base, _avro([{"name": "z", "type": "int", "aliases": ["a"]}])) == []
    assert _backward(base, _avro([{"name": "z", "type": "int"}])) != []
    assert _backward(base, _avro([{"name": "a", "type": "int"}], name="S")) != []
    assert _backward(base, _avro([{"name": "a", "type": "int"}], name="S", aliases=["R"])) == []


def test_avro_recursive_types_and_references():
    node = json.dumps({"type": "record", "name": "Node", "fields": [
        {"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"], "default": None}]})
    old = avro.parse(node, [])
    new = avro.parse(node.replace('"int"', '"long"'), [])
    assert _backward(old, new) == [] and _forward(old, new) != []
    dep = ("kb.Address", json.dumps({"type": "record", "name": "Address", "namespace": "kb",
                                     "fields": [{"name": "city", "type": "string"}]}))
    person = avro.parse(json.dumps({"type": "record", "name": "P", "fields": [{"name": "a", "type": "kb.Address"}]}),
                        [dep])
    assert person.decode(b"\x08Oslo") == {"a": {"city": "Oslo"}}
    with pytest.raises(ValueError):
        avro.parse(json.dumps({"type": "record", "name": "P", "fields": [{"name": "a", "type": "kb.Address"}]}), [])
    with pytest.raises(ValueError):
        avro.parse(json.dumps({"type": "record", "name": "P", "fields": [
            {"name": "a", "type": "int", "default": "not an int"}]}), [])


def _json(schema, deps=()):
    return json_schema.parse(json.dumps(schema), [(n, json.dumps(s)) for n, s in deps])


OBJ = {"type": "object", "properties": {"a": {"type": "string"}}}
CLOSED = dict(OBJ, additionalProperties=False)
PARTIAL = dict(OBJ, additionalProperties={"type": "string"})


@pytest.mark.parametrize("old,new,backward_ok", [
    (OBJ, dict(OBJ, properties={"a": {"type": "string"}, "b": {"type": "string"}}), False),  # open model
    (CLOSED, dict(CLOSED, properties={"a": {"type": "string"}, "b": {"type": "string"}}), True),
    (CLOSED, dict(CLOSED, properties={"a": {"type": "string"}, "b": {"type": "string"}}, required=["b"]), False),
    (CLOSED, dict(CLOSED, properties={"a": {"type": "string"}, "b": {"type": "string", "default": ""}},
                  required=["b"]), True),
    (OBJ, dict(OBJ, properties={}), True),  # removed from an open model
    (CLOSED, dict(CLOSED, properties={}), False),  # removed from a closed model
    (PARTIAL, dict(PARTIAL, properties={"a": {"type": "string"}, "b": {"type": "string"}}), True),
    (PARTIAL, dict(PARTIAL, properties={"a": {"type": "string"}, "b": {"type": "integer"}}), False),
    (OBJ, dict(OBJ, required=["a"]), False), (dict(OBJ, required=["a"]), OBJ, True),
    (CLOSED, OBJ, True), (OBJ, CLOSED, False),
    ({"type": "integer"}, {"type": "number"}, True), ({"type": "number"}, {"type": "integer"}, False),
    ({"type": "string"}, {"type": "integer"}, False),
    ({"type": "string"}, {"type": ["string", "null"]}, True), ({"type": ["string", "null"]}, {"type": "string"}, False),
    ({"type": "string", "maxLength": 5}, {"type": "string", "maxLength": 10}, True),
    ({"type": "string", "maxLength": 10}, {"type": "string", "maxLength": 5}, False),
    ({"type": "string"}, {"type": "string", "pattern": "^a"}, False),
    ({"type": "integer", "minimum": 0}, {"type": "integer", "minimum": -5}, True),
    ({"type": "integer", "minimum": 0}, {"type": "integer", "minimum": 5}, False),
    ({"enum": ["a", "b"]}, {"enum": ["a", "b", "c"]}, True), ({"enum": ["a", "b"]}, {"enum": ["a"]}, False),
    ({"type": "array", "items": {"type": "integer"}}, {"type": "array", "items": {"type": "number"}}, True),
    ({"type": "array", "items": {"type": "integer"}, "maxItems": 3}, {"type": "array", "items": {"type": "integer"},
                                                                     "maxItems": 2}, False),
    ({"oneOf": [{"type": "string"}, {"type": "integer"}]},
     {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]}, True),
    ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, {"oneOf": [{"type": "string"}]}, False),
    (dict(OBJ, title="x", description="y"), dict(OBJ, title="z", description="w"), True),
])
def test_json_schema_differences(old, new, backward_ok):
    assert (_backward(_json(old), _json(new)) == []) is backward_ok


def test_json_schema_refs_local_and_across_schemas():
    local = {"type": "object", "properties": {"p": {"$ref": "#/definitions/P"}},
             "definitions": {"P": {"type": "integer"}}}
    widened = json.loads(json.dumps(local))
    widened["definitions"]["P"]["type"] = "number"
    assert _backward(_json(local), _json(widened)) == [] and _forward(_json(local), _json(widened)) != []
    deps_old = [("p.json", {"type": "integer"})]
    deps_new = [("p.json", {"type": "string"})]
    doc = {"type": "object", "properties": {"p": {"$ref": "p.json"}}}
    assert _backward(_json(doc, deps_old), _json(doc, deps_new)) != []
    with pytest.raises(ValueError):
        _json({"type": "object", "properties": {"a": {"type": "strng"}}})


def _proto(body, deps=()):
    return protobuf.parse('syntax = "proto3";\npackage kbt;\n' + body, list(deps))


@pytest.mark.parametrize("old,new,ok", [
    ("message M { int32 a = 1; }", "message M { int32 a = 1; string b = 2; }", True),
    ("message M { int32 a = 1; string b = 2; }", "message M { int32 a = 1; }", True),
    ("message M { int32 a = 1; }", "message M { int32 renamed = 1; }", True),
    ("message M { int32 a = 1; }", "message M { int64 a = 1; }", True),  # same wire group
    ("message M { int32 a = 1; }", "message M { sint32 a = 1; }", False),
    ("message M { int32 a = 1; }", "message M { string a = 1; }", False),
    ("message M { string a = 1; }", "message M { bytes a = 1; }", True),
    ("message M { string a = 1; }", "message M { repeated string a = 1; }", True),
    ("message M { int32 a = 1; }", "message M { repeated int32 a = 1; }", False),
    ("message M { N a = 1; } message N { int32 x = 1; }", "message M { N a = 1; } message N { string x = 1; }", False),
    ("message M { N a = 1; } message N { int32 x = 1; }", "message M { O a = 1; } message O { int32 x = 1; }", False),
    ("message M { int32 a = 1; } message N { int32 x = 1; }", "message M { int32 a = 1; }", False),
    ("message M { int32 a = 1; }", "message M { int32 a = 1; } message N { int32 x = 1; }", True),
    ("message M { oneof o { int32 a = 1; string b = 2; } }", "message M { oneof o { int32 a = 1; } }", False),
    ("message M { oneof o { int32 a = 1; } }", "message M { oneof o { int32 a = 1; string b = 2; } }", True),
    ("message M { int32 a = 1; oneof o { string b = 2; } }", "message M { oneof o { int32 a = 1; string b = 2; } }",
     False),
    ("message M { int32 a = 1; int32 b = 2; }", "message M { oneof o { int32 a = 1; int32 b = 2; } }", False),
    ("message M { int32 a = 1; }", "message M { oneof o { int32 a = 1; } }", True),
    ("enum E { A = 0; B = 1; } message M { E e = 1; }", "enum E { A = 0; } message M { E e = 1; }", True),
    ("message M { map<string, int32> m = 1; }", "message M { map<string, int64> m = 1; }", True),
    ("message M { map<string, int32> m = 1; }", "message M { map<string, string> m = 1; }", False),
    ("message M { map<string, int32> m = 1; }", "message M { int32 m = 1; }", False),
])
def test_protobuf_differences(old, new, ok):
    assert (_backward(_proto(old), _proto(new)) == []) is ok


def test_protobuf_package_change_text_and_descriptor_forms_and_decoding():
    old = _proto("message M { int32 a = 1; }")
    moved = protobuf.parse('syntax = "proto3";\npackage other;\nmessage M { int32 a = 1; }', [])
    assert any("PACKAGE_CHANGED" in m for m in _backward(old, moved))
    from_descriptor = protobuf.parse(old.serialized(), [])
    assert from_descriptor.canonical == old.canonical
    nested = _proto("message A { int32 x = 1; } message B { message C { string s = 1; } C c = 1; }")
    # Message indexes [1, 0] (B.C): count 2, then 1 and 0, zigzag-encoded; then the message.
    assert nested.decode(b"\x04\x02\x00" + b"\x0a\x02hi") == {"s": "hi"}
    assert nested.decode(b"\x00" + b"\x08\x07") == {"x": 7}  # a lone 0 is the first message
    with pytest.raises(ValueError):
        _proto('import "missing.proto"; message M { int32 a = 1; }')


def test_protobuf_text_importing_a_reference_registered_as_a_descriptor():
    dep_text = 'syntax = "proto3";\npackage kbt.common;\nmessage Address { string city = 1; }\n'
    dep = protobuf.parse(dep_text, [])
    main = 'syntax = "proto3";\npackage kbt;\nimport "common.proto";\nmessage C { kbt.common.Address a = 1; }\n'
    from_text = protobuf.parse(main, [("common.proto", dep_text)])
    from_descriptor = protobuf.parse(main, [("common.proto", dep.serialized())])
    assert from_text.canonical == from_descriptor.canonical
    assert from_descriptor.decode(b"\x00\x0a\x06\x0a\x04Rome") == {"a": {"city": "Rome"}}
    with pytest.raises(ValueError):
        protobuf.parse(main.replace("Address a", "Adress a"), [("common.proto", dep.serialized())])
