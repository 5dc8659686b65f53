"""Hypothesis strategies for the fuzz suite (tests/integration/test_fuzz.py): request frames generated from the message
schemas (protocol/messages/*.json, read with the codec generator's own parser), then mutated the ways a
careless or hostile client mutates them: lengths and counts set to extremes, versions swapped, tagged-field
sections replaced, record batches damaged (with their CRC fixed so the damage reaches past the checksum),
bytes flipped, inserted, cut or appended.

How much to run comes from Hypothesis profiles: ``ci`` (the default, a bounded example count for
``make test``) and ``fuzz`` (``make fuzz``, HYPOTHESIS_PROFILE=fuzz), which runs many more.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

from crc32c import crc32c
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from kbroker.handlers import TABLE
from kbroker.records.batch import ATTRIBUTES_OFFSET
from kbroker.records.builder import build_batch
from kbroker.records.compression import GZIP, LZ4, NONE, SNAPPY, ZSTD
from kbroker.records.record import Record
from kbroker.wire.header import RequestHeader, encode_request_header
from kbroker.wire.messages import BY_KEY

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import gen as schema_gen  # noqa: E402  (the generator's schema parser: one reading of the schemas)

settings.register_profile(
    "ci", max_examples=int(os.environ.get("KBROKER_FUZZ_EXAMPLES", "200")), deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("KBROKER_FUZZ_EXAMPLES", "20000")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# Examples against a running broker cost a connection and two round trips each: fewer of them.
BROKER_EXAMPLES = max(20, settings.default.max_examples * 3 // 5)

# -- the schemas --------------------------------------------------------------------------------------------

_SCHEMAS: dict[int, tuple] = {}


def request_schema(api_key: int):
    """(top-level request Struct, flexible VersionRange) of an API, from its JSON schema."""
    found = _SCHEMAS.get(api_key)
    if found is None:
        module = BY_KEY[api_key]
        path = ROOT / "protocol" / "messages" / f"{module.__name__.rsplit('.', 1)[1]}.json"
        schema = json.loads(path.read_text())
        top = schema_gen.Struct(schema["name"] + "Request", [])
        top.fields = schema_gen.parse_fields(schema["request"]["fields"], top, {})
        found = _SCHEMAS[api_key] = (top, schema_gen.VersionRange(schema["request"]["flexible"]))
    return found


SERVED = sorted((key, lo, hi) for key, (_module, (lo, hi)) in TABLE.items())

# -- values -------------------------------------------------------------------------------------------------

# Topics the broker fixture creates (tests/integration/test_fuzz.py): the canary, which the fuzzing must leave as it is,
# is not among them.
KNOWN_TOPICS = ["fuzz-a", "fuzz-b"]
_INT_BOUNDS = {"int8": 7, "int16": 15, "int32": 31, "int64": 63}
_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz._-0123456789", min_size=0, max_size=12)


# What a real client usually sends in these fields: drawn often, so that generated requests get past the
# first checks into the code behind them (a long poll, a read, an append) instead of failing early.
TYPICAL = {
    "session_id": 0, "session_epoch": -1, "min_bytes": 1, "max_wait_ms": 50, "max_bytes": 1 << 20,
    "partition_max_bytes": 1 << 20, "partition": 0, "partition_index": 0, "index": 0, "fetch_offset": 0,
    "isolation_level": 0, "replica_id": -1, "current_leader_epoch": -1, "acks": -1, "timestamp": -1,
    "num_partitions": 1, "replication_factor": 1, "generation_id": -1, "generation_id_or_member_epoch": -1,
    "producer_id": -1, "producer_epoch": -1, "log_start_offset": -1, "last_fetched_epoch": -1,
}


def _int(bits: int):
    lo, hi = -(1 << bits), (1 << bits) - 1
    # Extremes and small values are where bugs live; the whole range for the rest.
    return st.one_of(st.sampled_from([0, -1, 1, lo, hi]), st.integers(-3, 100), st.integers(lo, hi))


def record_batches():
    """Bytes for a ``records`` field: none, empty, valid batches, damaged ones (CRC fixed up), noise."""
    valid = st.builds(
        lambda values, keys, compression, ts: bytes(build_batch(
            [Record(i, ts, k, v) for i, (k, v) in enumerate(zip(keys, values))], compression=compression)),
        st.lists(st.binary(max_size=40), min_size=1, max_size=4),
        st.lists(st.one_of(st.none(), st.binary(max_size=8)), min_size=4, max_size=4),
        st.sampled_from([NONE, GZIP, SNAPPY, LZ4, ZSTD]),
        st.integers(0, 1 << 41),
    )
    return st.one_of(st.none(), st.just(b""), valid, st.builds(_damage_batch, valid, st.data()),
                     st.binary(max_size=80))


def _damage_batch(batch: bytes, data) -> bytes:
    buf = bytearray(batch)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(buf) - 1))
        buf[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()) and len(buf) > ATTRIBUTES_OFFSET:
        struct.pack_into(">I", buf, 17, crc32c(bytes(buf[ATTRIBUTES_OFFSET:])))
    return bytes(buf)


def _value(f, v: int, top_cls, draw):
    if f.is_array:
        if v in f.nullable and draw(st.integers(0, 9)) == 0:
            return None
        n = draw(st.integers(0, 3))
        return [_element(f, v, top_cls, draw, in_array=True) for _ in range(n)]
    if f.struct is not None and v in f.nullable and draw(st.integers(0, 4)) == 0:
        return None
    return _element(f, v, top_cls, draw)


def _element(f, v: int, top_cls, draw, in_array: bool = False):
    nullable = v in f.nullable and not in_array  # an array's nullability is the array's, not its elements'
    if f.struct is not None:
        return _struct_value(f.struct, v, top_cls, draw)
    t = f.type
    if t in _INT_BOUNDS:
        if f.name in TYPICAL and not in_array and draw(st.booleans()):
            return TYPICAL[f.name]
        return draw(_int(_INT_BOUNDS[t]))
    if t == "uint16":
        return draw(st.integers(0, 0xFFFF))
    if t == "uint32":
        return draw(st.integers(0, 0xFFFFFFFF))
    if t == "bool":
        return draw(st.booleans())
    if t == "float64":
        return draw(st.floats(allow_nan=False))
    if t == "uuid":
        return draw(st.uuids(version=4) | st.just(__import__("uuid").UUID(int=0)))
    if t == "string":
        if nullable and draw(st.integers(0, 4)) == 0:
            return None
        if f.name in ("topic", "name") and draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(KNOWN_TOPICS))  # topics that exist, so that requests reach them
        return draw(_NAMES)
    if t == "bytes":
        if nullable and draw(st.integers(0, 4)) == 0:
            return None
        return draw(st.binary(max_size=40))
    if t == "records":
        return draw(record_batches())
    raise AssertionError(f"no strategy for {t}")


def _struct_value(s, v: int, top_cls, draw):
    cls = top_cls if s.name == top_cls.__name__ else getattr(top_cls, s.name)
    obj = cls()
    for f in s.fields:
        if f.present(v):
            setattr(obj, f.name, _value(f, v, top_cls, draw))
    return obj


@st.composite
def requests(draw, api_keys=None):
    """(api key, version, request object) generated from the schema of an API kbroker serves."""
    key, lo, hi = draw(st.sampled_from([s for s in SERVED if api_keys is None or s[0] in api_keys]))
    version = draw(st.integers(lo, hi))
    top, _flex = request_schema(key)
    module = BY_KEY[key]
    top_cls = getattr(module, top.name)
    return key, version, _struct_value(top, version, top_cls, draw)


def encode_frame(key: int, version: int, request, correlation_id: int, client_id: str | None = "fuzz") -> bytes:
    """The request frame, size prefix included (the header version the API's version calls for)."""
    module = BY_KEY[key]
    flexible = module.REQUEST_FLEXIBLE_FROM is not None and version >= module.REQUEST_FLEXIBLE_FROM
    out = bytearray()
    encode_request_header(out, RequestHeader(key, version, correlation_id, client_id), flexible)
    module.REQUEST_ENCODERS[version](request, out)
    return struct.pack(">i", len(out)) + bytes(out)


# -- mutations ----------------------------------------------------------------------------------------------

_EXTREME_I32 = [0, -1, 1, 0x7FFFFFFF, -0x80000000, 0xFFFF, 0x10000, 100_000_000]
_EXTREME_I16 = [0, -1, 1, 0x7FFF, -0x8000, 0xFF]


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


@st.composite
def mutated(draw, frame: bytes, flexible: bool) -> bytes:
    """``frame`` (size prefix included) with 0 to 3 mutations; the size prefix is kept right unless a
    mutation is about it."""
    body = bytearray(frame[4:])
    fix_size = True
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["i32", "i16", "varint", "flip", "insert", "cut", "append", "version",
                                     "tagged", "size"]))
        if kind in ("i32", "i16", "varint", "flip", "insert", "cut") and not body:
            continue
        at = draw(st.integers(0, max(0, len(body) - 1)))
        if kind == "i32" and len(body) >= 4:
            at = min(at, len(body) - 4)
            struct.pack_into(">I", body, at, draw(st.sampled_from(_EXTREME_I32)) & 0xFFFFFFFF)
        elif kind == "i16" and len(body) >= 2:
            at = min(at, len(body) - 2)
            struct.pack_into(">H", body, at, draw(st.sampled_from(_EXTREME_I16)) & 0xFFFF)
        elif kind == "varint":
            # A compact length or count (flexible versions): a huge or zero unsigned varint.
            body[at:at + 1] = _uvarint(draw(st.sampled_from([0, 1, 0x7F, 0x3FFF, 0x7FFFFFFF, 0xFFFFFFFF])))
        elif kind == "flip":
            body[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "cut":
            del body[draw(st.integers(0, len(body))):]
        elif kind == "append":
            body += draw(st.binary(min_size=1, max_size=16))
        elif kind == "version" and len(body) >= 4:
            struct.pack_into(">h", body, 2, draw(st.integers(-2, 20)))
        elif kind == "tagged" and flexible and body:
            # Replace the top-level tagged-field section (the body's last byte, 0 when empty) with fields
            # of random tags and sizes, some of them lying about their size.
            n = draw(st.integers(1, 3))
            section = bytearray(_uvarint(n))
            for _ in range(n):
                payload = draw(st.binary(max_size=12))
                section += _uvarint(draw(st.integers(0, 10_000)))
                section += _uvarint(draw(st.sampled_from([len(payload), len(payload) + 5, 0x7FFFFFFF])))
                section += payload
            body[-1:] = section
        elif kind == "size":
            fix_size = False
            size = draw(st.sampled_from([len(body) - 1, len(body) + 1, 0, -1, 3]))
            return struct.pack(">i", size) + bytes(body)
    assert fix_size
    return struct.pack(">i", len(body)) + bytes(body)
