"""Helpers for the consumer-group client tests: group members as subprocesses (tests/support/group_member.py), the
group as the broker sees it (in-process control or the HTTP control plane), and waiting with deadlines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from support.event_process import EventProcess
from support.wait import wait_until  # noqa: F401  (re-exported for the tests that import it from here)
from support.group_member import kafka_python_prime_metadata

MEMBER_SCRIPT = str(Path(__file__).with_name("group_member.py"))
GROUP_CLIENTS = ("kafka-python", "confluent-kafka", "aiokafka")


class MemberProcess(EventProcess):
    """One group member running tests/support/group_member.py; its JSON events are collected as they arrive."""

    def __init__(self, client: str, bootstrap: str, topic: str, group: str, client_id: str, *extra: str):
        self.client = client
        self.client_id = client_id
        self.name = f"{client_id} ({client})"
        cmd = [sys.executable, MEMBER_SCRIPT, client, bootstrap, topic, group, "--client-id", client_id, *extra]
        log_dir = os.environ.get("GROUP_MEMBER_LOG_DIR")  # debugging: each member's client debug log there
        if log_dir:
            cmd += ["--debug-log", os.path.join(log_dir, f"{client_id}-{os.getpid()}-{time.monotonic_ns()}.log")]
        super().__init__(cmd)

    def wait_for(self, predicate, timeout: float = 20.0, what: str = "an event") -> dict:
        """The first event (in arrival order) for which `predicate(event)` holds, waiting for it."""
        return self.first_event(predicate, timeout, what)

    def owned(self) -> set[int] | None:
        """The partitions the member owns after its last rebalance callback (None before its first one)."""
        last = self.rebalance_events()
        return set(last[-1]["owned"]) if last else None

    def rebalance_events(self) -> list[dict]:
        return self.events_where(lambda e: e["ev"] in ("assigned", "revoked"))

    def records(self) -> list[tuple[int, int]]:
        return [(e["p"], e["o"]) for e in self.events_where(lambda e: e["ev"] == "record")]

    def errors(self) -> list[dict]:
        return self.events_where(lambda e: e["ev"] in ("error", "garbage"))

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM: the member closes its consumer as an application would, then exits."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.client_id} did not exit on SIGTERM: {''.join(self.stderr[-30:])}")


def assignments(group: dict, topic: str) -> dict[str, set[int]]:
    """{client_id: partitions of `topic`} from a control-plane group view (client ids must be unique)."""
    out: dict[str, set[int]] = {}
    for m in group["members"]:
        parts = set()
        for a in m["assignment"] or []:
            if a["topic"] == topic:
                parts.update(a["partitions"])
        assert m["client_id"] not in out, f"two members with client id {m['client_id']}: {group}"
        out[m["client_id"]] = parts
    return out


class HttpControl:
    """The HTTP control plane of a broker process (`--control-port 0`), with Broker.control's group calls."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def group(self, group_id: str) -> dict:
        status, body = self._call("GET", f"/groups/{group_id}")
        assert status == 200, (status, body)
        return body

    def wait_for_group(self, group: str, state: str | None = "Stable", members: int | None = None,
                       timeout_ms: int = 10000) -> bool:
        status, body = self._call("POST", "/wait", {"group": group, "state": state, "members": members,
                                                   "timeout_ms": timeout_ms})
        assert status in (200, 408), (status, body)
        return status == 200


def http_control_of(proc) -> HttpControl:
    """The control plane of a support.brokerproc.BrokerProcess started with --control-port 0 (the latest start)."""
    return HttpControl(proc.wait_for_stderr(r"control plane on (http://\S+)").group(1))


# --- group consumers in the test process ------------------------------------------------------------------------
#
# The same few operations for each client: poll() -> [(partition, offset, value)], commit({partition: (offset,
# metadata)}) synchronously, committed(partitions) -> {partition: (offset, metadata) or None}, close().
# A consumer subscribes to one topic in one group, starts from the earliest offset when the group has no
# committed offset, and never commits on its own.


class KafkaPythonGroupConsumer:
    def __init__(self, bootstrap: str, topic: str, group: str, client_id: str = "kp-consumer", **kw):
        from kafka import KafkaConsumer

        self.topic = topic
        self.c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id=client_id,
                               auto_offset_reset="earliest", enable_auto_commit=False, **kw)
        self.c.subscribe([topic])
        kafka_python_prime_metadata(self.c)

    def poll(self, timeout: float = 0.2) -> list[tuple[int, int, bytes]]:
        out = []
        for tp, records in self.c.poll(timeout_ms=int(timeout * 1000)).items():
            out.extend((tp.partition, r.offset, r.value) for r in records)
        return out

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}

    def commit(self, offsets: dict[int, tuple[int, str]]) -> None:
        from kafka import OffsetAndMetadata, TopicPartition

        self.c.commit({TopicPartition(self.topic, p): OffsetAndMetadata(o, m, -1) for p, (o, m) in offsets.items()})

    def committed(self, partitions) -> dict[int, tuple[int, str] | None]:
        from kafka import TopicPartition

        out = {}
        for p in partitions:
            om = self.c.committed(TopicPartition(self.topic, p), metadata=True)
            out[p] = None if om is None else (om.offset, om.metadata)
        return out

    def close(self) -> None:
        self.c.close()


class ConfluentGroupConsumer:
    def __init__(self, bootstrap: str, topic: str, group: str, client_id: str = "ck-consumer", **conf):
        from confluent_kafka import Consumer

        self.topic = topic
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": client_id,
                           "auto.offset.reset": "earliest", "enable.auto.commit": False, **conf})
        self.c.subscribe([topic])

    def poll(self, timeout: float = 0.2) -> list[tuple[int, int, bytes]]:
        out = []
        for m in self.c.consume(num_messages=500, timeout=timeout):
            if m.error():
                raise AssertionError(m.error())
            out.append((m.partition(), m.offset(), m.value()))
        return out

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}

    def commit(self, offsets: dict[int, tuple[int, str]]) -> None:
        from confluent_kafka import TopicPartition

        res = self.c.commit(offsets=[TopicPartition(self.topic, p, o, metadata=m) for p, (o, m) in offsets.items()],
                            asynchronous=False)
        errors = [tp for tp in res if tp.error is not None]
        assert not errors, errors

    def committed(self, partitions) -> dict[int, tuple[int, str] | None]:
        from confluent_kafka import TopicPartition

        res = self.c.committed([TopicPartition(self.topic, p) for p in partitions], timeout=30)
        return {tp.partition: (None if tp.offset < 0 else (tp.offset, tp.metadata)) for tp in res}

    def close(self) -> None:
        self.c.close()


class AioKafkaGroupConsumer:
    """aiokafka on an event loop of its own, on a thread of its own (so it keeps heartbeating between calls),
    driven synchronously."""

    def __init__(self, bootstrap: str, topic: str, group: str, client_id: str = "aio-consumer", **kw):
        import asyncio

        from aiokafka import AIOKafkaConsumer

        self.topic = topic
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"aiokafka-{client_id}", daemon=True)
        self._thread.start()

        async def make():
            c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id=client_id,
                                 auto_offset_reset="earliest", enable_auto_commit=False, **kw)
            c.subscribe([topic])
            await c.start()
            return c

        try:
            self.c = self._run(make())
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro):
        import asyncio

        return asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, 60), self.loop).result(90)

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()

    def poll(self, timeout: float = 0.2) -> list[tuple[int, int, bytes]]:
        batch = self._run(self.c.getmany(timeout_ms=int(timeout * 1000)))
        return [(tp.partition, r.offset, r.value) for tp, records in batch.items() for r in records]

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}

    def commit(self, offsets: dict[int, tuple[int, str]]) -> None:
        from aiokafka import TopicPartition

        self._run(self.c.commit({TopicPartition(self.topic, p): (o, m) for p, (o, m) in offsets.items()}))

    def committed(self, partitions) -> dict[int, tuple[int, str] | None]:
        from aiokafka import TopicPartition

        # aiokafka's committed() gives the offset only; its metadata comes back through the admin client.
        out = {}
        for p in partitions:
            o = self._run(self.c.committed(TopicPartition(self.topic, p)))
            out[p] = None if o is None else (o, None)
        return out

    def close(self) -> None:
        try:
            self._run(self.c.stop())
        finally:
            self._stop_loop()


GROUP_CONSUMERS = {"kafka-python": KafkaPythonGroupConsumer, "confluent-kafka": ConfluentGroupConsumer,
                   "aiokafka": AioKafkaGroupConsumer}


def consume_until(consumer, count: int, timeout: float = 30.0) -> list[tuple[int, int, bytes]]:
    """Polls until at least `count` records came (all of them are returned) or the deadline passes."""
    out: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        out.extend(consumer.poll(0.2))
    return out


def on_the_wire(client: str, metadata: str) -> str:
    """The commit metadata a client sends for `metadata`. confluent-kafka-python sends C strings with their
    terminating NUL (py_to_c_parts in confluent_kafka.c sets metadata_size = strlen(metadata) + 1) and strips it
    again when it reads them back; the broker keeps what it was sent."""
    return metadata + "\x00" if client == "confluent-kafka" else metadata


# --- members that consume one record at a time and commit each synchronously --------------------------------------


class CommitEachMember:
    """A group member consuming on a thread of its own (`start()`, `stop()`): it polls for one record at a time,
    records it in `consumed` as (partition, offset) and commits its next offset synchronously before the next.
    A commit that fails stays pending: it is retried before the next poll, and before its partition is revoked
    (in the revoke callback, as the clients' documentation advises). Rebalance callbacks are logged in
    `events` as ("assign" | "revoke" | "lost", [partitions]) with the partitions the callback received.
    A thread per member matters for kafka-python, which rejoins a group only inside poll()."""

    poll_timeout = 0.05

    def __init__(self, name: str):
        self.name = name
        self.consumed: list[tuple[int, int]] = []
        self.events: list[tuple[str, list[int]]] = []
        self.pending: dict[int, int] = {}  # partition -> offset to commit
        self.commit_errors: list[str] = []
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def owned(self) -> set[int]:
        owned: set[int] = set()
        for kind, parts in list(self.events):
            (owned.update if kind == "assign" else owned.difference_update)(parts)
        return owned

    def _flush(self, partitions) -> None:
        todo = {p: o for p, o in self.pending.items() if p in partitions}
        if todo:
            try:
                self._commit(todo)
            except Exception as e:  # noqa: BLE001 - the client's own error type; retried later
                self.commit_errors.append(repr(e))
            else:
                for p in todo:
                    del self.pending[p]

    def _step(self) -> None:
        self._flush(set(self.pending))
        rec = self._poll_one(self.poll_timeout)
        if rec is not None:
            p, o = rec
            self.consumed.append((p, o))
            self.pending[p] = o + 1
            self._flush({p})

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._step()
        except BaseException as e:  # reported by stop()
            self.failure = e
        finally:
            self._close()

    def start(self) -> "CommitEachMember":
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stops consuming and closes the consumer (a dynamic member leaves the group)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), f"{self.name} did not stop"
            self._thread = None
        if self.failure is not None:
            raise AssertionError(f"{self.name} failed: {self.failure!r}") from self.failure


class ConfluentCommitEachMember(CommitEachMember):
    def __init__(self, name: str, bootstrap: str, topic: str, group: str, **conf):
        from confluent_kafka import Consumer

        super().__init__(name)
        self.topic = topic
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                           "auto.offset.reset": "earliest", "enable.auto.commit": False, **conf})

        def on_assign(_c, tps):
            self.events.append(("assign", sorted(tp.partition for tp in tps)))

        def on_revoke(_c, tps):
            parts = sorted(tp.partition for tp in tps)
            self._flush(set(parts))
            self.events.append(("revoke", parts))

        def on_lost(_c, tps):
            self.events.append(("lost", sorted(tp.partition for tp in tps)))

        self.c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    def _poll_one(self, timeout: float):
        m = self.c.poll(timeout)
        if m is None:
            return None
        if m.error():
            raise AssertionError(f"{self.name}: {m.error()}")
        return m.partition(), m.offset()

    def _commit(self, offsets: dict[int, int]) -> None:
        from confluent_kafka import TopicPartition

        res = self.c.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()],
                            asynchronous=False)
        failed = [tp for tp in res if tp.error is not None]
        if failed:
            raise RuntimeError(failed)

    def _close(self) -> None:
        self.c.close()


class KafkaPythonCommitEachMember(CommitEachMember):
    # kafka-python 3.0.12 does its part of a rebalance inside poll(), and a poll() that times out in the middle
    # of one can leave the join unapplied (see group_member.kafka_python_prime_metadata); poll() returns as soon
    # as a record arrives, so a timeout longer than a rebalance round costs nothing here.
    poll_timeout = 1.0

    def __init__(self, name: str, bootstrap: str, topic: str, group: str, **kw):
        from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition

        super().__init__(name)
        self.topic = topic
        member = self

        class Listener(ConsumerRebalanceListener):
            # kafka-python 3 calls listeners on its IO thread, where a blocking commit() raises RuntimeError
            # ("Cannot block on net.run() from the IO thread itself"): pending offsets go out with commit_async,
            # queued on the coordinator connection ahead of the JoinGroup that follows the revocation.
            def on_partitions_revoked(self, tps):
                parts = sorted(tp.partition for tp in tps)
                todo = {p: o for p, o in member.pending.items() if p in parts}
                if todo:
                    member.c.commit_async({TopicPartition(member.topic, p): OffsetAndMetadata(o, "", -1)
                                           for p, o in todo.items()})
                    for p in todo:
                        del member.pending[p]
                member.events.append(("revoke", parts))

            def on_partitions_assigned(self, tps):
                member.events.append(("assign", sorted(tp.partition for tp in tps)))

            def on_partitions_lost(self, tps):
                member.events.append(("lost", sorted(tp.partition for tp in tps)))

        self.c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id=name,
                               auto_offset_reset="earliest", enable_auto_commit=False, **kw)
        self.c.subscribe([topic], listener=Listener())
        kafka_python_prime_metadata(self.c)

    def _poll_one(self, timeout: float):
        for tp, records in self.c.poll(timeout_ms=int(timeout * 1000), max_records=1).items():
            for r in records:
                return tp.partition, r.offset
        return None

    def _commit(self, offsets: dict[int, int]) -> None:
        from kafka import OffsetAndMetadata, TopicPartition

        self.c.commit({TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})

    def _close(self) -> None:
        self.c.close()


def commit_offsets(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit ``offsets`` (partition -> offset) for ``group`` with a confluent-kafka consumer outside the group."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int,
                      timeout_s: float = 10) -> dict[int, int]:
    """The offsets ``group`` has committed on ``topic`` (partition -> offset; none: left out)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=timeout_s)
        return {tp.partition: tp.offset for tp in got if tp.offset >= 0}
    finally:
        c.close()
