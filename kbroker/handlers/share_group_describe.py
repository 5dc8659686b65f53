"""ShareGroupDescribe (77): v1, share groups (KIP-932; v0 was Kafka 4.0's early access): state (Empty or
Stable), group and assignment epochs, the assignor (simple), and each member with its rack, client, subscription
and current assignment (topics by id and name). Any other group, or an unknown one, is GROUP_ID_NOT_FOUND; an
empty group id INVALID_GROUP_ID.
Authorisation: DESCRIBE on each group (GROUP_AUTHORIZATION_FAILED); its authorised operations when asked for.
"""

from __future__ import annotations

from ..wire.messages import share_group_describe as API
from .consumer_group_describe import assignment, describe_each
from .describe_groups import _address

R = API.ShareGroupDescribeResponse


def _member(R, m):
    return R.Member(member_id=m.member_id, rack_id=m.rack_id, member_epoch=m.member_epoch, client_id=m.client_id,
                    client_host=_address(m.client_host), subscribed_topic_names=m.subscribed_topic_names,
                    assignment=assignment(R, m.assignment))


def handle(ctx, req: API.ShareGroupDescribeRequest) -> R:
    return R(throttle_time_ms=0, groups=describe_each(ctx, req, R, ctx.broker.groups.share_group_describe, _member))
