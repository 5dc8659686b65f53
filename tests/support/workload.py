"""The clients of a fault-injection run, recording into a ``History`` (history.py): idempotent ``acks=all``
producers and a consumer group of confluent-kafka clients, each on a thread, and the final read_committed
read of every partition that ``history.check`` compares the history with, with the producer id and epoch of
every record it read (``record_producers``)."""

from __future__ import annotations

import logging
import re
import threading
import time

from support.history import History

TIMEOUT_S = 60


# librdkafka's debug lines (facility, name, then the line) that tell the history its producer ids, the epochs
# it bumped to itself, and which message ids (per partition, from 1 in produce order) it sent at which epoch.
_ACQUIRED = re.compile(r"Acquired PID\{Id:(\d+),Epoch:(\d+)\}")
_BUMPED = re.compile(r"bumped epoch to PID\{Id:(\d+),Epoch:(\d+)\}")
_SENT = re.compile(r" \[(\d+)\]: Produce MessageSet with (\d+) message\(s\) \([^)]*?MsgId (\d+), BaseSeq -?\d+, "
                   r"PID\{Id:(\d+),Epoch:(\d+)\}")


class _LibrdkafkaFacts(logging.Handler):
    """A producer's librdkafka log (``debug=eos,msg``), read into its history as it is served by poll()."""

    def __init__(self, history: History, process: str):
        super().__init__(logging.DEBUG)
        self.history, self.process = history, process

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if (m := _SENT.search(line)) is not None:
            partition, count, first, pid, epoch = map(int, m.groups())
            self.history.batch_sent(self.process, partition, first, count, pid, epoch)
        elif (m := _BUMPED.search(line)) is not None:
            self.history.epoch_bump(self.process, int(m[1]), int(m[2]))
        elif (m := _ACQUIRED.search(line)) is not None:
            self.history.producer_id(self.process, int(m[1]), int(m[2]))


class ProducerWorker:
    """An idempotent confluent-kafka producer sending ``producer-<n>-<seq>`` round-robin over the partitions
    until stopped; each send is invoked (with the message id librdkafka gives it), then acknowledged or
    failed in the delivery callback. A delivery error counts as in doubt: librdkafka reports exhausted retries
    and refusals alike. librdkafka's ``eos,msg`` log goes into the history too (``_LibrdkafkaFacts``)."""

    def __init__(self, history: History, bootstrap: str, topic: str, partitions: int, n: int, **conf):
        from confluent_kafka import Producer

        self.history, self.topic, self.partitions = history, topic, partitions
        self.name = f"producer-{n}"
        logger = logging.Logger(f"librdkafka.{self.name}")  # outside the logging tree
        logger.addHandler(_LibrdkafkaFacts(history, self.name))
        errors = logging.StreamHandler()  # what librdkafka prints without a logger: info and above, to stderr
        errors.setLevel(logging.INFO)
        logger.addHandler(errors)
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                                  "linger.ms": 2, "message.timeout.ms": 30000, "debug": "eos,msg",
                                  "logger": logger, **conf})
        self.sent = 0
        self._msgids = [0] * partitions  # librdkafka numbers a partition's messages from 1 as produce() queues them
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=self.name)

    def start(self) -> "ProducerWorker":
        self._thread.start()
        return self

    def _delivered(self, err, msg) -> None:
        value = msg.value().decode()
        if err is None:
            self.history.send_ok(self.name, value, msg.partition(), msg.offset())
        else:
            self.history.send_failed(self.name, value, certain=False, why=str(err))

    def _run(self) -> None:
        while not self._stop.is_set():
            value = f"{self.name}-{self.sent}"
            partition = self.sent % self.partitions
            self._msgids[partition] += 1
            self.history.invoke_send(self.name, value, partition, self._msgids[partition])
            while True:
                try:
                    self.producer.produce(self.topic, value=value.encode(), partition=partition,
                                          on_delivery=self._delivered)
                    break
                except BufferError:  # not queued: the same message id on the next try
                    self.producer.poll(0.05)
            self.sent += 1
            self.producer.poll(0)
            if self.sent % 50 == 0:
                self._stop.wait(0.01)  # a steady stream, not a flood that only measures the queue

    def acknowledged(self) -> int:
        return sum(1 for op in self.history.snapshot() if op.process == self.name and op.type == "ok")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT_S)
        remaining = self.producer.flush(TIMEOUT_S)
        assert remaining == 0, f"{self.name}: {remaining} sends never completed"


class ConsumerWorker:
    """A confluent-kafka group member (read_committed) recording every record it reads."""

    def __init__(self, history: History, bootstrap: str, topic: str, group: str, n: int, **conf):
        from confluent_kafka import Consumer

        self.history = history
        self.name = f"consumer-{n}"
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                                  "enable.auto.commit": True, "auto.commit.interval.ms": 200, **conf})
        self.consumer.subscribe([topic])
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=self.name)

    def start(self) -> "ConsumerWorker":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            m = self.consumer.poll(0.2)
            if m is None or m.error():
                continue
            self.history.read(self.name, m.partition(), m.offset(), m.value().decode())
            self.reads += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT_S)
        self.consumer.close()


def final_read(bootstrap: str, topic: str, partitions: int, timeout_s: float = TIMEOUT_S
               ) -> dict[int, list[tuple[int, str]]]:
    """Every partition read from its start to its end (the high watermark / last stable offset at the time
    of the call) by a read_committed consumer outside any group."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "history-final-read",
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
                for p in range(partitions)}
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out: dict[int, list[tuple[int, str]]] = {p: [] for p in range(partitions)}
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + timeout_s
        while len(done) < partitions and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            out[m.partition()].append((m.offset(), m.value().decode()))
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
        assert len(done) == partitions, f"final read incomplete: {sorted(done)} of {partitions}, ends {ends}"
        return out
    finally:
        c.close()


def record_producers(bootstrap: str, topic: str, partitions: int, final: dict[int, list[tuple[int, str]]],
                     timeout_s: float = TIMEOUT_S) -> dict[tuple[int, int], tuple[int, int]]:
    """(partition, offset) -> (producer id, producer epoch) of every record of ``final`` (``final_read``), from
    the headers of the batches each partition's leader serves to Fetch v12 over kbroker's client (a stock
    consumer does not show a record's producer); the values must be ``final``'s, offset for offset."""
    from kbroker.client.blocking import BlockingClient
    from kbroker.records.batch import iter_batches
    from kbroker.records.record import decode_records
    from kbroker.wire.messages import fetch as F

    out: dict[tuple[int, int], tuple[int, int]] = {}
    with BlockingClient(bootstrap, timeout_s=timeout_s) as client:
        leaders = {p.partition_index: p.leader_id for p in client.metadata([topic]).topics[0].partitions}
        for partition in range(partitions):
            expected = dict(final[partition])
            end = max(expected, default=-1) + 1
            offset = 0
            values = {}
            while offset < end:
                r = client.send(1, F.FetchRequest(
                    replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=1,
                    topics=[F.FetchRequest.FetchTopic(topic=topic, partitions=[F.FetchRequest.FetchPartition(
                        partition=partition, fetch_offset=offset, partition_max_bytes=1 << 20)])]),
                    version=12, node_id=leaders[partition])
                answer = r.responses[0].partitions[0]
                assert answer.error_code == 0, f"partition {partition} at {offset}: error {answer.error_code}"
                data = b"".join(bytes(x) for x in answer.records) if isinstance(answer.records, list) \
                    else bytes(answer.records or b"")
                before = offset
                for pos, h in iter_batches(data):
                    if not h.is_control:
                        for rec in decode_records(data, pos, h):
                            if offset <= rec.offset < end:
                                out[(partition, rec.offset)] = (h.producer_id, h.producer_epoch)
                                values[rec.offset] = rec.value.decode()
                    offset = max(offset, h.next_offset)
                assert offset > before, f"partition {partition}: no batch at {offset} below {end}"
            assert values == expected, f"partition {partition}: the batches do not hold what the consumer read"
    return out
