"""DescribeTopicPartitions (75): v0, KIP-966. What the Java admin client's ``describeTopics`` asks a Kafka 4
broker: every partition with its leader, leader epoch, replicas, ISR and offline replicas (the same facts
Metadata answers, ``metadata.partition_entry``), and KIP-966's eligible leader replicas and last known ELR,
always empty here since kbroker keeps no ELR (Kafka answers empty lists too while
``eligible.leader.replicas.version`` is 0). A partition's error code is always NONE: a partition without a
live leader is answered with leader -1, as Kafka's ``KRaftMetadataCache`` does.

Paging, as Kafka's DescribeTopicPartitionsRequestHandler and
``KRaftMetadataCache.getTopicMetadataForDescribeTopicResponse``: the topics asked for (every topic when the
list is empty) from the cursor's topic name on, in name order; the cursor's partition index is where its
topic starts, the other topics start at 0. At most ``min(max.request.partition.size.limit,
ResponsePartitionLimit)`` partitions are answered, and at least one (a limit of 0 or less answers one, as a
real Kafka 4.4.0 does); a topic cut short sets NextCursor to its first partition
left out, and a topic reached with nothing left sets it to that topic at partition 0. A named topic that
does not exist is answered UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for an illegal name); when
every topic was asked for, only existing topics are listed. A cursor topic missing from a non-empty topic
list is INVALID_REQUEST (Kafka throws InvalidRequestException, which closes nothing and answers the request
with that error: here every named topic carries it).

Authorisation: DESCRIBE on each topic. Named topics the principal may not describe are answered
TOPIC_AUTHORIZATION_FAILED with the zero topic id and no partitions, after the others, whether or not they
exist; asked for every topic, they are left out. TopicAuthorizedOperations is filled for every other topic
answered, those not found included.
"""

from __future__ import annotations

from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..topics import INTERNAL_TOPICS, validate_topic_name
from ..wire.messages import describe_topic_partitions as API
from ..wire.primitives import ZERO_UUID
from .metadata import partition_entry

R = API.DescribeTopicPartitionsResponse


def handle(ctx, req: API.DescribeTopicPartitionsRequest) -> R:
    broker = ctx.broker
    cursor = req.cursor
    cursor_topic = cursor.topic_name if cursor is not None else ""
    fetch_all = not req.topics
    if fetch_all:
        names = {n for n in broker.topics.by_name if n >= cursor_topic}
    else:
        names = {t.name for t in req.topics if t.name >= cursor_topic}
        if cursor is not None and cursor.topic_name not in names:
            return R(topics=[R.DescribeTopicPartitionsResponseTopic(
                error_code=ErrorCode.INVALID_REQUEST, name=t.name, topic_id=ZERO_UUID, partitions=[])
                for t in req.topics])
    unauthorized = []
    authorized = []
    for name in sorted(names):
        if ctx.authorize(acl.DESCRIBE, acl.TOPIC, name, log_denied=not fetch_all):
            authorized.append(name)
        elif not fetch_all:
            unauthorized.append(R.DescribeTopicPartitionsResponseTopic(
                error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, name=name, topic_id=ZERO_UUID, partitions=[]))
    limit = max(1, min(broker.config.max_request_partition_size_limit, req.response_partition_limit))
    response = R(throttle_time_ms=0, topics=[])
    remaining = limit
    for name in authorized:
        if remaining <= 0:
            if remaining == 0:  # every earlier topic was answered in full: the next page starts here
                response.next_cursor = R.Cursor(topic_name=name, partition_index=0)
            break
        topic = broker.topics.get(name)
        if topic is None:
            if not fetch_all:
                response.topics.append(_missing(name))
            continue
        start = cursor.partition_index if name == cursor_topic else 0
        end = min(len(topic.partitions), start + remaining)
        partitions = [_partition(ctx, p) for p in topic.partitions[max(start, 0):end]]
        response.topics.append(R.DescribeTopicPartitionsResponseTopic(
            error_code=0, name=name, topic_id=topic.topic_id, is_internal=topic.is_internal,
            partitions=partitions))
        if end < len(topic.partitions):
            response.next_cursor = R.Cursor(topic_name=name, partition_index=end)
            break
        remaining -= len(partitions)
    for t in response.topics:
        t.topic_authorized_operations = ctx.authorized_operations(acl.TOPIC, t.name)
    response.topics.extend(unauthorized)
    return response


def _partition(ctx, p) -> R.DescribeTopicPartitionsResponsePartition:
    m = partition_entry(ctx, p)
    return R.DescribeTopicPartitionsResponsePartition(
        error_code=0, partition_index=m.partition_index, leader_id=m.leader_id, leader_epoch=m.leader_epoch,
        replica_nodes=m.replica_nodes, isr_nodes=m.isr_nodes, eligible_leader_replicas=[], last_known_elr=[],
        offline_replicas=m.offline_replicas)


def _missing(name: str) -> R.DescribeTopicPartitionsResponseTopic:
    try:
        validate_topic_name(name)
        code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    except KafkaError as e:
        code = e.code
    return R.DescribeTopicPartitionsResponseTopic(error_code=code, name=name, topic_id=ZERO_UUID,
                                                  is_internal=name in INTERNAL_TOPICS, partitions=[])

