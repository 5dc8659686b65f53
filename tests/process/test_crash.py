"""kill -9 at random moments: every acknowledged record survives, exactly once, and the log reads cleanly.

A kbroker process runs with ``--fsync always``; an idempotent confluent-kafka producer (acks=all) writes
numbered records to two partitions while the test SIGKILLs the broker after a random number of
acknowledgements, restarts it on the same data directory, and goes on with a new producer (the port
changes on restart).  At the end every acknowledged number must be in the log exactly once, no number
twice, and every batch of every segment file must pass its CRC with offsets in order.
"""

from __future__ import annotations

import os
import random
import threading
import time

from support.brokerproc import BrokerProcess
from kbroker.records import crc_matches, decode_records, iter_batches

TOPIC = "crash"
PARTITIONS = 2
ROUNDS = 12
MAX_OUTSTANDING = 500


class NumberedProducer:
    """Produces 0, 1, 2, ... (continuing from ``first``) on a thread until stopped."""

    def __init__(self, bootstrap: str, first: int):
        from confluent_kafka import Producer

        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                  "linger.ms": 1, "batch.num.messages": 20, "message.timeout.ms": 10000})
        self.first = self.next = first
        self.acked: list[int] = []
        self.failed: list[int] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _delivered(self, err, msg):
        n = int(msg.value())
        with self._cond:
            (self.failed if err is not None else self.acked).append(n)
            self._cond.notify_all()

    def _run(self):
        p = self.producer
        while not self._stop.is_set():
            n = self.next
            if n - self.first - len(self.acked) - len(self.failed) > MAX_OUTSTANDING:  # keep the kill near the writes
                p.poll(0.005)
                continue
            try:
                p.produce(TOPIC, key=b"%d" % n, value=b"%010d" % n, partition=n % PARTITIONS,
                          on_delivery=self._delivered)
                self.next += 1
            except BufferError:
                pass
            p.poll(0.001 if self.next % 50 == 0 else 0)

    def start(self) -> "NumberedProducer":
        self._thread.start()
        return self

    def wait_for_acks(self, count: int, timeout_s: float = 15.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.acked) >= count, timeout_s), "no progress"

    def finish(self) -> None:
        """After the broker died: stop, give up what is unacknowledged, collect every callback."""
        self._stop.set()
        self._thread.join()
        self.producer.purge(in_queue=True, in_flight=True)
        assert self.producer.flush(15) == 0


def test_acknowledged_records_survive_kill_9_exactly_once(tmp_path):
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    proc = BrokerProcess(tmp_path / "data", "--fsync", "always", "--num-partitions", str(PARTITIONS))
    acked: set[int] = set()
    next_number = 0
    started = time.monotonic()
    try:
        proc.start()
        for round_ in range(ROUNDS):
            producer = NumberedProducer(proc.bootstrap_servers, next_number).start()
            producer.wait_for_acks(rng.randrange(30, 400))
            proc.kill()  # SIGKILL, at whatever point the producer is
            producer.finish()
            acked.update(producer.acked)
            next_number = producer.next
            proc.start()
        assert time.monotonic() - started < 60
        got = consume_everything(proc.bootstrap_servers)
        proc.stop()
    finally:
        proc.kill()
    numbers = [n for _p, _o, n in got]
    duplicates = {n for n in numbers if numbers.count(n) > 1} if len(set(numbers)) != len(numbers) else set()
    assert not duplicates, f"seed {seed}: records twice: {sorted(duplicates)[:10]}"
    missing = acked - set(numbers)
    assert not missing, f"seed {seed}: acknowledged but lost: {sorted(missing)[:10]}"
    assert len(acked) > ROUNDS * 30
    for partition in range(PARTITIONS):
        offsets = [o for p, o, _n in got if p == partition]
        assert offsets == list(range(len(offsets))), f"seed {seed}: gaps or reordering in partition {partition}"
        check_segment_files(tmp_path / "data" / f"{TOPIC}-{partition}", seed)


def consume_everything(bootstrap: str) -> list[tuple[int, int, int]]:
    """(partition, offset, number) of every record, read up to the high watermarks with CRC checks on."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "check.crcs": True})
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in range(PARTITIONS)}
        c.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        out = []
        positions = {p: 0 for p in range(PARTITIONS)}
        deadline = time.monotonic() + 20
        while any(positions[p] < ends[p] for p in positions) and time.monotonic() < deadline:
            for m in c.consume(1000, 0.2):
                assert not m.error(), m.error()
                out.append((m.partition(), m.offset(), int(m.value())))
                positions[m.partition()] = m.offset() + 1
        assert all(positions[p] >= ends[p] for p in positions), (positions, ends)
        return out
    finally:
        c.close()


def check_segment_files(directory, seed) -> None:
    """Every batch of every segment passes its CRC, decodes, and offsets only go up across segments."""
    previous = -1
    for name in sorted(n for n in os.listdir(directory) if n.endswith(".log")):
        with open(directory / name, "rb") as f:
            data = f.read()
        end = 0
        for pos, h in iter_batches(data):
            assert crc_matches(data, pos, h), f"seed {seed}: bad CRC in {name} at {pos}"
            assert h.base_offset > previous, f"seed {seed}: offsets go back in {name} at {pos}"
            assert len(decode_records(data, pos, h)) == h.record_count
            previous = h.last_offset
            end = pos + h.size
        assert end == len(data), f"seed {seed}: {len(data) - end} stray bytes at the end of {name}"
