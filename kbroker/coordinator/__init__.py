"""Coordinators: consumer groups (`group`, which names its parts), their durable offsets and metadata (`offsets`),
and transactions (`transaction`)."""

from .group import (
    DescribeResult,
    GroupConfig,
    GroupCoordinator,
    GroupState,
    JoinMember,
    JoinResult,
    LeaveResult,
    ListedGroup,
    ListGroupsResult,
    MemberDescription,
    MemberLeaveResult,
    OffsetAndMetadata,
    OffsetDeleteResult,
    OffsetFetchResult,
    Reply,
    SyncResult,
)
from .offsets import (
    CommittedOffset,
    FileOffsetStore,
    MemoryOffsetStore,
    OffsetStore,
    StoredGroup,
    StoredMember,
    StoreSnapshot,
)

__all__ = [
    "CommittedOffset", "DescribeResult", "FileOffsetStore", "GroupConfig", "GroupCoordinator", "GroupState",
    "JoinMember", "JoinResult", "LeaveResult", "ListGroupsResult", "ListedGroup", "MemberDescription",
    "MemberLeaveResult", "MemoryOffsetStore", "OffsetAndMetadata", "OffsetDeleteResult", "OffsetFetchResult",
    "OffsetStore", "Reply", "StoreSnapshot", "StoredGroup", "StoredMember", "SyncResult",
]
