"""The share coordinator: share-partitions' durable state in ``__share_group_state`` (Kafka's ShareCoordinator,
ShareCoordinatorShard and the DefaultStatePersister's placement).

Placement. The state of share-partition (group, topic id, partition) lives in partition
``partition_for("group:topicId:partition", share.coordinator.state.topic.num.partitions)`` of the compacted
topic ``__share_group_state`` (50 partitions by default), with Kafka's key string and hash; the shard of that
partition's leader keeps it. As for the group coordinator, a shard is loaded from its partition's records when
this broker becomes its leader and unloaded when it stops being one (coordinator/runtime.py).

Records. Every write is one ShareSnapshot record (state_records.py) appended through ``Partition.append``;
a write is confirmed once ``CoordinatorLog.wait_replicated`` says the high watermark passed it. Deleting a
share group's state writes tombstones.

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

    def __init__(self, coordinator_log: CoordinatorLog) -> None:
        self.log = coordinator_log
        self.states: dict[Key, SR.ShareState] = {}
        self.closed = False

    def load(self) -> None:
        self.log.replay(self._replay)

    def _replay(self, offset: int, key: bytes, value: bytes | None) -> None:
        try:
            record_type, group_id, topic_id, partition = SR.decode_share_key(key)
            k = (group_id, topic_id, partition)
            if value is None:
                self.states.pop(k, None)
                return
            decoded = SR.decode_share_value(record_type, value)
        except (SR.UnknownShareRecord, ValueError, IndexError) as e:
            log.warning("%s offset %d skipped: %s", SHARE_STATE_TOPIC, offset, e)
            return
        if record_type == SR.SHARE_SNAPSHOT:
            self.states[k] = decoded
        elif k in self.states:
            self.states[k] = SR.merge_update(self.states[k], decoded)

    def read(self, key: Key) -> SR.ShareState | None:
        return self.states.get(key)

    def write(self, key: Key, state: SR.ShareState) -> int:
        """Appends the state as a ShareSnapshot; returns the record's offset. Raises KafkaError or OSError, and
        then the shard's state is unchanged."""
        now = int(time.time() * 1000)
        old = self.states.get(key)
        state.create_timestamp_ms = old.create_timestamp_ms if old is not None else now
        state.write_timestamp_ms = now
        state.snapshot_epoch = old.snapshot_epoch + 1 if old is not None else 0
        offset = self.log.append([(SR.share_key(SR.SHARE_SNAPSHOT, *key), SR.snapshot_value(state))])
        self.states[key] = state
        return offset

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
            del self.states[k]
        return offset

    def close(self) -> None:
        self.closed = True


class ShareCoordinatorService:
    """The shards of ``__share_group_state`` led here; each share-partition's state to the shard of its key."""

    def __init__(self, num_partitions: int) -> None:
        self.num_partitions = num_partitions
        self.shards: CoordinatorShards[ShareCoordinator] = CoordinatorShards(
            SHARE_STATE_TOPIC, lambda index, clog: ShareCoordinator(clog))

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

    def all_states(self):
        """(key, state) of every share-partition whose state is kept here."""
        for shard in list(self.shards.shards.values()):
            yield from shard.states.items()

    def close(self) -> None:
        self.shards.close()
