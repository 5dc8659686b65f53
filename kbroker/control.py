"""The control plane: what a test can ask of or do to a running broker, beyond the Kafka protocol.

The same operations back ``Broker.control`` (Python, in-process) and the HTTP endpoint
(``kbroker serve --control-port N``, see control_http.py): fault injection, decoded records, group state,
the requests received, waiting for a condition, reset, health. All of them run on the broker's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import time

from .errors import ErrorCode, KafkaError
from .faults import FaultRule, api_key_of
from .metrics import group_lag
from .partition import get_partition_or_error
from .records.batch import iter_batches
from .records.builder import build_batch
from .records.record import Record, decode_records
from .topics import run_in_turns
from .topic_config import TOPIC_CONFIGS, validate_topic_configs
from .wire.messages import NAMES

PRODUCE_VERSION = 9  # what a record produced from the console is appended as (any version >= 3 would do)


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


class RequestLog:
    """The last requests received, for GET /requests."""

    def __init__(self, maxlen: int = 1000):
        self.entries: collections.deque = collections.deque(maxlen=maxlen)

    def record(self, conn, header) -> None:
        self.entries.append((time.time(), header.client_id, header.api_key, header.api_version, conn.id, conn.peer))

    def recent(self, limit: int = 100) -> list[dict]:
        out = []
        for ts, client_id, api_key, version, conn_id, peer in list(self.entries)[-limit:]:
            name = NAMES.get(api_key)
            out.append({"time": ts, "client_id": client_id, "api": name, "api_key": api_key,
                        "api_version": version, "connection": conn_id, "peer": peer})
        return out


def _bytes_field(b) -> dict | None:
    if b is None:
        return None
    raw = bytes(b)
    try:
        return {"encoding": "utf-8", "data": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"encoding": "base64", "data": base64.b64encode(raw).decode()}


def _add_decoded(entry: dict, registry, rec) -> None:
    from .schema_registry.wire_format import decode

    for name, data in (("key", rec.key), ("value", rec.value)):
        decoded = decode(registry, data)
        if decoded is not None:
            entry[f"{name}_decoded"] = decoded


class Control:
    def __init__(self, state, server, broker_server=None, peers=None):
        """``peers``: for a broker of a cluster in one process, a function returning every running broker's
        state; records and offsets are read from a partition's leader and groups from the broker hosting them."""
        self.state = state
        self.server = server
        self.broker_server = broker_server  # its listeners, metrics and addresses, for the console
        self._peers = peers

    def _states(self) -> list:
        return self._peers() if self._peers is not None else [self.state]

    def _coordinator_state(self, group_id: str):
        """The broker here that coordinates the group (this one when none does)."""
        return next((s for s in self._states() if s.groups.hosts(group_id)), self.state)

    def _leader_partition(self, topic: str, index: int):
        """The partition as its leader holds it, on whichever broker here leads it; None: no leader here."""
        for state in self._states():
            t = state.topics.get(topic)
            if t is None:
                return None
            p = get_partition_or_error(t, index)
            if not isinstance(p, int):
                return p
        return None

    def _led(self, t) -> list:
        """The topic's partitions that have a leader here (an offline one has no offsets to show)."""
        return [p for p in (self._leader_partition(t.name, i) for i in range(len(t.partitions))) if p is not None]

    # -- faults --------------------------------------------------------------

    def add_fault(self, spec: dict) -> dict:
        rule = FaultRule.from_dict(spec)
        self.server.faults.add(rule)
        return rule.to_dict()

    def list_faults(self) -> list[dict]:
        return [r.to_dict() for r in self.server.faults.rules]

    def clear_faults(self) -> None:
        self.server.faults.clear()

    # -- inspection ----------------------------------------------------------

    def records(self, topic: str, partition: int = 0, offset: int = 0, limit: int = 100,
                timestamp_ms: int | None = None, newest: bool = False) -> list[dict]:
        """Records from ``offset``; or from the first at or after ``timestamp_ms``; or the ``newest``
        ``limit`` of the partition (read from its leader)."""
        t = self.state.topics.get(topic)
        if t is None:
            raise KeyError(f"unknown topic {topic}")
        p = self._leader_partition(topic, partition)
        if p is None:
            raise KeyError(f"no leader here for partition {topic}-{partition}")
        if newest:
            offset = max(p.log_start_offset, p.high_watermark - limit)
        elif timestamp_ms is not None:
            _ts, found = p.offset_for_timestamp(timestamp_ms)
            offset = p.high_watermark if found < 0 else found
        out: list[dict] = []
        pos_offset = max(offset, p.log_start_offset)
        while len(out) < limit and pos_offset < p.high_watermark:
            chunks = p.read(pos_offset, 1 << 20)
            if not chunks:
                break
            for chunk in chunks:
                for pos, h in iter_batches(chunk):
                    pos_offset = h.last_offset + 1
                    if h.is_control:
                        continue
                    for rec in decode_records(chunk, pos, h):
                        if rec.offset < offset or len(out) >= limit:
                            continue
                        out.append({
                            "offset": rec.offset, "timestamp": rec.timestamp, "key": _bytes_field(rec.key),
                            "value": _bytes_field(rec.value),
                            "headers": [{"key": k, "value": _bytes_field(v)} for k, v in rec.headers],
                        })
                        if self.state.schema_registry is not None:  # values/keys with a registered schema id
                            _add_decoded(out[-1], self.state.schema_registry, rec)
        return out

    def group(self, group_id: str) -> dict:
        state = self._coordinator_state(group_id)
        out = state.describe_group_for_control(group_id)
        out["lag"] = group_lag(state, group_id, self._leader_partition)
        if out.get("group_type") == "share":
            out["share_partitions"] = self._share_partitions(group_id)
        return out

    def _share_partitions(self, group_id: str) -> list[dict]:
        """A share group's in-flight state on every broker here that leads one of its share-partitions
        (KIP-932): start and end offset, the in-flight runs with their state and delivery count, what each
        member holds."""
        rows = []
        for state in self._states():
            for (g, topic_id, index), sp in list(state.share.partitions.items()):
                if g != group_id:
                    continue
                topic = state.topics.by_id.get(topic_id)
                rows.append({"topic": topic.name if topic is not None else None, "partition": index,
                             "leader": state.node_id, **sp.in_flight_summary()})
        return sorted(rows, key=lambda r: (r["topic"] or "", r["partition"]))

    def requests(self, limit: int = 100) -> list[dict]:
        return self.server.request_log.recent(limit)

    # -- the console: topics ----------------------------------------------------------------

    def _topic(self, name: str):
        t = self.state.topics.get(name)
        if t is None:
            raise KeyError(f"unknown topic {name}")
        return t

    def topics(self) -> list[dict]:
        out = []
        for name, t in sorted(self.state.topics.by_name.items()):
            parts = self._led(t)
            out.append({"name": name, "topic_id": str(t.topic_id), "internal": t.is_internal,
                        "partitions": len(t.partitions), "records": sum(p.high_watermark - p.log_start_offset for p in parts),
                        "size_bytes": sum(p.log.size_bytes() for p in parts), "configs": dict(t.configs)})
        return out

    def topic(self, name: str) -> dict:
        t = self._topic(name)
        partitions = [{"partition": p.index, "log_start_offset": p.log_start_offset,
                       "high_watermark": p.high_watermark, "log_end_offset": p.log_end_offset,
                       "last_stable_offset": p.last_stable_offset, "size_bytes": p.log.size_bytes(),
                       "segments": len(p.log.segment_infos())} for p in self._led(t)]
        configs = [{"name": k, "value": t.config(k), "default": k not in t.configs, "type": d.type, "doc": d.doc}
                   for k, d in sorted(TOPIC_CONFIGS.items())]
        return {"name": t.name, "topic_id": str(t.topic_id), "internal": t.is_internal,
                "partitions": partitions, "configs": configs}

    async def create_topic(self, spec: dict) -> dict:
        """``{"name": "t", "partitions": 3, "configs": {"cleanup.policy": "compact"}}``"""
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("a topic needs a name")
        num = int(spec.get("partitions") or self.state.config.num_partitions)
        configs = {str(k): str(v) for k, v in (spec.get("configs") or {}).items() if v not in (None, "")}
        try:
            validate_topic_configs(configs)
            await run_in_turns(self.state.topics, self.state.topics.creation(name, num, configs))
        except KafkaError as e:
            raise ValueError(f"{_code_name(e.code)}: {e.message}") from None
        self.state.changes.notify()
        return self.topic(name)

    async def delete_topic(self, name: str) -> dict:
        await self.state.delete_topic(self._topic(name))
        self.state.changes.notify()
        return {"deleted": name}

    async def set_topic_configs(self, name: str, changes: dict) -> dict:
        """``{"retention.ms": "1000", "cleanup.policy": null}``: set, or back to the default with null."""
        t = self._topic(name)
        new = dict(t.configs)
        for k, v in changes.items():
            if k not in TOPIC_CONFIGS:
                raise ValueError(f"Unknown topic config name: {k}")
            if v is None or v == "":
                new.pop(k, None)
            else:
                new[k] = str(v)
        try:
            validate_topic_configs(new)
        except KafkaError as e:
            raise ValueError(f"{_code_name(e.code)}: {e.message}") from None
        await self.state.set_topic_configs(t, new)
        return self.topic(name)

    def produce(self, name: str, spec: dict) -> dict:
        """One record, appended as a producer's would be: ``{"partition": 0, "key": "k", "value": "v",
        "headers": {"h": "x"}}`` (strings, UTF-8; key and value may be null)."""
        t = self._topic(name)
        partition = int(spec.get("partition") or 0)
        p = self._leader_partition(name, partition)  # appended by the partition's leader
        if p is None:
            raise KeyError(f"unknown partition, or no leader here, {name}-{partition}")

        def enc(v):
            return None if v is None else str(v).encode()
        headers = [(str(k), enc(v)) for k, v in (spec.get("headers") or {}).items()]
        batch = build_batch([Record(0, int(time.time() * 1000), enc(spec.get("key")), enc(spec.get("value")),
                                    headers)])
        try:
            offset, _ = p.append(bytes(batch), t.max_message_bytes, t.log_append_time,
                                 produce_version=PRODUCE_VERSION)
        except KafkaError as e:
            raise ValueError(f"{_code_name(e.code)}: {e.message}") from None
        return {"topic": name, "partition": partition, "offset": offset}

    # -- the console: groups, clients, brokers ------------------------------------------------

    def groups(self) -> list[dict]:
        listed = [(g, state) for state in self._states() for g in state.groups.list_groups(None, None).groups]
        out = []
        for g, state in sorted(listed, key=lambda gs: gs[0].group_id):
            lag = group_lag(state, g.group_id, self._leader_partition)
            out.append({"group_id": g.group_id, "state": g.state, "protocol_type": g.protocol_type,
                        "members": state.groups.member_count(g.group_id),
                        "lag": sum(r["lag"] or 0 for r in lag)})
        return out

    def reset_offsets(self, group_id: str, spec: dict) -> dict:
        """Move an empty group's committed offsets, as kafka-consumer-groups --reset-offsets:
        ``{"topic": "t", "to": "earliest" | "latest" | "offset" | "timestamp", "value": N}``; every partition
        of the topic (default: every topic the group has offsets for)."""
        state = self._coordinator_state(group_id)
        coordinator = state.groups
        count = coordinator.member_count(group_id)
        if count:
            raise ValueError(f"group {group_id} has {count} members: only an empty group's offsets "
                             "can be reset")
        to = spec.get("to", "earliest")
        topics = [spec["topic"]] if spec.get("topic") else sorted({r["topic"] for r in group_lag(state, group_id,
                                                                                     self._leader_partition)})
        offsets = {}
        for name in topics:
            t = self._topic(name)
            for p in self._led(t):
                if to == "earliest":
                    o = p.log_start_offset
                elif to == "latest":
                    o = p.high_watermark
                elif to == "offset":
                    o = min(max(int(spec["value"]), p.log_start_offset), p.high_watermark)
                elif to == "timestamp":
                    _ts, found = p.offset_for_timestamp(int(spec["value"]))
                    o = p.high_watermark if found < 0 else found
                else:
                    raise ValueError(f"reset to what? {to!r}: earliest, latest, offset or timestamp")
                offsets[(name, p.index)] = (o, -1, None)
        errors = coordinator.commit_offsets(group_id, -1, "", None, offsets)
        bad = {f"{t}-{p}": _code_name(c) for (t, p), c in errors.items() if c}
        if bad:
            raise ValueError(f"reset refused: {bad}")
        self.state.changes.notify()
        return self.group(group_id)

    def clients(self) -> list[dict]:
        servers = self.broker_server.servers if self.broker_server is not None else [self.server]
        out = []
        for server in servers:
            listener = server.listener.name if server.listener is not None else "PLAINTEXT"
            for conn in sorted(server.connections, key=lambda c: c.id):
                name, version = getattr(conn, "client_software", None) or ("unknown", "unknown")
                out.append({"connection": conn.id, "listener": listener, "peer": conn.peer,
                            "client_id": getattr(conn, "client_id", None), "software_name": name,
                            "software_version": version, "principal": str(conn.session.principal)})
        return out

    def brokers(self) -> list[dict]:
        bs, st = self.broker_server, self.state
        return [{"node_id": st.config.node_id, "cluster_id": st.cluster_id, "host": st.advertised_host,
                 "port": st.advertised_port,
                 "listeners": [{"name": lst.name, "security_protocol": lst.security_protocol, "host": lst.host,
                                "port": lst.bound_port} for lst in st.listeners],
                 "control": None if bs is None or bs.control_port is None else f"{bs.control_host}:{bs.control_port}",
                 "storage": st.config.storage, "data_dir": st.config.data_dir}]

    def telemetry(self, client_instance_id: str | None = None):
        """The latest telemetry push of every client instance (KIP-714, client_telemetry.py), oldest first, or
        of one (KeyError if it has pushed nothing here)."""
        from .client_telemetry import telemetry_store

        pushes = sorted((p for s in self._states() for p in telemetry_store(s).pushes()),
                        key=lambda p: p["received_ms"])
        if client_instance_id is None:
            return pushes
        for p in pushes:
            if p["client_instance_id"] == client_instance_id:
                return p
        raise KeyError(f"no telemetry from client instance {client_instance_id}")

    def metrics_text(self) -> bytes:
        return self.broker_server.metrics.exposition()

    def snapshot(self) -> dict:
        """What the console's live view shows, in one piece (sent as a server-sent event each second)."""
        return {"totals": self.broker_server.metrics.totals() if self.broker_server is not None else None,
                "topics": self.topics(), "groups": self.groups(), "clients": self.clients(),
                "requests": self.requests(50)}

    def health(self) -> dict:
        return {"status": "ok", "topics": len(self.state.topics.by_name), "connections": len(self.server.connections)}

    # -- waiting -------------------------------------------------------------

    def _condition(self, spec: dict):
        if "group" in spec:
            state = spec.get("state")
            members = spec.get("members")

            def cond():
                g = self._coordinator_state(spec["group"]).describe_group_for_control(spec["group"])
                return ((state is None or g["state"] == state)
                        and (members is None or len(g["members"]) == int(members)))
            return cond
        if "topic" in spec:
            want = int(spec.get("records", 1))

            def cond():
                total = 0
                for state in self._states():
                    t = state.topics.get(spec["topic"])
                    if t is None:
                        return False
                    total += sum(p.high_watermark - p.log_start_offset for p in t.partitions if p.is_leader)
                return total >= want
            return cond
        if "telemetry" in spec:  # a push with a metric named so (or starting so), from that client id if given
            want = spec["telemetry"]
            client_id = spec.get("client_id")

            def cond():
                return any(m["name"].startswith(want) for p in self.telemetry()
                           if client_id is None or p["client_id"] == client_id for m in p["metrics"])
            return cond
        raise ValueError("wait needs a group, a topic or telemetry")

    async def wait(self, spec: dict) -> bool:
        """Returns True when the condition holds, False when ``timeout_ms`` passes first."""
        cond = self._condition(spec)
        deadline = time.monotonic() + int(spec.get("timeout_ms", 10000)) / 1000.0
        while not cond():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            fut = self.state.changes.wait()
            try:
                await asyncio.wait_for(fut, remaining)
            except asyncio.TimeoutError:
                return cond()
        return True

    # -- reset ---------------------------------------------------------------

    async def reset(self) -> None:
        for state in self._states():
            state.reset_groups()
        for topic in list(self.state.topics.by_name.values()):
            if not topic.is_internal:  # the coordinators' topics stay (their groups went above), as in Kafka
                await self.state.delete_topic(topic)
        self.server.faults.clear()


class ControlClient:
    """``Broker.control``: the control plane from another thread (the test's)."""

    def __init__(self, broker):
        self._broker = broker

    def _c(self) -> Control:
        cluster = getattr(self._broker, "cluster", None)  # a cluster in one process: its own control plane
        return cluster.control if cluster is not None else self._broker.broker_server.control

    def add_fault(self, api, error_code: int | None = None, count: int = 1, delay_ms: int | None = None,
                  disconnect: bool = False, drop_response: bool = False, topic: str | None = None,
                  partition: int | None = None) -> dict:
        spec = {"api": api, "error_code": error_code, "count": count, "delay_ms": delay_ms,
                "disconnect": disconnect, "drop_response": drop_response, "topic": topic, "partition": partition}
        api_key_of(api)
        return self._broker.call(lambda: self._c().add_fault(spec))

    def faults(self) -> list[dict]:
        return self._broker.call(lambda: self._c().list_faults())

    def clear_faults(self) -> None:
        self._broker.call(lambda: self._c().clear_faults())

    def records(self, topic: str, partition: int = 0, offset: int = 0, limit: int = 100) -> list[dict]:
        return self._broker.call(lambda: self._c().records(topic, partition, offset, limit))

    def group(self, group_id: str) -> dict:
        return self._broker.call(lambda: self._c().group(group_id))

    def requests(self, limit: int = 100) -> list[dict]:
        return self._broker.call(lambda: self._c().requests(limit))

    def wait_for_group(self, group: str, state: str | None = "Stable", members: int | None = None,
                       timeout_ms: int = 10000) -> bool:
        return self._broker.call(lambda: self._c().wait({"group": group, "state": state, "members": members,
                                                          "timeout_ms": timeout_ms}))

    def wait_for_records(self, topic: str, records: int, timeout_ms: int = 10000) -> bool:
        return self._broker.call(lambda: self._c().wait({"topic": topic, "records": records,
                                                          "timeout_ms": timeout_ms}))

    def telemetry(self, client_instance_id: str | None = None):
        return self._broker.call(lambda: self._c().telemetry(client_instance_id))

    def wait_for_telemetry(self, metric: str = "", client_id: str | None = None, timeout_ms: int = 10000) -> bool:
        """True once a client (of that client id) has pushed a metric whose name starts with ``metric``."""
        return self._broker.call(lambda: self._c().wait({"telemetry": metric, "client_id": client_id,
                                                          "timeout_ms": timeout_ms}))

    def reset(self) -> None:
        self._broker.call(lambda: self._c().reset())

    def health(self) -> dict:
        return self._broker.call(lambda: self._c().health())
