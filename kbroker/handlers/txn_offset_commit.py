"""TxnOffsetCommit (28): v0-5 (v5 is v4, KIP-890). Offsets committed inside a transaction: held by the group coordinator and
visible to OffsetFetch only once the transaction commits (KIP-98). v3 adds the member's generation, id and
instance id, checked as for OffsetCommit (KIP-447). A producer that is not the transactional id's current one
gets PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v2, as for the other transaction APIs).
Authorisation, as KafkaApis: WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on
the group (GROUP_AUTHORIZATION_FAILED), each for every partition, then READ on each topic
(TOPIC_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..coordinator.service import when_written
from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import txn_offset_commit as API

R = API.TxnOffsetCommitResponse


def handle(ctx, req: API.TxnOffsetCommitRequest) -> R:
    broker = ctx.broker
    denied = set()
    if not ctx.authorize(acl.WRITE, acl.TRANSACTIONAL_ID, req.transactional_id):
        err = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    elif not ctx.authorize(acl.READ, acl.GROUP, req.group_id):
        err = ErrorCode.GROUP_AUTHORIZATION_FAILED
    else:
        denied = {t.name for t in req.topics if not ctx.authorize(acl.READ, acl.TOPIC, t.name)}
        # The producer is checked by its transaction coordinator when that is this broker; Kafka checks it by
        # the producer epoch of the transactional append to __consumer_offsets, which kbroker does not make.
        err = broker.transactions.is_ongoing(req.transactional_id, req.producer_id, req.producer_epoch) \
            if broker.transactions.hosts(req.transactional_id) else ErrorCode.NONE
    if err == ErrorCode.PRODUCER_FENCED and ctx.version < 2:
        err = ErrorCode.INVALID_PRODUCER_EPOCH
    errors: dict = {}
    offsets = {}
    for t in req.topics:
        topic = broker.topics.get(t.name)
        for p in t.partitions:
            tp = (t.name, p.partition_index)
            if err:
                errors[tp] = err
            elif t.name in denied:
                errors[tp] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif topic is None or not 0 <= p.partition_index < len(topic.partitions):
                errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                offsets[tp] = (p.committed_offset, p.committed_leader_epoch, p.committed_metadata)
    if offsets:
        errors.update(broker.groups.prepare_txn_offsets(
            req.producer_id, req.group_id, offsets, generation_id=req.generation_id, member_id=req.member_id,
            group_instance_id=req.group_instance_id))
    return when_written(broker.groups.written(req.group_id), R(throttle_time_ms=0, topics=[
        R.TxnOffsetCommitResponseTopic(name=t.name, partitions=[
            R.TxnOffsetCommitResponsePartition(partition_index=p.partition_index,
                                               error_code=errors.get((t.name, p.partition_index), 0))
            for p in t.partitions]) for t in req.topics]))
