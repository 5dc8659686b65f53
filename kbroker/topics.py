"""Topics: names, ids, partition counts and config overrides, as this broker sees them; the controller
(controller.py) owns and keeps them (in the topic store, topic_store.py, for the in-process controller).

Kafka's rules for names (``Topic.validate``): 1 to 249 characters from ``[a-zA-Z0-9._-]``, not ``.`` or
``..``. Metric names make '.' and '_' the same character, so a name colliding with an existing topic's that
way (``a.b`` and ``a_b``) is refused as Kafka's controller refuses it (ReplicationControlManager
.validateNewTopicNames): INVALID_TOPIC_EXCEPTION naming the least colliding topic. A topic is created with a random id (the ids Fetch v13+ and DeleteTopics v6 use) and one partition
log per partition in the log store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

from .controller import PartitionRegistration, run_now
from .errors import ErrorCode, KafkaError
from .partition import Partition
from .schema_registry.wire_format import KEY_CONFIG as KEY_VALIDATION
from .schema_registry.wire_format import VALUE_CONFIG as VALUE_VALIDATION
from .storage.base import LogConfig
from .topic_config import TOPIC_CONFIGS

log = logging.getLogger("kbroker.topics")

MAX_NAME_LENGTH = 249
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state"})


def collision_key(name: str) -> str | None:
    """The name with '.' as '_' (Kafka's Topic.unifyCollisionChars); None when it has neither."""
    if "." not in name and "_" not in name:
        return None
    return name.replace(".", "_")


def validate_topic_name(name: str | None) -> None:
    """Kafka's Topic.validate, with the messages the controller's CreateTopics answers with."""
    if not name:
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name is invalid: the empty string is not allowed")
    if name in (".", ".."):
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic name is invalid: '{name}' is not allowed")
    if len(name) > MAX_NAME_LENGTH:
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic name is invalid: the length of '{name}' is "
                                                            f"longer than the max allowed length {MAX_NAME_LENGTH}")
    if not _LEGAL.match(name):
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                         f"Topic name is invalid: '{name}' contains one or more characters other than "
                         "ASCII alphanumerics, '.', '_' and '-'")


class TopicDefaults(dict):
    """The broker-level topic config defaults every topic shares, counting its changes in ``version`` so that
    a topic's cached settings (``Topic.produce_settings``) see a dynamic broker config change at once."""

    version = 0

    def _changed(self):
        self.version += 1

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key):
        super().__delitem__(key)
        self._changed()

    def __ior__(self, other):
        self.update(other)
        return self

    def update(self, *args, **kwargs):
        super().update(*args, **kwargs)
        self._changed()

    def clear(self):
        super().clear()
        self._changed()

    def pop(self, *args):
        self._changed()
        return super().pop(*args)

    def popitem(self):
        self._changed()
        return super().popitem()

    def setdefault(self, key, default=None):
        self._changed()
        return super().setdefault(key, default)


@dataclass(frozen=True, slots=True)
class ProduceSettings:
    """The topic configs every Produce reads, parsed once per config change (issue 17: seven lookups a
    request otherwise)."""
    schema_validation: bool  # confluent.{key,value}.schema.validation (schema_registry/wire_format.py)
    max_message_bytes: int
    log_append_time: bool
    compacted: bool
    timestamp_bounds: tuple[int, int]  # message.timestamp.{before,after}.max.ms (CreateTime only)


@dataclass
class Topic:
    name: str
    topic_id: uuid.UUID
    configs: dict[str, str]  # overrides only; replaced, never changed in place (see produce_settings)
    partitions: list[Partition] = field(default_factory=list)
    defaults: dict[str, str] = field(default_factory=dict)  # broker-level defaults, shared
    # (configs dict, defaults version, settings): valid while both are the same (TopicDefaults only)
    _produce_settings: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def config(self, key: str) -> str:
        v = self.configs.get(key)
        if v is not None:
            return v
        v = self.defaults.get(key)
        if v is not None:
            return v
        return TOPIC_CONFIGS[key].default

    def produce_settings(self) -> ProduceSettings:
        """The configs a Produce reads, cached until ``configs`` is replaced (AlterConfigs,
        IncrementalAlterConfigs, a metadata image) or the broker defaults change; defaults that are a
        plain dict (no version) are read every time."""
        cached = self._produce_settings
        defaults = self.defaults
        version = defaults.version if type(defaults) is TopicDefaults else None
        if cached is not None and cached[0] is self.configs and cached[1] == version and version is not None:
            return cached[2]
        config = self.config
        settings = ProduceSettings(
            schema_validation="true" in (config(VALUE_VALIDATION), config(KEY_VALIDATION)),
            max_message_bytes=int(config("max.message.bytes")),
            log_append_time=config("message.timestamp.type") == "LogAppendTime",
            compacted="compact" in config("cleanup.policy"),
            timestamp_bounds=(int(config("message.timestamp.before.max.ms")),
                              int(config("message.timestamp.after.max.ms"))))
        self._produce_settings = (self.configs, version, settings)
        return settings

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


# Partitions opened per turn of the event loop when an admin request creates many (a request for fewer is
# done at once), and the most time one turn may take (checked after each step), so that one request for
# 10,000 partitions does not stop every other client for seconds. Each turn's changes are one append to the
# metadata store.
PARTITIONS_PER_TURN = 200
TURN_SECONDS = 0.03


# A generator of steps yields None after a step, or a controller change (a coroutine) whose result (or
# error) it is sent back: the changes are awaited by ``run_in_turns``, run at once by ``run_steps``.

def run_steps(steps: Generator):
    """Run a generator of steps to its end; its return value. Its controller changes must complete at once
    (``controller.run_now``: the in-process controller's)."""
    return run_now(_drive(steps, contextlib.nullcontext, None))


async def run_in_turns(topics: "TopicManager", steps: Generator, per_turn: int = PARTITIONS_PER_TURN):
    """Run a generator of steps, giving the event loop a turn after every ``per_turn`` of them, and awaiting
    its controller changes. The changes of each stretch reach the metadata store before the loop turns, so
    no other request's change waits in this one's batch; the last stretch's are durable before the value is
    returned."""
    return await _drive(steps, topics.batch, per_turn)


async def _drive(steps: Generator, batch, per_turn: int | None):
    """The steps in stretches of ``per_turn`` (None: one stretch), each inside ``batch()``, the loop given a
    turn between them; a change the generator yields is awaited and its result (or error) sent back."""
    sent, error = None, None
    while True:
        with batch():
            deadline = time.perf_counter() + TURN_SECONDS
            for _ in itertools.repeat(None) if per_turn is None else range(per_turn):
                try:
                    change = steps.send(sent) if error is None else steps.throw(error)
                except StopIteration as done:
                    return done.value
                sent, error = None, None
                if change is not None:
                    try:
                        sent = await change
                    except Exception as e:  # noqa: BLE001  into the generator, which cleans up and raises it
                        error = e
                if per_turn is not None and time.perf_counter() >= deadline:
                    break
        await asyncio.sleep(0)


class TopicManager:
    """The broker's image of the cluster's topics, kept current by the controller (controller.py): every
    change is asked of the controller, which records it and tells every broker (``apply`` / ``remove``).
    A broker opens a log only for the partitions it is a replica of.

    Changes made inside ``with topics.batch():`` (one admin request) reach the controller's store together,
    in one append and one fsync; outside a batch each change is appended at once.

    Creating many partitions (``creation`` below) is done in steps, so that a handler can let the event
    loop serve others between them: the controller places the partitions first (validation only), this
    broker opens its logs one per step, and the controller is asked to create the topic at the end, when
    ``apply`` takes the logs already open. Meanwhile the topic's name is reserved (``pending``): it is not
    yet in ``by_name``, so Metadata, Produce and Fetch do not see it, and a second creation of the same name
    is refused. A creation that fails part way removes the partition logs it made, so nothing half created
    stays behind, on disk or in the metadata.

    ``version`` counts changes to what the Metadata answer says of topics (the set of topics, their
    partitions, leaders and ISR) and of the brokers (``BrokerState.on_brokers_change``); the Metadata
    handler keeps its all-topics answer while it is unchanged.
    """

    def __init__(self, controller, node_id: int, log_store, defaults: dict[str, str], changes=None):
        self.changes = changes  # notified on every append (the control plane's wait)
        self.controller = controller
        self.node_id = node_id
        self.log_store = log_store
        # TopicDefaults counts its changes for the topics' cached settings (a plain dict given is copied into one)
        self.defaults = defaults if type(defaults) is TopicDefaults else TopicDefaults(defaults)
        self.by_name: dict[str, Topic] = {}
        self.by_id: dict[uuid.UUID, Topic] = {}
        self.pending: set[str] = set()
        self.version = 0
        self._colliding: dict[str, set[str]] = {}  # collision_key -> names of topics that have it (the image's)
        self._prepared: dict[tuple[uuid.UUID, int], object] = {}  # logs a creation opened, for ``apply``
        # A creation's partitions of those logs and their topic, made in its steps too (making 10,000 at once
        # in ``apply`` held the loop for a quarter of a second), each with the registration the controller's
        # validation built and its creation normally keeps: ``apply`` gives them the controller's state if it
        # is another.
        self._prebuilt: dict[tuple[uuid.UUID, int], tuple[PartitionRegistration, Partition]] = {}
        self._prebuilt_topics: dict[uuid.UUID, Topic] = {}
        self._creating: dict[str, uuid.UUID] = {}  # name -> the topic id this broker's creation of it prepares
        # Called with a local partition whose leadership changed (the replica fetcher manager's hook).
        self.on_follower_change = None

    # -- the controller's changes, applied to this broker's image ------------------------------------------

    def apply(self, reg) -> Topic:
        """A topic's registration (controller.TopicRegistration), new or changed."""
        self.version += 1
        topic = self.by_name.get(reg.name)
        if topic is not None and topic.topic_id != reg.topic_id:
            self.remove(topic)
            topic = None
        if topic is None:
            self._drop_lost_creation(reg.name, reg.topic_id)
            topic = self._prebuilt_topics.pop(reg.topic_id, None)
            if topic is None or topic.name != reg.name:
                topic = Topic(reg.name, reg.topic_id, dict(reg.configs), defaults=self.defaults)
            self._index(topic)
        if topic.configs != reg.configs:
            topic.configs = dict(reg.configs)
            cfg = topic.log_config()
            for p in topic.partitions:
                if p.log is not None:
                    p.log.config = cfg
        cfg = None
        for i, preg in enumerate(reg.partitions):
            if i < len(topic.partitions):
                self._update_partition(topic, topic.partitions[i], preg)
                continue
            store = None
            if self.node_id in preg.replicas:
                built_from, p = self._prebuilt.pop((topic.topic_id, i), (None, None))
                store = self._prepared.pop((topic.topic_id, i), None)
                if p is not None and p.topic is topic and store is not None:
                    if preg is not built_from:  # the controller's state is not the one it was made in
                        p.update(preg)
                    self._adopt(topic, p)
                    continue
                if store is None:
                    cfg = cfg or topic.log_config()
                    store = self.log_store.open_log(topic.name, topic.topic_id, i, cfg)
            self._adopt(topic, Partition(topic, i, store, changes=self.changes, node_id=self.node_id,
                                         registration=preg, controller=self.controller))
        return topic

    def _adopt(self, topic: Topic, p: Partition) -> None:
        """A new partition of ``topic``, in the controller's state: the replica fetcher learns of it."""
        topic.partitions.append(p)
        if p.log is not None and self.on_follower_change is not None:
            p.on_follower_change = self.on_follower_change
            if p.is_follower:
                self.on_follower_change(p)

    def _update_partition(self, topic: Topic, p: Partition, preg) -> None:
        """The controller's newer state of a partition this broker knows; a reassignment may have made this
        broker one of its replicas (a log is opened and it fetches) or no longer one (the log goes, once the
        change is durable)."""
        mine = self.node_id in preg.replicas
        if mine and p.log is None:
            p.open_replica(self.log_store.open_log(topic.name, topic.topic_id, p.index, topic.log_config()))
            p.on_follower_change = self.on_follower_change
            log.info("%s-%d: now a replica here (reassignment)", topic.name, p.index)
        elif not mine and p.log is not None:
            p.close_replica()
            name, topic_id, index = topic.name, topic.topic_id, p.index
            self.controller.after_durable(lambda: self.log_store.delete_logs(name, topic_id, [index]))
            log.info("%s-%d: no longer a replica here (reassignment): its log is deleted", topic.name, p.index)
        p.update(preg)

    def remove(self, topic: Topic) -> None:
        """A deleted topic: whoever waits on it answers, and its local logs are deleted once the deletion is
        durable (a crash before it keeps the data)."""
        self.version += 1
        if self.by_name.get(topic.name) is topic:
            del self.by_name[topic.name]
            self.by_id.pop(topic.topic_id, None)
            key = collision_key(topic.name)
            if key is not None:
                self._colliding[key].discard(topic.name)
                if not self._colliding[key]:
                    del self._colliding[key]
        local = [p.index for p in topic.partitions if p.log is not None]
        for p in topic.partitions:
            if p.log is not None:
                p.log.discard()  # no flush nor seal: the files are about to go
            p.deleted = True
            p.wake_waiters()

        def remove_logs() -> None:
            # Renamed at once (one directory fsync for all), the files removed later off the loop.
            self.log_store.delete_logs(topic.name, topic.topic_id, local)
        self.controller.after_durable(remove_logs)

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

    def batch(self):
        """Changes made inside reach the controller's store together, when the block ends."""
        return self.controller.batch()

    def get(self, name: str) -> Topic | None:
        return self.by_name.get(name)

    def create(self, name: str, num_partitions: int, configs: dict[str, str] | None = None,
               validate_only: bool = False, replication_factor: int = 1,
               assignments: list[list[int]] | None = None) -> Topic:
        with self.batch():
            return run_steps(self.creation(name, num_partitions, configs, validate_only, replication_factor,
                                           assignments))

    def creation(self, name: str, num_partitions: int, configs: dict[str, str] | None = None,
                 validate_only: bool = False, replication_factor: int = 1,
                 assignments: list[list[int]] | None = None) -> Generator[None, None, Topic]:
        """Create a topic one local partition log per step: a generator to run to its end (``run_steps``,
        ``run_in_turns``), which returns the topic; the name is reserved while it runs. Raises
        KafkaError when the topic cannot be created."""
        validate_topic_name(name)
        if name in self.by_name or name in self.pending:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        self._check_collision(name)
        configs = dict(configs or {})
        reg = yield self.controller.create_topic(name, num_partitions, replication_factor, assignments, configs,
                                                 validate_only=True)
        if validate_only:
            return Topic(name, reg.topic_id, dict(reg.configs), defaults=self.defaults)
        prepared = reg.partitions  # what the controller creates: built once, by the validation
        topic_id = uuid.uuid4()
        self.pending.add(name)
        self._creating[name] = topic_id
        try:
            opened = yield from self._prepare_logs(name, topic_id, configs, prepared, 0)
            try:
                yield self.controller.create_topic(name, len(prepared), replication_factor, None, configs,
                                                   topic_id=topic_id, prepared=prepared)
            finally:
                self._discard_prepared(name, topic_id, opened)
        finally:
            self.pending.discard(name)
            self._creating.pop(name, None)
        return self.by_name[name]

    def add_partitions(self, topic: Topic, count: int, assignments: list[list[int]] | None = None,
                       validate_only: bool = False) -> None:
        with self.batch():
            run_steps(self.partition_growth(topic, count, assignments, validate_only))

    def partition_growth(self, topic: Topic, count: int, assignments: list[list[int]] | None = None,
                         validate_only: bool = False) -> Generator[None, None, None]:
        """Grow ``topic`` to ``count`` partitions, one local log per step (see ``creation``); all or none.
        The new partitions appear when all are open."""
        if topic.name in self.pending:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                             f"Partitions are being added to '{topic.name}' by another request.")
        reg = yield self.controller.create_partitions(topic.name, count, assignments, validate_only=True)
        if validate_only:
            return
        first = len(topic.partitions)
        prepared = reg.partitions[first:]
        self.pending.add(topic.name)
        try:
            steps = self._prepare_logs(topic.name, topic.topic_id, topic.configs, prepared, first, topic)
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    opened = done.value
                    break
                yield
                if self.by_name.get(topic.name) is not topic:  # deleted meanwhile
                    steps.throw(KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                           f"The topic '{topic.name}' was deleted."))
            try:
                yield self.controller.create_partitions(topic.name, count, None, prepared=prepared)
            finally:
                self._discard_prepared(topic.name, topic.topic_id, opened)
        finally:
            self.pending.discard(topic.name)

    def _prepare_logs(self, name: str, topic_id: uuid.UUID, configs: dict[str, str],
                      prepared: list[PartitionRegistration], first: int,
                      growing: Topic | None = None) -> Generator[None, None, list[int]]:
        """Open this broker's logs of new partitions ``first``, ``first + 1``, ... (registered as the
        controller's validation built them, ``prepared``) for ``apply`` to take, yielding after each;
        returns their indexes. Their partitions are made here too, of a new topic or of the topic
        ``growing``, in the state the controller is to create them with (making them all in ``apply`` held
        the loop for most of a second for 10,000). On a failure the logs opened here are closed and removed
        again before the error goes on (an OSError as KAFKA_STORAGE_ERROR)."""
        topic = growing or Topic(name, topic_id, dict(configs), defaults=self.defaults)
        cfg = topic.log_config()
        if growing is None:
            self._prebuilt_topics[topic_id] = topic
        mine = [first + k for k, preg in enumerate(prepared) if self.node_id in preg.replicas]
        opened: list[int] = []
        try:
            for i in mine:
                winner = self.by_name.get(name)
                if winner is not None and winner.topic_id != topic_id:
                    raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
                store = self._prepared[(topic_id, i)] = self.log_store.open_log(name, topic_id, i, cfg)
                opened.append(i)
                preg = prepared[i - first]
                self._prebuilt[(topic_id, i)] = (preg, Partition(
                    topic, i, store, changes=self.changes, node_id=self.node_id, controller=self.controller,
                    registration=preg))
                yield
        except BaseException as e:
            winner = self.by_name.get(name)
            if winner is not None and winner.topic_id != topic_id:
                # Another creation of the name won meanwhile: its logs have the directories now, so only
                # what is still ours is removed (see _drop_lost_creation).
                self._discard_prepared(name, topic_id, opened)
                raise
            # One more than were opened: the one whose opening failed may have made its directory.
            failed = mine[:len(opened) + 1]
            self._discard_prepared(name, topic_id, failed, untaken_only=False)
            if isinstance(e, OSError):
                raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR,
                                 f"Could not create the partition logs of '{name}': {e.strerror}") from e
            raise
        return opened

    def _drop_lost_creation(self, name: str, topic_id: uuid.UUID) -> None:
        """The controller tells of topic ``name`` (id ``topic_id``) while this broker's own creation of that
        name is still preparing logs under another id: a creation asked of another broker of the cluster won
        the race. A log store keeps one log per (name, partition), so the loser's prepared logs are closed
        and removed before the winner's are opened in their directories; the losing creation then fails
        with TOPIC_ALREADY_EXISTS and finds nothing of its own left to remove."""
        lost = self._creating.get(name)
        if lost is None or lost == topic_id:
            return
        self._prebuilt_topics.pop(lost, None)
        for key in [k for k in self._prepared if k[0] == lost]:
            self._prebuilt.pop(key, None)
            plog = self._prepared.pop(key)
            try:
                plog.close()
                self.log_store.delete_log(name, lost, key[1])
            except Exception:  # noqa: BLE001
                log.exception("%s-%d: could not remove the log of a creation that lost", name, key[1])

    def _discard_prepared(self, name: str, topic_id: uuid.UUID, indexes: list[int], *,
                          untaken_only: bool = True) -> None:
        """Close and remove the prepared logs ``apply`` did not take (a creation that failed); with
        ``untaken_only=False``, remove the directories of all of ``indexes`` (one may have failed to open).
        Like a deletion: closed without flushing, renamed with one directory fsync, removed off the loop."""
        doomed = []
        self._prebuilt_topics.pop(topic_id, None)
        for i in indexes:
            self._prebuilt.pop((topic_id, i), None)
            plog = self._prepared.pop((topic_id, i), None)
            if plog is None and untaken_only:
                continue  # taken by ``apply``: the partition exists
            doomed.append(i)
        if not doomed:
            return
        try:
            self.log_store.delete_logs(name, topic_id, doomed)
        except Exception:  # noqa: BLE001  the first error is the one to report
            log.exception("%s: could not remove the logs of a failed creation", name)

    def delete(self, topic: Topic):
        """The deletion asked of the controller: a coroutine to await (or ``run_now``)."""
        return self.controller.delete_topic(topic.name)

    def set_configs(self, topic: Topic, configs: dict[str, str]):
        """The change asked of the controller: a coroutine to await (or ``run_now``)."""
        return self.controller.set_topic_configs(topic.name, configs)

    def local_partitions(self):
        """The partitions this broker holds a log of (leader or not)."""
        for topic in list(self.by_name.values()):
            for p in topic.partitions:
                if p.log is not None:
                    yield p
