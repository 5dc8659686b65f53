"""Open segment files within a budget of file descriptors (issue 16).

Kafka keeps every segment's files open (a FileChannel per ``.log``, mmapped indexes) and relies on the
operating system's limit being raised (its documentation suggests 100,000). kbroker should work under
the usual ``ulimit -n`` of 1024 with more partitions than that, so a store keeps at most ``budget`` of its
segments' ``.log`` files open: a segment opens its file when it is next used (``LogSegment.fd``) and
the least recently used open one is closed to make room. Indexes hold no descriptor (they are written by
path), and a partition that was never written holds none either (``LogSegment.lazy``).

The default budget is half the soft ``RLIMIT_NOFILE`` (the rest is for sockets, the descriptors a slow
reader's pending answer holds, checkpoint writes), at least ``MIN_BUDGET``.

Pins. A ``FileRegion`` made for a Fetch answer names a descriptor, and is valid while the answer is written
in that turn of the event loop (file_region.py) or until the connection has duplicated it
(``server.KafkaConnection._hold_files``). So a segment a region was made from is pinned: it is not closed
to make room until two turns of the loop later. When every open file is pinned (one Fetch over more
partitions than the budget) ``pressed`` says so, and the log reads into memory instead of making regions
(``SegmentPartitionLog.read_regions``), which needs no descriptor to stay open.

Concurrency: used on one thread only, the event loop's of the store's broker.
"""

from __future__ import annotations

import asyncio
import errno
import resource
from collections import OrderedDict

MIN_BUDGET = 16


def default_budget() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(MIN_BUDGET, soft // 2)


class FileHandles:
    """The open segment files of one store, least recently used first (see the module docstring). A
    member is a ``LogSegment``: ``_release()`` closes its file, ``fd`` opens it again."""

    def __init__(self, budget: int | None = None):
        self.budget = max(1, budget if budget is not None else default_budget())
        self._open: OrderedDict = OrderedDict()
        self._pinned: set = set()
        self._unpin_due = False
        self.evictions = 0  # files closed to make room (a counter for tests and metrics)

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, seg) -> None:
        """``seg`` has just opened its file: count it, and close others past the budget."""
        self._open[seg] = None
        if len(self._open) > self.budget:
            self._make_room(len(self._open) - self.budget, keep=seg)

    def touch(self, seg) -> None:
        try:
            self._open.move_to_end(seg)
        except KeyError:
            pass

    def forget(self, seg) -> None:
        """``seg`` closed its file itself."""
        self._open.pop(seg, None)
        self._pinned.discard(seg)

    def pin(self, seg) -> None:
        """Keep ``seg``'s file open until two turns of the event loop from now (a region names it)."""
        if self._unpin_due:
            self._pinned.add(seg)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the caller uses the region before anything else opens a file
        self._pinned.add(seg)
        self._unpin_due = True
        loop.call_soon(loop.call_soon, self._unpin)

    def _unpin(self) -> None:
        self._pinned.clear()
        self._unpin_due = False
        if len(self._open) > self.budget:
            self._make_room(len(self._open) - self.budget)

    @property
    def pressed(self) -> bool:
        """Every file the budget allows is pinned: a read should not pin another."""
        return len(self._pinned) >= self.budget

    def _make_room(self, count: int, keep=None) -> int:
        closed = 0
        for seg in list(self._open):
            if closed >= count:
                break
            if seg in self._pinned or seg is keep:
                continue
            del self._open[seg]
            seg._release()
            closed += 1
        self.evictions += closed
        return closed

    def shed(self) -> int:
        """Close every open file that is not pinned (the process ran out of descriptors)."""
        return self._make_room(len(self._open))


def is_out_of_descriptors(e: OSError) -> bool:
    return e.errno in (errno.EMFILE, errno.ENFILE)
