"""ConsumerGroupHeartbeat (68): v0-1, the consumer group protocol (KIP-848). A member joins (epoch 0), heartbeats at
its epoch, and leaves (-1; a static member for now: -2); the answer carries its epoch, the heartbeat interval and,
when it changed, the partitions it may use now. v1 adds SubscribedTopicRegex (RE2 syntax, resolved by the broker) and
requires the client to make up its member id (KIP-1082; v0 with an empty one gets one from the coordinator).
The client's RackId is kept and described, not used by the assignors. ClientAssignors (client-side assignors) never
reached a released Kafka and is not served.
Authorisation, as KafkaApis: READ on the group (GROUP_AUTHORIZATION_FAILED); a subscription by topic names also
needs DESCRIBE on each topic (TOPIC_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

import uuid

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import consumer_group_heartbeat as API

R = API.ConsumerGroupHeartbeatResponse


def _owned(topic_partitions) -> dict[uuid.UUID, frozenset[int]] | None:
    if topic_partitions is None:
        return None
    owned: dict[uuid.UUID, frozenset[int]] = {}
    for tp in topic_partitions:
        owned[tp.topic_id] = owned.get(tp.topic_id, frozenset()) | frozenset(tp.partitions)
    return owned


def refused(ctx, R, group_id: str, topic_names: list[str] | None):
    """A heartbeat's answer when the principal may not READ the group or DESCRIBE a subscribed topic (as
    KafkaApis checks ConsumerGroupHeartbeat and ShareGroupHeartbeat); None when it may."""
    if not ctx.authorize(acl.READ, acl.GROUP, group_id):
        return R(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if topic_names and ctx.broker.authorizer is not None:
        allowed = ctx.authorized(acl.DESCRIBE, acl.TOPIC, topic_names)
        denied = sorted(set(topic_names) - allowed)
        if denied:
            return R(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                     error_message=f"Topic authorization failed for topics {denied}")
    return None


def handle(ctx, req: API.ConsumerGroupHeartbeatRequest) -> R:
    denied = refused(ctx, R, req.group_id, req.subscribed_topic_names)
    if denied is not None:
        return denied
    res = ctx.broker.groups.consumer_group_heartbeat(
        ctx.version, req.group_id, req.member_id, req.member_epoch, req.instance_id, req.rack_id,
        req.rebalance_timeout_ms, req.subscribed_topic_names,
        req.subscribed_topic_regex if ctx.version >= 1 else None, req.server_assignor,
        _owned(req.topic_partitions), ctx.client_id or "", ctx.client_host)
    return response(R, res)


def response(R, res):
    """A heartbeat's answer (ConsumerGroupHeartbeat's or ShareGroupHeartbeat's) from the coordinator's result."""
    assignment = None
    if res.assignment is not None:
        assignment = R.Assignment(topic_partitions=[
            R.TopicPartitions(topic_id=t, partitions=sorted(ps)) for t, ps in res.assignment.items()])
    return R(throttle_time_ms=0, error_code=res.error_code, error_message=res.error_message,
             member_id=res.member_id, member_epoch=res.member_epoch,
             heartbeat_interval_ms=res.heartbeat_interval_ms, assignment=assignment)
