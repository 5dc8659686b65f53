"""Kafka's wire primitives (kbroker/wire/primitives.py) at their edges, and the decoders' one invariant.

The invariant, h11's: any input either decodes or raises DecodeError (struct.error for a short buffer in
a run of fixed-width fields, which the top-level caller turns into DecodeError), never another exception,
never a hang. Hypothesis is not installed here, so the fuzzing uses `random` with fixed seeds: the same
inputs on every run.
"""

from __future__ import annotations

import random
import struct
import time
import uuid

import pytest

from kbroker.wire import primitives as p
from kbroker.wire.messages import api_versions, fetch, metadata, produce
from kbroker.wire.primitives import DecodeError

try:
    from test_codec_roundtrip import ALL_CASES, ALL_SIDES, VARIANTS, build, case_id, encode
except ImportError:  # tests/ imported as a package
    from tests.test_codec_roundtrip import ALL_CASES, ALL_SIDES, VARIANTS, build, case_id, encode

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def _w(fn, *args) -> bytes:
    out = bytearray()
    fn(out, *args)
    return bytes(out)


# -- varints -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, encoded", [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (300, "ac02"),
    (16383, "ff7f"),
    (16384, "808001"),
    ((1 << 31) - 1, "ffffffff07"),
    ((1 << 32) - 1, "ffffffff0f"),
])
def test_uvarint_known_encodings(value, encoded):
    data = bytes.fromhex(encoded)
    assert _w(p.write_uvarint, value) == data
    assert p.read_uvarint(data, 0) == (value, len(data))
    assert p.uvarint_size(value) == len(data)


@pytest.mark.parametrize("value, encoded", [
    (0, "00"),
    (-1, "01"),
    (1, "02"),
    (-2, "03"),
    (63, "7e"),
    (-64, "7f"),
    (64, "8001"),
    (INT32_MAX, "feffffff0f"),
    (INT32_MIN, "ffffffff0f"),
])
def test_varint_zigzag_known_encodings(value, encoded):
    data = bytes.fromhex(encoded)
    assert _w(p.write_varint, value) == data
    assert p.read_varint(data, 0) == (value, len(data))


@pytest.mark.parametrize("value, encoded", [
    (0, "00"),
    (-1, "01"),
    (1, "02"),
    (INT32_MAX, "feffffff0f"),
    (INT32_MIN, "ffffffff0f"),
    (INT32_MAX + 1, "8080808010"),
    (INT64_MAX, "feffffffffffffffff01"),
    (INT64_MIN, "ffffffffffffffffff01"),
])
def test_varlong_known_encodings(value, encoded):
    data = bytes.fromhex(encoded)
    assert _w(p.write_varlong, value) == data
    assert p.read_varlong(data, 0) == (value, len(data))


def test_varint_and_varlong_round_trip_around_every_byte_boundary():
    edges = {0, INT32_MIN, INT32_MAX}
    for k in range(1, 32):
        edges |= {(1 << k) - 1, 1 << k, -(1 << k), -(1 << k) - 1}
    for v in sorted(e for e in edges if INT32_MIN <= e <= INT32_MAX):
        data = _w(p.write_varint, v)
        assert p.read_varint(data + b"\x99", 0) == (v, len(data)), v
        assert len(data) <= 5
    for k in range(32, 64):
        edges |= {(1 << k) - 1, 1 << k, -(1 << k), -(1 << k) - 1}
    edges |= {INT64_MIN, INT64_MAX}
    for v in sorted(e for e in edges if INT64_MIN <= e <= INT64_MAX):
        data = _w(p.write_varlong, v)
        assert p.read_varlong(data + b"\x99", 0) == (v, len(data)), v
        assert len(data) <= 10


def test_varint_reads_at_an_offset():
    assert p.read_uvarint(b"\xff\xff\xac\x02\x00", 2) == (300, 4)
    assert p.read_varint(memoryview(b"..\x03"), 2) == (-2, 3)


@pytest.mark.parametrize("encoded, why", [
    ("", "empty"),
    ("80", "truncated after one byte"),
    ("ffffff", "truncated after three bytes"),
    ("ffffffff", "truncated after four bytes"),
    ("808080808001", "a sixth byte"),
    ("ffffffffff01", "a sixth byte, all bits set"),
    ("8080808010", "bit 32 set in the fifth byte"),
    ("ffffffff7f", "bits 32-34 set in the fifth byte"),
])
def test_uvarint_refuses(encoded, why):
    data = bytes.fromhex(encoded)
    with pytest.raises(DecodeError):
        p.read_uvarint(data, 0)
    with pytest.raises(DecodeError):
        p.read_varint(data, 0)


@pytest.mark.parametrize("encoded, why", [
    ("", "empty"),
    ("ff", "truncated"),
    ("ffffffffffffffffff", "truncated after nine bytes"),
    ("8080808080808080808001", "an eleventh byte"),
    ("80808080808080808002", "bit 64 set in the tenth byte"),
    ("ffffffffffffffffff7f", "bits 64-69 set in the tenth byte"),
])
def test_uvarlong_refuses(encoded, why):
    data = bytes.fromhex(encoded)
    with pytest.raises(DecodeError):
        p.read_uvarlong(data, 0)
    with pytest.raises(DecodeError):
        p.read_varlong(data, 0)


def test_varint_refusal_is_quick_on_a_long_run_of_continuation_bytes():
    data = b"\xff" * 1_000_000
    t0 = time.perf_counter()
    for _ in range(1000):
        with pytest.raises(DecodeError):
            p.read_uvarint(data, 0)
        with pytest.raises(DecodeError):
            p.read_uvarlong(data, 0)
    assert time.perf_counter() - t0 < 1.0


# -- strings -----------------------------------------------------------------------------------------

def test_classic_strings():
    assert _w(p.write_string, None) == b"\xff\xff"
    assert _w(p.write_string, "") == b"\x00\x00"
    assert _w(p.write_string, "abc") == b"\x00\x03abc"
    assert p.read_nullable_string(b"\xff\xff", 0) == (None, 2)
    assert p.read_nullable_string(b"\x00\x00", 0) == ("", 2)
    assert p.read_string(b"\x00\x00", 0) == ("", 2)
    assert p.read_string(b"\x00\x03abcdef", 0) == ("abc", 5)
    with pytest.raises(DecodeError):
        p.read_string(b"\xff\xff", 0)  # null where null is not allowed
    with pytest.raises(DecodeError):
        p.read_string(b"\xff\xfe", 0)  # a negative length other than -1 is no better
    with pytest.raises(DecodeError):
        p.read_string(b"\x00\x04abc", 0)  # length past the end
    with pytest.raises(DecodeError):
        p.read_nullable_string(b"\x00", 0)  # truncated length
    with pytest.raises(DecodeError):
        p.read_nullable_string(b"", 0)


def test_compact_strings():
    assert _w(p.write_compact_string, None) == b"\x00"
    assert _w(p.write_compact_string, "") == b"\x01"
    assert _w(p.write_compact_string, "abc") == b"\x04abc"
    assert p.read_compact_nullable_string(b"\x00", 0) == (None, 1)
    assert p.read_compact_nullable_string(b"\x01", 0) == ("", 1)
    assert p.read_compact_string(b"\x01", 0) == ("", 1)
    assert p.read_compact_string(b"\x04abcdef", 0) == ("abc", 4)
    with pytest.raises(DecodeError):
        p.read_compact_string(b"\x00", 0)
    with pytest.raises(DecodeError):
        p.read_compact_string(b"\x05abc", 0)
    with pytest.raises(DecodeError):
        p.read_compact_nullable_string(b"", 0)
    with pytest.raises(DecodeError):
        p.read_compact_nullable_string(b"\xff\xff\xff\xff\x0f", 0)  # 4 GiB claimed


def test_strings_are_utf8_both_ways():
    s = "héllo ✓ 日本 \U0001F600"
    raw = s.encode("utf-8")
    classic = _w(p.write_string, s)
    compact = _w(p.write_compact_string, s)
    assert classic == struct.pack(">h", len(raw)) + raw  # the length counts bytes, not characters
    assert compact == bytes([len(raw) + 1]) + raw
    assert p.read_string(classic, 0) == (s, len(classic))
    assert p.read_nullable_string(memoryview(classic), 0) == (s, len(classic))
    assert p.read_compact_string(compact, 0) == (s, len(compact))
    assert p.read_compact_nullable_string(memoryview(compact), 0) == (s, len(compact))


@pytest.mark.parametrize("raw", [
    b"\xc3\x28",          # bad continuation byte
    b"\xff",              # never valid in UTF-8
    b"abc\xe2\x82",       # truncated 3-byte sequence
    b"\xed\xa0\x80",      # an encoded surrogate
    b"\xc0\xaf",          # overlong encoding of '/'
])
def test_invalid_utf8_is_refused(raw):
    classic = struct.pack(">h", len(raw)) + raw
    compact = bytes([len(raw) + 1]) + raw
    for fn, data in ((p.read_string, classic), (p.read_nullable_string, classic),
                     (p.read_compact_string, compact), (p.read_compact_nullable_string, compact)):
        with pytest.raises(DecodeError):
            fn(data, 0)


# -- bytes, uuids --------------------------------------------------------------------------------------

def test_bytes_classic_and_compact():
    assert _w(p.write_bytes, None) == b"\xff\xff\xff\xff"
    assert _w(p.write_bytes, b"") == b"\x00\x00\x00\x00"
    assert _w(p.write_bytes, b"\x00\xff") == b"\x00\x00\x00\x02\x00\xff"
    assert _w(p.write_bytes, [b"ab", memoryview(b"c")]) == b"\x00\x00\x00\x03abc"  # chunks from a segment
    assert _w(p.write_compact_bytes, None) == b"\x00"
    assert _w(p.write_compact_bytes, b"") == b"\x01"
    assert _w(p.write_compact_bytes, [b"ab", b"c"]) == b"\x04abc"

    v, pos = p.read_bytes(b"\x00\x00\x00\x02\x00\xffzz", 0)
    assert (bytes(v), pos) == (b"\x00\xff", 6)
    assert isinstance(v, (memoryview, bytes))
    assert p.read_nullable_bytes(b"\xff\xff\xff\xff", 0) == (None, 4)
    assert p.read_compact_nullable_bytes(b"\x00", 0) == (None, 1)
    v, pos = p.read_compact_bytes(b"\x03\x01\x02", 0)
    assert (bytes(v), pos) == (b"\x01\x02", 3)
    for fn, data in ((p.read_bytes, b"\xff\xff\xff\xff"), (p.read_bytes, b"\x00\x00\x00\x05abcd"),
                     (p.read_bytes, b"\x00\x00"), (p.read_nullable_bytes, b"\x7f\xff\xff\xffab"),
                     (p.read_compact_bytes, b"\x00"), (p.read_compact_bytes, b"\x05abc"),
                     (p.read_compact_nullable_bytes, b"\x80")):
        with pytest.raises(DecodeError):
            fn(data, 0)


def test_uuids():
    u = uuid.UUID("0123456789abcdef0123456789abcdef")
    assert _w(p.write_uuid, u) == u.bytes
    assert _w(p.write_uuid, None) == bytes(16)
    assert p.read_uuid(u.bytes + b"x", 0) == (u, 16)
    assert p.read_uuid(bytes(16), 0) == (p.ZERO_UUID, 16)
    with pytest.raises(DecodeError):
        p.read_uuid(bytes(15), 0)


# -- arrays ------------------------------------------------------------------------------------------

def test_array_lengths():
    assert p.read_array_len(b"\x00\x00\x00\x02ab", 0) == (2, 4)
    assert p.read_array_len(b"\xff\xff\xff\xff", 0) == (-1, 4)
    assert p.read_compact_array_len(b"\x00", 0) == (-1, 1)
    assert p.read_compact_array_len(b"\x01", 0) == (0, 1)
    assert p.read_compact_array_len(b"\x03ab", 0) == (2, 1)
    with pytest.raises(DecodeError):
        p.read_array_len(b"\x00\x00\x00", 0)
    with pytest.raises(DecodeError):
        p.read_compact_array_len(b"", 0)


@pytest.mark.parametrize("data", [
    b"\x7f\xff\xff\xff",
    b"\x00\x00\x00\x03ab",  # three elements, two bytes left
    b"\x7f\xff\xff\xff" + b"\x00" * 1000,
])
def test_lying_classic_array_length_is_refused_before_any_element(data):
    with pytest.raises(DecodeError):
        p.read_array_len(data, 0)


@pytest.mark.parametrize("data", [
    b"\xff\xff\xff\xff\x0f",   # 2**32 - 2 elements claimed
    b"\x04ab",                 # three elements, two bytes left
])
def test_lying_compact_array_length_is_refused_before_any_element(data):
    with pytest.raises(DecodeError):
        p.read_compact_array_len(data, 0)


def test_lying_lengths_in_whole_messages_are_refused_quickly():
    huge = b"\x7f\xff\xff\xff"
    cases = [
        (metadata.REQUEST_DECODERS[1], huge + b"\x00" * 64),              # topics
        (metadata.REQUEST_DECODERS[9], b"\xff\xff\xff\xff\x0f" + b"\x00" * 64),
        (produce.REQUEST_DECODERS[3], b"\xff\xff" + b"\x00\x01" + b"\x00\x00\x00\x10" + huge),
        # Fetch v4: replica_id, max_wait, min_bytes, max_bytes, isolation, then topics.
        (fetch.REQUEST_DECODERS[4], struct.pack(">iiiib", -1, 500, 1, 1 << 20, 0) + huge + bytes(64)),
        # A []int32 whose count fits the buffer in elements but not in bytes.
        (fetch.REQUEST_DECODERS[7], struct.pack(">iiiibii", -1, 500, 1, 1 << 20, 0, 0, 0)
         + struct.pack(">i", 1) + b"\x00\x01t" + struct.pack(">i", 100) + bytes(120)),
        (api_versions.RESPONSE_DECODERS[0], b"\x00\x00" + huge),
    ]
    t0 = time.perf_counter()
    for dec, data in cases:
        with pytest.raises((DecodeError, struct.error)):
            dec(data, 0)
    assert time.perf_counter() - t0 < 0.1


# -- tagged fields -----------------------------------------------------------------------------------

def test_skip_tagged_fields():
    assert p.skip_tagged_fields(b"\x00", 0) == 1
    section = b"\x02" + b"\x00\x01X" + b"\x05\x03abc"
    assert p.skip_tagged_fields(section + b"next", 0) == len(section)
    big = bytes(200)
    section = b"\x01" + b"\x81\x01" + b"\xc8\x01" + big  # tag 129, 200 bytes: both as 2-byte varints
    assert p.skip_tagged_fields(section, 0) == len(section)
    for bad in (b"", b"\x01", b"\x01\x00", b"\x01\x00\x05abc", b"\x02\x00\x00", b"\xff\xff\xff\xff\xff\x01"):
        with pytest.raises(DecodeError):
            p.skip_tagged_fields(bad, 0)


def test_write_tagged():
    assert _w(p.write_tagged, []) == b"\x00"
    assert _w(p.write_tagged, [(0, b"a"), (200, b"bc")]) == b"\x02\x00\x01a\xc8\x01\x02bc"


def test_unknown_tags_are_skipped_and_known_ones_read():
    # ApiVersions request v3: two compact strings, then the tagged section.
    body = b"\x04kpy\x051.0a"
    tags = b"\x02" + b"\x07\x03xyz" + b"\x81\x01\x00"  # tag 7 (3 bytes), tag 129 (empty)
    req, end = api_versions.REQUEST_DECODERS[3](body + tags + b"trailing", 0)
    assert (req.client_software_name, req.client_software_version, end) == ("kpy", "1.0a", len(body + tags))

    # ApiVersions response v3: error, one api key, throttle, then tags 1 (known) and 9 (unknown).
    head = b"\x00\x00" + b"\x02" + b"\x00\x12\x00\x00\x00\x04\x00" + b"\x00\x00\x00\x00"
    tags = b"\x02" + b"\x01\x08" + struct.pack(">q", 42) + b"\x09\x02zz"
    resp, end = api_versions.RESPONSE_DECODERS[3](head + tags, 0)
    assert end == len(head + tags)
    assert resp.finalized_features_epoch == 42
    assert resp.api_keys[0].max_version == 4
    assert resp.supported_features == [] and resp.zk_migration_ready is False

    # A tagged field whose size runs past the end is refused.
    with pytest.raises(DecodeError):
        api_versions.RESPONSE_DECODERS[3](head + b"\x01\x09\x10abc", 0)
    # A known tagged field must fill exactly the size announced: an int64 in 9 bytes, or in 7.
    for size, pad in ((9, b"\x00"), (7, b"")):
        tags = b"\x01" + b"\x01" + bytes([size]) + struct.pack(">q", 42) + pad
        with pytest.raises(DecodeError):
            api_versions.RESPONSE_DECODERS[3](head + tags + b"\x00\x00", 0)


def test_default_tagged_fields_are_not_written():
    resp = api_versions.ApiVersionsResponse(api_keys=[api_versions.ApiVersionsResponse.ApiVersion(18, 0, 4)])
    out = bytearray()
    api_versions.RESPONSE_ENCODERS[3](resp, out)
    assert out.endswith(b"\x00\x00\x00\x00" + b"\x00")  # throttle, then an empty tagged section
    resp.finalized_features_epoch = 7
    out2 = bytearray()
    api_versions.RESPONSE_ENCODERS[3](resp, out2)
    assert out2[len(out) - 1:] == b"\x01\x01\x08" + struct.pack(">q", 7)


# -- the fuzz invariant ------------------------------------------------------------------------------

def _assert_decodes_or_refuses(dec, data: bytes, where: str):
    try:
        obj, end = dec(memoryview(data), 0)
    except (DecodeError, struct.error):
        return
    except Exception as e:  # pragma: no cover - this is the failure being looked for
        raise AssertionError(f"{where}: {type(e).__name__}: {e} on input {data.hex()}") from e
    assert 0 <= end <= len(data), where


def _mutations(rng: random.Random, seed: bytes, n: int):
    for _ in range(n):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(6)
            if op == 0 and data:  # flip one byte
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op == 1 and data:  # cut
                del data[rng.randrange(len(data)):]
            elif op == 2:  # insert a byte
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
            elif op == 3 and data:  # a big or negative length somewhere
                i = rng.randrange(len(data))
                data[i:i + 4] = rng.choice([b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff", b"\x80\x80\x80\x80",
                                            b"\xff\xff\xff\xfe", b"\x00\x00\x00\x00"])
            elif op == 4 and data:  # delete a byte
                del data[rng.randrange(len(data))]
            else:  # invalid UTF-8 in place
                i = rng.randrange(len(data) + 1)
                data[i:i] = b"\xc3\x28"
        yield bytes(data)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("side", ALL_SIDES, ids=lambda s: f"{s.api_name}{s.side.capitalize()}")
def test_fuzz_random_bytes_decode_or_refuse(side):
    rng = random.Random(f"random-{side.api_key}-{side.side}")
    for v in side.version_list():
        dec = side.decoders[v]
        for _ in range(40):
            data = rng.randbytes(rng.choice((0, 1, 2, 3, 5, 8, 16, 33, 64, 200)))
            _assert_decodes_or_refuses(dec, data, f"{side.api_name}{side.side} v{v}")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("side", ALL_SIDES, ids=lambda s: f"{s.api_name}{s.side.capitalize()}")
def test_fuzz_mutated_valid_messages_decode_or_refuse(side):
    rng = random.Random(f"mutate-{side.api_key}-{side.side}")
    t0 = time.perf_counter()
    for v in side.version_list():
        dec = side.decoders[v]
        for variant in VARIANTS:
            seed = encode(side, v, build(side, v, variant))
            for data in _mutations(rng, seed, 12):
                _assert_decodes_or_refuses(dec, data, f"{side.api_name}{side.side} v{v} {variant}")
    # "Never hangs": a whole API's worth of mutated inputs takes a fraction of a second.
    assert time.perf_counter() - t0 < 10


def test_fuzz_covers_every_case():
    assert len({case_id(c) for c in ALL_CASES}) == len(ALL_CASES)
