"""The fuzz suite (issue 16): request frames generated from the message schemas and mutated (tests/support/fuzzing.py),
against the decoder and against a running broker.

Invariants. The decoder: a frame decodes, or raises one of the errors the server turns into "close this
connection" (DecodeError and the struct/index/value errors of a short or inconsistent buffer), nothing else,
and quickly. The broker: no handler fails with a traceback, another connection (the canary) keeps getting
answers within a second, and the records stored before the fuzzing are still there, byte for byte.

``make test`` runs a bounded number of examples (Hypothesis profile ``ci``); ``make fuzz`` runs the same
tests with many more (profile ``fuzz``).
"""

from __future__ import annotations

import logging
import socket
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support import fuzzing
from kbroker import Broker
from kbroker.handlers import HANDLERS
from kbroker.records.builder import simple_batch
from kbroker.wire.header import body_offset, peek_header
from kbroker.wire.messages import BY_KEY, api_versions, create_topics, fetch, produce
from kbroker.wire.primitives import DecodeError
from kbroker.client import BlockingConnection

# What the server's dispatch turns into a closed connection (server.py); anything else is a decoder bug.
REFUSALS = (DecodeError, struct.error, IndexError, ValueError)
DECODE_SECONDS = 1.0  # a frame of a few hundred bytes decodes in microseconds; a second means a blow-up
CANARY_SECONDS = 1.0


def _flexible(key: int, version: int) -> bool:
    module = BY_KEY[key]
    return module.REQUEST_FLEXIBLE_FROM is not None and version >= module.REQUEST_FLEXIBLE_FROM


def _decode(frame: bytes):
    """Decode a frame the way the server's dispatch does, minus the handler."""
    body = memoryview(frame[4:])
    header = peek_header(body)
    handler = HANDLERS.get(header.api_key)
    if handler is None or header.api_version not in handler.codec.REQUEST_DECODERS:
        raise DecodeError("not served")
    pos = body_offset(body, handler.flexible(header.api_version))
    return handler.codec.REQUEST_DECODERS[header.api_version](body, pos)


# -- the decoder --------------------------------------------------------------------------------------------


@given(st.data())
def test_the_decoder_decodes_every_generated_frame(data):
    key, version, request = data.draw(fuzzing.requests())
    frame = fuzzing.encode_frame(key, version, request, correlation_id=7)
    decoded, end = _decode(frame)
    assert end == len(frame) - 4
    assert type(decoded) is type(request)


@given(st.data())
def test_the_decoder_decodes_or_refuses_a_mutated_frame(data):
    key, version, request = data.draw(fuzzing.requests())
    frame = fuzzing.encode_frame(key, version, request, correlation_id=7)
    frame = data.draw(fuzzing.mutated(frame, _flexible(key, version)))
    start = time.monotonic()
    try:
        _decode(frame)
    except REFUSALS:
        pass
    took = time.monotonic() - start
    assert took < DECODE_SECONDS, f"decoding {len(frame)} bytes took {took:.2f} s"


# -- a running broker ---------------------------------------------------------------------------------------

CANARY = "fuzz-canary"
SYNC_ID = 0x5EED


class _Crashes(logging.Handler):
    """Every error the broker logs with a traceback: a handler that failed instead of answering."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        if record.exc_info:
            self.records.append(record)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    crashes = _Crashes()
    logging.getLogger("kbroker").addHandler(crashes)
    with Broker(port=0, data_dir=tmp_path_factory.mktemp("fuzz") / "data") as b:
        canary = BlockingConnection(b.host, b.port)
        C = create_topics.CreateTopicsRequest
        topics = [(CANARY, 1)] + [(name, 3) for name in fuzzing.KNOWN_TOPICS]
        resp = canary.request(19, 4, C(topics=[C.CreatableTopic(name=name, num_partitions=n, replication_factor=1,
                                                                assignments=[], configs=[]) for name, n in topics],
                                       timeout_ms=5000))
        assert [t.error_code for t in resp.topics] == [0] * len(topics)
        P = produce.ProduceRequest
        for name, n in topics:
            for i in range(5):
                batch = bytes(simple_batch(b"%s-%d" % (name.encode(), i), keys=[b"k"]))
                resp = canary.request(0, 7, P(acks=-1, timeout_ms=5000, topic_data=[P.TopicProduceData(
                    name=name, partition_data=[P.PartitionProduceData(index=i % n, records=batch)])]))
                assert resp.responses[0].partition_responses[0].error_code == 0
        stored = _canary_records(canary)
        yield b, canary, crashes
        assert _canary_records(canary) == stored, "the records stored before the fuzzing changed"
        canary.close()
    logging.getLogger("kbroker").removeHandler(crashes)


def _canary_records(c: BlockingConnection) -> bytes:
    F = fetch.FetchRequest
    resp = c.request(1, 11, F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
                              session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic=CANARY, partitions=[
                                  F.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20,
                                                   current_leader_epoch=-1, log_start_offset=-1)])],
                              forgotten_topics_data=[], rack_id=""))
    p = resp.responses[0].partitions[0]
    assert p.error_code == 0 and p.high_watermark == 5, p
    return bytes(p.records)


def _tame(request, depth=0):
    """Keep waits short: a generated long poll or rebalance would make each example last its timeout (the
    mutations can still make them long; the example then ends at its read deadline)."""
    for name in getattr(request, "__slots__", ()):
        value = getattr(request, name)
        if isinstance(value, int) and not isinstance(value, bool) and (name.endswith("wait_ms") or
                                                                         name.endswith("timeout_ms")):
            setattr(request, name, max(-1, min(value, 100)))
        elif isinstance(value, list) and depth < 4:
            for item in value:
                _tame(item, depth + 1)
        elif hasattr(value, "__slots__") and depth < 4:
            _tame(value, depth + 1)


def _sync_frame() -> bytes:
    """ApiVersions v0 with a correlation id no generated request uses: its answer means the broker has
    dealt with everything sent before it on that connection."""
    out = bytearray(struct.pack(">hhih", 18, 0, SYNC_ID, -1))
    api_versions.REQUEST_ENCODERS[0](api_versions.ApiVersionsRequest(), out)
    return struct.pack(">i", len(out)) + bytes(out)


def _exchange(host: str, port: int, frame: bytes, deadline_s: float = 2.0) -> str:
    """Send the frame and the sync request; read until the sync answer, the broker closing, or the deadline."""
    with socket.create_connection((host, port), timeout=deadline_s) as s:
        try:
            s.sendall(frame + _sync_frame())
        except OSError:
            return "closed"
        buf = b""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                chunk = s.recv(1 << 16)
            except socket.timeout:
                return "deadline"
            except OSError:
                return "closed"
            if not chunk:
                return "closed"
            buf += chunk
            while len(buf) >= 8:
                size, cid = struct.unpack_from(">ii", buf)
                if size < 4 or len(buf) < 4 + size:
                    break
                if cid == SYNC_ID:
                    return "answered"
                buf = buf[4 + size:]
        return "deadline"


def _canary_answers(canary: BlockingConnection) -> float:
    start = time.monotonic()
    assert canary.request(18, 0, api_versions.ApiVersionsRequest()).error_code == 0
    return time.monotonic() - start


@settings(max_examples=fuzzing.BROKER_EXAMPLES)
@given(st.data())
def test_the_broker_survives_mutated_frames(fuzzed, data):
    b, canary, crashes = fuzzed
    key, version, request = data.draw(fuzzing.requests())
    _tame(request)
    frame = fuzzing.encode_frame(key, version, request, correlation_id=data.draw(st.integers(0, 1000)))
    frame = data.draw(fuzzing.mutated(frame, _flexible(key, version)))
    _exchange(b.host, b.port, frame)
    took = _canary_answers(canary)
    assert took < CANARY_SECONDS, f"the canary waited {took:.2f} s"
    assert not crashes.records, [r.getMessage() for r in crashes.records]


@settings(max_examples=fuzzing.BROKER_EXAMPLES)
@given(st.data())
def test_the_broker_survives_pipelined_mutated_frames(fuzzed, data):
    """Several requests, some mutated, in one write, the way a client pipelines."""
    b, canary, crashes = fuzzed
    frames = []
    for i in range(data.draw(st.integers(2, 5))):
        key, version, request = data.draw(fuzzing.requests())
        _tame(request)
        frame = fuzzing.encode_frame(key, version, request, correlation_id=i)
        if data.draw(st.booleans()):
            frame = data.draw(fuzzing.mutated(frame, _flexible(key, version)))
        frames.append(frame)
    _exchange(b.host, b.port, b"".join(frames))
    took = _canary_answers(canary)
    assert took < CANARY_SECONDS, f"the canary waited {took:.2f} s"
    assert not crashes.records, [r.getMessage() for r in crashes.records]


# The APIs every client uses on every connection, where most of the broker's code is: Produce, Fetch,
# ListOffsets, Metadata, and the group and transaction APIs a consumer and a producer send.
DATA_PATH = {0, 1, 2, 3, 8, 9, 10, 11, 12, 14, 22, 24}


@settings(max_examples=fuzzing.BROKER_EXAMPLES)
@given(st.data())
def test_the_broker_survives_mutated_data_path_frames(fuzzed, data):
    b, canary, crashes = fuzzed
    key, version, request = data.draw(fuzzing.requests(api_keys=DATA_PATH))
    _tame(request)
    frame = fuzzing.encode_frame(key, version, request, correlation_id=data.draw(st.integers(0, 1000)))
    if data.draw(st.booleans()):
        frame = data.draw(fuzzing.mutated(frame, _flexible(key, version)))
    _exchange(b.host, b.port, frame)
    took = _canary_answers(canary)
    assert took < CANARY_SECONDS, f"the canary waited {took:.2f} s"
    assert not crashes.records, [r.getMessage() for r in crashes.records]
