"""OffsetForLeaderEpoch (23): v2-4 (KIP-101, KIP-320). Consumers validate their position after a leader
change with it. kbroker is the only leader a partition ever has, at epoch 0, so the end offset of epoch 0
is the log end offset; an epoch above the current one is unknown (-1, -1), as Kafka answers. The current
leader epoch a client sends is checked (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH).
Authorisation: DESCRIBE on each topic, else TOPIC_AUTHORIZATION_FAILED (as KafkaApis for a consumer).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import offset_for_leader_epoch as API

R = API.OffsetForLeaderEpochResponse


def handle(ctx, req: API.OffsetForLeaderEpochRequest) -> R:
    broker = ctx.broker
    topics = []
    for t in req.topics:
        topic = broker.topics.get(t.topic)
        parts = []
        topics.append(R.OffsetForLeaderTopicResult(topic=t.topic, partitions=parts))
        if not ctx.authorize(acl.DESCRIBE, acl.TOPIC, t.topic):
            parts.extend(R.EpochEndOffset(partition=p.partition, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                         for p in t.partitions)
            continue
        for p in t.partitions:
            if topic is None or not 0 <= p.partition < len(topic.partitions):
                parts.append(R.EpochEndOffset(partition=p.partition, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
                continue
            part = topic.partitions[p.partition]
            if p.current_leader_epoch >= 0 and p.current_leader_epoch != part.leader_epoch:
                code = (ErrorCode.FENCED_LEADER_EPOCH if p.current_leader_epoch < part.leader_epoch
                        else ErrorCode.UNKNOWN_LEADER_EPOCH)
                parts.append(R.EpochEndOffset(partition=p.partition, error_code=code))
                continue
            if p.leader_epoch > part.leader_epoch:
                parts.append(R.EpochEndOffset(partition=p.partition, error_code=0, leader_epoch=-1, end_offset=-1))
            else:
                parts.append(R.EpochEndOffset(partition=p.partition, error_code=0, leader_epoch=part.leader_epoch,
                                              end_offset=part.log_end_offset))
    return R(throttle_time_ms=0, topics=topics)
