"""A broker's coordinator shards over the partitions of the internal topics, with a real BrokerState on memory
storage: loading when the broker leads a partition (COORDINATOR_LOAD_IN_PROGRESS until the next turn of the
loop), unloading when it stops (NOT_COORDINATOR), and the state read back from the partition's records alone.
"""

from __future__ import annotations

import asyncio

from kbroker.broker_state import BrokerState
from kbroker.config import BrokerConfig
from kbroker.controller import run_now
from kbroker.coordinator.offsets import CommittedOffset, StoredGroup, StoredMember
from kbroker.coordinator.offsets_topic import TopicOffsetStore
from kbroker.coordinator.runtime import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, CoordinatorLog
from kbroker.errors import ErrorCode

ENDPOINTS = {"PLAINTEXT": ("127.0.0.1", 9092)}


def _broker(**config) -> BrokerState:
    state = BrokerState(BrokerConfig(storage="memory", offsets_topic_num_partitions=3,
                                     transaction_state_log_num_partitions=2, **config))
    run_now(state.register(ENDPOINTS))
    return state


def test_a_partition_loads_on_the_next_turn_and_unloads_with_its_leadership():
    async def scenario():
        state = _broker()
        assert state.groups.heartbeat("g", 1, "m", None) == ErrorCode.NOT_COORDINATOR  # no topic yet
        topic = state.coordinator_topic(OFFSETS_TOPIC)
        assert topic.is_internal and topic.config("cleanup.policy") == "compact" and len(topic.partitions) == 3
        assert state.groups.heartbeat("g", 1, "m", None) == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        assert state.groups.list_groups().error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        await asyncio.sleep(0)
        assert state.groups.heartbeat("g", 1, "m", None) == ErrorCode.UNKNOWN_MEMBER_ID  # served
        assert state.groups.commit_offsets("g", -1, "", None, {("t", 0): (5, -1, "meta")}) == {("t", 0): 0}
        await state.groups.written("g")

        await state.unregister()  # the partitions lose their leader
        assert state.groups.heartbeat("g", 1, "m", None) == ErrorCode.NOT_COORDINATOR
        assert state.groups.fetch_offsets("g").error_code == ErrorCode.NOT_COORDINATOR
        await state.register(ENDPOINTS)  # a new leader epoch: loaded again from the records
        await asyncio.sleep(0)
        assert state.groups.fetch_offsets("g").offsets == {("t", 0): (5, -1, "meta")}
        state.close()

    asyncio.run(scenario())


def test_the_offset_store_is_rebuilt_from_its_partition_alone():
    state = _broker()  # the store is read and written directly, without the shards
    topic = state.coordinator_topic(OFFSETS_TOPIC)
    partition = topic.partitions[0]
    store = TopicOffsetStore(CoordinatorLog(partition))
    member = StoredMember("m", "i", "c", "h", 30000, 10000, b"s", b"a")
    store.store_group(StoredGroup("g", 3, "consumer", "range", "m", 77, (member,)))
    store.commit_offsets("g", {("t", 0): CommittedOffset(1, 0, "", 10), ("t", 1): CommittedOffset(2, 0, "", 10)})
    store.commit_offsets("gone", {("t", 0): CommittedOffset(9, 0, "", 10)})
    store.prepare_txn_offsets(42, "g", {("t", 0): CommittedOffset(5, -1, "x", 11),
                                        ("t", 1): CommittedOffset(6, -1, "", 11)})
    store.delete_offsets("g", [("t", 1)])  # goes from the pending transaction too
    store.prepare_txn_offsets(43, "g", {("t", 2): CommittedOffset(8, -1, "", 12)})
    store.complete_txn_offsets(43, "g", {("t", 2): CommittedOffset(8, -1, "", 12)})
    store.delete_group("gone")

    # Another group type's records (a KIP-848 consumer group's, type 3) go through the same store.
    store.append_records([(b"\x00\x03" + b"\x00\x01c", b"\x00\x00one"), (b"\x00\x03" + b"\x00\x01d", b"x")])
    store.append_records([(b"\x00\x03" + b"\x00\x01d", None)])
    assert TopicOffsetStore(CoordinatorLog(partition)).records_of_type(3) == {b"\x00\x03\x00\x01c": b"\x00\x00one"}

    again = TopicOffsetStore(CoordinatorLog(partition)).load()
    live = store.load()
    assert again.groups == live.groups and set(again.groups) == {"g"}
    plain = {g: {tp: (o.offset, o.leader_epoch, o.metadata) for tp, o in offs.items()}
             for g, offs in again.offsets.items()}
    assert plain == {"g": {("t", 0): (1, 0, ""), ("t", 2): (8, -1, "")}}
    assert {k: set(v) for k, v in again.pending_txn_offsets.items()} == {(42, "g"): {("t", 0)}}
    state.close()


def test_a_transaction_marker_on_the_groups_partition_publishes_its_offsets():
    async def scenario():
        state = _broker()
        state.coordinator_topic(OFFSETS_TOPIC)
        state.coordinator_topic(TRANSACTION_STATE_TOPIC)
        state.topics.create("t", 1)
        await asyncio.sleep(0)
        init = state.transactions.init_producer_id("tx", 60000)
        pid, epoch = init.producer_id, init.producer_epoch
        assert state.transactions.add_offsets("tx", pid, epoch, "g") == 0
        assert state.groups.prepare_txn_offsets(pid, "g", {("t", 0): (7, -1, "")}) == {("t", 0): 0}
        assert state.groups.fetch_offsets("g").offsets == {}
        assert state.transactions.end_txn("tx", pid, epoch, True).error_code == 0
        assert state.groups.fetch_offsets("g").offsets == {("t", 0): (7, -1, "")}
        # A new leader reads the same from the records.
        await state.unregister()
        await state.register(ENDPOINTS)
        await asyncio.sleep(0)
        assert state.groups.fetch_offsets("g").offsets == {("t", 0): (7, -1, "")}
        assert state.transactions.describe("tx").state == "CompleteCommit"
        state.close()

    asyncio.run(scenario())
