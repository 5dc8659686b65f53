"""The state log (kbroker/state_log.py) that keeps offsets, groups, transactions, SCRAM credentials and ACLs:
data directories written before it existed load unchanged, and every owner gets the same strict rules."""

import base64
import dataclasses
import json
import os
import shutil
import struct
from pathlib import Path

import crc32c
import pytest

from kbroker.clock import ManualClock
from kbroker.consumer_protocol import decode_consumer_assignment
from kbroker.coordinator.runtime import OFFSETS_TOPIC, partition_for
from kbroker.coordinator.group import GroupConfig, GroupCoordinator
from kbroker.coordinator.offsets import CommittedOffset, FileOffsetStore, MemoryOffsetStore, OffsetStore
from kbroker.coordinator.transaction import ONGOING, TransactionCoordinator
from kbroker.security import acl, scram
from kbroker.security.credentials import CredentialStore
from kbroker.state_log import (
    CorruptStateError,
    FileStateLog,
    KeyedState,
    MemoryStateLog,
    encode_record,
    keyed_state,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "statelog-v1"
TXN_MAGIC, ACL_MAGIC = b"KBTXNST\x00", b"KBACLS\x00\x00"


def _bytes(value):
    return {"base64": base64.b64encode(value).decode()}


@pytest.fixture
def old_data_dir(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    return data


# -- a data directory written before the state log ---------------------------------------------------------------


def test_a_data_directory_written_by_the_journals_loads_the_same_state(old_data_dir):
    """tests/fixtures/make_statelog_v1.py wrote the directory at 23cade4 and what that revision read back."""
    expected = json.loads((old_data_dir / "expected.json").read_text())
    state = old_data_dir / ".kbroker"
    before = {p.name: p.read_bytes() for p in state.iterdir()}

    store = FileOffsetStore(state / "consumer-offsets.journal")
    snapshot = store.load()
    store.close()
    loaded = {
        "groups": {gid: dataclasses.asdict(g) for gid, g in snapshot.groups.items()},
        "offsets": {gid: {f"{t}:{p}": dataclasses.asdict(o) for (t, p), o in offs.items()}
                    for gid, offs in snapshot.offsets.items()},
        "pending_txn_offsets": {f"{pid}:{gid}": {f"{t}:{p}": dataclasses.asdict(o) for (t, p), o in offs.items()}
                                for (pid, gid), offs in snapshot.pending_txn_offsets.items()},
    }
    for name, magic in (("transactions", TXN_MAGIC), ("credentials", CredentialStore.MAGIC), ("acls", ACL_MAGIC)):
        keyed = keyed_state(state / f"{name}.journal", magic)
        loaded[name] = keyed.state
        keyed.close()
    assert json.loads(json.dumps(loaded, default=_bytes)) == expected
    # Reading changed nothing on disk (no migration, no rewrite).
    assert {p.name: p.read_bytes() for p in state.iterdir()} == before


def test_the_old_directory_drives_the_coordinators_as_before(old_data_dir):
    state = old_data_dir / ".kbroker"
    clock = ManualClock()
    groups = GroupCoordinator(clock, GroupConfig(), FileOffsetStore(state / "consumer-offsets.journal"))
    groups.load()
    assert groups.group_state("billing") == "Stable" and groups.generation_id("billing") == 2
    members = groups.describe_group("billing").members
    assert [(m.client_id, m.group_instance_id, decode_consumer_assignment(m.assignment)) for m in members] == [
        ("client-a", None, [{"topic": "orders", "partitions": [0]}]),
        ("client-b", "instance-b", [{"topic": "orders", "partitions": [1]}])]
    assert groups.fetch_offsets("billing").offsets == {("orders", 0): (42, 3, "meta-0"), ("orders", 1): (7, -1, "")}
    assert groups.fetch_offsets("standalone").offsets == {("events", 0): (100, 1, "")}
    assert groups.group_state("gone") is None
    assert groups.fetch_offsets("txn-group").offsets == {("orders", 1): (11, -1, "done")}
    assert groups.fetch_offsets("txn-group", [("orders", 0)], require_stable=True).partition_errors == {
        ("orders", 0): 88}  # UNSTABLE_OFFSET_COMMIT: producer 4000's offsets are still pending
    # The pending transaction still completes, and the new state is written to the same file.
    assert groups.complete_txn_offsets(4000, "txn-group", True) == 0
    groups.close()
    again = GroupCoordinator(clock, GroupConfig(), FileOffsetStore(state / "consumer-offsets.journal"))
    again.load()
    assert again.fetch_offsets("txn-group").offsets[("orders", 0)] == (9, -1, "pending")
    again.close()

    txns = TransactionCoordinator(clock, keyed_state(state / "transactions.journal", TXN_MAGIC), None,
                                  lambda *a: None, lambda g: (OFFSETS_TOPIC, partition_for(g, 50)), lambda t, p: True)
    txns.load()
    open_txn = txns.describe("tx-open")
    # The group's offsets are completed by the marker on its partition of __consumer_offsets.
    assert open_txn.state == ONGOING and open_txn.partitions == {
        ("orders", 0), ("orders", 1), (OFFSETS_TOPIC, partition_for("txn-group", 50))}
    assert open_txn.groups == {"txn-group"}
    assert txns.describe("tx-done").state == "CompleteCommit"
    txns.close()

    creds = CredentialStore(keyed_state(state / "credentials.journal", CredentialStore.MAGIC))
    mech = scram.MECHANISMS["SCRAM-SHA-256"]
    assert scram.password_matches(mech, creds.scram("SCRAM-SHA-256", "alice"), "alice-secret")
    assert creds.scram("SCRAM-SHA-256", "bob") is None
    creds.close()

    authorizer = acl.Authorizer(keyed_state(state / "acls.journal", ACL_MAGIC))
    assert authorizer.authorize("User:alice", "10.0.0.1", acl.READ, acl.TOPIC, "orders")
    assert authorizer.authorize("User:alice", "10.0.0.1", acl.READ, acl.GROUP, "billing")
    assert not authorizer.authorize("User:bob", "10.0.0.1", acl.READ, acl.TOPIC, "orders")
    assert len(authorizer.bindings) == 2
    authorizer.close()


# -- one set of rules for every owner -----------------------------------------------------------------------------


@pytest.fixture(params=["file", "memory"])
def new_log(request, tmp_path):
    """A factory of logs over the same storage: the file one reopens the file, the memory one is one instance."""
    if request.param == "memory":
        memory = MemoryStateLog(compact_min_records=8)
        return lambda: memory
    return lambda: FileStateLog(tmp_path / "state.journal", b"KBTEST\x00\x00", fsync=False, compact_min_bytes=512)


def test_keyed_state_keeps_the_latest_value_and_tombstones_delete(new_log):
    state = KeyedState(new_log())
    state.put("a", {"n": 1})
    state.put("b", {"n": 2})
    state.put("a", {"n": 3})
    state.put("b", None)
    state.put("missing", None)
    assert state.state == {"a": {"n": 3}}
    state.close()
    assert KeyedState(new_log()).state == {"a": {"n": 3}}


def test_compaction_keeps_the_live_values(new_log):
    state = KeyedState(new_log())
    for i in range(300):
        state.put(f"k{i % 5}", {"i": i})
    assert state.log.compactions > 0
    state.close()
    assert KeyedState(new_log()).state == {f"k{j}": {"i": 295 + j} for j in range(5)}


def test_a_failed_write_changes_no_state(tmp_path, monkeypatch):
    path = tmp_path / "state.journal"
    state = keyed_state(path, b"KBTEST\x00\x00")
    state.put("a", 1)

    def no_space(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", no_space)
    with pytest.raises(OSError):
        state.put("a", 2)
    with pytest.raises(OSError):
        state.put("b", 3)
    monkeypatch.undo()
    assert state.state == {"a": 1}
    state.close()
    assert keyed_state(path, b"KBTEST\x00\x00").state == {"a": 1}


def test_a_torn_tail_is_cut_and_the_log_carries_on(tmp_path):
    path = tmp_path / "state.journal"
    state = keyed_state(path, b"KBTEST\x00\x00")
    state.put("a", 1)
    state.close()
    whole = path.read_bytes()
    record = encode_record({"k": "b", "v": 2})
    for cut in range(1, len(record)):
        path.write_bytes(whole + record[:cut])
        torn = FileStateLog(path, b"KBTEST\x00\x00")
        assert torn.truncated_bytes == cut
        again = KeyedState(torn)
        assert again.state == {"a": 1}
        again.close()
        assert path.read_bytes() == whole
    bad_crc = bytearray(record)
    bad_crc[-2] ^= 0xFF
    path.write_bytes(whole + bytes(bad_crc))
    assert keyed_state(path, b"KBTEST\x00\x00").state == {"a": 1}


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'{"k": "a"}', b'{"k": 5, "v": 1}'])
def test_a_record_that_passes_its_crc_but_does_not_parse_is_corruption(tmp_path, payload):
    """A torn write cannot produce a valid CRC: KeyedState used to treat these as a tail and drop them."""
    path = tmp_path / "state.journal"
    state = keyed_state(path, b"KBTEST\x00\x00")
    state.put("a", 1)
    state.close()
    with open(path, "ab") as f:
        f.write(struct.pack(">II", len(payload), crc32c.crc32c(payload)) + payload)
        f.write(encode_record({"k": "b", "v": 2}))
    size = path.stat().st_size
    with pytest.raises(CorruptStateError, match="bad record at position"):
        keyed_state(path, b"KBTEST\x00\x00")
    assert path.stat().st_size == size  # nothing was cut


def test_a_log_of_another_owner_or_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "state.journal"
    keyed_state(path, b"KBTEST\x00\x00").close()
    with pytest.raises(CorruptStateError, match="is not a"):
        keyed_state(path, TXN_MAGIC)
    path.write_bytes(b"KBTEST\x00\x00\x00\x02\x00\x00")
    with pytest.raises(CorruptStateError, match="version 2"):
        keyed_state(path, b"KBTEST\x00\x00")


def test_the_memory_offset_store_replays_for_a_new_owner():
    log = MemoryStateLog()
    first = OffsetStore(log)
    first.commit_offsets("g", {("t", 0): CommittedOffset(5, -1, "", 1, None, 1)})
    assert OffsetStore(log).load().offsets == {"g": {("t", 0): CommittedOffset(5, -1, "", 1, None, 1)}}
    assert MemoryOffsetStore().load().offsets == {}


def test_a_broker_started_on_the_old_directory_serves_its_state_to_stock_clients(old_data_dir):
    """The SCRAM credential logs alice in, the ACLs let her see the group, and the group and its offsets are
    what the old broker had."""
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    from kbroker import Broker

    settings = {"listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-256"}
    with Broker(port=0, data_dir=old_data_dir, settings=settings, authorizer_enabled=True,
                super_users=["User:admin"]) as b:
        admin = AdminClient({"bootstrap.servers": b.listeners["SASL_PLAINTEXT"], "security.protocol": "SASL_PLAINTEXT",
                             "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "alice",
                             "sasl.password": "alice-secret"})
        (described,) = admin.describe_consumer_groups(["billing"]).values()
        group = described.result(20)
        assert group.state == ConsumerGroupState.STABLE
        assert sorted((m.client_id, m.group_instance_id) for m in group.members) == [
            ("client-a", None), ("client-b", "instance-b")]
        (listed,) = admin.list_consumer_group_offsets([
            ConsumerGroupTopicPartitions("billing", [TopicPartition("orders", 0), TopicPartition("orders", 1)])
        ]).values()
        offsets = {tp.partition: (tp.offset, tp.metadata or "") for tp in listed.result(20).topic_partitions}
        assert offsets == {0: (42, "meta-0"), 1: (7, "")}


def test_the_old_journals_are_moved_onto_the_internal_topics_once(old_data_dir):
    """The first start writes the journals' groups, offsets and transactions as records of __consumer_offsets
    and __transaction_state and keeps the journals as ``*.migrated``; the next start reads the topics alone."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition as TP

    from kbroker import Broker

    state = old_data_dir / ".kbroker"
    with Broker(port=0, data_dir=old_data_dir):
        pass
    names = {p.name for p in state.iterdir()}
    assert {"consumer-offsets.journal.migrated", "transactions.journal.migrated"} <= names
    assert not {"consumer-offsets.journal", "transactions.journal"} & names
    assert {"credentials.journal", "acls.journal"} <= names  # the metadata's part stays where it was
    with Broker(port=0, data_dir=old_data_dir) as b:
        c = KafkaConsumer(bootstrap_servers=b.bootstrap_servers, group_id="billing", enable_auto_commit=False)
        try:
            assert c.committed(TP("orders", 0)) == 42 and c.committed(TP("orders", 1)) == 7
        finally:
            c.close()
        txn = b.state.transactions.describe("tx-open")
        assert txn.state == "Ongoing" and ("orders", 0) in txn.partitions
    assert {p.name for p in state.iterdir()} == names  # nothing migrated twice
