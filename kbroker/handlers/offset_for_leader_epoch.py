"""OffsetForLeaderEpoch (23): v2-4 (KIP-101, KIP-320). Consumers validate their position after a leader
change with it. The answer comes from the partition's leader-epoch cache as Kafka's: for the current epoch
the log end offset, for an older one the largest epoch at or below it and the offset where the next began,
for one above every epoch (-1, -1). Followers (replica_fetcher.py, ``replica_id`` >= 0) ask it before they
fetch after a leader change and truncate to the answer (KIP-101). The current
leader epoch a client sends is checked (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH; -1: none).
Authorisation: DESCRIBE on each topic, else TOPIC_AUTHORIZATION_FAILED (as KafkaApis for a consumer).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..partition import get_partition_or_error, request_epoch
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
            part = get_partition_or_error(topic, p.partition, request_epoch(p.current_leader_epoch))
            if isinstance(part, int):
                parts.append(R.EpochEndOffset(partition=p.partition, error_code=part))
                continue
            epoch, end_offset = part.last_offset_for_leader_epoch(p.leader_epoch)
            parts.append(R.EpochEndOffset(partition=p.partition, error_code=0, leader_epoch=epoch,
                                          end_offset=end_offset))
    return R(throttle_time_ms=0, topics=topics)
