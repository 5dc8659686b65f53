"""TxnOffsetCommit v6 (KIP-1319) at the wire, as Kafka 4.4 serves it: topics named by id (an unknown id is
UNKNOWN_TOPIC_ID, the answer echoes the ids), the group's __consumer_offsets partition added to the transaction
implicitly (v5+, transaction protocol v2), GROUP_ID_NOT_FOUND for a member-checked commit to a group that does
not exist; the offsets reach the group when EndTxn v5 commits."""

from __future__ import annotations

import uuid

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.wire.messages import create_topics as CT
from kbroker.wire.messages import end_txn as ET
from kbroker.wire.messages import find_coordinator as FC
from kbroker.wire.messages import init_producer_id as IP
from kbroker.wire.messages import offset_fetch as OF
from kbroker.wire.messages import txn_offset_commit as TOC
from support.txn_helpers import wait_until

Q = TOC.TxnOffsetCommitRequest


def _commit(c, tid, pid, epoch, group, topics, generation_id=-1, member_id=""):
    return c.request(28, 6, Q(transactional_id=tid, group_id=group, producer_id=pid, producer_epoch=epoch,
                              generation_id=generation_id, member_id=member_id, topics=[
                                  Q.TxnOffsetCommitRequestTopic(topic_id=topic_id, partitions=[
                                      Q.TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=offset,
                                                                        committed_metadata="")])
                                  for topic_id, offset in topics]))


def test_txn_offset_commit_v6_by_topic_id():
    with Broker(port=0, storage="memory") as b, BlockingConnection(b.host, b.port) as c:
        topic, group, tid = (f"{x}-{uuid.uuid4().hex[:8]}" for x in ("t", "g", "tid"))
        r = c.request(19, 7, CT.CreateTopicsRequest(timeout_ms=10000, topics=[CT.CreateTopicsRequest.CreatableTopic(
            name=topic, num_partitions=1, replication_factor=1)]))
        topic_id = r.topics[0].topic_id
        for key, key_type in ((group, 0), (tid, 1)):  # the coordinators' internal topics, made on first ask
            wait_until(lambda: c.request(10, 4, FC.FindCoordinatorRequest(
                key_type=key_type, coordinator_keys=[key])).coordinators[0].error_code == 0, what="a coordinator")
        init = c.request(22, 5, IP.InitProducerIdRequest(transactional_id=tid, transaction_timeout_ms=60000))
        assert init.error_code == 0
        pid, epoch = init.producer_id, init.producer_epoch
        unknown = uuid.uuid4()

        r = _commit(c, tid, pid, epoch, group, [(topic_id, 7), (unknown, 3)])
        assert [(t.topic_id, [(p.partition_index, p.error_code) for p in t.partitions]) for t in r.topics] == [
            (topic_id, [(0, 0)]), (unknown, [(0, 100)])]  # UNKNOWN_TOPIC_ID
        txn = b.call(lambda: b.state.transactions.describe(tid))
        assert txn.state == "Ongoing" and txn.client_transaction_version == 2  # added by the commit itself

        missing = _commit(c, tid, pid, epoch, f"none-{group}", [(topic_id, 1)], generation_id=1, member_id="m")
        assert missing.topics[0].partitions[0].error_code == 69  # GROUP_ID_NOT_FOUND

        end = c.request(26, 5, ET.EndTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=epoch,
                                                committed=True))
        assert (end.error_code, end.producer_id, end.producer_epoch) == (0, pid, epoch + 1)
        F = OF.OffsetFetchRequest
        fetched = c.request(9, 7, F(group_id=group, topics=[F.OffsetFetchRequestTopic(name=topic,
                                                                                     partition_indexes=[0])]))
        assert fetched.topics[0].partitions[0].committed_offset == 7
