"""Issue 16: a connection holds a bounded amount of unsent answer, whatever its storage and event loop.

A client that pipelines Fetch requests and never reads its answers must not make the broker keep them all:
Kafka mutes a channel until its response is sent; kbroker stops handling a connection's next request while
its unsent answers are above the transport's write-buffer high-water mark (pause_writing). Measured from
outside: the broker process's peak RSS while such a client waits, and another client's latency meanwhile.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from kbroker.records.builder import simple_batch
from kbroker.client import BlockingConnection
from test_hostile_fetch import _create, _fetch, _produce

FETCH_MAX = 1 << 20
PIPELINED = 32
VALUE = 100_000

try:
    import uvloop  # noqa: F401
    LOOPS = ["asyncio", "uvloop"]
except ImportError:
    LOOPS = ["asyncio"]

# `kbroker serve` runs under uvloop whenever it can be imported; this makes it unimportable.
_NO_UVLOOP = "import sys; sys.modules['uvloop'] = None; from kbroker.cli import main; sys.exit(main(sys.argv[1:]))"


class _Served:
    def __init__(self, data_dir, storage: str, loop: str):
        prefix = [sys.executable, "-m", "kbroker"] if loop == "uvloop" else [sys.executable, "-c", _NO_UVLOOP]
        cmd = prefix + ["serve", "--port", "0", "--data-dir", str(data_dir), "--storage", storage,
                        "--set", f"fetch.max.bytes={FETCH_MAX}"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        line = self.proc.stdout.readline()  # the broker's first line; EOF if it dies
        if not line.startswith("kbroker listening on "):
            self.proc.kill()
            raise RuntimeError(f"kbroker did not start: {line!r}")
        self.host, port = line.strip().rsplit(" ", 1)[1].rsplit(":", 1)
        self.port = int(port)

    def peak_rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the broker's peak RSS from /proc")
@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("storage", ["memory", "segment"])
def test_a_client_that_pipelines_fetches_and_never_reads_holds_one_answer(tmp_path, topic_name, storage, loop):
    """32 pipelined Fetch requests of a 20 MB partition, each answer capped at 1 MiB, from a client that
    reads nothing: before, the memory storage's answers were gathered for one write and all 32 sat in the
    transport's buffer (the peak RSS grew by 60 MB and more); now the broker stops at the first answer the
    socket does not take. Meanwhile another client's requests are answered as usual."""
    served = _Served(tmp_path / "data", storage, loop)
    try:
        c = BlockingConnection(served.host, served.port, timeout_s=30)
        _create(c, topic_name)
        for _ in range(200):  # 20 MB
            _produce(c, topic_name, simple_batch(os.urandom(VALUE)))
        warm = c.request(1, 11, _fetch(topic=topic_name, max_bytes=2**31 - 1))
        assert 900_000 < len(warm.responses[0].partitions[0].records) <= FETCH_MAX
        before = served.peak_rss()

        hog = BlockingConnection(served.host, served.port, timeout_s=60)
        hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        frames = b"".join(hog.frame(1, 11, _fetch(topic=topic_name, max_bytes=2**31 - 1)) for _ in range(PIPELINED))
        hog.send_bytes(frames)

        # Another client keeps working meanwhile: it fetches the same partition, from its end.
        latencies = []
        end = warm.responses[0].partitions[0].high_watermark
        for _ in range(20):
            start = time.monotonic()
            resp = c.request(1, 11, _fetch(topic=topic_name, parts=((0, end - 1),), max_bytes=2**31 - 1))
            assert resp.responses[0].partitions[0].error_code == 0
            latencies.append(time.monotonic() - start)
        grown = served.peak_rss() - before
        assert grown < 12_000_000, f"peak RSS grew by {grown / 1e6:.1f} MB with {PIPELINED} answers unread"
        latencies.sort()
        assert latencies[len(latencies) // 2] < 0.5 and latencies[-1] < 2.0, latencies

        # Still connected, and served: its first answers are on the wire (reading 32 MB through a 4 KiB
        # window takes minutes, so the test does not).
        assert hog.read_frame() is not None
        hog.close()
        c.close()
    finally:
        served.close()
