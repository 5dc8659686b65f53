"""kafkajs' Schema Registry client (@kafkajs/confluent-schema-registry) against kbroker's Schema Registry:
Avro, JSON Schema and Protobuf values registered, encoded, produced, consumed and decoded through kbroker,
and an incompatible evolution refused (js/registry.js). Starts its own kbroker with the registry on, so it
runs only when the suite targets kbroker; skips, saying why, without Node.js or the npm packages."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from kcompat.target import kind_of

JS = Path(__file__).resolve().parent / "js"


def test_kafkajs_registry_client_round_trips_every_schema_type(request):
    if kind_of(request.config) != "kbroker":
        pytest.skip("starts its own kbroker with the Schema Registry; not meaningful against another broker")
    if shutil.which("node") is None:
        pytest.skip("no Node.js")
    if not (JS / "node_modules" / "@kafkajs" / "confluent-schema-registry").is_dir():
        pytest.skip("@kafkajs/confluent-schema-registry not installed (bash compat-tests/setup.sh)")
    from kbroker import Broker

    with Broker(port=0, storage="memory", schema_registry_port=0) as b:
        topic = f"sr-js-{uuid.uuid4().hex[:8]}"
        arg = {"bootstrap": b.bootstrap_servers, "registry": b.schema_registry_url, "topic": topic}
        proc = subprocess.run(["node", str(JS / "registry.js"), json.dumps(arg)], capture_output=True, text=True,
                              timeout=90)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["ok"], out
        result = out["result"]
        assert sorted(result["decoded"], key=lambda d: d["sensor"]) == [
            {"sensor": "a", "value": 1.5}, {"sensor": "j", "value": 2.5}, {"sensor": "p", "value": 3.5}]
        assert len(set(result["ids"].values())) == 3
        assert result["refused"] is not None and result["refused"]["status"] == 409, result
        assert result["evolved"] not in result["ids"].values()
        # The records kbroker holds carry those ids, and its control plane decodes them (the Protobuf one
        # although this client writes no message indexes, its issue #248).
        decoded = [r["value_decoded"] for r in b.control.records(topic)]
        assert sorted(d["schema_id"] for d in decoded) == sorted(result["ids"].values())
        assert sorted((d["json"] for d in decoded), key=lambda j: j["sensor"]) == sorted(
            result["decoded"], key=lambda j: j["sensor"])
