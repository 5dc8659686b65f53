"""Transaction protocol v2 (KIP-890 part 2) with the stock Java producer (kafka-clients 4.4), which uses it when
ApiVersions finalizes ``transaction.version`` 2, as kbroker does by default (like a new Kafka 4.4 cluster):

- a committed and an aborted transaction: no AddPartitionsToTxn from the client (Produce v12+ adds the
  partition), EndTxn v5, and every end bumps the epoch: each marker carries the epoch after the batches it
  closes, and the next transaction's batches carry that epoch; read_committed readers (confluent-kafka, the
  Java consumer) see only the committed records;
- with ``transaction.version`` downgraded to 1 (UpdateFeatures), the same producer speaks the classic
  protocol (AddPartitionsToTxn, EndTxn v4, markers at the batches' epoch), and it still works;
- a second producer with the same transactional id fences the first, whose later send or commit fails and
  whose records stay invisible to read_committed readers;
- sendOffsetsToTransaction sends TxnOffsetCommit v6 (topic ids) without AddOffsetsToTxn: the offsets of the
  committed transaction reach the group, those of the aborted one do not.
"""

from __future__ import annotations

import uuid

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.wire.messages import offset_fetch
from support.java_client import java_client_or_skip
from support.txn_helpers import SENTINEL, create_topic, read_until_sentinels, write_sentinels

TIMEOUT_S = 60.0


def _recs(values: list[bytes], partition: int = 0) -> list[dict]:
    import base64

    return [{"key": None, "value": base64.b64encode(v).decode(), "headers": [], "partition": partition,
             "timestamp": None} for v in values]


def _requests(b: Broker) -> dict[tuple[str, int], int]:
    return b.call(lambda: dict(b.broker_server.metrics.requests))


def _batches(b: Broker, topic: str):
    from kcompat import wire  # on sys.path once java_client_or_skip ran

    return wire.read_batches(b.bootstrap_servers, topic, 0)


def _committed_values(b: Broker, topic: str) -> list[bytes]:
    write_sentinels(b.bootstrap_servers, topic, 1)
    return [v for _p, _o, v in read_until_sentinels("confluent-kafka", b.bootstrap_servers, topic, 1,
                                                    "read_committed")]


def _transactions(java, b: Broker, topic: str, tid: str) -> None:
    java(b.bootstrap_servers)._call("transactions", TIMEOUT_S, topic=topic, transactionalId=tid,
                                    committed=_recs([b"c1", b"c2"]), aborted=_recs([b"a1", b"a2"]))


def test_java_producer_commits_and_aborts_with_an_epoch_bump_per_transaction():
    java = java_client_or_skip()
    with Broker(port=0, storage="memory") as b:
        topic, tid = f"v2-{uuid.uuid4().hex[:8]}", f"tid-{uuid.uuid4().hex[:8]}"
        create_topic(b.bootstrap_servers, topic, 1)
        _transactions(java, b, topic, tid)
        requests = _requests(b)
        assert not [k for k in requests if k[0] == "AddPartitionsToTxn"], requests
        assert requests.get(("EndTxn", 5)) == 2, requests
        assert [k for k in requests if k[0] == "Produce" and k[1] >= 12], requests
        batches = _batches(b, topic)
        assert len({x.producer_id for x in batches}) == 1
        # What the log holds, runs of data batches collapsed: (control, epoch).
        runs = [(x.control, x.producer_epoch) for x in batches]
        runs = [r for i, r in enumerate(runs) if i == 0 or r != runs[i - 1] or r[0]]
        e = runs[0][1]
        # the committed batches at e, their commit marker at e+1, the aborted batches at e+1, their marker at e+2
        assert runs == [(False, e), (True, e + 1), (False, e + 1), (True, e + 2)], batches
        txn = b.call(lambda: b.state.transactions.describe(tid))
        assert (txn.state, txn.producer_epoch, txn.client_transaction_version) == ("CompleteAbort", e + 2, 2)
        assert _committed_values(b, topic) == [b"c1", b"c2"]
        got = java(b.bootstrap_servers).consume_from_beginning(topic, count=3, read_committed=True)
        assert [r.value for r in got] == [b"c1", b"c2", SENTINEL]  # the sentinel follows the abort marker


def test_java_producer_keeps_the_classic_protocol_when_transaction_version_is_1():
    java = java_client_or_skip()
    with Broker(port=0, storage="memory") as b:
        assert java(b.bootstrap_servers)._call("updateFeatures", updates={"transaction.version": [1, "SAFE_DOWNGRADE"]}
                                               ) == {"transaction.version": None}
        topic, tid = f"v1-{uuid.uuid4().hex[:8]}", f"tid-{uuid.uuid4().hex[:8]}"
        create_topic(b.bootstrap_servers, topic, 1)
        _transactions(java, b, topic, tid)
        requests = _requests(b)
        assert sum(n for k, n in requests.items() if k[0] == "AddPartitionsToTxn") >= 2 and not [
            k for k in requests if k[0] == "EndTxn" and k[1] >= 5], requests
        epochs = {x.producer_epoch for x in _batches(b, topic)}
        assert len(epochs) == 1  # batches and markers at one epoch: no bump per transaction
        assert b.call(lambda: b.state.transactions.describe(tid)).client_transaction_version == 0
        assert _committed_values(b, topic) == [b"c1", b"c2"]


def test_second_java_producer_fences_the_first():
    java = java_client_or_skip()
    with Broker(port=0, storage="memory") as b:
        topic, tid = f"fence-{uuid.uuid4().hex[:8]}", f"tid-{uuid.uuid4().hex[:8]}"
        create_topic(b.bootstrap_servers, topic, 1)
        out = java(b.bootstrap_servers)._call("fencedTransactions", TIMEOUT_S, topic=topic, transactionalId=tid,
                                              records=_recs([b"a-first", b"a-open", b"b-commit", b"a-zombie"]))
        assert out["zombie"] in ("ProducerFencedException", "InvalidProducerEpochException"), out
        assert _committed_values(b, topic) == [b"a-first", b"b-commit"]


def test_java_offsets_in_a_v2_transaction_reach_the_group_only_on_commit():
    java = java_client_or_skip()
    with Broker(port=0, storage="memory") as b:
        topic, source = f"out-{uuid.uuid4().hex[:8]}", f"in-{uuid.uuid4().hex[:8]}"
        group, tid = f"g-{uuid.uuid4().hex[:8]}", f"tid-{uuid.uuid4().hex[:8]}"
        create_topic(b.bootstrap_servers, topic, 1)
        create_topic(b.bootstrap_servers, source, 1)
        java(b.bootstrap_servers)._call("transactionalOffsets", TIMEOUT_S, topic=topic, transactionalId=tid,
                                        records=_recs([b"x", b"y"]), offsetsTopic=source, group=group,
                                        committed=42, aborted=99)
        requests = _requests(b)
        assert requests.get(("TxnOffsetCommit", 6)) == 2 and not [
            k for k in requests if k[0] in ("AddOffsetsToTxn", "AddPartitionsToTxn")], requests
        Q = offset_fetch.OffsetFetchRequest
        with BlockingConnection(b.host, b.port) as c:
            r = c.request(9, 7, Q(group_id=group, topics=[Q.OffsetFetchRequestTopic(name=source,
                                                                                     partition_indexes=[0])]))
        assert [(p.partition_index, p.committed_offset, p.error_code) for p in r.topics[0].partitions] == [(0, 42, 0)]
        assert _committed_values(b, topic) == [b"x"]


def test_java_v2_transaction_across_two_brokers_adds_partitions_through_the_coordinators_broker():
    java = java_client_or_skip()
    with Broker(port=0, storage="memory", brokers=2) as b:
        topic, tid = f"v2c-{uuid.uuid4().hex[:8]}", f"tid-{uuid.uuid4().hex[:8]}"
        create_topic(b.bootstrap_servers, topic, 4)  # leaders on both brokers
        values = [f"v{i}".encode() for i in range(8)]
        java(b.bootstrap_servers)._call("transactions", TIMEOUT_S, topic=topic, transactionalId=tid,
                                        committed=[r for i, v in enumerate(values[:4]) for r in _recs([v], i)],
                                        aborted=[r for i, v in enumerate(values[4:]) for r in _recs([v], i)])
        servers = [b.cluster.servers[n] for n in b.node_ids]
        # The broker that is not the transactional id's coordinator asked the other to add its partitions.
        assert sorted(b.call(lambda: [s.state.txn_partitions.sent > 0 for s in servers])) == [False, True]
        write_sentinels(b.bootstrap_servers, topic, 4)
        got = read_until_sentinels("confluent-kafka", b.bootstrap_servers, topic, 4, "read_committed")
        assert sorted(v for _p, _o, v in got) == values[:4]
