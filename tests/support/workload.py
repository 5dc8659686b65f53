"""The clients of a fault-injection run, recording into a ``History`` (history.py): idempotent ``acks=all``
producers and a consumer group of confluent-kafka clients, each on a thread, and the final read_committed
read of every partition that ``history.check`` compares the history with."""

from __future__ import annotations

import threading
import time

from support.history import History

TIMEOUT_S = 60


class ProducerWorker:
    """An idempotent confluent-kafka producer sending ``producer-<n>-<seq>`` round-robin over the partitions
    until stopped; each send is invoked, then acknowledged or failed in the delivery callback. A delivery
    error counts as in doubt: librdkafka reports exhausted retries and refusals alike."""

    def __init__(self, history: History, bootstrap: str, topic: str, partitions: int, n: int, **conf):
        from confluent_kafka import Producer

        self.history, self.topic, self.partitions = history, topic, partitions
        self.name = f"producer-{n}"
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                                  "linger.ms": 2, "message.timeout.ms": 30000, **conf})
        self.sent = 0
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
            self.history.invoke_send(self.name, value, partition)
            while True:
                try:
                    self.producer.produce(self.topic, value=value.encode(), partition=partition,
                                          on_delivery=self._delivered)
                    break
                except BufferError:
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
