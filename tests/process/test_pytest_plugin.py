"""The pytest plugin as a user sees it: the sample project under tests/sample_project runs with the
fixtures the installed package registers, alone and under pytest-xdist (one broker per worker)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "sample_project"


def _run(*args: str, target: Path = SAMPLE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(SAMPLE),
                           "-c", "/dev/null", str(target), *args], capture_output=True, text=True, timeout=300,
                          cwd=SAMPLE)


@pytest.mark.parametrize("storage", ["memory", "segment"])
def test_sample_project_passes(storage):
    r = _run(f"--kbroker-storage={storage}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "7 passed" in r.stdout


def test_sample_project_under_xdist():
    r = _run("-n", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "7 passed" in r.stdout


def test_sample_project_against_an_external_broker():
    from kbroker import Broker

    with Broker(port=0, storage="memory") as b:
        r = _run(f"--kbroker-external={b.bootstrap_servers}", target=SAMPLE / "test_topics.py")
        assert r.returncode == 0, r.stdout + r.stderr
        # The topic was created on, and deleted from, the external broker.
        apis = [req["api"] for req in b.control.requests(limit=1000)]
    assert "CreateTopics" in apis and "DeleteTopics" in apis


def test_sample_project_against_a_cluster_of_three():
    """--kbroker-brokers 3: the same fixtures over three brokers in the process (topics spread over them)."""
    r = _run("--kbroker-brokers=3", "--kbroker-storage=segment")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "7 passed" in r.stdout
