"""The command-line tools, each run as a subprocess against a kbroker process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support.brokerproc import BrokerProcess


@pytest.fixture(scope="module")
def proc(tmp_path_factory):
    b = BrokerProcess(tmp_path_factory.mktemp("cli") / "data", "--storage", "memory")
    b.start()
    yield b
    b.kill()


def kb(proc, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kbroker", *args, "--bootstrap", proc.bootstrap_servers],
                          input=stdin, capture_output=True, text=True, timeout=120)


def test_topics_create_list_describe_delete(proc):
    r = kb(proc, "topics", "create", "cli-topic", "--partitions", "3", "--config", "retention.ms=12345")
    assert r.returncode == 0, r.stderr
    assert "cli-topic" in kb(proc, "topics", "list").stdout.split()
    d = kb(proc, "topics", "describe", "cli-topic")
    assert d.returncode == 0, d.stderr
    assert "partitions 3" in d.stdout and "retention.ms=12345" in d.stdout
    assert kb(proc, "topics", "create", "cli-topic").returncode == 1  # already exists
    assert kb(proc, "topics", "delete", "cli-topic").returncode == 0
    assert "cli-topic" not in kb(proc, "topics", "list").stdout.split()


def test_produce_then_consume_keyed(proc):
    assert kb(proc, "topics", "create", "cli-pc").returncode == 0
    lines = "".join(f"k{i}\tvalue {i}\n" for i in range(50))
    r = kb(proc, "produce", "cli-pc", "--keyed", stdin=lines)
    assert r.returncode == 0, r.stderr
    assert "50 records produced" in r.stderr
    c = kb(proc, "consume", "cli-pc", "--from-beginning", "--max", "50", "--print-key")
    assert c.returncode == 0, c.stderr
    assert c.stdout == lines


def test_produce_then_consume_values(proc):
    r = kb(proc, "produce", "cli-plain", stdin="one\ntwo\n")
    assert r.returncode == 0, r.stderr
    c = kb(proc, "consume", "cli-plain", "--from-beginning", "--max", "2")
    assert c.stdout == "one\ntwo\n"
    # Without --from-beginning a consumer starts at the end: nothing within the idle timeout.
    c = kb(proc, "consume", "cli-plain", "--timeout-ms", "300")
    assert c.returncode == 0 and c.stdout == ""
