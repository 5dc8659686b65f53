"""The aborted transactions of a partition: what Fetch tells read_committed consumers to drop (KIP-98).

Kafka keeps one ``.txnindex`` file per segment, appended when an ABORT marker is written. kbroker keeps
the same entries in one sorted list in memory, rebuilt from the log's headers when it is opened (an ABORT
marker closes the producer's open transaction, whose first offset the producer state knows):
``(marker offset, producer id, first offset)``, ordered by marker offset.

- ``append`` adds the entry an ABORT marker makes.
- ``collect_aborted_txns(fetch_offset, upper_offset)``: the ``(producer id, first offset)`` of those that
  overlap a fetched range, as Kafka's ``collectAbortedTxns`` (a transaction whose marker is at or after the
  fetch offset and whose first offset is below the range's end).
- ``forget(below_offset, keep)``: compaction found no records left of the transactions aborted below
  ``below_offset`` (except ``keep``), as Kafka's cleaner rewrites the transaction index.

Concurrency: on the event loop, like the log that owns it.
"""

from __future__ import annotations

from bisect import bisect_left, insort


class TransactionIndex:
    __slots__ = ("aborted",)

    def __init__(self):
        self.aborted: list[tuple[int, int, int]] = []  # (marker offset, producer id, first offset)

    def append(self, marker_offset: int, producer_id: int, first_offset: int) -> None:
        insort(self.aborted, (marker_offset, producer_id, first_offset))

    def collect_aborted_txns(self, fetch_offset: int, upper_offset: int) -> list[tuple[int, int]]:
        out = []
        start = bisect_left(self.aborted, (fetch_offset, -1, -1))
        for _marker, pid, first in self.aborted[start:]:
            if first < upper_offset:
                out.append((pid, first))
        return out

    def forget(self, below_offset: int, keep) -> int:
        """Drop the entries whose marker is below ``below_offset`` except those in ``keep``; returns how many
        went."""
        keep = set(keep)
        before = len(self.aborted)
        self.aborted[:] = [t for t in self.aborted if t[0] >= below_offset or t in keep]
        return before - len(self.aborted)

    def before(self, offset: int) -> list[tuple[int, int, int]]:
        """The entries whose transaction began below ``offset`` (what a clean up to there must know)."""
        return [t for t in self.aborted if t[2] < offset]
