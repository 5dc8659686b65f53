"""Transactions with stock clients over real sockets (issue #4): confluent-kafka, kafka-python and aiokafka as
transactional producers and read_committed consumers.

- committed transactions across partitions are visible to read_committed consumers, aborted ones only to
  read_uncommitted ones, with plain records interleaved in the same partitions kept;
- a consume-transform-produce loop (tests/support/txn_processor.py, a child process) SIGKILLed inside an open
  transaction and restarted with the same transactional id and group produces every input exactly once;
- a second producer with the same transactional id fences the first (its next commit or send fails with the
  client's fencing error) and aborts what it left open;
- a broker restarted (or killed) in the middle of a transaction: the transaction commits afterwards and every
  record is visible exactly once;
- a transaction open longer than its timeout is aborted by the broker, the producer is fenced, the last stable
  offset moves on; a timeout above transaction.max.timeout.ms is refused at InitProducerId;
- offsets sent to a transaction reach the group only when it commits (never when it aborts).

Every read of "all the records" is exact without sleeping: sentinels are appended after the transactions and
consumers read until they have seen one in every partition (tests/support/txn_helpers.py). Each test starts its own
broker on a free port with its data in a temporary directory.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from support.brokerproc import BrokerProcess
from kbroker import Broker
from kbroker.errors import ErrorCode
from kbroker.wire.messages import list_offsets, offset_fetch
from kbroker.client import BlockingConnection
from support.txn_helpers import (
    CLIENT_NAMES,
    TIMEOUT_S,
    TXN_PRODUCERS,
    ProcessorProcess,
    create_topic,
    free_port,
    is_fenced,
    plain_produce,
    read_until_sentinels,
    values,
    wait_until,
    write_sentinels,
)

PARTITIONS = 3


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def b(tmp_path):
    with Broker(port=0, data_dir=tmp_path / "data", group_min_session_timeout_ms=500,
                transaction_abort_timed_out_transaction_cleanup_interval_ms=100) as broker:
        yield broker


@pytest.fixture
def producers():
    """Makes transactional producers; every one is closed at the end, whatever state it is in."""
    made = []

    def make(client: str, bootstrap: str, txn_id: str, **conf):
        p = TXN_PRODUCERS[client](bootstrap, txn_id, **conf)
        made.append(p)
        return p

    yield make
    for p in made:
        try:
            p.close()
        except Exception:  # a fenced or fatal producer may refuse to close cleanly
            pass


def _host_port(bootstrap: str) -> tuple[str, int]:
    host, port = bootstrap.rsplit(":", 1)
    return host, int(port)


def _offsets(bootstrap: str, topic: str, partitions: int, read_committed: bool) -> list[int]:
    """ListOffsets latest: the last stable offsets (read_committed) or the high watermarks."""
    c = BlockingConnection(*_host_port(bootstrap))
    try:
        req = list_offsets.ListOffsetsRequest(replica_id=-1, isolation_level=1 if read_committed else 0, topics=[
            list_offsets.ListOffsetsRequest.ListOffsetsTopic(name=topic, partitions=[
                list_offsets.ListOffsetsRequest.ListOffsetsPartition(partition_index=i, timestamp=-1)
                for i in range(partitions)])])
        resp = c.request(2, 5, req)
        parts = sorted(resp.topics[0].partitions, key=lambda p: p.partition_index)
        assert all(p.error_code == 0 for p in parts), parts
        return [p.offset for p in parts]
    finally:
        c.close()


# -- 1. committed visible, aborted hidden ------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_committed_transaction_is_visible_and_aborted_one_is_not(b, producers, client):
    bs = b.bootstrap_servers
    topic = _name("vis")
    create_topic(bs, topic, PARTITIONS)
    p = producers(client, bs, _name("txn"))
    p.init()

    committed = [(i % PARTITIONS, b"c%d" % i) for i in range(9)]
    aborted = [(i % PARTITIONS, b"a%d" % i) for i in range(9)]
    plain = [(i % PARTITIONS, None, b"p%d" % i) for i in range(3)]
    late = [(i % PARTITIONS, b"c%d" % i) for i in range(9, 12)]

    p.begin()
    p.send_all(topic, committed)
    p.commit()
    p.begin()
    p.send_all(topic, aborted)
    # librdkafka's abort purges what is not sent yet: flush so that the aborted records are really in the log.
    p.flush()
    plain_produce(bs, topic, plain)  # another producer's records in the middle of the aborted transaction
    p.abort()
    p.begin()
    p.send_all(topic, late)
    p.commit()
    write_sentinels(bs, topic, PARTITIONS)

    want_committed = sorted(v for _, v in committed + late) + sorted(v for _, _, v in plain)
    for reader in CLIENT_NAMES:
        got = read_until_sentinels(reader, bs, topic, PARTITIONS, "read_committed")
        assert values(got) == sorted(want_committed), f"read_committed with {reader}"
    everything = read_until_sentinels(client, bs, topic, PARTITIONS, "read_uncommitted")
    assert values(everything) == sorted(want_committed + [v for _, v in aborted])
    # The records are where the producer put them: three partitions took part in every transaction.
    assert {part for part, _o, v in everything if v.startswith(b"a")} == set(range(PARTITIONS))
    assert _offsets(bs, topic, PARTITIONS, True) == _offsets(bs, topic, PARTITIONS, False)


def test_interleaved_transactions_of_two_producers_in_one_partition(b, producers):
    """Batches of an aborted and a committed transaction alternate in one partition: read_committed consumers
    drop exactly the aborted producer's records (the aborted-transactions list is per producer id), and the
    last stable offset follows the oldest open transaction."""
    bs = b.bootstrap_servers
    topic = _name("mix")
    create_topic(bs, topic, 1)
    keep = producers("confluent-kafka", bs, _name("keep"))
    drop = producers("confluent-kafka", bs, _name("drop"))
    keep.init()
    drop.init()
    keep.begin()
    drop.begin()
    for i in range(4):
        keep.send(topic, 0, b"keep%d" % i)
        keep.flush()
        drop.send(topic, 0, b"drop%d" % i)
        drop.flush()
    assert _offsets(bs, topic, 1, True) == [0]
    keep.commit()  # the other transaction, which started later, still holds the LSO
    assert _offsets(bs, topic, 1, True) == [1]
    drop.abort()
    assert _offsets(bs, topic, 1, True) == _offsets(bs, topic, 1, False) == [10]
    write_sentinels(bs, topic, 1)
    for reader in CLIENT_NAMES:
        got = read_until_sentinels(reader, bs, topic, 1, "read_committed")
        assert [v for _p, _o, v in got] == [b"keep%d" % i for i in range(4)], reader


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_open_transaction_holds_back_read_committed_until_it_ends(b, producers, client):
    """The last stable offset stays at the first offset of the open transaction; plain records written after it
    are held back from read_committed consumers until the transaction ends."""
    bs = b.bootstrap_servers
    topic = _name("lso")
    create_topic(bs, topic, 1)
    plain_produce(bs, topic, [(0, None, b"before")])
    p = producers(client, bs, _name("txn"))
    p.init()
    p.begin()
    p.send_all(topic, [(0, b"t0"), (0, b"t1")])
    p.flush()
    plain_produce(bs, topic, [(0, None, b"after")])
    assert _offsets(bs, topic, 1, False) == [4]
    assert _offsets(bs, topic, 1, True) == [1]
    p.commit()
    wait_until(lambda: _offsets(bs, topic, 1, True) == [5], what="the LSO to reach the high watermark")
    write_sentinels(bs, topic, 1)
    got = read_until_sentinels(client, bs, topic, 1, "read_committed")
    assert [v for _p, _o, v in got] == [b"before", b"t0", b"t1", b"after"]


# -- 2. consume-transform-produce, exactly once across a killed processor -------------------------------------


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_consume_transform_produce_is_exactly_once_across_a_killed_processor(b, client):
    bs = b.bootstrap_servers
    tin, tout, group, txn_id = _name("in"), _name("out"), _name("g"), _name("ctp")
    create_topic(bs, tin, PARTITIONS)
    create_topic(bs, tout, PARTITIONS)
    n = 150
    plain_produce(bs, tin, [(i % PARTITIONS, b"k%d" % i, b"%d" % i) for i in range(n)])

    first = ProcessorProcess(client, bs, tin, tout, group, txn_id, "--partitions", str(PARTITIONS),
                             "--hang-after", "3")
    try:
        # Three transactions committed; the fourth has its records flushed to the broker and its offsets
        # added, and stays open.
        hanging = first.wait_for("hanging")
        assert len(first.committed()) == 3 and hanging["records"] > 0
        assert _offsets(bs, tout, PARTITIONS, True) != _offsets(bs, tout, PARTITIONS, False)
    finally:
        first.kill()  # SIGKILL: no abort, no LeaveGroup

    second = ProcessorProcess(client, bs, tin, tout, group, txn_id, "--partitions", str(PARTITIONS))
    try:
        second.wait_for("done", timeout=60)
        assert second.wait() == 0
    finally:
        second.kill()

    write_sentinels(bs, tout, PARTITIONS)
    out = read_until_sentinels(client, bs, tout, PARTITIONS, "read_committed")
    assert values(out) == sorted(b"out-%d" % i for i in range(n)), "not every input exactly once"
    # Each output is in the partition of its input.
    assert all(int(v[4:]) % PARTITIONS == part for part, _o, v in out)
    # The killed processor's open transaction was written and then aborted: read_uncommitted sees it.
    raw = read_until_sentinels(client, bs, tout, PARTITIONS, "read_uncommitted")
    assert len(raw) == n + hanging["records"]
    # The group's committed offsets are the ends of the input.
    offsets = {(o["topic"], o["partition"]): o["offset"] for o in b.control.group(group)["offsets"]}
    assert offsets == {(tin, i): n // PARTITIONS for i in range(PARTITIONS)}


# -- 3. fencing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_second_producer_fences_the_first_at_commit(b, producers, client):
    bs = b.bootstrap_servers
    topic = _name("fence")
    create_topic(bs, topic, PARTITIONS)
    txn_id = _name("txn")
    old = producers(client, bs, txn_id)
    old.init()
    old.begin()
    old.send_all(topic, [(i % PARTITIONS, b"zombie%d" % i) for i in range(6)])
    old.flush()

    new = producers(client, bs, txn_id)
    new.init()  # fences `old` and aborts its open transaction

    with pytest.raises(Exception) as e:
        old.commit()
    assert is_fenced(client, e.value), repr(e.value)

    new.begin()
    new.send_all(topic, [(i % PARTITIONS, b"new%d" % i) for i in range(3)])
    new.commit()
    write_sentinels(bs, topic, PARTITIONS)
    assert values(read_until_sentinels(client, bs, topic, PARTITIONS, "read_committed")) == \
        [b"new0", b"new1", b"new2"]


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_second_producer_fences_the_first_at_its_next_send(b, producers, client):
    bs = b.bootstrap_servers
    topic = _name("fence")
    create_topic(bs, topic, 1)
    txn_id = _name("txn")
    old = producers(client, bs, txn_id)
    old.init()
    old.begin()
    old.send(topic, 0, b"zombie0")
    old.flush()
    new = producers(client, bs, txn_id)
    new.init()

    if client == "kafka-python":
        # Kafka answers a Produce at a fenced epoch with INVALID_PRODUCER_EPOCH (since 2.7, so that the
        # producer may abort and retry); kafka-python then tries a KIP-360 epoch bump, which the coordinator
        # refuses with PRODUCER_FENCED, and the producer is fenced for good.
        from kafka.errors import InvalidProducerEpochError, KafkaError, ProducerFencedError

        with pytest.raises(InvalidProducerEpochError):
            old.send(topic, 0, b"zombie1")
            old.flush()
        tm = old.p._transaction_manager
        wait_until(lambda: not tm.is_bumping_epoch(), what="kafka-python's epoch bump to be answered")
        assert isinstance(tm.last_error, ProducerFencedError), tm.last_error
        with pytest.raises(KafkaError, match="ProducerFenced"):
            old.commit()
    elif client == "confluent-kafka":
        from confluent_kafka import KafkaException

        # Without a delivery callback: confluent-kafka 2.16 runs it with the fatal error already raised, which
        # Python reports as a SystemError. librdkafka raises the fatal error from flush() once the broker
        # refuses the batch (INVALID_PRODUCER_EPOCH), or from the next call if flush() returned first.
        with pytest.raises(KafkaException) as e:
            old.p.produce(topic, value=b"zombie1", partition=0)
            old.p.flush(TIMEOUT_S)
            old.p.commit_transaction(TIMEOUT_S)
        assert is_fenced(client, e.value), repr(e.value)
    else:
        with pytest.raises(Exception) as e:
            old.send(topic, 0, b"zombie1")
            old.flush()
        assert is_fenced(client, e.value), repr(e.value)

    new.begin()
    new.send(topic, 0, b"new")
    new.commit()
    write_sentinels(bs, topic, 1)
    assert values(read_until_sentinels(client, bs, topic, 1, "read_committed")) == [b"new"]
    # Nothing the zombie sent after it was fenced reached the log.
    assert b"zombie1" not in values(read_until_sentinels(client, bs, topic, 1, "read_uncommitted"))


@pytest.mark.parametrize("api", ["InitProducerId", "AddPartitionsToTxn", "Produce", "AddOffsetsToTxn",
                                 "TxnOffsetCommit", "EndTxn"])
@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_lost_answers_to_transactional_requests_are_retried_safely(b, producers, client, api):
    """The broker handles the request and the connection breaks before the client sees the answer; the client
    retries on a new connection. Every retry must be harmless: InitProducerId bumps again, AddPartitionsToTxn
    and AddOffsetsToTxn find the partitions and group already there, a retried Produce is a duplicate, a retried
    TxnOffsetCommit stores the same offsets, and a retried EndTxn finds the transaction complete."""
    bs = b.bootstrap_servers
    topic, group = _name("lost"), _name("g")
    create_topic(bs, topic, 2)
    p = producers(client, bs, _name("txn"))
    b.control.add_fault(api, drop_response=True, count=1)
    p.init()
    p.begin()
    p.send_all(topic, [(0, b"a"), (1, b"b"), (0, b"c")])
    if api == "Produce":
        # The retried Produce is delivered before the offsets are sent: aiokafka's sender takes a connection
        # error on a FindCoordinator in flight as fatal ("Unexpected error during batch delivery"), and the
        # dropped Produce answer closes the connection that FindCoordinator may share (seen under load in CI).
        p.flush()
    p.send_offsets({(topic, 0): 5, (topic, 1): 6}, group)
    p.commit()
    assert b.control.faults() == [], f"no {api} request was made"
    stored = [r["value"]["data"] for i in range(2) for r in b.control.records(topic, i)]
    assert sorted(stored) == ["a", "b", "c"]  # once each
    write_sentinels(bs, topic, 2)
    assert values(read_until_sentinels(client, bs, topic, 2, "read_committed")) == [b"a", b"b", b"c"]
    offsets = {(o["topic"], o["partition"]): o["offset"] for o in b.control.group(group)["offsets"]}
    assert offsets == {(topic, 0): 5, (topic, 1): 6}


# -- 5. restarts, timeouts, offsets ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["restart", "kill"])
def test_broker_restart_in_the_middle_of_a_transaction(tmp_path, producers, how):
    """confluent-kafka's producer stays open across the restart (the broker comes back on the same port) and
    commits; the transaction's records are visible exactly once, and not before the commit."""
    port = free_port()
    broker = BrokerProcess(tmp_path / "data", "--port", str(port))
    broker.start()
    try:
        bs = broker.bootstrap_servers
        topic = _name("restart")
        create_topic(bs, topic, PARTITIONS)
        plain_produce(bs, topic, [(i, None, b"plain%d" % i) for i in range(PARTITIONS)])
        p = producers("confluent-kafka", bs, _name("txn"))
        p.init()
        p.begin()
        p.send_all(topic, [(i, b"aborted%d" % i) for i in range(PARTITIONS)])
        p.flush()
        p.abort()  # must stay hidden after the restart: the aborted transactions are rebuilt from the log
        p.begin()
        p.send_all(topic, [(i % PARTITIONS, b"x%d" % i) for i in range(30)])
        p.flush()
        if how == "restart":
            broker.restart()
        else:
            broker.kill()
            broker.start()
        assert broker.port == port
        # The open transaction is rebuilt from the log: read_committed consumers are held at its start.
        assert _offsets(bs, topic, PARTITIONS, True) == [3] * PARTITIONS
        assert _offsets(bs, topic, PARTITIONS, False) == [13] * PARTITIONS
        p.send_all(topic, [(i % PARTITIONS, b"x%d" % i) for i in range(30, 60)])
        p.commit()
        write_sentinels(bs, topic, PARTITIONS)
        want = sorted([b"x%d" % i for i in range(60)] + [b"plain%d" % i for i in range(PARTITIONS)])
        for reader in CLIENT_NAMES:
            assert values(read_until_sentinels(reader, bs, topic, PARTITIONS, "read_committed")) == want, reader
        assert values(read_until_sentinels("confluent-kafka", bs, topic, PARTITIONS, "read_uncommitted")) == \
            sorted(want + [b"aborted%d" % i for i in range(PARTITIONS)])
    finally:
        broker.kill()


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_timed_out_transaction_is_aborted_and_its_producer_fenced(b, producers, client):
    bs = b.bootstrap_servers
    topic = _name("timeout")
    create_topic(bs, topic, 2)
    txn_id = _name("txn")
    conf = ({"transaction.timeout.ms": 1000} if client == "confluent-kafka"
            else {"transaction_timeout_ms": 1000})
    p = producers(client, bs, txn_id, **conf)
    p.init()
    p.begin()
    p.send_all(topic, [(i % 2, b"late%d" % i) for i in range(10)])
    p.flush()
    assert _offsets(bs, topic, 2, True) == [0, 0]

    # The broker aborts it (checked every 100 ms here): the last stable offset moves past the abort marker.
    wait_until(lambda: _offsets(bs, topic, 2, True) == [6, 6], timeout=10,
               what="the timed-out transaction to be aborted")
    with pytest.raises(Exception) as e:
        p.commit()
    assert is_fenced(client, e.value), repr(e.value)

    write_sentinels(bs, topic, 2)  # readable by read_committed consumers only if nothing blocks them
    for reader in CLIENT_NAMES:
        assert read_until_sentinels(reader, bs, topic, 2, "read_committed") == [], reader
    assert len(read_until_sentinels(client, bs, topic, 2, "read_uncommitted")) == 10

    # The transactional id is usable again by a new producer.
    topic2 = _name("timeout-after")
    create_topic(bs, topic2, 1)
    again = producers(client, bs, txn_id)
    again.init()
    again.begin()
    again.send(topic2, 0, b"fresh")
    again.commit()
    write_sentinels(bs, topic2, 1)
    assert values(read_until_sentinels(client, bs, topic2, 1, "read_committed")) == [b"fresh"]


def test_transaction_timeout_above_the_maximum_is_refused(tmp_path, producers):
    with Broker(port=0, data_dir=tmp_path / "data", transaction_max_timeout_ms=5000) as b:
        bs = b.bootstrap_servers
        for client in CLIENT_NAMES:
            conf = ({"transaction.timeout.ms": 10000} if client == "confluent-kafka"
                    else {"transaction_timeout_ms": 10000})
            p = producers(client, bs, _name("txn"), **conf)
            with pytest.raises(Exception) as e:
                p.init()
            text = f"{type(e.value).__name__}: {e.value}"
            if client == "confluent-kafka":
                assert e.value.args[0].code() == ErrorCode.INVALID_TRANSACTION_TIMEOUT, text
            else:
                assert "InvalidTransactionTimeout" in text, text
            ok = producers(client, bs, _name("txn"), **{k: 5000 for k in conf})
            ok.init()


def _committed(client: str, bootstrap: str, group: str, topic: str, partitions: int) -> list[int | None]:
    """The group's committed offsets through a consumer's committed() (None: no committed offset)."""
    if client == "confluent-kafka":
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_uncommitted"})
        try:
            got = c.committed([TopicPartition(topic, i) for i in range(partitions)], timeout=TIMEOUT_S)
            return [tp.offset if tp.offset >= 0 else None for tp in got]
        finally:
            c.close()
    if client == "kafka-python":
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        try:
            return [c.committed(TopicPartition(topic, i)) for i in range(partitions)]
        finally:
            c.close()

    async def go():
        from aiokafka import AIOKafkaConsumer, TopicPartition

        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await c.start()
        try:
            return [await c.committed(TopicPartition(topic, i)) for i in range(partitions)]
        finally:
            await c.stop()

    return asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))


def _offset_fetch_stable(bootstrap: str, group: str, topic: str, partitions: int) -> list[tuple[int, int]]:
    """OffsetFetch v7 with require_stable (KIP-447): (offset, error code) per partition."""
    c = BlockingConnection(*_host_port(bootstrap))
    try:
        req = offset_fetch.OffsetFetchRequest(group_id=group, require_stable=True, topics=[
            offset_fetch.OffsetFetchRequest.OffsetFetchRequestTopic(name=topic,
                                                                    partition_indexes=list(range(partitions)))])
        resp = c.request(9, 7, req)
        return [(p.committed_offset, p.error_code) for p in resp.topics[0].partitions]
    finally:
        c.close()


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_offsets_sent_to_a_transaction_reach_the_group_only_on_commit(b, producers, client):
    bs = b.bootstrap_servers
    topic, out, group = _name("src"), _name("dst"), _name("g")
    create_topic(bs, topic, 2)
    create_topic(bs, out, 1)
    p = producers(client, bs, _name("txn"))
    p.init()

    p.begin()
    p.send(out, 0, b"result")
    p.send_offsets({(topic, 0): 42, (topic, 1): 7}, group)
    p.flush()
    assert _committed(client, bs, group, topic, 2) == [None, None]
    # A consumer that asks for stable offsets is told to wait (UNSTABLE_OFFSET_COMMIT) while they are pending.
    assert _offset_fetch_stable(bs, group, topic, 2) == [(-1, ErrorCode.UNSTABLE_OFFSET_COMMIT)] * 2
    p.commit()
    assert _committed(client, bs, group, topic, 2) == [42, 7]
    assert _offset_fetch_stable(bs, group, topic, 2) == [(42, 0), (7, 0)]

    # Offsets of an aborted transaction never reach the group.
    p.begin()
    p.send(out, 0, b"discarded")
    p.send_offsets({(topic, 0): 99}, group)
    p.flush()
    p.abort()
    assert _committed(client, bs, group, topic, 2) == [42, 7]
    assert _offset_fetch_stable(bs, group, topic, 2) == [(42, 0), (7, 0)]
    write_sentinels(bs, out, 1)
    assert values(read_until_sentinels(client, bs, out, 1, "read_committed")) == [b"result"]
