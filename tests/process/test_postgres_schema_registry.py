"""The Schema Registry of three broker processes coordinated by PostgreSQL (``kbroker serve --node-id N --cluster
postgresql://... --schema-registry-port 0``): each process's registry writes ``_schemas`` (replication factor 3)
through its leader wherever that is, so after kill -9 of the leader of ``_schemas`` the two other processes'
registries register, with confluent-kafka's SchemaRegistryClient, ids unique and every registry answering the
same; the killed broker, started again, answers the same too; and two processes' registries registering at
once never give one id to two schemas."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from support.pgcluster import NODES, TIMEOUT_S, ProcessCluster, logs_on_failure, partition_isrs, wait_full_isr
from support.postgres import needs_postgres, pg  # noqa: F401  pg: a fixture
from support.txn_helpers import wait_until

pytestmark = needs_postgres


def _avro(name: str) -> Schema:
    return Schema(json.dumps({"type": "record", "name": name, "fields": [{"name": "a", "type": "int"}]}), "AVRO")


def _registry_url(proc) -> str:
    while not (line := proc.next_stdout_line()).startswith("kbroker schema registry on "):
        pass
    return line.split()[-1]


def _get(url: str, path: str):
    with urllib.request.urlopen(f"{url}{path}", timeout=TIMEOUT_S) as resp:
        return json.load(resp)


def test_registries_of_the_other_processes_register_after_kill_9_of_the_schemas_leader(pg, tmp_path):
    cluster = ProcessCluster(pg.new_database(), tmp_path, "--schema-registry-port", "0")
    cluster.start()
    with logs_on_failure(cluster):
        procs = cluster.procs
        urls = {n: _registry_url(p) for n, p in procs.items()}
        ids = {"s1": SchemaRegistryClient({"url": urls[1]}).register_schema("s1-value", _avro("S1"))}
        leader, replicas, _isr = partition_isrs(cluster.bootstrap(), "_schemas")[0]
        assert sorted(replicas) == list(NODES)
        wait_full_isr(cluster.bootstrap(), "_schemas")

        killed_at = time.monotonic()
        procs[leader].kill()  # kill -9 of the leader of _schemas
        others = [n for n in NODES if n != leader]
        for i, n in enumerate(others * 2):
            subject = f"s{i + 2}"
            ids[subject] = SchemaRegistryClient({"url": urls[n]}).register_schema(f"{subject}-value",
                                                                                   _avro(subject.upper()))
            if i == 0:
                print(f"registered through broker {n} {time.monotonic() - killed_at:.2f} s after kill -9 of the "
                      f"leader {leader}")
        assert len(set(ids.values())) == len(ids), ids
        for n in others:
            for subject, sid in ids.items():
                assert _get(urls[n], f"/subjects/{subject}-value/versions/latest")["id"] == sid
                assert json.loads(_get(urls[n], f"/schemas/ids/{sid}")["schema"])["name"] == subject.upper()

        cluster.start(leader)  # back, with a new registry port: it reads the state the others wrote
        urls[leader] = _registry_url(procs[leader])
        wait_until(lambda: _get(urls[leader], "/subjects") == sorted(f"{s}-value" for s in ids), TIMEOUT_S,
                   "the restarted broker's registry to list every subject")
        for subject, sid in ids.items():
            assert _get(urls[leader], f"/subjects/{subject}-value/versions/latest")["id"] == sid
        ids["s9"] = SchemaRegistryClient({"url": urls[leader]}).register_schema("s9-value", _avro("S9"))
        assert len(set(ids.values())) == len(ids), ids

        # Two processes' registries registering at once: one id per schema, never one id for two.
        barrier, got, failures = threading.Barrier(2), {}, []

        def register(node: int) -> None:
            client = SchemaRegistryClient({"url": urls[node]})
            try:
                barrier.wait(TIMEOUT_S)
                for i in range(8):
                    for name in (f"Own{node}_{i}", f"Shared{i}"):
                        got[(node, name)] = client.register_schema(f"race-{name}-value", _avro(name))
            except Exception as e:  # reported below, on the test's thread
                failures.append(e)
        threads = [threading.Thread(target=register, args=(n,)) for n in others]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT_S * 2)
        assert not failures, failures
        by_name = {}
        for (_node, name), sid in got.items():
            assert by_name.setdefault(name, sid) == sid, name
        assert len(set(by_name.values()) | set(ids.values())) == len(by_name) + len(ids)
