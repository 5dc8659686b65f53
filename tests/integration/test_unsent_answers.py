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

import kbroker.server
from kbroker import Broker
from kbroker.records.builder import simple_batch
from kbroker.client import BlockingConnection
from kbroker.wire.messages import produce
from test_hostile_fetch import _create, _fetch, _produce

PIPELINED = 64
VALUE = 100_000
# One stored batch per answer: handling such a Fetch costs the same few tens of microseconds whatever its
# size, so the old server handled several of them in one turn of its loop and held all their answers.
BIG_VALUE = 4_000_000
FETCH_MAX = BIG_VALUE + 4096

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
                        "--set", f"fetch.max.bytes={FETCH_MAX}", "--set", "message.max.bytes=8000000"]
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
    """64 pipelined Fetch requests, each answered with one stored batch of 4 MB (fetch.max.bytes), from a
    client with a 4 KiB window that reads nothing. The broker's peak RSS (VmHWM, from /proc) may grow by
    about one answer (the transport's copy of what the socket did not take, and the gathered answer while it
    is written) plus the transport's buffer, not by the answers the client asked for. Before (the server of
    a6ffea1^, asyncio, memory storage), every answer handled in one turn of the loop (half a millisecond:
    3 to 9 of them on this machine) was gathered and then copied into the transport for one write: the peak
    grew by 38 to 98 MB; now by about 2 to 6 MB. Meanwhile another client's requests are answered as usual."""
    served = _Served(tmp_path / "data", storage, loop)
    try:
        c = BlockingConnection(served.host, served.port, timeout_s=30)
        _create(c, topic_name)
        for _ in range(3):
            _produce(c, topic_name, simple_batch(os.urandom(BIG_VALUE)))
        warm = c.request(1, 11, _fetch(topic=topic_name, max_bytes=2**31 - 1))
        answer = len(warm.responses[0].partitions[0].records)
        assert BIG_VALUE < answer <= FETCH_MAX
        before = served.peak_rss()

        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        raw.settimeout(60)
        raw.connect((served.host, served.port))
        hog = BlockingConnection.over(raw)
        hog.send_bytes(b"".join(hog.frame(1, 11, _fetch(topic=topic_name, max_bytes=2**31 - 1))
                                for _ in range(PIPELINED)))

        # Another client keeps working meanwhile: it fetches the same partition, from its end.
        latencies = []
        end = warm.responses[0].partitions[0].high_watermark
        for _ in range(20):
            start = time.monotonic()
            resp = c.request(1, 11, _fetch(topic=topic_name, parts=((0, end - 1),), max_bytes=2**31 - 1))
            assert resp.responses[0].partitions[0].error_code == 0
            latencies.append(time.monotonic() - start)
        grown = served.peak_rss() - before
        assert grown < 2 * answer + 2_000_000, \
            f"peak RSS grew by {grown / 1e6:.1f} MB with {PIPELINED} answers of {answer / 1e6:.1f} MB unread"
        latencies.sort()
        assert latencies[len(latencies) // 2] < 0.5 and latencies[-1] < 2.0, latencies

        # Still connected, and served: its first answer is on the wire (reading 256 MB through a 4 KiB
        # window takes minutes, so the test does not).
        assert hog.read_frame() is not None
        hog.close()
        c.close()
    finally:
        served.close()


def _high_watermark(c: BlockingConnection, topic: str) -> int:
    resp = c.request(1, 11, _fetch(topic=topic, max_bytes=1))
    return resp.responses[0].partitions[0].high_watermark


def test_a_non_reading_client_gets_no_more_requests_handled_than_one_answer_beyond_the_mark(topic_name, monkeypatch):
    """The mechanism itself, without the turn budget that also ends a connection's turn (half a millisecond,
    which on a fast machine hides the difference): a client with a 4 KiB receive window pipelines 8 Fetch
    requests whose answers are 4 MiB each and then a Produce of one record to another topic, and reads
    nothing. The broker handles requests only until its unsent answers for that connection pass the
    transport's high-water mark: the Produce is not carried out while the client does not read, and the
    transport holds at most one answer beyond the mark. Before the change (answers gathered for one write
    until the queue was empty or the turn ended) all nine were handled at once: the record was appended and
    some 28 MB of answers sat in the transport. Once the client reads, the rest is handled in order."""
    monkeypatch.setattr(kbroker.server, "TURN_BUDGET_S", 60.0)
    answer = 4 << 20
    with Broker(port=0, storage="memory", settings={"fetch.max.bytes": str(answer)}) as b:
        c = BlockingConnection(b.host, b.port, timeout_s=30)
        marker = topic_name + "-marker"
        _create(c, topic_name)
        _create(c, marker)
        for _ in range(45):  # 4.5 MB: every Fetch from offset 0 is answered with 4 MiB
            _produce(c, topic_name, simple_batch(os.urandom(VALUE)))

        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        raw.settimeout(30)
        raw.connect((b.host, b.port))
        hog = BlockingConnection.over(raw)
        frames = [hog.frame(1, 11, _fetch(topic=topic_name, max_bytes=2**31 - 1)) for _ in range(8)]
        P = produce.ProduceRequest
        frames.append(hog.frame(0, 7, P(acks=1, timeout_ms=5000, topic_data=[P.TopicProduceData(
            name=marker, partition_data=[P.PartitionProduceData(index=0, records=bytes(simple_batch(b"m")))])])))
        hog.send_bytes(b"".join(frames))

        def hog_side():
            conns = [k for s in b.state.connection_quotas.servers for k in s.connections if k.peer.endswith(
                f":{raw.getsockname()[1]}")]
            if not conns:
                return None
            k = conns[0]
            return k.write_paused, len(k.queue), k.transport.get_write_buffer_size(), k._high_water

        deadline = time.monotonic() + 30
        while (state := b.call(hog_side)) is None or not state[0]:  # until the broker stops for the client
            assert time.monotonic() < deadline, state
            time.sleep(0.01)
        paused, queued, buffered, high_water = state
        assert _high_watermark(c, marker) == 0, "the Produce behind the unread answers was handled"
        assert queued >= 1, state
        assert buffered <= answer + high_water + 65536, f"{buffered / 1e6:.1f} MB of answers held for one client"

        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for _ in range(8):
            resp = hog.read_response()
            assert len(resp.responses[0].partitions[0].records) > answer - VALUE - 1000
        assert hog.read_response().responses[0].partition_responses[0].error_code == 0
        assert _high_watermark(c, marker) == 1
        hog.close()
        c.close()


def test_a_slow_reader_of_a_large_stored_answer_holds_a_chunk_not_the_answer(tmp_path, topic_name):
    """Segment storage, an answer of 32 MiB (fetch.max.bytes) to a client with a 4 KiB window that reads
    nothing: before, the part of the answer the socket did not take was read into memory whole and handed
    to the transport (32 MB held for one client, and as much again for each such client). Now the broker
    holds at most a chunk of it in memory and sends the rest from the segment file as the client reads, as
    Kafka's transferTo does; the file stays readable for it even when the topic is deleted meanwhile, and
    the client gets exactly the stored bytes."""
    answer = 32 << 20
    with Broker(port=0, storage="segment", data_dir=str(tmp_path / "data"),
                settings={"fetch.max.bytes": str(answer)}) as b:
        c = BlockingConnection(b.host, b.port, timeout_s=30)
        _create(c, topic_name)
        for _ in range(340):  # 34 MB
            _produce(c, topic_name, simple_batch(os.urandom(VALUE)))
        expected = bytes(c.request(1, 11, _fetch(topic=topic_name, max_bytes=2**31 - 1))
                         .responses[0].partitions[0].records)
        assert answer - VALUE - 1000 < len(expected) <= answer

        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(30)
        raw.connect((b.host, b.port))
        hog = BlockingConnection.over(raw)
        hog.send_bytes(hog.frame(1, 11, _fetch(topic=topic_name, max_bytes=2**31 - 1)))

        def hog_side():
            conns = [k for s in b.state.connection_quotas.servers for k in s.connections
                     if k.peer.endswith(f":{raw.getsockname()[1]}")]
            if not conns or not conns[0]._pending:
                return None
            k = conns[0]
            return k.transport.get_write_buffer_size(), sum(len(p) for p in k._pending), k._high_water

        deadline = time.monotonic() + 30
        while (state := b.call(hog_side)) is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        buffered, pending, high_water = state
        assert buffered <= kbroker.server.PENDING_CHUNK + high_water, f"{buffered / 1e6:.1f} MB held in memory"
        assert pending > answer // 2, state  # still in the segment file, not in memory

        from kbroker.wire.messages import delete_topics
        D = delete_topics.DeleteTopicsRequest
        resp = c.request(20, 6, D(topics=[D.DeleteTopicState(name=topic_name)], timeout_ms=5000))
        assert resp.responses[0].error_code == 0

        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        got = hog.read_response()
        assert bytes(got.responses[0].partitions[0].records) == expected
        assert b.call(lambda: [k._pending_fds for s in b.state.connection_quotas.servers for k in s.connections]) \
            == [[], []]
        hog.close()
        c.close()
