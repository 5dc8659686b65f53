"""DescribeGroups (15): v0-6. State, protocol and members (with metadata and assignment once the group is
Stable); v4 adds group instance ids. An unknown group is described as Dead with no error before v6 and with
GROUP_ID_NOT_FOUND from v6 (KIP-1043), as Kafka does; so is a share group ("... is not a classic group.").
Authorisation: DESCRIBE on each group (GROUP_AUTHORIZATION_FAILED); its authorised operations (v3+) when
asked for, as KafkaApis.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import describe_groups as API

R = API.DescribeGroupsResponse


def handle(ctx, req: API.DescribeGroupsRequest) -> R:
    out = []
    for group_id in req.groups:
        if not ctx.authorize(acl.DESCRIBE, acl.GROUP, group_id):
            out.append(R.DescribedGroup(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, group_id=group_id,
                                        members=[]))
            continue
        d = ctx.broker.groups.describe_group(group_id)
        error_code, error_message = d.error_code, None
        if ctx.version >= 6 and error_code == 0 and d.state == "Dead":
            error_code = ErrorCode.GROUP_ID_NOT_FOUND
            error_message = f"Group {group_id} is not a classic group." if ctx.broker.groups.is_share_group(
                group_id) else f"Group {group_id} not found."
        out.append(R.DescribedGroup(
            error_code=error_code, error_message=error_message, group_id=group_id, group_state=d.state, protocol_type=d.protocol_type or "",
            protocol_data=d.protocol or "",
            members=[R.DescribedGroupMember(member_id=m.member_id, group_instance_id=m.group_instance_id,
                                            client_id=m.client_id, client_host=_address(m.client_host),
                                            member_metadata=m.metadata or b"", member_assignment=m.assignment or b"")
                     for m in d.members],
            authorized_operations=ctx.authorized_operations(acl.GROUP, group_id)
            if ctx.version >= 3 and req.include_authorized_operations and not error_code else -2147483648,
        ))
    return R(throttle_time_ms=0, groups=out)


def _address(host: str) -> str:
    """The member's address as Kafka shows it: InetAddress.toString() of an address without a name."""
    return host if not host or host.startswith("/") else "/" + host
