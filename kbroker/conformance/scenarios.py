"""The scenarios: one behaviour each, at the versions clients send (the oldest and newest kbroker's codec
knows, and the versions where the schema changes). Each starts from a fresh state of its own (topics and
groups named after the run token) and records every answer that tells the behaviour.

A scenario never asserts: it records. Whether kbroker answers as Kafka does is decided by comparing the
records (runner.compare_runs), so a scenario whose premise Kafka does not share (a version Kafka 4 no
longer serves, say) shows as a difference rather than breaking.
"""

from __future__ import annotations

import struct
import time
import uuid

from ..records.builder import simple_batch
from ..wire.messages import (add_partitions_to_txn as apt, api_versions as av, create_partitions as cp,
                             create_topics as ct, delete_records as dr, delete_topics as dt,
                             describe_acls as da, describe_configs as dc, end_txn as et, fetch as fe,
                             heartbeat as hb, init_producer_id as ip, join_group as jg, list_offsets as lo,
                             metadata as md, offset_commit as oc, offset_fetch as of, produce as pr,
                             sasl_handshake as sh, sync_group as sg)
from .session import ScenarioError, Session, scenario

ApiVersions, Metadata, Produce, Fetch, ListOffsets = 18, 3, 0, 1, 2
CreateTopics, DeleteTopics, DescribeConfigs = 19, 20, 32
JoinGroup, Heartbeat, SyncGroup, InitProducerId, AddPartitionsToTxn, EndTxn = 11, 12, 14, 22, 24, 26
OffsetCommit, OffsetFetch, SaslHandshake, DeleteRecords, DescribeAcls, CreatePartitions = 8, 9, 17, 21, 29, 37


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


@scenario(DescribeAcls, (1, 3))
def describe_acls_without_authorizer(s: Session, v: int):
    """No authorizer configured (both brokers' defaults): SECURITY_DISABLED and its message."""
    s.call("describe", DescribeAcls, v, da.DescribeAclsRequest(resource_type_filter=1, pattern_type_filter=1,
                                                               operation=1, permission_type=1))


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
