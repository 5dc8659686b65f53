"""The coordinators as the handlers see them: each request routed to the shard of its key's partition (Kafka's
GroupCoordinatorService and TransactionCoordinator over their partitions).

A group id's shard is the `GroupCoordinator` of its ``__consumer_offsets`` partition, over a `TopicOffsetStore`;
a transactional id's is the `TransactionCoordinator` of its ``__transaction_state`` partition, over a
`TransactionStateLog`. ``CoordinatorShards`` (runtime.py) loads and unloads them as this broker gains and loses
the partitions' leadership. A key whose partition is not led here is answered NOT_COORDINATOR, and one whose
partition is loading COORDINATOR_LOAD_IN_PROGRESS: for groups by two stand-in coordinators that answer only
that (an unloaded GroupCoordinator already answers every request with it), so the answers keep each API's
shape without a second list of them.

Requests about all groups (ListGroups, the control plane) gather every shard of this broker, as Kafka's
ListGroups asks each of a broker's coordinators.

Concurrency: the event loop only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from ..errors import ErrorCode, KafkaError
from .group import GroupCoordinator, ListGroupsResult
from .share_group_listener import ShareGroupListener, ShareGroupSettings
from .runtime import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, CoordinatorShards, partition_for
from .transaction import InitResult, TransactionCoordinator


def _routed(name: str):
    """A GroupCoordinator method called on the shard of its first argument, the group id."""
    def method(self, group_id, *args, **kwargs):
        return getattr(self.route(group_id), name)(group_id, *args, **kwargs)
    method.__name__ = name
    method.__doc__ = f"GroupCoordinator.{name} on the group's shard."
    return method


class _ShardedService:
    """Keys placed on the partitions of one internal topic, a shard for each partition led here."""

    def __init__(self, topic_name: str, num_partitions: int, make_shard: Callable) -> None:
        """``make_shard(index, log)``: the coordinator of that partition, reading its state from ``log``."""
        self.num_partitions = num_partitions
        self.shards = CoordinatorShards(topic_name, make_shard)

    def partition_for(self, key: str) -> int:
        return partition_for(key, self.num_partitions)

    def on_topic(self, topic) -> None:
        """The internal topic changed: keys are placed by its partition count (Kafka reads it from the
        metadata image), and the shards follow this broker's leaderships."""
        if topic is not None and topic.partitions:
            self.num_partitions = len(topic.partitions)
        self.shards.on_topic(topic)

    def close(self) -> None:
        self.shards.close()


class GroupCoordinatorService(_ShardedService):
    def __init__(self, num_partitions: int, make_shard: Callable, stand_in: Callable[[], GroupCoordinator],
                 share_listeners: list[ShareGroupListener] | None = None) -> None:
        """``stand_in()``: an unloaded GroupCoordinator (no timers) for the stand-ins. ``share_listeners``: the
        list of share group listeners the shards tell (shared by the brokers of a cluster in one process)."""
        super().__init__(OFFSETS_TOPIC, num_partitions, make_shard)
        self.share_listeners: list[ShareGroupListener] = share_listeners if share_listeners is not None else []
        self._loading = stand_in()
        self._elsewhere = stand_in()
        self._elsewhere.hosted = False

    def route(self, group_id: str | None) -> GroupCoordinator:
        index = self.partition_for(group_id or "")
        shard = self.shards.shards.get(index)
        if shard is not None:
            return shard
        return self._loading if self.shards.status(index) == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS \
            else self._elsewhere

    def hosts(self, group_id: str) -> bool:
        return self.partition_for(group_id) in self.shards.shards

    join_group = _routed("join_group")
    sync_group = _routed("sync_group")
    heartbeat = _routed("heartbeat")
    leave_group = _routed("leave_group")
    describe_group = _routed("describe_group")
    commit_offsets = _routed("commit_offsets")
    fetch_offsets = _routed("fetch_offsets")
    delete_offsets = _routed("delete_offsets")
    group_state = _routed("group_state")
    consumer_group_describe = _routed("consumer_group_describe")
    member_count = _routed("member_count")
    remove_consumer_group_members = _routed("remove_consumer_group_members")
    share_group_heartbeat = _routed("share_group_heartbeat")
    is_share_group = _routed("is_share_group")
    share_group_describe = _routed("share_group_describe")
    share_group_assignment = _routed("share_group_assignment")
    remove_share_group_members = _routed("remove_share_group_members")

    def share_group_member(self, group_id: str, member_id: str) -> dict | None:
        """The member's assigned partitions {topic id: frozenset}; None when it is not a member of the share
        group (or the group is not coordinated here). See share_group_listener.py."""
        members = self.share_group_assignment(group_id)
        return None if members is None else members.get(member_id)

    def share_group_config(self, group_id: str) -> ShareGroupSettings:
        """The share group's effective settings (any group id; the shard's coordinator need not be here)."""
        return self._loading.share_manager.settings(group_id)

    def add_share_group_listener(self, listener: ShareGroupListener) -> None:
        """Registers a listener of every share group this broker coordinates, and in a cluster in one process
        of every share group of the cluster (share_group_listener.py)."""
        self.share_listeners.append(listener)

    def remove_share_group_listener(self, listener: ShareGroupListener) -> None:
        """What a stopping broker does with the listener it added."""
        if listener in self.share_listeners:
            self.share_listeners.remove(listener)

    def consumer_group_heartbeat(self, version: int, group_id: str, *args, **kwargs):
        """GroupCoordinator.consumer_group_heartbeat (KIP-848) on the group's shard."""
        return self.route(group_id).consumer_group_heartbeat(version, group_id, *args, **kwargs)
    generation_id = _routed("generation_id")

    def prepare_txn_offsets(self, producer_id: int, group_id: str, offsets, **member) -> dict:
        return self.route(group_id).prepare_txn_offsets(producer_id, group_id, offsets, **member)

    def delete_groups(self, group_ids: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for group_id in group_ids:
            out.update(self.route(group_id).delete_groups([group_id]))
        return out

    def list_groups(self, states_filter=None, types_filter=None) -> ListGroupsResult:
        """Every group of this broker's shards; COORDINATOR_LOAD_IN_PROGRESS while one loads, as Kafka."""
        if self.shards.loading:
            return ListGroupsResult(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
        groups = []
        for shard in list(self.shards.shards.values()):
            res = shard.list_groups(states_filter, types_filter)
            if res.error_code:
                return res
            groups += res.groups
        return ListGroupsResult(ErrorCode.NONE, groups)

    def written(self, group_id: str) -> Awaitable[None]:
        """Completes once the group's last change is replicated (what a commit's answer waits for)."""
        return self.route(group_id).store.wait_written()

    def on_txn_marker(self, index: int, producer_id: int, commit: bool) -> None:
        """A transaction marker was written to partition ``index`` of __consumer_offsets: the producer's pending
        offsets of every group of that shard are published (commit) or dropped (Kafka's
        scheduleTxnCompletion)."""
        shard = self.shards.shards.get(index)
        if shard is None:
            return
        for group_id in shard.store.pending_groups(producer_id):
            shard.complete_txn_offsets(producer_id, group_id, commit)

    def expire_offsets(self) -> int:
        return sum(shard.expire_offsets() for shard in list(self.shards.shards.values()))

class TransactionCoordinatorService(_ShardedService):
    def __init__(self, num_partitions: int, make_shard: Callable) -> None:
        super().__init__(TRANSACTION_STATE_TOPIC, num_partitions, make_shard)

    def _route(self, tid: str) -> TransactionCoordinator | int:
        index = self.partition_for(tid or "")
        return self.shards.shards.get(index) or self.shards.status(index)

    def hosts(self, tid: str) -> bool:
        return not isinstance(self._route(tid), int)

    def init_producer_id(self, tid: str, timeout_ms: int, expected_pid: int = -1,
                         expected_epoch: int = -1) -> InitResult:
        shard = self._route(tid)
        if isinstance(shard, int):
            return InitResult(shard)
        return shard.init_producer_id(tid, timeout_ms, expected_pid, expected_epoch)

    def add_partitions(self, tid: str, pid: int, epoch: int, partitions: list, transaction_version: int = 0) -> dict:
        shard = self._route(tid)
        if isinstance(shard, int):
            return dict.fromkeys(partitions, shard)
        return shard.add_partitions(tid, pid, epoch, partitions, transaction_version)

    def add_offsets(self, tid: str, pid: int, epoch: int, group_id: str) -> int:
        shard = self._route(tid)
        return shard if isinstance(shard, int) else shard.add_offsets(tid, pid, epoch, group_id)

    def is_ongoing(self, tid: str, pid: int, epoch: int) -> int:
        shard = self._route(tid)
        return shard if isinstance(shard, int) else shard.is_ongoing(tid, pid, epoch)

    def end_txn(self, tid: str, pid: int, epoch: int, commit: bool, transaction_version: int = 0) -> InitResult:
        shard = self._route(tid)
        if isinstance(shard, int):
            return InitResult(shard)
        return shard.end_txn(tid, pid, epoch, commit, transaction_version)

    def written(self, tid: str) -> Awaitable[None]:
        """Completes once the transactional id's last change is replicated."""
        shard = self._route(tid)
        if isinstance(shard, int):
            return _done()
        return shard.journal.log.wait_replicated()

    def describe(self, tid: str):
        shard = self._route(tid)
        return None if isinstance(shard, int) else shard.describe(tid)

    def list(self, states, producer_ids, duration_filter_ms: int = -1) -> list:
        out = []
        for shard in list(self.shards.shards.values()):
            out += shard.list(states, producer_ids, duration_filter_ms)
        return out

    def abort_timed_out(self) -> int:
        return sum(shard.abort_timed_out() for shard in list(self.shards.shards.values()))


async def _done() -> None:
    return None


async def when_written(written: Awaitable[None], response):
    """``response``, once ``written`` (a coordinator's ``written(key)``) says its change is replicated: how a
    handler answers a change only when a new coordinator would load it. If the write cannot be confirmed
    (the coordinator moved, replication timed out), every error code of the answer carries the error, as
    Kafka's coordinators answer each partition or the request with it."""
    try:
        await written
    except KafkaError as e:
        _set_error_codes(response, e.code)
    return response


def _set_error_codes(message, code: int) -> None:
    """Set ``code`` in every ``error_code`` field of ``message`` and of the structs in its lists."""
    for name in getattr(message, "__slots__", ()):
        value = getattr(message, name, None)
        if name == "error_code":
            setattr(message, name, code)
        elif isinstance(value, list):
            for item in value:
                if hasattr(item, "__slots__"):
                    _set_error_codes(item, code)