"""Metadata (3): v0-13 (v13 adds a top-level error code, KIP-1102: always NONE here). Topics by name (and, from v10, by id); a null list (v1+) or an empty one (v0) means
every topic. Unknown topics are created when ``auto.create.topics.enable`` is on and the request allows it
(always before v4, ``allow_auto_topic_creation`` from v4). Every live broker is listed by the address of
its listener of the same name as the client's; each partition with its leader, leader epoch, replicas, ISR
and offline replicas from the controller (controller.py). The controller id is the lowest live node id:
admin clients send CreateTopics and DeleteTopics to it (every kbroker broker could take them).

Authorisation, as KafkaApis: every topic needs DESCRIBE; asked for all topics, the others are left out;
named, they are answered TOPIC_AUTHORIZATION_FAILED (with no topic id). Creating an unknown topic also needs
CREATE on the cluster or on the topic, else TOPIC_AUTHORIZATION_FAILED. Authorised operations (v8+) are
filled when asked for: per topic, and for the cluster up to v10 (0 without DESCRIBE on the cluster).
"""

from __future__ import annotations

from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..topics import validate_topic_name
from ..wire.messages import metadata as API
from ..wire.primitives import ZERO_UUID

R = API.MetadataResponse
AUTHORIZED_OPERATIONS_NOT_REQUESTED = -2147483648


def partition_entry(ctx, p) -> R.MetadataResponsePartition:
    """A partition as the controller last told this broker: a leader that is not alive (or has no listener
    of the client's name) is answered LEADER_NOT_AVAILABLE with leader -1, as Kafka's metadata cache does;
    replicas on brokers that are not alive are offline."""
    live = set(ctx.broker.controller.live_broker_ids())
    leader = p.leader_id if p.leader_id in live and ctx.endpoint(p.leader_id) is not None else -1
    return R.MetadataResponsePartition(
        error_code=0 if leader != -1 else ErrorCode.LEADER_NOT_AVAILABLE, partition_index=p.index,
        leader_id=leader, leader_epoch=p.leader_epoch, replica_nodes=list(p.replicas), isr_nodes=list(p.isr),
        offline_replicas=[r for r in p.replicas if r not in live],
    )


def topic_entry(ctx, topic) -> R.MetadataResponseTopic:
    parts = [partition_entry(ctx, p) for p in topic.partitions]
    return R.MetadataResponseTopic(error_code=0, name=topic.name, topic_id=topic.topic_id,
                                   is_internal=topic.is_internal, partitions=parts,
                                   topic_authorized_operations=AUTHORIZED_OPERATIONS_NOT_REQUESTED)


def _unauthorized(name, topic_id=ZERO_UUID) -> R.MetadataResponseTopic:
    return R.MetadataResponseTopic(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, name=name, topic_id=topic_id,
                                   is_internal=False, partitions=[],
                                   topic_authorized_operations=AUTHORIZED_OPERATIONS_NOT_REQUESTED)


def handle(ctx, req: API.MetadataRequest) -> R:
    broker = ctx.broker
    topics = broker.topics
    if req.topics is None or (ctx.version == 0 and not req.topics):
        entries = [topic_entry(ctx, t) for t in list(topics.by_name.values())
                   if ctx.authorize(acl.DESCRIBE, acl.TOPIC, t.name, log_denied=False)]
    else:
        entries = []
        auto_create = broker.config.auto_create_topics_enable and (ctx.version < 4 or req.allow_auto_topic_creation)
        may_create_any = None  # CREATE on the cluster, asked once and only when needed
        for rt in req.topics:
            name = rt.name
            if name is None:  # by id (v10+)
                t = topics.by_id.get(rt.topic_id)
                if t is None:
                    entries.append(R.MetadataResponseTopic(error_code=ErrorCode.UNKNOWN_TOPIC_ID, name=None,
                                                           topic_id=rt.topic_id))
                elif not ctx.authorize(acl.DESCRIBE, acl.TOPIC, t.name):
                    entries.append(_unauthorized(None, t.topic_id))  # ids are not secret; names are
                else:
                    entries.append(topic_entry(ctx, t))
                continue
            if not ctx.authorize(acl.DESCRIBE, acl.TOPIC, name):
                entries.append(_unauthorized(name))  # whether it exists is not disclosed
                continue
            t = topics.get(name)
            if t is None:
                try:
                    validate_topic_name(name)
                except KafkaError as e:
                    entries.append(R.MetadataResponseTopic(error_code=e.code, name=name, topic_id=ZERO_UUID))
                    continue
                if auto_create:
                    if may_create_any is None:
                        may_create_any = ctx.authorize_cluster(acl.CREATE, log_denied=False)
                    if not may_create_any and not ctx.authorize(acl.CREATE, acl.TOPIC, name):
                        entries.append(_unauthorized(name))
                        continue
                    t = broker.auto_create_topic(name)
                if t is None:
                    entries.append(R.MetadataResponseTopic(error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                                           name=name, topic_id=ZERO_UUID))
                    continue
            entries.append(topic_entry(ctx, t))
    cluster_ops = AUTHORIZED_OPERATIONS_NOT_REQUESTED
    if ctx.version >= 8:
        if req.include_topic_authorized_operations:
            for e in entries:
                if e.error_code != ErrorCode.TOPIC_AUTHORIZATION_FAILED and e.name is not None:
                    e.topic_authorized_operations = ctx.authorized_operations(acl.TOPIC, e.name)
        if ctx.version <= 10 and req.include_cluster_authorized_operations:
            cluster_ops = ctx.authorized_operations(acl.CLUSTER, acl.CLUSTER_NAME) \
                if ctx.authorize_cluster(acl.DESCRIBE) else 0
    return R(
        throttle_time_ms=0,
        brokers=[R.MetadataResponseBroker(node_id=n, host=host, port=port, rack=rack)
                 for n, host, port, rack in ctx.live_brokers()],
        cluster_id=broker.cluster_id,
        controller_id=broker.controller.controller_id,
        topics=entries,
        cluster_authorized_operations=cluster_ops,
    )
