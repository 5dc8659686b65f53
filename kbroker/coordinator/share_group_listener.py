"""What the share-partition side (ShareFetch, ShareAcknowledge, share sessions) may ask of the share groups'
coordinator, and hear from it (KIP-932; Kafka's ShareGroupListener).

Asking (``BrokerState.groups``, the GroupCoordinatorService, answers for the groups whose coordinator this
broker hosts; None for a group it does not host or that is not a share group):

    groups.share_group_assignment(group_id) -> dict[member id, dict[topic id, frozenset[partition]]] | None
        every member of the share group and the partitions it is assigned now
    groups.share_group_member(group_id, member_id) -> dict[topic id, frozenset[partition]] | None
        one member's assignment; None when it is not a member (left, fenced, never joined)
    groups.share_group_config(group_id) -> ShareGroupSettings
        the group's effective share settings (the group configs over the broker's ``group.share.*``); for any
        group id, hosted here or not

Hearing: ``groups.add_share_group_listener(listener)`` registers a `ShareGroupListener` for every share group
this broker coordinates, now and after leadership moves (``remove_share_group_listener`` when the broker stops). Its methods run on the event loop, after the change is
written, and must not raise (an exception is logged and ignored):

    on_member_leave(group_id, member_id)     a member left (epoch -1), was fenced (session timeout) or removed:
                                             its share sessions can go and its acquired records be released
    on_group_empty(group_id)                 the last member went
    on_group_deleted(group_id, partitions)   DeleteGroups removed the group: its share-partition state
                                             (`partitions`: {topic id: frozenset of partitions} it had
                                             initialised) can go, as Kafka's DeleteShareGroupState

In Kafka the share-partition leader hears of departures only through its share sessions (ShareSessionCache: a
session ended with epoch -1 or by its connection closing); kbroker's SharePartitionManager does the same and
ignores ``on_member_leave`` (share/manager.py). The coordinator tells the listeners of its own broker, and in a
cluster in one process those of every broker (the list hangs on the `ChangeNotifier` the brokers share);
brokers in other processes are not told.

Concurrency: the event loop only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

Assignment = dict[uuid.UUID, frozenset[int]]


class ShareGroupListener:
    """Override what you need; the defaults do nothing."""

    def on_member_leave(self, group_id: str, member_id: str) -> None:
        pass

    def on_group_empty(self, group_id: str) -> None:
        pass

    def on_group_deleted(self, group_id: str, partitions: Assignment) -> None:
        pass


@dataclass(frozen=True, slots=True)
class ShareGroupSettings:
    """A share group's effective settings (GROUP config over the broker's ``group.share.*`` default)."""

    auto_offset_reset: str = "latest"  # share.auto.offset.reset: latest, earliest or by_duration:<ISO-8601>
    isolation_level: str = "read_uncommitted"  # share.isolation.level
    record_lock_duration_ms: int = 30_000  # share.record.lock.duration.ms / group.share.record.lock.duration.ms
    delivery_count_limit: int = 5  # share.delivery.count.limit / group.share.delivery.count.limit
    partition_max_record_locks: int = 2_000  # share.partition.max.record.locks / group.share.partition...
    session_timeout_ms: int = 45_000  # share.session.timeout.ms / group.share.session.timeout.ms
    heartbeat_interval_ms: int = 5_000  # share.heartbeat.interval.ms / group.share.heartbeat.interval.ms
    # share.renew.acknowledge.enable (KIP-1222; a group config only, true by default as in Kafka 4.4): when
    # false, RENEW acknowledgements are refused with INVALID_RECORD_STATE
    renew_acknowledge_enable: bool = True
