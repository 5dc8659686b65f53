"""The Schema Registry's REST API over plain HTTP: compatibility levels per schema type, deletes, modes,
normalisation, and Confluent's status codes and error bodies (kbroker/schema_registry/)."""

import http.client
import json
import uuid
from urllib.parse import urlsplit

import pytest

from kbroker import Broker

CT = "application/vnd.schemaregistry.v1+json"


@pytest.fixture(scope="module")
def registry():
    with Broker(port=0, storage="memory", schema_registry_port=0) as b:
        yield b


class Http:
    def __init__(self, url):
        u = urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)  # one keep-alive connection

    def __call__(self, method, path, body=None, content_type=CT):
        headers = {"Accept": CT}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)


@pytest.fixture
def api(registry):
    h = Http(registry.schema_registry_url)
    yield h
    h.conn.close()


def _subject():
    return f"s-{uuid.uuid4().hex[:10]}"


# Per schema type: a schema whose field "a" has a given type, optionally with one more field that is a
# compatible change both ways (Avro: a field with a default; JSON: a description; Protobuf: a new field).
def avro(t, extra=False, name="R"):
    fields = [{"name": "a", "type": t}] + ([{"name": "b", "type": "string", "default": ""}] if extra else [])
    return {"schema": json.dumps({"type": "record", "name": name, "fields": fields})}


def jsons(t, extra=False):
    s = {"type": "object", "properties": {"a": {"type": t}}}
    if extra:
        s["description"] = "one more version"
    return {"schemaType": "JSON", "schema": json.dumps(s)}


def proto(t, extra=False):
    return {"schemaType": "PROTOBUF", "schema": f'syntax = "proto3";\nmessage R {{\n  {t} a = 1;\n'
            + ("  string b = 2;\n" if extra else "") + "}\n"}


TYPES = {  # maker, (type of version 1, type of version 2, a type incompatible with version 2)
    "AVRO": (avro, ("int", "string", "boolean")),
    "JSON": (jsons, ("integer", "string", "boolean")),
    "PROTOBUF": (proto, ("int32", "string", "double")),
}
LEVELS = ["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("schema_type", list(TYPES))
def test_each_level_refuses_an_incompatible_change_and_accepts_a_compatible_one(api, schema_type, level):
    make, (t1, t2, bad) = TYPES[schema_type]
    s = _subject()
    # History written under NONE: version 1 and an incompatible version 2.
    assert api("PUT", f"/config/{s}", {"compatibility": "NONE"}) == (200, {"compatibility": "NONE"})
    assert api("POST", f"/subjects/{s}/versions", make(t1))[0] == 200
    assert api("POST", f"/subjects/{s}/versions", make(t2))[0] == 200
    assert api("PUT", f"/config/{s}", {"compatibility": level}) == (200, {"compatibility": level})
    assert api("GET", f"/config/{s}") == (200, {"compatibilityLevel": level})

    status, body = api("POST", f"/compatibility/subjects/{s}/versions/latest?verbose=true", make(bad))
    assert status == 200
    if level == "NONE":
        assert body == {"is_compatible": True, "messages": []}
        assert api("POST", f"/subjects/{s}/versions", make(bad))[0] == 200
        return
    assert body["is_compatible"] is False and body["messages"], body
    status, body = api("POST", f"/subjects/{s}/versions", make(bad))
    assert status == 409 and body["error_code"] == 40901, body
    assert "incompatible with an earlier schema" in body["message"]

    compatible = make(t2, extra=True)
    if level.endswith("_TRANSITIVE"):
        # Compatible with version 2, not with version 1: refused while version 1 is there...
        status, body = api("POST", f"/subjects/{s}/versions", compatible)
        assert status == 409 and "oldSchemaVersion: 1" in body["message"], body
        # ... and accepted once version 1 is (soft) deleted.
        assert api("DELETE", f"/subjects/{s}/versions/1") == (200, 1)
    status, body = api("POST", f"/subjects/{s}/versions", compatible)
    assert status == 200 and body["id"] > 0, body
    assert api("GET", f"/subjects/{s}/versions/latest")[1]["version"] == 3


def test_register_dedups_and_lookup_finds_the_version(api):
    s, s2 = _subject(), _subject()
    name = f"R{uuid.uuid4().hex[:8]}"  # a schema no other test registers

    def avro(t):
        return globals()["avro"](t, name=name)
    st, first = api("POST", f"/subjects/{s}/versions", avro("int"))
    assert st == 200
    assert api("POST", f"/subjects/{s}/versions", avro("int")) == (200, first)  # same schema: same id, no version
    assert api("GET", f"/subjects/{s}/versions") == (200, [1])
    assert api("POST", f"/subjects/{s2}/versions", avro("int")) == (200, first)  # same id in another subject
    assert api("GET", f"/schemas/ids/{first['id']}/subjects")[1] == sorted([s, s2])
    assert sorted(api("GET", f"/schemas/ids/{first['id']}/versions")[1], key=lambda x: x["subject"]) == sorted(
        [{"subject": s, "version": 1}, {"subject": s2, "version": 1}], key=lambda x: x["subject"])
    st, found = api("POST", f"/subjects/{s}", avro("int"))
    assert st == 200 and found["id"] == first["id"] and found["version"] == 1 and found["subject"] == s
    assert api("POST", f"/subjects/{s}", avro("long"))[1]["error_code"] == 40403
    assert api("GET", f"/schemas/ids/{first['id']}") == (200, {"schema": avro("int")["schema"]})
    assert api("GET", "/schemas/types") == (200, ["AVRO", "JSON", "PROTOBUF"])
    assert s in api("GET", "/subjects")[1]


def test_normalize_makes_equivalent_texts_one_schema(api):
    s = _subject()
    a = {"schemaType": "JSON", "schema": '{"type": "object", "properties": {"x": {"type": "string"}}}'}
    b = {"schemaType": "JSON", "schema": '{"properties": {"x": {"type": "string"}}, "type": "object"}'}
    id_a = api("POST", f"/subjects/{s}/versions?normalize=true", a)[1]["id"]
    assert api("POST", f"/subjects/{s}/versions?normalize=true", b)[1]["id"] == id_a
    assert api("GET", f"/subjects/{s}/versions") == (200, [1])
    assert api("POST", f"/subjects/{s}?normalize=true", b)[1]["version"] == 1


def test_soft_and_permanent_deletes_with_their_error_codes(api):
    s = _subject()
    name = f"D{uuid.uuid4().hex[:8]}"  # schemas no other test registers
    ids = [api("POST", f"/subjects/{s}/versions", avro(t, extra=e, name=name))[1]["id"]
           for t, e in (("int", False), ("int", True))]
    assert api("DELETE", f"/subjects/{s}/versions/1?permanent=true")[1]["error_code"] == 40407
    assert api("DELETE", f"/subjects/{s}/versions/1") == (200, 1)
    assert api("DELETE", f"/subjects/{s}/versions/1")[1]["error_code"] == 40406
    assert api("GET", f"/subjects/{s}/versions/1")[1]["error_code"] == 40402
    assert api("GET", f"/subjects/{s}/versions/1?deleted=true")[1]["id"] == ids[0]
    assert api("GET", f"/subjects/{s}/versions") == (200, [2])
    assert api("GET", f"/subjects/{s}/versions?deleted=true") == (200, [1, 2])
    assert api("GET", f"/schemas/ids/{ids[0]}")[0] == 200  # a soft-deleted version's schema stays readable
    assert api("DELETE", f"/subjects/{s}?permanent=true")[1]["error_code"] == 40405
    assert api("DELETE", f"/subjects/{s}") == (200, [2])
    assert api("DELETE", f"/subjects/{s}")[1]["error_code"] == 40404
    assert s not in api("GET", "/subjects")[1] and s in api("GET", "/subjects?deleted=true")[1]
    assert api("GET", f"/subjects/{s}/versions")[1]["error_code"] == 40401
    assert api("DELETE", f"/subjects/{s}?permanent=true") == (200, [1, 2])
    assert api("GET", f"/schemas/ids/{ids[0]}")[1]["error_code"] == 40403
    assert api("GET", f"/subjects/{s}/versions?deleted=true")[1]["error_code"] == 40401
    # A new registration never reuses an id freed by a permanent delete.
    assert api("POST", f"/subjects/{s}/versions", avro("long"))[1]["id"] > max(ids)


@pytest.mark.parametrize("method,path,body,status,code", [
    ("GET", "/subjects/nope-{u}/versions", None, 404, 40401),
    ("GET", "/subjects/{s}/versions/9", None, 404, 40402),
    ("GET", "/subjects/{s}/versions/zero", None, 422, 42202),
    ("GET", "/subjects/{s}/versions/0", None, 422, 42202),
    ("GET", "/schemas/ids/987654", None, 404, 40403),
    ("POST", "/subjects/{s}/versions", {"schema": "{\"type\": \"recrd\"}"}, 422, 42201),
    ("POST", "/subjects/{s}/versions", {"schemaType": "JSON", "schema": "{\"type\": 12}"}, 422, 42201),
    ("POST", "/subjects/{s}/versions", {"schemaType": "PROTOBUF", "schema": "message M { strin a = 1; }"}, 422, 42201),
    ("POST", "/subjects/{s}/versions", {"schemaType": "XML", "schema": "<a/>"}, 422, 42201),
    ("POST", "/subjects/{s}/versions", {"schema": "{}", "references": [
        {"name": "x", "subject": "missing-{u}", "version": 1}]}, 422, 42201),
    ("PUT", "/config/{s}", {"compatibility": "SIDEWAYS"}, 422, 42203),
    ("PUT", "/mode/{s}", {"mode": "WRITEONLY"}, 422, 42204),
    ("GET", "/config/{s}", None, 404, 40408),
    ("GET", "/mode/{s}", None, 404, 40409),
    ("GET", "/no/such/route", None, 404, 404),
])
def test_error_codes_and_bodies(api, method, path, body, status, code):
    s, u = _subject(), uuid.uuid4().hex[:6]
    assert api("POST", f"/subjects/{s}/versions", avro("int"))[0] == 200
    got_status, got = api(method, path.format(s=s, u=u), body)
    assert got_status == status, got
    assert got["error_code"] == code and isinstance(got["message"], str) and got["message"], got


def test_content_types(registry, api):
    s = _subject()
    for ctype in ("application/vnd.schemaregistry.v1+json", "application/vnd.schemaregistry+json",
                  "application/json", "application/octet-stream"):
        assert api("POST", f"/subjects/{s}/versions", avro("int"), content_type=ctype)[0] == 200
    status, body = api("POST", f"/subjects/{s}/versions", avro("int"), content_type="text/plain")
    assert (status, body["error_code"]) == (415, 415)
    assert api("POST", f"/subjects/{s}/versions", b"{not json")[0] == 400
    api.conn.request("GET", "/subjects", headers={"Accept": "application/json"})
    resp = api.conn.getresponse()
    resp.read()
    assert resp.getheader("Content-Type") == "application/json"
    api.conn.request("GET", "/subjects", headers={"Accept": CT})
    resp = api.conn.getresponse()
    resp.read()
    assert resp.getheader("Content-Type") == CT


def test_modes_readonly_and_import_with_ids(api):
    s = _subject()
    assert api("GET", "/mode") == (200, {"mode": "READWRITE"})
    assert api("PUT", f"/mode/{s}", {"mode": "READONLY"}) == (200, {"mode": "READONLY"})
    status, body = api("POST", f"/subjects/{s}/versions", avro("int"))
    assert (status, body["error_code"]) == (422, 42205)
    assert api("DELETE", f"/mode/{s}") == (200, {"mode": "READONLY"})
    # An id may only be given in IMPORT mode.
    body = dict(avro("int"), id=50000, version=7)
    assert api("POST", f"/subjects/{s}/versions", body)[1]["error_code"] == 42205
    assert api("PUT", f"/mode/{s}", {"mode": "IMPORT"}) == (200, {"mode": "IMPORT"})
    assert api("POST", f"/subjects/{s}/versions", body) == (200, {"id": 50000})
    assert api("GET", f"/subjects/{s}/versions/7")[1]["id"] == 50000
    # IMPORT skips compatibility; an id already naming another schema is refused.
    assert api("POST", f"/subjects/{s}/versions", dict(avro("boolean"), id=50000, version=8))[1]["error_code"] == 42205
    assert api("PUT", f"/mode/{s}", {"mode": "READWRITE"})[0] == 200
    fresh = avro("long", name=f"I{uuid.uuid4().hex[:8]}")
    assert api("POST", f"/subjects/{_subject()}/versions", fresh)[1]["id"] > 50000  # ids go on after imported ones
    # The whole registry cannot go into IMPORT while subjects exist, unless forced.
    assert api("PUT", "/mode", {"mode": "IMPORT"})[1]["error_code"] == 42205


def test_global_compatibility_config(api):
    assert api("GET", "/config")[1]["compatibilityLevel"] in ("BACKWARD", "NONE", "FULL")
    s = _subject()
    assert api("GET", f"/config/{s}?defaultToGlobal=true")[0] == 200
    assert api("PUT", f"/config/{s}", {"compatibility": "full"}) == (200, {"compatibility": "FULL"})
    assert api("DELETE", f"/config/{s}") == (200, {"compatibilityLevel": "FULL"})
    assert api("GET", f"/config/{s}")[1]["error_code"] == 40408


def test_restart_keeps_every_schema_id_config_and_mode(tmp_path):
    data = tmp_path / "data"
    with Broker(port=0, data_dir=data, schema_registry_port=0) as b:
        api = Http(b.schema_registry_url)
        s = _subject()
        ids = {}
        for kind, make in (("AVRO", avro), ("JSON", jsons), ("PROTOBUF", proto)):
            t = TYPES[kind][1][0]
            ids[kind] = api("POST", f"/subjects/{s}-{kind}/versions", make(t))[1]["id"]
            api("POST", f"/subjects/{s}-{kind}/versions", make(t, extra=True))
        assert api("PUT", f"/config/{s}-AVRO", {"compatibility": "FULL_TRANSITIVE"})[0] == 200
        assert api("PUT", f"/mode/{s}-JSON", {"mode": "READONLY"})[0] == 200
        assert api("DELETE", f"/subjects/{s}-PROTOBUF/versions/1") == (200, 1)
        before = {path: api("GET", path) for path in
                  ["/subjects", "/subjects?deleted=true", "/schemas", "/schemas?deleted=true",
                   f"/config/{s}-AVRO", f"/mode/{s}-JSON"]
                  + [f"/schemas/ids/{i}" for i in range(1, max(ids.values()) + 2)]}
        # The last id is freed by a permanent delete: it must stay used after the restart.
        api("DELETE", f"/subjects/{s}-PROTOBUF")
        api("DELETE", f"/subjects/{s}-PROTOBUF?permanent=true")
        top = max(ids.values()) + 1
        api.conn.close()
    with Broker(port=0, data_dir=data, schema_registry_port=0) as b:
        api = Http(b.schema_registry_url)
        for path, answer in before.items():
            if "PROTOBUF" in json.dumps(answer):
                continue  # permanently deleted since
            assert api("GET", path) == answer, path
        assert api("GET", f"/subjects/{s}-AVRO/versions") == (200, [1, 2])
        assert api("POST", f"/subjects/{s}-JSON/versions", jsons("string"))[1]["error_code"] == 42205
        new_id = api("POST", f"/subjects/{s}-new/versions", avro("double"))[1]["id"]
        assert new_id > top
        api.conn.close()


def test_off_unless_asked_and_settable_by_flag_and_setting():
    import argparse

    from kbroker import cli
    from kbroker.cli import build_config

    ap = argparse.ArgumentParser()
    cli._serve_parser(ap.add_subparsers(dest="command"))
    assert build_config(ap.parse_args(["serve"]), environ={}).schema_registry_port is None
    flagged = build_config(ap.parse_args(["serve", "--schema-registry-port", "8081"]), environ={})
    assert flagged.schema_registry_port == 8081
    cfg = build_config(ap.parse_args(["serve", "--set", "kbroker.schema.registry.port=0",
                                      "--set", "schema.compatibility.level=full"]), environ={})
    assert (cfg.schema_registry_port, cfg.schema_compatibility_level) == (0, "FULL")
    env = {"KAFKA_KBROKER_SCHEMA_REGISTRY_PORT": "9"}
    assert build_config(ap.parse_args(["serve"]), environ=env).schema_registry_port == 9
    with Broker(port=0, storage="memory") as b:
        assert b.schema_registry_url is None
    with Broker(port=0, storage="memory", settings={"kbroker.schema.registry.port": "0",
                                                    "schema.compatibility.level": "NONE"}) as b:
        api = Http(b.schema_registry_url)
        assert api("GET", "/config") == (200, {"compatibilityLevel": "NONE"})
        api.conn.close()


def test_schema_endpoints_answer_the_schema_itself(registry, api):
    s = _subject()
    sid = api("POST", f"/subjects/{s}/versions", avro("int", name=f"S{uuid.uuid4().hex[:8]}"))[1]["id"]
    assert api("GET", f"/schemas/ids/{sid}/schema")[1]["type"] == "record"
    assert api("GET", f"/subjects/{s}/versions/1/schema")[1]["fields"][0]["name"] == "a"
    p = _subject()
    text = proto("sint64")["schema"]
    pid = api("POST", f"/subjects/{p}/versions", proto("sint64"))[1]["id"]
    api.conn.request("GET", f"/schemas/ids/{pid}/schema")
    resp = api.conn.getresponse()
    assert resp.read().decode() == text
    assert api("GET", f"/schemas/ids/{pid}") == (200, {"schemaType": "PROTOBUF", "schema": text})
