"""DeleteRecords (21): v0-2. Moves a partition's log start offset up to ``offset`` (-1: the high
watermark); whole segments below it are freed. An offset beyond the high watermark is OFFSET_OUT_OF_RANGE.
The answer's low watermark is the new log start offset. Needs DELETE on each topic
(TOPIC_AUTHORIZATION_FAILED), as KafkaApis.
"""

from __future__ import annotations

from ..errors import ErrorCode, KafkaError
from ..partition import get_partition_or_error
from ..security import acl
from ..wire.messages import delete_records as API

R = API.DeleteRecordsResponse


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
            part = get_partition_or_error(topic, p.partition_index)
            code, low_watermark = (part, -1) if isinstance(part, int) else (0, -1)
            if not code:
                try:
                    low_watermark = part.delete_records_on_leader(p.offset)
                except KafkaError as e:
                    code = e.code
            parts.append(R.DeleteRecordsPartitionResult(partition_index=p.partition_index,
                                                        low_watermark=low_watermark, error_code=code))
    return R(throttle_time_ms=0, topics=topics)
