"""DeleteTopics (20): v1-6. By name, or from v6 by name or id; the topic's logs are removed from storage.
Unknown names get UNKNOWN_TOPIC_OR_PARTITION, unknown ids UNKNOWN_TOPIC_ID.
Authorisation, as KafkaApis: DELETE on the topic, else TOPIC_AUTHORIZATION_FAILED (checked before whether
it exists); a topic named by id without DESCRIBE on it is answered without its name.
Each error carries its error's default message (v5+), as Kafka's ApiError does.
controller_mutation_rate (KIP-599): a deletion takes the topic's partition count from the client's bucket; from
v5 a topic that finds it empty gets THROTTLING_QUOTA_EXCEEDED, before v5 the answer only carries the throttle time.
"""

from __future__ import annotations

from ..client_quotas import mutation_quota
from ..controller import eager, settled
from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..wire.messages import delete_topics as API
from ..wire.primitives import ZERO_UUID

R = API.DeleteTopicsResponse

# Kafka's Errors.<name>.message(): what ApiError(code) says when nothing more is given.
DEFAULT_MESSAGES = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: "This server does not host this topic-partition.",
    ErrorCode.UNKNOWN_TOPIC_ID: "This server does not host this topic ID.",
    ErrorCode.TOPIC_AUTHORIZATION_FAILED: "Topic authorization failed.",
    ErrorCode.THROTTLING_QUOTA_EXCEEDED: "The throttling quota has been exceeded.",
}
STRICT_QUOTA_SINCE = 5  # the first version answered THROTTLING_QUOTA_EXCEEDED (KIP-599)


def _error(name, topic_id, code: ErrorCode) -> R.DeletableTopicResult:
    return R.DeletableTopicResult(name=name, topic_id=topic_id, error_code=code, error_message=DEFAULT_MESSAGES[code])


def handle(ctx, req: API.DeleteTopicsRequest) -> R:
    changes = []  # the deletions asked of the controller, started at once (done at once in process)
    with ctx.broker.topics.batch():  # one append to the metadata store for all; logs removed after it
        response = _delete_all(ctx, req, changes)
    if all(c.done() for c in changes):
        for c in changes:
            c.result()  # an error is raised as before
        return response
    return settled(changes, response)


def _delete_all(ctx, req: API.DeleteTopicsRequest, changes: list) -> R:
    broker = ctx.broker
    wanted = [(t.name, t.topic_id) for t in req.topics] if ctx.version >= 6 else [(n, ZERO_UUID) for n in req.topic_names]
    results = []
    quota = mutation_quota(ctx, STRICT_QUOTA_SINCE)
    for name, topic_id in wanted:
        if name is None:
            topic = broker.topics.by_id.get(topic_id)
            missing = ErrorCode.UNKNOWN_TOPIC_ID
            if topic is not None and not ctx.authorize(acl.DESCRIBE, acl.TOPIC, topic.name):
                results.append(_error(None, topic_id, ErrorCode.TOPIC_AUTHORIZATION_FAILED))
                continue
        else:
            topic = broker.topics.get(name)
            missing = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if (topic is not None or name is not None) and not ctx.authorize(
                acl.DELETE, acl.TOPIC, topic.name if topic is not None else name):
            results.append(_error(topic.name if topic is not None else name, topic_id,
                                  ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            continue
        if topic is None:
            results.append(_error(name, topic_id, missing))
            continue
        try:
            quota.record(len(topic.partitions))
        except KafkaError as e:
            results.append(_error(topic.name, topic.topic_id, e.code))
            continue
        changes.append(eager(broker.delete_topic(topic)))
        results.append(R.DeletableTopicResult(name=topic.name, topic_id=topic.topic_id, error_code=0,
                                              error_message=None))
    return R(throttle_time_ms=ctx.throttle(quota.throttle_ms), responses=results)
