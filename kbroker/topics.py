"""Topics: names, ids, partition counts and config overrides, kept in the topic store (topic_store.py).

Kafka's rules for names (``Topic.validate``): 1 to 249 characters from ``[a-zA-Z0-9._-]``, not ``.`` or
``..``. Metric names make '.' and '_' the same character, so a name colliding with an existing topic's that
way (``a.b`` and ``a_b``) is refused as Kafka's controller refuses it (ReplicationControlManager
.validateNewTopicNames): INVALID_TOPIC_EXCEPTION naming the least colliding topic. A topic is created with a random id (the ids Fetch v13+ and DeleteTopics v6 use) and one partition
log per partition in the log store.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .errors import ErrorCode, KafkaError
from .partition import Partition
from .storage.base import LogConfig
from .topic_config import TOPIC_CONFIGS

log = logging.getLogger("kbroker.topics")

MAX_NAME_LENGTH = 249
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


def collision_key(name: str) -> str | None:
    """The name with '.' as '_' (Kafka's Topic.unifyCollisionChars); None when it has neither."""
    if "." not in name and "_" not in name:
        return None
    return name.replace(".", "_")


def validate_topic_name(name: str | None) -> None:
    if not name:
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name cannot be \".\" or \"..\"")
    if len(name) > MAX_NAME_LENGTH:
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                         f"Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters")
    if not _LEGAL.match(name):
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                         f"Topic name \"{name}\" is illegal, it contains a character other than "
                         "ASCII alphanumerics, '.', '_' and '-'")


@dataclass
class Topic:
    name: str
    topic_id: uuid.UUID
    configs: dict[str, str]  # overrides only
    partitions: list[Partition] = field(default_factory=list)
    defaults: dict[str, str] = field(default_factory=dict)  # broker-level defaults, shared

    def config(self, key: str) -> str:
        v = self.configs.get(key)
        if v is not None:
            return v
        v = self.defaults.get(key)
        if v is not None:
            return v
        return TOPIC_CONFIGS[key].default

    @property
    def max_message_bytes(self) -> int:
        return int(self.config("max.message.bytes"))

    @property
    def log_append_time(self) -> bool:
        return self.config("message.timestamp.type") == "LogAppendTime"

    @property
    def is_internal(self) -> bool:
        return self.name in INTERNAL_TOPICS

    def log_config(self) -> LogConfig:
        return LogConfig.from_topic_config(self.config)


# Partitions opened per turn of the event loop when an admin request creates many: about 0.1 s of work
# here, so that one request for 10,000 partitions does not stop every other client for seconds.
PARTITIONS_PER_TURN = 200


def run_steps(steps: Generator):
    """Run a generator of steps to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


async def run_in_turns(topics: "TopicManager", steps: Generator, per_turn: int = PARTITIONS_PER_TURN):
    """Run a generator of steps, giving the event loop a turn after every ``per_turn`` of them. The
    changes of each stretch reach the metadata store before the loop turns, so no other request's change
    waits in this one's batch; the last stretch's are durable before the value is returned."""
    while True:
        with topics.batch():
            try:
                for _ in range(per_turn):
                    next(steps)
            except StopIteration as done:
                return done.value
        await asyncio.sleep(0)


class TopicManager:
    """All topics of the broker; every change is recorded in the metadata store before it is answered.

    Changes made inside ``with topics.batch():`` (one admin request) reach the store together, in one
    append and one fsync; outside a batch each change is appended at once.

    Creating many partitions (``creation`` below) is done in steps, so that a handler can let the event
    loop serve others between them. Meanwhile the topic's name is reserved (``pending``): it is not yet
    in ``by_name``, so Metadata, Produce and Fetch do not see it, and a second creation of the same name
    is refused. A creation that fails part way removes the partition logs it made, so nothing half
    created stays behind, on disk or in the metadata.

    ``version`` counts changes to the set of topics and their partition counts; the Metadata handler
    keeps its all-topics answer while it is unchanged.
    """

    def __init__(self, topic_store, log_store, defaults: dict[str, str], changes=None):
        self.changes = changes  # notified on every append (the control plane's wait)
        self.topic_store = topic_store
        self.log_store = log_store
        self.defaults = defaults
        self.by_name: dict[str, Topic] = {}
        self.by_id: dict[uuid.UUID, Topic] = {}
        self.pending: set[str] = set()
        self.version = 0
        self._colliding: dict[str, set[str]] = {}  # collision_key -> names of topics that have it
        self._doc: dict = {}
        self._saved_facts: dict = {}
        self._batch: list[dict] | None = None
        self._after_batch: list = []  # what must wait until the batch is durable (removing logs)

    def load(self) -> None:
        self._doc = self.topic_store.load()
        for name, t in self._doc.get("topics", {}).items():
            topic = Topic(name, uuid.UUID(t["id"]), dict(t.get("configs", {})), defaults=self.defaults)
            self._open_partitions(topic, t["partitions"])
            self._index(topic)
        self._doc.pop("topics", None)  # kept in by_name from here on
        self._saved_facts = copy.deepcopy(self._doc)
        self.version += 1

    def _open_partitions(self, topic: Topic, count: int) -> None:
        run_steps(self._open_partitions_steps(topic, count))

    def _open_partitions_steps(self, topic: Topic, count: int) -> Iterator[None]:
        """Open partition logs up to ``count``, yielding after each; the topic gets them all at the end.
        On a failure the logs opened here are closed and removed again before the error goes on."""
        cfg = topic.log_config()
        first = len(topic.partitions)
        new: list[Partition] = []
        try:
            for i in range(first, count):
                plog = self.log_store.open_log(topic.name, topic.topic_id, i, cfg)
                new.append(Partition(topic, i, plog, changes=self.changes))
                yield
        except BaseException:
            for p in new:
                p.log.close()
            # One more than were opened: the one whose opening failed may have made its directory.
            for i in range(first, first + len(new) + 1):
                try:
                    self.log_store.delete_log(topic.name, topic.topic_id, i)
                except Exception:  # noqa: BLE001  the first error is the one to report
                    log.exception("%s-%d: could not remove the log of a failed creation", topic.name, i)
            raise
        topic.partitions.extend(new)

    def _index(self, topic: Topic) -> None:
        self.by_name[topic.name] = topic
        self.by_id[topic.topic_id] = topic
        self.version += 1
        key = collision_key(topic.name)
        if key is not None:
            self._colliding.setdefault(key, set()).add(topic.name)

    def _check_collision(self, name: str) -> None:
        key = collision_key(name)
        names = self._colliding.get(key) if key is not None else None
        if names:
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                             f"Topic '{name}' collides with existing topic: {min(names)}")

    # -- persistence ----------------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Changes made inside reach the metadata store together, when the block ends."""
        if self._batch is not None:
            yield
            return
        self._batch, self._after_batch = [], []
        try:
            yield
        finally:
            changes, self._batch = self._batch, None
            after, self._after_batch = self._after_batch, []
            self.topic_store.append(changes)
            for action in after:
                action()

    def _record(self, change: dict) -> None:
        if self._batch is not None:
            self._batch.append(change)
        else:
            self.topic_store.append([change])

    def _record_topic(self, topic: Topic) -> None:
        self._record({"op": "topic", "name": topic.name, "value": {
            "id": str(topic.topic_id), "partitions": len(topic.partitions), "configs": dict(topic.configs)}})

    @property
    def doc(self) -> dict:
        """Broker-wide facts kept beside the topics (the cluster id, the producer id block); after changing
        one, call ``save_doc``."""
        return self._doc

    def save_doc(self) -> None:
        for key, value in self._doc.items():
            if key not in self._saved_facts or self._saved_facts[key] != value:
                self._record({"op": "set", "key": key, "value": copy.deepcopy(value)})
                self._saved_facts[key] = copy.deepcopy(value)

    # -- changes --------------------------------------------------------------------------------------

    def get(self, name: str) -> Topic | None:
        return self.by_name.get(name)

    def create(self, name: str, num_partitions: int, configs: dict[str, str] | None = None,
               validate_only: bool = False) -> Topic:
        with self.batch():
            return run_steps(self.creation(name, num_partitions, configs, validate_only))

    def creation(self, name: str, num_partitions: int, configs: dict[str, str] | None = None,
                 validate_only: bool = False) -> Generator[None, None, Topic]:
        """Create a topic one partition per step: a generator to run to its end (``run_steps``,
        ``run_in_turns``), which returns the topic; the name is reserved while it runs. Raises
        KafkaError when the topic cannot be created."""
        validate_topic_name(name)
        if name in self.by_name or name in self.pending:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        self._check_collision(name)
        if num_partitions <= 0:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
        topic = Topic(name, uuid.uuid4(), dict(configs or {}), defaults=self.defaults)
        if validate_only:
            return topic
        self.pending.add(name)
        try:
            try:
                yield from self._open_partitions_steps(topic, num_partitions)
            except OSError as e:
                raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR,
                                 f"Could not create the partition logs of '{name}': {e.strerror}") from e
            self._index(topic)
            self._record_topic(topic)
        finally:
            self.pending.discard(name)
        log.info("created topic %s with %d partitions", name, num_partitions)
        return topic

    def add_partitions(self, topic: Topic, count: int) -> None:
        with self.batch():
            run_steps(self.partition_growth(topic, count))

    def partition_growth(self, topic: Topic, count: int) -> Generator[None, None, None]:
        """Grow ``topic`` to ``count`` partitions, one per step (see ``creation``); all or none. The new
        partitions appear when all are open."""
        if topic.name in self.pending:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                             f"Partitions are being added to '{topic.name}' by another request.")
        self.pending.add(topic.name)
        try:
            steps = self._open_partitions_steps(topic, count)
            try:
                for _ in steps:
                    yield
                    if self.by_name.get(topic.name) is not topic:  # deleted meanwhile
                        steps.throw(KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                               f"The topic '{topic.name}' was deleted."))
            except OSError as e:
                raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR,
                                 f"Could not create the partition logs of '{topic.name}': {e.strerror}") from e
        finally:
            self.pending.discard(topic.name)
        self.version += 1
        self._record_topic(topic)

    def delete(self, topic: Topic) -> None:
        del self.by_name[topic.name]
        del self.by_id[topic.topic_id]
        self.version += 1
        self._record({"op": "delete_topic", "name": topic.name})
        key = collision_key(topic.name)
        if key is not None:
            self._colliding[key].discard(topic.name)
            if not self._colliding[key]:
                del self._colliding[key]
        for p in topic.partitions:
            p.log.close()
            p.wake_waiters()

        def remove_logs() -> None:  # once the deletion is durable: a crash before it keeps the data
            for p in topic.partitions:
                self.log_store.delete_log(topic.name, topic.topic_id, p.index)
        if self._batch is not None:
            self._after_batch.append(remove_logs)
        else:
            remove_logs()
        log.info("deleted topic %s", topic.name)

    def set_configs(self, topic: Topic, configs: dict[str, str]) -> None:
        topic.configs = configs
        self._record_topic(topic)
