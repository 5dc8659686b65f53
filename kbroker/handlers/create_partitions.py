"""CreatePartitions (37): v0-3. Grows a topic to ``count`` partitions (INVALID_PARTITIONS unless larger
than now); manual assignments may only name this broker (INVALID_REPLICA_ASSIGNMENT); ``validate_only``.
Needs ALTER on each topic (TOPIC_AUTHORIZATION_FAILED), as KafkaApis.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import create_partitions as API

R = API.CreatePartitionsResponse


def handle(ctx, req: API.CreatePartitionsRequest) -> R:
    broker = ctx.broker
    results = []
    for t in req.topics:
        if not ctx.authorize(acl.ALTER, acl.TOPIC, t.name):
            results.append(R.CreatePartitionsTopicResult(name=t.name, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                                         error_message="The topic authorization is failed."))
            continue
        topic = broker.topics.get(t.name)
        if topic is None:
            results.append(R.CreatePartitionsTopicResult(name=t.name, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                                         error_message=f"The topic '{t.name}' does not exist."))
            continue
        current = len(topic.partitions)
        if t.count <= current:
            results.append(R.CreatePartitionsTopicResult(
                name=t.name, error_code=ErrorCode.INVALID_PARTITIONS,
                error_message=f"Topic currently has {current} partitions, which is higher than or equal to the "
                              f"requested {t.count}." if t.count < current else
                              f"Topic already has {current} partitions."))
            continue
        if t.assignments is not None:
            if len(t.assignments) != t.count - current or any(
                    a.broker_ids != [broker.config.node_id] for a in t.assignments):
                results.append(R.CreatePartitionsTopicResult(
                    name=t.name, error_code=ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    error_message="Replica assignments must name this broker, once per new partition"))
                continue
        if not req.validate_only:
            broker.topics.add_partitions(topic, t.count)
        results.append(R.CreatePartitionsTopicResult(name=t.name, error_code=0, error_message=None))
    return R(throttle_time_ms=0, results=results)
