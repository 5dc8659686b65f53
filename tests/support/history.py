"""A history of what clients did against a cluster, and a checker of what it proves, in the manner of Jepsen's
Kafka workload: every operation is recorded as it is invoked and again as it completes (``ok``), fails for
certain (``fail``: the broker refused it, so it did not happen) or ends in doubt (``info``: a timeout, a lost
connection; it may or may not have happened). After the run a read_committed consumer reads every partition
from the start, and ``check`` compares that final log with the history:

- lost: a send acknowledged (``ok``) whose value is not in the final log, or is there at another offset than
  the one it was acknowledged with (the partition moved under it: truncated and rewritten); a send
  acknowledged without an offset (librdkafka's implicit ack, when a later batch of its producer and partition
  is acknowledged first) is lost only if its partition lacks it;
- duplicated: a value in the final log more than once (an idempotent producer must write each send once),
  except copies proven to be librdkafka's resends after its own epoch bump, counted apart (below);
- unexpected: a value in the final log that no send ever carried, or one that failed for certain;
- reordered: two sends of one producer to one partition, the first acknowledged before the second was
  invoked, in the final log in the other order;
- lost reads: a consumer read a value at (partition, offset) that the final log has not there (it read a
  record that was later truncated: a read above the high watermark).

Each value is unique to one send (``producer-<n>-<seq>``), so a value names its send. ``History`` is safe to
record into from several threads and from librdkafka's delivery callbacks; ``save`` writes it as JSON lines
next to a failing test's output, for reading it back.

Duplicates librdkafka makes: resent after an epoch bump. The reassignment run failed with duplicates in 4 of
35 runs on the loaded two-core machine (2026-12-03; 92 to 1,017 records too many each). One failing run's
history, librdkafka's ``eos,msg`` log and the brokers' produce log showed, for partition 3 then 0 of one
producer (pid 1000), each step answered as Apache Kafka answers it:

1. Broker 0 led partition 3 and appended the producer's batch (epoch 0, sequences 900..1507). The
   reassignment made broker 1 leader (ISR [1, 2, 3]) before broker 1 had fetched that batch; broker 0, no
   longer a replica, answered the waiting acks=all produce NOT_LEADER_OR_FOLLOWER (Kafka's DelayedProduce:
   ``getPartitionOrError`` gives NOT_LEADER_OR_FOLLOWER for a partition removed from a broker whose topic
   exists) and its copy went with its log.
2. librdkafka sent the next batch (1508..1624) to broker 1 before the failed one (its log shows the send
   before the failed batch's error and requeue); broker 1 knew the producer up to sequence 899 and refused it
   OUT_OF_ORDER_SEQUENCE_NUMBER (Kafka's ``ProducerAppendInfo.checkSequence``).
3. librdkafka (rdkafka_request.c, "skipped sequence numbers": the failed batch is not head of line) drains
   and bumps the producer's epoch itself (rdkafka_idempotence.c, "All partitions drained, bumped epoch to
   PID{Id:1000,Epoch:1}"), and every partition starts again at sequence 0 from its first unacknowledged
   message. That includes partition 0, whose batch (epoch 0, sequences 917..1266) broker 1 had appended and
   every ISR member had fetched, but which broker 1 answered NOT_LEADER_OR_FOLLOWER when the reassignment
   moved leadership to broker 2 before its high watermark passed the batch. librdkafka takes
   NOT_LEADER_FOR_PARTITION as "not persisted" (its default error actions).
4. Broker 2 took the same messages again as epoch 1, sequence 0: a new epoch starting at 0 is accepted, and
   Kafka finds duplicates only among the last five batches of the same epoch (``ProducerStateEntry.
   findDuplicateBatch``). The partition then holds them twice, at epoch 0 and at epoch 1.

librdkafka's maintainers acknowledge this (confluentinc/librdkafka#4953, "Sporadic message duplication during
leader transition with idempotent producer", seen against Apache Kafka: an epoch bump for one partition's
out-of-order answer duplicates what another partition had just persisted; only transactions give
exactly-once in every case). Java's producer retries a NOT_LEADER_OR_FOLLOWER batch with its sequence number,
so a new leader that has the batch answers it as a duplicate, with the original's offset.

tests/process/test_idempotence_leader_change.py plays the broker's side of those steps over a raw socket. The
conformance suite's answers recorded from Apache Kafka 4.4.0 (kbroker/conformance/recorded, scenario
produce_idempotent_sequences) show steps 2 and 4 on a real broker: a sequence gap is
OUT_OF_ORDER_SEQUENCE_NUMBER, and the next epoch at sequence 0 is appended, as kbroker answers them.

So ``check`` counts such copies apart (``resent_after_epoch_bump``), and only when the run proves them
librdkafka's: every copy in the send's partition, written by the producer's own producer id, each at a
different producer epoch (from the batch headers, ``record_producers``), every epoch after the first one that
librdkafka logged bumping to, and the send's message id (its librdkafka msgid) among those librdkafka logged
sending at each of those epochs. Anything else, two copies at one epoch above all, is ``duplicated``. The
lost, unexpected and reordered checks apply to those sends as to every other. With it, 40 of 40 runs passed;
10 had an epoch bump and 4 of them resent copies (142, 407, 159, 717), runs that would have failed before.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Op:
    process: str          # who did it: "producer-0", "consumer-1", "nemesis"
    type: str             # "invoke", "ok", "fail", "info"
    f: str                # "send", "read", "kill", "start", ...
    value: object = None  # send: the value; read: (partition, offset, value); nemesis: what it did
    partition: int | None = None
    offset: int | None = None
    msgid: int | None = None  # send: librdkafka's message id (per partition, from 1 in produce order)
    time: float = field(default_factory=time.monotonic)

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class History:
    def __init__(self):
        self.ops: list[Op] = []
        self._lock = threading.Lock()

    def add(self, op: Op) -> Op:
        with self._lock:
            self.ops.append(op)
        return op

    def invoke_send(self, process: str, value: str, partition: int | None = None, msgid: int | None = None) -> None:
        self.add(Op(process, "invoke", "send", value, partition, msgid=msgid))

    def send_ok(self, process: str, value: str, partition: int, offset: int) -> None:
        self.add(Op(process, "ok", "send", value, partition, offset))

    def send_failed(self, process: str, value: str, certain: bool, why: str = "") -> None:
        """The send did not happen (``certain``), or may have (a timeout, a disconnection)."""
        self.add(Op(process, "fail" if certain else "info", "send", value))

    def read(self, process: str, partition: int, offset: int, value: str) -> None:
        self.add(Op(process, "ok", "read", value, partition, offset))

    def nemesis(self, what: str) -> None:
        self.add(Op("nemesis", "info", what))

    def producer_id(self, process: str, producer_id: int, epoch: int) -> None:
        """librdkafka acquired a producer id (InitProducerId)."""
        self.add(Op(process, "info", "producer-id", [producer_id, epoch]))

    def epoch_bump(self, process: str, producer_id: int, epoch: int) -> None:
        """librdkafka bumped its producer epoch itself (an idempotent producer's drain and bump)."""
        self.add(Op(process, "info", "epoch-bump", [producer_id, epoch]))

    def batch_sent(self, process: str, partition: int, first_msgid: int, count: int, producer_id: int,
                   epoch: int) -> None:
        """librdkafka sent messages ``first_msgid`` .. ``first_msgid + count - 1`` of ``partition`` at ``epoch``."""
        self.add(Op(process, "info", "batch", [first_msgid, count, producer_id, epoch], partition))

    def snapshot(self) -> list[Op]:
        with self._lock:
            return list(self.ops)

    def save(self, path) -> None:
        with open(path, "w") as f:
            for op in self.snapshot():
                f.write(json.dumps(op.to_json()) + "\n")


@dataclass
class CheckResult:
    acknowledged: int
    in_doubt: int
    failed: int
    final_records: int
    lost: list = field(default_factory=list)
    duplicated: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    reordered: list = field(default_factory=list)
    lost_reads: list = field(default_factory=list)
    nemesis: list = field(default_factory=list)
    # (value, [(partition, offset)], [epoch of each copy]): librdkafka's resends after an epoch bump (see above)
    resent_after_epoch_bump: list = field(default_factory=list)
    epoch_bumps: list = field(default_factory=list)  # (process, producer id, epoch) librdkafka logged

    @property
    def valid(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.reordered or self.lost_reads)

    def summary(self) -> str:
        problems = {k: getattr(self, k)[:10] for k in ("lost", "duplicated", "unexpected", "reordered",
                                                       "lost_reads") if getattr(self, k)}
        resent = (f"; resent after an epoch bump: {len(self.resent_after_epoch_bump)} "
                  f"(epoch bumps: {self.epoch_bumps}, first: {self.resent_after_epoch_bump[:3]})"
                  if self.resent_after_epoch_bump or self.epoch_bumps else "")
        return (f"{self.acknowledged} acknowledged, {self.in_doubt} in doubt, {self.failed} failed, "
                f"{self.final_records} records in the final log; nemesis: {self.nemesis}" + resent
                + (f"; PROBLEMS: {problems}" if problems else ""))


class _ProducerLog:
    """What librdkafka logged of one history's producers: their producer ids, the epochs they bumped to,
    and which message ids of which partition each sent at which (producer id, epoch)."""

    def __init__(self, ops: list[Op]):
        self.producer_ids: dict[str, set[int]] = {}
        self.bumps: set[tuple[int, int]] = set()
        self.sent: dict[tuple[str, int, int, int], list[tuple[int, int]]] = {}  # (process, partition, pid, epoch)
        for op in ops:
            if op.f == "producer-id":
                self.producer_ids.setdefault(op.process, set()).add(op.value[0])
            elif op.f == "epoch-bump":
                self.bumps.add((op.value[0], op.value[1]))
            elif op.f == "batch":
                first, count, pid, epoch = op.value
                self.sent.setdefault((op.process, op.partition, pid, epoch), []).append((first, first + count - 1))

    def sent_at(self, process: str, partition: int, producer_id: int, epoch: int, msgid: int) -> bool:
        batches = self.sent.get((process, partition, producer_id, epoch), ())
        return any(first <= msgid <= last for first, last in batches)

    def resent_after_bump(self, invoke: Op | None, places: list[tuple[int, int]], producers: dict) -> list | None:
        """The copies' epochs when the copies of one send are librdkafka's resends after an epoch bump (see
        the module docstring for the rule); None when they are not."""
        if invoke is None or invoke.msgid is None or any(p != invoke.partition for p, _o in places):
            return None
        written = [producers.get(place) for place in places]
        if None in written or len({pid for pid, _e in written}) != 1:
            return None
        pid = written[0][0]
        epochs = sorted(e for _pid, e in written)
        if pid not in self.producer_ids.get(invoke.process, ()) or len(set(epochs)) != len(epochs):
            return None
        if any((pid, e) not in self.bumps for e in epochs[1:]):
            return None
        if not all(self.sent_at(invoke.process, invoke.partition, pid, e, invoke.msgid) for e in epochs):
            return None
        return epochs


def check(history: History, final: dict[int, list[tuple[int, str]]],
          producers: dict[tuple[int, int], tuple[int, int]] | None = None) -> CheckResult:
    """``final``: partition -> [(offset, value)] as a read_committed consumer read it from the start.
    ``producers``: (partition, offset) -> (producer id, producer epoch) of every record of ``final``, from
    the batch headers (``workload.record_producers``); without it no duplicate is told apart as a resend."""
    ops = history.snapshot()
    sends: dict[str, list[Op]] = {}
    for op in ops:
        if op.f == "send":
            sends.setdefault(op.value, []).append(op)
    acked = {v: next(o for o in os if o.type == "ok") for v, os in sends.items() if any(o.type == "ok" for o in os)}
    failed = {v for v, os in sends.items() if any(o.type == "fail" for o in os) and v not in acked}
    in_doubt = {v for v, os in sends.items() if v not in acked and v not in failed}

    where: dict[str, list[tuple[int, int]]] = {}
    for partition, records in final.items():
        for offset, value in records:
            where.setdefault(value, []).append((partition, offset))

    result = CheckResult(len(acked), len(in_doubt), len(failed), sum(len(r) for r in final.values()))
    result.nemesis = [op.f for op in ops if op.process == "nemesis"]
    result.epoch_bumps = [(op.process, *op.value) for op in ops if op.f == "epoch-bump"]
    librdkafka = _ProducerLog(ops)
    for value, ok in acked.items():
        places = where.get(value, [])
        # librdkafka acknowledges without an offset (None) the sends a later acknowledged batch of the same
        # producer and partition proves written (its implicit ack): those need only be in their partition.
        there = any(p == ok.partition for p, _o in places) if ok.offset is None else (ok.partition, ok.offset) in places
        if not there:
            result.lost.append((value, ok.partition, ok.offset, where.get(value)))
    for value, places in where.items():
        if len(places) > 1:
            invoke = next((o for o in sends.get(value, ()) if o.type == "invoke"), None)
            epochs = None if producers is None else librdkafka.resent_after_bump(invoke, places, producers)
            if epochs is None:
                result.duplicated.append((value, places))
            else:
                result.resent_after_epoch_bump.append((value, places, epochs))
        if value not in sends or value in failed:
            result.unexpected.append((value, places))

    # Per producer and partition: a send acknowledged before another was invoked comes first in the log. One
    # sweep in time order: at each invoke, the highest offset acknowledged so far in its stream must be below
    # the offset the invoked send ends up at.
    stream_of = {v: (ok.process, ok.partition) for v, ok in acked.items()}
    events = []
    for value, ok in acked.items():
        if value in where:
            events.append((ok.time, 1, value))
    for value, os in sends.items():
        inv = next((o for o in os if o.type == "invoke"), None)
        if inv is not None and value in where and value in stream_of:
            events.append((inv.time, 0, value))
    highest: dict[tuple[str, int], tuple[int, str]] = {}
    for _t, kind, value in sorted(events):
        stream, (partition, offset) = stream_of[value], where[value][0]
        if kind == 1:
            if partition == stream[1] and (stream not in highest or offset > highest[stream][0]):
                highest[stream] = (offset, value)
        elif stream in highest and highest[stream][0] > offset:
            result.reordered.append((highest[stream][1], value))

    final_at = {(p, o): v for p, records in final.items() for o, v in records}
    for op in ops:
        if op.f == "read" and op.type == "ok" and final_at.get((op.partition, op.offset)) != op.value:
            result.lost_reads.append((op.process, op.partition, op.offset, op.value,
                                      final_at.get((op.partition, op.offset))))
    return result
