"""The cluster's metadata and the controller that changes it: which brokers are alive, which topics exist,
and for each partition its replicas, leader, leader epoch, partition epoch and ISR (Kafka's QuorumController
over the metadata image; ZooKeeper's /brokers and /brokers/topics before it).

Every broker reads the cluster from a ``Controller`` and asks it for every change; none keeps a topic list of
its own. A single broker is a cluster of one over the same path: its controller is an
``InProcessController`` over the broker's own topic store (topic_store.py: a state log of the document
it always kept, with the replica assignment and partition state added beside each topic). Several brokers in
one process share one ``InProcessController``; a PostgreSQL-backed controller (a later slice) implements the
same interface for brokers in separate processes.

The interface, and why it is shaped so:

- Reads are synchronous and answer from the controller's current image (``brokers``, ``topic``,
  ``topics``, ``live_broker_ids``): a database-backed controller serves them from an image it keeps current
  through change notifications, so handlers never wait on the database to answer Metadata.
- Changes are methods that validate, apply and then notify every registered broker with what changed
  (``MetadataListener.on_topic_change`` / ``on_topic_deleted`` / ``on_brokers_change``). In process the
  notification runs before the method returns, so the broker that asked already sees the change.
- Partition state moves only through ``alter_partition``, a compare-and-set on (leader epoch, partition
  epoch) as Kafka's AlterPartition and its ZooKeeper-era conditional znode updates do: a stale caller gets
  FENCED_LEADER_EPOCH or INVALID_UPDATE_VERSION and nothing changes. Leader election (a broker leaving or
  coming back) goes through the same method, so a database implementation is one conditional UPDATE.
- The leader epoch goes up whenever the leader changes (including to "no leader"); the partition epoch
  goes up on every change of the partition's state.
- Changes are coroutines (``async def``), for every controller: the PostgreSQL one waits for its database
  without stopping the event loop; the in-process one completes at once, without ever suspending, so its
  change and its notifications are still one step. Code that must finish a change before going on without
  awaiting (the in-process cluster's control actions, tests) uses ``run_now``; code that would rather finish
  it at once when it can uses ``eager``, which starts the change and hands back a done future or a task.

Concurrency: everything runs on the event loop of the brokers that share the controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
import types
import uuid
from collections.abc import Awaitable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .errors import ErrorCode, KafkaError
from .uuids import random_uuid

log = logging.getLogger("kbroker.controller")

NO_LEADER = -1
PRODUCER_ID_BLOCK_SIZE = 1000  # Kafka's ProducerIdManager hands out blocks of 1000 ids too


@types.coroutine
def _resume(coro: Coroutine, pending):
    """The rest of ``coro``, which suspended on ``pending``: driven as a Task drives a coroutine."""
    while True:
        try:
            sent = yield pending
        except BaseException as e:  # noqa: BLE001  a cancellation or the awaited future's error goes in
            try:
                pending = coro.throw(e)
            except StopIteration as done:
                return done.value
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as done:
                return done.value


def eager(coro: Coroutine) -> asyncio.Future:
    """Start a change now (Python 3.12's eager tasks): a done future when it completed without suspending
    (an in-process controller's, always), else a task running the rest. An error raised before it suspended
    is raised here."""
    try:
        pending = coro.send(None)
    except StopIteration as done:
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(done.value)
        return fut
    return asyncio.ensure_future(_resume(coro, pending))


def run_now(change: Coroutine):
    """The result of a change that completes at once (an in-process controller's); RuntimeError for one that
    would have to wait (a database's: await it instead)."""
    try:
        pending = change.send(None)
    except StopIteration as done:
        return done.value
    change.close()
    if isinstance(pending, asyncio.Future):
        pending.cancel()
    raise RuntimeError("this controller's changes must be awaited")


async def settled(changes: list[Awaitable], response):
    """``response`` once every change in ``changes`` is done (a handler that asked for several)."""
    for change in changes:
        await change
    return response


@dataclass
class BrokerRegistration:
    """A broker as the cluster knows it: its node id, an endpoint per listener name, its rack, and whether it
    is alive (registered and not stopped; Kafka: registered and unfenced)."""
    node_id: int
    endpoints: dict[str, tuple[str, int]]  # listener name -> advertised (host, port)
    rack: str | None = None
    alive: bool = True


@dataclass(slots=True)
class PartitionRegistration:
    """One partition's state (Kafka's PartitionRegistration / ZooKeeper's LeaderAndIsr). During a
    reassignment ``replicas`` is the target followed by the replicas being removed, ``adding`` the target's
    replicas that were not replicas before and ``removing`` those leaving (Kafka's addingReplicas /
    removingReplicas); both are empty otherwise. Slotted: a topic of 10,000 partitions makes 10,000 of them
    while the event loop waits, and fewer objects each means less of that time spent collecting garbage."""
    replicas: list[int]
    isr: list[int]
    leader: int = NO_LEADER
    leader_epoch: int = 0
    partition_epoch: int = 0
    adding: list[int] = field(default_factory=list)
    removing: list[int] = field(default_factory=list)

    @property
    def reassigning(self) -> bool:
        return bool(self.adding or self.removing)

    def to_json(self) -> dict:
        """A new dict sharing nothing with the registration (the topic store keeps it). Its lists are tuples:
        JSON writes them alike, and a tuple of ints, unlike a list, is soon not examined by the garbage
        collector (nor, after a full collection, the dict holding only such tuples); a topic store holds
        one of these per partition."""
        d = {"replicas": tuple(self.replicas), "isr": tuple(self.isr), "leader": self.leader,
             "leader_epoch": self.leader_epoch, "partition_epoch": self.partition_epoch}
        if self.reassigning:
            d["adding"], d["removing"] = tuple(self.adding), tuple(self.removing)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "PartitionRegistration":
        return cls(list(d["replicas"]), list(d["isr"]), d["leader"], d["leader_epoch"], d["partition_epoch"],
                   list(d.get("adding", ())), list(d.get("removing", ())))


@dataclass
class TopicRegistration:
    name: str
    topic_id: uuid.UUID
    configs: dict[str, str]  # overrides only
    partitions: list[PartitionRegistration] = field(default_factory=list)


class MetadataListener:
    """What a broker is told when the cluster changes (Kafka: the metadata publishers of a broker)."""

    def on_topic_change(self, topic: TopicRegistration) -> None:
        """A topic was created, or its partitions, their state or its configs changed."""

    def on_topic_deleted(self, topic: TopicRegistration) -> None:
        pass

    def on_brokers_change(self) -> None:
        """A broker registered, came back or stopped."""

    def on_client_quotas_change(self) -> None:
        """Another broker changed the client quotas (a controller whose brokers are processes tells this)."""


class Controller:
    """The small interface every controller implements; see the module docstring."""

    cluster_id: str
    # True when every change completes without suspending (``run_now`` works): the in-process controller
    changes_complete_at_once = False

    # -- reads: the current image --------------------------------------------------------------------

    def brokers(self) -> list[BrokerRegistration]:
        """Every registered broker, alive or not, by node id."""
        raise NotImplementedError

    def live_broker_ids(self) -> list[int]:
        return [b.node_id for b in self.brokers() if b.alive]

    def live_racks(self) -> dict[int, str | None]:
        """Each live broker's ``broker.rack`` (None: it has none), what replica placement goes by."""
        return {b.node_id: b.rack for b in self.brokers() if b.alive}

    def broker(self, node_id: int) -> BrokerRegistration | None:
        return next((b for b in self.brokers() if b.node_id == node_id), None)

    @property
    def controller_id(self) -> int:
        """The broker admin clients are told is the controller: the lowest live node id (-1: none)."""
        live = self.live_broker_ids()
        return min(live) if live else -1

    def topics(self) -> list[TopicRegistration]:
        raise NotImplementedError

    def coordinator_id(self) -> int:
        """The broker hosting the group and transaction coordinators, alive or not. In this slice one broker
        hosts them all: the lowest node id ever registered (the internal-topic placement comes later)."""
        raise NotImplementedError

    # -- brokers -----------------------------------------------------------------------------------

    async def register_broker(self, registration: BrokerRegistration, listener: MetadataListener) -> None:
        """A broker starts (or comes back): it is alive, and leads again the partitions that wait for it."""
        raise NotImplementedError

    async def unregister_broker(self, node_id: int) -> None:
        """A broker stops cleanly: it is no longer alive and its partitions elect other leaders from their
        ISR, or have none (Kafka's controlled shutdown)."""
        raise NotImplementedError

    # -- topics ------------------------------------------------------------------------------------

    async def create_topic(self, name: str, num_partitions: int, replication_factor: int,
                           assignments: list[list[int]] | None, configs: dict[str, str],
                           validate_only: bool = False, topic_id: uuid.UUID | None = None,
                           prepared: list[PartitionRegistration] | None = None) -> TopicRegistration:
        """The topic placed, checked and created; with ``validate_only`` the registration it would be created
        with, not kept. ``topic_id``: the id the asking broker already opened its logs under (None: a new
        one). ``prepared``: the partitions of such a validation, created as they are (``still_placed``)
        instead of being placed and built again; ``num_partitions`` is then their number and
        ``assignments`` None."""
        raise NotImplementedError

    async def create_partitions(self, name: str, count: int, assignments: list[list[int]] | None,
                                validate_only: bool = False,
                                prepared: list[PartitionRegistration] | None = None) -> TopicRegistration:
        """The topic grown to ``count`` partitions; with ``validate_only`` the registration it would have,
        not kept. ``prepared``: the new partitions of such a validation (its last ``count - current``),
        created as they are (``still_placed``); ``assignments`` is then None."""
        raise NotImplementedError

    async def delete_topic(self, name: str) -> None:
        raise NotImplementedError

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        raise NotImplementedError

    async def alter_partition(self, name: str, index: int, leader_epoch: int, partition_epoch: int,
                        leader: int, isr: list[int]) -> PartitionRegistration:
        """Compare-and-set: apply (leader, isr) if the partition is still at (leader_epoch, partition_epoch),
        else FENCED_LEADER_EPOCH / INVALID_UPDATE_VERSION (KafkaError) and nothing changes."""
        raise NotImplementedError

    async def write_partition(self, name: str, index: int, old: PartitionRegistration,
                              new: PartitionRegistration) -> PartitionRegistration:
        """The controller's own change of a whole registration (replicas and reassignment included), by
        compare-and-set on ``old``'s epochs as ``alter_partition``; returns ``new``."""
        raise NotImplementedError

    # -- elections and reassignments: the same for every controller, over the reads and write_partition ---

    unclean_leader_election_default = "false"  # unclean.leader.election.enable of topics that do not set it

    def unclean_leader_election(self, topic: TopicRegistration) -> bool:
        """The topic's ``unclean.leader.election.enable``, else the cluster's default."""
        return topic.configs.get("unclean.leader.election.enable",
                                 self.unclean_leader_election_default).strip().lower() == "true"

    async def elect_leaders(self, election_type: int, partitions: list[tuple[str, list[int]]] | None
                            ) -> list[tuple[str, list[tuple[int, int, str | None]]]]:
        """ElectLeaders (Kafka's ReplicationControlManager.electLeaders): per topic asked, (partition, error
        code, message) for each partition asked; ``partitions`` None: every partition of every topic, less
        those whose answer would be ELECTION_NOT_NEEDED."""
        every = partitions is None
        if every:
            partitions = [(t.name, list(range(len(t.partitions)))) for t in self.topics()]
        out = []
        with self.batch():
            for name, indexes in partitions:
                results = []
                for index in indexes:
                    try:
                        topic = self.topic(name)
                        if topic is None:
                            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such topic as {name}")
                        if not 0 <= index < len(topic.partitions):
                            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                             f"No such partition as {name}-{index}")
                        p = topic.partitions[index]
                        live = set(self.live_broker_ids())
                        leader, isr = elect(p, election_type, live)
                        await self.write_partition(name, index, p, partition_change(p, live, leader, isr))
                        results.append((index, 0, None))
                    except KafkaError as e:
                        if not (every and e.code == ErrorCode.ELECTION_NOT_NEEDED):
                            results.append((index, e.code, e.message))
                out.append((name, results))
        return out

    async def alter_reassignments(self, requests: list[tuple[str, list[tuple[int, list[int] | None]]]],
                                  allow_replication_factor_change: bool = True
                                  ) -> list[tuple[str, list[tuple[int, int, str | None]]]]:
        """AlterPartitionReassignments (Kafka's alterPartitionReassignments): per topic, (partition, error
        code, message) for each (partition, target replicas or None to cancel) asked; see ``reassign``."""
        out = []
        with self.batch():
            for name, targets in requests:
                results = []
                for index, target in targets:
                    try:
                        topic = self.topic(name)
                        if topic is None:
                            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                             f"Unable to find a topic named {name}.")
                        if not 0 <= index < len(topic.partitions):
                            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                             f"Unable to find partition {name}:{index}.")
                        p = topic.partitions[index]
                        new = reassign(p, target, set(self.live_broker_ids()), {b.node_id for b in self.brokers()},
                                       self.unclean_leader_election(topic), allow_replication_factor_change)
                        if _state(new) != _state(p):  # else nothing to write (Kafka: no record)
                            await self.write_partition(name, index, p, new)
                        results.append((index, 0, None))
                    except KafkaError as e:
                        results.append((index, e.code, e.message))
                out.append((name, results))
        return out

    def reassignments(self, topics: list[tuple[str, list[int]]] | None
                      ) -> list[tuple[str, list[tuple[int, PartitionRegistration]]]]:
        """ListPartitionReassignments: the partitions asked (None: all) that are being reassigned, by topic;
        unknown topics and partitions are left out, as Kafka leaves them."""
        if topics is None:
            topics = [(t.name, list(range(len(t.partitions)))) for t in self.topics()]
        out = []
        for name, indexes in topics:
            topic = self.topic(name)
            if topic is None:
                continue
            found = [(i, topic.partitions[i]) for i in indexes
                     if 0 <= i < len(topic.partitions) and topic.partitions[i].reassigning]
            if found:
                out.append((name, found))
        return out

    async def balance_leaders(self, percentage: int) -> int:
        """One check of ``auto.leader.rebalance.enable``: preferred-replica elections for the partitions
        ``imbalanced_partitions`` names; returns how many moved."""
        live = set(self.live_broker_ids())
        moved = 0
        with self.batch():
            for name, index in imbalanced_partitions(self.topics(), live, percentage):
                topic = self.topic(name)
                if topic is None or index >= len(topic.partitions):
                    continue
                p = topic.partitions[index]
                try:
                    leader, isr = elect(p, PREFERRED_ELECTION, live)
                    await self.write_partition(name, index, p, partition_change(p, live, leader, isr))
                except KafkaError as e:
                    log.info("%s-%d: no preferred-leader election: %s", name, index, e.message or e.code.name)
                    continue
                moved += 1
        if moved:
            log.info("moved %d partition leader(s) back to their preferred replica", moved)
        return moved

    # -- persistence -------------------------------------------------------------------------------

    def batch(self):
        """A context in which changes reach the controller's store together (one admin request)."""
        return contextlib.nullcontext()

    def after_durable(self, action) -> None:
        """Run ``action`` once the changes made so far are durable (removing a deleted topic's logs)."""
        action()

    def close(self) -> None:
        pass

    # -- ids -----------------------------------------------------------------------------------------

    async def allocate_producer_ids(self) -> tuple[int, int]:
        """A block [first, end) of producer ids no other broker was or will be given (AllocateProducerIds)."""
        raise NotImplementedError

    # -- feature levels (KIP-584; features.py says which levels kbroker has) -----------------------------

    # Kept here in memory for a controller that has no durable place for them; InProcessController keeps
    # them in its topic store, PostgresController in its tables.

    def feature_levels(self) -> tuple[dict[str, int], int]:
        """The feature levels UpdateFeatures finalized (name -> level; a feature not named is at its default
        level) and their epoch, which every change raises."""
        return dict(self.__dict__.get("_feature_levels", {})), self.__dict__.get("_feature_levels_epoch", 0)

    async def set_feature_levels(self, levels: dict[str, int]) -> None:
        """Finalize these levels for the whole cluster, durably, and raise the epoch."""
        self._feature_levels = {**self.__dict__.get("_feature_levels", {}), **levels}
        self._feature_levels_epoch = self.__dict__.get("_feature_levels_epoch", 0) + 1

    # -- client metrics subscriptions (KIP-714; client_metrics.py reads them) ----------------------------

    def client_metrics_subscriptions(self) -> dict[str, dict[str, str]]:
        """The CLIENT_METRICS config resources: subscription name -> its configs."""
        return {n: dict(c) for n, c in self.__dict__.get("_client_metrics", {}).items()}

    async def set_client_metrics_subscription(self, name: str, configs: dict[str, str]) -> None:
        """Replace a subscription's configs, durably, for the whole cluster; no configs deletes it."""
        self._client_metrics = with_configs(self.client_metrics_subscriptions(), name, configs)

    # -- group configs (GROUP config resources; coordinator/group_config.py validates and reads them) -----

    def group_configs(self) -> dict[str, dict[str, str]]:
        """The GROUP config resources: group id -> its configs."""
        return {n: dict(c) for n, c in self.__dict__.get("_group_configs", {}).items()}

    async def set_group_configs(self, group_id: str, configs: dict[str, str]) -> None:
        """Replace a group's configs, durably, for the whole cluster; no configs deletes them."""
        self._group_configs = with_configs(self.group_configs(), group_id, configs)

    # -- client quotas (KIP-546; client_quotas.py validates and enforces them) -----------------------------

    # An entity is a tuple of (type, name or None) pairs sorted by type; its values map quota keys to numbers.

    def client_quotas(self) -> dict[tuple, dict[str, float]]:
        """Every entity with quotas and its values; read on the request path, so no copy: do not modify."""
        return self.__dict__.get("_client_quotas", {})

    async def alter_client_quotas(self, changes: dict[tuple, dict[str, float]]) -> None:
        """Give each entity named its whole new set of values (none: it has no quotas any more), durably, for
        the whole cluster, in one change."""
        self._client_quotas = with_quotas(self.client_quotas(), changes)


def with_quotas(quotas: dict, changes: dict) -> dict:
    out = {e: v for e, v in quotas.items() if e not in changes}
    out.update({e: dict(v) for e, v in changes.items() if v})
    return out


def quotas_to_json(quotas: dict) -> list:
    return [{"entity": [[t, n] for t, n in entity], "values": dict(values)} for entity, values in quotas.items()]


def quotas_from_json(items: list) -> dict:
    return {tuple(sorted((t, n) for t, n in item["entity"])): dict(item["values"]) for item in items}


def _state(p: PartitionRegistration) -> tuple:
    """What a change may change, without the epochs."""
    return p.replicas, p.isr, p.leader, p.adding, p.removing


def with_configs(resources: dict, name: str, configs: dict[str, str]) -> dict:
    """``resources`` (name -> configs) with ``name``'s configs replaced (removed when there are none)."""
    out = {n: c for n, c in resources.items() if n != name}
    if configs:
        out[name] = dict(configs)
    return out


def place_replicas(brokers: list[int], num_partitions: int, replication_factor: int,
                   racks: dict[int, str | None] | None = None, existing: list[list[int]] | None = None,
                   rng: random.Random | None = None) -> list[list[int]]:
    """Replicas for ``num_partitions`` new partitions over the live ``brokers``, as Kafka's StripedReplicaPlacer
    places them (``racks``: node id -> its ``broker.rack``, None or absent for none).

    The brokers are grouped by rack, each rack's brokers sorted with a start offset, the rack names sorted
    (no rack first) with a start rack. Each partition takes its leader from the next rack in turn (the first
    of its brokers not yet used in this round) and its followers from the racks after it, one per rack while
    racks last, so that the replicas of a partition span as many racks as they can and the leaders go round
    the racks. Every broker's rack list advances by one per partition; after as many partitions as brokers
    the racks and brokers are shuffled, so that the same assignments do not repeat. A topic that grows
    (``existing``: its partitions' replicas) continues after the rack of its last partition's leader and after
    each rack's last broker used, as Kafka's placer does; a new topic starts at random."""
    brokers = sorted(brokers)
    if replication_factor > len(brokers):
        raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                         f"Unable to replicate the partition {replication_factor} time(s): The target replication "
                         f"factor of {replication_factor} cannot be reached because only {len(brokers)} broker(s) "
                         "are registered or some brokers have all their log directories cordoned.")
    rng = rng or random.Random()
    placer = _RackList(brokers, racks or {}, existing or [], rng)
    return [placer.place(replication_factor) for _ in range(num_partitions)]


class _RackBrokers:
    """The live brokers of one rack, handed out once each per round (Kafka's StripedReplicaPlacer.BrokerList):
    a new round starts one further along."""
    __slots__ = ("brokers", "index", "offset", "epoch")

    def __init__(self, brokers: list[int]):
        self.brokers = brokers
        self.index = self.offset = self.epoch = 0

    def next(self, epoch: int) -> int:
        """The next broker of round ``epoch``, -1 when every broker of the rack had its turn in it."""
        n = len(self.brokers)
        if n == 0:
            return -1
        if epoch != self.epoch:
            self.epoch, self.index, self.offset = epoch, 0, (self.offset + 1) % n
        if self.index >= n:
            return -1
        self.index += 1
        return self.brokers[(self.index - 1 + self.offset) % n]


class _RackList:
    """The racks, and the round and the rack the next partition starts from (Kafka's RackList)."""

    def __init__(self, brokers: list[int], racks: dict[int, str | None], existing: list[list[int]],
                 rng: random.Random):
        self.rng = rng
        by_rack: dict[str | None, list[int]] = {}
        for b in brokers:
            by_rack.setdefault(racks.get(b), []).append(b)
        self.racks = {name: _RackBrokers(sorted(ids)) for name, ids in by_rack.items()}
        self.names = sorted(self.racks, key=lambda r: (r is not None, r or ""))
        self.num_brokers = len(brokers)
        for name, rack in self.racks.items():
            last = _last_in_rack(existing, racks, name, rack.brokers)
            rack.offset = (last + 1) % len(rack.brokers) if last is not None else rng.randrange(len(rack.brokers))
        self.epoch = 0
        last_leader_rack = racks.get(existing[-1][0], False) if existing and existing[-1] else False
        if last_leader_rack is not False and last_leader_rack in self.racks:
            self.offset = (self.names.index(last_leader_rack) + 1) % len(self.names)
        else:
            self.offset = rng.randrange(len(self.names))

    def place(self, replication_factor: int) -> list[int]:
        if self.epoch == self.num_brokers and self.num_brokers > 1:  # every broker led once: shuffle
            self.rng.shuffle(self.names)
            for rack in self.racks.values():
                self.rng.shuffle(rack.brokers)
            self.epoch = 0
        if self.offset == len(self.names):
            self.offset = 0
        first = self.offset
        while True:  # the leader: the first rack from the offset that has a broker left in this round
            leader = self.racks[self.names[first]].next(self.epoch)
            if leader >= 0:
                break
            first = (first + 1) % len(self.names)
        out = [leader]
        index = self.offset
        for _ in range(1, replication_factor):
            result = -1
            while result < 0:  # the followers: the racks after the leader's, round and round
                if index == first:
                    first = -1  # the leader's rack is skipped once
                else:
                    result = self.racks[self.names[index]].next(self.epoch)
                index = (index + 1) % len(self.names)
            out.append(result)
        self.epoch += 1
        self.offset += 1
        return out


def _last_in_rack(existing: list[list[int]], racks: dict[int, str | None], rack: str | None,
                  brokers: list[int]) -> int | None:
    """The position in ``brokers`` of the last broker of ``rack`` that ``existing`` partitions used (the latest
    partition first), None if none of them did."""
    for replicas in reversed(existing):
        for b in replicas:
            if b in racks and racks[b] == rack:
                return brokers.index(b) if b in brokers else None
    return None


# -- election rules ------------------------------------------------------------------------------------------
#
# Pure functions of a partition's state and the live brokers, so that every controller (this in-process one,
# the PostgreSQL one) elects alike; each returns what to write with ``alter_partition``.

def choose_leader(replicas: list[int], isr: list[int], live, unclean: bool = False) -> tuple[int, list[int]]:
    """(leader, ISR) for a partition that needs a leader, as Kafka's offline-partition election: the first
    replica in assignment order that is in the ISR and alive; else, with ``unclean.leader.election.enable``,
    the first live replica, which becomes the whole ISR (what it lacks is lost); else no leader and the ISR
    unchanged, so the partition comes back with the last in-sync replica."""
    for r in replicas:
        if r in isr and r in live:
            return r, list(isr)
    if unclean:
        for r in replicas:
            if r in live:
                return r, [r]
    return NO_LEADER, list(isr)


def isr_without(isr: list[int], node: int) -> list[int]:
    """The ISR once ``node`` is gone (stopped, killed, fenced): without it, unless it is the last member
    (Kafka never empties the ISR: the partition waits for that replica, the only one known to have
    everything)."""
    rest = [r for r in isr if r != node]
    return rest if rest else list(isr)


def leader_and_isr_without(p: PartitionRegistration, node: int, live, unclean: bool = False) -> tuple[int, list[int]]:
    """(leader, ISR) of ``p`` once broker ``node`` is gone: out of the ISR, and if it led, a new leader
    chosen from the rest (``choose_leader``); none: no leader, and the ISR keeps its last member."""
    isr = isr_without(p.isr, node)
    if p.leader not in (node, NO_LEADER):
        return p.leader, isr
    leader, new_isr = choose_leader(p.replicas, [r for r in isr if r != node],
                                    [r for r in live if r != node], unclean)
    return (NO_LEADER, isr) if leader == NO_LEADER else (leader, new_isr)


def leader_and_isr_for_live(p: PartitionRegistration, live, unclean: bool = False) -> tuple[int, list[int]]:
    """(leader, ISR) of ``p`` once every ISR member outside ``live`` is gone: each leaves as
    ``leader_and_isr_without`` has it, in ISR order, so a controller that only knows who is alive (the
    PostgreSQL one, or one taking over from a controller that died half-way) reaches what the in-process one
    reaches broker by broker. A partition left without a leader gets one as when a broker registers
    (``choose_leader``: an ISR member that is back). Unchanged when every ISR member is alive and one leads."""
    live = set(live)
    cur = p
    for node in [r for r in p.isr if r not in live]:
        leader, isr = leader_and_isr_without(cur, node, live, unclean)
        cur = PartitionRegistration(p.replicas, isr, leader, p.leader_epoch, p.partition_epoch)
    if cur.leader == NO_LEADER:
        leader, isr = choose_leader(p.replicas, cur.isr, live, unclean)
        if leader != NO_LEADER:
            return leader, isr
    return cur.leader, cur.isr


def check_leader_move(p: PartitionRegistration, target: int, live) -> None:
    """Moving leadership to ``target`` (a preferred-replica election, the control plane's move) needs it to
    be a live member of the ISR, as Kafka's ElectLeaders does: else ELIGIBLE_LEADERS_NOT_AVAILABLE."""
    if target not in p.replicas or target not in p.isr or target not in live:
        raise KafkaError(ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE,
                         f"broker {target} is not a live in-sync replica (replicas {p.replicas}, ISR {p.isr})")


def check_epochs(what: str, p: PartitionRegistration, leader_epoch: int, partition_epoch: int) -> None:
    """A compare-and-set's check: FENCED_LEADER_EPOCH / INVALID_UPDATE_VERSION unless ``p`` is still at the
    epochs the caller read."""
    if leader_epoch != p.leader_epoch:
        raise KafkaError(ErrorCode.FENCED_LEADER_EPOCH, f"{what} is at leader epoch {p.leader_epoch}, "
                         f"not {leader_epoch}")
    if partition_epoch != p.partition_epoch:
        raise KafkaError(ErrorCode.INVALID_UPDATE_VERSION, f"{what} is at partition epoch {p.partition_epoch}, "
                         f"not {partition_epoch}")


def check_isr(p: PartitionRegistration, leader: int, isr: list[int]) -> None:
    """An ISR a leader asks for names only replicas, without repeats, and includes the leader (Kafka's
    AlterPartition validation; INVALID_REQUEST otherwise)."""
    if not isr or len(set(isr)) != len(isr) or not set(isr) <= set(p.replicas) or \
            (leader != NO_LEADER and leader not in isr):
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"invalid ISR {isr} for leader {leader} and replicas {p.replicas}")


# -- preferred-leader and unclean elections, reassignments (Kafka's PartitionChangeBuilder) -----------------

PREFERRED_ELECTION, UNCLEAN_ELECTION = 0, 1  # ElectLeaders' election_type (Kafka's ElectionType)


def partition_change(old: PartitionRegistration, live, leader: int, isr: list[int],
                     replicas: list[int] | None = None, adding: list[int] | None = None,
                     removing: list[int] | None = None) -> PartitionRegistration:
    """The registration that replaces ``old`` when a controller writes (leader, ISR) and, for a
    reassignment, the replica sets (Kafka's PartitionChangeBuilder.build): a reassignment whose target
    replicas are all in the ISR completes at once (the removing replicas leave the replicas and the ISR,
    adding and removing empty); a leader that is then no longer a live ISR member gives way to the first
    replica in assignment order that is (none: no leader). The leader epoch goes up when the leader changes
    or a replica leaves the assignment; the partition epoch on every change."""
    replicas = list(old.replicas if replicas is None else replicas)
    adding = list(old.adding if adding is None else adding)
    removing = list(old.removing if removing is None else removing)
    isr = list(isr)
    if adding or removing:  # Kafka's PartitionReassignmentReplicas.maybeCompleteReassignment
        left_isr = [r for r in isr if r not in removing]
        left = [r for r in replicas if r not in removing]
        if left_isr and left and set(left) <= set(left_isr):
            replicas, isr, adding, removing = left, left_isr, [], []
    if replicas != old.replicas and (leader not in isr or leader not in live):
        leader = next((r for r in replicas if r in isr and r in live), NO_LEADER)
    bump = leader != old.leader or not set(old.replicas) <= set(replicas)
    return PartitionRegistration(replicas, isr, leader, old.leader_epoch + (1 if bump else 0),
                                 old.partition_epoch + 1, adding, removing)


def elect(p: PartitionRegistration, election_type: int, live) -> tuple[int, list[int]]:
    """(leader, ISR) an ElectLeaders election gives ``p`` (Kafka's ReplicationControlManager.electLeader):
    PREFERRED: ELECTION_NOT_NEEDED when the first replica leads; the first replica if it is a live ISR
    member; else, when the current leader is one, PREFERRED_LEADER_NOT_AVAILABLE (nothing changes); else the
    first live ISR member. UNCLEAN: ELECTION_NOT_NEEDED when there is a leader; a live ISR member, else the
    first live replica, which becomes the whole ISR; else ELIGIBLE_LEADERS_NOT_AVAILABLE."""
    def eligible(r: int) -> bool:
        return r in p.isr and r in live

    if election_type == PREFERRED_ELECTION:
        preferred = p.replicas[0] if p.replicas else NO_LEADER
        if p.leader == preferred:
            raise KafkaError(ErrorCode.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition.")
        if not eligible(preferred) and eligible(p.leader):
            raise KafkaError(ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, "The preferred leader was not available.")
        leader = next((r for r in p.replicas if eligible(r)), NO_LEADER)
        if leader == NO_LEADER:
            raise KafkaError(ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, "The preferred leader was not available.")
        return leader, list(p.isr)
    if election_type != UNCLEAN_ELECTION:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown election type {election_type}")
    if p.leader != NO_LEADER:
        raise KafkaError(ErrorCode.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition.")
    leader, isr = choose_leader(p.replicas, p.isr, live, unclean=True)
    if leader == NO_LEADER:
        raise KafkaError(ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE,
                         "Eligible topic partition leaders are not available.")
    return leader, isr


def check_reassignment_target(target: list[int], known) -> None:
    """A reassignment's target replicas (Kafka's validateManualPartitionAssignment): not empty, registered
    brokers, each once; INVALID_REPLICA_ASSIGNMENT otherwise, with Kafka's messages."""
    if not target:
        raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                         "The manual partition assignment includes an empty replica list.")
    previous = None
    for broker in sorted(target):
        if broker not in known:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"The manual partition assignment includes "
                             f"broker {broker}, but no such broker is registered.")
        if broker == previous:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"The manual partition assignment includes "
                             f"the broker {broker} more than once.")
        previous = broker


def reassign(p: PartitionRegistration, target: list[int] | None, live, known, unclean: bool = False,
             allow_replication_factor_change: bool = True) -> PartitionRegistration:
    """The registration after AlterPartitionReassignments asks ``target`` for ``p`` (None: cancel), as
    Kafka's changePartitionReassignment / cancelPartitionReassignment: the replicas become the target
    followed by those leaving; ``adding`` the target's new ones, ``removing`` those leaving; it completes at
    once when the ISR already has the whole target (``partition_change``), else when the leader lets the
    last adding replica into the ISR. A cancel drops the adding replicas from the replicas and the ISR
    (NO_REASSIGNMENT_IN_PROGRESS when there is none; INVALID_REPLICA_ASSIGNMENT when only adding replicas
    are in sync and unclean election is off, since going back would lose what they have)."""
    if target is None:
        if not p.reassigning:
            raise KafkaError(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None)
        replicas = [r for r in p.replicas if r not in p.adding]
        isr = [r for r in p.isr if r not in p.adding]
        if not isr:
            if not unclean:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "Unable to revert partition assignment "
                                 "because it would require an unclean leader election.")
            isr = replicas[:1]
        return partition_change(p, live, p.leader, isr, replicas, [], [])
    target = list(target)
    check_reassignment_target(target, known)
    if not allow_replication_factor_change:
        current = len([r for r in p.replicas if r not in p.removing])
        if current != len(target):
            raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR, f"The replication factor is changed from "
                             f"{current} to {len(target)} but allow_replication_factor_change is false.")
    removing = sorted(set(p.replicas) - set(target))
    adding = sorted(set(target) - set(p.replicas))
    return partition_change(p, live, p.leader, p.isr, target + removing, adding, removing)


def imbalanced_partitions(topics: list[TopicRegistration], live, percentage: int) -> list[tuple[str, int]]:
    """The partitions an automatic rebalance moves back to their preferred replica (the first in
    assignment order), as Kafka's controller checks every ``leader.imbalance.check.interval.seconds``: for
    each broker, the share of the partitions it is preferred for that another broker leads; over
    ``leader.imbalance.per.broker.percentage``, those of them whose preferred replica is a live ISR member and
    that are not being reassigned get a preferred-replica election."""
    preferred_for: dict[int, list[tuple[str, int, PartitionRegistration]]] = {}
    for topic in topics:
        for index, p in enumerate(topic.partitions):
            if p.replicas:
                preferred_for.setdefault(p.replicas[0], []).append((topic.name, index, p))
    out = []
    for broker, partitions in sorted(preferred_for.items()):
        not_led = [(name, index, p) for name, index, p in partitions if p.leader != broker]
        if not not_led or len(not_led) * 100 <= percentage * len(partitions):
            continue
        out.extend((name, index) for name, index, p in not_led
                   if broker in live and broker in p.isr and not p.reassigning)
    return out


# -- rules every controller applies (pure: the in-process and the PostgreSQL controllers share them) ---------

def check_new_topic(num_partitions: int, replication_factor: int) -> None:
    """CreateTopics' own checks of a topic placed by the controller (Kafka's ReplicationControlManager)."""
    if num_partitions <= 0:
        raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                         "Number of partitions was set to an invalid non-positive value.")
    if replication_factor <= 0:
        raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                         "Replication factor must be larger than 0, or -1 to use the default value.")


def check_assignments(assignments: list[list[int]], known: set[int]) -> None:
    """Explicit replica assignments name registered brokers, each once, and no more than can be kept."""
    for i, replicas in enumerate(assignments):
        if not replicas or len(set(replicas)) != len(replicas) or not known.issuperset(replicas):
            raise _invalid_assignment(i)


def _invalid_assignment(index: int) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                      f"Replica assignment for partition {index} names unknown or repeated brokers")


def new_partitions(replicas: list[list[int]], live: set[int]) -> list[PartitionRegistration]:
    """New partitions' state: the first live replica leads, the live replicas are the ISR (all of them when
    none is live, so the partition waits for them)."""
    out = []
    for r in replicas:
        if live.issuperset(r):  # the common case, without the per-replica scans
            out.append(PartitionRegistration(list(r), list(r), r[0] if r else NO_LEADER))
            continue
        leader = next((b for b in r if b in live), NO_LEADER)
        out.append(PartitionRegistration(list(r), [b for b in r if b in live] or list(r), leader, 0, 0))
    return out


def still_placed(prepared: list[PartitionRegistration], known: set[int],
                 live: set[int]) -> list[PartitionRegistration]:
    """The new partitions a validation built (``new_topic``, ``grown_partitions``), as they are created now:
    the same registrations, not built again, where every replica is still live (the common case, one set
    test each); a partition whose replicas were not all live then, or are not now, is built again from the
    live brokers now (``new_partitions``), after the check an assignment gets (``check_assignments``)."""
    out = prepared
    for i, p in enumerate(prepared):
        if len(p.isr) == len(p.replicas) and live.issuperset(p.replicas):
            continue
        if not known.issuperset(p.replicas):
            raise _invalid_assignment(i)
        if out is prepared:
            out = list(prepared)
        out[i] = new_partitions([p.replicas], live)[0]
    return out


def topic_placement(num_partitions: int, replication_factor: int, assignments: list[list[int]] | None,
                    known: set[int], live: list[int], racks: dict[int, str | None] | None = None) -> list[list[int]]:
    """A new topic's replicas: the assignments given (checked against the ``known`` brokers), else placed
    over the ``live`` ones by their ``racks`` (``place_replicas``)."""
    if assignments is not None:
        check_assignments(assignments, known)
        return assignments
    check_new_topic(num_partitions, replication_factor)
    return place_replicas(live, num_partitions, replication_factor, racks)


def new_topic(name: str, num_partitions: int, replication_factor: int, assignments: list[list[int]] | None,
              configs: dict[str, str], topic_id: uuid.UUID | None, *, exists: bool, known: set[int],
              live: list[int], racks: dict[int, str | None] | None = None,
              prepared: list[PartitionRegistration] | None = None) -> TopicRegistration:
    """A new topic's registration, placed and checked as CreateTopics asks, or made of the ``prepared``
    partitions of an earlier validation (``still_placed``); TOPIC_ALREADY_EXISTS if ``exists``. A
    validation (validate_only) and the creation build the same registration, so that the creation can take
    the validation's."""
    if exists:
        raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
    topic = TopicRegistration(name, topic_id or uuid.uuid4(), dict(configs))
    if prepared is not None:
        topic.partitions = still_placed(prepared, known, set(live))
    else:
        replicas = topic_placement(num_partitions, replication_factor, assignments, known, live, racks)
        topic.partitions = new_partitions(replicas, set(live))
    return topic


def grown_partitions(topic: TopicRegistration, count: int, assignments: list[list[int]] | None,
                     known: set[int], live: list[int], racks: dict[int, str | None] | None = None,
                     prepared: list[PartitionRegistration] | None = None) -> list[PartitionRegistration]:
    """The new partitions that grow ``topic`` to ``count``: as assigned, else placed with the topic's
    replication factor, continuing from its partitions' placement; or the ``prepared`` ones of an earlier
    validation (``still_placed``)."""
    current = len(topic.partitions)
    given = assignments if prepared is None else prepared
    if given is not None and len(given) != count - current:
        raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                         f"Increasing the number of partitions by {count - current} but "
                         f"{len(given)} assignments provided.")
    if prepared is not None:
        return still_placed(prepared, known, set(live))
    if assignments is not None:
        check_assignments(assignments, known)
        replicas = assignments
    else:
        rf = len(topic.partitions[0].replicas) if topic.partitions else 1
        replicas = place_replicas(live, count - current, rf, racks, existing=[p.replicas for p in topic.partitions])
    return new_partitions(replicas, set(live))


class ImageReads:
    """The interface's reads, answered from a controller's image: ``_brokers`` (node id -> registration),
    ``_topics`` (name -> registration) and ``_coordinator`` (node id or None)."""

    _brokers: dict[int, BrokerRegistration]
    _topics: dict[str, TopicRegistration]
    _coordinator: int | None

    def brokers(self) -> list[BrokerRegistration]:
        return [self._brokers[n] for n in sorted(self._brokers)]

    def topics(self) -> list[TopicRegistration]:
        return list(self._topics.values())

    def topic(self, name: str) -> TopicRegistration | None:
        return self._topics.get(name)

    def coordinator_id(self) -> int:
        return self._coordinator if self._coordinator is not None else -1


class InProcessController(ImageReads, Controller):
    """The controller of the brokers in this process, over a topic store document (topic_store.py).

    Document: ``cluster_id``, ``producer_id_block_end``, ``coordinator_id``, and ``topics`` by name with
    ``id``, ``partitions`` (the count), ``configs`` and ``replicas_state`` (a PartitionRegistration per
    partition), kept as the topic store's state log: each change is recorded as the topic or fact it leaves,
    one append per admin request (``batch``). A topic written before clusters existed has no
    ``replicas_state``: its partitions belong to the first broker that registers (the broker that wrote it)."""

    changes_complete_at_once = True  # no change method ever suspends

    def __init__(self, store, cluster_id: str | None = None):
        self._store = store
        self._doc = store.load()
        self._batch: list[dict] | None = None
        self._after_batch: list = []  # what must wait until the batch is durable (removing logs)
        self._brokers: dict[int, BrokerRegistration] = {}
        self._listeners: dict[int, MetadataListener] = {}
        self._topics: dict[str, TopicRegistration] = {}
        self._legacy: list[TopicRegistration] = []  # written by one broker before clusters: no replicas yet
        self._coordinator: int | None = self._doc.get("coordinator_id")
        self._change_waiters: list[asyncio.Future] = []
        # unclean.leader.election.enable of topics that do not set it (the brokers' default)
        self.unclean_leader_election_default = "false"
        if "cluster_id" not in self._doc:
            self._doc["cluster_id"] = cluster_id or random_uuid()
            self._record_fact("cluster_id")
        self.cluster_id = self._doc["cluster_id"]
        for name, t in self._doc.get("topics", {}).items():
            topic = TopicRegistration(name, uuid.UUID(t["id"]), dict(t.get("configs", {})))
            states = t.get("replicas_state")
            if states is None:
                self._legacy.append(topic)
                topic.partitions = [PartitionRegistration([], []) for _ in range(t["partitions"])]
            else:
                topic.partitions = [PartitionRegistration.from_json(s) for s in states]
            self._topics[name] = topic
        self._doc.pop("topics", None)  # kept in _topics from here on; _doc holds the broker-wide facts
        self._client_quotas = quotas_from_json(self._doc.get("client_quotas", []))

    # -- persistence -----------------------------------------------------------------------------------

    # The store is a state log (topic_store.py): each change is recorded as the topic (or fact) it leaves,
    # and the changes of one admin request (``batch``) reach it in one append and one fsync.

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Changes made inside reach the topic store together, when the block ends."""
        if self._batch is not None:
            yield
            return
        self._batch, self._after_batch = [], []
        try:
            yield
        finally:
            changes, self._batch = self._batch, None
            after, self._after_batch = self._after_batch, []
            self._store.append(changes)
            for action in after:
                action()

    def after_durable(self, action) -> None:
        """Run ``action`` once the changes recorded so far are durable (at once outside a batch)."""
        if self._batch is not None:
            self._after_batch.append(action)
        else:
            action()

    def _record(self, change: dict) -> None:
        if self._batch is not None:
            self._batch.append(change)
        else:
            self._store.append([change])

    def _record_topic(self, topic: TopicRegistration) -> None:
        value = {"id": str(topic.topic_id), "partitions": len(topic.partitions), "configs": dict(topic.configs)}
        if not any(t is topic for t in self._legacy):
            value["replicas_state"] = [p.to_json() for p in topic.partitions]
        self._record({"op": "topic", "name": topic.name, "value": value})

    def _record_fact(self, key: str) -> None:
        self._record({"op": "set", "key": key, "value": copy.deepcopy(self._doc[key])})

    def wait_for_change(self) -> asyncio.Future:
        """A future that completes at the next change of brokers or topics (the control plane's wait)."""
        fut = asyncio.get_running_loop().create_future()
        self._change_waiters.append(fut)
        return fut

    def _changed(self) -> None:
        waiters, self._change_waiters = self._change_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _notify(self, topic: TopicRegistration) -> None:
        for listener in list(self._listeners.values()):
            listener.on_topic_change(topic)
        self._changed()

    def _notify_brokers(self) -> None:
        for listener in list(self._listeners.values()):
            listener.on_brokers_change()
        self._changed()

    # -- brokers -----------------------------------------------------------------------------------------

    async def register_broker(self, registration: BrokerRegistration, listener: MetadataListener) -> None:
        node = registration.node_id
        if node in self._brokers and self._brokers[node].alive:
            raise ValueError(f"a broker with node id {node} is already registered and alive")
        registration.alive = True
        self._brokers[node] = registration
        self._listeners[node] = listener
        with self.batch():
            self._register(node, listener)
        log.info("broker %d registered: %s", node, registration.endpoints)

    def _register(self, node: int, listener: MetadataListener) -> None:
        if self._coordinator is None:
            self._coordinator = node
            self._doc["coordinator_id"] = node
            self._record_fact("coordinator_id")
        if self._legacy:  # a single broker's data directory from before clusters: its partitions are ours
            legacy, self._legacy = self._legacy, []
            for topic in legacy:
                topic.partitions = [PartitionRegistration([node], [node], NO_LEADER, 0, 0)
                                    for _ in topic.partitions]
                self._record_topic(topic)
        listener_topics = list(self._topics.values())
        for topic in listener_topics:
            listener.on_topic_change(topic)  # the new broker's image, before anything is elected
        self._notify_brokers()
        live = set(self.live_broker_ids())
        for topic in listener_topics:
            changed = False
            unclean = self.unclean_leader_election(topic)
            for index, p in enumerate(topic.partitions):
                if p.leader == NO_LEADER and node in p.replicas:
                    leader, isr = choose_leader(p.replicas, p.isr, live, unclean)
                    if leader != NO_LEADER:
                        self._elect(topic, index, leader, isr)
                        changed = True
            if changed:
                self._record_topic(topic)
                self._notify(topic)

    async def unregister_broker(self, node_id: int) -> None:
        reg = self._brokers.get(node_id)
        if reg is None or not reg.alive:
            return
        reg.alive = False
        with self.batch():
            self._unregister(node_id)
        log.info("broker %d stopped", node_id)

    def _unregister(self, node_id: int) -> None:
        """The broker is gone (a clean stop or a kill, as Kafka's controller fences a broker whose session
        ended): it leaves every ISR but the last, and the partitions it led elect a new leader from their ISR
        (``leader_and_isr_without``)."""
        live = set(self.live_broker_ids())
        for topic in list(self._topics.values()):
            changed = False
            unclean = self.unclean_leader_election(topic)
            for index, p in enumerate(topic.partitions):
                if node_id not in p.replicas:
                    continue
                leader, isr = leader_and_isr_without(p, node_id, live, unclean)
                if (leader, isr) != (p.leader, p.isr):
                    self._elect(topic, index, leader, isr)
                    changed = True
            if changed:
                self._record_topic(topic)  # once per topic, not per partition: a broker may lead thousands
                self._notify(topic)  # the leaving broker too: it stops leading before it stops serving
        self._listeners.pop(node_id, None)
        self._notify_brokers()

    def _elect(self, topic: TopicRegistration, index: int, leader: int, isr: list[int] | None = None) -> None:
        """The controller's own change, at the epochs it holds; the caller persists."""
        p = topic.partitions[index]
        self._alter(topic, index, p.leader_epoch, p.partition_epoch, leader, p.isr if isr is None else isr,
                    persist=False)

    # -- partition state: compare-and-set ----------------------------------------------------------------

    async def alter_partition(self, name: str, index: int, leader_epoch: int, partition_epoch: int,
                        leader: int, isr: list[int]) -> PartitionRegistration:
        topic = self._topics.get(name)
        if topic is None or not 0 <= index < len(topic.partitions):
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{name}-{index}")
        check_isr(topic.partitions[index], leader, isr)
        p = self._alter(topic, index, leader_epoch, partition_epoch, leader, isr)
        self._notify(topic)
        return p

    def _alter(self, topic: TopicRegistration, index: int, leader_epoch: int, partition_epoch: int,
               leader: int, isr: list[int], persist: bool = True) -> PartitionRegistration:
        p = topic.partitions[index]
        check_epochs(f"{topic.name}-{index}", p, leader_epoch, partition_epoch)
        new = partition_change(p, set(self.live_broker_ids()), leader, isr)
        topic.partitions[index] = new
        if persist:
            self._record_topic(topic)
        return new

    async def write_partition(self, name: str, index: int, old: PartitionRegistration,
                              new: PartitionRegistration) -> PartitionRegistration:
        topic = self._topics.get(name)
        if topic is None or not 0 <= index < len(topic.partitions):
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{name}-{index}")
        check_epochs(f"{name}-{index}", topic.partitions[index], old.leader_epoch, old.partition_epoch)
        topic.partitions[index] = new
        self._record_topic(topic)
        self._notify(topic)
        return new

    # -- topics ------------------------------------------------------------------------------------------

    async def create_topic(self, name: str, num_partitions: int, replication_factor: int,
                           assignments: list[list[int]] | None, configs: dict[str, str],
                           validate_only: bool = False, topic_id: uuid.UUID | None = None,
                           prepared: list[PartitionRegistration] | None = None) -> TopicRegistration:
        topic = new_topic(name, num_partitions, replication_factor, assignments, configs, topic_id,
                          exists=name in self._topics, known=set(self._brokers), live=self.live_broker_ids(),
                          racks=self.live_racks(), prepared=prepared)
        if validate_only:
            return topic
        self._topics[name] = topic
        self._record_topic(topic)
        self._notify(topic)
        log.info("created topic %s with %d partitions", name, len(topic.partitions))
        return topic

    async def create_partitions(self, name: str, count: int, assignments: list[list[int]] | None,
                                validate_only: bool = False,
                                prepared: list[PartitionRegistration] | None = None) -> TopicRegistration:
        topic = self._topics[name]
        added = grown_partitions(topic, count, assignments, set(self._brokers), self.live_broker_ids(),
                                 self.live_racks(), prepared)
        if validate_only:  # what it would be
            return TopicRegistration(topic.name, topic.topic_id, dict(topic.configs), topic.partitions + added)
        topic.partitions = topic.partitions + added
        self._record_topic(topic)
        self._notify(topic)
        return topic

    async def delete_topic(self, name: str) -> None:
        topic = self._topics.pop(name)
        self._legacy = [t for t in self._legacy if t is not topic]
        self._record({"op": "delete_topic", "name": name})
        for listener in list(self._listeners.values()):
            listener.on_topic_deleted(topic)
        self._changed()
        log.info("deleted topic %s", name)

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        topic = self._topics[name]
        topic.configs = dict(configs)
        self._record_topic(topic)
        self._notify(topic)

    def close(self) -> None:
        self._store.close()

    # -- ids ---------------------------------------------------------------------------------------------

    def feature_levels(self) -> tuple[dict[str, int], int]:
        return dict(self._doc.get("feature_levels", {})), self._doc.get("feature_levels_epoch", 0)

    async def set_feature_levels(self, levels: dict[str, int]) -> None:
        with self.batch():
            self._doc["feature_levels"] = {**self._doc.get("feature_levels", {}), **levels}
            self._doc["feature_levels_epoch"] = self._doc.get("feature_levels_epoch", 0) + 1
            self._record_fact("feature_levels")
            self._record_fact("feature_levels_epoch")

    def client_metrics_subscriptions(self) -> dict[str, dict[str, str]]:
        return {name: dict(c) for name, c in self._doc.get("client_metrics", {}).items()}

    async def set_client_metrics_subscription(self, name: str, configs: dict[str, str]) -> None:
        self._doc["client_metrics"] = with_configs(self.client_metrics_subscriptions(), name, configs)
        self._record_fact("client_metrics")

    def group_configs(self) -> dict[str, dict[str, str]]:
        return {name: dict(c) for name, c in self._doc.get("group_configs", {}).items()}

    async def set_group_configs(self, group_id: str, configs: dict[str, str]) -> None:
        self._doc["group_configs"] = with_configs(self.group_configs(), group_id, configs)
        self._record_fact("group_configs")

    def client_quotas(self) -> dict[tuple, dict[str, float]]:
        return self._client_quotas

    async def alter_client_quotas(self, changes: dict[tuple, dict[str, float]]) -> None:
        quotas = with_quotas(self._client_quotas, changes)
        self._doc["client_quotas"] = quotas_to_json(quotas)
        self._record_fact("client_quotas")
        self._client_quotas = quotas

    async def allocate_producer_ids(self) -> tuple[int, int]:
        first = self._doc.get("producer_id_block_end", 0)
        self._doc["producer_id_block_end"] = first + PRODUCER_ID_BLOCK_SIZE
        self._record_fact("producer_id_block_end")
        return first, first + PRODUCER_ID_BLOCK_SIZE
