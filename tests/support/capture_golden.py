"""Capture golden request frames from real Kafka clients (a script, not a test).

    .venv/bin/python tests/support/capture_golden.py            # all clients, writes tests/golden/*.bin
    .venv/bin/python tests/support/capture_golden.py aiokafka   # one client

A tiny TCP listener on a free port plays just enough of a broker for a producer to send its Produce:

- ApiVersions: error 0 and an advertisement of Produce 0-11, Fetch 4-16, ListOffsets 1-8, Metadata 0-12,
  ApiVersions 0-4 (and InitProducerId 0-5, for clients that are idempotent by default). A version above 4
  gets UNSUPPORTED_VERSION (35) with a v0 body, as Kafka answers (KIP-511), so the client retries lower.
  The response header is always v0.
- Metadata: one broker (node 0, this listener) and one topic, `golden`, with one partition led by node 0.
- InitProducerId: producer id 1000, epoch 0.
- Produce: every partition accepted at offset 0, so the client finishes instead of timing out.

Every request frame is recorded; the first frame of each distinct (client, API, version) is written to
tests/golden/<client>-<api>-v<version>.bin, without its 4-byte size prefix (so: request header, then
body). All responses are encoded with our generated codec. Nothing here is used by the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import struct
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kbroker.wire.messages import BY_KEY, api_versions, init_producer_id, metadata, produce  # noqa: E402
from kbroker.wire.primitives import read_nullable_string, skip_tagged_fields  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"
TOPIC = "golden"
TOPIC_ID = uuid.UUID("6f6c6467-656e-4b62-726f-6b6572000001")
UNSUPPORTED_VERSION = 35

ADVERTISED = [  # (api_key, min_version, max_version)
    (0, 0, 11),   # Produce
    (1, 4, 16),   # Fetch
    (2, 1, 8),    # ListOffsets
    (3, 0, 12),   # Metadata
    (18, 0, 4),   # ApiVersions
    (22, 0, 5),   # InitProducerId
]

log = logging.getLogger("capture")


def api_file_name(api_key: int) -> str:
    return BY_KEY[api_key].__name__.rsplit(".", 1)[-1]


def flexible(api_key: int, version: int, side: str = "REQUEST") -> bool:
    first = getattr(BY_KEY[api_key], f"{side}_FLEXIBLE_FROM")
    return first is not None and version >= first


def parse_request_header(frame: bytes) -> tuple[int, int, int, str | None, int]:
    """(api_key, api_version, correlation_id, client_id, body offset) of a request frame."""
    api_key, api_version, correlation_id = struct.unpack_from(">hhi", frame, 0)
    client_id, pos = read_nullable_string(frame, 8)
    if api_key in BY_KEY and flexible(api_key, api_version):
        pos = skip_tagged_fields(frame, pos)
    return api_key, api_version, correlation_id, client_id, pos


# -- responses -----------------------------------------------------------------------------------------

def _response(api_key: int, version: int, correlation_id: int, obj) -> bytes:
    mod = BY_KEY[api_key]
    out = bytearray(struct.pack(">i", correlation_id))
    if api_key != 18 and flexible(api_key, version, "RESPONSE"):
        out.append(0)  # response header v1: an empty tagged-field section
    mod.RESPONSE_ENCODERS[version](obj, out)
    return struct.pack(">i", len(out)) + bytes(out)


def api_versions_response(version: int, correlation_id: int) -> bytes:
    R = api_versions.ApiVersionsResponse
    keys = [R.ApiVersion(api_key=k, min_version=lo, max_version=hi) for k, lo, hi in ADVERTISED]
    if version > api_versions.REQUEST_VERSIONS[1]:
        return _response(18, 0, correlation_id, R(error_code=UNSUPPORTED_VERSION, api_keys=keys))
    return _response(18, version, correlation_id, R(error_code=0, api_keys=keys, throttle_time_ms=0))


def metadata_response(version: int, correlation_id: int, port: int) -> bytes:
    R = metadata.MetadataResponse
    partition = R.MetadataResponsePartition(
        error_code=0, partition_index=0, leader_id=0, leader_epoch=0,
        replica_nodes=[0], isr_nodes=[0], offline_replicas=[],
    )
    topic = R.MetadataResponseTopic(
        error_code=0, name=TOPIC, topic_id=TOPIC_ID, is_internal=False, partitions=[partition],
        topic_authorized_operations=-2147483648,
    )
    body = R(
        throttle_time_ms=0,
        brokers=[R.MetadataResponseBroker(node_id=0, host="127.0.0.1", port=port, rack=None)],
        cluster_id="golden-cluster", controller_id=0, topics=[topic],
        cluster_authorized_operations=-2147483648,
    )
    return _response(3, version, correlation_id, body)


def init_producer_id_response(version: int, correlation_id: int) -> bytes:
    body = init_producer_id.InitProducerIdResponse(throttle_time_ms=0, error_code=0, producer_id=1000,
                                                   producer_epoch=0)
    return _response(22, version, correlation_id, body)


def produce_response(version: int, correlation_id: int, frame: bytes, body_pos: int) -> bytes | None:
    req, _ = produce.REQUEST_DECODERS[version](frame, body_pos)
    if req.acks == 0:
        return None
    R = produce.ProduceResponse
    topics = [
        R.TopicProduceResponse(name=t.name, partition_responses=[
            R.PartitionProduceResponse(index=p.index, error_code=0, base_offset=0, log_append_time_ms=-1,
                                       log_start_offset=0)
            for p in t.partition_data
        ])
        for t in req.topic_data
    ]
    return _response(0, version, correlation_id, R(responses=topics, throttle_time_ms=0))


# -- the listener --------------------------------------------------------------------------------------

class Recorder:
    """Frames by client; the client label is switched between runs (one client at a time)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.client = "unknown"
        self.frames: dict[str, list[bytes]] = {}

    def add(self, frame: bytes) -> None:
        with self.lock:
            self.frames.setdefault(self.client, []).append(frame)


class FakeBroker:
    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.stopping = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_exact(conn: socket.socket, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                head = self._read_exact(conn, 4)
                if head is None:
                    return
                (size,) = struct.unpack(">i", head)
                frame = self._read_exact(conn, size)
                if frame is None:
                    return
                self.recorder.add(frame)
                reply = self._answer(frame)
                if reply:
                    conn.sendall(reply)
        except OSError:
            return
        finally:
            conn.close()

    def _answer(self, frame: bytes) -> bytes | None:
        api_key, version, correlation_id, client_id, pos = parse_request_header(frame)
        log.info("%s: api %d v%d from %r", self.recorder.client, api_key, version, client_id)
        if api_key == 18:
            return api_versions_response(version, correlation_id)
        if api_key == 3:
            return metadata_response(version, correlation_id, self.port)
        if api_key == 22:
            return init_producer_id_response(version, correlation_id)
        if api_key == 0:
            return produce_response(version, correlation_id, frame, pos)
        return None  # recorded, never answered


# -- the clients ---------------------------------------------------------------------------------------

def run_kafka_python(port: int) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", client_id="golden-kafka-python",
                      request_timeout_ms=3000, max_block_ms=5000, linger_ms=0)  # idempotent by default
    try:
        p.send(TOPIC, key=b"key", value=b"golden value").get(timeout=5)
    finally:
        p.close(timeout=2)


def run_confluent_kafka(port: int) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "client.id": "golden-confluent-kafka",
                  "message.timeout.ms": 5000, "socket.timeout.ms": 3000, "linger.ms": 0,
                  "enable.idempotence": True})
    p.produce(TOPIC, key=b"key", value=b"golden value")
    p.flush(6)


def run_aiokafka(port: int) -> None:
    from aiokafka import AIOKafkaProducer

    async def go():
        p = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", client_id="golden-aiokafka",
                             request_timeout_ms=3000, linger_ms=0)
        await p.start()
        try:
            await asyncio.wait_for(p.send_and_wait(TOPIC, key=b"key", value=b"golden value"), 6)
        finally:
            await p.stop()

    asyncio.run(go())


CLIENTS = {
    "kafka-python": run_kafka_python,
    "confluent-kafka": run_confluent_kafka,
    "aiokafka": run_aiokafka,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clients", nargs="*", help=f"some of {', '.join(CLIENTS)} (default: all)")
    ap.add_argument("--out", type=Path, default=GOLDEN)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    unknown = set(args.clients) - set(CLIENTS)
    if unknown:
        ap.error(f"unknown clients: {', '.join(sorted(unknown))}")
    args.clients = args.clients or list(CLIENTS)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    recorder = Recorder()
    broker = FakeBroker(recorder)
    try:
        for name in args.clients:
            recorder.client = name
            t0 = time.monotonic()
            try:
                CLIENTS[name](broker.port)
                outcome = "ok"
            except Exception as e:  # a timeout after the Produce was sent is fine
                outcome = f"{type(e).__name__}: {e}"
            time.sleep(0.2)  # let the last frames land
            print(f"{name}: {outcome} ({time.monotonic() - t0:.1f}s)")
    finally:
        recorder.client = "done"
        broker.close()

    args.out.mkdir(parents=True, exist_ok=True)
    for client, frames in recorder.frames.items():
        if client not in CLIENTS:
            continue
        seen = set()
        for frame in frames:
            api_key, version = struct.unpack_from(">hh", frame, 0)
            if api_key not in BY_KEY or (api_key, version) in seen:
                continue
            seen.add((api_key, version))
            path = args.out / f"{client}-{api_file_name(api_key)}-v{version}.bin"
            path.write_bytes(frame)
            print(f"  {path} ({len(frame)} bytes)")
        if not any(k == 0 for k, _ in seen):
            print(f"  {client}: no Produce request was captured", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
