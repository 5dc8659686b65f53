"""The history checker (tests/support/history.py) on hand-made histories: a clean run passes, and each kind of
anomaly it exists to catch is reported: a lost acknowledged write, a duplicate, a write nobody sent, a write
that failed for certain yet is there, a reordering within one producer's partition, a read of a record the
final log does not have."""

from __future__ import annotations

from support.history import History, check


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
