"""What the group coordinator answers: the results of its requests, and `Reply` for those that may wait.

JoinGroup and SyncGroup may wait for other members; the coordinator returns a `Reply` at once and completes it later
(from another member's request or a timer). The other requests return their result directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from .offsets import TopicPartition


T = TypeVar("T")


class Reply(Generic[T]):
    """The answer to a request that may wait. The coordinator completes it exactly once, on the event loop.
    `await reply` from any asyncio task; `done()` and `result()` work without a loop (tests on a ManualClock)."""

    __slots__ = ("_done", "_result", "_waiters")

    def __init__(self) -> None:
        self._done = False
        self._result: T | None = None
        self._waiters: list[asyncio.Future] = []

    @classmethod
    def completed(cls, result: T) -> Reply[T]:
        reply = cls()
        reply.set_result(result)
        return reply

    def done(self) -> bool:
        return self._done

    def result(self) -> T:
        if not self._done:
            raise asyncio.InvalidStateError("reply not ready")
        return self._result  # type: ignore[return-value]

    def set_result(self, result: T) -> None:
        """Completes the reply (the coordinator does, exactly once)."""
        if self._done:
            raise RuntimeError("reply completed twice")
        self._done = True
        self._result = result
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():  # a waiter whose task was cancelled (client gone) is skipped
                fut.set_result(None)

    def __await__(self) -> Generator[Any, None, T]:
        if not self._done:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            yield from fut.__await__()
        return self._result  # type: ignore[return-value]


class JoinMember(NamedTuple):
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(slots=True)
class JoinResult:
    error_code: int
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    skip_assignment: bool = False
    member_id: str = ""
    members: list[JoinMember] = field(default_factory=list)  # for the leader only


@dataclass(slots=True)
class SyncResult:
    error_code: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


class LeavingMember(NamedTuple):
    member_id: str
    group_instance_id: str | None = None
    reason: str | None = None


class MemberLeaveResult(NamedTuple):
    member_id: str
    group_instance_id: str | None
    error_code: int


@dataclass(slots=True)
class LeaveResult:
    error_code: int
    members: list[MemberLeaveResult] = field(default_factory=list)


@dataclass(slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes  # for the group's protocol; empty unless the group is Stable (as Kafka)
    assignment: bytes  # empty unless the group is Stable


@dataclass(slots=True)
class DescribeResult:
    error_code: int
    group_id: str
    state: str
    protocol_type: str = ""
    protocol: str = ""  # empty unless the group is Stable
    members: list[MemberDescription] = field(default_factory=list)


class ListedGroup(NamedTuple):
    group_id: str
    protocol_type: str
    state: str
    group_type: str = "classic"  # ListGroups v5 (KIP-848); every group here is a classic one


@dataclass(slots=True)
class ListGroupsResult:
    error_code: int
    groups: list[ListedGroup] = field(default_factory=list)


class OffsetAndMetadata(NamedTuple):
    offset: int
    leader_epoch: int
    metadata: str


NO_OFFSET = OffsetAndMetadata(-1, -1, "")


@dataclass(slots=True)
class OffsetFetchResult:
    error_code: int
    offsets: dict[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)
    # Only partitions with an error appear (UNSTABLE_OFFSET_COMMIT when require_stable); the others are NONE.
    partition_errors: dict[TopicPartition, int] = field(default_factory=dict)


@dataclass(slots=True)
class OffsetDeleteResult:
    error_code: int
    partition_errors: dict[TopicPartition, int] = field(default_factory=dict)
