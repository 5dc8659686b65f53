"""A broker killed (SIGKILL) after a deleted topic's directories were renamed to ``-delete`` names but before
their files were removed: the next start removes them, the topic stays deleted, other topics keep their data."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from kbroker.broker_state import BrokerState
from kbroker.config import BrokerConfig
from kbroker.records import simple_batch
from kbroker.storage.segment import DELETE_DIR_SUFFIX

CHILD = r"""
import asyncio, sys, threading
from kbroker.storage import segment
segment._remove_trees = lambda directories: threading.Event().wait()  # the kill comes before any removal
from kbroker.broker_state import BrokerState
from kbroker.config import BrokerConfig
from kbroker.records import simple_batch

async def main():
    s = BrokerState(BrokerConfig(data_dir=sys.argv[1], storage="segment"))
    await s.register({"PLAINTEXT": ("localhost", 9092)})
    for name, count in (("keep", 2), ("gone", 50)):
        for p in s.topics.create(name, count).partitions:
            p.log.store.append(simple_batch(name.encode(), base_offset=0, timestamp_ms=1000), 0, 0, 1)
    with s.topics.batch():
        await s.delete_topic(s.topics.get("gone"))
    print("renamed", flush=True)
    sys.stdin.read()  # until killed

asyncio.run(main())
"""


def test_a_kill_between_rename_and_removal_loses_nothing_else_and_never_resurrects_the_topic(tmp_path):
    data_dir = str(tmp_path / "data")
    child = subprocess.Popen([sys.executable, "-c", CHILD, data_dir], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "renamed\n"
        names = os.listdir(data_dir)
        assert len([n for n in names if n.startswith("gone-") and n.endswith(DELETE_DIR_SUFFIX)]) == 50
        assert not [n for n in names if n.startswith("gone-") and not n.endswith(DELETE_DIR_SUFFIX)]
    finally:
        child.kill()  # SIGKILL
        child.wait()

    async def start() -> BrokerState:
        s = BrokerState(BrokerConfig(data_dir=data_dir, storage="segment"))
        await s.register({"PLAINTEXT": ("localhost", 9092)})
        return s
    loop = asyncio.new_event_loop()
    state = loop.run_until_complete(start())
    try:
        assert state.topics.get("gone") is None
        assert not [n for n in os.listdir(data_dir) if n.startswith("gone-")]
        kept = bytes(simple_batch(b"keep", base_offset=0, timestamp_ms=1000))
        for p in state.topics.get("keep").partitions:
            assert b"".join(bytes(c) for c in p.log.store.read(0, 1 << 20)) == kept
        again = state.topics.create("gone", 3)
        assert [p.log.store.log_end_offset for p in again.partitions] == [0, 0, 0]
    finally:
        state.close()
        loop.close()
