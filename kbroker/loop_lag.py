"""How late the broker's event loop runs a timer: the longest time one callback (a read and the requests it
brought, a write, a handler's turn) held the loop while others waited.

Everything a broker serves runs on one asyncio loop, so a request that holds it for a second delays every
other client by that second, whatever their own request costs. Clients measure that only mixed with their
own CPU share and the network; this measures the broker's part. A timer is armed every ``PERIOD_S``; when it
fires, how much later than due it ran is the loop's lag (the Node.js and Kafka-Streams notion of event-loop
delay; a stall shorter than the period is caught as long as the timer fell due during it). asyncio's own
slow-callback accounting needs debug mode, which slows every callback; this costs one timer per period.

On a shared machine a late timer may also mean the operating system did not run the broker (other processes
had the cores). So each sample also reads the loop thread's CPU time: the part of the lag the loop spent
running (``held``: at most the CPU time the thread used since the previous sample) is the broker's own
work; the rest is waiting for a core. Both are kept.

Read through metrics.py (``GET /metrics``): histograms of every sample (lag, and held), the longest since
start, and the longest over the last ``WINDOW_S`` to ``2 * WINDOW_S`` seconds (two windows, the current and the one before,
so that a reader polling more often than every ``WINDOW_S`` sees every stall; bench/soak.py does).
"""

from __future__ import annotations

import asyncio
import time

from .histogram import LatencyHistogram

PERIOD_S = 0.02  # 50 samples a second: well under a millisecond of the loop's time per second
WINDOW_S = 5.0


class LoopLag:
    __slots__ = ("histogram", "held_histogram", "max_ms", "held_max_ms", "_window_max_ms",
                 "_previous_window_max_ms", "_window_held_ms", "_previous_window_held_ms", "_window_ends", "_due",
                 "_cpu", "_handle", "_loop")

    def __init__(self):
        self.histogram = LatencyHistogram()  # every sample's lag
        self.held_histogram = LatencyHistogram()  # the part of it the loop's thread was running
        self.max_ms = self.held_max_ms = 0.0
        self._window_max_ms = self._previous_window_max_ms = 0.0
        self._window_held_ms = self._previous_window_held_ms = 0.0
        self._cpu = 0.0
        self._window_ends = 0.0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Starts sampling on the running loop (again after a stop)."""
        if self._handle is not None:
            return
        loop = self._loop = asyncio.get_running_loop()
        now = loop.time()
        self._window_ends = now + WINDOW_S
        self._due = now + PERIOD_S
        self._cpu = time.thread_time()
        self._handle = loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        loop = self._loop
        now = loop.time()
        cpu = time.thread_time()
        lag_ms = max(0.0, (now - self._due) * 1000.0)
        held_ms = min(lag_ms, (cpu - self._cpu) * 1000.0)
        self._cpu = cpu
        self.histogram.observe_ms(lag_ms)
        self.held_histogram.observe_ms(held_ms)
        if lag_ms > self.max_ms:
            self.max_ms = lag_ms
        if held_ms > self.held_max_ms:
            self.held_max_ms = held_ms
        if now >= self._window_ends:
            # a stall longer than a window leaves the window before it empty; the stall counts in the new one
            recent = now < self._window_ends + WINDOW_S
            self._previous_window_max_ms = self._window_max_ms if recent else 0.0
            self._previous_window_held_ms = self._window_held_ms if recent else 0.0
            self._window_max_ms = self._window_held_ms = 0.0
            self._window_ends = now + WINDOW_S
        if lag_ms > self._window_max_ms:
            self._window_max_ms = lag_ms
        if held_ms > self._window_held_ms:
            self._window_held_ms = held_ms
        self._due = now + PERIOD_S
        self._handle = loop.call_at(self._due, self._tick)

    @property
    def recent_max_ms(self) -> float:
        """The longest lag in the current window and the one before it."""
        return max(self._window_max_ms, self._previous_window_max_ms)

    @property
    def recent_held_max_ms(self) -> float:
        """The longest lag the loop spent running, in the current window and the one before it."""
        return max(self._window_held_ms, self._previous_window_held_ms)
