"""Topics: names, ids, partition counts and config overrides, kept in the topic store (topic_store.py).

Kafka's rules for names (``Topic.validate``): 1 to 249 characters from ``[a-zA-Z0-9._-]``, not ``.`` or
``..``. Metric names make '.' and '_' the same character, so a name colliding with an existing topic's that
way (``a.b`` and ``a_b``) is refused as Kafka's controller refuses it (ReplicationControlManager
.validateNewTopicNames): INVALID_TOPIC_EXCEPTION naming the least colliding topic. A topic is created with a random id (the ids Fetch v13+ and DeleteTopics v6 use) and one partition
log per partition in the log store.
"""

from __future__ import annotations

import logging
import re
import uuid
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


class TopicManager:
    """All topics of the broker; persisted through the metadata store on every change."""

    def __init__(self, topic_store, log_store, defaults: dict[str, str], changes=None):
        self.changes = changes  # notified on every append (the control plane's wait)
        self.topic_store = topic_store
        self.log_store = log_store
        self.defaults = defaults
        self.by_name: dict[str, Topic] = {}
        self.by_id: dict[uuid.UUID, Topic] = {}
        self._colliding: dict[str, set[str]] = {}  # collision_key -> names of topics that have it
        self._doc: dict = {}

    def load(self) -> None:
        self._doc = self.topic_store.load()
        for name, t in self._doc.get("topics", {}).items():
            topic = Topic(name, uuid.UUID(t["id"]), dict(t.get("configs", {})), defaults=self.defaults)
            self._open_partitions(topic, t["partitions"])
            self._index(topic)

    def _open_partitions(self, topic: Topic, count: int) -> None:
        cfg = topic.log_config()
        for i in range(len(topic.partitions), count):
            plog = self.log_store.open_log(topic.name, topic.topic_id, i, cfg)
            topic.partitions.append(Partition(topic, i, plog, changes=self.changes))

    def _index(self, topic: Topic) -> None:
        self.by_name[topic.name] = topic
        self.by_id[topic.topic_id] = topic
        key = collision_key(topic.name)
        if key is not None:
            self._colliding.setdefault(key, set()).add(topic.name)

    def _check_collision(self, name: str) -> None:
        key = collision_key(name)
        names = self._colliding.get(key) if key is not None else None
        if names:
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                             f"Topic '{name}' collides with existing topic: {min(names)}")

    def _persist(self) -> None:
        self._doc["topics"] = {
            t.name: {"id": str(t.topic_id), "partitions": len(t.partitions), "configs": t.configs}
            for t in self.by_name.values()
        }
        self.topic_store.save(self._doc)

    @property
    def doc(self) -> dict:
        """The metadata document, for other broker-wide facts (the cluster id) kept beside the topics."""
        return self._doc

    def save_doc(self) -> None:
        self._persist()

    def get(self, name: str) -> Topic | None:
        return self.by_name.get(name)

    def create(self, name: str, num_partitions: int, configs: dict[str, str] | None = None,
               validate_only: bool = False) -> Topic:
        validate_topic_name(name)
        if name in self.by_name:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        self._check_collision(name)
        if num_partitions <= 0:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
        topic = Topic(name, uuid.uuid4(), dict(configs or {}), defaults=self.defaults)
        if validate_only:
            return topic
        self._open_partitions(topic, num_partitions)
        self._index(topic)
        self._persist()
        log.info("created topic %s with %d partitions", name, num_partitions)
        return topic

    def add_partitions(self, topic: Topic, count: int) -> None:
        self._open_partitions(topic, count)
        self._persist()

    def delete(self, topic: Topic) -> None:
        del self.by_name[topic.name]
        del self.by_id[topic.topic_id]
        key = collision_key(topic.name)
        if key is not None:
            self._colliding[key].discard(topic.name)
            if not self._colliding[key]:
                del self._colliding[key]
        self._persist()
        for p in topic.partitions:
            p.log.close()
            self.log_store.delete_log(topic.name, topic.topic_id, p.index)
            p.wake_waiters()
        log.info("deleted topic %s", topic.name)

    def set_configs(self, topic: Topic, configs: dict[str, str]) -> None:
        topic.configs = configs
        self._persist()
