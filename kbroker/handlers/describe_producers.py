"""DescribeProducers (61): v0 (KIP-664). The producers with state in each partition: id, epoch, last
sequence and timestamp, and the first offset of an open transaction. Needs READ on each topic
(TOPIC_AUTHORIZATION_FAILED), as KafkaApis.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..partition import get_partition_or_error
from ..security import acl
from ..wire.messages import describe_producers as API

R = API.DescribeProducersResponse
DEFAULT_MESSAGES = {ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: "This server does not host this topic-partition."}


def handle(ctx, req: API.DescribeProducersRequest) -> R:
    topics = []
    for t in req.topics:
        topic = ctx.broker.topics.get(t.name)
        parts = []
        if not ctx.authorize(acl.READ, acl.TOPIC, t.name):
            parts.extend(R.PartitionResponse(partition_index=i, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                         for i in t.partition_indexes)
            topics.append(R.TopicResponse(name=t.name, partitions=parts))
            continue
        for i in t.partition_indexes:
            p = get_partition_or_error(topic, i)
            if isinstance(p, int):  # an unknown topic with the error's default message, as Kafka's ApiError
                parts.append(R.PartitionResponse(partition_index=i, error_code=p,
                                                 error_message=DEFAULT_MESSAGES.get(p) if topic is None else None))
                continue
            producers = []
            for pid, entry, txn_start in p.active_producer_state():
                last = entry.batches[-1] if entry.batches else None
                producers.append(R.ProducerState(
                    producer_id=pid, producer_epoch=entry.epoch, last_sequence=last.last_seq if last else -1,
                    last_timestamp=last.timestamp if last else -1, coordinator_epoch=entry.coordinator_epoch,
                    current_txn_start_offset=txn_start))
            parts.append(R.PartitionResponse(partition_index=i, error_code=0, active_producers=producers))
        topics.append(R.TopicResponse(name=t.name, partitions=parts))
    return R(throttle_time_ms=0, topics=topics)
