"""DeleteRecords (21): v0-2. Moves a partition's log start offset up to ``offset`` (-1: the high
watermark); whole segments below it are freed. An offset beyond the high watermark is OFFSET_OUT_OF_RANGE.
The answer's low watermark is the new log start offset. Needs DELETE on each topic
(TOPIC_AUTHORIZATION_FAILED), as KafkaApis.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import delete_records as API

R = API.DeleteRecordsResponse
HIGH_WATERMARK = -1


def handle(ctx, req: API.DeleteRecordsRequest) -> R:
    broker = ctx.broker
    topics = []
    for t in req.topics:
        topic = broker.topics.get(t.name)
        parts = []
        topics.append(R.DeleteRecordsTopicResult(name=t.name, partitions=parts))
        if not ctx.authorize(acl.DELETE, acl.TOPIC, t.name):
            parts.extend(R.DeleteRecordsPartitionResult(partition_index=p.partition_index, low_watermark=-1,
                                                        error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                         for p in t.partitions)
            continue
        for p in t.partitions:
            if topic is None or not 0 <= p.partition_index < len(topic.partitions):
                parts.append(R.DeleteRecordsPartitionResult(partition_index=p.partition_index, low_watermark=-1,
                                                            error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
                continue
            part = topic.partitions[p.partition_index]
            offset = part.high_watermark if p.offset == HIGH_WATERMARK else p.offset
            if offset < 0 or offset > part.high_watermark:
                parts.append(R.DeleteRecordsPartitionResult(partition_index=p.partition_index, low_watermark=-1,
                                                            error_code=ErrorCode.OFFSET_OUT_OF_RANGE))
                continue
            if offset > part.log_start_offset:
                part.log.delete_records_before(offset)
            parts.append(R.DeleteRecordsPartitionResult(partition_index=p.partition_index,
                                                        low_watermark=part.log_start_offset, error_code=0))
    return R(throttle_time_ms=0, topics=topics)
