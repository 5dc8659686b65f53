"""CreatePartitions (37): v0-3. Grows a topic to ``count`` partitions (INVALID_PARTITIONS unless larger
than now); the controller places the new partitions, or
manual assignments naming registered brokers (INVALID_REPLICA_ASSIGNMENT); ``validate_only``.
Needs ALTER on each topic (TOPIC_AUTHORIZATION_FAILED), as KafkaApis. Messages are the controller's
(ReplicationControlManager.createPartitions); an unknown topic has none.

Bounds, as CreateTopics (KAFKA-19673 applies Kafka's limit here too): more than
``controller.max.records.per.batch`` new partitions in one request and every topic that would have grown
is refused with POLICY_VIOLATION, nothing created; many partitions are added a few hundred per turn of the
event loop, and a topic whose new logs cannot all be made keeps its old partitions.
controller_mutation_rate (KIP-599): the new partitions are taken from the client's bucket; from v3 a topic that
finds it empty gets THROTTLING_QUOTA_EXCEEDED, before v3 the answer only carries the throttle time.
"""

from __future__ import annotations

from ..client_quotas import mutation_quota
from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..topics import PARTITIONS_PER_TURN, run_in_turns, run_steps
from ..wire.messages import create_partitions as API

R = API.CreatePartitionsResponse
TOO_MANY_PARTITIONS = "Excessively large number of partitions per request."
STRICT_QUOTA_SINCE = 3  # the first version answered THROTTLING_QUOTA_EXCEEDED (KIP-599)


def handle(ctx, req: API.CreatePartitionsRequest):
    broker = ctx.broker
    results: list = []   # a result, or (topic, count, assignments) for a growth to make
    for t in req.topics:
        results.append(_check(ctx, t))
    total = sum(r[1] - len(r[0].partitions) for r in results if isinstance(r, tuple))
    if total > broker.config.controller_max_records_per_batch:
        return R(throttle_time_ms=0, results=[
            R.CreatePartitionsTopicResult(name=r[0].name, error_code=ErrorCode.POLICY_VIOLATION,
                                          error_message=TOO_MANY_PARTITIONS) if isinstance(r, tuple) else r
            for r in results])
    steps = _grow_all(ctx, results, req.validate_only)
    if (req.validate_only or total <= PARTITIONS_PER_TURN) and broker.controller.changes_complete_at_once:
        with broker.topics.batch():
            return run_steps(steps)
    return run_in_turns(broker.topics, steps)


def _check(ctx, t):
    broker = ctx.broker
    if not ctx.authorize(acl.ALTER, acl.TOPIC, t.name):
        return R.CreatePartitionsTopicResult(name=t.name, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                             error_message="The topic authorization is failed.")
    topic = broker.topics.get(t.name)
    if topic is None:
        return R.CreatePartitionsTopicResult(name=t.name, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                             error_message=None)
    current = len(topic.partitions)
    if t.count <= current:
        return R.CreatePartitionsTopicResult(
            name=t.name, error_code=ErrorCode.INVALID_PARTITIONS,
            error_message=f"The topic {t.name} currently has {current} partition(s); {t.count} would not be an "
                          "increase." if t.count < current else f"Topic already has {current} partition(s).")
    assignments = None
    if t.assignments is not None:
        if len(t.assignments) != t.count - current:
            return R.CreatePartitionsTopicResult(
                name=t.name, error_code=ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                error_message=f"Attempted to add {t.count - current} additional partition(s), but only "
                              f"{len(t.assignments)} assignment(s) were specified.")
        assignments = [list(a.broker_ids) for a in t.assignments]
    return (topic, t.count, assignments)


def _grow_all(ctx, checked: list, validate_only: bool):
    """The growths, one partition per step; returns the response."""
    broker = ctx.broker
    quota = mutation_quota(ctx, STRICT_QUOTA_SINCE)
    results = []
    for r in checked:
        if not isinstance(r, tuple):
            results.append(r)
            continue
        topic, count, assignments = r
        try:
            if not validate_only:
                quota.record(count - len(topic.partitions))
            yield from broker.topics.partition_growth(topic, count, assignments, validate_only)
        except KafkaError as e:
            results.append(R.CreatePartitionsTopicResult(name=topic.name, error_code=e.code,
                                                         error_message=e.message))
            continue
        results.append(R.CreatePartitionsTopicResult(name=topic.name, error_code=0, error_message=None))
    return R(throttle_time_ms=ctx.throttle(quota.throttle_ms), results=results)
