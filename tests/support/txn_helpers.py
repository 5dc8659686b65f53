"""Shared pieces of the transaction and idempotence tests with stock clients (tests/process/test_transactions_clients.py,
tests/integration/test_idempotence_clients.py).

Reading "everything" from a topic is made exact without sleeping: ``write_sentinels`` appends one plain
(non-transactional) record to every partition, and ``read_until_sentinels`` consumes from the beginning
until it has seen the sentinel of every partition. A read_committed consumer only gets there once the last
stable offset has passed every transaction written before the sentinels, so a stuck LSO shows as a timeout.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid

from support.event_process import EventProcess
from support.wait import wait_until  # noqa: F401  (re-exported for the tests that import it from here)

SENTINEL = b"__end__"
TIMEOUT_S = 30
PROCESSOR_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "txn_processor.py")
CLIENT_NAMES = ("confluent-kafka", "kafka-python", "aiokafka")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        f.result(TIMEOUT_S)


def plain_produce(bootstrap: str, topic: str, records: list[tuple[int, bytes | None, bytes]]) -> None:
    """(partition, key, value) records with a plain producer (not idempotent, not transactional)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": False, "acks": "all"})
    errors = []
    for part, key, value in records:
        p.produce(topic, key=key, value=value, partition=part,
                  on_delivery=lambda err, _m: errors.append(err) if err else None)
    assert p.flush(TIMEOUT_S) == 0
    assert not errors, errors


def write_sentinels(bootstrap: str, topic: str, partitions: int) -> None:
    plain_produce(bootstrap, topic, [(i, None, SENTINEL) for i in range(partitions)])


# -- reading -------------------------------------------------------------------------------------------


def read_until_sentinels(client: str, bootstrap: str, topic: str, partitions: int, isolation: str,
                         timeout: float = TIMEOUT_S) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of every record before the sentinels, read from the beginning with ``client``
    at ``isolation`` ("read_committed" or "read_uncommitted")."""
    return {"confluent-kafka": _read_confluent, "kafka-python": _read_kafka_python,
            "aiokafka": _read_aiokafka}[client](bootstrap, topic, partitions, isolation, timeout)


def _collect(out: list, seen: set, partition: int, offset: int, value: bytes) -> None:
    if value == SENTINEL:
        seen.add(partition)
    elif partition not in seen:
        out.append((partition, offset, value))


def _read_confluent(bootstrap, topic, partitions, isolation, timeout):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-tests-reader", "enable.auto.commit": False,
                  "isolation.level": isolation})
    try:
        c.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(partitions)])
        out, seen = [], set()
        deadline = time.monotonic() + timeout
        while len(seen) < partitions:
            assert time.monotonic() < deadline, f"{isolation} read of {topic}: sentinels of {seen} only, {out}"
            for m in c.consume(num_messages=1000, timeout=0.2):
                if m.error():
                    raise AssertionError(m.error())
                _collect(out, seen, m.partition(), m.offset(), m.value())
        return out
    finally:
        c.close()


def _read_kafka_python(bootstrap, topic, partitions, isolation, timeout):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", isolation_level=isolation)
    try:
        tps = [TopicPartition(topic, i) for i in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out, seen = [], set()
        deadline = time.monotonic() + timeout
        while len(seen) < partitions:
            assert time.monotonic() < deadline, f"{isolation} read of {topic}: sentinels of {seen} only, {out}"
            for tp, recs in c.poll(timeout_ms=200).items():
                for r in recs:
                    _collect(out, seen, tp.partition, r.offset, r.value)
        return out
    finally:
        c.close()


def _read_aiokafka(bootstrap, topic, partitions, isolation, timeout):
    async def go():
        from aiokafka import AIOKafkaConsumer, TopicPartition

        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             isolation_level=isolation)
        await c.start()
        try:
            tps = [TopicPartition(topic, i) for i in range(partitions)]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            out, seen = [], set()
            deadline = time.monotonic() + timeout
            while len(seen) < partitions:
                assert time.monotonic() < deadline, f"{isolation} read of {topic}: sentinels of {seen} only, {out}"
                for tp, recs in (await c.getmany(timeout_ms=200)).items():
                    for r in recs:
                        _collect(out, seen, tp.partition, r.offset, r.value)
            return out
        finally:
            await c.stop()

    return asyncio.run(go())


def values(records) -> list[bytes]:
    return sorted(v for _p, _o, v in records)


# -- a processor process ---------------------------------------------------------------------------------


class ProcessorProcess(EventProcess):
    """tests/support/txn_processor.py running as a child process; its JSON events are collected as they arrive."""

    def __init__(self, client: str, bootstrap: str, in_topic: str, out_topic: str, group: str, txn_id: str,
                 *extra: str):
        self.client = client
        self.name = f"processor ({client})"
        super().__init__([sys.executable, PROCESSOR_SCRIPT, client, bootstrap, in_topic, out_topic, group, txn_id,
                          *extra])

    def wait_for(self, ev: str, timeout: float = TIMEOUT_S) -> dict:
        """The first event named ``ev``; fails at once if the process ends or reports an error first."""
        event = self.first_event(lambda e: e["ev"] in (ev, "error", "eof"), timeout, repr(ev))
        if event["ev"] != ev:
            raise AssertionError(f"{self.name}: no {ev!r} within {timeout}s but {event}; "
                                 f"events {self.events[-10:]}; stderr {''.join(self.stderr[-30:])}")
        return event

    def committed(self) -> list[dict]:
        return self.events_where(lambda e: e["ev"] == "committed")

    def wait(self, timeout: float = TIMEOUT_S) -> int:
        return self.proc.wait(timeout)


# -- one transactional producer interface over the three clients ---------------------------------------------


class TxnProducer:
    """A transactional producer of one client behind the same few blocking calls."""

    name = ""

    def init(self) -> None: ...
    def begin(self) -> None: ...
    def send(self, topic: str, partition: int, value: bytes) -> None: ...
    def flush(self) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...
    def send_offsets(self, offsets: dict[tuple[str, int], int], group: str) -> None: ...
    def close(self) -> None: ...

    def send_all(self, topic: str, records: list[tuple[int, bytes]]) -> None:
        for partition, value in records:
            self.send(topic, partition, value)


class ConfluentTxnProducer(TxnProducer):
    name = "confluent-kafka"

    def __init__(self, bootstrap: str, txn_id: str, **conf):
        from confluent_kafka import Producer

        self.bootstrap = bootstrap
        self.p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5, **conf})
        self.errors: list = []

    def init(self):
        self.p.init_transactions(TIMEOUT_S)

    def begin(self):
        self.p.begin_transaction()

    def send(self, topic, partition, value):
        self.p.produce(topic, value=value, partition=partition,
                       on_delivery=lambda err, _m: self.errors.append(err) if err else None)

    def flush(self):
        assert self.p.flush(TIMEOUT_S) == 0
        if self.errors:
            from confluent_kafka import KafkaException

            raise KafkaException(self.errors[0])

    def commit(self):
        self.p.commit_transaction(TIMEOUT_S)

    def abort(self):
        self.p.abort_transaction(TIMEOUT_S)

    def send_offsets(self, offsets, group):
        from confluent_kafka import Consumer, TopicPartition

        # The metadata of a consumer that has not joined: generation -1, no member id (no KIP-447 fencing).
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            meta = c.consumer_group_metadata()
        finally:
            c.close()
        self.p.send_offsets_to_transaction([TopicPartition(t, p, o) for (t, p), o in offsets.items()], meta,
                                           TIMEOUT_S)

    def close(self):
        if self.p is not None:
            self.p.flush(0)
            self.p = None  # librdkafka's handle is destroyed now, not when the garbage collector gets to it


class KafkaPythonTxnProducer(TxnProducer):
    name = "kafka-python"

    def __init__(self, bootstrap: str, txn_id: str, **conf):
        from kafka import KafkaProducer

        self.p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id, linger_ms=5, **conf)
        self.futures: list = []

    def init(self):
        self.p.init_transactions()

    def begin(self):
        self.p.begin_transaction()

    def send(self, topic, partition, value):
        self.futures.append(self.p.send(topic, value=value, partition=partition))

    def flush(self):
        self.p.flush(TIMEOUT_S)
        futures, self.futures = self.futures, []
        for f in futures:
            f.get(TIMEOUT_S)

    def commit(self):
        self.p.commit_transaction()

    def abort(self):
        self.p.abort_transaction()

    def send_offsets(self, offsets, group):
        from kafka import OffsetAndMetadata, TopicPartition

        self.p.send_offsets_to_transaction(
            {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}, group)

    def close(self):
        self.p.close(timeout=5)


class AioKafkaTxnProducer(TxnProducer):
    """aiokafka on a private event loop: each call runs the loop until its coroutine is done."""

    name = "aiokafka"

    def __init__(self, bootstrap: str, txn_id: str, **conf):
        from aiokafka import AIOKafkaProducer

        self.loop = asyncio.new_event_loop()
        self.futures: list = []

        async def make():
            return AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id, linger_ms=5, **conf)

        self.p = self._run(make())

    def _run(self, coro):
        return self.loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT_S))

    def init(self):
        self._run(self.p.start())

    def begin(self):
        self._run(self.p.begin_transaction())

    def send(self, topic, partition, value):
        self.futures.append(self._run(self.p.send(topic, value=value, partition=partition)))

    def flush(self):
        futures, self.futures = self.futures, []

        async def wait():
            await self.p.flush()
            return await asyncio.gather(*futures)

        self._run(wait())

    def commit(self):
        self._run(self.p.commit_transaction())

    def abort(self):
        self._run(self.p.abort_transaction())

    def send_offsets(self, offsets, group):
        from aiokafka import TopicPartition

        self._run(self.p.send_offsets_to_transaction({TopicPartition(t, p): o for (t, p), o in offsets.items()},
                                                     group))

    def close(self):
        try:
            self._run(self.p.stop())
        finally:
            self.loop.close()


TXN_PRODUCERS = {c.name: c for c in (ConfluentTxnProducer, KafkaPythonTxnProducer, AioKafkaTxnProducer)}


def is_fenced(client: str, exc: BaseException) -> bool:
    """Whether ``exc`` is the client's "this producer was fenced" error."""
    if client == "confluent-kafka":
        from confluent_kafka import KafkaError, KafkaException

        return (isinstance(exc, KafkaException) and exc.args[0].code() == KafkaError._FENCED
                and exc.args[0].fatal())
    if client == "kafka-python":
        from kafka.errors import ProducerFencedError

        return isinstance(exc, ProducerFencedError)
    from aiokafka.errors import ProducerFenced

    return isinstance(exc, ProducerFenced)


def read_committed_values(bootstrap: str, topic: str, partitions: int, timeout_s: float = TIMEOUT_S) -> list[bytes]:
    """Every value a read_committed confluent-kafka consumer (outside any group) reads from the start of each
    partition up to its end (the end-of-partition event); fails if a partition does not get there."""
    from confluent_kafka import Consumer, TopicPartition

    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                       "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                       "enable.partition.eof": True})
    try:
        reader.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got, eof = [], set()
        deadline = time.monotonic() + timeout_s
        while len(eof) < partitions and time.monotonic() < deadline:
            m = reader.poll(0.5)
            if m is None:
                continue
            if m.error():
                eof.add(m.partition())
                continue
            got.append(m.value())
    finally:
        reader.close()
    assert len(eof) == partitions, f"read incomplete: {sorted(eof)} of {partitions}"
    return got
