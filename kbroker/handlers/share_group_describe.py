"""ShareGroupDescribe (77): v1, share groups (KIP-932; v0 was Kafka 4.0's early access): state (Empty or
Stable), group and assignment epochs, the assignor (simple), and each member with its rack, client, subscription
and current assignment (topics by id and name). Any other group, or an unknown one, is GROUP_ID_NOT_FOUND; an
empty group id INVALID_GROUP_ID.
Authorisation: DESCRIBE on each group (GROUP_AUTHORIZATION_FAILED); its authorised operations when asked for.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import share_group_describe as API
from .describe_groups import _address

R = API.ShareGroupDescribeResponse


def _assignment(rows) -> R.Assignment:
    return R.Assignment(topic_partitions=[R.TopicPartitions(topic_id=tid, topic_name=name, partitions=parts)
                                          for tid, name, parts in rows])


def handle(ctx, req: API.ShareGroupDescribeRequest) -> R:
    out = []
    for group_id in req.group_ids:
        if not ctx.authorize(acl.DESCRIBE, acl.GROUP, group_id):
            out.append(R.DescribedGroup(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, group_id=group_id,
                                        members=[]))
            continue
        d = ctx.broker.groups.share_group_describe(group_id)
        if d.error_code:
            out.append(R.DescribedGroup(error_code=d.error_code, error_message=d.error_message, group_id=group_id,
                                        members=[]))
            continue
        out.append(R.DescribedGroup(
            group_id=group_id, group_state=d.state, group_epoch=d.group_epoch, assignment_epoch=d.assignment_epoch,
            assignor_name=d.assignor_name,
            members=[R.Member(member_id=m.member_id, rack_id=m.rack_id, member_epoch=m.member_epoch,
                              client_id=m.client_id, client_host=_address(m.client_host),
                              subscribed_topic_names=m.subscribed_topic_names, assignment=_assignment(m.assignment))
                     for m in d.members],
            authorized_operations=ctx.authorized_operations(acl.GROUP, group_id)
            if req.include_authorized_operations else -2147483648,
        ))
    return R(throttle_time_ms=0, groups=out)
