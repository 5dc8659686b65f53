"""Topics: names, ids, partition counts and config overrides, as this broker sees them; the controller
(controller.py) owns and keeps them (in the topic store, topic_store.py, for the in-process controller).

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
    """The broker's image of the cluster's topics, kept current by the controller (controller.py): every
    change is asked of the controller, which applies it and tells every broker (``apply`` / ``remove``).
    A broker opens a log only for the partitions it is a replica of."""

    def __init__(self, controller, node_id: int, log_store, defaults: dict[str, str], changes=None):
        self.changes = changes  # notified on every append (the control plane's wait)
        self.controller = controller
        self.node_id = node_id
        self.log_store = log_store
        self.defaults = defaults
        self.by_name: dict[str, Topic] = {}
        self.by_id: dict[uuid.UUID, Topic] = {}
        self._colliding: dict[str, set[str]] = {}  # collision_key -> names of topics that have it (the image's)

    # -- the controller's changes, applied to this broker's image ------------------------------------------

    def apply(self, reg) -> Topic:
        """A topic's registration (controller.TopicRegistration), new or changed."""
        topic = self.by_name.get(reg.name)
        if topic is not None and topic.topic_id != reg.topic_id:
            self.remove(topic)
            topic = None
        if topic is None:
            topic = Topic(reg.name, reg.topic_id, dict(reg.configs), defaults=self.defaults)
            self._index(topic)
        elif topic.configs != reg.configs:
            topic.configs = dict(reg.configs)
            cfg = topic.log_config()
            for p in topic.partitions:
                if p.log is not None:
                    p.log.config = cfg
        cfg = None
        for i, preg in enumerate(reg.partitions):
            if i < len(topic.partitions):
                topic.partitions[i].update(preg)
                continue
            store = None
            if self.node_id in preg.replicas:
                cfg = cfg or topic.log_config()
                store = self.log_store.open_log(topic.name, topic.topic_id, i, cfg)
            topic.partitions.append(Partition(topic, i, store, changes=self.changes, node_id=self.node_id,
                                              registration=preg))
        return topic

    def remove(self, topic: Topic) -> None:
        """A deleted topic: its local logs are deleted and whoever waits on it answers."""
        if self.by_name.get(topic.name) is topic:
            del self.by_name[topic.name]
            self.by_id.pop(topic.topic_id, None)
            key = collision_key(topic.name)
            if key is not None:
                self._colliding[key].discard(topic.name)
                if not self._colliding[key]:
                    del self._colliding[key]
        for p in topic.partitions:
            if p.log is not None:
                p.log.close()
                self.log_store.delete_log(topic.name, topic.topic_id, p.index)
            p.wake_waiters()

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

    # -- reads and the changes asked of the controller -----------------------------------------------------

    def get(self, name: str) -> Topic | None:
        return self.by_name.get(name)

    def create(self, name: str, num_partitions: int, configs: dict[str, str] | None = None,
               validate_only: bool = False, replication_factor: int = 1,
               assignments: list[list[int]] | None = None) -> Topic:
        validate_topic_name(name)
        if name in self.by_name:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        self._check_collision(name)
        reg = self.controller.create_topic(name, num_partitions, replication_factor, assignments,
                                           dict(configs or {}), validate_only=validate_only)
        if validate_only:
            return Topic(name, reg.topic_id, dict(reg.configs), defaults=self.defaults)
        return self.by_name[name]

    def add_partitions(self, topic: Topic, count: int, assignments: list[list[int]] | None = None,
                       validate_only: bool = False) -> None:
        self.controller.create_partitions(topic.name, count, assignments, validate_only=validate_only)

    def delete(self, topic: Topic) -> None:
        self.controller.delete_topic(topic.name)

    def set_configs(self, topic: Topic, configs: dict[str, str]) -> None:
        self.controller.set_topic_configs(topic.name, configs)

    def local_partitions(self):
        """The partitions this broker holds a log of (leader or not)."""
        for topic in list(self.by_name.values()):
            for p in topic.partitions:
                if p.log is not None:
                    yield p
