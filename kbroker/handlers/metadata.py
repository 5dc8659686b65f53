"""Metadata (3): v0-13 (v13 adds a top-level error code, KIP-1102: always NONE here). Topics by name (and, from v10, by id); a null list (v1+) or an empty one (v0) means
every topic. Unknown topics are created when ``auto.create.topics.enable`` is on and the request allows it
(always before v4, ``allow_auto_topic_creation`` from v4). Every live broker is listed by the address of
its listener of the same name as the client's; each partition with its leader, leader epoch, replicas, ISR
and offline replicas from the controller (controller.py). The controller id is the controller's (the lowest
live node id in one process, the holder of the controller lock for brokers as processes):
admin clients send CreateTopics and DeleteTopics to it (every kbroker broker could take them).

Authorisation, as KafkaApis: every topic needs DESCRIBE; asked for all topics, the others are left out;
named, they are answered TOPIC_AUTHORIZATION_FAILED (with no topic id). Creating an unknown topic also needs
CREATE on the cluster or on the topic, else TOPIC_AUTHORIZATION_FAILED. Authorised operations (v8+) are
filled when asked for: per topic, and for the cluster up to v10 (0 without DESCRIBE on the cluster).

Cost with many topics: the answer for every topic is kept between changes. The topic entries are built
once per change of what they say (``TopicManager.version``: creation, deletion, new partitions, and since
the answer carries leaders, a change of a partition's leader or ISR or of the live brokers), and per
listener name (a leader is answered by its listener of the client's listener name); without
an authorizer, and unless authorised operations are asked for, the whole encoded answer is kept too, per
version and advertised address, and sent again as bytes (``API`` below is the generated codec with an
encoder that knows such kept answers). With an authorizer each answer is filtered from the kept entries
for the principal asking, so what one principal may see never leaks into another's answer.
"""

from __future__ import annotations

import types
import weakref

from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..topics import validate_topic_name
from ..wire.messages import metadata as _generated
from ..wire.primitives import ZERO_UUID

R = _generated.MetadataResponse
AUTHORIZED_OPERATIONS_NOT_REQUESTED = -2147483648


class EncodedResponse:
    """A Metadata response body already encoded (the kept all-topics answer). ``error_code`` and ``topics``
    are what it says, for whoever reads answers without decoding them (metrics.py counts error codes)."""

    __slots__ = ("body", "error_code", "topics", "throttle_time_ms")

    def __init__(self, body: bytes, topics: list):
        self.body = body
        self.error_code = 0
        self.topics = topics
        self.throttle_time_ms = 0  # set by a client quota (server.py); the body's first field from v3


def _encoder(generated, has_throttle: bool):
    def encode(response, out):
        if type(response) is EncodedResponse:
            start = len(out)
            out += response.body
            if has_throttle and response.throttle_time_ms:  # v3+ start with it
                out[start:start + 4] = response.throttle_time_ms.to_bytes(4, "big")
        else:
            generated(response, out)
    return encode


# The generated codec, but its response encoders also take an EncodedResponse.
API = types.ModuleType(_generated.__name__)
API.__dict__.update(_generated.__dict__)
API.RESPONSE_ENCODERS = {v: _encoder(f, v >= 3) for v, f in _generated.RESPONSE_ENCODERS.items()}


class _AllTopics:
    """What is kept of the all-topics answer, for one listener name, while ``TopicManager.version`` stays
    the same."""

    __slots__ = ("topics_version", "entries", "topic_entries", "encoded")

    def __init__(self, topics_version: int, entries: list):
        self.topics_version = topics_version
        self.entries = entries   # [(topic name, entry)], in creation order
        self.topic_entries = [e for _name, e in entries]
        self.encoded: dict[tuple, bytes] = {}  # (version, host, port) -> body


_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # broker state -> {listener name: _AllTopics}


def _all_topics(ctx) -> _AllTopics:
    broker = ctx.broker
    topics = broker.topics
    per_listener = _KEPT.setdefault(broker, {})
    listener = ctx.listener.name if ctx.listener is not None else None
    kept = per_listener.get(listener)
    if kept is None or kept.topics_version != topics.version:
        kept = per_listener[listener] = _AllTopics(topics.version, [(t.name, topic_entry(ctx, t))
                                                                    for t in topics.by_name.values()])
    return kept


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
        with_operations = ctx.version >= 8 and (
            req.include_topic_authorized_operations or (ctx.version <= 10 and req.include_cluster_authorized_operations))
        kept = _all_topics(ctx)
        if broker.authorizer is None and not with_operations:
            key = (ctx.version, *ctx.advertised)
            body = kept.encoded.get(key)
            if body is None:
                out = bytearray()
                _generated.RESPONSE_ENCODERS[ctx.version](_response(ctx, [e for _n, e in kept.entries]), out)
                body = kept.encoded[key] = bytes(out)
            return EncodedResponse(body, kept.topic_entries)
        if req.include_topic_authorized_operations and ctx.version >= 8:  # filled in below: fresh entries
            entries = [topic_entry(ctx, t) for t in list(topics.by_name.values())
                       if ctx.authorize(acl.DESCRIBE, acl.TOPIC, t.name, log_denied=False)]
        else:
            entries = [e for name, e in kept.entries
                       if ctx.authorize(acl.DESCRIBE, acl.TOPIC, name, log_denied=False)]
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
                    if t is None and name in topics.pending:  # being created (the controller's database)
                        entries.append(R.MetadataResponseTopic(error_code=ErrorCode.LEADER_NOT_AVAILABLE,
                                                               name=name, topic_id=ZERO_UUID))
                        continue
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
    return _response(ctx, entries, cluster_ops)


def _response(ctx, entries: list, cluster_ops: int = AUTHORIZED_OPERATIONS_NOT_REQUESTED) -> R:
    broker = ctx.broker
    return R(
        throttle_time_ms=0,
        brokers=[R.MetadataResponseBroker(node_id=n, host=host, port=port, rack=rack)
                 for n, host, port, rack in ctx.live_brokers()],
        cluster_id=broker.cluster_id,
        controller_id=broker.controller.controller_id,
        topics=entries,
        cluster_authorized_operations=cluster_ops,
    )
