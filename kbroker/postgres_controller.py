"""The controller of brokers in separate processes, over PostgreSQL (``kbroker serve --node-id N --cluster
postgresql://...``): the cluster's metadata lives in the database, as Kafka's lived in ZooKeeper, and the
database is the quorum (no consensus algorithm of kbroker's own).

Tables, created on first use (under a transaction-level advisory lock, so brokers starting together do not
race): ``kbroker_cluster`` (one row: cluster id, the controller's node id and epoch, the coordinators'
broker, the end of the last producer-id block, the brokers' version), ``kbroker_brokers`` (node id,
endpoints, rack, alive), ``kbroker_topics`` (name, id, config overrides, version) and
``kbroker_partitions`` (replicas, ISR, leader, leader epoch, partition epoch) and ``kbroker_client_quotas``
(an entity as JSON, its quota values; changed in one transaction that notifies ``{"quotas": true}``, after which
every broker re-reads the whole table into its image), ``kbroker_group_configs`` (a group id, its GROUP
configs; the same way, with ``{"group_configs": true}``), ``kbroker_client_metrics`` (a client metrics
subscription's name, its CLIENT_METRICS configs; ``{"client_metrics": true}``) and ``kbroker_features`` (a
feature's finalized level, with the features epoch in ``kbroker_cluster``, raised by every UpdateFeatures;
``{"features": true}``).

Theory of operation:

- **Liveness.** A broker holds a session-level advisory lock keyed by its node id on a connection of its
  own, which does nothing else. When the process dies (kill -9 too) or is cut off, its backend ends and the
  lock goes: that is the signal, as an ephemeral znode was. Registration takes the lock first
  (``pg_try_advisory_lock``: a second broker with the same node id is refused), then marks the broker alive.
- **The controller.** Every broker waits, on a thread and connection of its own, for the controller lock
  (``pg_advisory_lock``); the one holding it is the controller (its node id is written into
  ``kbroker_cluster``: Metadata's and DescribeCluster's controller id). When it dies the lock is released and
  a waiting broker takes over at once. The controller checks every ``LIVENESS_CHECK_S`` which alive brokers
  no longer hold their lock, in one statement (``pg_locks`` read in the same UPDATE that marks them dead, so a
  broker that registers meanwhile is never marked dead), and applies the in-process controller's rule
  (``controller.leader_and_isr_for_live``, built on ``leader_and_isr_without``): a broker that is not alive
  leaves every ISR it is in, led or followed, but never the last member; a partition it led gets the first
  live replica in assignment order that is in the ISR (a live replica outside the ISR only with
  ``unclean.leader.election.enable``), else no leader with the ISR kept.
- **Compare-and-set.** Every change of a partition's state is one conditional UPDATE on (leader epoch,
  partition epoch), as ``alter_partition`` promises: a stale caller gets FENCED_LEADER_EPOCH or
  INVALID_UPDATE_VERSION and nothing changes. A broker that registers leads again, in one UPDATE, the
  partitions whose ISR names it and that have no leader (or still name it: it restarted before the
  controller saw it die), with the leader epoch up.
- **Notifications and the image.** Every change NOTIFYs one channel with what changed (a topic's name, a
  deleted topic's id, or "brokers"), in the same transaction. Each broker LISTENs on a thread of its own,
  re-reads what a notification names (one consistent snapshot), and hands the result to the event loop with
  ``call_soon_threadsafe``; reads (``brokers``, ``topics``, ``topic``, ``controller_id``) answer from that
  image and never touch the database. Topics and the broker list carry a version bumped by every change: a
  re-read replaces the image at an equal or newer version (the database is the truth), a broker's own change
  is applied at once at a newer one, so a stale re-read never undoes a newer state. Deleted topic ids are
  remembered, so a late re-read of a deleted topic never brings it back.

Concurrency: the change methods are coroutines (the interface's shape): each runs its one short transaction
(with a ``statement_timeout``) on a worker thread of its own, with this broker's change connection, so the
event loop serves clients meanwhile; the worker takes changes one at a time, in the order they were asked.
Back on the loop, the change's result is applied to the image before the coroutine returns, so the asking
broker sees its change at once (a notification's re-read of the same version, arriving before or after, is
applied only if newer). The listener and the controller threads never touch the image; they only read and
write the database and post to the loop.

Losing the database: a broker's session has TCP keepalives and a user timeout on both ends, so a cut-off
broker loses its lock within seconds; a thread pings the session every ``SESSION_PING_S``. When it is gone
(the database restarted, the network failed, its backend was terminated), the controller marks the broker
dead and elects other leaders for its partitions; the broker itself is fenced, as Kafka fences a broker
whose session expired: its image shows no leader wherever it led, so produces are refused, acks=all waits
answer NOT_LEADER_OR_FOLLOWER and nothing is acknowledged on a leadership it may no longer hold. It then
registers again (retrying until its old lock is released and the database answers), which lifts the fence
and leads again, at a new leader epoch, what still waits for it. The change connection is replaced once it
broke (the change that found out is tried once more on a new one); the listener reads everything again on a
new one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import threading
import uuid

import psycopg
from psycopg.types.json import Jsonb

from .controller import (NO_LEADER, PRODUCER_ID_BLOCK_SIZE, BrokerRegistration, Controller, ImageReads,
                         MetadataListener, PartitionRegistration, TopicRegistration,
                         check_epochs, grown_partitions, leader_and_isr_for_live, new_topic, partition_change,
                         quotas_from_json, with_configs, with_quotas)
from .errors import ErrorCode, KafkaError
from .uuids import random_uuid

log = logging.getLogger("kbroker.controller")

CHANNEL = "kbroker_cluster"
# Notifications naming a whole table every broker re-reads into its image (``PostgresController._facts``).
FACTS = ("quotas", "group_configs", "client_metrics", "features")
# Advisory lock keys (key1, key2): key1 names what the lock is for, key2 the node id (0 for the others).
LOCK_BROKER = 0x6B620001
LOCK_CONTROLLER = 0x6B620002
LOCK_SCHEMA = 0x6B620003
STATEMENT_TIMEOUT_MS = 5000
LIVENESS_CHECK_S = 0.25  # how often the controller looks for brokers whose lock is gone
LISTEN_WAKE_S = 0.5  # how often the listener thread looks whether it should stop
SESSION_PING_S = 1.0  # how often a broker checks that its own session (its liveness lock) is still there
KEEPALIVE_IDLE_S, KEEPALIVE_COUNT, SESSION_TIMEOUT_MS = 2, 3, 5000  # a silent peer is dropped after ~5 s

SCHEMA = """
CREATE TABLE IF NOT EXISTS kbroker_cluster (
    id int PRIMARY KEY CHECK (id = 1),
    cluster_id text NOT NULL,
    controller_id int NOT NULL DEFAULT -1,
    controller_epoch bigint NOT NULL DEFAULT 0,
    coordinator_id int,
    producer_id_block_end bigint NOT NULL DEFAULT 0,
    brokers_version bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS kbroker_brokers (
    node_id int PRIMARY KEY,
    endpoints jsonb NOT NULL,
    rack text,
    alive boolean NOT NULL
);
CREATE TABLE IF NOT EXISTS kbroker_topics (
    name text PRIMARY KEY,
    topic_id uuid NOT NULL UNIQUE,
    configs jsonb NOT NULL,
    version bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS kbroker_partitions (
    topic text NOT NULL REFERENCES kbroker_topics (name) ON DELETE CASCADE,
    idx int NOT NULL,
    replicas int[] NOT NULL,
    isr int[] NOT NULL,
    leader int NOT NULL,
    leader_epoch int NOT NULL,
    partition_epoch int NOT NULL,
    PRIMARY KEY (topic, idx)
);
ALTER TABLE kbroker_partitions ADD COLUMN IF NOT EXISTS adding int[] NOT NULL DEFAULT '{}';
ALTER TABLE kbroker_partitions ADD COLUMN IF NOT EXISTS removing int[] NOT NULL DEFAULT '{}';
CREATE TABLE IF NOT EXISTS kbroker_client_quotas (
    entity text PRIMARY KEY,
    quota_values jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS kbroker_group_configs (
    group_id text PRIMARY KEY,
    configs jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS kbroker_client_metrics (
    name text PRIMARY KEY,
    configs jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS kbroker_features (
    name text PRIMARY KEY,
    level int NOT NULL
);
ALTER TABLE kbroker_cluster ADD COLUMN IF NOT EXISTS features_epoch bigint NOT NULL DEFAULT 0;
"""

_PARTITION_COLUMNS = "topic, idx, replicas, isr, leader, leader_epoch, partition_epoch, adding, removing"

# A statement that changes partitions (the ``changed`` CTE, returning _PARTITION_COLUMNS) also bumps the
# version of their topics and notifies, in the same statement; it returns the changed rows with the version.
_BUMP_AND_NOTIFY = f"""
, bumped AS (
    UPDATE kbroker_topics t SET version = t.version + 1
    FROM (SELECT DISTINCT topic FROM changed) c WHERE t.name = c.topic
    RETURNING t.name, t.version, pg_notify('{CHANNEL}', json_build_object('topic', t.name)::text))
SELECT changed.topic, changed.idx, changed.replicas, changed.isr, changed.leader, changed.leader_epoch,
       changed.partition_epoch, bumped.version, changed.adding, changed.removing
FROM changed JOIN bumped ON bumped.name = changed.topic"""

_CAS = f"""
WITH changed AS (
    UPDATE kbroker_partitions
    SET leader = %(leader)s, isr = %(isr)s::int[], partition_epoch = partition_epoch + 1,
        leader_epoch = leader_epoch + CASE WHEN leader <> %(leader)s THEN 1 ELSE 0 END
    WHERE topic = %(topic)s AND idx = %(idx)s AND leader_epoch = %(leader_epoch)s
      AND partition_epoch = %(partition_epoch)s
    RETURNING {_PARTITION_COLUMNS})""" + _BUMP_AND_NOTIFY

# A whole registration written by the controller (elections, reassignments), on the epochs it read.
_WRITE = f"""
WITH changed AS (
    UPDATE kbroker_partitions
    SET replicas = %(replicas)s::int[], isr = %(isr)s::int[], leader = %(leader)s,
        leader_epoch = %(new_leader_epoch)s, partition_epoch = %(new_partition_epoch)s,
        adding = %(adding)s::int[], removing = %(removing)s::int[]
    WHERE topic = %(topic)s AND idx = %(idx)s AND leader_epoch = %(leader_epoch)s
      AND partition_epoch = %(partition_epoch)s
    RETURNING {_PARTITION_COLUMNS})""" + _BUMP_AND_NOTIFY

_ELECT_RETURNING = f"""
WITH changed AS (
    UPDATE kbroker_partitions
    SET leader = %(node)s, leader_epoch = leader_epoch + 1, partition_epoch = partition_epoch + 1
    WHERE %(node)s = ANY(isr) AND (leader = {NO_LEADER} OR leader = %(node)s)
    RETURNING {_PARTITION_COLUMNS})""" + _BUMP_AND_NOTIFY

# Alive brokers that no longer hold their lock are marked dead, in one statement: pg_locks is read after
# the statement's snapshot, so a broker that took its lock and registered since is never marked dead.
_MARK_DEAD = """
UPDATE kbroker_brokers SET alive = false
WHERE alive AND node_id NOT IN (
    SELECT objid::bigint FROM pg_locks
    WHERE locktype = 'advisory' AND classid = %s AND objsubid = 2 AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
RETURNING node_id"""

_BUMP_BROKERS = f"""
UPDATE kbroker_cluster SET brokers_version = brokers_version + 1 WHERE id = 1
RETURNING brokers_version, pg_notify('{CHANNEL}', '{{"brokers": true}}')"""


def connect(url: str, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS, session: bool = False) -> psycopg.Connection:
    """``session``: the connection holding a broker's liveness lock, with TCP keepalives and a user timeout on
    both ends, so that a broker cut off from the database loses its lock (and learns it) within seconds
    rather than after the kernel's two hours."""
    options = f"-c statement_timeout={statement_timeout_ms}"
    extra = {}
    if session:
        options += (f" -c tcp_keepalives_idle={KEEPALIVE_IDLE_S} -c tcp_keepalives_interval=1"
                    f" -c tcp_keepalives_count={KEEPALIVE_COUNT} -c tcp_user_timeout={SESSION_TIMEOUT_MS}")
        extra = {"keepalives": 1, "keepalives_idle": KEEPALIVE_IDLE_S, "keepalives_interval": 1,
                 "keepalives_count": KEEPALIVE_COUNT, "tcp_user_timeout": SESSION_TIMEOUT_MS}
    return psycopg.connect(url, autocommit=True, connect_timeout=10, options=options, **extra)


def ensure_schema(conn: psycopg.Connection, cluster_id: str | None = None) -> str:
    """Create the tables if they are not there; returns the cluster id (``cluster_id`` or a new one the first
    time)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_SCHEMA,))
        conn.execute(SCHEMA)
        new_id = cluster_id or random_uuid()
        conn.execute("INSERT INTO kbroker_cluster (id, cluster_id) VALUES (1, %s) ON CONFLICT (id) DO NOTHING",
                     (new_id,))
        (stored,) = conn.execute("SELECT cluster_id FROM kbroker_cluster WHERE id = 1").fetchone()
    if cluster_id is not None and stored != cluster_id:
        log.warning("cluster.id %s is not the cluster's (%s): using the cluster's", cluster_id, stored)
    return stored


def _insert_partitions(conn: psycopg.Connection, name: str, first: int,
                       partitions: list[PartitionRegistration]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO kbroker_partitions ({_PARTITION_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(name, first + i, p.replicas, p.isr, p.leader, p.leader_epoch, p.partition_epoch, p.adding, p.removing)
             for i, p in enumerate(partitions)])


def _partition(row) -> PartitionRegistration:
    """(replicas, isr, leader, leader epoch, partition epoch[, adding, removing])."""
    adding, removing = (row[5], row[6]) if len(row) > 5 else ((), ())
    return PartitionRegistration(list(row[0]), list(row[1]), row[2], row[3], row[4], list(adding), list(removing))


def _changed(row) -> PartitionRegistration:
    """A partition of a _BUMP_AND_NOTIFY row."""
    return _partition((*row[2:7], row[8], row[9]))


def read_topics(conn: psycopg.Connection, name: str | None = None) -> list[tuple[TopicRegistration, int]]:
    """Every topic (or the one named) as the database has it, with its version: one statement, so one
    snapshot."""
    rows = conn.execute(
        "SELECT t.name, t.topic_id, t.configs, t.version, p.replicas, p.isr, p.leader, p.leader_epoch, "
        "p.partition_epoch, p.adding, p.removing FROM kbroker_topics t LEFT JOIN kbroker_partitions p ON p.topic = t.name "
        "WHERE %(name)s::text IS NULL OR t.name = %(name)s ORDER BY t.name, p.idx", {"name": name}).fetchall()
    out: dict[str, tuple[TopicRegistration, int]] = {}
    for topic, topic_id, configs, version, *partition in rows:
        if topic not in out:
            out[topic] = (TopicRegistration(topic, topic_id, dict(configs)), version)
        if partition[0] is not None:
            out[topic][0].partitions.append(_partition(partition))
    return list(out.values())


def read_client_quotas(conn: psycopg.Connection) -> dict[tuple, dict[str, float]]:
    rows = conn.execute("SELECT entity, quota_values FROM kbroker_client_quotas").fetchall()
    return quotas_from_json([{"entity": json.loads(entity), "values": values} for entity, values in rows])


# Configs kept by name (GROUP and CLIENT_METRICS config resources): the notification's key -> (table, key column).
_NAMED_CONFIGS = {"group_configs": ("kbroker_group_configs", "group_id"),
                  "client_metrics": ("kbroker_client_metrics", "name")}


def read_named_configs(conn: psycopg.Connection, kind: str) -> dict[str, dict[str, str]]:
    """Every resource of ``kind`` (a key of _NAMED_CONFIGS) and its configs."""
    table, column = _NAMED_CONFIGS[kind]
    return {name: dict(configs) for name, configs in
            conn.execute(f"SELECT {column}, configs FROM {table}").fetchall()}


def write_named_configs(conn: psycopg.Connection, kind: str, name: str, configs: dict[str, str]) -> None:
    """Replace the configs of resource ``name`` of ``kind`` (none: delete it) and tell every broker."""
    table, column = _NAMED_CONFIGS[kind]
    with conn.transaction():
        if configs:
            conn.execute(f"INSERT INTO {table} ({column}, configs) VALUES (%s, %s) "
                         f"ON CONFLICT ({column}) DO UPDATE SET configs = EXCLUDED.configs", (name, Jsonb(dict(configs))))
        else:
            conn.execute(f"DELETE FROM {table} WHERE {column} = %s", (name,))
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({kind: True})))


def read_features(conn: psycopg.Connection) -> tuple[dict[str, int], int]:
    """(the finalized feature levels, the features epoch): one statement."""
    rows = conn.execute("SELECT c.features_epoch, f.name, f.level FROM kbroker_cluster c "
                        "LEFT JOIN kbroker_features f ON true WHERE c.id = 1").fetchall()
    return {name: level for _epoch, name, level in rows if name is not None}, rows[0][0]


def read_brokers(conn: psycopg.Connection) -> tuple[int, dict[int, BrokerRegistration], int, int | None]:
    """(brokers' version, brokers by node id, controller id, coordinators' broker): one statement."""
    rows = conn.execute(
        "SELECT c.brokers_version, c.controller_id, c.coordinator_id, b.node_id, b.endpoints, b.rack, b.alive "
        "FROM kbroker_cluster c LEFT JOIN kbroker_brokers b ON true WHERE c.id = 1").fetchall()
    version, controller, coordinator = rows[0][:3]
    brokers = {n: BrokerRegistration(n, {k: (v[0], v[1]) for k, v in endpoints.items()}, rack, alive)
               for _v, _c, _co, n, endpoints, rack, alive in rows if n is not None}
    return version, brokers, controller, coordinator


def elect_leaders(conn: psycopg.Connection, unclean_default: bool = False) -> tuple[list[tuple], int]:
    """Take the brokers that are not alive out of every ISR and elect leaders for the partitions they led
    (``controller.leader_and_isr_for_live``: the in-process controller's rule, from the live set), each by
    compare-and-set. Returns the changed rows (_BUMP_AND_NOTIFY's) and how many lost a race (changed by
    someone else meanwhile: to look at again)."""
    live = [n for (n,) in conn.execute("SELECT node_id FROM kbroker_brokers WHERE alive").fetchall()]
    rows = conn.execute(
        "SELECT p.topic, p.idx, p.replicas, p.isr, p.leader, p.leader_epoch, p.partition_epoch, t.configs "
        "FROM kbroker_partitions p JOIN kbroker_topics t ON t.name = p.topic "
        "WHERE NOT (p.isr <@ %s::int[]) OR NOT (p.leader = ANY(%s::int[]))", (live, live)).fetchall()
    changed, conflicts = [], 0
    for topic, idx, replicas, isr, leader, leader_epoch, partition_epoch, configs in rows:
        p = PartitionRegistration(list(replicas), list(isr), leader, leader_epoch, partition_epoch)
        unclean = configs.get("unclean.leader.election.enable", "true" if unclean_default else "false")
        choice = leader_and_isr_for_live(p, live, unclean.strip().lower() == "true")
        if choice == (p.leader, p.isr):
            continue
        done = conn.execute(_CAS, {"topic": topic, "idx": idx, "leader_epoch": leader_epoch,
                                   "partition_epoch": partition_epoch, "leader": choice[0],
                                   "isr": choice[1]}).fetchall()
        if done:
            changed.extend(done)
            log.info("%s-%d: leader %d -> %d, isr %s -> %s", topic, idx, leader, choice[0], isr, choice[1])
        else:
            conflicts += 1
    return changed, conflicts


def _write_args(name: str, index: int, old: PartitionRegistration, new: PartitionRegistration) -> dict:
    return {"topic": name, "idx": index, "leader_epoch": old.leader_epoch, "partition_epoch": old.partition_epoch,
            "replicas": new.replicas, "isr": new.isr, "leader": new.leader, "new_leader_epoch": new.leader_epoch,
            "new_partition_epoch": new.partition_epoch, "adding": new.adding, "removing": new.removing}


class PostgresController(ImageReads, Controller):
    """The controller of one broker process over the cluster's PostgreSQL database; see the module docstring.
    Made on the event loop that will run the broker (notifications are posted to it)."""

    def __init__(self, url: str, node_id: int, *, cluster_id: str | None = None,
                 unclean_leader_election: bool = False, liveness_check_s: float = LIVENESS_CHECK_S):
        self._loop = asyncio.get_running_loop()
        self._url = url
        self.node_id = node_id
        self._unclean = unclean_leader_election
        self.unclean_leader_election_default = "true" if unclean_leader_election else "false"
        self._check_s = liveness_check_s
        self._stop = threading.Event()
        self._listener: MetadataListener | None = None
        self._brokers: dict[int, BrokerRegistration] = {}
        self._brokers_version = -1
        self._controller = -1
        self._coordinator: int | None = None
        self._topics: dict[str, TopicRegistration] = {}
        self._versions: dict[str, int] = {}  # topic name -> version of the image's registration
        self._deleted: set[uuid.UUID] = set()  # ids of deleted topics: a late re-read never revives one
        self._quotas: dict[tuple, dict[str, float]] = {}
        self._named_configs: dict[str, dict[str, dict[str, str]]] = {kind: {} for kind in _NAMED_CONFIGS}
        self._features: tuple[dict[str, int], int] = ({}, 0)
        self._write_conn = connect(url)  # this broker's changes, on the worker thread (``_conn``)
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"kbroker-changes-{node_id}")
        self._fenced = False  # the session ended and the broker is not registered again yet: it leads nothing
        self._reregistering: asyncio.Future | None = None
        self._session: psycopg.Connection | None = None  # holds the liveness lock once registered
        self._registration: BrokerRegistration | None = None
        self._controller_conn: psycopg.Connection | None = None
        self._listen_conn = connect(url)
        try:
            self.cluster_id = ensure_schema(self._conn, cluster_id)
            # The coordinators go to the first broker of the cluster to start (they stay on one broker in
            # this slice), claimed before the broker asks who hosts them.
            self._conn.execute("UPDATE kbroker_cluster SET coordinator_id = %s WHERE id = 1 AND coordinator_id "
                               "IS NULL", (node_id,))
            self._listen_conn.execute(f"LISTEN {CHANNEL}")  # before the image is read: no change is missed
            self._set_brokers(*read_brokers(self._conn))
            for topic, version in read_topics(self._conn):
                self._topics[topic.name], self._versions[topic.name] = topic, version
            for set_fact, read in self._facts().values():
                set_fact(read(self._conn))
        except BaseException:
            self._write_conn.close()
            self._listen_conn.close()
            raise
        self._listen_thread = threading.Thread(target=self._listen, name=f"kbroker-listen-{node_id}", daemon=True)
        self._listen_thread.start()
        self._controller_thread = threading.Thread(target=self._run_for_controller,
                                                   name=f"kbroker-controller-{node_id}", daemon=True)
        self._controller_thread.start()

    @property
    def _conn(self) -> psycopg.Connection:
        """The connection this broker's changes go through; a new one once it broke (the database restarted,
        the network failed: the change that found out failed, the next one goes through)."""
        conn = self._write_conn
        if conn.closed or conn.broken:
            conn = self._write_conn = connect(self._url)
        return conn

    # -- reads: the image (ImageReads), and the controller's id ------------------------------------------

    @property
    def controller_id(self) -> int:
        """The broker holding the controller lock (as it last wrote), if alive."""
        b = self._brokers.get(self._controller)
        return self._controller if b is not None and b.alive else -1

    # -- the image: applying what the database says ----------------------------------------------------

    def _set_brokers(self, version: int, brokers: dict[int, BrokerRegistration], controller: int,
                     coordinator: int | None, newer_only: bool = False) -> None:
        if version < self._brokers_version or (newer_only and version == self._brokers_version):
            return
        changed = (brokers, controller) != (self._brokers, self._controller)
        self._brokers_version, self._brokers, self._controller = version, brokers, controller
        self._coordinator = coordinator
        if changed and self._listener is not None:
            self._listener.on_brokers_change()

    def _set_topic(self, topic: TopicRegistration, version: int, newer_only: bool = False) -> None:
        if topic.topic_id in self._deleted:
            return
        current = self._topics.get(topic.name)
        if current is not None and current.topic_id == topic.topic_id:
            known = self._versions[topic.name]
            if version < known or (newer_only and version == known):
                return
        self._versions[topic.name] = version
        if current == topic:
            return
        self._topics[topic.name] = topic
        if self._listener is not None:
            self._listener.on_topic_change(self._seen(topic))

    def _drop_topic(self, name: str, topic_id: uuid.UUID) -> None:
        self._deleted.add(topic_id)
        current = self._topics.get(name)
        if current is None or current.topic_id != topic_id:
            return
        del self._topics[name]
        self._versions.pop(name, None)
        if self._listener is not None:
            self._listener.on_topic_deleted(current)

    def _apply_partition_rows(self, rows: list[tuple]) -> None:
        """This broker's own partition changes (_BUMP_AND_NOTIFY's rows), applied at once."""
        by_topic: dict[str, list[tuple]] = {}
        for row in rows:
            by_topic.setdefault(row[0], []).append(row)
        for name, changes in by_topic.items():
            current = self._topics.get(name)
            if current is None or any(row[1] >= len(current.partitions) for row in changes):
                continue  # the image is behind: the notification's re-read brings the topic
            partitions = list(current.partitions)
            for row in changes:
                partitions[row[1]] = _changed(row)
            self._set_topic(TopicRegistration(name, current.topic_id, dict(current.configs), partitions),
                            max(row[7] for row in changes), newer_only=True)

    def _apply_notified(self, brokers, topics: list, deleted: list) -> None:
        """On the loop: what the listener thread re-read."""
        if brokers is not None:
            self._set_brokers(*brokers)
        for name, topic_id in deleted:
            self._drop_topic(name, topic_id)
        for topic, version in topics:
            self._set_topic(topic, version)

    def _facts(self) -> dict:
        """What a notification may name besides brokers and topics (FACTS): its key -> (the image's setter,
        run on the loop; the reader of the whole table, run on the listener's connection)."""
        return {"quotas": (self._set_quotas, read_client_quotas),
                "group_configs": (functools.partial(self._set_named_configs, "group_configs"),
                                  functools.partial(read_named_configs, kind="group_configs")),
                "client_metrics": (functools.partial(self._set_named_configs, "client_metrics"),
                                   functools.partial(read_named_configs, kind="client_metrics")),
                "features": (self._set_features, read_features)}

    # -- the listener thread -----------------------------------------------------------------------------

    def _listen(self) -> None:
        conn = self._listen_conn
        while not self._stop.is_set():
            try:
                notes = list(conn.notifies(timeout=LISTEN_WAKE_S, stop_after=1))
                if not notes:
                    continue
                notes += conn.notifies(timeout=0.005)  # those sent together are read together
                brokers, names, deleted, facts = False, [], [], set()
                for note in notes:
                    change = json.loads(note.payload)
                    fact = next((key for key in change if key in FACTS), None)
                    if fact is not None:
                        facts.add(fact)
                    elif "brokers" in change:
                        brokers = True
                    elif "deleted" in change:
                        deleted.append((change["deleted"], uuid.UUID(change["id"])))
                    elif change["topic"] not in names:
                        names.append(change["topic"])
                read_b = read_brokers(conn) if brokers else None
                topics = [found for n in names for found in read_topics(conn, n)]
                self._loop.call_soon_threadsafe(self._apply_notified, read_b, topics, deleted)
                for fact in facts:
                    set_fact, read = self._facts()[fact]
                    self._loop.call_soon_threadsafe(set_fact, read(conn))
            except Exception:  # noqa: BLE001  a lost connection: read everything again on a new one
                if self._stop.is_set():
                    return
                log.warning("the cluster change listener's connection failed; reconnecting", exc_info=True)
                conn = self._relisten()

    def _relisten(self) -> psycopg.Connection:
        while not self._stop.wait(0.5):
            conn = None
            try:
                conn = connect(self._url)
                conn.execute(f"LISTEN {CHANNEL}")
                self._loop.call_soon_threadsafe(self._apply_notified, read_brokers(conn), read_topics(conn), [])
                for set_fact, read in self._facts().values():
                    self._loop.call_soon_threadsafe(set_fact, read(conn))
            except psycopg.Error as e:
                log.warning("cannot reach the cluster's database: %s", e)
                if conn is not None:
                    conn.close()
                continue
            old, self._listen_conn = self._listen_conn, conn
            old.close()
            return conn
        return self._listen_conn

    # -- the controller thread ---------------------------------------------------------------------------

    def _run_for_controller(self) -> None:
        """Wait for the controller lock; holding it, look for dead brokers and elect leaders, until closed."""
        while not self._stop.is_set():
            try:
                conn = self._controller_conn = connect(self._url, statement_timeout_ms=0)
            except psycopg.Error as e:
                log.warning("cannot reach the cluster's database: %s", e)
                self._stop.wait(1.0)
                continue
            try:
                conn.execute("SELECT pg_advisory_lock(%s, 0)", (LOCK_CONTROLLER,))  # until the last one is gone
                if self._stop.is_set():
                    return
                conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
                (epoch,) = conn.execute(
                    "UPDATE kbroker_cluster SET controller_id = %s, controller_epoch = controller_epoch + 1 "
                    "WHERE id = 1 RETURNING controller_epoch", (self.node_id,)).fetchone()
                conn.execute(_BUMP_BROKERS)
                log.info("broker %d is the controller (controller epoch %d)", self.node_id, epoch)
                live: list[int] | None = None
                while True:
                    live = self._check_brokers(conn, live)
                    if self._stop.wait(self._check_s):
                        return
            except psycopg.Error as e:
                if self._stop.is_set():
                    return
                log.warning("the controller's connection failed (%s); standing for controller again", e)
                self._stop.wait(0.5)
            finally:
                self._controller_conn = None
                conn.close()

    def _check_brokers(self, conn: psycopg.Connection, last_live: list[int] | None) -> list[int] | None:
        """One look: mark dead the brokers whose lock is gone; when the live brokers changed, elect leaders
        for partitions without a live one. Returns the live brokers (None: look at the partitions again)."""
        dead = [n for (n,) in conn.execute(_MARK_DEAD, (LOCK_BROKER,)).fetchall()]
        if dead:
            conn.execute(_BUMP_BROKERS)
            log.warning("broker(s) %s lost their session: marked dead", dead)
        live = sorted(n for (n,) in conn.execute("SELECT node_id FROM kbroker_brokers WHERE alive").fetchall())
        if live == last_live and not dead:  # a broker that registered and died between two looks leaves the
            return live                     # live set as it was, but its partitions still need leaders
        _, conflicts = elect_leaders(conn, self._unclean)
        return None if conflicts else live

    # -- the worker thread: every change's round trip ------------------------------------------------------

    async def _db(self, fn, *args):
        """``fn(conn, *args)`` on the worker thread, on this broker's change connection: the loop goes on
        meanwhile, and changes reach the database one at a time, in the order they were asked."""
        return await self._loop.run_in_executor(self._worker, self._on_worker, fn, args)

    def _on_worker(self, fn, args):
        conn = self._conn
        try:
            return fn(conn, *args)
        except psycopg.OperationalError:
            if not (conn.closed or conn.broken):
                raise
        # The connection had broken (the database restarted): once more on a new one. A statement the
        # database did apply before the break fails its check the second time (compare-and-set, names).
        return fn(self._conn, *args)

    # -- brokers -------------------------------------------------------------------------------------

    async def register_broker(self, registration: BrokerRegistration, listener: MetadataListener) -> None:
        node = registration.node_id
        session, state = await self._loop.run_in_executor(self._worker, self._register_in_db, registration)
        self._session, self._registration, self._listener = session, registration, listener
        threading.Thread(target=self._watch_session, args=(session,), name=f"kbroker-session-{node}",
                         daemon=True).start()
        was_fenced, self._fenced = self._fenced, False
        for topic in list(self._topics.values()):
            listener.on_topic_change(topic)  # the new broker's image (unfenced), before anything is elected
        self._set_brokers(*state, newer_only=True)
        listener.on_brokers_change()
        rows = await self._db(lambda conn: conn.execute(_ELECT_RETURNING, {"node": node}).fetchall())
        self._apply_partition_rows(rows)
        log.info("broker %d %s: %s; leads again %d partition(s)", node,
                 "registered again" if was_fenced else "registered", registration.endpoints, len(rows))

    def _register_in_db(self, registration: BrokerRegistration):
        """On the worker: take the liveness lock on a new session and mark the broker alive. Returns the
        session and the brokers as read after."""
        node = registration.node_id
        session = connect(self._url, session=True)
        try:
            (locked,) = session.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_BROKER, node)).fetchone()
            if not locked:
                raise ValueError(f"a broker with node id {node} is already registered and alive")
            endpoints = {name: list(addr) for name, addr in registration.endpoints.items()}
            conn = self._conn
            with conn.transaction():
                conn.execute(
                    "INSERT INTO kbroker_brokers (node_id, endpoints, rack, alive) VALUES (%s, %s, %s, true) "
                    "ON CONFLICT (node_id) DO UPDATE SET endpoints = excluded.endpoints, rack = excluded.rack, "
                    "alive = true", (node, Jsonb(endpoints), registration.rack))
                conn.execute(_BUMP_BROKERS)
                state = read_brokers(conn)
        except BaseException:
            session.close()
            raise
        return session, state

    def _watch_session(self, session: psycopg.Connection) -> None:
        """On a thread: ask the session every SESSION_PING_S whether it is still there; when it is gone (the
        database restarted, the network failed, its backend was terminated), the loop fences the broker and
        registers it again."""
        while not self._stop.wait(SESSION_PING_S) and self._session is session:
            try:
                session.execute("SELECT 1")
            except psycopg.Error:
                if not self._stop.is_set():
                    self._loop.call_soon_threadsafe(self._session_lost, session)
                return

    def _session_lost(self, session: psycopg.Connection) -> None:
        """On the loop: this broker's session ended, so the controller has marked it dead (or will) and
        elects other leaders for its partitions. Until it is registered again it is fenced, as Kafka fences a
        broker whose session expired: it leads nothing (its image shows no leader where it led, so produces
        and acks=all waits answer NOT_LEADER_OR_FOLLOWER and nothing is acknowledged on a stale leadership),
        then it registers again, with new leader epochs, once the database lets it."""
        if self._stop.is_set() or self._session is not session or self._registration is None:
            return
        log.warning("broker %d lost its session with the cluster's database: fenced, registering again",
                    self._registration.node_id)
        self._session = None
        self._loop.run_in_executor(None, session.close)  # may wait for a dead peer: off the loop
        self._fence()
        if self._reregistering is None:
            self._reregistering = asyncio.ensure_future(self._register_again())

    def _fence(self) -> None:
        self._fenced = True
        if self._listener is None:
            return
        node = self.node_id
        for topic in list(self._topics.values()):
            if any(p.leader == node for p in topic.partitions):
                self._listener.on_topic_change(self._seen(topic))

    def _seen(self, topic: TopicRegistration) -> TopicRegistration:
        """``topic`` as this broker may act on it: while fenced, without the leadership it holds."""
        if not self._fenced or not any(p.leader == self.node_id for p in topic.partitions):
            return topic
        return TopicRegistration(topic.name, topic.topic_id, dict(topic.configs), [
            PartitionRegistration(list(p.replicas), list(p.isr), NO_LEADER, p.leader_epoch, p.partition_epoch)
            if p.leader == self.node_id else p for p in topic.partitions])

    async def _register_again(self) -> None:
        try:
            while not self._stop.is_set() and self._registration is not None:
                try:
                    await self.register_broker(self._registration, self._listener)
                    return
                except (psycopg.Error, ValueError, OSError) as e:
                    log.warning("cannot register again yet (%s); trying again", e)
                await asyncio.sleep(SESSION_PING_S)
        finally:
            self._reregistering = None

    async def unregister_broker(self, node_id: int) -> None:
        """Controlled shutdown: this broker is no longer alive, and its partitions elect other leaders now."""
        self._registration = None  # stopping: a lost session is not registered again

        def unregister(conn):
            with conn.transaction():
                conn.execute("UPDATE kbroker_brokers SET alive = false WHERE node_id = %s", (node_id,))
                conn.execute(_BUMP_BROKERS)
                state = read_brokers(conn)
            return state, elect_leaders(conn, self._unclean)[0]
        state, rows = await self._db(unregister)
        self._set_brokers(*state, newer_only=True)
        self._apply_partition_rows(rows)
        log.info("broker %d stopped", node_id)

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

        def create(conn):
            with conn.transaction():
                created = conn.execute(
                    "INSERT INTO kbroker_topics (name, topic_id, configs) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name) DO NOTHING RETURNING version",
                    (name, topic.topic_id, Jsonb(topic.configs))).fetchone()
                if created is None:  # another broker created it first
                    raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
                _insert_partitions(conn, name, 0, topic.partitions)
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({"topic": name})))
            return created[0]
        self._set_topic(topic, await self._db(create))
        log.info("created topic %s with %d partitions", name, len(topic.partitions))
        return topic

    async def create_partitions(self, name: str, count: int, assignments: list[list[int]] | None,
                                validate_only: bool = False,
                                prepared: list[PartitionRegistration] | None = None) -> TopicRegistration:
        topic = self._topics[name]
        current = len(topic.partitions)
        added = grown_partitions(topic, count, assignments, set(self._brokers), self.live_broker_ids(),
                                 self.live_racks(), prepared)
        if validate_only:
            return TopicRegistration(topic.name, topic.topic_id, dict(topic.configs), topic.partitions + added)

        def grow(conn):
            with conn.transaction():
                # The topic's row locked first: two brokers growing it at once take turns, the second refused.
                conn.execute("SELECT 1 FROM kbroker_topics WHERE name = %s FOR UPDATE", (name,))
                (have,) = conn.execute("SELECT count(*) FROM kbroker_partitions WHERE topic = %s",
                                       (name,)).fetchone()
                if have != current:
                    raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                                     f"Topic '{name}' has {have} partitions, not {current}: changed meanwhile.")
                _insert_partitions(conn, name, current, added)
                return conn.execute(
                    "UPDATE kbroker_topics SET version = version + 1 WHERE name = %s "
                    "RETURNING version, pg_notify(%s, json_build_object('topic', name)::text)",
                    (name, CHANNEL)).fetchone()[0]
        version = await self._db(grow)
        grown = TopicRegistration(topic.name, topic.topic_id, dict(topic.configs), topic.partitions + added)
        self._set_topic(grown, version, newer_only=True)
        return grown

    async def delete_topic(self, name: str) -> None:
        row = await self._db(lambda conn: conn.execute(
            "DELETE FROM kbroker_topics WHERE name = %s "
            "RETURNING topic_id, pg_notify(%s, json_build_object('deleted', name, 'id', topic_id)::text)",
            (name, CHANNEL)).fetchone())
        topic = self._topics.get(name)
        topic_id = row[0] if row is not None else topic.topic_id if topic is not None else None
        if topic_id is not None:
            self._drop_topic(name, topic_id)
        log.info("deleted topic %s", name)

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        topic = self._topics[name]
        row = await self._db(lambda conn: conn.execute(
            "UPDATE kbroker_topics SET configs = %s, version = version + 1 WHERE name = %s AND topic_id = %s "
            "RETURNING version, pg_notify(%s, json_build_object('topic', name)::text)",
            (Jsonb(configs), name, topic.topic_id, CHANNEL)).fetchone())
        if row is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' was deleted.")
        now = self._topics.get(name, topic)  # its partitions may have changed while the database answered
        self._set_topic(TopicRegistration(name, topic.topic_id, dict(configs), list(now.partitions)), row[0],
                        newer_only=True)

    # -- partition state: compare-and-set ------------------------------------------------------------------

    async def alter_partition(self, name: str, index: int, leader_epoch: int, partition_epoch: int,
                              leader: int, isr: list[int]) -> PartitionRegistration:
        """The row is read and locked, the epochs checked, and the change (``controller.partition_change``:
        a reassignment whose target is now in sync completes) written in the same transaction, on the worker
        thread."""
        live = set(self.live_broker_ids())  # read on the loop, where the image changes

        def cas(conn):
            with conn.transaction():
                row = conn.execute("SELECT replicas, isr, leader, leader_epoch, partition_epoch, adding, removing "
                                   "FROM kbroker_partitions WHERE topic = %s AND idx = %s FOR UPDATE",
                                   (name, index)).fetchone()
                if row is None:
                    raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{name}-{index}")
                old = _partition(row)
                check_epochs(f"{name}-{index}", old, leader_epoch, partition_epoch)
                new = partition_change(old, live, leader, isr)
                return new, conn.execute(_WRITE, _write_args(name, index, old, new)).fetchall()
        new, rows = await self._db(cas)
        self._apply_partition_rows(rows)
        return new

    async def write_partition(self, name: str, index: int, old: PartitionRegistration,
                              new: PartitionRegistration) -> PartitionRegistration:
        rows = await self._db(lambda conn: conn.execute(_WRITE, _write_args(name, index, old, new)).fetchall())
        if not rows:
            raise KafkaError(ErrorCode.INVALID_UPDATE_VERSION,
                             f"{name}-{index} changed meanwhile (was at partition epoch {old.partition_epoch})")
        self._apply_partition_rows(rows)
        return new

    # -- ids -----------------------------------------------------------------------------------------------

    async def allocate_producer_ids(self) -> tuple[int, int]:
        (end,) = await self._db(lambda conn: conn.execute(
            "UPDATE kbroker_cluster SET producer_id_block_end = producer_id_block_end + %s WHERE id = 1 "
            "RETURNING producer_id_block_end", (PRODUCER_ID_BLOCK_SIZE,)).fetchone())
        return end - PRODUCER_ID_BLOCK_SIZE, end

    # -- client quotas -----------------------------------------------------------------------------------

    def client_quotas(self) -> dict[tuple, dict[str, float]]:
        return self._quotas

    def _set_quotas(self, quotas: dict) -> None:
        """On the loop: the quotas the listener thread re-read."""
        self._quotas = quotas
        told = getattr(self._listener, "on_client_quotas_change", None)
        if told is not None:
            told()

    async def alter_client_quotas(self, changes: dict[tuple, dict[str, float]]) -> None:
        def write(conn):
            with conn.transaction():
                for entity, values in changes.items():
                    key = json.dumps([[t, n] for t, n in entity])
                    if values:
                        conn.execute("INSERT INTO kbroker_client_quotas (entity, quota_values) VALUES (%s, %s) "
                                     "ON CONFLICT (entity) DO UPDATE SET quota_values = EXCLUDED.quota_values",
                                     (key, Jsonb(values)))
                    else:
                        conn.execute("DELETE FROM kbroker_client_quotas WHERE entity = %s", (key,))
                conn.execute("SELECT pg_notify(%s, '{\"quotas\": true}')", (CHANNEL,))
        await self._db(write)
        self._quotas = with_quotas(self._quotas, changes)  # at once for this broker; the others when notified

    # -- configs kept by name: GROUP and CLIENT_METRICS config resources -----------------------------------

    def _set_named_configs(self, kind: str, configs: dict[str, dict[str, str]]) -> None:
        """On the loop: the resources of ``kind`` the listener thread re-read."""
        self._named_configs[kind] = configs

    async def _change_named_configs(self, kind: str, name: str, configs: dict[str, str]) -> None:
        await self._db(write_named_configs, kind, name, configs)
        # At once for this broker; the others when notified.
        self._named_configs[kind] = with_configs(self._named_configs[kind], name, configs)

    def group_configs(self) -> dict[str, dict[str, str]]:
        return {group_id: dict(c) for group_id, c in self._named_configs["group_configs"].items()}

    async def set_group_configs(self, group_id: str, configs: dict[str, str]) -> None:
        await self._change_named_configs("group_configs", group_id, configs)

    def client_metrics_subscriptions(self) -> dict[str, dict[str, str]]:
        return {name: dict(c) for name, c in self._named_configs["client_metrics"].items()}

    async def set_client_metrics_subscription(self, name: str, configs: dict[str, str]) -> None:
        await self._change_named_configs("client_metrics", name, configs)

    # -- feature levels ------------------------------------------------------------------------------------

    def feature_levels(self) -> tuple[dict[str, int], int]:
        return dict(self._features[0]), self._features[1]

    def _set_features(self, features: tuple[dict[str, int], int]) -> None:
        """On the loop: the levels and epoch re-read (by the listener, or after this broker's change); an
        older epoch than the image's is a late re-read and changes nothing."""
        if features[1] >= self._features[1]:
            self._features = features

    async def set_feature_levels(self, levels: dict[str, int]) -> None:
        def write(conn):
            with conn.transaction():
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO kbroker_features (name, level) VALUES (%s, %s) "
                                    "ON CONFLICT (name) DO UPDATE SET level = EXCLUDED.level", list(levels.items()))
                conn.execute("UPDATE kbroker_cluster SET features_epoch = features_epoch + 1 WHERE id = 1")
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({"features": True})))
                return read_features(conn)
        self._set_features(await self._db(write))

    # -- lifecycle -----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop standing for controller (releasing the lock if held), stop listening, end the session (the
        liveness lock goes with it)."""
        self._stop.set()
        ctl = self._controller_conn
        if ctl is not None:
            try:
                ctl.cancel_safe(timeout=2.0)  # a wait for the controller lock ends now
            except Exception:  # noqa: BLE001  it may have closed meanwhile
                pass
        self._controller_thread.join(5.0)
        self._listen_thread.join(LISTEN_WAKE_S + 5.0)
        if self._reregistering is not None:
            self._reregistering.cancel()
        self._worker.shutdown(wait=True)
        for conn in (self._listen_conn, self._session, self._write_conn):
            if conn is not None:
                conn.close()
