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

from .faults import FaultRule, api_key_of
from .partition import get_partition_or_error
from .records.batch import iter_batches
from .records.record import decode_records
from .wire.messages import NAMES


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


class Control:
    def __init__(self, state, server):
        self.state = state
        self.server = server

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

    def records(self, topic: str, partition: int = 0, offset: int = 0, limit: int = 100) -> list[dict]:
        t = self.state.topics.get(topic)
        if t is None:
            raise KeyError(f"unknown topic {topic}")
        p = get_partition_or_error(t, partition)
        if isinstance(p, int):
            raise KeyError(f"unknown partition {topic}-{partition}")
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
        return out

    def group(self, group_id: str) -> dict:
        return self.state.describe_group_for_control(group_id)

    def requests(self, limit: int = 100) -> list[dict]:
        return self.server.request_log.recent(limit)

    def health(self) -> dict:
        return {"status": "ok", "topics": len(self.state.topics.by_name), "connections": len(self.server.connections)}

    # -- waiting -------------------------------------------------------------

    def _condition(self, spec: dict):
        if "group" in spec:
            state = spec.get("state")
            members = spec.get("members")

            def cond():
                g = self.state.describe_group_for_control(spec["group"])
                return ((state is None or g["state"] == state)
                        and (members is None or len(g["members"]) == int(members)))
            return cond
        if "topic" in spec:
            want = int(spec.get("records", 1))

            def cond():
                t = self.state.topics.get(spec["topic"])
                return t is not None and sum(p.high_watermark - p.log_start_offset for p in t.partitions) >= want
            return cond
        raise ValueError("wait needs a group or a topic")

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

    def reset(self) -> None:
        for topic in list(self.state.topics.by_name.values()):
            self.state.delete_topic(topic)
        self.state.reset_groups()
        self.server.faults.clear()


class ControlClient:
    """``Broker.control``: the control plane from another thread (the test's)."""

    def __init__(self, broker):
        self._broker = broker

    def _c(self) -> Control:
        return self._broker.broker_server.control

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

    def reset(self) -> None:
        self._broker.call(lambda: self._c().reset())

    def health(self) -> dict:
        return self._broker.call(lambda: self._c().health())
