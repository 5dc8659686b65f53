"""The Java client (kafka-clients 4.4) from a test: the compatibility suite's driver in compat-tests/java, built
by its own ``build`` (Maven, once; the jar is reused while it is newer than its source), one JVM per
operation with that suite's JSON convention. ``java_client_or_skip()`` names why it cannot run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

COMPAT = Path(__file__).resolve().parents[2] / "compat-tests"


def java_client_or_skip():
    """The compatibility suite's Java adapter class (``.cluster(topics)``, ...), or a skip saying why not."""
    if str(COMPAT) not in sys.path:
        sys.path.insert(0, str(COMPAT))
    from kcompat.clients.java import Java, build

    why = build()
    if why is not None:
        pytest.skip(f"the Java client cannot run: {why}")
    return Java
