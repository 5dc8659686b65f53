"""The scenarios: one behaviour each, at the versions clients send (the oldest and newest kbroker's codec
knows, and the versions where the schema changes). Each starts from a fresh state of its own (topics and
groups named after the run token) and records every answer that tells the behaviour.

A scenario never asserts: it records. Whether kbroker answers as Kafka does is decided by comparing the
records (runner.compare_runs), so a scenario whose premise Kafka does not share (a version Kafka 4 no
longer serves, say) shows as a difference rather than breaking.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid

from ..records.builder import batch_around, simple_batch
from ..records.compression import GZIP, LZ4, SNAPPY, ZSTD, compress
from ..records.record import encode_record
from ..wire.messages import (add_offsets_to_txn as ao, add_partitions_to_txn as apt, alter_configs as ac,
                             alter_user_scram_credentials as auc, api_versions as av, create_acls as ca,
                             create_partitions as cp, create_topics as ct, delete_acls as dela,
                             delete_groups as del_g, delete_records as dr, delete_topics as dt,
                             describe_acls as da, describe_cluster as dcl, describe_configs as dc,
                             describe_groups as dg, describe_log_dirs as dld, describe_producers as dprod,
                             describe_transactions as dtx, describe_user_scram_credentials as duc,
                             end_txn as et, fetch as fe, heartbeat as hb, incremental_alter_configs as iac,
                             init_producer_id as ip, join_group as jg, list_groups as lg, list_offsets as lo,
                             list_transactions as ltx, metadata as md, offset_commit as oc, offset_delete as od,
                             offset_fetch as of, offset_for_leader_epoch as ofle, produce as pr,
                             sasl_authenticate as sa, sasl_handshake as sh, share_acknowledge as sack,
                             share_fetch as sf, share_group_describe as sgd, share_group_heartbeat as sghb,
                             sync_group as sg, txn_offset_commit as toc)
from ..wire.messages import (alter_share_group_offsets as asgo, delete_share_group_offsets as dsgo,
                             describe_share_group_offsets as descsgo)
from ..security.scram import MECHANISMS as SCRAM_MECHANISMS, salted_password
from ..uuids import random_uuid
from .realkafka import SUITE_USERS
from .session import Connection, ScenarioError, Session, scenario

ApiVersions, Metadata, Produce, Fetch, ListOffsets = 18, 3, 0, 1, 2
CreateTopics, DeleteTopics, DescribeConfigs = 19, 20, 32
JoinGroup, Heartbeat, SyncGroup, InitProducerId, AddPartitionsToTxn, EndTxn = 11, 12, 14, 22, 24, 26
OffsetCommit, OffsetFetch, SaslHandshake, DeleteRecords, DescribeAcls, CreatePartitions = 8, 9, 17, 21, 29, 37
CreateAcls, DeleteAcls, SaslAuthenticate = 30, 31, 36


# -- request builders ---------------------------------------------------------------------------------------

def metadata_request(*names: str, auto_create: bool = False) -> md.MetadataRequest:
    return md.MetadataRequest(topics=[md.MetadataRequest.MetadataRequestTopic(name=n) for n in names],
                              allow_auto_topic_creation=auto_create)


def create_request(*topics: ct.CreateTopicsRequest.CreatableTopic, validate_only: bool = False):
    return ct.CreateTopicsRequest(topics=list(topics), timeout_ms=10000, validate_only=validate_only)


def creatable(name: str, partitions: int = 1, replication: int = 1, configs: dict[str, str] | None = None):
    return ct.CreateTopicsRequest.CreatableTopic(
        name=name, num_partitions=partitions, replication_factor=replication,
        configs=[ct.CreateTopicsRequest.CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()])


def produce_request(topic: str, batch, partition: int = 0, acks: int = -1, transactional_id=None, topic_id=None):
    data = pr.ProduceRequest.TopicProduceData(
        name=topic, partition_data=[pr.ProduceRequest.PartitionProduceData(index=partition, records=bytes(batch))])
    if topic_id is not None:
        data.topic_id = topic_id
    return pr.ProduceRequest(transactional_id=transactional_id, acks=acks, timeout_ms=10000, topic_data=[data])


def fetch_request(topic: str, offset: int, partition: int = 0, topic_id=None, max_bytes: int = 1 << 20):
    t = fe.FetchRequest.FetchTopic(topic=topic, partitions=[fe.FetchRequest.FetchPartition(
        partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes)])
    if topic_id is not None:
        t.topic_id = topic_id
    return fe.FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=max_bytes, isolation_level=0, session_id=0,
                           session_epoch=-1, topics=[t])


def produce_topic_id(s: Session, v: int, name: str):
    return s.topic_id(name) if v >= 13 else None


RETRIABLE = {14, 15, 16, 51}  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS


def init_producer_id(s: Session, label: str, transactional_id: str | None, version: int = 4):
    """InitProducerId, retried while the coordinator (or Kafka's producer-id block) is still loading; the
    answer that ends the retries is recorded."""
    req = ip.InitProducerIdRequest(transactional_id=transactional_id, transaction_timeout_ms=60000)
    deadline = time.monotonic() + 10
    while True:
        r = s.call(label, InitProducerId, version, req, record=False)
        if r is None or r.error_code not in RETRIABLE or time.monotonic() > deadline:
            s.call(label, InitProducerId, version, req) if r is None else s.note(label, r.to_dict())
            return r
        time.sleep(0.05)


def seed(s: Session, topic: str, b) -> None:
    """Set-up produce (not recorded), retried while a just-created partition is not yet served
    (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION), as a client would."""
    deadline = time.monotonic() + 10
    while True:
        r = s.conn.call(Produce, 9, produce_request(topic, b))
        code = r.responses[0].partition_responses[0].error_code
        if code == 0:
            return
        if code not in (3, 6) or time.monotonic() > deadline:
            raise ScenarioError(f"seeding {topic}: error {code}")
        time.sleep(0.05)


def batch(*values: bytes, timestamp_ms: int = 1_000, **kw):
    return simple_batch(*values, timestamp_ms=timestamp_ms, **kw)


# -- ApiVersions ---------------------------------------------------------------------------------------------

@scenario(ApiVersions, (0, 1, 2, 3, 4))
def api_versions_ranges(s: Session, v: int):
    """The APIs and version ranges advertised, and (v3+) the features."""
    s.call("api_versions", ApiVersions, v, av.ApiVersionsRequest(client_software_name="kbroker-conformance",
                                                                 client_software_version="1.0"))


@scenario(ApiVersions, (3,))
def api_versions_unknown_version(s: Session, v: int):
    """A version newer than the broker knows: KIP-511 says answer UNSUPPORTED_VERSION in a v0 response,
    with the ranges, so the client can retry with one it knows."""
    from ..wire.header import RequestHeader, encode_request_header

    c = s.new_connection()
    try:
        out = bytearray()
        encode_request_header(out, RequestHeader(ApiVersions, 127, 1, "kbroker-conformance"), True)
        av.REQUEST_ENCODERS[3](av.ApiVersionsRequest(client_software_name="x", client_software_version="1"), out)
        c.send_bytes(struct.pack(">i", len(out)) + bytes(out))
        frame = c.read_frame()
        if frame is None:
            raise ConnectionError("the broker closed the connection")
        answer = c.protocol.decode_as(frame, ApiVersions, 0, correlation_id=1)
        s.note("api_versions_v127", {"error_code": answer.error_code,
                                     "has_ranges": bool(answer.api_keys)})
    finally:
        c.close()


@scenario(ApiVersions, (3,))
def api_versions_bad_software_name(s: Session, v: int):
    """Client software name and version must match [a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])? (KIP-511):
    otherwise INVALID_REQUEST."""
    s.call("bad_name", ApiVersions, v, av.ApiVersionsRequest(client_software_name="-bad name-",
                                                             client_software_version="1.0"))


# -- Metadata -------------------------------------------------------------------------------------------------

@scenario(Metadata, (0, 1, 4, 8, 9, 10, 12, 13))
def metadata_known_topic(s: Session, v: int):
    """A topic with three partitions: leaders, replicas, ISR, epochs, ids."""
    name = s.name("known")
    s.create_topic(name, 3)
    s.call("metadata", Metadata, v, metadata_request(name))


@scenario(Metadata, (4, 9, 10, 12, 13))
def metadata_unknown_topic(s: Session, v: int):
    """An unknown topic with auto-creation off in the request: UNKNOWN_TOPIC_OR_PARTITION."""
    s.call("metadata", Metadata, v, metadata_request(s.name("missing")))


@scenario(Metadata, (1, 4, 9, 12))
def metadata_invalid_topic(s: Session, v: int):
    """Names that can never be topics: INVALID_TOPIC_EXCEPTION, and no auto-creation."""
    s.call("metadata", Metadata, v, metadata_request("bad/name", "a" * 250, ".", auto_create=v >= 4))


@scenario(Metadata, (1, 4, 9, 12))
def metadata_auto_create(s: Session, v: int):
    """An unknown topic with auto-creation on (the broker default): created with num.partitions; the
    first answer may say LEADER_NOT_AVAILABLE until it has a leader."""
    name = s.name("auto")
    first = s.call("first", Metadata, v, metadata_request(name, auto_create=True), record=False)
    if first is not None:
        s.note("first_error", first.topics[0].error_code)
    try:
        s.wait_for_topic(name, 1)
        s.note("created", True)
    except Exception as e:  # noqa: BLE001
        s.note("created", str(e))
    s.call("after", Metadata, v, metadata_request(name))


# -- CreateTopics ---------------------------------------------------------------------------------------------

@scenario(CreateTopics, (0, 1, 2, 4, 5, 7))
def create_topics_ok_then_exists(s: Session, v: int):
    """Created (v5+: with its configs), then the same name again: TOPIC_ALREADY_EXISTS and its message."""
    name = s.name("ct")
    if s.call("create", CreateTopics, v, create_request(creatable(name, 2, configs={"retention.ms": "3600000"}))) is None:
        return
    s.wait_for_topic(name, 2)
    s.call("again", CreateTopics, v, create_request(creatable(name, 2)))


@scenario(CreateTopics, (1, 5, 7))
def create_topics_invalid_names(s: Session, v: int):
    """Names Kafka refuses, each with INVALID_TOPIC_EXCEPTION and a message saying why."""
    long = "n" * 250
    s.call("create", CreateTopics, v, create_request(
        creatable("bad/name"), creatable("."), creatable(".."), creatable(long), creatable("has space")))


@scenario(CreateTopics, (1, 5, 7))
def create_topics_bad_configs(s: Session, v: int):
    """Unknown config, a value of the wrong type, a value out of its set: INVALID_CONFIG with messages."""
    s.call("unknown_key", CreateTopics, v, create_request(creatable(s.name("c1"), configs={"no.such.config": "1"})))
    s.call("bad_type", CreateTopics, v, create_request(creatable(s.name("c2"), configs={"retention.ms": "abc"})))
    s.call("bad_value", CreateTopics, v, create_request(creatable(s.name("c3"),
                                                                  configs={"cleanup.policy": "bogus"})))
    s.call("bad_range", CreateTopics, v, create_request(creatable(s.name("c4"),
                                                                  configs={"min.insync.replicas": "0"})))


@scenario(CreateTopics, (1, 4, 7))
def create_topics_partitions_and_replication(s: Session, v: int):
    """Replication factor above the broker count, zero partitions, and (v4+) -1 for the broker defaults."""
    s.call("rf3", CreateTopics, v, create_request(creatable(s.name("rf"), 1, 3)))
    s.call("zero_partitions", CreateTopics, v, create_request(creatable(s.name("p0"), 0, 1)))
    s.call("negative_rf", CreateTopics, v, create_request(creatable(s.name("rfneg"), 1, -2)))
    if v >= 4:
        s.call("defaults", CreateTopics, v, create_request(creatable(s.name("dflt"), -1, -1)))


@scenario(CreateTopics, (1, 7))
def create_topics_validate_only(s: Session, v: int):
    """validate_only: the answer of a creation, and no topic afterwards."""
    name = s.name("vo")
    s.call("validate", CreateTopics, v, create_request(creatable(name, 3), validate_only=True))
    s.call("metadata_after", Metadata, 12, metadata_request(name))


@scenario(CreateTopics, (4, 7))
def create_topics_duplicate_in_request(s: Session, v: int):
    """The same name twice in one request: INVALID_REQUEST for it."""
    name = s.name("dup")
    s.call("create", CreateTopics, v, create_request(creatable(name), creatable(name)))


# -- DeleteTopics ---------------------------------------------------------------------------------------------

@scenario(DeleteTopics, (1, 4, 5, 6))
def delete_topics_existing_and_unknown(s: Session, v: int):
    """One existing topic and one unknown: the first deleted, the second UNKNOWN_TOPIC_OR_PARTITION."""
    name = s.name("del")
    s.create_topic(name)
    missing = s.name("nope")
    if v >= 6:
        req = dt.DeleteTopicsRequest(topics=[dt.DeleteTopicsRequest.DeleteTopicState(name=name),
                                             dt.DeleteTopicsRequest.DeleteTopicState(name=missing)],
                                     timeout_ms=10000)
    else:
        req = dt.DeleteTopicsRequest(topic_names=[name, missing], timeout_ms=10000)
    s.call("delete", DeleteTopics, v, req)


@scenario(DeleteTopics, (6,))
def delete_topics_unknown_id(s: Session, v: int):
    """By topic id (v6): an id no topic has is UNKNOWN_TOPIC_ID."""
    req = dt.DeleteTopicsRequest(topics=[dt.DeleteTopicsRequest.DeleteTopicState(name=None, topic_id=uuid.uuid4())],
                                 timeout_ms=10000)
    s.call("delete", DeleteTopics, v, req)


# -- Produce ----------------------------------------------------------------------------------------------------

@scenario(Produce, (3, 7, 9, 11, 12, 13))
def produce_ok(s: Session, v: int):
    """Three records with acks=all: base offset 0, log start 0 (v5+), then three more at offset 3."""
    name = s.name("p")
    s.create_topic(name)
    tid = produce_topic_id(s, v, name)
    s.call("first", Produce, v, produce_request(name, batch(b"a", b"b", b"c"), topic_id=tid))
    s.call("second", Produce, v, produce_request(name, batch(b"d", b"e", b"f"), topic_id=tid))


@scenario(Produce, (3, 9, 12, 13))
def produce_unknown_topic(s: Session, v: int):
    """A topic that does not exist (v13: an unknown topic id): produce does not auto-create."""
    tid = uuid.uuid4() if v >= 13 else None
    s.call("produce", Produce, v, produce_request(s.name("nope"), batch(b"x"), topic_id=tid))


@scenario(Produce, (3, 9, 12))
def produce_unknown_partition(s: Session, v: int):
    name = s.name("p")
    s.create_topic(name)
    s.call("produce", Produce, v, produce_request(name, batch(b"x"), partition=5))


@scenario(Produce, (3, 9, 12))
def produce_too_large(s: Session, v: int):
    """A batch over message.max.bytes (1048588 on both): MESSAGE_TOO_LARGE, nothing appended."""
    name = s.name("big")
    s.create_topic(name)
    s.call("produce", Produce, v, produce_request(name, batch(b"x" * 1_100_000)))
    s.call("fetch_after", Fetch, 12, fetch_request(name, 0))


@scenario(Produce, (3, 9, 12))
def produce_corrupt_batch(s: Session, v: int):
    """A batch whose CRC does not match: CORRUPT_MESSAGE, nothing appended."""
    name = s.name("crc")
    s.create_topic(name)
    b = batch(b"hello")
    b[-1] ^= 0xFF
    s.call("produce", Produce, v, produce_request(name, b))
    s.call("fetch_after", Fetch, 12, fetch_request(name, 0))


def _records_section(count: int, offset_deltas=None) -> bytearray:
    out = bytearray()
    for i in range(count):
        encode_record(out, offset_deltas[i] if offset_deltas else i, 0, None, b"v" * 20)
    return out


@scenario(Produce, (3, 9, 12))
def produce_compressed_records_that_lie(s: Session, v: int):
    """Compressed batches with a valid CRC whose records are not what the header says, per codec: a payload
    that does not decompress (Kafka 4.4: UNKNOWN_SERVER_ERROR), fewer or more records than declared and a
    record whose fields do not fill its length (INVALID_RECORD), offset deltas that are not 0, 1, 2
    (UNKNOWN_SERVER_ERROR); nothing appended. Kafka decompresses and reads every produced compressed batch."""
    name = s.name("lie")
    s.create_topic(name)
    seed(s, name, batch(b"seed"))
    bad_fields = bytearray()
    for i in range(3):
        encode_record(bad_fields, i, 0, None, None)
        bad_fields[-1] = 2  # the header count says one header; there is none
    for codec, label in ((GZIP, "gzip"), (SNAPPY, "snappy"), (LZ4, "lz4"), (ZSTD, "zstd")):
        cases = {
            "garbage": batch_around(b"\x82SNAPPY\x00" + bytes(range(64)) if codec == SNAPPY else bytes(range(64)),
                                    compression=codec, record_count=3, last_offset_delta=2),
            "fewer": batch_around(compress(codec, _records_section(2)), compression=codec, record_count=3,
                                  last_offset_delta=2),
            "more": batch_around(compress(codec, _records_section(4)), compression=codec, record_count=3,
                                 last_offset_delta=2),
            "fields": batch_around(compress(codec, bad_fields), compression=codec, record_count=3,
                                   last_offset_delta=2),
            "offset_deltas": batch_around(compress(codec, _records_section(3, [0, 5, 9])), compression=codec,
                                          record_count=3, last_offset_delta=2),
        }
        for case, b in cases.items():
            s.call(f"{label}_{case}", Produce, v, produce_request(name, b))
    s.call("fetch_after", Fetch, 12, fetch_request(name, 1))


@scenario(Produce, (3, 9, 12))
def produce_idempotent_sequences(s: Session, v: int):
    """An idempotent producer: a duplicate batch (acknowledged with the first offset), a gap in the
    sequence (OUT_OF_ORDER_SEQUENCE_NUMBER), an unknown producer id, and an old epoch after a bump."""
    name = s.name("idem")
    s.create_topic(name)
    pid = init_producer_id(s, "init", None)
    if pid is None:
        return
    p, e = pid.producer_id, pid.producer_epoch
    s.call("seq0", Produce, v, produce_request(name, batch(b"a", b"b", producer_id=p, producer_epoch=e,
                                                            base_sequence=0)))
    s.call("seq0_again", Produce, v, produce_request(name, batch(b"a", b"b", producer_id=p, producer_epoch=e,
                                                                  base_sequence=0)))
    s.call("seq2", Produce, v, produce_request(name, batch(b"c", producer_id=p, producer_epoch=e, base_sequence=2)))
    s.call("seq10_gap", Produce, v, produce_request(name, batch(b"z", producer_id=p, producer_epoch=e,
                                                                 base_sequence=10)))
    s.call("unknown_pid_seq5", Produce, v, produce_request(name, batch(b"u", producer_id=p + 1000, producer_epoch=0,
                                                                        base_sequence=5)))
    s.call("bumped_epoch_seq0", Produce, v, produce_request(name, batch(b"n", producer_id=p, producer_epoch=e + 1,
                                                                         base_sequence=0)))
    s.call("old_epoch", Produce, v, produce_request(name, batch(b"o", producer_id=p, producer_epoch=e,
                                                                 base_sequence=3)))
    s.call("fetch_after", Fetch, 12, fetch_request(name, 0))


@scenario(Produce, (3, 9, 12))
def produce_transactional_without_txn(s: Session, v: int):
    """A transactional batch from a producer that never added the partition to a transaction."""
    name = s.name("txnp")
    s.create_topic(name)
    txn = s.name("tx")
    s.find_coordinator(txn, 1)
    pid = init_producer_id(s, "init", txn)
    if pid is None or pid.error_code:
        return
    req = produce_request(name, batch(b"t", producer_id=pid.producer_id, producer_epoch=pid.producer_epoch,
                                      base_sequence=0, transactional=True), transactional_id=txn)
    # Kafka verifies the partition with the transaction coordinator (KIP-890) and answers the retriable
    # NOT_LEADER_OR_FOLLOWER while that check cannot be made yet; a client retries, and so does this.
    deadline = time.monotonic() + 10
    while True:
        r = s.call("produce", Produce, v, req)
        if r is None or r.responses[0].partition_responses[0].error_code != 6 or time.monotonic() > deadline:
            break
        time.sleep(0.1)


# -- Fetch --------------------------------------------------------------------------------------------------------

@scenario(Fetch, (4, 7, 11, 12, 13, 16, 17))
def fetch_records_and_out_of_range(s: Session, v: int):
    """Three records read back from 0, from 2, at the end (empty), and past it: OFFSET_OUT_OF_RANGE."""
    name = s.name("f")
    s.create_topic(name)
    seed(s, name, batch(b"a", b"b", b"c"))
    tid = s.topic_id(name) if v >= 13 else None
    s.call("from_0", Fetch, v, fetch_request(name, 0, topic_id=tid))
    s.call("from_3", Fetch, v, fetch_request(name, 3, topic_id=tid))
    s.call("from_100", Fetch, v, fetch_request(name, 100, topic_id=tid))
    s.call("from_minus_5", Fetch, v, fetch_request(name, -5, topic_id=tid))


@scenario(Fetch, (4, 12, 13, 16))
def fetch_unknown_topic(s: Session, v: int):
    """An unknown topic name (v4-12: UNKNOWN_TOPIC_OR_PARTITION) or id (v13+: UNKNOWN_TOPIC_ID)."""
    tid = uuid.uuid4() if v >= 13 else None
    s.call("fetch", Fetch, v, fetch_request(s.name("nope"), 0, topic_id=tid))


@scenario(Fetch, (12, 16))
def fetch_unknown_partition(s: Session, v: int):
    name = s.name("f")
    s.create_topic(name)
    tid = s.topic_id(name) if v >= 13 else None
    s.call("fetch", Fetch, v, fetch_request(name, 0, partition=7, topic_id=tid))


# -- ListOffsets --------------------------------------------------------------------------------------------------

@scenario(ListOffsets, (1, 2, 4, 6, 7, 8, 9))
def list_offsets_by_time(s: Session, v: int):
    """Records stamped 1000, 2000, 3000: earliest (-2), latest (-1), max timestamp (-3, v7+), a time between
    two records, a time after all of them, and an unknown partition."""
    name = s.name("lo")
    s.create_topic(name)
    for i, ts in enumerate((1000, 2000, 3000)):
        seed(s, name, batch(b"v%d" % i, timestamp_ms=ts))
    queries = {"earliest": -2, "latest": -1, "t1500": 1500, "t3000": 3000, "t9999": 9999}
    if v >= 7:
        queries["max_timestamp"] = -3
    for label, ts in queries.items():
        s.call(label, ListOffsets, v, lo.ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[
            lo.ListOffsetsRequest.ListOffsetsTopic(name=name, partitions=[
                lo.ListOffsetsRequest.ListOffsetsPartition(partition_index=0, timestamp=ts)])]))
    s.call("unknown_partition", ListOffsets, v, lo.ListOffsetsRequest(replica_id=-1, topics=[
        lo.ListOffsetsRequest.ListOffsetsTopic(name=name, partitions=[
            lo.ListOffsetsRequest.ListOffsetsPartition(partition_index=9, timestamp=-1)])]))


# -- groups -------------------------------------------------------------------------------------------------------

def _protocols():
    return [jg.JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"\x00\x00\x00\x00\x00\x00\x00\x00")]


def _join(group: str, member_id: str = "", instance: str | None = None, session_ms: int = 30000,
          rebalance_ms: int = 10000):
    return jg.JoinGroupRequest(group_id=group, session_timeout_ms=session_ms, rebalance_timeout_ms=rebalance_ms,
                               member_id=member_id, group_instance_id=instance, protocol_type="consumer",
                               protocols=_protocols())


def _sync(group: str, generation: int, member_id: str, assignments=(), instance=None):
    return sg.SyncGroupRequest(group_id=group, generation_id=generation, member_id=member_id,
                               group_instance_id=instance, protocol_type="consumer", protocol_name="range",
                               assignments=[sg.SyncGroupRequest.SyncGroupRequestAssignment(member_id=m, assignment=a)
                                            for m, a in assignments])


@scenario(JoinGroup, (2, 4, 5, 6, 9))
def group_member_errors(s: Session, v: int):
    """The classic group protocol's errors: a heartbeat from an unknown member (UNKNOWN_MEMBER_ID), the first
    join without a member id (v4+: MEMBER_ID_REQUIRED), a heartbeat with a wrong generation
    (ILLEGAL_GENERATION), and a heartbeat while a second member's join rebalances the group
    (REBALANCE_IN_PROGRESS)."""
    group = s.name("g")
    s.find_coordinator(group)
    hv = min(v, 4)
    s.call("heartbeat_unknown_group_member", Heartbeat, hv, hb.HeartbeatRequest(group_id=group, generation_id=1,
                                                                              member_id="nobody"))
    first = s.call("join_first", JoinGroup, v, _join(group))
    if first is None:
        return
    member = first.member_id
    if first.error_code == 79:  # MEMBER_ID_REQUIRED: join again with the id given
        first = s.call("join_with_id", JoinGroup, v, _join(group, member))
        if first is None:
            return
    gen = first.generation_id
    sv = min(v, 5)
    s.call("sync", SyncGroup, sv, _sync(group, gen, member, [(member, b"")]))
    s.call("heartbeat_ok", Heartbeat, hv, hb.HeartbeatRequest(group_id=group, generation_id=gen, member_id=member))
    s.call("heartbeat_wrong_generation", Heartbeat, hv,
           hb.HeartbeatRequest(group_id=group, generation_id=gen + 5, member_id=member))
    s.call("heartbeat_unknown_member", Heartbeat, hv,
           hb.HeartbeatRequest(group_id=group, generation_id=gen, member_id="stranger"))
    # A second member joins; its JoinGroup waits for the first to rejoin, so it goes on its own connection.
    other = s.new_connection()
    try:
        second_member = ""
        if v >= 4:
            r = other.call(JoinGroup, v, _join(group))
            second_member = r.member_id
        other.send_bytes(other.frame(JoinGroup, v, _join(group, second_member)))
        deadline = time.monotonic() + 5
        while True:  # the join is in flight: the first member's heartbeat says REBALANCE_IN_PROGRESS
            r = s.conn.call(Heartbeat, hv, hb.HeartbeatRequest(group_id=group, generation_id=gen, member_id=member))
            if r.error_code != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        s.note("heartbeat_during_rebalance", r.to_dict())
        s.call("rejoin_first", JoinGroup, v, _join(group, member))
        second = other.read_response(JoinGroup)
        s.note("join_second", second.to_dict())
    finally:
        other.close()


@scenario(JoinGroup, (5, 9))
def group_static_member_fenced(s: Session, v: int):
    """Static membership (KIP-345): a second join with the same group.instance.id replaces the member; the
    old member id is then FENCED_INSTANCE_ID."""
    group = s.name("sg")
    s.find_coordinator(group)
    first = s.call("join_a", JoinGroup, v, _join(group, instance="inst-1"))
    if first is None or first.error_code:
        return
    s.call("sync_a", SyncGroup, min(v, 5), _sync(group, first.generation_id, first.member_id,
                                                 [(first.member_id, b"")], instance="inst-1"))
    second = s.call("join_b", JoinGroup, v, _join(group, instance="inst-1"))
    s.call("heartbeat_old", Heartbeat, min(v, 4), hb.HeartbeatRequest(
        group_id=group, generation_id=first.generation_id, member_id=first.member_id, group_instance_id="inst-1"))
    if second is not None:
        s.call("heartbeat_new", Heartbeat, min(v, 4), hb.HeartbeatRequest(
            group_id=group, generation_id=second.generation_id, member_id=second.member_id,
            group_instance_id="inst-1"))


@scenario(JoinGroup, (5, 9))
def group_join_bad_session_timeout(s: Session, v: int):
    """A session timeout outside group.min/max.session.timeout.ms (6 s .. 30 min): INVALID_SESSION_TIMEOUT."""
    group = s.name("to")
    s.find_coordinator(group)
    s.call("join_too_short", JoinGroup, v, _join(group, session_ms=100))
    s.call("join_too_long", JoinGroup, v, _join(group, session_ms=3_600_000))


# -- transactions -------------------------------------------------------------------------------------------------

@scenario(InitProducerId, (0, 2, 3, 4, 5))
def init_producer_id_idempotent(s: Session, v: int):
    """A producer id without a transactional id."""
    init_producer_id(s, "init", None, v)


@scenario(EndTxn, (1, 3, 4, 5))
def transaction_state_errors(s: Session, v: int):
    """Ending a transaction that never started (INVALID_TXN_STATE or an empty commit), a second
    InitProducerId that bumps the epoch, and the old epoch afterwards (PRODUCER_FENCED /
    INVALID_PRODUCER_EPOCH)."""
    txn = s.name("tx")
    s.find_coordinator(txn, 1)
    topic = s.name("tt")
    s.create_topic(topic)
    first = init_producer_id(s, "init_1", txn)
    if first is None or first.error_code:
        return
    pid, e0 = first.producer_id, first.producer_epoch
    s.call("end_without_txn", EndTxn, v, et.EndTxnRequest(transactional_id=txn, producer_id=pid,
                                                          producer_epoch=e0, committed=True))
    second = init_producer_id(s, "init_2", txn)
    s.call("end_old_epoch", EndTxn, v, et.EndTxnRequest(transactional_id=txn, producer_id=pid, producer_epoch=e0,
                                                        committed=False))
    s.call("add_partitions_old_epoch", AddPartitionsToTxn, 3, apt.AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=txn, v3_and_below_producer_id=pid, v3_and_below_producer_epoch=e0,
        v3_and_below_topics=[apt.AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name=topic, partitions=[0])]))
    s.call("end_wrong_pid", EndTxn, v, et.EndTxnRequest(transactional_id=txn, producer_id=pid + 1000,
                                                        producer_epoch=0, committed=True))
    if second is not None and not second.error_code:
        s.call("add_partitions_unknown_topic", AddPartitionsToTxn, 3, apt.AddPartitionsToTxnRequest(
            v3_and_below_transactional_id=txn, v3_and_below_producer_id=second.producer_id,
            v3_and_below_producer_epoch=second.producer_epoch,
            v3_and_below_topics=[apt.AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name=s.name("none"),
                                                                                       partitions=[0])]))


def _produce_settled(s: Session, label: str, v: int, req) -> None:
    """A transactional Produce, retried while the partition's leader cannot add it to the transaction yet
    (NOT_LEADER_OR_FOLLOWER, or NOT_ENOUGH_REPLICAS for a coordinator that is loading or still writing the
    last transaction's markers), as a client retries; the answer that ends the retries is recorded."""
    deadline = time.monotonic() + 10
    while True:
        r = s.call(label, Produce, v, req)
        if r is None or r.responses[0].partition_responses[0].error_code not in (6, 19) or \
                time.monotonic() > deadline:
            return
        time.sleep(0.1)


@scenario(EndTxn, (5,))
def end_txn_v2_epoch_bump(s: Session, v: int):
    """Transaction protocol v2 (KIP-890 part 2): Produce v12 adds the partition to the transaction; each EndTxn
    v5 bumps the epoch and answers it; a retried end (at the epoch before) gets the same answer, the other
    outcome INVALID_TXN_STATE; the old epoch can no longer produce; the next transaction runs at the bumped
    epoch and its end bumps it again."""
    txn, topic = s.name("tv2"), s.name("tv2t")
    s.find_coordinator(txn, 1)
    s.create_topic(topic)
    first = init_producer_id(s, "init", txn, 5)
    if first is None or first.error_code:
        return
    pid, e0 = first.producer_id, first.producer_epoch

    def produce(label: str, epoch: int, seq: int) -> None:
        _produce_settled(s, label, 12, produce_request(topic, batch(b"t", producer_id=pid, producer_epoch=epoch,
                                                                   base_sequence=seq, transactional=True),
                                                       transactional_id=txn))

    def end(label: str, epoch: int, commit: bool):
        return s.call(label, EndTxn, v, et.EndTxnRequest(transactional_id=txn, producer_id=pid,
                                                          producer_epoch=epoch, committed=commit))

    def wait_complete() -> None:
        """Kafka answers EndTxn once the Prepare state is written and writes the markers after; until they are
        written a retry is CONCURRENT_TRANSACTIONS and the old epoch may still join the transaction. Wait for
        the Complete state (not recorded), so that what follows does not depend on that race."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = s.call("describe", DescribeTransactions, 0, dtx.DescribeTransactionsRequest(
                transactional_ids=[txn]), record=False)
            if r is None or r.transaction_states[0].transaction_state.startswith("Complete"):
                return
            time.sleep(0.05)

    produce("produce_1", e0, 0)
    end("commit", e0, True)
    wait_complete()
    end("commit_retry", e0, True)
    end("abort_retry_of_commit", e0, False)
    produce("produce_old_epoch", e0, 1)
    produce("produce_2", e0 + 1, 0)
    end("abort", e0 + 1, False)


# -- DescribeConfigs ----------------------------------------------------------------------------------------------

TOPIC, BROKER = 2, 4
BROKER_KEYS = ["num.partitions", "default.replication.factor", "advertised.listeners", "auto.create.topics.enable",
               "message.max.bytes", "log.retention.hours", "log.retention.ms", "log.segment.bytes",
               "offsets.topic.replication.factor", "group.initial.rebalance.delay.ms", "compression.type"]
TOPIC_KEYS = ["retention.ms", "cleanup.policy", "max.message.bytes", "segment.bytes", "min.insync.replicas",
              "compression.type", "message.timestamp.type", "retention.bytes"]


@scenario(DescribeConfigs, (0, 1, 3, 4))
def describe_configs_topic(s: Session, v: int):
    """A topic with retention.ms set: value, source (TOPIC_CONFIG vs DEFAULT_CONFIG), read-only and
    default flags, synonyms (v1+), types (v3+), for a chosen set of keys; an unknown topic."""
    name = s.name("dc")
    s.create_topic(name, configs={"retention.ms": "3600000"})
    s.call("topic", DescribeConfigs, v, dc.DescribeConfigsRequest(resources=[
        dc.DescribeConfigsRequest.DescribeConfigsResource(resource_type=TOPIC, resource_name=name,
                                                          configuration_keys=TOPIC_KEYS)],
        include_synonyms=v >= 1))
    s.call("unknown_topic", DescribeConfigs, v, dc.DescribeConfigsRequest(resources=[
        dc.DescribeConfigsRequest.DescribeConfigsResource(resource_type=TOPIC, resource_name=s.name("none"),
                                                          configuration_keys=None)]))


@scenario(DescribeConfigs, (1, 4))
def describe_configs_topic_all_keys(s: Session, v: int):
    """Every key of a topic (configuration_keys null): which keys exist, and their defaults."""
    name = s.name("dca")
    s.create_topic(name)
    r = s.call("topic", DescribeConfigs, v, dc.DescribeConfigsRequest(resources=[
        dc.DescribeConfigsRequest.DescribeConfigsResource(resource_type=TOPIC, resource_name=name,
                                                          configuration_keys=None)]), record=False)
    if r is not None:
        s.note("keys", sorted(c.name for c in r.results[0].configs))
        s.note("defaults", {c.name: c.value for c in r.results[0].configs})


@scenario(DescribeConfigs, (1, 4))
def describe_configs_broker(s: Session, v: int):
    """The broker resource (its own node id): keys Kafka lists, values, sources and synonyms."""
    node = s.norm.self_node_id
    s.call("broker", DescribeConfigs, v, dc.DescribeConfigsRequest(resources=[
        dc.DescribeConfigsRequest.DescribeConfigsResource(resource_type=BROKER, resource_name=str(node),
                                                          configuration_keys=BROKER_KEYS)],
        include_synonyms=True))
    s.call("other_broker", DescribeConfigs, v, dc.DescribeConfigsRequest(resources=[
        dc.DescribeConfigsRequest.DescribeConfigsResource(resource_type=BROKER, resource_name="4242",
                                                          configuration_keys=["num.partitions"])]))


# -- offsets ------------------------------------------------------------------------------------------------------

def _commit(group: str, topic: str, offset: int, generation: int = -1, member: str = "", partition: int = 0):
    return oc.OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=generation, member_id=member,
                                  topics=[oc.OffsetCommitRequest.OffsetCommitRequestTopic(name=topic, partitions=[
                                      oc.OffsetCommitRequest.OffsetCommitRequestPartition(
                                          partition_index=partition, committed_offset=offset,
                                          committed_metadata="m")])])


def _fetch_offsets(v: int, group: str, topic: str, partitions=(0, 5)):
    if v >= 8:
        return of.OffsetFetchRequest(groups=[of.OffsetFetchRequest.OffsetFetchRequestGroup(
            group_id=group, topics=[of.OffsetFetchRequest.OffsetFetchRequestTopics(
                name=topic, partition_indexes=list(partitions))])])
    return of.OffsetFetchRequest(group_id=group, topics=[of.OffsetFetchRequest.OffsetFetchRequestTopic(
        name=topic, partition_indexes=list(partitions))])


@scenario(OffsetCommit, (2, 7, 8, 9))
def offset_commit_and_fetch(s: Session, v: int):
    """A simple (generation -1) commit by a client outside any group, read back; a commit naming a
    generation and member of a group that has none (the group does not exist); an unknown partition."""
    group = s.name("og")
    topic = s.name("ot")
    s.create_topic(topic)
    s.find_coordinator(group)
    s.call("commit_simple", OffsetCommit, v, _commit(group, topic, 2))
    s.call("commit_with_generation", OffsetCommit, v, _commit(group, topic, 3, generation=4, member="ghost"))
    s.call("commit_unknown_partition", OffsetCommit, v, _commit(group, topic, 1, partition=9))
    s.call("fetch", OffsetFetch, min(v, 9) if v >= 8 else 6, _fetch_offsets(8 if v >= 8 else 6, group, topic))


@scenario(OffsetFetch, (1, 5, 7, 8, 9))
def offset_fetch_unknown_group(s: Session, v: int):
    """Offsets of a group that never committed: -1 for each asked partition, no error."""
    group = s.name("nog")
    topic = s.name("ot")
    s.create_topic(topic)
    s.find_coordinator(group)
    s.call("fetch", OffsetFetch, v, _fetch_offsets(v, group, topic))


# -- admin odds and ends ------------------------------------------------------------------------------------------

@scenario(DeleteRecords, (0, 2))
def delete_records_bounds(s: Session, v: int):
    """Deleting up to 2 of 3 records (low watermark 2), beyond the high watermark (OFFSET_OUT_OF_RANGE), -1
    (up to the high watermark) and an unknown partition."""
    topic = s.name("dr")
    s.create_topic(topic)
    seed(s, topic, batch(b"a", b"b", b"c"))

    def req(offset: int, partition: int = 0):
        return dr.DeleteRecordsRequest(timeout_ms=10000, topics=[dr.DeleteRecordsRequest.DeleteRecordsTopic(
            name=topic, partitions=[dr.DeleteRecordsRequest.DeleteRecordsPartition(partition_index=partition,
                                                                                   offset=offset)])])

    s.call("to_2", DeleteRecords, v, req(2))
    s.call("beyond_hw", DeleteRecords, v, req(10))
    s.call("to_hw", DeleteRecords, v, req(-1))
    s.call("unknown_partition", DeleteRecords, v, req(0, partition=4))


@scenario(CreatePartitions, (0, 1, 3))
def create_partitions_errors(s: Session, v: int):
    """Growing a topic from 1 to 3, then asking for fewer (INVALID_PARTITIONS), the same count, and an
    unknown topic."""
    topic = s.name("cp")
    s.create_topic(topic)

    def req(name: str, count: int):
        return cp.CreatePartitionsRequest(topics=[cp.CreatePartitionsRequest.CreatePartitionsTopic(
            name=name, count=count, assignments=None)], timeout_ms=10000)

    s.call("grow_to_3", CreatePartitions, v, req(topic, 3))
    s.call("shrink_to_2", CreatePartitions, v, req(topic, 2))
    s.call("same_3", CreatePartitions, v, req(topic, 3))
    s.call("unknown_topic", CreatePartitions, v, req(s.name("none"), 2))


@scenario(SaslHandshake, (0, 1))
def sasl_handshake_on_plaintext(s: Session, v: int):
    """A SASL handshake on a PLAINTEXT listener, and for a mechanism nobody serves."""
    c = s.new_connection()
    try:
        s.call("plain", SaslHandshake, v, sh.SaslHandshakeRequest(mechanism="PLAIN"), conn=c)
    finally:
        c.close()
    c = s.new_connection()
    try:
        s.call("unknown_mechanism", SaslHandshake, v, sh.SaslHandshakeRequest(mechanism="NOPE-42"), conn=c)
    finally:
        c.close()


@scenario(Produce, (3, 9, 12))
def produce_timestamp_out_of_range(s: Session, v: int):
    """A record stamped two hours ahead of the broker's clock: beyond message.timestamp.after.max.ms (one
    hour in Kafka 4, KIP-937), INVALID_TIMESTAMP naming each record (v8+), nothing appended. The records'
    messages name the broker's clock, so only their indexes are recorded."""
    name = s.name("ts")
    s.create_topic(name)
    ahead = int(time.time() * 1000) + 2 * 3600_000
    r = s.call("produce", Produce, v, produce_request(name, batch(b"a", b"b", timestamp_ms=ahead)), record=False)
    if r is not None:
        p = r.responses[0].partition_responses[0]
        s.note("produce", {"error_code": p.error_code, "base_offset": p.base_offset, "error_message": p.error_message,
                           "log_start_offset": p.log_start_offset,
                           "record_errors": [e.batch_index for e in p.record_errors]})
    s.call("fetch_after", Fetch, 12, fetch_request(name, 0))


# -- groups: describe, list, delete, offsets --------------------------------------------------------------------

DescribeGroups, ListGroups, DeleteGroups, OffsetDelete = 15, 16, 42, 47


def _subscription(*topics: str) -> bytes:
    """ConsumerProtocolSubscription v0: version, topics, null user data."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def _assignment(topic: str, *partitions: int) -> bytes:
    """ConsumerProtocolAssignment v0: version, one topic's partitions, null user data."""
    return (struct.pack(">hih", 0, 1, len(topic)) + topic.encode() + struct.pack(">i", len(partitions))
            + b"".join(struct.pack(">i", p) for p in partitions) + struct.pack(">i", -1))


def stable_member(s: Session, group: str, topic: str, label: str | None = None):
    """One consumer joined and synced (generation 1, assigned partition 0 of ``topic``); returns
    (member id, generation) or None. Recorded under ``label`` when given."""
    join = jg.JoinGroupRequest(group_id=group, session_timeout_ms=30000, rebalance_timeout_ms=10000, member_id="",
                               group_instance_id=None, protocol_type="consumer", protocols=[
                                   jg.JoinGroupRequest.JoinGroupRequestProtocol(name="range",
                                                                                metadata=_subscription(topic))])
    r = s.conn.call(JoinGroup, 9, join)
    if r.error_code == 79:  # MEMBER_ID_REQUIRED
        join.member_id = r.member_id
        r = s.conn.call(JoinGroup, 9, join)
    if r.error_code:
        raise ScenarioError(f"joining {group}: error {r.error_code}")
    sr = s.conn.call(SyncGroup, 5, _sync(group, r.generation_id, r.member_id,
                                         [(r.member_id, _assignment(topic, 0))]))
    if sr.error_code:
        raise ScenarioError(f"syncing {group}: error {sr.error_code}")
    if label:
        s.note(label, {"join": r.error_code, "sync": sr.error_code})
    return r.member_id, r.generation_id


@scenario(DescribeGroups, (0, 1, 3, 4, 5, 6))
def describe_groups_states(s: Session, v: int):
    """A stable group with one consumer (protocol, state, member metadata and assignment), a group that only
    has committed offsets (Empty), and a group that does not exist."""
    group, empty, topic = s.name("dg"), s.name("dge"), s.name("dgt")
    s.create_topic(topic)
    s.find_coordinator(group)
    s.find_coordinator(empty)
    stable_member(s, group, topic)
    s.conn.call(OffsetCommit, 8, _commit(empty, topic, 1))
    req = dg.DescribeGroupsRequest(groups=[group, empty, s.name("nog")], include_authorized_operations=v >= 3)
    s.call("describe", DescribeGroups, v, req)


def _ours(s: Session, items: list, key: str) -> list:
    """The items of a broker-wide list (groups, transactions) that this run made."""
    return [i for i in items if s.token in (i.get(key) or "")]


@scenario(ListGroups, (0, 3, 4, 5))
def list_groups_with_filters(s: Session, v: int):
    """Every group (this run's: the broker lists all), by state (v4+: Stable) and by type (v5: classic,
    consumer)."""
    group, empty, topic = s.name("lg"), s.name("lge"), s.name("lgt")
    s.create_topic(topic)
    s.find_coordinator(group)
    s.find_coordinator(empty)
    stable_member(s, group, topic)
    s.conn.call(OffsetCommit, 8, _commit(empty, topic, 1))
    filters = {"all": ([], [])}
    if v >= 4:
        filters["stable"] = (["Stable"], [])
        filters["empty_or_dead"] = (["Empty", "Dead"], [])
    if v >= 5:
        filters["classic"] = ([], ["classic"])
        filters["consumer_type"] = ([], ["consumer"])
    for label, (states, types) in filters.items():
        r = s.call(label, ListGroups, v, lg.ListGroupsRequest(states_filter=states, types_filter=types), record=False)
        if r is not None:
            d = r.to_dict()
            d["groups"] = _ours(s, d["groups"], "group_id")
            s.note(label, d)


@scenario(DeleteGroups, (0, 1, 2, 3))
def delete_groups_outcomes(s: Session, v: int):
    """A group with a member (NON_EMPTY_GROUP), a group with only offsets (deleted, offsets gone), an unknown
    group (GROUP_ID_NOT_FOUND), and an invalid (empty) group id."""
    group, empty, topic = s.name("del"), s.name("dele"), s.name("delt")
    s.create_topic(topic)
    s.find_coordinator(group)
    s.find_coordinator(empty)
    stable_member(s, group, topic)
    s.conn.call(OffsetCommit, 8, _commit(empty, topic, 1))
    s.call("delete", DeleteGroups, v, del_g.DeleteGroupsRequest(groups_names=[group, empty, s.name("nog"), ""]))
    s.call("offsets_after", OffsetFetch, 8, _fetch_offsets(8, empty, topic, (0,)))
    s.call("describe_after", DescribeGroups, 5, dg.DescribeGroupsRequest(groups=[empty]))


@scenario(OffsetDelete, (0,))
def offset_delete_outcomes(s: Session, v: int):
    """Offsets of an empty group deleted (then -1 on fetch); a group whose member subscribes to the topic
    (GROUP_SUBSCRIBED_TO_TOPIC); an unknown group (GROUP_ID_NOT_FOUND); a topic the group never committed."""
    group, busy, topic, other = s.name("od"), s.name("odb"), s.name("odt"), s.name("odo")
    s.create_topic(topic, 2)
    s.create_topic(other)
    s.find_coordinator(group)
    s.find_coordinator(busy)
    s.conn.call(OffsetCommit, 8, _commit(group, topic, 4))
    stable_member(s, busy, topic)

    def req(g: str, t: str, *partitions: int):
        return od.OffsetDeleteRequest(group_id=g, topics=[od.OffsetDeleteRequest.OffsetDeleteRequestTopic(
            name=t, partitions=[od.OffsetDeleteRequest.OffsetDeleteRequestPartition(partition_index=p)
                                for p in partitions])])

    s.call("empty_group", OffsetDelete, v, req(group, topic, 0, 1))
    s.call("fetch_after", OffsetFetch, 8, _fetch_offsets(8, group, topic, (0, 1)))
    s.call("subscribed", OffsetDelete, v, req(busy, topic, 0))
    s.call("not_subscribed_topic", OffsetDelete, v, req(busy, other, 0))
    s.call("unknown_group", OffsetDelete, v, req(s.name("nog"), topic, 0))
    s.call("unknown_topic", OffsetDelete, v, req(group, s.name("not"), 0))


# -- transactions: offsets in a transaction, describing and listing them ------------------------------------------

AddOffsetsToTxn, TxnOffsetCommit, DescribeProducers, DescribeTransactions, ListTransactions = 25, 28, 61, 65, 66


def _add_partitions(txn: str, pid: int, epoch: int, topic: str, *partitions: int):
    return apt.AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=txn, v3_and_below_producer_id=pid, v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=[apt.AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name=topic,
                                                                                   partitions=list(partitions))])


def _txn_commit(txn: str, group: str, pid: int, epoch: int, topic: str, offset: int, v: int, member: str = "",
                generation: int = -1):
    return toc.TxnOffsetCommitRequest(
        transactional_id=txn, group_id=group, producer_id=pid, producer_epoch=epoch, generation_id=generation,
        member_id=member, group_instance_id=None, topics=[toc.TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic(
            name=topic, partitions=[toc.TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition(
                partition_index=0, committed_offset=offset, committed_leader_epoch=-1, committed_metadata="tm")])])


@scenario(TxnOffsetCommit, (0, 2, 3, 4))
def txn_offset_commit_flow(s: Session, v: int):
    """Offsets committed in a transaction: AddOffsetsToTxn, TxnOffsetCommit, invisible to a require_stable
    OffsetFetch until EndTxn commits them; a commit after the transaction ended (no AddOffsetsToTxn for
    the new one); an unknown producer id."""
    txn, group, topic = s.name("tx"), s.name("txg"), s.name("txt")
    s.create_topic(topic)
    s.find_coordinator(txn, 1)
    s.find_coordinator(group)
    init = init_producer_id(s, "init", txn)
    if init is None or init.error_code:
        return
    pid, epoch = init.producer_id, init.producer_epoch
    s.call("add_offsets", AddOffsetsToTxn, 3, ao.AddOffsetsToTxnRequest(transactional_id=txn, producer_id=pid,
                                                                       producer_epoch=epoch, group_id=group))
    s.call("commit", TxnOffsetCommit, v, _txn_commit(txn, group, pid, epoch, topic, 7, v))
    stable = of.OffsetFetchRequest(groups=[of.OffsetFetchRequest.OffsetFetchRequestGroup(
        group_id=group, topics=[of.OffsetFetchRequest.OffsetFetchRequestTopics(name=topic, partition_indexes=[0])])],
        require_stable=True)
    s.call("fetch_stable_before_end", OffsetFetch, 8, stable)
    s.call("end", EndTxn, 3, et.EndTxnRequest(transactional_id=txn, producer_id=pid, producer_epoch=epoch,
                                              committed=True))
    deadline = time.monotonic() + 10
    while True:  # the markers are written after EndTxn answers: a stable fetch says UNSTABLE_OFFSET_COMMIT until then
        r = s.call("fetch_after_end", OffsetFetch, 8, stable)
        if r is None or r.groups[0].topics[0].partitions[0].error_code != 88 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while True:  # CONCURRENT_TRANSACTIONS while the coordinator completes the commit: retried, as a client does
        r = s.call("commit_after_end", TxnOffsetCommit, v, _txn_commit(txn, group, pid, epoch, topic, 9, v))
        if r is None or r.topics[0].partitions[0].error_code != 51 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    s.call("commit_unknown_pid", TxnOffsetCommit, v, _txn_commit(txn, group, pid + 1000, 0, topic, 9, v))


@scenario(AddOffsetsToTxn, (0, 3))
def add_offsets_to_txn_errors(s: Session, v: int):
    """AddOffsetsToTxn with an unknown producer id (INVALID_PRODUCER_ID_MAPPING), an old epoch after a bump,
    and for an unknown transactional id."""
    txn, group = s.name("ao"), s.name("aog")
    s.find_coordinator(txn, 1)
    first = init_producer_id(s, "init", txn)
    if first is None or first.error_code:
        return
    s.call("unknown_pid", AddOffsetsToTxn, v, ao.AddOffsetsToTxnRequest(
        transactional_id=txn, producer_id=first.producer_id + 1000, producer_epoch=0, group_id=group))
    init_producer_id(s, "init_again", txn)
    s.call("old_epoch", AddOffsetsToTxn, v, ao.AddOffsetsToTxnRequest(
        transactional_id=txn, producer_id=first.producer_id, producer_epoch=first.producer_epoch, group_id=group))
    s.call("unknown_txn", AddOffsetsToTxn, v, ao.AddOffsetsToTxnRequest(
        transactional_id=s.name("nobody"), producer_id=first.producer_id, producer_epoch=0, group_id=group))


@scenario(DescribeProducers, (0,))
def describe_producers_states(s: Session, v: int):
    """An idempotent producer's state on a partition (epoch, last sequence, last timestamp), a partition
    no producer wrote, an unknown partition and an unknown topic."""
    topic = s.name("dp")
    s.create_topic(topic, 2)
    init = init_producer_id(s, "init", None)
    if init is None or init.error_code:
        return
    for seq in (0, 2):
        seed(s, topic, batch(b"a", b"b", producer_id=init.producer_id, producer_epoch=init.producer_epoch,
                             base_sequence=seq, timestamp_ms=1000 + seq))
    s.call("describe", DescribeProducers, v, dprod.DescribeProducersRequest(topics=[
        dprod.DescribeProducersRequest.TopicRequest(name=topic, partition_indexes=[0, 1, 7]),
        dprod.DescribeProducersRequest.TopicRequest(name=s.name("none"), partition_indexes=[0])]))


@scenario(DescribeTransactions, (0,))
def describe_and_list_transactions(s: Session, v: int):
    """A transaction with a partition added (Ongoing), one only initialised (Empty), an unknown id
    (TRANSACTIONAL_ID_NOT_FOUND); ListTransactions (this run's) by state and by producer id."""
    open_txn, idle_txn, topic = s.name("dto"), s.name("dti"), s.name("dtt")
    s.create_topic(topic)
    s.find_coordinator(open_txn, 1)
    s.find_coordinator(idle_txn, 1)
    a = init_producer_id(s, "init_open", open_txn)
    b = init_producer_id(s, "init_idle", idle_txn)
    if a is None or a.error_code or b is None or b.error_code:
        return
    s.call("add_partitions", AddPartitionsToTxn, 3,
           _add_partitions(open_txn, a.producer_id, a.producer_epoch, topic, 0))
    s.call("describe", DescribeTransactions, v, dtx.DescribeTransactionsRequest(
        transactional_ids=[open_txn, idle_txn, s.name("nobody")]))
    for label, states, pids in (("list_all", [], []), ("list_ongoing", ["Ongoing"], []),
                                ("list_by_pid", [], [a.producer_id])):
        r = s.call(label, ListTransactions, 0, ltx.ListTransactionsRequest(state_filters=states,
                                                                          producer_id_filters=pids), record=False)
        if r is not None:
            d = r.to_dict()
            d["transaction_states"] = _ours(s, d["transaction_states"], "transactional_id")
            s.note(label, d)


@scenario(ListTransactions, (0, 1, 2))
def list_transactions_filters(s: Session, v: int):
    """ListTransactions with an unknown state filter (ignored or refused), a duration filter (v1+: open longer
    than an hour: none) and a transactional id pattern (v2, a regular expression)."""
    txn, topic = s.name("lt"), s.name("ltt")
    s.create_topic(topic)
    s.find_coordinator(txn, 1)
    a = init_producer_id(s, "init", txn)
    if a is None or a.error_code:
        return
    s.call("add_partitions", AddPartitionsToTxn, 3, _add_partitions(txn, a.producer_id, a.producer_epoch, topic, 0))
    queries = {"unknown_state": ltx.ListTransactionsRequest(state_filters=["NoSuchState"], producer_id_filters=[])}
    if v >= 1:
        queries["open_over_an_hour"] = ltx.ListTransactionsRequest(state_filters=[], producer_id_filters=[],
                                                                   duration_filter=3600_000)
    if v >= 2:
        queries["pattern"] = ltx.ListTransactionsRequest(state_filters=[], producer_id_filters=[],
                                                         transactional_id_pattern=f"{s.token}-l.*")
        queries["bad_pattern"] = ltx.ListTransactionsRequest(state_filters=[], producer_id_filters=[],
                                                             transactional_id_pattern="([")
    for label, req in queries.items():
        r = s.call(label, ListTransactions, v, req, record=False)
        if r is not None:
            d = r.to_dict()
            d["transaction_states"] = _ours(s, d["transaction_states"], "transactional_id")
            s.note(label, d)


# -- configs: AlterConfigs, IncrementalAlterConfigs ----------------------------------------------------------------

AlterConfigs, IncrementalAlterConfigs = 33, 44
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def _describe_overrides(s: Session, label: str, topic: str, settled=lambda overrides: True) -> None:
    """The topic's configs set on it (source TOPIC_CONFIG), as DescribeConfigs v4 lists them."""
    _describe_settled(s, label, TOPIC, topic, None, lambda configs: {c.name: c.value for c in configs
                                                                     if c.config_source == 1}, settled)


def _describe_settled(s: Session, label: str, rtype: int, name: str, keys, extract, settled) -> None:
    """``extract(configs)`` of a resource as DescribeConfigs v4 describes it. Kafka's broker learns a change from
    the controller's log a moment after answering it: read again (up to 5 s) until ``settled`` says the change is
    seen, then record."""
    req = dc.DescribeConfigsRequest(resources=[dc.DescribeConfigsRequest.DescribeConfigsResource(
        resource_type=rtype, resource_name=name, configuration_keys=keys)])
    deadline = time.monotonic() + 5
    while True:
        r = s.call(label, DescribeConfigs, 4, req, record=False)
        if r is None:
            return
        got = extract(r.results[0].configs)
        if settled(got) or time.monotonic() > deadline:
            s.note(label, got)
            return
        time.sleep(0.05)


@scenario(AlterConfigs, (0, 1, 2))
def alter_configs_topic(s: Session, v: int):
    """AlterConfigs replaces a topic's whole set of overrides; a bad value (INVALID_CONFIG and its message), an
    unknown key, an unknown topic, validate_only (nothing changes), and the broker resource (validate_only)."""
    topic = s.name("ac")
    s.create_topic(topic, configs={"retention.ms": "3600000", "cleanup.policy": "compact"})

    def req(name: str, configs: dict[str, str], rtype: int = TOPIC, validate_only: bool = False):
        return ac.AlterConfigsRequest(validate_only=validate_only, resources=[
            ac.AlterConfigsRequest.AlterConfigsResource(resource_type=rtype, resource_name=name, configs=[
                ac.AlterConfigsRequest.AlterableConfig(name=k, value=val) for k, val in configs.items()])])

    s.call("replace", AlterConfigs, v, req(topic, {"segment.ms": "100000"}))
    _describe_overrides(s, "after_replace", topic, lambda o: "retention.ms" not in o)
    s.call("bad_value", AlterConfigs, v, req(topic, {"retention.ms": "soon"}))
    s.call("unknown_key", AlterConfigs, v, req(topic, {"no.such.key": "1"}))
    s.call("unknown_topic", AlterConfigs, v, req(s.name("none"), {"retention.ms": "1000"}))
    s.call("validate_only", AlterConfigs, v, req(topic, {"retention.ms": "1000"}, validate_only=True))
    _describe_overrides(s, "after_validate_only", topic)
    s.call("broker_validate_only", AlterConfigs, v, req(str(s.norm.self_node_id), {"log.cleaner.threads": "2"},
                                                        rtype=BROKER, validate_only=True))


@scenario(IncrementalAlterConfigs, (0, 1))
def incremental_alter_configs_topic(s: Session, v: int):
    """SET, DELETE, APPEND and SUBTRACT on a topic (cleanup.policy is a list; SUBTRACT may leave it empty),
    APPEND to a key that is not a list (INVALID_CONFIG), an unknown key, an unknown topic, a broker key
    (validate_only) and a read-only broker key."""
    topic = s.name("iac")
    s.create_topic(topic, configs={"retention.ms": "3600000"})

    def req(name: str, *ops: tuple[str, int, str | None], rtype: int = TOPIC, validate_only: bool = False):
        return iac.IncrementalAlterConfigsRequest(validate_only=validate_only, resources=[
            iac.IncrementalAlterConfigsRequest.AlterConfigsResource(resource_type=rtype, resource_name=name, configs=[
                iac.IncrementalAlterConfigsRequest.AlterableConfig(name=k, config_operation=op, value=val)
                for k, op, val in ops])])

    s.call("set_and_delete", IncrementalAlterConfigs, v, req(topic, ("segment.ms", SET, "100000"),
                                                             ("retention.ms", DELETE, None)))
    _describe_overrides(s, "after_set_and_delete", topic, lambda o: "retention.ms" not in o and "segment.ms" in o)
    s.call("append", IncrementalAlterConfigs, v, req(topic, ("cleanup.policy", APPEND, "compact")))
    _describe_overrides(s, "after_append", topic, lambda o: "compact" in o.get("cleanup.policy", ""))
    s.call("subtract_to_empty", IncrementalAlterConfigs, v, req(topic, ("cleanup.policy", SUBTRACT, "delete"),
                                                                ("cleanup.policy", SUBTRACT, "compact")))
    s.call("subtract_all", IncrementalAlterConfigs, v, req(topic, ("cleanup.policy", SUBTRACT, "delete,compact")))
    _describe_overrides(s, "after_subtract", topic, lambda o: "compact" not in o.get("cleanup.policy", ""))
    s.call("append_not_a_list", IncrementalAlterConfigs, v, req(topic, ("retention.ms", APPEND, "5")))
    s.call("unknown_key", IncrementalAlterConfigs, v, req(topic, ("no.such.key", SET, "1")))
    s.call("bad_operation", IncrementalAlterConfigs, v, req(topic, ("retention.ms", 9, "1")))
    s.call("unknown_topic", IncrementalAlterConfigs, v, req(s.name("none"), ("retention.ms", SET, "1")))
    node = str(s.norm.self_node_id)
    s.call("broker_dynamic", IncrementalAlterConfigs, v, req(node, ("log.cleaner.threads", SET, "2"), rtype=BROKER,
                                                             validate_only=True))
    s.call("broker_read_only", IncrementalAlterConfigs, v, req(node, ("log.dirs", SET, "/tmp/x"), rtype=BROKER,
                                                               validate_only=True))


GROUP = 32
CONSUMER_GROUP_KEYS = ["consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"]


@scenario(IncrementalAlterConfigs, (0, 1))
def incremental_alter_configs_group_consumer(s: Session, v: int):
    """A GROUP resource's consumer-protocol keys (Kafka's GroupConfig, KIP-848): values within the broker's
    group.consumer.* bounds set and described (GROUP_CONFIG over DEFAULT_CONFIG), values out of them and not a
    number (INVALID_CONFIG and Kafka's message), validate_only, and DELETEs back to the broker's settings."""
    group = s.name("gcc")

    def req(*ops: tuple[str, int, str | None], validate_only: bool = False):
        return iac.IncrementalAlterConfigsRequest(validate_only=validate_only, resources=[
            iac.IncrementalAlterConfigsRequest.AlterConfigsResource(resource_type=GROUP, resource_name=group, configs=[
                iac.IncrementalAlterConfigsRequest.AlterableConfig(name=k, config_operation=op, value=val)
                for k, op, val in ops])])

    def describe(label: str, settled) -> None:
        _describe_settled(s, label, GROUP, group, CONSUMER_GROUP_KEYS, lambda configs: {
            c.name: [c.value, c.config_source, c.config_type, c.read_only] for c in configs}, settled)

    s.call("set", IncrementalAlterConfigs, v, req(("consumer.session.timeout.ms", SET, "50000"),
                                                  ("consumer.heartbeat.interval.ms", SET, "6000")))
    describe("after_set", lambda got: got.get("consumer.session.timeout.ms", [""])[0] == "50000")
    s.call("session_below_min", IncrementalAlterConfigs, v, req(("consumer.session.timeout.ms", SET, "44999")))
    s.call("session_above_max", IncrementalAlterConfigs, v, req(("consumer.session.timeout.ms", SET, "60001")))
    s.call("heartbeat_below_min", IncrementalAlterConfigs, v, req(("consumer.heartbeat.interval.ms", SET, "4999")))
    s.call("heartbeat_above_max", IncrementalAlterConfigs, v,
           req(("consumer.heartbeat.interval.ms", SET, "15001")))
    s.call("not_a_number", IncrementalAlterConfigs, v, req(("consumer.session.timeout.ms", SET, "soon")))
    s.call("validate_only", IncrementalAlterConfigs, v, req(("consumer.session.timeout.ms", SET, "55000"),
                                                            validate_only=True))
    s.call("delete_one", IncrementalAlterConfigs, v, req(("consumer.heartbeat.interval.ms", DELETE, None)))
    describe("after_delete", lambda got: got.get("consumer.heartbeat.interval.ms", [""])[0] == "5000")
    # The group left with no configs: ListConfigResources (another scenario) no longer lists it.
    s.call("delete_last", IncrementalAlterConfigs, v, req(("consumer.session.timeout.ms", DELETE, None)))
    describe("after_delete_last", lambda got: got.get("consumer.session.timeout.ms", [""])[0] == "45000")


# -- cluster, log dirs, leader epochs -----------------------------------------------------------------------------

OffsetForLeaderEpoch, DescribeLogDirs, DescribeCluster = 23, 35, 60


@scenario(OffsetForLeaderEpoch, (2, 3, 4))
def offset_for_leader_epoch_answers(s: Session, v: int):
    """The end offset of epoch 0 (the only one), of a later epoch, with a current leader epoch that is
    fenced (older) or unknown (newer), and an unknown partition and topic."""
    topic = s.name("ole")
    s.create_topic(topic)
    seed(s, topic, batch(b"a", b"b", b"c"))

    def req(epoch: int, current: int = -1, partition: int = 0, name: str = topic):
        return ofle.OffsetForLeaderEpochRequest(replica_id=-1, topics=[
            ofle.OffsetForLeaderEpochRequest.OffsetForLeaderTopic(topic=name, partitions=[
                ofle.OffsetForLeaderEpochRequest.OffsetForLeaderPartition(
                    partition=partition, current_leader_epoch=current, leader_epoch=epoch)])])

    s.call("epoch_0", OffsetForLeaderEpoch, v, req(0))
    s.call("epoch_5", OffsetForLeaderEpoch, v, req(5))
    s.call("current_newer", OffsetForLeaderEpoch, v, req(0, current=7))
    s.call("unknown_partition", OffsetForLeaderEpoch, v, req(0, partition=4))
    s.call("unknown_topic", OffsetForLeaderEpoch, v, req(0, name=s.name("none")))


@scenario(DescribeCluster, (0, 1, 2))
def describe_cluster_answers(s: Session, v: int):
    """The cluster (id, controller, brokers, authorised operations when asked); v1+: controllers as the
    endpoint type, which a broker does not serve (UNSUPPORTED_ENDPOINT_TYPE)."""
    s.call("plain", DescribeCluster, v, dcl.DescribeClusterRequest(include_cluster_authorized_operations=False,
                                                                   endpoint_type=1))
    s.call("with_operations", DescribeCluster, v, dcl.DescribeClusterRequest(
        include_cluster_authorized_operations=True, endpoint_type=1))
    if v >= 1:
        s.call("controllers", DescribeCluster, v, dcl.DescribeClusterRequest(
            include_cluster_authorized_operations=False, endpoint_type=2))
    if v >= 2:
        s.call("include_fenced", DescribeCluster, v, dcl.DescribeClusterRequest(
            include_cluster_authorized_operations=False, endpoint_type=1, include_fenced_brokers=True))


@scenario(DescribeLogDirs, (1, 2, 3, 4))
def describe_log_dirs_partitions(s: Session, v: int):
    """The one log directory with this run's topic (two partitions asked, one of them written, one unknown)
    and an unknown topic. Sizes and the directory's path are the host's: recorded as whether they are
    known."""
    topic = s.name("ld")
    s.create_topic(topic, 2)
    seed(s, topic, batch(b"a", b"b", b"c"))
    r = s.call("describe", DescribeLogDirs, v, dld.DescribeLogDirsRequest(topics=[
        dld.DescribeLogDirsRequest.DescribableLogDirTopic(topic=topic, partitions=[0, 1, 9]),
        dld.DescribeLogDirsRequest.DescribableLogDirTopic(topic=s.name("none"), partitions=[0])]), record=False)
    if r is None:
        return
    s.note("describe", {"error_code": r.error_code, "dirs": [{
        "error_code": d.error_code,
        "log_dir_absolute": d.log_dir.startswith("/"),
        "totals_known": [d.total_bytes > 0, d.usable_bytes > 0] if v >= 4 else None,
        "topics": [{"name": t.name, "partitions": [
            {"partition_index": p.partition_index, "has_data": p.partition_size > 0, "offset_lag": p.offset_lag,
             "is_future_key": p.is_future_key} for p in t.partitions]}
                   for t in d.topics if s.token in t.name]} for d in r.results]})


# -- SASL on the PLAINTEXT listener, SCRAM credentials ---------------------------------------------------------

DescribeUserScramCredentials, AlterUserScramCredentials = 50, 51


@scenario(SaslAuthenticate, (0, 1, 2))
def sasl_authenticate_on_plaintext(s: Session, v: int):
    """SaslAuthenticate on a PLAINTEXT listener without a handshake: refused, or the connection closed."""
    c = s.new_connection()
    try:
        s.call("authenticate", SaslAuthenticate, v, sa.SaslAuthenticateRequest(auth_bytes=b"\x00alice\x00secret"),
               conn=c)
    finally:
        c.close()


@scenario(AlterUserScramCredentials, (0,))
def scram_credentials_lifecycle(s: Session, v: int):
    """SCRAM credentials of a user: none yet (RESOURCE_NOT_FOUND), too few iterations
    (UNACCEPTABLE_CREDENTIAL), an unknown mechanism, an upsert, described, deleted, deleted again."""
    user = s.name("user")
    salt, salted = b"s" * 16, b"p" * 32

    def upsert(mechanism: int, iterations: int, name: str = user):
        return auc.AlterUserScramCredentialsRequest(deletions=[], upsertions=[
            auc.AlterUserScramCredentialsRequest.ScramCredentialUpsertion(
                name=name, mechanism=mechanism, iterations=iterations, salt=salt, salted_password=salted)])

    def delete(mechanism: int):
        return auc.AlterUserScramCredentialsRequest(upsertions=[], deletions=[
            auc.AlterUserScramCredentialsRequest.ScramCredentialDeletion(name=user, mechanism=mechanism)])

    def describe(*names: str):
        return duc.DescribeUserScramCredentialsRequest(users=[
            duc.DescribeUserScramCredentialsRequest.UserName(name=n) for n in names])

    s.call("describe_none", DescribeUserScramCredentials, 0, describe(user))
    s.call("too_few_iterations", AlterUserScramCredentials, v, upsert(1, 100))
    s.call("unknown_mechanism", AlterUserScramCredentials, v, upsert(9, 8192))
    s.call("empty_user", AlterUserScramCredentials, v, upsert(1, 8192, name=""))
    s.call("upsert", AlterUserScramCredentials, v, upsert(2, 8192))
    deadline = time.monotonic() + 5
    while True:  # Kafka applies it once the controller's record reaches the broker
        r = s.call("describe_after", DescribeUserScramCredentials, 0, describe(user))
        if r is None or r.results[0].error_code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    s.call("delete", AlterUserScramCredentials, v, delete(2))
    s.call("delete_again", AlterUserScramCredentials, v, delete(2))


AlterReplicaLogDirs, ListConfigResources = 34, 74


@scenario(AlterReplicaLogDirs, (1, 2))
def alter_replica_log_dirs_answers(s: Session, v: int):
    """Moving replicas to the broker's own log directory (the path DescribeLogDirs names): a replica already
    there (no error, no future log), an unknown partition and an unknown topic; and to a path that is no log
    directory of the broker (LOG_DIR_NOT_FOUND)."""
    from ..wire.messages import alter_replica_log_dirs as arl

    topic = s.name("arl")
    s.create_topic(topic, 2)
    seed(s, topic, batch(b"a"))
    r = s.conn.call(DescribeLogDirs, 4, dld.DescribeLogDirsRequest(topics=None))
    if not r.results:
        raise ScenarioError("DescribeLogDirs named no log directory")
    here = r.results[0].log_dir

    def req(path: str, *topics: tuple[str, list[int]]):
        return arl.AlterReplicaLogDirsRequest(dirs=[arl.AlterReplicaLogDirsRequest.AlterReplicaLogDir(
            path=path, topics=[arl.AlterReplicaLogDirsRequest.AlterReplicaLogDirTopic(name=n, partitions=ps)
                               for n, ps in topics])])

    s.call("same_dir", AlterReplicaLogDirs, v, req(here, (topic, [0, 1, 7]), (s.name("none"), [0])))
    s.call("unknown_dir", AlterReplicaLogDirs, v, req("/no/such/kbroker/dir", (topic, [0])))
    after = s.conn.call(DescribeLogDirs, 4, dld.DescribeLogDirsRequest(topics=[
        dld.DescribeLogDirsRequest.DescribableLogDirTopic(topic=topic, partitions=[0, 1])]))
    s.note("future_logs_after", [p.is_future_key for d in after.results for t in d.topics if t.name == topic
                                 for p in t.partitions])


@scenario(ListConfigResources, (0, 1))
def list_config_resources_types(s: Session, v: int):
    """v0 (ListClientMetricsResources): the client-metrics subscriptions (none here). v1 (KIP-1142): every
    type (this run's topic among the topics, the broker), topics only, brokers only, groups (none without
    group configs), and a type that has no configs (UNSUPPORTED_VERSION)."""
    from ..wire.messages import list_config_resources as lcr

    topic = s.name("lcr")
    s.create_topic(topic)
    queries = {"default": []} if v == 0 else {"all": [], "topics": [2], "brokers": [4], "groups": [32],
                                             "client_metrics": [16], "unsupported_type": [3]}
    for label, types in queries.items():
        r = s.call(label, ListConfigResources, v, lcr.ListConfigResourcesRequest(resource_types=types), record=False)
        if r is None:
            s.call(label, ListConfigResources, v, lcr.ListConfigResourcesRequest(resource_types=types))
            continue
        d = r.to_dict()
        d["config_resources"] = [c for c in s.norm(d["config_resources"], "config_resources")
                                 if c.get("resource_type") not in (2, None) or "<run>" in c["resource_name"]]
        d["throttle_time_ms"] = 0
        s.answers[label] = d


# -- SASL on the SASL_PLAINTEXT listener and ACLs with the authorizer (realkafka.security_settings) ----------
# alice is the suite's SASL user, with no ACLs: she may do nothing. Whoever comes over PLAINTEXT is a super
# user (the suite's admin). ACLs a scenario creates name principals and resources after the run token.

ALICE_PASSWORD = SUITE_USERS["alice"]
# Kafka's AclResourceType, PatternType, AclOperation and AclPermissionType codes.
ANY, TOPIC_RESOURCE, GROUP_RESOURCE = 1, 2, 3
MATCH, LITERAL, PREFIXED = 2, 3, 4
READ, WRITE = 3, 4
DENY, ALLOW = 2, 3


def _closed_or_answer(s: Session, label: str, conn: Connection, api_key: int, version: int, request) -> None:
    """Send a request the broker may refuse by closing the connection, or by answering in another API's
    schema (Kafka answers a request in the midst of SASL with a SaslAuthenticate error): record "closed", or
    the answer's bytes after the correlation id, in hex."""
    try:
        conn.send_bytes(conn.frame(api_key, version, request))
        frame = conn.read_frame()
    except (OSError, ConnectionError):
        frame = None
    if frame is None:
        s.note(label, "closed")
        return
    try:
        closed_after = conn.read_frame() is None
    except (OSError, ConnectionError):
        closed_after = True
    s.note(label, {"bytes": bytes(frame[4:]).hex(), "then_closed": closed_after})


@scenario(SaslHandshake, (0, 1))
def sasl_handshake_mechanisms(s: Session, v: int):
    """SaslHandshake on the SASL listener: a supported mechanism (the enabled ones are listed), and one
    nobody serves (UNSUPPORTED_SASL_MECHANISM, also listing them)."""
    for label, mechanism in (("plain", "PLAIN"), ("scram", "SCRAM-SHA-512"), ("unsupported", "GSSAPI")):
        c = s.sasl_connection()
        try:
            s.call(label, SaslHandshake, v, sh.SaslHandshakeRequest(mechanism=mechanism), conn=c)
        finally:
            c.close()


@scenario(SaslAuthenticate, (0, 1, 2))
def sasl_plain_authenticate(s: Session, v: int):
    """PLAIN: the right password (then Metadata is served), a wrong one and an unknown user
    (SASL_AUTHENTICATION_FAILED and its message)."""
    for label, user, password in (("ok", "alice", ALICE_PASSWORD), ("bad_password", "alice", "wrong"),
                                  ("unknown_user", s.name("nobody"), "x")):
        c = s.sasl_connection()
        try:
            s.call(f"{label}_handshake", SaslHandshake, 1, sh.SaslHandshakeRequest(mechanism="PLAIN"), conn=c)
            s.call(label, SaslAuthenticate, v,
                   sa.SaslAuthenticateRequest(auth_bytes=f"\0{user}\0{password}".encode()), conn=c)
            if label == "ok":
                s.call("metadata_after_login", Metadata, 12, metadata_request(), conn=c)
        finally:
            c.close()


def _scram_exchange(s: Session, label: str, mechanism: str, v: int, password: str) -> None:
    """A client's side of SCRAM (RFC 5802), recording what is not random in the server's messages: whether
    its nonce extends ours, the iteration count, whether its final signature proves it knows the key."""
    mech = SCRAM_MECHANISMS[mechanism]
    c = s.sasl_connection()
    try:
        s.call(f"{label}_handshake", SaslHandshake, 1, sh.SaslHandshakeRequest(mechanism=mechanism), conn=c)
        client_nonce = uuid.uuid4().hex
        first_bare = f"n=alice,r={client_nonce}"
        r = c.call(SaslAuthenticate, v, sa.SaslAuthenticateRequest(auth_bytes=f"n,,{first_bare}".encode()))
        server_first = bytes(r.auth_bytes or b"").decode()
        attrs = dict(a.split("=", 1) for a in server_first.split(",") if "=" in a)
        s.note(f"{label}_server_first", {"error_code": r.error_code, "error_message": r.error_message,
                                        "nonce_extends_ours": attrs.get("r", "").startswith(client_nonce),
                                        "salt_given": bool(attrs.get("s")), "iterations": attrs.get("i")})
        if r.error_code:
            return
        salted = salted_password(mech, password, base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = mech.hmac(salted, b"Client Key")
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{first_bare},{server_first},{without_proof}".encode()
        signature = mech.hmac(mech.hash(client_key), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        final = f"{without_proof},p={base64.b64encode(proof).decode()}"
        r = c.call(SaslAuthenticate, v, sa.SaslAuthenticateRequest(auth_bytes=final.encode()))
        expected = "v=" + base64.b64encode(mech.hmac(mech.hmac(salted, b"Server Key"), auth_message)).decode()
        s.note(f"{label}_server_final", {"error_code": r.error_code, "error_message": r.error_message,
                                        "server_signature_valid": bytes(r.auth_bytes or b"").decode() == expected,
                                        "session_lifetime_ms": getattr(r, "session_lifetime_ms", None)})
    except (OSError, ConnectionError) as e:
        s.note(f"{label}_connection", type(e).__name__ in ("ConnectionError", "ConnectionResetError", "EOFError"))
    finally:
        c.close()


@scenario(SaslAuthenticate, (1, 2))
def sasl_scram_exchange(s: Session, v: int):
    """SCRAM-SHA-256 and -512 with the right password (the server proves its key), and with a wrong one."""
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        _scram_exchange(s, mechanism.lower(), mechanism, v, ALICE_PASSWORD)
    _scram_exchange(s, "bad_password", "SCRAM-SHA-256", v, "wrong")


@scenario(Metadata, (12,))
def sasl_request_before_authentication(s: Session, v: int):
    """On the SASL listener, a request other than ApiVersions and the SASL exchange: first thing, and after
    the handshake but before SaslAuthenticate. Kafka closes the connection at once in the first case; in the
    second it answers the request's own error response (ILLEGAL_SASL_STATE where its schema has an error
    code: Metadata v12's has none), then closes."""
    c = s.sasl_connection()
    try:
        _closed_or_answer(s, "first", c, Metadata, v, metadata_request())
    finally:
        c.close()
    c = s.sasl_connection()
    try:
        s.call("handshake", SaslHandshake, 1, sh.SaslHandshakeRequest(mechanism="PLAIN"), conn=c)
        _closed_or_answer(s, "after_handshake", c, Metadata, v, metadata_request())
    finally:
        c.close()


def _acl_binding(resource_type: int, name: str, pattern: int, principal: str, operation: int, permission: int):
    return ca.CreateAclsRequest.AclCreation(resource_type=resource_type, resource_name=name,
                                            resource_pattern_type=pattern, principal=principal, host="*",
                                            operation=operation, permission_type=permission)


def _describe_filter(resource_type=ANY, name=None, pattern=ANY, principal=None, operation=ANY, permission=ANY):
    return da.DescribeAclsRequest(resource_type_filter=resource_type, resource_name_filter=name,
                                  pattern_type_filter=pattern, principal_filter=principal, host_filter=None,
                                  operation=operation, permission_type=permission)


def _wait_for_acls(s: Session, v: int, principal: str, count: int, timeout_s: float = 10.0, **filters) -> None:
    """Kafka applies ACLs through its metadata log: a created binding is described (and enforced) a moment
    after CreateAcls answers. Wait until DescribeAcls lists ``count`` bindings of ``principal`` (and
    ``filters``: _describe_filter's)."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = s.conn.call(DescribeAcls, v, _describe_filter(principal=principal, **filters))
        if sum(len(res.acls) for res in r.resources) == count:
            return
        if time.monotonic() > deadline:
            raise ScenarioError(f"{principal}: {count} ACL bindings not described after {timeout_s} s")
        time.sleep(0.05)


@scenario(CreateAcls, (1, 2, 3))
def acls_create_describe_delete(s: Session, v: int):
    """CreateAcls (a literal, a prefixed and a DENY binding; and one with a filter-only pattern type),
    DescribeAcls with filters (by principal, MATCH, LITERAL), DeleteAcls with filters (one matching, one
    not), and what is left."""
    bob = f"User:{s.name('bob')}"
    s.call("create", CreateAcls, v, ca.CreateAclsRequest(creations=[
        _acl_binding(TOPIC_RESOURCE, s.name("t"), LITERAL, bob, READ, ALLOW),
        _acl_binding(TOPIC_RESOURCE, s.name("p"), PREFIXED, bob, WRITE, ALLOW),
        _acl_binding(GROUP_RESOURCE, s.name("g"), LITERAL, bob, READ, DENY)]))
    s.call("create_match_pattern", CreateAcls, v, ca.CreateAclsRequest(creations=[
        _acl_binding(TOPIC_RESOURCE, s.name("m"), MATCH, bob, READ, ALLOW)]))
    _wait_for_acls(s, v, bob, 3)
    s.call("by_principal", DescribeAcls, v, _describe_filter(principal=bob))
    s.call("match_topic", DescribeAcls, v, _describe_filter(TOPIC_RESOURCE, s.name("p-1"), MATCH))
    s.call("literal_topic", DescribeAcls, v, _describe_filter(TOPIC_RESOURCE, s.name("t"), LITERAL))
    s.call("deny_only", DescribeAcls, v, _describe_filter(principal=bob, permission=DENY))
    s.call("delete", DeleteAcls, v, dela.DeleteAclsRequest(filters=[
        dela.DeleteAclsRequest.DeleteAclsFilter(resource_type_filter=TOPIC_RESOURCE, resource_name_filter=s.name("t"),
                                                pattern_type_filter=LITERAL, principal_filter=bob, host_filter=None,
                                                operation=ANY, permission_type=ANY),
        dela.DeleteAclsRequest.DeleteAclsFilter(resource_type_filter=ANY, resource_name_filter=None,
                                                pattern_type_filter=ANY, principal_filter=f"User:{s.name('nobody')}",
                                                host_filter=None, operation=ANY, permission_type=ANY)]))
    _wait_for_acls(s, v, bob, 2)
    s.call("after_delete", DescribeAcls, v, _describe_filter(principal=bob))


@scenario(CreateAcls, (1, 3))
def acls_cluster_action_denied(s: Session, v: int):
    """alice (no ACLs) creating and describing ACLs: CLUSTER_AUTHORIZATION_FAILED; creating a topic:
    TOPIC_AUTHORIZATION_FAILED."""
    c = s.login_plain("alice", ALICE_PASSWORD)
    try:
        s.call("create_acls", CreateAcls, v, ca.CreateAclsRequest(creations=[
            _acl_binding(TOPIC_RESOURCE, s.name("t"), LITERAL, "User:alice", READ, ALLOW)]), conn=c)
        s.call("describe_acls", DescribeAcls, v, _describe_filter(), conn=c)
        s.call("create_topic", CreateTopics, 5, create_request(creatable(s.name("t"))), conn=c)
    finally:
        c.close()


@scenario(Metadata, (1, 4, 9, 12))
def acl_metadata_denied(s: Session, v: int):
    """Metadata of an existing topic alice may not describe: TOPIC_AUTHORIZATION_FAILED."""
    s.create_topic(s.name("t"))
    c = s.login_plain("alice", ALICE_PASSWORD)
    try:
        s.call("metadata", Metadata, v, metadata_request(s.name("t")), conn=c)
    finally:
        c.close()


@scenario(Produce, (3, 9, 12))
def acl_produce_denied(s: Session, v: int):
    """Produce by alice to an existing topic: TOPIC_AUTHORIZATION_FAILED."""
    s.create_topic(s.name("t"))
    c = s.login_plain("alice", ALICE_PASSWORD)
    try:
        s.call("produce", Produce, v, produce_request(s.name("t"), batch(b"a"),
                                                      topic_id=produce_topic_id(s, v, s.name("t"))), conn=c)
    finally:
        c.close()


@scenario(Fetch, (4, 12, 13))
def acl_fetch_denied_then_allowed(s: Session, v: int):
    """Fetch by alice: TOPIC_AUTHORIZATION_FAILED; once an ACL lets her READ the topic, the records."""
    topic = s.name("t")
    s.create_topic(topic)
    seed(s, topic, batch(b"a"))
    topic_id = s.topic_id(topic) if v >= 13 else None
    c = s.login_plain("alice", ALICE_PASSWORD)
    try:
        s.call("denied", Fetch, v, fetch_request(topic, 0, topic_id=topic_id), conn=c)
        s.call("grant", CreateAcls, 3, ca.CreateAclsRequest(creations=[
            _acl_binding(TOPIC_RESOURCE, topic, LITERAL, "User:alice", READ, ALLOW)]))
        _wait_for_acls(s, 3, "User:alice", 1, resource_type=TOPIC_RESOURCE, name=topic, pattern=LITERAL)
        s.call("allowed", Fetch, v, fetch_request(topic, 0, topic_id=topic_id), conn=c)
    finally:
        c.close()


# -- ElectLeaders and partition reassignments on one broker ------------------------------------------------

ElectLeaders, AlterPartitionReassignments, ListPartitionReassignments = 43, 45, 46


@scenario(ElectLeaders, (0, 1, 2))
def elect_leaders_errors(s: Session, v: int):
    """Preferred elections where the broker already leads (ELECTION_NOT_NEEDED), for a partition and a topic
    that do not exist (UNKNOWN_TOPIC_OR_PARTITION); v1+: an unclean election of a partition with a leader
    (ELECTION_NOT_NEEDED)."""
    from ..wire.messages import elect_leaders as el

    topic = s.name("elect")
    s.create_topic(topic, 2)

    def req(election_type: int, *topics: tuple[str, list[int]]):
        return el.ElectLeadersRequest(election_type=election_type, timeout_ms=10000, topic_partitions=[
            el.ElectLeadersRequest.TopicPartitions(topic=n, partitions=ps) for n, ps in topics])

    s.call("preferred", ElectLeaders, v, req(0, (topic, [0, 1, 7]), (s.name("none"), [0])))
    if v >= 1:
        s.call("unclean", ElectLeaders, v, req(1, (topic, [0])))


@scenario(AlterPartitionReassignments, (0, 1))
def alter_partition_reassignments_errors(s: Session, v: int):
    """Reassignments a single broker refuses or has nothing to do for: an unknown topic and partition
    (UNKNOWN_TOPIC_OR_PARTITION), a cancel with none in progress (NO_REASSIGNMENT_IN_PROGRESS), targets naming
    an unregistered broker or none (INVALID_REPLICA_ASSIGNMENT), and the replicas the partition already has
    (no error, nothing to do). (The broker named twice is left out: Kafka's message names its node id.)"""
    from ..wire.messages import alter_partition_reassignments as apr, list_partition_reassignments as lpr

    topic = s.name("apr")
    s.create_topic(topic, 2)
    me = s.norm.self_node_id if s.norm.self_node_id is not None else 0
    Req = apr.AlterPartitionReassignmentsRequest

    def req(*topics: tuple[str, list[tuple[int, list[int] | None]]]):
        return Req(timeout_ms=10000, topics=[Req.ReassignableTopic(name=n, partitions=[
            Req.ReassignablePartition(partition_index=i, replicas=r) for i, r in ps]) for n, ps in topics])

    s.call("unknown", AlterPartitionReassignments, v, req((s.name("none"), [(0, [me])]), (topic, [(9, [me])])))
    s.call("cancel_none", AlterPartitionReassignments, v, req((topic, [(0, None)])))
    s.call("invalid", AlterPartitionReassignments, v, req((topic, [(0, [me, 99999]), (1, [])])))
    s.call("same", AlterPartitionReassignments, v, req((topic, [(0, [me]), (1, [me])])))
    s.call("listed_after", ListPartitionReassignments, 0, lpr.ListPartitionReassignmentsRequest(
        timeout_ms=10000, topics=None))


@scenario(ListPartitionReassignments, (0,))
def list_partition_reassignments_none(s: Session, v: int):
    """Nothing is being reassigned: every partition (null), a topic's partitions, an unknown topic."""
    from ..wire.messages import list_partition_reassignments as lpr

    topic = s.name("lpr")
    s.create_topic(topic, 2)
    Req = lpr.ListPartitionReassignmentsRequest
    s.call("all", ListPartitionReassignments, v, Req(timeout_ms=10000, topics=None))
    s.call("named", ListPartitionReassignments, v, Req(timeout_ms=10000, topics=[
        Req.ListPartitionReassignmentsTopics(name=topic, partition_indexes=[0, 1, 5]),
        Req.ListPartitionReassignmentsTopics(name=s.name("none"), partition_indexes=[0])]))

# -- share groups (KIP-932) --------------------------------------------------------------------------------------

ShareGroupHeartbeat, ShareGroupDescribe = 76, 77


def _share_hb(group: str, member: str, epoch: int, topics=None, rack=None) -> sghb.ShareGroupHeartbeatRequest:
    return sghb.ShareGroupHeartbeatRequest(group_id=group, member_id=member, member_epoch=epoch, rack_id=rack,
                                           subscribed_topic_names=topics)


@scenario(ShareGroupHeartbeat, (1,))
def share_group_heartbeat_errors(s: Session, v: int):
    """ShareGroupHeartbeat's refusals (INVALID_REQUEST with Kafka's messages, GROUP_ID_NOT_FOUND,
    UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH), a join, a heartbeat with nothing changed, and leaving (-1)."""
    group, topic = s.name("shg"), s.name("sht")
    s.create_topic(topic, 2)
    s.find_coordinator(group)
    s.call("empty_member_id", ShareGroupHeartbeat, v, _share_hb(group, "", 0, [topic]))
    s.call("no_topics_on_join", ShareGroupHeartbeat, v, _share_hb(group, "member-a", 0))
    s.call("empty_rack", ShareGroupHeartbeat, v, _share_hb(group, "member-a", 0, [topic], rack=""))
    s.call("epoch_minus_two", ShareGroupHeartbeat, v, _share_hb(group, "member-a", -2))
    s.call("unknown_group", ShareGroupHeartbeat, v, _share_hb(group, "member-a", 1))
    s.call("join", ShareGroupHeartbeat, v, _share_hb(group, "member-a", 0, [topic]))
    s.call("unknown_member", ShareGroupHeartbeat, v, _share_hb(group, "member-b", 1))
    s.call("epoch_ahead", ShareGroupHeartbeat, v, _share_hb(group, "member-a", 9))
    s.call("leave", ShareGroupHeartbeat, v, _share_hb(group, "member-a", -1))
    s.call("leave_again", ShareGroupHeartbeat, v, _share_hb(group, "member-a", -1))


@scenario(ShareGroupDescribe, (1,))
def share_group_describe_groups(s: Session, v: int):
    """ShareGroupDescribe of an unknown group, the empty id, a classic group's id, and a share group with one
    member (state, epochs, assignor, the member's client, subscription)."""
    group, topic, classic = s.name("shd"), s.name("shdt"), s.name("cls")
    s.create_topic(topic, 1)
    s.find_coordinator(group)
    s.find_coordinator(classic)
    s.call("commit_classic", OffsetCommit, 8, _commit(classic, topic, 0))
    s.call("unknown_and_empty", ShareGroupDescribe, v, sgd.ShareGroupDescribeRequest(group_ids=[group, ""]))
    s.call("classic_group", ShareGroupDescribe, v, sgd.ShareGroupDescribeRequest(group_ids=[classic]))
    s.call("join", ShareGroupHeartbeat, 1, _share_hb(group, "member-a", 0, [topic]))
    s.call("described", ShareGroupDescribe, v, sgd.ShareGroupDescribeRequest(group_ids=[group]))
    s.call("leave", ShareGroupHeartbeat, 1, _share_hb(group, "member-a", -1))
    s.call("described_empty", ShareGroupDescribe, v, sgd.ShareGroupDescribeRequest(group_ids=[group]))


@scenario(ShareGroupHeartbeat, (1,))
def share_group_in_the_other_group_apis(s: Session, v: int):
    """A share group with a member as the other group APIs see it: ListGroups (v5, by the share type),
    DescribeGroups (v5 and v6), DeleteGroups while it has a member, a JoinGroup, an OffsetCommit and an
    OffsetFetch with its id; and a share heartbeat with a classic group's id."""
    group, topic, classic = s.name("sho"), s.name("shot"), s.name("shc")
    s.create_topic(topic, 1)
    s.find_coordinator(group)
    s.find_coordinator(classic)
    s.conn.call(OffsetCommit, 8, _commit(classic, topic, 1))
    s.call("join", ShareGroupHeartbeat, v, _share_hb(group, "member-a", 0, [topic]), record=False)
    for label, types in (("list_share", ["share"]), ("list_all", [])):
        r = s.call(label, ListGroups, 5, lg.ListGroupsRequest(states_filter=[], types_filter=types), record=False)
        if r is not None:
            d = r.to_dict()
            d["groups"] = _ours(s, d["groups"], "group_id")
            s.note(label, d)
    s.call("describe_groups_v5", DescribeGroups, 5, dg.DescribeGroupsRequest(groups=[group]))
    s.call("describe_groups_v6", DescribeGroups, 6, dg.DescribeGroupsRequest(groups=[group]))
    s.call("delete_with_member", DeleteGroups, 2, del_g.DeleteGroupsRequest(groups_names=[group]))
    s.call("join_group", JoinGroup, 9, _join(group, "some-member"))
    s.call("offset_commit", OffsetCommit, 8, _commit(group, topic, 1))
    s.call("offset_fetch", OffsetFetch, 8, of.OffsetFetchRequest(groups=[of.OffsetFetchRequest.OffsetFetchRequestGroup(
        group_id=group, topics=None)]))
    s.call("share_heartbeat_classic_id", ShareGroupHeartbeat, v, _share_hb(classic, "member-b", 0, [topic]))
    s.call("leave", ShareGroupHeartbeat, v, _share_hb(group, "member-a", -1), record=False)
    s.call("delete_empty", DeleteGroups, 2, del_g.DeleteGroupsRequest(groups_names=[group]))
    s.call("describe_after_delete", ShareGroupDescribe, 1, sgd.ShareGroupDescribeRequest(group_ids=[group]))


ShareFetch, ShareAcknowledge = 78, 79
DescribeShareGroupOffsets, AlterShareGroupOffsets, DeleteShareGroupOffsets = 90, 91, 92
ACCEPT, RELEASE, REJECT = 1, 2, 3


def _kafka_uuid() -> str:
    """A member id as Kafka's clients make them (Uuid.toString: URL-safe base64 without padding); ShareFetch
    parses it as a Uuid."""
    return random_uuid()


def _share_join(s: Session, group: str, member: str, topic: str) -> int:
    """A member joins and heartbeats until it is assigned a partition (set-up: not recorded); its epoch."""
    epoch, deadline = 0, time.monotonic() + 10
    while True:
        r = s.call("join", ShareGroupHeartbeat, 1, _share_hb(group, member, epoch, [topic] if epoch == 0 else None),
                   record=False)
        if r is None or r.error_code:
            raise ScenarioError(f"share heartbeat of {group}: {None if r is None else r.error_code}")
        epoch = r.member_epoch
        if r.assignment is not None and r.assignment.topic_partitions:
            return epoch
        if time.monotonic() > deadline:
            raise ScenarioError(f"share group {group}: no assignment")
        time.sleep(0.05)


# A ShareFetch that finds nothing to acquire waits its whole max_wait_ms, at Kafka as at kbroker, and answers
# empty: one second is long enough for Kafka to have set up the share-partition, and the recorded answers are
# the same as with a longer wait (test_live_kafka compares them), at a sixth of the time of 5 s.
EMPTY_SHARE_FETCH_WAIT_MS = 1000


def _share_fetch(group, member, epoch, topic_id, acks=(), wait_ms=0, partitions=(0,)):
    Q = sf.ShareFetchRequest
    parts = [Q.FetchPartition(partition_index=i, partition_max_bytes=1 << 20, acknowledgement_batches=[
        Q.AcknowledgementBatch(first_offset=f, last_offset=last, acknowledge_types=list(t)) for f, last, t in acks])
        for i in partitions]
    return Q(group_id=group, member_id=member, share_session_epoch=epoch, max_wait_ms=wait_ms, min_bytes=1,
             max_bytes=1 << 20, max_records=100, batch_size=100,
             topics=[Q.FetchTopic(topic_id=topic_id, partitions=parts)] if partitions else [])


def _share_ack(group, member, epoch, topic_id, acks):
    A = sack.ShareAcknowledgeRequest
    return A(group_id=group, member_id=member, share_session_epoch=epoch, topics=[A.AcknowledgeTopic(
        topic_id=topic_id, partitions=[A.AcknowledgePartition(partition_index=0, acknowledgement_batches=[
            A.AcknowledgementBatch(first_offset=f, last_offset=last, acknowledge_types=list(t))
            for f, last, t in acks])])])


def _share_group_with_records(s: Session, prefix: str, records: int = 3, earliest: bool = False):
    """A one-partition topic with ``records`` one-record batches and a share group with one assigned member:
    (group, topic, topic id, member id, member epoch). ``earliest``: the group's share.auto.offset.reset is
    earliest, so the records are delivered (else the share-partition starts after them)."""
    group, topic, member = s.name(prefix + "g"), s.name(prefix + "t"), _kafka_uuid()
    s.create_topic(topic, 1)
    for i in range(records):
        seed(s, topic, batch(b"v%d" % i))
    s.find_coordinator(group)
    if earliest:
        R = iac.IncrementalAlterConfigsRequest
        r = s.conn.call(IncrementalAlterConfigs, 1, R(resources=[R.AlterConfigsResource(
            resource_type=32, resource_name=group, configs=[R.AlterableConfig(
                name="share.auto.offset.reset", config_operation=0, value="earliest")])]))
        if r.responses[0].error_code:
            raise ScenarioError(f"share.auto.offset.reset of {group}: {r.responses[0].error_code}")
    return group, topic, s.topic_id(topic), member, _share_join(s, group, member, topic)


@scenario(ShareFetch, (1, 2))
def share_fetch_session_epochs(s: Session, v: int):
    """ShareFetch's share session: a fetch in a session that does not exist, the first fetch after the
    heartbeat that assigned the partition (the share-partition starts at the log end: nothing acquired),
    piggybacked acknowledgements of offsets before the start (done: no error), an epoch out of order,
    closing the session (epoch -1), a fetch in the closed session, and a member id that never joined."""
    group, topic, tid, member, _ = _share_group_with_records(s, "sf")
    s.call("no_session", ShareFetch, v, _share_fetch(group, member, 3, tid))
    s.call("first_fetch", ShareFetch, v, _share_fetch(group, member, 0, tid, wait_ms=EMPTY_SHARE_FETCH_WAIT_MS))
    s.call("ack_accept", ShareFetch, v, _share_fetch(group, member, 1, tid, acks=[(0, 0, [ACCEPT])]))
    s.call("epoch_ahead", ShareFetch, v, _share_fetch(group, member, 7, tid))
    s.call("ack_release", ShareFetch, v, _share_fetch(group, member, 2, tid, acks=[(1, 2, [RELEASE])],
                                                           wait_ms=EMPTY_SHARE_FETCH_WAIT_MS))
    s.call("close", ShareFetch, v, _share_fetch(group, member, -1, tid, acks=[(1, 2, [ACCEPT])], partitions=()))
    s.call("after_close", ShareFetch, v, _share_fetch(group, member, 1, tid))
    s.call("stranger", ShareFetch, v, _share_fetch(group, _kafka_uuid(), 0, tid))


@scenario(ShareFetch, (1, 2))
def share_fetch_refused(s: Session, v: int):
    """ShareFetch requests Kafka refuses whole or per partition: an empty group id, acknowledgements on the
    opening fetch, an unknown topic id, a partition the topic does not have, and an unknown
    acknowledgement type."""
    group, topic, tid, member, _ = _share_group_with_records(s, "sfr", records=1)
    s.call("empty_group", ShareFetch, v, _share_fetch("", member, 0, tid))
    s.call("acks_on_open", ShareFetch, v, _share_fetch(group, member, 0, tid, acks=[(0, 0, [ACCEPT])]))
    s.call("unknown_partition", ShareFetch, v, _share_fetch(group, _kafka_uuid(), 0, tid, partitions=(5,)))
    m2 = _kafka_uuid()
    s.call("open", ShareFetch, v, _share_fetch(group, m2, 0, tid, wait_ms=EMPTY_SHARE_FETCH_WAIT_MS))
    s.call("bad_ack_type", ShareFetch, v, _share_fetch(group, m2, 1, tid, acks=[(0, 0, [9])]))
    s.call("unknown_topic_id", ShareFetch, v, _share_fetch(group, member, 0, uuid.uuid4()))  # last: a new id


@scenario(ShareAcknowledge, (1, 2))
def share_acknowledge_errors(s: Session, v: int):
    """ShareAcknowledge: without a session, with the opening epoch 0, an epoch out of order, an accepted
    range, the same range again (INVALID_RECORD_STATE), a range never acquired, a gap type, mismatched
    type counts, and the closing epoch -1."""
    group, topic, tid, member, _ = _share_group_with_records(s, "sa", records=4, earliest=True)
    s.call("no_session", ShareAcknowledge, v, _share_ack(group, member, 1, tid, [(0, 0, [ACCEPT])]))
    s.call("fetch", ShareFetch, 2, _share_fetch(group, member, 0, tid, wait_ms=5000))
    s.call("epoch_zero", ShareAcknowledge, v, _share_ack(group, member, 0, tid, [(0, 0, [ACCEPT])]))
    s.call("epoch_ahead", ShareAcknowledge, v, _share_ack(group, member, 5, tid, [(0, 0, [ACCEPT])]))
    s.call("accept", ShareAcknowledge, v, _share_ack(group, member, 1, tid, [(0, 0, [ACCEPT])]))
    s.call("accept_again", ShareAcknowledge, v, _share_ack(group, member, 2, tid, [(0, 0, [ACCEPT])]))
    s.call("never_acquired", ShareAcknowledge, v, _share_ack(group, member, 3, tid, [(50, 52, [ACCEPT])]))
    s.call("type_count_mismatch", ShareAcknowledge, v, _share_ack(group, member, 4, tid,
                                                                   [(1, 3, [ACCEPT, REJECT])]))
    s.call("reject", ShareAcknowledge, v, _share_ack(group, member, 5, tid, [(1, 1, [REJECT])]))
    s.call("close", ShareAcknowledge, v, _share_ack(group, member, -1, tid, [(2, 3, [RELEASE])]))
    s.call("after_close", ShareAcknowledge, v, _share_ack(group, member, 6, tid, [(2, 2, [ACCEPT])]))


def _describe_share_offsets(group, topic=None, partitions=(0,)):
    D = descsgo.DescribeShareGroupOffsetsRequest
    topics = None if topic is None else [D.DescribeShareGroupOffsetsRequestTopic(topic_name=topic,
                                                                                 partitions=list(partitions))]
    return D(groups=[D.DescribeShareGroupOffsetsRequestGroup(group_id=group, topics=topics)])


def _await_share_start_offset(s: Session, v: int, group: str, topic: str, timeout_s: float = 10.0) -> None:
    """Until the share-partition's state is readable (not recorded): Kafka writes it to its share coordinator
    after answering the acknowledgement, so a DescribeShareGroupOffsets right after may still see start offset
    -1 (seen once in a live run on a busy machine); kbroker's is there at once."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = s.call("", DescribeShareGroupOffsets, v, _describe_share_offsets(group, topic), record=False)
        if answer is None or all(p.start_offset >= 0 for g in answer.groups for t in g.topics
                                 for p in t.partitions):
            return
        time.sleep(0.05)


@scenario(DescribeShareGroupOffsets, (0, 1))
def share_group_offsets_describe(s: Session, v: int):
    """DescribeShareGroupOffsets of an unknown group, a group with no state yet, a group after a fetch and
    an acknowledgement (start offset, lag), all topics (null) and an unknown topic. (A partition the topic
    does not have is left out: Kafka 4.4 never answers it.)"""
    group, topic, tid, member, _ = _share_group_with_records(s, "sdo", earliest=True)
    s.call("unknown_group", DescribeShareGroupOffsets, v, _describe_share_offsets(s.name("nog"), topic))
    s.call("before_fetch", DescribeShareGroupOffsets, v, _describe_share_offsets(group, topic))
    s.call("fetch", ShareFetch, 2, _share_fetch(group, member, 0, tid, wait_ms=5000), record=False)
    s.call("ack", ShareAcknowledge, 2, _share_ack(group, member, 1, tid, [(0, 1, [ACCEPT])]))
    _await_share_start_offset(s, v, group, topic)
    s.call("after_ack", DescribeShareGroupOffsets, v, _describe_share_offsets(group, topic))
    s.call("all_topics", DescribeShareGroupOffsets, v, _describe_share_offsets(group))
    s.call("unknown_topic", DescribeShareGroupOffsets, v, _describe_share_offsets(group, s.name("not")))


def _alter_share_offsets(group, topic, offsets):
    A = asgo.AlterShareGroupOffsetsRequest
    return A(group_id=group, topics=[A.AlterShareGroupOffsetsRequestTopic(topic_name=topic, partitions=[
        A.AlterShareGroupOffsetsRequestPartition(partition_index=p, start_offset=o) for p, o in offsets])])


def _delete_share_offsets(group, *topics):
    D = dsgo.DeleteShareGroupOffsetsRequest
    return D(group_id=group, topics=[D.DeleteShareGroupOffsetsRequestTopic(topic_name=t) for t in topics])


@scenario(AlterShareGroupOffsets, (0,))
def share_group_offsets_alter_and_delete(s: Session, v: int):
    """AlterShareGroupOffsets and DeleteShareGroupOffsets: refused while the group has a member, of an
    unknown group, an unknown topic or partition; accepted once the group is empty (the start offset then
    described), and the deletion of a topic's state."""
    group, topic, tid, member, epoch = _share_group_with_records(s, "sao", earliest=True)
    s.call("fetch", ShareFetch, 2, _share_fetch(group, member, 0, tid, wait_ms=5000), record=False)
    s.call("ack", ShareAcknowledge, 2, _share_ack(group, member, 1, tid, [(0, 0, [ACCEPT])]), record=False)
    s.call("alter_with_member", AlterShareGroupOffsets, v, _alter_share_offsets(group, topic, [(0, 2)]))
    s.call("delete_with_member", DeleteShareGroupOffsets, 0, _delete_share_offsets(group, topic))
    s.call("leave", ShareGroupHeartbeat, 1, _share_hb(group, member, -1), record=False)
    s.call("alter_unknown_group", AlterShareGroupOffsets, v, _alter_share_offsets(s.name("nog"), topic, [(0, 1)]))
    s.call("alter_unknown_topic", AlterShareGroupOffsets, v, _alter_share_offsets(group, s.name("not"), [(0, 1)]))
    s.call("alter", AlterShareGroupOffsets, v, _alter_share_offsets(group, topic, [(0, 2), (3, 1)]))
    s.call("described", DescribeShareGroupOffsets, 1, _describe_share_offsets(group, topic))
    s.call("delete_unknown_group", DeleteShareGroupOffsets, 0, _delete_share_offsets(s.name("nog"), topic))
    s.call("delete_unknown_topic", DeleteShareGroupOffsets, 0, _delete_share_offsets(group, s.name("not")))
    s.call("delete", DeleteShareGroupOffsets, 0, _delete_share_offsets(group, topic))
    s.call("described_after_delete", DescribeShareGroupOffsets, 1, _describe_share_offsets(group, topic))


# -- client quotas (48, 49) ---------------------------------------------------------------------------------

DescribeClientQuotas, AlterClientQuotas = 48, 49


def _quota_alter(entries, validate_only: bool = False):
    """entries: [({type: name or None}, [(key, value or None to remove)])]."""
    from ..wire.messages import alter_client_quotas as acq

    A = acq.AlterClientQuotasRequest
    return A(validate_only=validate_only, entries=[
        A.EntryData(entity=[A.EntityData(entity_type=t, entity_name=n) for t, n in entity.items()],
                    ops=[A.OpData(key=k, value=v or 0.0, remove=v is None) for k, v in ops])
        for entity, ops in entries])


def _quota_describe(components, strict: bool = False):
    from ..wire.messages import describe_client_quotas as dcq

    D = dcq.DescribeClientQuotasRequest
    return D(strict=strict, components=[D.ComponentData(entity_type=t, match_type=m, match=n)
                                        for t, m, n in components])


def _quota_entries(answer) -> list | None:
    """A DescribeClientQuotas answer's entries in one order (Kafka's come from a hash map)."""
    if answer is None or answer.entries is None:
        return None
    return sorted(([sorted([e.entity_type, e.entity_name or ""] for e in entry.entity),
                    sorted([v.key, v.value] for v in entry.values)] for entry in answer.entries), key=str)


def _quota_results(answer) -> list | None:
    """An AlterClientQuotas answer's entries in one order (Kafka's come from a hash map)."""
    if answer is None:
        return None
    return sorted(([[[e.entity_type, e.entity_name or ""] for e in entry.entity], entry.error_code,
                    entry.error_message] for entry in answer.entries), key=str)


@scenario(AlterClientQuotas, (0, 1))
def client_quotas_alter_refused(s: Session, v: int):
    """AlterClientQuotas entries Kafka refuses, each with its message: a key the entity type does not have, a
    byte rate that is not whole, user and ip together, an empty name, an unknown entity type, no entity, an
    address that does not resolve, a key twice; and a validate_only change that changes nothing."""
    user = s.name("quser")
    s.note("refused", _quota_results(s.call("refused", AlterClientQuotas, v, record=False, request=_quota_alter([
        ({"ip": "10.11.12.13"}, [("producer_byte_rate", 10.0)]),
        ({"user": user}, [("producer_byte_rate", 1.5)]),
        ({"client-id": user}, [("connection_creation_rate", 1.0)]),
        ({"user": user, "ip": "10.11.12.13"}, [("request_percentage", 1.0)]),
        ({"user": ""}, [("request_percentage", 1.0)]),
        ({"group": user}, [("request_percentage", 1.0)]),
        ({}, [("request_percentage", 1.0)]),
        ({"ip": "no-such-host.invalid"}, [("connection_creation_rate", 1.0)]),
        ({"user": user, "client-id": user}, [("request_percentage", 1.0), ("request_percentage", 2.0)]),
        ({"client-id": user}, [("request_percentage", 0.0)]),
        ({"ip": "10.11.12.14"}, [("connection_creation_rate", 3e9)]),
        ({"user": user}, [("request_percentage", 1.0)]),
    ]))))
    s.call("validate_only", AlterClientQuotas, v, _quota_alter(
        [({"user": user}, [("producer_byte_rate", 1024.0)])], validate_only=True))
    s.note("described_after_validate_only", _quota_entries(s.call(
        "describe", DescribeClientQuotas, 0, _quota_describe([("user", 0, user)]), record=False)))


@scenario(DescribeClientQuotas, (0, 1))
def client_quotas_describe_filters(s: Session, v: int):
    """Quotas of a user alone, the user with any client id and with the default client id, and a user's
    removed key: described by exact name (strict or not), exact name and default, exact name and any name;
    and the filters Kafka refuses."""
    user, client = s.name("quser"), s.name("qclient")
    s.note("alter", _quota_results(s.call("alter", AlterClientQuotas, 1, record=False, request=_quota_alter([
        ({"user": user}, [("producer_byte_rate", 1024.0), ("request_percentage", 12.5)]),
        ({"user": user, "client-id": None}, [("consumer_byte_rate", 2048.0)]),
        ({"user": user, "client-id": client}, [("controller_mutation_rate", 3.5)]),
    ]))))
    s.call("remove", AlterClientQuotas, 1, _quota_alter([({"user": user}, [("request_percentage", None)])]))
    deadline = time.monotonic() + 5
    while True:  # Kafka applies the change once the controller's records reach the broker
        found = _quota_entries(s.call("wait", DescribeClientQuotas, v, _quota_describe([("user", 0, user)]),
                                      record=False))
        if found is None or (len(found) == 3 and all(len(values) == 1 for _, values in found)) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for label, components, strict in [
            ("user", [("user", 0, user)], False),
            ("user_strict", [("user", 0, user)], True),
            ("user_default_client", [("user", 0, user), ("client-id", 1, None)], False),
            ("user_any_client", [("user", 0, user), ("client-id", 2, None)], True),
            ("user_and_named_client", [("user", 0, user), ("client-id", 0, client)], True),
            ("nobody", [("user", 0, s.name("nobody"))], False)]:
        s.note(label, _quota_entries(s.call(label, DescribeClientQuotas, v,
                                            _quota_describe(components, strict), record=False)))
    for label, components in [
            ("ip_with_user", [("ip", 2, None), ("user", 0, user)]),
            ("type_twice", [("user", 0, user), ("user", 1, None)]),
            ("unknown_type", [("group", 2, None)]),
            ("exact_without_name", [("user", 0, None)]),
            ("default_with_name", [("user", 1, user)]),
            ("specified_with_name", [("user", 2, user)]),
            ("unknown_match_type", [("user", 7, None)])]:
        s.call(label, DescribeClientQuotas, v, _quota_describe(components))
