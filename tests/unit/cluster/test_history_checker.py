"""The history checker (tests/support/history.py) on hand-made histories: a clean run passes, and each kind of
anomaly it exists to catch is reported: a lost acknowledged write, a duplicate, a write nobody sent, a write
that failed for certain yet is there, a reordering within one producer's partition, a read of a record the
final log does not have. Copies librdkafka wrote by resending after its own epoch bump are counted apart,
and only when the run proves them that; the producer workers read those facts from librdkafka's log."""

from __future__ import annotations

import logging

from support.history import History, check
from support.workload import _LibrdkafkaFacts


def _run(*steps) -> History:
    h = History()
    for step in steps:
        step(h)
    return h


def _send(h: History, producer: str, value: str, partition: int, offset: int | None) -> None:
    h.invoke_send(producer, value, partition)
    if offset is None:
        h.send_failed(producer, value, certain=False, why="timed out")
    else:
        h.send_ok(producer, value, partition, offset)


def test_clean_history_is_valid():
    h = History()
    for i in range(5):
        _send(h, "p0", f"p0-{i}", 0, i)
    h.read("c0", 0, 3, "p0-3")
    r = check(h, {0: [(i, f"p0-{i}") for i in range(5)]})
    assert r.valid, r.summary()
    assert (r.acknowledged, r.in_doubt, r.final_records) == (5, 0, 5)


def test_in_doubt_send_may_be_there_or_not():
    h = History()
    _send(h, "p0", "p0-0", 0, 0)
    _send(h, "p0", "p0-1", 0, None)
    _send(h, "p0", "p0-2", 0, None)
    r = check(h, {0: [(0, "p0-0"), (1, "p0-1")]})
    assert r.valid, r.summary()
    assert r.in_doubt == 2


def test_lost_acknowledged_write():
    h = History()
    _send(h, "p0", "p0-0", 0, 0)
    _send(h, "p0", "p0-1", 0, 1)
    r = check(h, {0: [(0, "p0-0")]})
    assert not r.valid and r.lost == [("p0-1", 0, 1, None)]


def test_acknowledged_write_found_at_another_offset_is_lost():
    """Truncated and rewritten: the offset the producer was told no longer holds its record."""
    h = History()
    _send(h, "p0", "p0-0", 0, 0)
    r = check(h, {0: [(0, "other"), (1, "p0-0")]})
    assert [v for v, *_ in r.lost] == ["p0-0"] and [v for v, _ in r.unexpected] == ["other"]


def test_acknowledged_without_an_offset_needs_only_to_be_in_its_partition():
    # librdkafka's implicit ack: a later batch acknowledged first proves the earlier one written, which is
    # then reported delivered with no offset (None here).
    h = History()
    for value, offset in (("p0-0", None), ("p0-1", 1), ("p0-2", None)):
        h.invoke_send("p0", value, 0)
        h.send_ok("p0", value, 0, offset)
    assert check(h, {0: [(0, "p0-0"), (1, "p0-1")], 1: [(0, "p0-2")]}).lost == [("p0-2", 0, None, [(1, 0)])]
    assert check(h, {0: [(0, "p0-0"), (1, "p0-1"), (2, "p0-2")]}).valid


def test_duplicate():
    h = History()
    _send(h, "p0", "p0-0", 0, 0)
    r = check(h, {0: [(0, "p0-0"), (1, "p0-0")]})
    assert not r.valid and r.duplicated == [("p0-0", [(0, 0), (0, 1)])]


def test_failed_for_certain_but_written():
    h = History()
    h.invoke_send("p0", "p0-0", 0)
    h.send_failed("p0", "p0-0", certain=True, why="NOT_ENOUGH_REPLICAS")
    r = check(h, {0: [(0, "p0-0")]})
    assert not r.valid and [v for v, _ in r.unexpected] == ["p0-0"]


def test_reordered_within_a_producer_partition():
    h = History()
    _send(h, "p0", "p0-0", 0, 1)   # acknowledged first ...
    _send(h, "p0", "p0-1", 0, 0)   # ... invoked after, yet earlier in the log
    r = check(h, {0: [(0, "p0-1"), (1, "p0-0")]})
    assert not r.valid and r.reordered == [("p0-0", "p0-1")]


def test_concurrent_sends_may_land_in_either_order():
    """Two sends in flight together (neither acknowledged before the other was invoked): no order is owed."""
    h = History()
    h.invoke_send("p0", "a", 0)
    h.invoke_send("p0", "b", 0)
    h.send_ok("p0", "b", 0, 0)
    h.send_ok("p0", "a", 0, 1)
    r = check(h, {0: [(0, "b"), (1, "a")]})
    assert r.valid, r.summary()


def test_read_of_a_record_the_final_log_lacks():
    h = History()
    _send(h, "p0", "p0-0", 0, 0)
    h.read("c0", 0, 1, "ghost")
    r = check(h, {0: [(0, "p0-0")]})
    assert not r.valid and r.lost_reads == [("c0", 0, 1, "ghost", None)]


def test_history_saves_as_json_lines(tmp_path):
    h = History()
    _send(h, "p0", "p0-0", 0, 0)
    h.nemesis("kill 2")
    h.save(tmp_path / "h.jsonl")
    lines = (tmp_path / "h.jsonl").read_text().splitlines()
    assert len(lines) == 3 and '"kill 2"' in lines[2]


# -- resends after librdkafka's epoch bump ---------------------------------------------------------------

PID = 1000


def _bumped_history(bump_logged: bool = True, resent_msgids: tuple[int, int] = (2, 3)) -> History:
    """Producer p0 sends a, b, c (message ids 1-3) to partition 0 at epoch 0; b and c are appended, answered
    NOT_LEADER_OR_FOLLOWER, and sent again at epoch 1 after a bump: written twice, acknowledged once."""
    h = History()
    h.producer_id("p0", PID, 0)
    for msgid, value in enumerate(("a", "b", "c"), 1):
        h.invoke_send("p0", value, 0, msgid)
    h.batch_sent("p0", 0, 1, 1, PID, 0)
    h.send_ok("p0", "a", 0, 0)
    h.batch_sent("p0", 0, 2, 2, PID, 0)
    if bump_logged:
        h.epoch_bump("p0", PID, 1)
    first, last = resent_msgids
    h.batch_sent("p0", 0, first, last - first + 1, PID, 1)
    h.send_ok("p0", "b", 0, 3)
    h.send_ok("p0", "c", 0, 4)
    return h


FINAL = {0: [(0, "a"), (1, "b"), (2, "c"), (3, "b"), (4, "c")]}
WRITTEN = {(0, 0): (PID, 0), (0, 1): (PID, 0), (0, 2): (PID, 0), (0, 3): (PID, 1), (0, 4): (PID, 1)}


def test_copies_resent_after_a_logged_epoch_bump_are_counted_apart():
    r = check(_bumped_history(), FINAL, WRITTEN)
    assert r.valid, r.summary()
    assert r.resent_after_epoch_bump == [("b", [(0, 1), (0, 3)], [0, 1]), ("c", [(0, 2), (0, 4)], [0, 1])]
    assert r.epoch_bumps == [("p0", PID, 1)] and "resent after an epoch bump: 2" in r.summary()


def test_two_copies_at_one_epoch_are_duplicates():
    written = {**WRITTEN, (0, 3): (PID, 0)}
    r = check(_bumped_history(), FINAL, written)
    assert [v for v, _ in r.duplicated] == ["b"] and [v for v, *_ in r.resent_after_epoch_bump] == ["c"]


def test_copies_at_two_epochs_without_a_logged_bump_are_duplicates():
    r = check(_bumped_history(bump_logged=False), FINAL, WRITTEN)
    assert [v for v, _ in r.duplicated] == ["b", "c"] and not r.resent_after_epoch_bump


def test_a_copy_librdkafka_did_not_resend_at_that_epoch_is_a_duplicate():
    r = check(_bumped_history(resent_msgids=(3, 3)), FINAL, WRITTEN)
    assert [v for v, _ in r.duplicated] == ["b"] and [v for v, *_ in r.resent_after_epoch_bump] == ["c"]


def test_a_copy_of_another_producer_id_or_partition_is_a_duplicate():
    other_pid = {**WRITTEN, (0, 3): (PID + 1, 1)}
    assert [v for v, _ in check(_bumped_history(), FINAL, other_pid).duplicated] == ["b"]
    final = {0: [(0, "a"), (1, "b"), (2, "c"), (4, "c")], 1: [(0, "b")]}
    written = {**WRITTEN, (1, 0): (PID, 1)}
    assert [v for v, _ in check(_bumped_history(), final, written).duplicated] == ["b"]


def test_without_the_batch_headers_every_second_copy_is_a_duplicate():
    r = check(_bumped_history(), FINAL)
    assert [v for v, _ in r.duplicated] == ["b", "c"] and not r.resent_after_epoch_bump


def test_a_resent_send_is_still_checked_for_loss():
    """Acknowledged at offset 3, where the final log no longer has it: lost, resent or not."""
    final = {0: [(0, "a"), (1, "b"), (2, "c"), (4, "c")]}
    r = check(_bumped_history(), final, WRITTEN)
    assert [v for v, *_ in r.lost] == ["b"] and [v for v, *_ in r.resent_after_epoch_bump] == ["c"]


def test_librdkafka_log_lines_become_history_facts():
    """Lines as confluent-kafka hands librdkafka's debug log to a logger (facility, name, line)."""
    h = History()
    logger = logging.Logger("librdkafka.test")
    logger.addHandler(_LibrdkafkaFacts(h, "p0"))
    for line in (
        "GETPID [rdkafka#producer-3] [thrd:main]: Acquired PID{Id:1000,Epoch:0}",
        "PRODUCE [rdkafka#producer-3] [thrd:127.0.0.1:34309/1]: 127.0.0.1:34309/1: history-reassign-071261e0 [0]: "
        "Produce MessageSet with 350 message(s) (8355 bytes, ApiVersion 10, MsgVersion 2, MsgId 918, BaseSeq 917, "
        "PID{Id:1000,Epoch:0}, uncompressed)",
        "DRAIN [rdkafka#producer-3] [thrd:127.0.0.1:44129/3]: All partitions drained, bumped epoch to "
        "PID{Id:1000,Epoch:1}",
        "PRODUCE [rdkafka#producer-3] [thrd:127.0.0.1:39897/2]: 127.0.0.1:39897/2: history-reassign-071261e0 [0]: "
        "Reconstructed MessageSet (350 message(s), 8420 bytes, MsgIds 918..1267)",
    ):
        logger.log(logging.DEBUG, "%s", line)
    assert [(op.f, op.value, op.partition) for op in h.ops] == [
        ("producer-id", [1000, 0], None), ("batch", [918, 350, 1000, 0], 0), ("epoch-bump", [1000, 1], None)]
