"""Share groups' records with confluent-kafka's ShareConsumer (librdkafka) over real sockets (KIP-932): members
of one share group together receive every record of a one-partition topic, none twice while the locks hold;
a released record comes back with a higher delivery count, a rejected one never; the group's share state
survives a broker restart."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from kbroker import Broker
from kbroker.coordinator.runtime import partition_for
from kbroker.errors import ErrorCode
from kbroker.share import state_records as SR
from kbroker.share.share_coordinator import SHARE_STATE_TOPIC, share_state_key
from kbroker.share.share_partition import ACKNOWLEDGED, AVAILABLE

TIMEOUT_MS = 20_000
POLL_ROUNDS = 200  # each poll waits at most POLL_S: a bound on a test that would otherwise hang


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _consumer(b: Broker, group: str, topic: str, client_id: str, explicit: bool = False) -> ShareConsumer:
    conf = {"bootstrap.servers": b.bootstrap_servers, "group.id": group, "client.id": client_id}
    if explicit:
        conf["share.acknowledgement.mode"] = "explicit"
    c = ShareConsumer(conf)
    c.subscribe([topic])
    return c


def _produce(b: Broker, topic: str, n: int, start: int = 0) -> None:
    p = Producer({"bootstrap.servers": b.bootstrap_servers})
    for i in range(start, start + n):
        p.produce(topic, value=b"r%d" % i)
    assert p.flush(10) == 0


def _records(messages) -> list:
    out = []
    for m in messages:
        assert m.error() is None, m.error()
        out.append(m)
    return out


def _share_partition_ready(b: Broker, group: str, topic: str) -> bool:
    def ready():
        t = b.state.topics.get(topic)
        return t is not None and (group, t.topic_id, 0) in b.state.share.partitions
    return b.call(ready)


def _until_ready(b, group, topic, consumers) -> None:
    """Polls the consumers until their share-partition is initialised: its start is where the records to come
    will be (share.auto.offset.reset=latest, Kafka's default)."""
    for _ in range(POLL_ROUNDS):
        for c in consumers:
            assert not _records(c.poll(0.2))
        if _share_partition_ready(b, group, topic):
            return
    pytest.fail("the share-partition was never initialised")


def _poll_until(c, want: int = 1) -> list:
    """Polls until at least ``want`` records came (bounded by POLL_ROUNDS polls)."""
    got = []
    for _ in range(POLL_ROUNDS):
        got += _records(c.poll(0.2))
        if len(got) >= want:
            return got
    return got


@pytest.fixture
def broker(tmp_path):
    with Broker(port=0, data_dir=tmp_path / "data") as b:
        yield b


def _topic(b: Broker, partitions: int = 1) -> str:
    topic = _name("q")
    admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)
    return topic


def test_three_share_consumers_together_receive_every_record_once(broker):
    topic, group = _topic(broker), _name("sg")
    consumers = [_consumer(broker, group, topic, f"c{i}") for i in range(3)]
    try:
        _until_ready(broker, group, topic, consumers)
        # Every consumer a member before the records come (on a loaded machine one may still be finding its
        # coordinator, whose topic the first one's FindCoordinator had to create).
        for _ in range(POLL_ROUNDS):
            if len(broker.control.group(group)["members"]) == 3:
                break
            for c in consumers:
                assert not _records(c.poll(0.2))
        n = 60
        _produce(broker, topic, n)
        seen: dict[int, list[str]] = {}
        for _ in range(POLL_ROUNDS):
            for i, c in enumerate(consumers):
                for m in _records(c.poll(0.2)):
                    assert m.delivery_count() == 1
                    seen.setdefault(m.offset(), []).append(f"c{i}")
            if len(seen) == n:
                break
        assert sorted(seen) == list(range(n))
        assert all(len(v) == 1 for v in seen.values()), {o: v for o, v in seen.items() if len(v) > 1}
        g = broker.control.group(group)
        assert g["group_type"] == "share" and len(g["members"]) == 3
    finally:
        for c in consumers:
            c.close()


def test_released_records_come_back_and_rejected_ones_do_not(broker):
    topic, group = _topic(broker), _name("sg")
    c = _consumer(broker, group, topic, "explicit", explicit=True)
    try:
        _until_ready(broker, group, topic, [c])
        _produce(broker, topic, 3)
        got = _poll_until(c, 3)
        assert [(m.offset(), m.delivery_count()) for m in got] == [(0, 1), (1, 1), (2, 1)]
        [state] = broker.control.group(group)["share_partitions"]
        assert state["in_flight"] == [{"first_offset": 0, "last_offset": 2, "state": "ACQUIRED", "delivery_count": 1}]
        assert state["acquired_by_member"] and list(state["acquired_by_member"].values()) == [3]
        c.acknowledge(got[0], AcknowledgeType.ACCEPT)
        c.acknowledge(got[1], AcknowledgeType.RELEASE)
        c.acknowledge(got[2], AcknowledgeType.REJECT)
        c.commit_sync(10)
        again = _poll_until(c)
        assert [(m.offset(), m.delivery_count()) for m in again] == [(1, 2)]
        c.acknowledge(again[0], AcknowledgeType.ACCEPT)
        c.commit_sync(10)
        [state] = broker.control.group(group)["share_partitions"]  # what GET /groups/{g} shows
        assert (state["topic"], state["partition"], state["start_offset"], state["in_flight"]) == (topic, 0, 3, [])
    finally:
        c.close()


def test_an_unacknowledged_record_goes_to_another_member_when_its_lock_expires(tmp_path):
    settings = {"group.share.min.record.lock.duration.ms": "1000", "group.share.record.lock.duration.ms": "1000"}
    with Broker(port=0, data_dir=tmp_path / "data", settings=settings) as b:
        topic, group = _topic(b), _name("sg")
        slow = _consumer(b, group, topic, "slow", explicit=True)
        other = _consumer(b, group, topic, "other", explicit=True)
        try:
            _until_ready(b, group, topic, [slow, other])
            _produce(b, topic, 1)
            # Whichever member's fetch acquires the record first (librdkafka fetches ahead of poll) keeps it
            # without acknowledging; the other one polls until the record comes back.
            first = holder = None
            for _ in range(POLL_ROUNDS):
                for c in (slow, other):
                    got = _records(c.poll(0.2))
                    if got:
                        first, holder = got, c
                        break
                if first:
                    break
            assert [m.offset() for m in first] == [0]
            waiter = other if holder is slow else slow
            again = _poll_until(waiter)
            assert [m.offset() for m in again] == [0]
            assert again[0].delivery_count() > first[0].delivery_count()
            waiter.acknowledge(again[0], AcknowledgeType.ACCEPT)
            waiter.commit_sync(10)
        finally:
            slow.close()
            other.close()


def test_the_delivery_count_limit_stops_a_record_that_keeps_being_released(broker):
    topic, group = _topic(broker), _name("sg")
    c = _consumer(broker, group, topic, "releaser", explicit=True)
    try:
        _until_ready(broker, group, topic, [c])
        _produce(broker, topic, 1)
        for delivery in range(1, 6):  # group.share.delivery.count.limit: 5
            got = _poll_until(c)
            assert [(m.offset(), m.delivery_count()) for m in got] == [(0, delivery)]
            c.acknowledge(got[0], AcknowledgeType.RELEASE)
            c.commit_sync(10)
        _produce(broker, topic, 1, start=1)
        got = _poll_until(c)
        assert [(m.offset(), m.delivery_count()) for m in got] == [(1, 1)]  # offset 0 was archived
        c.acknowledge(got[0], AcknowledgeType.ACCEPT)
        c.commit_sync(10)
    finally:
        c.close()


def test_a_broker_restart_loses_no_acknowledgement(tmp_path):
    data = tmp_path / "data"
    group = _name("sg")
    with Broker(port=0, data_dir=data) as b:
        topic = _topic(b)
        c = _consumer(b, group, topic, "before", explicit=True)
        c_closed = False
        try:
            _until_ready(b, group, topic, [c])
            _produce(b, topic, 10)
            got = _poll_until(c, 10)
            assert [m.offset() for m in got] == list(range(10))
            for m in got[:5]:
                c.acknowledge(m, AcknowledgeType.ACCEPT)
            c.commit_sync(10)
            c.close()  # leaves the group: what it holds (5-9) is released
            c_closed = True
        finally:
            if not c_closed:
                c.close()
    with Broker(port=0, data_dir=data) as b:
        c = _consumer(b, group, topic, "after")
        try:
            got = _poll_until(c, 5)
            assert sorted((m.offset(), m.delivery_count()) for m in got) == [(o, 2) for o in range(5, 10)]
        finally:
            c.close()


def test_deleting_the_share_group_deletes_its_share_state(broker):
    topic, group = _topic(broker), _name("sg")
    c = _consumer(broker, group, topic, "done")
    try:
        _until_ready(broker, group, topic, [c])
        _produce(broker, topic, 2)
        assert [m.offset() for m in _poll_until(c, 2)] == [0, 1]
        c.commit_sync(10)
    finally:
        c.close()
    assert broker.control.wait_for_group(group, "Empty", members=0, timeout_ms=TIMEOUT_MS)
    key = broker.call(lambda: (group, broker.state.topics.get(topic).topic_id, 0))
    assert broker.call(lambda: broker.state.share.written_state(key)).start_offset == 2
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.delete_consumer_groups([group], request_timeout=10)[group].result()
    assert broker.call(lambda: key not in broker.state.share.partitions)
    assert broker.call(lambda: broker.state.share.written_state(key)) is None  # a tombstone


def test_share_consumers_on_a_cluster_and_the_share_state_on_each_keys_coordinator(tmp_path):
    """Three brokers: each partition's leader acquires its records; the state of each share-partition is
    written by the leader of its __share_group_state partition, reached with WriteShareGroupState when that
    is another broker."""
    with Broker(port=0, data_dir=tmp_path / "data", brokers=3) as b:
        topic, group = _topic(b, partitions=3), _name("sg")
        c = _consumer(b, group, topic, "cluster")
        try:
            for _ in range(POLL_ROUNDS):
                assert not _records(c.poll(0.2))
                ready = b.call(lambda: sum(1 for s in b.cluster.states() for k in s.share.partitions
                                           if k[0] == group))
                if ready == 3:
                    break
            n = 30
            _produce(b, topic, n)
            got = _poll_until(c, n)
            assert len({(m.partition(), m.offset()) for m in got}) == n == len(got)
            c.commit_sync(10)  # implicit mode: what the last poll returned is accepted

            def written():
                out = {}
                for s in b.cluster.states():
                    for (g, _t, index), state in s.share_coordinator.all_states():
                        if g == group:
                            out[index] = state.start_offset
                return out

            def high_watermarks():
                t = next(s.topics.get(topic) for s in b.cluster.states())
                return {p.index: p.high_watermark for s in b.cluster.states() for p in s.topics.get(topic).partitions
                        if p.is_leader} if t else {}
            assert b.call(written) == b.call(high_watermarks)
        finally:
            c.close()


def test_an_acknowledgement_whose_state_write_fails_is_rolled_back_and_the_record_redelivered():
    """Two brokers: the record's partition on one, its share-partition's state on the other, whose
    WriteShareGroupState then fails (COORDINATOR_NOT_AVAILABLE, a fault rule). The ACCEPT is not applied
    (Kafka applies an acknowledgement only once its state is written, rolling it back otherwise): the consumer
    hears COORDINATOR_NOT_AVAILABLE, the record stays acquired and, its lock run out, is delivered again."""
    settings = {"group.share.min.record.lock.duration.ms": "1000", "group.share.record.lock.duration.ms": "1000"}
    with Broker(port=0, storage="memory", brokers=2, settings=settings) as b:
        topic = _topic(b)
        # The first share fetch creates __share_group_state; then a group whose state the other broker keeps.
        warm = _consumer(b, _name("warm"), topic, "warm")
        try:
            def state_topic_led():
                t = b.call(lambda: b.cluster.states()[0].topics.get(SHARE_STATE_TOPIC))
                return t is not None and all(p.leader_id >= 0 for p in t.partitions) and t
            for _ in range(POLL_ROUNDS):
                assert not _records(warm.poll(0.2))
                if state_topic_led():
                    break
            state_topic = state_topic_led()
            assert state_topic
        finally:
            warm.close()
        data = b.call(lambda: next(s.topics.get(topic) for s in b.cluster.states()))
        leader = data.partitions[0].leader_id
        group = next(g for g in (_name("sg") for _ in range(1000)) if state_topic.partitions[partition_for(
            share_state_key(g, data.topic_id, 0), len(state_topic.partitions))].leader_id != leader)
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        r = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
            ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([r])[r].result(10)
        _produce(b, topic, 1)

        c = _consumer(b, group, topic, "acker", explicit=True)
        try:
            got = _poll_until(c)
            assert [(m.offset(), m.delivery_count()) for m in got] == [(0, 1)]
            b.control.add_fault("WriteShareGroupState", error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE, count=1000)
            c.acknowledge(got[0], AcknowledgeType.ACCEPT)
            [(tp, error)] = c.commit_sync(10).items()
            assert error is not None and error.args[0].code() == ErrorCode.COORDINATOR_NOT_AVAILABLE, error
            [state] = b.control.group(group)["share_partitions"]
            assert state["in_flight"] == [{"first_offset": 0, "last_offset": 0, "state": "ACQUIRED",
                                           "delivery_count": 1}]  # not acknowledged: rolled back
            b.control.clear_faults()
            again = _poll_until(c)  # once the lock ran out
            assert [(m.offset(), m.delivery_count()) for m in again] == [(0, 2)]
            c.acknowledge(again[0], AcknowledgeType.ACCEPT)
            assert list(c.commit_sync(10).values()) == [None]
            [state] = b.control.group(group)["share_partitions"]
            assert (state["start_offset"], state["in_flight"]) == (1, [])
        finally:
            c.close()


def _written(b: Broker, group: str, topic: str):
    """The share-partition's state as its share coordinator keeps it, and the types of the records of its
    ``__share_group_state`` partition (0 ShareSnapshot, 1 ShareUpdate) for that key, in order."""
    def read():
        t = b.state.topics.get(topic)
        key = (group, t.topic_id, 0)
        shard = b.state.share_coordinator.route(key)
        types = []

        def record(_offset, k, _v):
            record_type, *rest = SR.decode_share_key(k)
            if tuple(rest) == key:
                types.append(record_type)
        shard.log.replay(record)
        return shard.read(key), types
    return b.call(read)


def test_share_updates_between_snapshots_and_a_restart_in_the_middle_loses_nothing(tmp_path):
    """The share coordinator writes a ShareSnapshot, then ShareUpdates of what changed, and a snapshot again
    every share.coordinator.snapshot.update.records.per.snapshot updates (3 here); the records before the
    last snapshot are pruned; a broker restarted in the middle of the stream loads what is left back to the same
    state, and delivers exactly the records not finished."""
    data, group = tmp_path / "data", _name("sg")
    settings = {"share.coordinator.snapshot.update.records.per.snapshot": "3"}
    with Broker(port=0, data_dir=data, settings=settings) as b:
        topic = _topic(b)
        c = _consumer(b, group, topic, "before", explicit=True)
        try:
            _until_ready(b, group, topic, [c])
            _produce(b, topic, 12)
            got = _poll_until(c, 12)
            assert [m.offset() for m in got] == list(range(12))
            # One commit per acknowledgement: accept 0-3 and 6, reject 4, release 5 (to come back), keep 7-11.
            for m, ack in zip(got, [AcknowledgeType.ACCEPT] * 4 + [AcknowledgeType.REJECT, AcknowledgeType.RELEASE,
                                                                     AcknowledgeType.ACCEPT]):
                c.acknowledge(m, ack)
                assert list(c.commit_sync(10).values()) == [None]
            before, types = _written(b, group, topic)
            assert types.count(SR.SHARE_UPDATE) >= 3 and types.count(SR.SHARE_SNAPSHOT) >= 2, types
            assert types[0] == SR.SHARE_SNAPSHOT and SR.SHARE_UPDATE in types[-3:], types
            assert before.start_offset == 5
            assert before.state_batches[:2] == [(5, 5, AVAILABLE, 1), (6, 6, ACKNOWLEDGED, 1)]
        finally:
            c.close()  # what it still holds (7-11) is released: written too
        before, _ = _written(b, group, topic)

        def prune():  # Kafka's prune job, run now: the records before the last snapshot go
            key = (group, b.state.topics.get(topic).topic_id, 0)
            shard = b.state.share_coordinator.route(key)
            return shard.snapshot_offsets[key], shard.prune(), shard.log.partition.log_start_offset
        last_snapshot, pruned, log_start = b.call(prune)
        assert pruned == log_start == last_snapshot > 0
        assert _written(b, group, topic)[1][0] == SR.SHARE_SNAPSHOT
    with Broker(port=0, data_dir=data, settings=settings) as b:
        after, _ = _written(b, group, topic)
        assert (after.start_offset, after.state_epoch, after.state_batches) == (
            before.start_offset, before.state_epoch, before.state_batches)
        c = _consumer(b, group, topic, "after")
        try:
            got = _poll_until(c, 6)
            assert sorted((m.offset(), m.delivery_count()) for m in got) == [(5, 2)] + [(o, 2) for o in range(7, 12)]
        finally:
            c.close()
