"""The leader-epoch cache: at which offset each leader epoch of a partition began (KIP-101, KIP-279).

Kafka keeps this as ``LeaderEpochFileCache`` with a ``leader-epoch-checkpoint`` file beside the segments.
kbroker keeps the same entries in memory and rebuilds them when a log is opened, from the partition leader
epoch every stored batch carries in its header (``UnifiedLog`` scans the headers then anyway, for the
producer state, and a follower as it appends the leader's batches), so nothing new is written to the data
directory. Every leader change starts an epoch (controller.py); OffsetForLeaderEpoch answers from here and
followers truncate by it (replica_fetcher.py). The rules below are Kafka's.

- ``assign(epoch, start_offset)``: an append (or a new leader) at ``epoch``; a new entry only when the
  epoch differs from the latest or starts earlier, and entries that would break monotonicity (an epoch
  at or above it, or a start offset at or above it) go first.
- ``end_offset_for(epoch, log_end_offset)``: what OffsetForLeaderEpoch answers (Kafka's ``endOffsetFor``):
  for the latest epoch the log end offset; for an older one the largest epoch at or below it and the
  start of the next; for one below every entry the start of the first; for -1, or one above every
  entry, (-1, -1).
- ``truncate_from_end(offset)`` / ``truncate_from_start(offset)``: the log was truncated, or its start
  offset moved up (the entry that covers the new start is kept, starting there).

Concurrency: on the event loop, like the log that owns it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

UNDEFINED_EPOCH = -1  # Kafka's OffsetsForLeaderEpochResponse.UNDEFINED_EPOCH
UNDEFINED_EPOCH_OFFSET = -1  # ... and UNDEFINED_EPOCH_OFFSET


class LeaderEpochCache:
    __slots__ = ("_epochs", "_starts")

    def __init__(self):
        self._epochs: list[int] = []  # increasing
        self._starts: list[int] = []  # start offset of each epoch, increasing

    def entries(self) -> list[tuple[int, int]]:
        """``(epoch, start offset)``, oldest first."""
        return list(zip(self._epochs, self._starts))

    @property
    def latest_epoch(self) -> int | None:
        return self._epochs[-1] if self._epochs else None

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that ``epoch`` began at ``start_offset``; False when nothing changed."""
        epochs = self._epochs
        if epochs and epochs[-1] == epoch and start_offset >= self._starts[-1]:
            return False  # every append after the first of an epoch: first, it is the common case
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"invalid leader epoch entry ({epoch}, {start_offset})")
        while self._epochs and (self._epochs[-1] >= epoch or self._starts[-1] >= start_offset):
            self._epochs.pop()
            self._starts.pop()
        self._epochs.append(epoch)
        self._starts.append(start_offset)
        return True

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """``(epoch, end offset)`` for OffsetForLeaderEpoch; (-1, -1) when undefined."""
        epochs = self._epochs
        if requested_epoch == UNDEFINED_EPOCH:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if epochs and epochs[-1] == requested_epoch:
            return requested_epoch, log_end_offset
        higher = bisect_right(epochs, requested_epoch)
        if higher == len(epochs):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if higher == 0:
            return requested_epoch, self._starts[0]
        return epochs[higher - 1], self._starts[higher]

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget the epochs that start at or after ``end_offset`` (the log was truncated there)."""
        if end_offset < 0:
            return
        keep = bisect_left(self._starts, end_offset)
        del self._epochs[keep:], self._starts[keep:]

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at ``start_offset``: the epoch that covers it starts there, older ones go."""
        covered = bisect_right(self._starts, start_offset)
        if covered:
            epoch = self._epochs[covered - 1]
            del self._epochs[:covered], self._starts[:covered]
            self._epochs.insert(0, epoch)
            self._starts.insert(0, start_offset)
