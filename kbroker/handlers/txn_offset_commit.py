"""TxnOffsetCommit (28): v0-6. Offsets committed inside a transaction: held by the group coordinator and
visible to OffsetFetch only once the transaction commits (KIP-98). v3 adds the member's generation, id and
instance id, checked as for OffsetCommit (KIP-447). A producer that is not the transactional id's current one
gets PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v2, as for the other transaction APIs).
v5 is transaction protocol v2 (KIP-890 part 2): the producer sends no AddOffsetsToTxn, and this broker (the
group's coordinator) adds the group's ``__consumer_offsets`` partition to the transaction through the
transaction coordinator first (coordinator/txn_partitions.py, as Kafka's group coordinator does with
``addPartition``); its refusal is every partition's error (INVALID_PRODUCER_EPOCH for a fenced producer,
COORDINATOR_NOT_AVAILABLE for a retriable one).
v6 names topics by id (KIP-1319): an unknown id is UNKNOWN_TOPIC_ID; and, as Kafka's OffsetMetadataManager,
a member-checked commit (generation or member epoch >= 0) to a group that does not exist is GROUP_ID_NOT_FOUND
and a stale member epoch of a consumer group STALE_MEMBER_EPOCH, where older versions get ILLEGAL_GENERATION.
Authorisation, as KafkaApis: WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on
the group (GROUP_AUTHORIZATION_FAILED), each for every partition, then READ on each topic
(TOPIC_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..coordinator.runtime import OFFSETS_TOPIC
from ..coordinator.service import when_written
from ..coordinator.txn_partitions import offset_commit_error
from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import txn_offset_commit as API
from .offset_commit import resolve_topic_ids

R = API.TxnOffsetCommitResponse


def _authorize(ctx, req) -> int:
    if not ctx.authorize(acl.WRITE, acl.TRANSACTIONAL_ID, req.transactional_id):
        return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    if not ctx.authorize(acl.READ, acl.GROUP, req.group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED
    return ErrorCode.NONE


def handle(ctx, req: API.TxnOffsetCommitRequest):
    broker = ctx.broker
    if ctx.version >= 5 and not _authorize(ctx, req) and broker.groups.hosts(req.group_id):
        partition = (OFFSETS_TOPIC, broker.groups.partition_for(req.group_id))
        added = broker.txn_partitions.add(req.transactional_id, req.producer_id, req.producer_epoch, [partition])
        if isinstance(added, dict):
            return _commit(ctx, req, added[partition])
        return _commit_when_added(ctx, req, added, partition)
    return _commit(ctx, req, ErrorCode.NONE)


async def _commit_when_added(ctx, req, added, partition):
    return await _commit(ctx, req, (await added)[partition])


def _commit(ctx, req: API.TxnOffsetCommitRequest, add_error: int):
    """``add_error``: the transaction coordinator's answer to adding the group's partition (v5+)."""
    broker = ctx.broker
    unknown_ids = resolve_topic_ids(broker, req.topics) if ctx.version >= 6 else set()
    denied = set()
    err = _authorize(ctx, req) or offset_commit_error(add_error)
    if not err:
        denied = {t.name for t in req.topics if not ctx.authorize(acl.READ, acl.TOPIC, t.name)}
        # The producer is checked by its transaction coordinator when that is this broker; Kafka checks it by
        # the producer epoch of the transactional append to __consumer_offsets, which kbroker does not make.
        err = broker.transactions.is_ongoing(req.transactional_id, req.producer_id, req.producer_epoch) \
            if broker.transactions.hosts(req.transactional_id) else ErrorCode.NONE
    if err == ErrorCode.PRODUCER_FENCED and ctx.version < 2:
        err = ErrorCode.INVALID_PRODUCER_EPOCH
    errors: dict = {}
    offsets = {}
    for i, t in enumerate(req.topics):
        topic = broker.topics.get(t.name) if i not in unknown_ids else None
        for p in t.partitions:
            tp = (t.name, p.partition_index)
            if err:
                errors[tp] = err
            elif i in unknown_ids:
                errors[tp] = ErrorCode.UNKNOWN_TOPIC_ID
            elif t.name in denied:
                errors[tp] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif topic is None or not 0 <= p.partition_index < len(topic.partitions):
                errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                offsets[tp] = (p.committed_offset, p.committed_leader_epoch, p.committed_metadata)
    if offsets:
        errors.update(broker.groups.prepare_txn_offsets(
            req.producer_id, req.group_id, offsets, generation_id=req.generation_id, member_id=req.member_id,
            group_instance_id=req.group_instance_id, api_version=ctx.version))
    return when_written(broker.groups.written(req.group_id), R(throttle_time_ms=0, topics=[
        R.TxnOffsetCommitResponseTopic(name=t.name, topic_id=t.topic_id, partitions=[
            R.TxnOffsetCommitResponsePartition(partition_index=p.partition_index,
                                               error_code=errors.get((t.name, p.partition_index), 0))
            for p in t.partitions]) for t in req.topics]))
