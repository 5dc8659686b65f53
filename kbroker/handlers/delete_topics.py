"""DeleteTopics (20): v1-6. By name, or from v6 by name or id; the topic's logs are removed from storage.
Unknown names get UNKNOWN_TOPIC_OR_PARTITION, unknown ids UNKNOWN_TOPIC_ID.
Authorisation, as KafkaApis: DELETE on the topic, else TOPIC_AUTHORIZATION_FAILED (checked before whether
it exists); a topic named by id without DESCRIBE on it is answered without its name.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import delete_topics as API
from ..wire.primitives import ZERO_UUID

R = API.DeleteTopicsResponse


def handle(ctx, req: API.DeleteTopicsRequest) -> R:
    with ctx.broker.topics.batch():  # one append to the metadata store for all; logs removed after it
        return _delete_all(ctx, req)


def _delete_all(ctx, req: API.DeleteTopicsRequest) -> R:
    broker = ctx.broker
    wanted = [(t.name, t.topic_id) for t in req.topics] if ctx.version >= 6 else [(n, ZERO_UUID) for n in req.topic_names]
    results = []
    for name, topic_id in wanted:
        if name is None:
            topic = broker.topics.by_id.get(topic_id)
            missing = ErrorCode.UNKNOWN_TOPIC_ID
            if topic is not None and not ctx.authorize(acl.DESCRIBE, acl.TOPIC, topic.name):
                results.append(R.DeletableTopicResult(name=None, topic_id=topic_id,
                                                      error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                                      error_message=None))
                continue
        else:
            topic = broker.topics.get(name)
            missing = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if (topic is not None or name is not None) and not ctx.authorize(
                acl.DELETE, acl.TOPIC, topic.name if topic is not None else name):
            results.append(R.DeletableTopicResult(name=topic.name if topic is not None else name,
                                                  topic_id=topic_id, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                                  error_message=None))
            continue
        if topic is None:
            results.append(R.DeletableTopicResult(name=name, topic_id=topic_id, error_code=missing,
                                                  error_message=None))
            continue
        broker.delete_topic(topic)
        results.append(R.DeletableTopicResult(name=topic.name, topic_id=topic.topic_id, error_code=0,
                                              error_message=None))
    return R(throttle_time_ms=0, responses=results)
