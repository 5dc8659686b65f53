"""What a scenario runs on: the scenario registry, a connection on kbroker's own client
(kbroker.client), and the Session that records each answer, normalised (normalize.py), under its step's label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..client.blocking import BlockingConnection
from ..wire.messages import BY_KEY
from .normalize import Normalizer

CLIENT_ID = "kbroker-conformance"
TIMEOUT_S = 15.0


class ScenarioError(Exception):
    """The scenario's premise failed (a set-up step did not work); the scenario's answer records it."""


@dataclass
class Scenario:
    name: str
    api_key: int
    versions: tuple[int, ...]
    func: Callable
    doc: str = ""
    cluster: bool = False  # runs on a cluster of three brokers (node ids 0, 1, 2) with a ClusterSession


SCENARIOS: list[Scenario] = []


def scenario(api_key: int, versions: tuple[int, ...], cluster: bool = False):
    """Register a scenario for ``api_key``, run once for each of ``versions`` (``cluster``: against a
    cluster of three brokers, with a ClusterSession)."""

    def register(func):
        SCENARIOS.append(Scenario(func.__name__, api_key, tuple(versions), func, (func.__doc__ or "").strip(),
                                  cluster))
        return func

    return register


class Connection(BlockingConnection):
    """A connection on kbroker's own client core (kbroker.client), addressed by "host:port"."""

    def __init__(self, bootstrap: str, timeout_s: float = TIMEOUT_S):
        host, _, port = bootstrap.rpartition(":")
        super().__init__(host or "127.0.0.1", int(port), client_id=CLIENT_ID, timeout_s=timeout_s)

    def call(self, api_key: int, version: int, request):
        return self.request(api_key, version, request)


def api_versions(bootstrap: str) -> dict[int, tuple[int, int]]:
    from ..wire.messages import api_versions as av

    c = Connection(bootstrap)
    try:
        r = c.call(18, 3, av.ApiVersionsRequest(client_software_name=CLIENT_ID, client_software_version="1"))
    finally:
        c.close()
    return {k.api_key: (k.min_version, k.max_version) for k in r.api_keys}


class Session:
    """One scenario at one version against one broker."""

    def __init__(self, bootstrap: str, token: str, served: dict[int, tuple[int, int]], self_node_id: int | None,
                 sasl_bootstrap: str | None = None):
        self.bootstrap = bootstrap
        self.sasl_bootstrap = sasl_bootstrap  # the SASL_PLAINTEXT listener (realkafka.security_settings)
        self.token = token
        self.served = served
        self.norm = Normalizer(token, self_node_id)
        self.answers: dict[str, Any] = {}
        self._conn: Connection | None = None

    def name(self, suffix: str) -> str:
        """A topic, group or transactional id unique to this run."""
        return f"{self.token}-{suffix}"

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = Connection(self.bootstrap)
        return self._conn

    def new_connection(self) -> Connection:
        return Connection(self.bootstrap)

    def sasl_connection(self) -> Connection:
        """A connection to the SASL listener, not yet authenticated."""
        if not self.sasl_bootstrap:
            raise ScenarioError("the broker was started without the suite's SASL_PLAINTEXT listener")
        return Connection(self.sasl_bootstrap)

    def login_plain(self, user: str, password: str) -> Connection:
        """A connection to the SASL listener logged in with PLAIN (set-up: not recorded)."""
        from ..wire.messages import sasl_authenticate as sa, sasl_handshake as sh

        c = self.sasl_connection()
        c.call(17, 1, sh.SaslHandshakeRequest(mechanism="PLAIN"))
        r = c.call(36, 2, sa.SaslAuthenticateRequest(auth_bytes=f"\0{user}\0{password}".encode()))
        if r.error_code:
            c.close()
            raise ScenarioError(f"PLAIN login of {user}: error {r.error_code} {r.error_message}")
        return c

    def close(self) -> None:
        if self._conn:
            self._conn.close()
            self._conn = None

    def serves(self, api_key: int, version: int) -> bool:
        lo, hi = self.served.get(api_key, (None, None))
        return lo is not None and lo <= version <= hi

    def call(self, label: str, api_key: int, version: int, request, conn: Connection | None = None,
             record: bool = True):
        """Send one request; record its normalised answer under ``label``. A version the broker does not
        advertise is recorded as such and not sent (the broker would close the connection)."""
        if not self.serves(api_key, version):
            if record:
                self.answers[label] = {"not_served": f"{BY_KEY[api_key].NAME} v{version}"}
            return None
        try:
            answer = (conn or self.conn).call(api_key, version, request)
        except (OSError, ConnectionError) as e:
            if record:
                self.answers[label] = {"connection": type(e).__name__}
            if conn is None:
                self.close()
            return None
        if record:
            self.answers[label] = self.norm(answer.to_dict())
        return answer

    def note(self, label: str, value: Any) -> None:
        """Record a derived observation (for example whether the connection was closed)."""
        self.answers[label] = self.norm(value)

    # -- set-up helpers (not recorded) -------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
        from ..wire.messages import create_topics as ct

        req = ct.CreateTopicsRequest(topics=[ct.CreateTopicsRequest.CreatableTopic(
            name=name, num_partitions=partitions, replication_factor=1,
            configs=[ct.CreateTopicsRequest.CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()])],
            timeout_ms=10000)
        r = self.conn.call(19, 5, req)
        if r.topics[0].error_code not in (0, 36):
            raise ScenarioError(f"creating {name}: error {r.topics[0].error_code} {r.topics[0].error_message}")
        self.wait_for_topic(name, partitions)

    def wait_for_topic(self, name: str, partitions: int, timeout_s: float = 10.0) -> None:
        from ..wire.messages import metadata as md

        deadline = time.monotonic() + timeout_s
        while True:
            r = self.conn.call(3, 12, md.MetadataRequest(
                topics=[md.MetadataRequest.MetadataRequestTopic(name=name)], allow_auto_topic_creation=False))
            t = r.topics[0] if r.topics else None
            if t and t.error_code == 0 and len(t.partitions) == partitions and all(
                    p.leader_id >= 0 for p in t.partitions) and self._partitions_served(name, partitions):
                return
            if time.monotonic() > deadline:
                raise ScenarioError(f"topic {name} not ready after {timeout_s} s")
            time.sleep(0.02)

    def _partitions_served(self, name: str, partitions: int) -> bool:
        """Kafka lists a new partition's leader in Metadata a moment before the broker serves it (answers
        NOT_LEADER_OR_FOLLOWER meanwhile); ListOffsets answering without error says it is served."""
        from ..wire.messages import list_offsets as lo

        r = self.conn.call(2, 7, lo.ListOffsetsRequest(replica_id=-1, topics=[lo.ListOffsetsRequest.ListOffsetsTopic(
            name=name, partitions=[lo.ListOffsetsRequest.ListOffsetsPartition(partition_index=i, timestamp=-1)
                                   for i in range(partitions)])]))
        return all(p.error_code == 0 for t in r.topics for p in t.partitions)

    def topic_id(self, name: str):
        from ..wire.messages import metadata as md

        r = self.conn.call(3, 12, md.MetadataRequest(topics=[md.MetadataRequest.MetadataRequestTopic(name=name)],
                                                     allow_auto_topic_creation=False))
        return r.topics[0].topic_id

    def _group_coordinator_loaded(self, group: str) -> bool:
        """Kafka answers FindCoordinator before the group coordinator has loaded its partition; until then
        group requests fail with COORDINATOR_LOAD_IN_PROGRESS or NOT_COORDINATOR. DescribeGroups tells."""
        from ..wire.messages import describe_groups as dg

        r = self.conn.call(15, 5, dg.DescribeGroupsRequest(groups=[group]))
        return r.groups[0].error_code == 0

    def find_coordinator(self, key: str, key_type: int = 0, timeout_s: float = 10.0) -> Connection:
        """A connection to the coordinator of ``key`` once it is loaded (a single node: the broker itself)."""
        from ..wire.messages import find_coordinator as fc

        deadline = time.monotonic() + timeout_s
        while True:
            r = self.conn.call(10, 4, fc.FindCoordinatorRequest(key_type=key_type, coordinator_keys=[key]))
            c = r.coordinators[0]
            if c.error_code == 0 and (key_type != 0 or self._group_coordinator_loaded(key)):
                return self.conn
            if time.monotonic() > deadline:
                raise ScenarioError(f"no coordinator for {key}: error {c.error_code}")
            time.sleep(0.05)


def self_node_id(bootstrap: str) -> int | None:
    from ..wire.messages import metadata as md

    c = Connection(bootstrap)
    try:
        r = c.call(3, 12, md.MetadataRequest(topics=[], allow_auto_topic_creation=False))
    finally:
        c.close()
    host, _, port = bootstrap.rpartition(":")
    for b in r.brokers:
        if b.port == int(port):
            return b.node_id
    return r.brokers[0].node_id if r.brokers else None


# -- clusters ----------------------------------------------------------------------------------------------------

class ClusterNodes(Protocol):
    """What a cluster scenario may do to the brokers: a RealKafkaCluster, or runner.KbrokerClusterNodes over
    ``Broker(brokers=3)``. Node ids are the brokers' own (0, 1, 2 on both)."""

    node_ids: list[int]

    def address(self, node_id: int) -> str: ...

    def stop_node(self, node_id: int) -> None: ...

    def kill_node(self, node_id: int) -> None: ...

    def start_node(self, node_id: int) -> None: ...


class ClusterSession(Session):
    """One cluster scenario at one version: a Session whose calls go to the lowest running broker unless a
    connection is given (``s.to(node)``), and which stops, kills and starts brokers. ``heal`` starts again
    whatever the scenario left down, so every scenario begins with every broker up."""

    def __init__(self, nodes: ClusterNodes, token: str, served: dict[int, tuple[int, int]]):
        super().__init__(nodes.address(nodes.node_ids[0]), token, served, None)
        self.norm = Normalizer(token, None, cluster=True)
        self.nodes = nodes
        self.down: set[int] = set()
        self._conns: dict[int, Connection] = {}

    @property
    def conn(self) -> Connection:
        return self.to(min(n for n in self.nodes.node_ids if n not in self.down))

    def to(self, node_id: int) -> Connection:
        """The session's connection to one broker."""
        if node_id not in self._conns:
            self._conns[node_id] = Connection(self.nodes.address(node_id))
        return self._conns[node_id]

    def _drop(self, node_id: int) -> None:
        c = self._conns.pop(node_id, None)
        if c is not None:
            c.close()

    def close(self) -> None:
        for node_id in list(self._conns):
            self._drop(node_id)

    def stop(self, node_id: int) -> None:
        self._drop(node_id)
        self.nodes.stop_node(node_id)
        self.down.add(node_id)

    def kill(self, node_id: int) -> None:
        self._drop(node_id)
        self.nodes.kill_node(node_id)
        self.down.add(node_id)

    def start(self, node_id: int) -> None:
        self.nodes.start_node(node_id)
        self.down.discard(node_id)

    def heal(self) -> None:
        for node_id in sorted(self.down):
            self.start(node_id)

    def partitions(self, topic: str, via: int):
        """The topic's partitions in ``via``'s Metadata (v12), by index; {} when it does not list the topic."""
        from ..wire.messages import metadata as md

        r = self.to(via).call(3, 12, md.MetadataRequest(
            topics=[md.MetadataRequest.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False))
        t = r.topics[0] if r.topics else None
        return {} if t is None or t.error_code else {p.partition_index: p for p in t.partitions}

    def wait_until(self, what: str, condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
        """Polls ``condition`` (a few Metadata requests) until it holds: each broker applies the controller's
        changes when they reach it, and Kafka's controller notices a killed broker only when its session
        times out."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise ScenarioError(f"not so after {timeout_s} s: {what}")
            time.sleep(0.05)

    def create_assigned(self, name: str, assignment: list[list[int]], configs: dict[str, str] | None = None) -> None:
        """A topic whose partition i has the replicas ``assignment[i]`` (the first its leader); returns once
        every running broker lists it with every replica in sync and each leader serves its partition."""
        from ..wire.messages import create_topics as ct, list_offsets as lo

        T = ct.CreateTopicsRequest
        r = self.conn.call(19, 5, T(timeout_ms=10000, topics=[T.CreatableTopic(
            name=name, num_partitions=-1, replication_factor=-1,
            assignments=[T.CreatableReplicaAssignment(partition_index=i, broker_ids=list(a))
                         for i, a in enumerate(assignment)],
            configs=[T.CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()])]))
        if r.topics[0].error_code:
            raise ScenarioError(f"creating {name}: error {r.topics[0].error_code} {r.topics[0].error_message}")
        running = [n for n in self.nodes.node_ids if n not in self.down]

        def placed() -> bool:
            for via in running:
                ps = self.partitions(name, via)
                if len(ps) != len(assignment) or any(
                        ps[i].leader_id != a[0] or sorted(ps[i].isr_nodes) != sorted(a) for i, a in enumerate(assignment)):
                    return False
            for i, a in enumerate(assignment):
                ans = self.to(a[0]).call(2, 7, lo.ListOffsetsRequest(replica_id=-1, topics=[
                    lo.ListOffsetsRequest.ListOffsetsTopic(name=name, partitions=[
                        lo.ListOffsetsRequest.ListOffsetsPartition(partition_index=i, timestamp=-1)])]))
                if ans.topics[0].partitions[0].error_code:
                    return False
            return True
        self.wait_until(f"{name} placed as {assignment} with full ISRs", placed)
