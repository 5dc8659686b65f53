"""The share coordinator: share-partitions' durable state in ``__share_group_state`` (Kafka's ShareCoordinator,
ShareCoordinatorShard and the DefaultStatePersister's placement).

Placement. The state of share-partition (group, topic id, partition) lives in partition
``partition_for("group:topicId:partition", share.coordinator.state.topic.num.partitions)`` of the compacted
topic ``__share_group_state`` (50 partitions by default), with Kafka's key string and hash; the shard of that
partition's leader keeps it. As for the group coordinator, a shard is loaded from its partition's records when
this broker becomes its leader and unloaded when it stops being one (coordinator/runtime.py).

Records (state_records.py), as Kafka's ShareCoordinatorShard writes them: a share-partition's first write, a
write that changes its state epoch (its state initialised again) and every write after
``share.coordinator.snapshot.update.records.per.snapshot`` (500) updates is a ShareSnapshot, the whole state;
the writes in between are ShareUpdates carrying the batches that changed and the start offset. Each is appended
through ``Partition.append`` and confirmed once ``CoordinatorLog.wait_replicated`` says the high watermark
passed it. Loading replays snapshots and updates in order (an update merged into the state so far), which
gives the state the writes left. Deleting a share group's state writes tombstones (ShareSnapshot keys).

The topic. As Kafka's, ``__share_group_state`` has cleanup.policy=delete and retention.ms=-1 (compaction would
keep only the last update of a share-partition, all its updates having one key), and the shard prunes it
itself: every ``share.coordinator.state.topic.prune.interval.ms`` (5 minutes) the records before the oldest of
the live share-partitions' latest snapshots are deleted (Kafka's ShareCoordinatorOffsetsManager and its
prune job, with DeleteRecords). A topic made compacted by an earlier kbroker is written in snapshots only.

A key whose partition another broker leads: ``ShareCoordinatorService.route`` raises NOT_COORDINATOR and the
caller goes there with the inter-broker share state requests (persister.py; served by
handlers/*_share_group_state*.py over the shard of the key).

Concurrency: the event loop only.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid

from ..coordinator.runtime import CoordinatorLog, CoordinatorShards, partition_for
from ..errors import ErrorCode, KafkaError
from . import state_records as SR

log = logging.getLogger("kbroker.share.coordinator")

SHARE_STATE_TOPIC = "__share_group_state"
# Kafka's ShareCoordinatorService.shareGroupStateTopicConfigs (segment.bytes: share.coordinator.state.topic.segment.bytes).
SHARE_STATE_TOPIC_CONFIGS = {"cleanup.policy": "delete", "retention.ms": "-1", "segment.bytes": "104857600"}
UPDATES_PER_SNAPSHOT = 500  # share.coordinator.snapshot.update.records.per.snapshot
PRUNE_INTERVAL_MS = 300_000  # share.coordinator.state.topic.prune.interval.ms

Key = tuple[str, uuid.UUID, int]


def share_state_key(group_id: str, topic_id: uuid.UUID, partition: int) -> str:
    """The string Kafka hashes to place a share-partition's state (SharePartitionKey.asCoordinatorKey)."""
    return f"{group_id}:{topic_id_string(topic_id)}:{partition}"


def topic_id_string(topic_id: uuid.UUID) -> str:
    """Kafka's Uuid.toString: the 16 bytes in URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(topic_id.bytes).rstrip(b"=").decode()


def parse_share_state_key(key: str) -> Key | None:
    """(group id, topic id, partition) of a "groupId:topicId:partition" key; None when it is malformed."""
    parts = key.rsplit(":", 2)
    if len(parts) != 3 or not parts[0] or len(parts[1]) != 22:
        return None
    try:
        topic_id = uuid.UUID(bytes=base64.urlsafe_b64decode(parts[1] + "=="))
        partition = int(parts[2])
    except ValueError:
        return None
    return (parts[0], topic_id, partition) if partition >= 0 else None


class ShareCoordinator:
    """One shard: the share-partitions whose state hashes onto one partition of ``__share_group_state``."""

    def __init__(self, coordinator_log: CoordinatorLog, clock=None, updates_per_snapshot: int = UPDATES_PER_SNAPSHOT,
                 prune_interval_ms: int = PRUNE_INTERVAL_MS) -> None:
        self.log = coordinator_log
        self.states: dict[Key, SR.ShareState] = {}
        self.update_counts: dict[Key, int] = {}  # updates written since the key's last snapshot
        self.snapshot_offsets: dict[Key, int] = {}  # the offset of each live key's last snapshot
        self.updates_per_snapshot = updates_per_snapshot
        self.clock = clock
        self.prune_interval_ms = prune_interval_ms
        self._prune_timer = None
        self.closed = False

    def load(self) -> None:
        self.log.replay(self._replay)
        if self.clock is not None and self.prune_interval_ms > 0:
            self._prune_timer = self.clock.call_later(self.prune_interval_ms, self._on_prune)

    def _replay(self, offset: int, key: bytes, value: bytes | None) -> None:
        try:
            record_type, group_id, topic_id, partition = SR.decode_share_key(key)
            k = (group_id, topic_id, partition)
            if value is None:
                self._forget(k)
                return
            decoded = SR.decode_share_value(record_type, value)
        except (SR.UnknownShareRecord, ValueError, IndexError) as e:
            log.warning("%s offset %d skipped: %s", SHARE_STATE_TOPIC, offset, e)
            return
        if record_type == SR.SHARE_SNAPSHOT:
            self.states[k] = decoded
            self.update_counts[k] = 0
            self.snapshot_offsets[k] = offset
        elif k in self.states:
            self.states[k] = SR.merge_update(self.states[k], decoded)
            self.update_counts[k] = self.update_counts.get(k, 0) + 1

    def _forget(self, k: Key) -> None:
        self.states.pop(k, None)
        self.update_counts.pop(k, None)
        self.snapshot_offsets.pop(k, None)

    def read(self, key: Key) -> SR.ShareState | None:
        return self.states.get(key)

    def write(self, key: Key, state: SR.ShareState) -> int:
        """Writes a share-partition's whole state: a ShareUpdate of what changed, or a ShareSnapshot when
        Kafka's shard writes one (the module's docstring); returns the record's offset. Raises KafkaError or
        OSError, and then the shard's state is unchanged."""
        old = self.states.get(key)
        count = self.update_counts.get(key, 0)
        if (old is not None and old.state_epoch == state.state_epoch and count < self.updates_per_snapshot
                and self._updates_allowed()):
            batches = SR.changed_batches(old, state)
            if batches is not None:
                update = SR.ShareState(state.start_offset, -1, state.leader_epoch, old.snapshot_epoch, batches)
                merged = SR.merge_update(old, update)
                if SR.per_offset(merged) == SR.per_offset(state) and merged.start_offset == state.start_offset:
                    value = SR.update_value(update, SR.delivery_complete_count(state))
                    offset = self.log.append([(SR.share_key(SR.SHARE_UPDATE, *key), value)])
                    self.states[key] = merged  # what replaying the update gives
                    self.update_counts[key] = count + 1
                    return offset
        state.create_timestamp_ms = state.write_timestamp_ms = int(time.time() * 1000)  # Kafka's snapshot: both now
        state.snapshot_epoch = old.snapshot_epoch + 1 if old is not None else 0
        offset = self.log.append([(SR.share_key(SR.SHARE_SNAPSHOT, *key), SR.snapshot_value(state))])
        self.states[key] = state
        self.update_counts[key] = 0
        self.snapshot_offsets[key] = offset
        return offset

    def _updates_allowed(self) -> bool:
        """ShareUpdates need a topic that keeps every record (cleanup.policy delete); a compacted one (made by an
        earlier kbroker) would keep only the last update of each share-partition."""
        topic = self.log.partition.topic
        policy = (topic.configs.get("cleanup.policy") or "delete") if topic is not None else "delete"
        return "compact" not in policy

    def redundant_offset(self) -> int | None:
        """The offset before which no record is needed to load the live share-partitions: the oldest of their
        latest snapshots (None: no live share-partition, nothing to prune by; Kafka's lastRedundantOffset)."""
        return min(self.snapshot_offsets.values()) if self.snapshot_offsets else None

    def prune(self) -> int | None:
        """Deletes the records before ``redundant_offset`` (below the high watermark); the new log start
        offset, None when nothing was deleted."""
        offset = self.redundant_offset()
        p = self.log.partition
        if offset is None or not self._updates_allowed() or not p.is_leader:
            return None
        offset = min(offset, p.high_watermark)
        if offset <= p.log_start_offset:
            return None
        return p.delete_records_on_leader(offset)

    def _on_prune(self) -> None:
        if self.closed:
            return
        self._prune_timer = self.clock.call_later(self.prune_interval_ms, self._on_prune)
        try:
            self.prune()
        except (KafkaError, OSError) as e:
            log.warning("pruning %s-%d failed: %s", SHARE_STATE_TOPIC, self.log.partition.index, e)

    async def write_and_wait(self, key: Key, state: SR.ShareState) -> None:
        """``write``, answered once the record is replicated."""
        await self.log.wait_replicated(self.write(key, state))

    def delete(self, keys: list[Key]) -> int | None:
        """Tombstones for the share-partitions' state; the last offset, None when none had state."""
        present = [k for k in keys if k in self.states]
        if not present:
            return None
        offset = self.log.append([(SR.share_key(SR.SHARE_SNAPSHOT, *k), None) for k in present])
        for k in present:
            self._forget(k)
        return offset

    def close(self) -> None:
        self.closed = True
        if self._prune_timer is not None:
            self._prune_timer.cancel()
            self._prune_timer = None


class ShareCoordinatorService:
    """The shards of ``__share_group_state`` led here; each share-partition's state to the shard of its key."""

    def __init__(self, num_partitions: int, clock=None, updates_per_snapshot: int = UPDATES_PER_SNAPSHOT,
                 prune_interval_ms: int = PRUNE_INTERVAL_MS) -> None:
        self.num_partitions = num_partitions
        self.shards: CoordinatorShards[ShareCoordinator] = CoordinatorShards(
            SHARE_STATE_TOPIC, lambda index, clog: ShareCoordinator(clog, clock, updates_per_snapshot,
                                                                    prune_interval_ms))

    def partition_for(self, key: Key) -> int:
        return partition_for(share_state_key(*key), self.num_partitions)

    def on_topic(self, topic) -> None:
        if topic is not None and topic.partitions:
            self.num_partitions = len(topic.partitions)
        self.shards.on_topic(topic)

    def route(self, key: Key) -> ShareCoordinator:
        """The shard of the key; KafkaError COORDINATOR_LOAD_IN_PROGRESS while it loads, NOT_COORDINATOR when
        another broker leads its partition (or the topic does not exist yet)."""
        index = self.partition_for(key)
        shard = self.shards.shards.get(index)
        if shard is None:
            raise KafkaError(ErrorCode(self.shards.status(index)))
        return shard

    async def write(self, key: Key, state: SR.ShareState) -> None:
        await self.route(key).write_and_wait(key, state)

    def delete_topic(self, topic_id: uuid.UUID) -> None:
        """A deleted topic's share state goes from every shard led here, as tombstones (Kafka's group
        coordinator deletes it through the persister once the topic is gone); each shard's leader does its own."""
        for shard in list(self.shards.shards.values()):
            keys = [k for k in shard.states if k[1] == topic_id]
            if keys:
                try:
                    shard.delete(keys)
                except (KafkaError, OSError) as e:
                    log.warning("deleting the share state of deleted topic %s failed: %s", topic_id, e)

    def all_states(self):
        """(key, state) of every share-partition whose state is kept here."""
        for shard in list(self.shards.shards.values()):
            yield from shard.states.items()

    def close(self) -> None:
        self.shards.close()
