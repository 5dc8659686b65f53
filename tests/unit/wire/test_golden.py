"""Request frames captured from real clients (tests/golden/, see its README) decode with our codec.

Each file is a request frame without its size prefix. The header is read by hand here (api_key,
api_version, correlation_id, client_id, and the tagged-field section of header v2), the body with our
generated decoder; the values must be the ones the capture script's producers sent, and re-encoding the
decoded body must give back exactly the captured bytes.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from kbroker.wire.messages import BY_KEY
from kbroker.wire.primitives import read_nullable_string, read_uvarint, skip_tagged_fields

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
FILES = sorted(GOLDEN.glob("*.bin"))
NAME = re.compile(r"^(?P<client>[a-z-]+)-(?P<api>[a-z_]+)-v(?P<version>\d+)\.bin$")
CLIENTS = ("kafka-python", "confluent-kafka", "aiokafka")
TOPIC = "golden"

# KIP-511: what a broker accepts as client_software_name / client_software_version.
SOFTWARE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$")
SOFTWARE_NAMES = {"kafka-python": "kafka-python", "confluent-kafka": "confluent-kafka-python"}

MODULES_BY_NAME = {m.__name__.rsplit(".", 1)[-1]: m for m in BY_KEY.values()}


class Golden:
    def __init__(self, path: Path):
        m = NAME.match(path.name)
        assert m, f"unexpected golden file name {path.name}"
        self.path = path
        self.client = m["client"]
        self.module = MODULES_BY_NAME[m["api"]]
        self.version = int(m["version"])
        self.frame = path.read_bytes()
        self.api_key, self.api_version, self.correlation_id = struct.unpack_from(">hhi", self.frame, 0)
        self.client_id, pos = read_nullable_string(self.frame, 8)
        first_flexible = self.module.REQUEST_FLEXIBLE_FROM
        self.flexible = first_flexible is not None and self.api_version >= first_flexible
        self.header_tags = None
        if self.flexible:
            self.header_tags, _ = read_uvarint(self.frame, pos)
            pos = skip_tagged_fields(self.frame, pos)
        self.body_pos = pos

    def decode(self):
        return self.module.REQUEST_DECODERS[self.api_version](memoryview(self.frame), self.body_pos)


def _golden(path: Path) -> Golden:
    return Golden(path)


def test_there_are_golden_files_from_every_client():
    names = {p.name for p in FILES}
    for client in CLIENTS:
        assert f"{client}-produce-v" in " ".join(names), f"no Produce frame from {client}"
        assert any(n.startswith(f"{client}-api_versions-v") for n in names)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_header(path):
    g = _golden(path)
    assert g.client in CLIENTS
    assert g.api_key == g.module.API_KEY
    assert g.api_version == g.version
    lo, hi = g.module.REQUEST_VERSIONS
    assert lo <= g.api_version <= hi
    assert g.correlation_id >= 0
    assert g.client_id == f"golden-{g.client}"
    if g.flexible:
        assert g.header_tags == 0  # no client sends header tags today


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_decodes_whole_and_re_encodes_to_the_same_bytes(path):
    g = _golden(path)
    req, end = g.decode()
    assert end == len(g.frame)
    out = bytearray()
    g.module.REQUEST_ENCODERS[g.api_version](req, out)
    assert bytes(out) == g.frame[g.body_pos:]
    # And with trailing bytes (the next frame), decoding still stops at the end of this one.
    req2, end2 = g.module.REQUEST_DECODERS[g.api_version](g.frame + b"\x00\x00\x00\x10next", g.body_pos)
    assert (req2, end2) == (req, end)


def _api_files(api: str):
    return [p for p in FILES if NAME.match(p.name)["api"] == api]


@pytest.mark.parametrize("path", _api_files("api_versions"), ids=lambda p: p.stem)
def test_api_versions_values(path):
    g = _golden(path)
    req, _ = g.decode()
    if g.api_version >= 3:
        assert req.client_software_name == SOFTWARE_NAMES[g.client]
        assert SOFTWARE.match(req.client_software_name)
        assert SOFTWARE.match(req.client_software_version), req.client_software_version
    else:
        assert len(g.frame) == g.body_pos  # the body of ApiVersions v0-2 is empty


@pytest.mark.parametrize("path", _api_files("metadata"), ids=lambda p: p.stem)
def test_metadata_values(path):
    g = _golden(path)
    req, _ = g.decode()
    # kafka-python and aiokafka bootstrap with no topics; librdkafka asks for the one it produces to.
    assert req.topics is not None
    assert all(t.name == TOPIC for t in req.topics)


@pytest.mark.parametrize("path", _api_files("init_producer_id"), ids=lambda p: p.stem)
def test_init_producer_id_values(path):
    g = _golden(path)
    req, _ = g.decode()
    assert req.transactional_id is None  # idempotent, not transactional
    assert (req.producer_id, req.producer_epoch) == (-1, -1)


@pytest.mark.parametrize("path", _api_files("produce"), ids=lambda p: p.stem)
def test_produce_values(path):
    crc32c = pytest.importorskip("crc32c")
    g = _golden(path)
    req, _ = g.decode()
    assert req.transactional_id is None
    assert req.acks in (-1, 1)
    assert req.timeout_ms > 0
    assert [t.name for t in req.topic_data] == [TOPIC]
    (part,) = req.topic_data[0].partition_data
    assert part.index == 0
    records = bytes(part.records)
    # RecordBatch v2: baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8,
    # crc uint32 (CRC32C of everything after it), attributes int16, lastOffsetDelta int32,
    # baseTimestamp int64, maxTimestamp int64, producerId int64, producerEpoch int16,
    # baseSequence int32, records count int32.
    (base_offset, batch_length, _leader_epoch, magic, crc, _attributes, last_offset_delta,
     base_ts, max_ts, producer_id, producer_epoch, base_sequence, count) = struct.unpack_from(
        ">qiibIhiqqqhii", records, 0)
    assert magic == 2
    assert base_offset == 0
    assert batch_length == len(records) - 12  # one batch, nothing after it
    assert crc == crc32c.crc32c(records[21:])
    assert (last_offset_delta, count) == (0, 1)
    assert 0 < base_ts <= max_ts
    if producer_id != -1:  # idempotent: the id our InitProducerId handed out
        assert (producer_id, producer_epoch, base_sequence) == (1000, 0, 0)
    assert b"golden value" in records


# -- the capture script's own answers (tests/support/capture_golden.py) -------------------------------

def _capture():
    from support import capture_golden
    return capture_golden


def _split_response(frame: bytes) -> tuple[int, bytes]:
    (size, correlation_id) = struct.unpack_from(">ii", frame, 0)
    assert size == len(frame) - 4
    return correlation_id, frame[8:]


def test_capture_answers_api_versions_above_v4_with_unsupported_version_in_a_v0_body():
    from kbroker.wire.messages import api_versions

    cap = _capture()
    correlation_id, body = _split_response(cap.api_versions_response(7, 42))
    assert correlation_id == 42
    resp, end = api_versions.RESPONSE_DECODERS[0](body, 0)
    assert end == len(body)
    assert resp.error_code == 35  # UNSUPPORTED_VERSION
    assert (18, 0, 4) in [(k.api_key, k.min_version, k.max_version) for k in resp.api_keys]


@pytest.mark.parametrize("version", [0, 3, 4])
def test_capture_advertises_the_briefed_versions(version):
    from kbroker.wire.messages import api_versions

    cap = _capture()
    correlation_id, body = _split_response(cap.api_versions_response(version, 1))
    resp, end = api_versions.RESPONSE_DECODERS[version](body, 0)  # header v0 even when flexible
    assert (correlation_id, end, resp.error_code) == (1, len(body), 0)
    got = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
    assert got[0] == (0, 11) and got[1] == (4, 16) and got[2] == (1, 8)
    assert got[3] == (0, 12) and got[18] == (0, 4)


@pytest.mark.parametrize("version", [0, 5, 9, 12])
def test_capture_metadata_points_back_at_itself(version):
    from kbroker.wire.messages import metadata

    cap = _capture()
    correlation_id, body = _split_response(cap.metadata_response(version, 3, 19092))
    if version >= 9:
        assert body[0] == 0  # response header v1: no tagged fields
        body = body[1:]
    resp, end = metadata.RESPONSE_DECODERS[version](body, 0)
    assert end == len(body)
    assert [(b.node_id, b.host, b.port) for b in resp.brokers] == [(0, "127.0.0.1", 19092)]
    (topic,) = resp.topics
    assert topic.name == TOPIC and [(p.partition_index, p.leader_id) for p in topic.partitions] == [(0, 0)]
