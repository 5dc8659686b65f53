"""Issue 16's soak: the broker's memory comes back after huge and slow fetches of a large partition.

The soak (bench/soak.py) showed the broker's RSS creeping up by about a megabyte a minute while clients
fetched a 64 MB partition, some reading their answers slowly. What the socket does not take of such an
answer is read a chunk (1 MiB) at a time into memory (server.py ``_pump``); the chunks used to be allocated
afresh whenever the pool's buffers were still queued in a slow reader's transport, and glibc, whose mmap
threshold rises after the first large free, served them from its heap, which kept the high-water mark of
their holes. Measured from outside, on a broker process: the anonymous RSS (RssAnon, not the segment
files' page cache) after rounds of such fetches, once their connections are closed, against what it was
before them.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from kbroker.client import BlockingConnection
from kbroker.records.builder import simple_batch
from support.brokerproc import BrokerProcess
from support.wait import wait_until
from test_hostile_fetch import _create, _fetch, _produce, _status_bytes

PARTITION_MB = 48  # batches of 1 MB: answers of fetch.max.bytes (55 MB) take the whole partition
ROUNDS = 4
SLOW_READERS = 8  # per round, at once, with the huge fetchers
HUGE_FETCHERS = 2
SLOW_READ_BYTES = 12 << 20  # read by each slow reader before it hangs up
# Growth allowed over the RSS before the rounds, once they are over: ctypes, loaded for malloc_trim
# (about 0.5 MB), and what a broker may keep of any request. Measured on main before the fix, the
# rounds left 8 to 13 MB more.
BOUND_BYTES = 3 << 20


def _rss_anon(pid: int) -> int:
    return _status_bytes(pid, "RssAnon")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _slow_reader(host: str, port: int, topic: str) -> None:
    """Two pipelined Fetch requests for the whole partition through a 4 KiB window, read at a slow
    client's pace until SLOW_READ_BYTES have come; then it hangs up."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    s.settimeout(60)
    s.connect((host, port))
    c = BlockingConnection.over(s)
    c.send_bytes(b"".join(c.frame(1, 11, _fetch(topic=topic, max_bytes=2**31 - 1)) for _ in range(2)))
    got = 0
    while got < SLOW_READ_BYTES:
        data = s.recv(65536)
        assert data, "the broker closed a slow reader's connection"
        got += len(data)
        time.sleep(0.002)  # the slow client's pace (what it does, not a wait for the broker)
    s.close()


def _huge_fetcher(host: str, port: int, topic: str) -> None:
    with BlockingConnection(host, port, timeout_s=60) as c:
        for _ in range(3):
            resp = c.request(1, 11, _fetch(topic=topic, max_bytes=2**31 - 1))
            assert len(resp.responses[0].partitions[0].records) > (PARTITION_MB - 2) * 1_000_000


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the broker's RSS from /proc")
def test_rss_comes_back_after_rounds_of_huge_and_slow_fetches(tmp_path, topic_name):
    """Before (main at 83e92bc): after four rounds of 8 slow readers and 2 huge fetchers of a 48 MB
    partition, RssAnon stayed 8 to 13 MB above its level before them. Now the chunks come from the
    listener's pool, which lets them go once the fetches are over, and malloc_trim returns the heap's
    free pages: RssAnon comes back to within BOUND_BYTES of before (it was below it in the runs measured)."""
    broker = BrokerProcess(tmp_path / "data").start()
    try:
        pid = broker.proc.pid
        with BlockingConnection(broker.host, broker.port, timeout_s=60) as c:
            _create(c, topic_name)
            for _ in range(PARTITION_MB):
                _produce(c, topic_name, simple_batch(os.urandom(1_000_000)))
        fds = _fds(pid)
        before = _rss_anon(pid)
        after_rounds = []
        for _ in range(ROUNDS):
            errors: list[BaseException] = []

            def run(fn):
                try:
                    fn(broker.host, broker.port, topic_name)
                except BaseException as e:  # reported below, in the test's thread
                    errors.append(e)

            threads = [threading.Thread(target=run, args=(_slow_reader,)) for _ in range(SLOW_READERS)] + \
                [threading.Thread(target=run, args=(_huge_fetcher,)) for _ in range(HUGE_FETCHERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors
            wait_until(lambda: _fds(pid) <= fds, timeout=60, what="the broker to close the fetchers' connections")
            after_rounds.append(_rss_anon(pid))

        def growth():
            return _rss_anon(pid) - before

        def report():
            return (f"RssAnon {before / 2**20:.1f} MB before the fetches, "
                    f"{', '.join(f'{r / 2**20:.1f}' for r in after_rounds)} MB after each round, "
                    f"{(before + growth()) / 2**20:.1f} MB now")

        wait_until(lambda: growth() <= BOUND_BYTES, timeout=60,
                   what=lambda: f"{report()}: more than {BOUND_BYTES / 2**20:.0f} MB kept")
        print(report())  # with -s: the figures of a run that passed
        with BlockingConnection(broker.host, broker.port, timeout_s=60) as c:  # and it still serves
            resp = c.request(1, 11, _fetch(topic=topic_name, max_bytes=2**31 - 1))
            assert resp.responses[0].partitions[0].error_code == 0
    finally:
        broker.kill()
