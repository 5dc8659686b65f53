"""A history of what clients did against a cluster, and a checker of what it proves, in the manner of Jepsen's
Kafka workload: every operation is recorded as it is invoked and again as it completes (``ok``), fails for
certain (``fail``: the broker refused it, so it did not happen) or ends in doubt (``info``: a timeout, a lost
connection; it may or may not have happened). After the run a read_committed consumer reads every partition
from the start, and ``check`` compares that final log with the history:

- lost: a send acknowledged (``ok``) whose value is not in the final log, or is there at another offset than
  the one it was acknowledged with (the partition moved under it: truncated and rewritten); a send
  acknowledged without an offset (librdkafka's implicit ack, when a later batch of its producer and partition
  is acknowledged first) is lost only if its partition lacks it;
- duplicated: a value in the final log more than once (an idempotent producer must write each send once);
- unexpected: a value in the final log that no send ever carried, or one that failed for certain;
- reordered: two sends of one producer to one partition, the first acknowledged before the second was
  invoked, in the final log in the other order;
- lost reads: a consumer read a value at (partition, offset) that the final log has not there (it read a
  record that was later truncated: a read above the high watermark).

Each value is unique to one send (``producer-<n>-<seq>``), so a value names its send. ``History`` is safe to
record into from several threads and from librdkafka's delivery callbacks; ``save`` writes it as JSON lines
next to a failing test's output, for reading it back.
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

    def invoke_send(self, process: str, value: str, partition: int | None = None) -> None:
        self.add(Op(process, "invoke", "send", value, partition))

    def send_ok(self, process: str, value: str, partition: int, offset: int) -> None:
        self.add(Op(process, "ok", "send", value, partition, offset))

    def send_failed(self, process: str, value: str, certain: bool, why: str = "") -> None:
        """The send did not happen (``certain``), or may have (a timeout, a disconnection)."""
        self.add(Op(process, "fail" if certain else "info", "send", value))

    def read(self, process: str, partition: int, offset: int, value: str) -> None:
        self.add(Op(process, "ok", "read", value, partition, offset))

    def nemesis(self, what: str) -> None:
        self.add(Op("nemesis", "info", what))

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

    @property
    def valid(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.reordered or self.lost_reads)

    def summary(self) -> str:
        problems = {k: getattr(self, k)[:10] for k in ("lost", "duplicated", "unexpected", "reordered",
                                                       "lost_reads") if getattr(self, k)}
        return (f"{self.acknowledged} acknowledged, {self.in_doubt} in doubt, {self.failed} failed, "
                f"{self.final_records} records in the final log; nemesis: {self.nemesis}"
                + (f"; PROBLEMS: {problems}" if problems else ""))


def check(history: History, final: dict[int, list[tuple[int, str]]]) -> CheckResult:
    """``final``: partition -> [(offset, value)] as a read_committed consumer read it from the start."""
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
    for value, ok in acked.items():
        places = where.get(value, [])
        # librdkafka acknowledges without an offset (None) the sends a later acknowledged batch of the same
        # producer and partition proves written (its implicit ack): those need only be in their partition.
        there = any(p == ok.partition for p, _o in places) if ok.offset is None else (ok.partition, ok.offset) in places
        if not there:
            result.lost.append((value, ok.partition, ok.offset, where.get(value)))
    for value, places in where.items():
        if len(places) > 1:
            result.duplicated.append((value, places))
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
