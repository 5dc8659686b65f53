"""CreatePartitions (37): v0-3. Grows a topic to ``count`` partitions (INVALID_PARTITIONS unless larger
than now); the controller places the new partitions, or
manual assignments naming registered brokers (INVALID_REPLICA_ASSIGNMENT); ``validate_only``.
Needs ALTER on each topic (TOPIC_AUTHORIZATION_FAILED), as KafkaApis.
"""

from __future__ import annotations

from ..errors import ErrorCode, KafkaError
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
        assignments = None
        if t.assignments is not None:
            if len(t.assignments) != t.count - current:
                results.append(R.CreatePartitionsTopicResult(
                    name=t.name, error_code=ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    error_message=f"Increasing the number of partitions by {t.count - current} but "
                                  f"{len(t.assignments)} assignments provided."))
                continue
            assignments = [list(a.broker_ids) for a in t.assignments]
        try:
            broker.topics.add_partitions(topic, t.count, assignments, validate_only=req.validate_only)
        except KafkaError as e:
            results.append(R.CreatePartitionsTopicResult(name=t.name, error_code=e.code, error_message=e.message))
            continue
        results.append(R.CreatePartitionsTopicResult(name=t.name, error_code=0, error_message=None))
    return R(throttle_time_ms=0, results=results)
