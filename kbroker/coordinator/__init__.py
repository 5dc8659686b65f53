"""Coordinators: consumer groups (`group`) and their durable offsets (`offsets`)."""

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
