"""A latency histogram cheap enough for the request path: a bucket count incremented per observation.

It takes no lock (one event loop writes it; a scrape only reads it, and a torn read is off by one
observation) and allocates nothing per observation. metrics.py exposes it as a Prometheus histogram.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds in milliseconds, from a local produce (a fraction of a millisecond) to a long-polling fetch
# (max.wait.ms, 500 ms by default, up to seconds).
BOUNDS_MS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
             10000.0)


class LatencyHistogram:
    __slots__ = ("counts", "sum_ms")

    def __init__(self):
        self.counts = [0] * (len(BOUNDS_MS) + 1)  # the last: above the largest bound
        self.sum_ms = 0.0

    def observe_ms(self, ms: float) -> None:
        self.counts[bisect_left(BOUNDS_MS, ms)] += 1
        self.sum_ms += ms

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, cumulative count) pairs, the last "+Inf", as Prometheus histograms have them."""
        out, total = [], 0
        for bound, n in zip(BOUNDS_MS, self.counts):
            total += n
            out.append((repr(bound), total))
        out.append(("+Inf", total + self.counts[-1]))
        return out

    def quantile_ms(self, q: float) -> float | None:
        """An estimate (the upper bound of the bucket holding the q-quantile); None when empty."""
        total = self.count
        if not total:
            return None
        rank, seen = q * total, 0
        for bound, n in zip(BOUNDS_MS, self.counts):
            seen += n
            if seen >= rank:
                return bound
        return BOUNDS_MS[-1]


# fsync latency of log segments, for the whole process: Kafka's LogFlushStats is a singleton too (the
# segment files are the process's, whichever broker state owns them).
LOG_FLUSH = LatencyHistogram()
