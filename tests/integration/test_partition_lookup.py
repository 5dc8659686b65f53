"""How requests reach a partition, and the log underneath: one lookup with Kafka's current-leader-epoch
check, the leader-epoch cache's answers, and the high watermark and last stable offset as fields.

Over a raw socket first (the error codes every partition-addressed API answers with), then the log's own
rules on a memory store.
"""

from __future__ import annotations

import uuid

import pytest

from kbroker import Broker
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.leader_epoch_cache import LeaderEpochCache
from kbroker.log.unified_log import UnifiedLog
from kbroker.records.builder import build_batch, simple_batch
from kbroker.records.record import Record
from kbroker.storage.base import LogConfig
from kbroker.storage.memory import MemoryLogStore
from kbroker.wire.messages import (
    delete_records, describe_producers, fetch, list_offsets, offset_for_leader_epoch, produce,
)
from kbroker.client import BlockingConnection
from support.topics import auto_create

P = produce.ProduceRequest
F = fetch.FetchRequest
L = list_offsets.ListOffsetsRequest
E = offset_for_leader_epoch.OffsetForLeaderEpochRequest
D = delete_records.DeleteRecordsRequest
DP = describe_producers.DescribeProducersRequest


@pytest.fixture(scope="module")
def client():
    with Broker(port=0) as b:
        c = BlockingConnection(b.host, b.port)
        auto_create(c, "t")
        for _ in range(3):
            r = c.request(0, 9, P(acks=1, timeout_ms=1000, topic_data=[P.TopicProduceData(name="t", partition_data=[
                P.PartitionProduceData(index=0, records=bytes(simple_batch(b"a", b"b")))])]))
            assert r.responses[0].partition_responses[0].error_code == 0
        yield c
        c.close()


def _fetch(c, partition=0, current_leader_epoch=-1):
    r = c.request(1, 12, F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, topics=[F.FetchTopic(
        topic="t", partitions=[F.FetchPartition(partition=partition, fetch_offset=0, partition_max_bytes=1 << 20,
                                                current_leader_epoch=current_leader_epoch)])]))
    return r.responses[0].partitions[0]


def _list_offsets(c, partition=0, current_leader_epoch=-1):
    r = c.request(2, 8, L(replica_id=-1, topics=[L.ListOffsetsTopic(name="t", partitions=[L.ListOffsetsPartition(
        partition_index=partition, timestamp=-1, current_leader_epoch=current_leader_epoch)])]))
    return r.topics[0].partitions[0]


def _epoch_end(c, leader_epoch, partition=0, current_leader_epoch=-1):
    r = c.request(23, 4, E(replica_id=-1, topics=[E.OffsetForLeaderTopic(topic="t", partitions=[
        E.OffsetForLeaderPartition(partition=partition, current_leader_epoch=current_leader_epoch,
                                   leader_epoch=leader_epoch)])]))
    p = r.topics[0].partitions[0]
    return p.error_code, p.leader_epoch, p.end_offset


def test_an_older_current_leader_epoch_is_fenced_and_a_newer_one_unknown(client):
    # The partition is led at epoch 0; a client that saw epoch 1 is ahead of this broker.
    assert _fetch(client, current_leader_epoch=1).error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
    assert _list_offsets(client, current_leader_epoch=1).error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
    assert _epoch_end(client, 0, current_leader_epoch=1)[0] == ErrorCode.UNKNOWN_LEADER_EPOCH
    for api in (_fetch, _list_offsets):
        assert api(client, current_leader_epoch=0).error_code == 0
        assert api(client, current_leader_epoch=-1).error_code == 0


def test_which_negative_epochs_mean_none_follows_each_request_as_kafka(client):
    # FetchRequest treats every negative epoch as absent; ListOffsets and OffsetForLeaderEpoch only -1, so a
    # -2 there is an epoch older than the partition's: FENCED_LEADER_EPOCH.
    assert _fetch(client, current_leader_epoch=-2).error_code == 0
    assert _list_offsets(client, current_leader_epoch=-2).error_code == ErrorCode.FENCED_LEADER_EPOCH
    assert _epoch_end(client, 0, current_leader_epoch=-2)[0] == ErrorCode.FENCED_LEADER_EPOCH


def test_every_partition_addressed_api_answers_an_unknown_partition_alike(client):
    unknown = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    r = client.request(0, 9, P(acks=1, timeout_ms=1000, topic_data=[P.TopicProduceData(name="t", partition_data=[
        P.PartitionProduceData(index=5, records=bytes(simple_batch(b"x")))])]))
    assert r.responses[0].partition_responses[0].error_code == unknown
    assert _fetch(client, partition=5).error_code == unknown
    assert _list_offsets(client, partition=5).error_code == unknown
    assert _epoch_end(client, 0, partition=5)[0] == unknown
    r = client.request(21, 2, D(timeout_ms=1000, topics=[D.DeleteRecordsTopic(name="t", partitions=[
        D.DeleteRecordsPartition(partition_index=5, offset=0)])]))
    assert r.topics[0].partitions[0].error_code == unknown
    r = client.request(61, 0, DP(topics=[DP.TopicRequest(name="t", partition_indexes=[5])]))
    assert r.topics[0].partitions[0].error_code == unknown


def test_offset_for_leader_epoch_answers_from_the_leader_epoch_cache(client):
    assert _epoch_end(client, 0) == (0, 0, 6)  # the current epoch ends at the log end offset
    assert _epoch_end(client, 1) == (0, -1, -1)  # above every epoch: undefined
    assert _epoch_end(client, -1) == (0, -1, -1)  # UNDEFINED_EPOCH asked: undefined, as Kafka


# -- the leader-epoch cache --------------------------------------------------------------------------


def test_the_epoch_cache_answers_for_each_epoch_as_kafkas():
    cache = LeaderEpochCache()
    assert cache.end_offset_for(0, 10) == (-1, -1)  # empty
    cache.assign(2, 5)
    cache.assign(2, 9)  # the same epoch again: nothing new
    cache.assign(4, 20)
    cache.assign(7, 30)
    assert cache.entries() == [(2, 5), (4, 20), (7, 30)]
    assert cache.end_offset_for(7, 42) == (7, 42)  # the latest: the log end offset
    assert cache.end_offset_for(4, 42) == (4, 30)
    assert cache.end_offset_for(5, 42) == (4, 30)  # between epochs: the one below, ending where 7 began
    assert cache.end_offset_for(1, 42) == (1, 5)  # below every epoch: where the first began
    assert cache.end_offset_for(8, 42) == (-1, -1)
    assert cache.end_offset_for(-1, 42) == (-1, -1)


def test_the_epoch_cache_follows_truncation_and_a_moving_log_start():
    cache = LeaderEpochCache()
    for epoch, start in ((1, 0), (2, 10), (3, 20)):
        cache.assign(epoch, start)
    cache.truncate_from_end(20)
    assert cache.entries() == [(1, 0), (2, 10)]
    cache.truncate_from_start(15)
    assert cache.entries() == [(2, 15)]
    cache.assign(4, 12)  # a new epoch starting below the last entry's start replaces it
    assert cache.entries() == [(4, 12)]
    with pytest.raises(ValueError):
        cache.assign(-1, 0)


# -- the unified log: high watermark and last stable offset are fields ----------------------------------


def _log() -> UnifiedLog:
    store = MemoryLogStore().open_log("u", uuid.UUID(int=1), 0, LogConfig())
    return UnifiedLog("u-0", store)


def _append(log, *values, pid=-1, seq=-1, txn=False):
    batch = build_batch([Record(i, 1000 + i, None, v) for i, v in enumerate(values)], producer_id=pid,
                        producer_epoch=0 if pid >= 0 else -1, base_sequence=seq, transactional=txn)
    return log.append_as_leader(bytearray(batch), 0, 1 << 20, False, False)


def test_the_high_watermark_moves_only_when_its_owner_says_so():
    log = _log()
    _append(log, b"a", b"b")
    assert (log.log_end_offset, log.high_watermark, log.last_stable_offset) == (2, 0, 0)
    assert log.maybe_increment_high_watermark(1)
    assert (log.high_watermark, log.last_stable_offset) == (1, 1)
    assert not log.maybe_increment_high_watermark(0)  # never down
    log.maybe_increment_high_watermark(99)  # never past the log end
    assert log.high_watermark == 2
    # Nothing is read past the high watermark by DeleteRecords either.
    with pytest.raises(KafkaError) as e:
        log.maybe_increment_log_start_offset(3)
    assert e.value.code == ErrorCode.OFFSET_OUT_OF_RANGE


def test_the_last_stable_offset_is_the_first_unstable_offset_below_the_high_watermark():
    log = _log()
    _append(log, b"plain")
    _append(log, b"t1", b"t2", pid=7, seq=0, txn=True)  # offsets 1-2, an open transaction
    assert log.first_unstable_offset == 1
    assert log.last_stable_offset == 0  # the high watermark has not moved yet
    log.maybe_increment_high_watermark(log.log_end_offset)
    assert (log.high_watermark, log.last_stable_offset) == (3, 1)
    marker = log.append_txn_marker(7, 0, commit=False, leader_epoch=0)
    assert marker == 3 and log.first_unstable_offset is None
    assert log.last_stable_offset == 3  # the marker is not below the high watermark until it moves
    log.maybe_increment_high_watermark(log.log_end_offset)
    assert log.last_stable_offset == 4
    assert log.collect_aborted_txns(0, 4) == [(7, 1)]
    # Truncation takes the marker back: the transaction is open again, the high watermark follows the end.
    log.truncate_to(3)
    assert (log.log_end_offset, log.high_watermark, log.first_unstable_offset) == (3, 3, 1)
    assert log.collect_aborted_txns(0, 3) == []
    assert log.leader_epoch_cache.entries() == [(0, 0)]
