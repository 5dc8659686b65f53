"""Waiting for a condition in tests: poll it until it holds or a deadline passes (never a bare sleep)."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float = 20.0, what="the condition", interval: float = 0.05):
    """Polls ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass
    (AssertionError). ``what``: a string, or a callable giving one, describing the condition for the message."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(interval)  # pacing of a condition check with a deadline, not synchronisation
