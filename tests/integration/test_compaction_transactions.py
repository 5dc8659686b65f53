"""Compaction of transactional data (issue #5), as Kafka's LogCleaner does it.

- records of aborted transactions are removed, and never shadow a committed record of their key;
- a transaction marker stays while its transaction has records, then ``delete.retention.ms`` past the clean
  that first finds it removable (KIP-534's delete horizon), then goes;
- nothing at or after the last stable offset (an open transaction) is cleaned;
- a producer's last batch keeps its header, so idempotent retries are still recognised after a restart;
- the partition forgets the aborted transactions that have nothing left, and read_committed consumers get
  exactly the committed records at their offsets.

First the cleaner alone over hand-built batches, then a partition on each storage backend driven through
the LogManager on a chosen clock, then stock clients against an in-process broker.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace

import pytest

from kbroker import Broker
from kbroker.log.cleaner import CleanPlan, build_offset_map, clean_groups
from kbroker.errors import KafkaError
from kbroker.log.log_manager import LogManager
from kbroker.partition import Partition
from kbroker.records import ABORT, COMMIT, Record, build_batch, build_control_batch, decode_records, iter_batches
from kbroker.records.batch import DELETE_HORIZON_MASK, read_header
from kbroker.records.record import parse_control_record
from kbroker.storage.base import LogConfig
from kbroker.storage.memory import MemoryLogStore
from kbroker.storage.segment import SegmentLogStore
from kbroker.wire.messages import produce
from kbroker.client import BlockingConnection
from support.txn_helpers import free_port

TOPIC_ID = uuid.UUID(int=0xC1)
OLD_MS = 1_000_000          # record timestamps: long ago
NOW_MS = 2_000_000_000_000  # the cleaner's clock
RETENTION_MS = 1000         # delete.retention.ms of the unit-level logs


# -- the cleaner alone ------------------------------------------------------------------------------------


class ListSnapshot:
    """A SegmentSnapshot over batches in a list."""

    def __init__(self, batches):
        self._batches = [bytes(b) for b in batches]

    def batches(self):
        for data in self._batches:
            yield read_header(data), data

    def close(self):
        pass


class ListWriter:
    """A CleanedWriter that keeps what it is given."""

    def __init__(self):
        self.batches = []
        self.state = "open"

    def append(self, batch):
        self.batches.append(bytes(batch))

    def finish(self):
        self.state = "finished"

    def abort(self):
        self.state = "aborted"


def data_batch(offset, *pairs, pid=-1, seq=-1, txn=False):
    return build_batch([Record(offset + i, OLD_MS, k, v) for i, (k, v) in enumerate(pairs)],
                       producer_id=pid, producer_epoch=0 if pid >= 0 else -1, base_sequence=seq, transactional=txn)


def marker(offset, pid, commit, epoch=0):
    return build_control_batch(COMMIT if commit else ABORT, producer_id=pid, producer_epoch=epoch,
                               coordinator_epoch=0, timestamp_ms=OLD_MS, base_offset=offset)


def describe(batches):
    """(base offset, "marker kind" or [(offset, key, value)], delete horizon or None) per batch."""
    out = []
    for data in batches:
        h = read_header(data)
        records = decode_records(data, 0, h)
        if h.is_control:
            what = ["ABORT", "COMMIT"][parse_control_record(records[0])[0]] if records else "empty marker"
        else:
            what = [(r.offset, r.key, r.value) for r in records]
        out.append((h.base_offset, what, h.base_timestamp if h.has_delete_horizon else None))
    return out


def test_the_cleaner_removes_aborted_records_and_keeps_markers_while_their_transaction_has_records():
    log = [
        data_batch(0, (b"a", b"plain"), (b"b", b"plain")),
        data_batch(2, (b"a", b"committed"), pid=5, seq=0, txn=True),   # committed, latest "a" that counts
        data_batch(3, (b"a", b"aborted"), (b"c", b"aborted"), pid=6, seq=0, txn=True),
        data_batch(5, (b"b", b"other"), pid=5, seq=1, txn=True),       # same committed transaction
        marker(6, pid=6, commit=False),
        marker(7, pid=5, commit=True),
        data_batch(8, (b"d", b"after"), pid=6, seq=2, txn=True),       # pid 6's next transaction, committed
        marker(9, pid=6, commit=True),
        data_batch(10, (b"b", b"newest")),
    ]
    aborted = [(6, 6, 3)]
    # The offset map leaves the aborted records out: "a" is the committed one, "c" has no record at all.
    assert build_offset_map([ListSnapshot(log)], aborted_txns=aborted) == {b"a": 2, b"b": 10, b"d": 8}
    assert build_offset_map([ListSnapshot(log)])[b"a"] == 3  # (what ignoring the transactions would say)

    writer = ListWriter()
    plan = CleanPlan(name="t-0", groups=[([1], writer, [ListSnapshot(log)])], dirty=[ListSnapshot(log)],
                     now_ms=NOW_MS, delete_retention_ms=RETENTION_MS, log_end_offset=11,
                     producer_last_offsets={5: 5, 6: 8}, aborted_txns=aborted)
    result = clean_groups(plan)
    assert writer.state == "finished"
    assert describe(writer.batches) == [
        (2, [(2, b"a", b"committed")], None),
        # pid 6's aborted batch went.  pid 5's last batch lost its record but keeps its header (its
        # sequence numbers).  Both markers stay: the clean walked over batches of their transactions.
        (5, [], None),
        (6, "ABORT", None),
        (7, "COMMIT", None),
        (8, [(8, b"d", b"after")], None),
        (9, "COMMIT", None),
        (10, [(10, b"b", b"newest")], None),
    ]
    assert result.aborted_records_removed == 2
    assert result.aborted_txns_kept == [(6, 6, 3)]  # its marker came after one of its batches
    assert result.next_delete_horizon_ms == NOW_MS  # the ABORT marker's transaction is gone: clean again soon
    assert result.empty_batches_kept == 1
    h = read_header(writer.batches[1])
    assert (h.producer_id, h.base_sequence, h.last_offset, h.is_transactional) == (5, 1, 5, True)


def test_the_cleaner_stamps_removable_markers_then_removes_them_past_the_horizon():
    log = [
        data_batch(0, (b"a", b"x")),
        marker(1, pid=6, commit=False),   # its transaction has no records left
        marker(2, pid=5, commit=True),    # neither
        marker(3, pid=7, commit=False, epoch=4),   # pid 7 wrote only markers in epoch 4: kept (emptied)
        data_batch(4, (b"b", b"y")),
    ]

    def clean(batches, now):
        writer = ListWriter()
        plan = CleanPlan(name="t-0", groups=[([1], writer, [ListSnapshot(batches)])], dirty=[], now_ms=now,
                         delete_retention_ms=RETENTION_MS, log_end_offset=5, producer_last_offsets={},
                         marker_only_producers={7: 4})
        return clean_groups(plan), writer.batches

    result, stamped = clean(log, NOW_MS)
    horizon = NOW_MS + RETENTION_MS
    assert describe(stamped) == [(0, [(0, b"a", b"x")], None), (1, "ABORT", horizon), (2, "COMMIT", horizon),
                                 (3, "ABORT", horizon), (4, [(4, b"b", b"y")], None)]
    assert all(read_header(b).attributes & DELETE_HORIZON_MASK for b in stamped[1:4])
    assert result.next_delete_horizon_ms == horizon
    result, same = clean(stamped, horizon - 1)  # before the horizon: nothing changes
    assert same == stamped and result.markers_removed == 0 and result.next_delete_horizon_ms == horizon
    result, cleaned = clean(stamped, horizon)
    assert describe(cleaned) == [(0, [(0, b"a", b"x")], None), (3, "empty marker", None), (4, [(4, b"b", b"y")], None)]
    h = read_header(cleaned[1])
    assert (h.is_control, h.is_transactional, h.producer_id, h.producer_epoch, h.record_count) == (True, True, 7, 4, 0)
    assert result.markers_removed == 3 and result.next_delete_horizon_ms is None


def test_an_aborted_transaction_whose_marker_is_gone_does_not_swallow_the_next_one():
    """Defensive: an aborted-transaction entry can only outlive its marker if something went wrong, but even
    then the producer's next (committed) transaction is not taken for part of it."""
    log = [
        data_batch(1, (b"z", b"plain")),
        # the aborted transaction (0..3) has neither records nor marker left
        data_batch(4, (b"a", b"committed"), pid=6, seq=5, txn=True),
        marker(5, pid=6, commit=True),
    ]
    assert build_offset_map([ListSnapshot(log)], aborted_txns=[(3, 6, 0)]) == {b"z": 1, b"a": 4}
    writer = ListWriter()
    plan = CleanPlan(name="t-0", groups=[([1], writer, [ListSnapshot(log)])], dirty=[ListSnapshot(log)],
                     now_ms=NOW_MS, delete_retention_ms=RETENTION_MS, log_end_offset=6,
                     producer_last_offsets={6: 4}, aborted_txns=[(3, 6, 0)])
    result = clean_groups(plan)
    assert describe(writer.batches) == [(1, [(1, b"z", b"plain")], None), (4, [(4, b"a", b"committed")], None),
                                        (5, "COMMIT", None)]
    assert result.aborted_records_removed == 0 and result.aborted_txns_kept == []


# -- a partition's log and the LogManager -----------------------------------------------------------------


class TxnLog:
    """One compacted partition (a real Partition: producer state, open and aborted transactions) and a
    LogManager that sees only it."""

    def __init__(self, kind: str, data_dir, **config):
        self.kind = kind
        self.data_dir = data_dir
        defaults = dict(cleanup_policy="compact", file_delete_delay_ms=0, delete_retention_ms=RETENTION_MS)
        defaults.update(config)
        self.config = LogConfig(**defaults)
        self.store = MemoryLogStore() if kind == "memory" else SegmentLogStore(data_dir)
        self.seq: dict[int, int] = {}
        self._open()

    def _open(self):
        self.log = self.store.open_log("c", TOPIC_ID, 0, self.config)
        self.p = Partition(None, 0, self.log)
        state = SimpleNamespace(
            topics=SimpleNamespace(by_name={"c": SimpleNamespace(name="c", partitions=[self.p])}),
            log_store=self.store,
            config=SimpleNamespace(log_retention_check_interval_ms=300000, log_cleaner_backoff_ms=15000, fsync="never"))
        self.manager = LogManager(state)

    def restart(self):
        """A new Partition rebuilt from the log (the memory store keeps its logs in this process)."""
        asyncio.run(self.manager.stop())
        if self.kind != "memory":
            self.store.close()
            self.store = SegmentLogStore(self.data_dir)
        self._open()

    def close(self):
        asyncio.run(self.manager.stop())
        self.store.close()

    def send(self, pid: int, *pairs, txn: bool = False, epoch: int = 0) -> bytes:
        """One batch of (key, value) records, idempotent (pid >= 0, next sequence) or plain; returns its bytes."""
        seq = self.seq.get(pid, 0) if pid >= 0 else -1
        batch = bytes(build_batch([Record(i, OLD_MS + i, k, v) for i, (k, v) in enumerate(pairs)], base_offset=0,
                                  producer_id=pid, producer_epoch=epoch if pid >= 0 else -1, base_sequence=seq,
                                  transactional=txn))
        self.p.append(bytearray(batch), 1 << 20, False)
        if pid >= 0:
            self.seq[pid] = seq + len(pairs)
        return batch

    def end(self, pid: int, commit: bool, epoch: int = 0) -> int:
        return self.p.write_marker(pid, epoch, commit)

    def clean(self, now_ms=NOW_MS, force=False) -> int:
        return asyncio.run(self.manager.run_cleaner_once(now_ms=now_ms, force=force))

    def batches(self):
        out = []
        for chunk in self.log.read(self.log.log_start_offset, 1 << 30):
            data = bytes(chunk)
            for pos, h in iter_batches(data):
                out.append(data[pos:pos + h.size])
        return out

    def records(self):
        return [(r.offset, r.key, r.value) for data in self.batches() for h in [read_header(data)]
                if not h.is_control for r in decode_records(data, 0, h)]

    def markers(self):
        return [(h.base_offset, h.producer_id, h.record_count) for h in map(read_header, self.batches())
                if h.is_control]

    def read_committed(self):
        """What a read_committed consumer keeps: records up to the LSO, minus those of the aborted
        transactions Fetch lists (Kafka's consumer rules)."""
        lso = self.p.last_stable_offset
        aborted = sorted(self.p.aborted_transactions(self.log.log_start_offset, lso), key=lambda t: t[1])
        dropping: set[int] = set()
        out = []
        for data in self.batches():
            h = read_header(data)
            if h.base_offset >= lso:
                break
            while aborted and aborted[0][1] <= h.last_offset:
                dropping.add(aborted.pop(0)[0])
            if h.is_control:
                records = decode_records(data, 0, h)
                if records and parse_control_record(records[0])[0] == ABORT:
                    dropping.discard(h.producer_id)
                continue
            if h.is_transactional and h.producer_id in dropping:
                continue
            out.extend((r.offset, r.key, r.value) for r in decode_records(data, 0, h))
        return out


@pytest.fixture(params=["memory", "segment"])
def make_log(request, tmp_path):
    logs = []

    def make(**config):
        one = TxnLog(request.param, tmp_path / f"data{len(logs)}", **config)
        logs.append(one)
        return one

    yield make
    for one in logs:
        one.close()


def test_aborted_records_go_and_committed_ones_are_compacted_at_their_offsets(make_log):
    one = make_log()
    one.send(1, (b"k0", b"plain0"), (b"k1", b"plain1"))      # 0-1  idempotent, plain
    one.send(2, (b"k0", b"committed"), txn=True)             # 2
    one.end(2, commit=True)                                  # 3
    one.send(3, (b"k0", b"aborted"), (b"k1", b"aborted"), txn=True)  # 4-5: newer than the values above
    one.send(1, (b"k2", b"plain2"))                          # 6    in the middle of the aborted transaction
    one.end(3, commit=False)                                 # 7
    one.send(3, (b"k3", b"later"), txn=True)                 # 8    pid 3's next transaction
    one.end(3, commit=True)                                  # 9
    one.log.roll()
    assert one.p.log.txn_index.aborted == [(7, 3, 4)]
    committed_before = one.read_committed()
    assert [v for _o, _k, v in committed_before] == [b"plain0", b"plain1", b"committed", b"plain2", b"later"]

    assert one.clean(force=True) == 1
    expected = [(1, b"k1", b"plain1"), (2, b"k0", b"committed"), (6, b"k2", b"plain2"), (8, b"k3", b"later")]
    assert one.records() == expected          # read_uncommitted: the aborted records are gone
    assert one.read_committed() == expected   # read_committed: the latest committed value per key
    assert set(expected) <= set(committed_before)   # the same records at the same offsets
    # Every marker stays for now: this clean walked over a batch of each of their transactions.
    assert one.markers() == [(3, 2, 1), (7, 3, 1), (9, 3, 1)]
    assert one.p.log.txn_index.aborted == [(7, 3, 4)]
    assert one.manager.last_clean["c-0"].aborted_records_removed == 2
    # The next clean is due by itself (not forced): it stamps the ABORT marker, whose transaction is gone,
    # and the partition forgets that transaction.
    assert one.clean() == 1
    assert one.p.log.txn_index.aborted == []
    assert one.read_committed() == one.records() == expected
    assert one.log.log_end_offset == 10
    one.restart()
    assert one.records() == expected and one.read_committed() == expected
    assert one.p.log.txn_index.aborted == [] and one.p.log.producer_state.ongoing_txns == {}
    assert one.p.last_stable_offset == one.p.high_watermark == 10


def test_markers_go_once_their_transaction_has_no_records_and_the_delete_horizon_passed(make_log):
    one = make_log()
    one.send(2, (b"k0", b"c0"), txn=True)      # 0  superseded by the next transaction
    one.end(2, commit=True)                    # 1  -> goes
    one.send(2, (b"k0", b"c1"), txn=True)      # 2
    one.end(2, commit=True)                    # 3  -> stays: its record stays
    one.send(3, (b"k1", b"a"), txn=True)       # 4  aborted
    one.end(3, commit=False)                   # 5  -> goes
    one.send(3, (b"k2", b"c"), txn=True)       # 6
    one.end(3, commit=True)                    # 7  -> stays
    one.send(1, (b"k9", b"plain"))             # 8
    one.log.roll()
    assert one.clean(now_ms=NOW_MS, force=True) == 1
    assert [m[0] for m in one.markers()] == [1, 3, 5, 7]
    # Due again at once (two transactions lost their last records); that clean stamps their markers.
    assert one.clean(now_ms=NOW_MS) == 1
    stamped = {read_header(b).base_offset: read_header(b) for b in one.batches() if read_header(b).is_control}
    assert {o for o, h in stamped.items() if h.has_delete_horizon} == {1, 5}
    assert stamped[1].base_timestamp == stamped[5].base_timestamp == NOW_MS + RETENTION_MS
    assert one.p.log.txn_index.aborted == []
    # Before the horizon nothing is due, and a forced clean keeps them.
    assert one.clean(now_ms=NOW_MS + RETENTION_MS - 1) == 0
    one.clean(now_ms=NOW_MS + RETENTION_MS - 1, force=True)
    assert [m[0] for m in one.markers()] == [1, 3, 5, 7]
    # At the horizon the clean is due by itself and they go.
    assert one.clean(now_ms=NOW_MS + RETENTION_MS) == 1
    assert one.markers() == [(3, 2, 1), (7, 3, 1)]
    assert one.manager.last_clean["c-0"].markers_removed == 2
    expected = [(2, b"k0", b"c1"), (6, b"k2", b"c"), (8, b"k9", b"plain")]
    assert one.records() == one.read_committed() == expected
    one.restart()
    assert one.records() == one.read_committed() == expected
    assert one.p.log.producer_state.ongoing_txns == {} and one.p.log.txn_index.aborted == []
    assert one.p.last_stable_offset == one.log.log_end_offset == 9


def test_an_open_transaction_and_everything_after_it_are_not_cleaned(make_log):
    one = make_log()
    one.send(1, (b"k", b"v0"), (b"j", b"v0"))    # 0-1
    one.log.roll()
    one.send(2, (b"k", b"open"), txn=True)       # 2: the last stable offset
    one.send(3, (b"j", b"aborted"), txn=True)    # 3
    one.end(3, commit=False)                     # 4
    one.log.roll()
    one.send(1, (b"k", b"v1"), (b"j", b"v1"))    # 5-6
    one.log.roll()
    assert one.p.last_stable_offset == 2
    before = one.batches()
    one.clean(force=True)
    # Only the first segment was cleanable, and nothing in it is superseded within it: nothing changed,
    # not even the aborted records after the open transaction.
    assert one.batches() == before
    one.end(2, commit=True)                      # 7
    one.log.roll()
    one.clean(force=True)
    assert one.records() == [(5, b"k", b"v1"), (6, b"j", b"v1")]
    assert one.read_committed() == one.records()


def test_a_producers_last_batch_keeps_its_header_and_retries_are_recognised_after_a_restart(make_log):
    one = make_log()
    aborted = one.send(7, (b"k0", b"a"), (b"k1", b"a"), txn=True)   # 0-1: pid 7's last batch, aborted
    one.end(7, commit=False)                                        # 2
    last8 = one.send(8, (b"k2", b"x"))                              # 3:   pid 8's last batch ...
    one.send(-1, (b"k2", b"y"))                                     # 4:   ... superseded
    one.log.roll()
    one.clean(force=True)
    one.clean()
    headers = [(h.base_offset, h.last_offset, h.producer_id, h.base_sequence, h.record_count, h.is_control)
               for h in map(read_header, one.batches())]
    assert headers == [(0, 1, 7, 0, 0, False), (2, 2, 7, -1, 1, True), (3, 3, 8, 0, 0, False), (4, 4, -1, -1, 1, False)]
    # pid 7's transaction still has a batch (empty): its marker and its aborted-transaction entry stay.
    assert one.p.log.txn_index.aborted == [(2, 7, 0)]
    assert one.records() == one.read_committed() == [(4, b"k2", b"y")]
    for restarted in (False, True):
        if restarted:
            one.restart()
        # A retry of either batch is answered with where the original went, and nothing is written.
        assert one.p.append(bytearray(aborted), 1 << 20, False)[0] == 0
        assert one.p.append(bytearray(last8), 1 << 20, False)[0] == 3
        assert one.log.log_end_offset == 5
    # And their next batches follow on in sequence.
    one.send(8, (b"k3", b"z"))
    one.send(7, (b"k4", b"t"), txn=True)
    one.end(7, commit=True)
    assert one.log.log_end_offset == 8
    with pytest.raises(KafkaError):   # (a gap is still refused: the state is really there)
        one.p.append(bytearray(data_batch(0, (b"k5", b"gap"), pid=8, seq=9)), 1 << 20, False)


def test_a_producer_that_wrote_only_markers_in_its_epoch_keeps_the_last_one(make_log):
    one = make_log()
    one.send(5, (b"k", b"committed"), txn=True)    # 0
    one.end(5, commit=True)                        # 1
    one.end(5, commit=False, epoch=1)              # 2: aborted by the coordinator with an epoch bump
    one.send(-1, (b"k", b"newer"))                 # 3
    one.log.roll()
    assert one.p.log.producer_state.producers[5].epoch == 1 and not one.p.log.producer_state.producers[5].batches
    one.clean(force=True)
    one.clean()
    one.clean(now_ms=NOW_MS + RETENTION_MS)
    # The commit marker went with its transaction's record; the epoch 1 marker stays, emptied.
    assert one.markers() == [(2, 5, 0)]
    assert one.records() == [(3, b"k", b"newer")]
    one.restart()
    assert one.p.log.producer_state.producers[5].epoch == 1
    with pytest.raises(KafkaError):   # a zombie of epoch 0 is still fenced
        one.p.append(bytearray(data_batch(0, (b"k", b"zombie"), pid=5, seq=1, txn=True)), 1 << 20, False)


# -- stock clients ------------------------------------------------------------------------------------------

HOUR_MS = 3_600_000
TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.bytes": "512", "delete.retention.ms": str(HOUR_MS),
                "min.cleanable.dirty.ratio": "0.01", "file.delete.delay.ms": "0"}
KEYS = [b"k%02d" % i for i in range(8)]
END_KEY = b"__end__"


class Sent:
    """A confluent-kafka producer and the (offset, key, value) of every record it got acknowledged."""

    def __init__(self, bootstrap: str, **conf):
        from confluent_kafka import Producer

        self.p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "reconnect.backoff.max.ms": 500, **conf})
        self.acked: list[tuple[int, bytes, bytes]] = []
        self.errors: list = []

    def send(self, topic: str, pairs) -> list[tuple[int, bytes, bytes]]:
        """Produce (key, value) pairs to partition 0 and wait until they are acknowledged."""
        start = len(self.acked)

        def delivered(err, msg):
            if err is not None:
                self.errors.append(err)
            else:
                self.acked.append((msg.offset(), msg.key(), msg.value()))

        for key, value in pairs:
            self.p.produce(topic, key=key, value=value, partition=0, on_delivery=delivered)
        assert self.p.flush(30) == 0
        assert not self.errors, self.errors
        return self.acked[start:]

    def transaction(self, topic: str, pairs, commit: bool) -> list[tuple[int, bytes, bytes]]:
        self.p.begin_transaction()
        sent = self.send(topic, pairs)   # flushed first: librdkafka's abort purges what it has not sent
        if commit:
            self.p.commit_transaction(30)
        else:
            self.p.abort_transaction(30)
        return sent


def _read(client: str, bootstrap: str, topic: str, isolation: str, stop_offset: int) -> list[tuple[int, bytes, bytes]]:
    """(offset, key, value) of partition 0 from the beginning, read with ``client`` at ``isolation`` until the
    record at ``stop_offset`` (an end marker record, left out, as are earlier ones)."""
    out = []
    deadline = time.monotonic() + 20
    if client == "confluent-kafka":
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                      "isolation.level": isolation})
        try:
            c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            while not out or out[-1][0] < stop_offset:
                assert time.monotonic() < deadline, out
                for m in c.consume(500, 0.2):
                    assert not m.error(), m.error()
                    out.append((m.offset(), m.key(), m.value()))
        finally:
            c.close()
    else:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                          isolation_level=isolation)
        try:
            tp = TopicPartition(topic, 0)
            c.assign([tp])
            c.seek_to_beginning(tp)
            while not out or out[-1][0] < stop_offset:
                assert time.monotonic() < deadline, out
                for recs in c.poll(timeout_ms=200).values():
                    out.extend((r.offset, r.key, r.value) for r in recs)
        finally:
            c.close()
    assert out[-1][0] == stop_offset, out[-3:]
    return [r for r in out if r[1] != END_KEY]


def _stored(b, topic):
    """The headers of the stored batches of partition 0, and the partition."""
    p = b.state.topics.get(topic).partitions[0]
    return b.call(lambda: [h for c in p.log.read(p.log_start_offset, 1 << 30) for _pos, h in iter_batches(bytes(c))]), p


def _markers_with_records(headers) -> dict[int, bool]:
    """Marker offset -> whether a batch of its transaction (its producer's since its previous marker) is stored."""
    out = {}
    seen: dict[int, bool] = {}
    for h in headers:
        if h.is_control:
            out[h.base_offset] = seen.pop(h.producer_id, False)
        elif h.is_transactional:
            seen[h.producer_id] = True
    return out


def test_stock_clients_compacted_transactions(tmp_path):
    """confluent-kafka's transactional producer commits and aborts keyed records on a compacted topic, between
    an idempotent producer's records; cleaning removes the aborted records, then (a delete horizon later) the
    markers of transactions with nothing left; consumers of both isolation levels read exactly the latest
    committed value per key at its offset; and after a restart both producers carry on, a retry of the
    idempotent producer's (compacted away) last batch still being recognised."""
    from confluent_kafka.admin import AdminClient, NewTopic

    port = free_port()
    settings = {"log.cleaner.backoff.ms": str(HOUR_MS)}   # the test runs the cleaner itself
    topic = "txn-compacted"
    with Broker(port=port, data_dir=tmp_path / "data", settings=settings) as b:
        bs = b.bootstrap_servers
        admin = AdminClient({"bootstrap.servers": bs})
        for f in admin.create_topics([NewTopic(topic, 1, 1, config=TOPIC_CONFIG)]).values():
            f.result(10)
        plain = Sent(bs, **{"enable.idempotence": True})
        txn = Sent(bs, **{"transactional.id": "compacting-" + uuid.uuid4().hex[:6]})
        txn.p.init_transactions(30)
        good, bad = [], []
        for r in range(4):
            good += plain.send(topic, [(k, k + b":plain%d" % r) for k in KEYS[r % 2::2]])
            good += txn.transaction(topic, [(k, k + b":commit%d" % r) for k in KEYS[:4]], commit=True)
            bad += txn.transaction(topic, [(k, k + b":abort%d" % r) for k in KEYS], commit=False)
        last_plain = plain.send(topic, [(b"k07", b"k07:plain-last")])   # the idempotent producer's last batch ...
        good += last_plain
        good += txn.transaction(topic, [(b"k07", b"k07:commit-last")], commit=True)   # ... compacted away
        bad += txn.transaction(topic, [(b"k00", b"k00:abort-last")], commit=False)    # the transactional one's
        latest = {}
        for offset, key, value in sorted(good):
            latest[key] = (offset, key, value)
        expected = sorted(latest.values())

        headers, p = _stored(b, topic)
        plog = p.log
        assert b.call(plog.roll)
        (end_offset, _k, _v), = Sent(bs).send(topic, [(END_KEY, b"end")])   # in the active segment: not cleaned
        assert len(b.call(plog.segment_infos)) > 5
        plain_last = next(h for h in reversed(headers) if h.producer_id >= 0 and not h.is_transactional)
        assert plain_last.base_offset == last_plain[0][0]
        markers_before = [h.base_offset for h in headers if h.is_control]
        txn_last = next(h for h in reversed(headers) if h.is_transactional and not h.is_control)
        assert txn_last.base_offset == bad[-1][0]
        assert len(markers_before) == 10 and len(b.call(lambda: p.log.txn_index.aborted)) == 5
        stored = {r["value"]["data"].encode() for r in b.control.records(topic, 0, 0, 1000)}
        assert len(bad) == 33 and {v for _o, _k, v in bad} <= stored   # the aborted records are in the log

        manager = b.state.log_manager
        # 1. The aborted records go; every marker stays (the clean walked over its transaction's batches).
        assert b.call(manager.run_cleaner_once) == 1
        stored = [(r["offset"], r["key"]["data"].encode(), r["value"]["data"].encode())
                  for r in b.control.records(topic, 0, 0, 1000)]
        assert stored == expected + [(end_offset, END_KEY, b"end")]
        assert _read("confluent-kafka", bs, topic, "read_uncommitted", end_offset) == expected
        assert _read("confluent-kafka", bs, topic, "read_committed", end_offset) == expected
        assert _read("kafka-python", bs, topic, "read_committed", end_offset) == expected
        headers, _p = _stored(b, topic)
        assert [h.base_offset for h in headers if h.is_control] == markers_before
        # 2. Due at once: stamps the markers whose transactions have nothing left with the delete horizon.
        assert b.call(manager.run_cleaner_once) == 1
        headers, _p = _stored(b, topic)
        has_records = _markers_with_records(headers)
        assert list(has_records) == markers_before
        stamped = {h.base_offset for h in headers if h.is_control and h.has_delete_horizon}
        assert stamped == {m for m, left in has_records.items() if not left} and stamped
        assert b.call(manager.run_cleaner_once) == 0   # nothing is due before the horizon
        assert _read("confluent-kafka", bs, topic, "read_committed", end_offset) == expected   # stamped markers
        # The aborted transactions with nothing left are forgotten; the last one keeps its (empty) batch.
        last_abort = markers_before[-1]
        assert has_records[last_abort]
        assert b.call(lambda: list(p.log.txn_index.aborted)) == [(last_abort, txn_last.producer_id, txn_last.base_offset)]
        # 3. Past the horizon (delete.retention.ms later) the stamped markers go.
        later = int(time.time() * 1000) + HOUR_MS + 60_000
        assert b.call(lambda: manager.run_cleaner_once(now_ms=later)) == 1
        headers, _p = _stored(b, topic)
        assert [h.base_offset for h in headers if h.is_control] == [m for m, left in has_records.items() if left]
        assert all(left for left in _markers_with_records(headers).values())
        assert _read("confluent-kafka", bs, topic, "read_committed", end_offset) == expected
        assert _read("kafka-python", bs, topic, "read_uncommitted", end_offset) == expected
        # Each producer's last batch lost its records (superseded, aborted) but not its header.
        for last in (plain_last, txn_last):
            kept = next(h for h in headers if h.base_offset == last.base_offset)
            assert kept.record_count == 0
            assert (kept.last_offset, kept.producer_id, kept.producer_epoch, kept.base_sequence) == \
                (last.last_offset, last.producer_id, last.producer_epoch, last.base_sequence)
        aborted_before = b.call(lambda: list(p.log.txn_index.aborted))
        high_watermark = p.high_watermark

    # A restart rebuilds the producer state and the transactions from the cleaned log.
    with Broker(port=port, data_dir=tmp_path / "data", settings=settings) as b:
        bs = b.bootstrap_servers
        _headers, p = _stored(b, topic)
        assert b.call(lambda: (p.log.txn_index.aborted, p.log.producer_state.ongoing_txns, p.last_stable_offset, p.high_watermark)) == \
            (aborted_before, {}, high_watermark, high_watermark)
        # A retry of the idempotent producer's last batch is recognised: the original's offset, nothing written.
        retry = build_batch([Record(0, int(time.time() * 1000), b"k07", b"k07:plain-last")],
                            producer_id=plain_last.producer_id, producer_epoch=plain_last.producer_epoch,
                            base_sequence=plain_last.base_sequence)
        raw = BlockingConnection(b.host, b.port)
        try:
            req = produce.ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[
                produce.ProduceRequest.TopicProduceData(name=topic, partition_data=[
                    produce.ProduceRequest.PartitionProduceData(index=0, records=bytes(retry))])])
            part = raw.request(0, 9, req).responses[0].partition_responses[0]
        finally:
            raw.close()
        assert (part.error_code, part.base_offset) == (0, plain_last.base_offset)
        assert p.high_watermark == high_watermark
        # Both producers, still open, carry on in sequence from the batches the cleaner kept.
        good += plain.send(topic, [(b"k01", b"k01:after-restart")])
        good += txn.transaction(topic, [(b"k02", b"k02:commit-after-restart")], commit=True)
        (end_offset, _k, _v), = Sent(bs).send(topic, [(END_KEY, b"end")])
        # The records compacted away before the restart are still gone; the two new ones follow.
        assert _read("confluent-kafka", bs, topic, "read_committed", end_offset) == expected + good[-2:]
        txn.p = plain.p = None   # librdkafka's handles go now, while the broker is up
