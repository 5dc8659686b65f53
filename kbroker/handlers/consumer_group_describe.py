"""ConsumerGroupDescribe (69): v0-1, a consumer-protocol group (KIP-848): state, group and assignment epochs, the
assignor in use, and each member with its subscription, current and target assignment (topics by id and name).
v1 adds the member type (1: a consumer-protocol member; 0: a classic member of a group being migrated).
A classic group or an unknown one answers GROUP_ID_NOT_FOUND, as Kafka does (the admin clients then fall back to
DescribeGroups).
Authorisation: DESCRIBE on each group (GROUP_AUTHORIZATION_FAILED); its authorised operations when asked for.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import consumer_group_describe as API
from .describe_groups import _address

R = API.ConsumerGroupDescribeResponse

CLASSIC_MEMBER_TYPE, CONSUMER_MEMBER_TYPE = 0, 1  # Kafka's MemberType


def assignment(R, rows):
    """A described assignment (topic id, name, partitions rows) in the response ``R``'s Assignment struct."""
    return R.Assignment(topic_partitions=[R.TopicPartitions(topic_id=tid, topic_name=name, partitions=parts)
                                          for tid, name, parts in rows])


def describe_each(ctx, req, R, describe, member) -> list:
    """The DescribedGroups of ConsumerGroupDescribe and ShareGroupDescribe: DESCRIBE on each group, its error,
    or the group with ``member(R, described_member)`` for each member and its authorised operations when asked."""
    out = []
    for group_id in req.group_ids:
        if not ctx.authorize(acl.DESCRIBE, acl.GROUP, group_id):
            out.append(R.DescribedGroup(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, group_id=group_id,
                                        members=[]))
            continue
        d = describe(group_id)
        if d.error_code:
            out.append(R.DescribedGroup(error_code=d.error_code, error_message=d.error_message, group_id=group_id,
                                        members=[]))
            continue
        out.append(R.DescribedGroup(
            group_id=group_id, group_state=d.state, group_epoch=d.group_epoch, assignment_epoch=d.assignment_epoch,
            assignor_name=d.assignor_name, members=[member(R, m) for m in d.members],
            authorized_operations=ctx.authorized_operations(acl.GROUP, group_id)
            if req.include_authorized_operations else -2147483648,
        ))
    return out


def _member(R, m):
    return R.Member(member_id=m.member_id, instance_id=m.instance_id, rack_id=m.rack_id, member_epoch=m.member_epoch,
                    client_id=m.client_id, client_host=_address(m.client_host),
                    subscribed_topic_names=m.subscribed_topic_names, subscribed_topic_regex=m.subscribed_topic_regex,
                    assignment=assignment(R, m.assignment), target_assignment=assignment(R, m.target_assignment),
                    member_type=CLASSIC_MEMBER_TYPE if m.classic else CONSUMER_MEMBER_TYPE)


def handle(ctx, req: API.ConsumerGroupDescribeRequest) -> R:
    return R(throttle_time_ms=0, groups=describe_each(ctx, req, R, ctx.broker.groups.consumer_group_describe,
                                                      _member))
