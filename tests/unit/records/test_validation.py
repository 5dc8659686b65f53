"""records/validation.py: the walk over a compressed batch's records agrees with the full decoder on every
batch the builder makes (runs of one length, lengths that vary, long records with 3-byte length prefixes) and
refuses each way a batch can lie about its records."""

from __future__ import annotations

import random

import pytest

from kbroker.records.batch import read_header
from kbroker.records.builder import batch_around, build_batch
from kbroker.records.compression import GZIP, LZ4, SNAPPY, ZSTD, compress
from kbroker.records.errors import CorruptRecordError, InvalidRecordError
from kbroker.records.record import Record, encode_record
from kbroker.records.validation import UnreadableRecordsError, check_compressed_records


def _check(batch) -> None:
    check_compressed_records(batch, 0, read_header(batch))


def _records(sizes, headers=0):
    return [Record(i, 1000 + i * 7, None if i % 5 == 0 else str(i).encode(), b"x" * n,
                   [("k", b"v")] * headers) for i, n in enumerate(sizes)]


@pytest.mark.parametrize("codec", [SNAPPY, LZ4, ZSTD])
@pytest.mark.parametrize("sizes", [
    [100] * 1, [100] * 16, [100] * 17, [100] * 200, [100] * 9000,  # windows of 16, 128, 1024, 8192
    [0] * 70,  # the smallest records; offset deltas pass 63 (one more varint byte)
    [9000] * 5 + [10],  # 3-byte length prefixes
    list(range(300)),  # every record a different length
    [50, 50, 51, 51, 50, 50] * 40,
])
def test_every_batch_the_builder_makes_is_taken(codec, sizes):
    _check(build_batch(_records(sizes), compression=codec))
    _check(build_batch(_records(sizes[:50], headers=2), compression=codec))


def _around(section, count, last_delta=None):
    return batch_around(compress(LZ4, section), compression=LZ4, record_count=count,
                        last_offset_delta=count - 1 if last_delta is None else last_delta)


def _section(n, value=b"v" * 30, deltas=None):
    out = bytearray()
    for i in range(n):
        encode_record(out, deltas[i] if deltas else i, 0, None, value)
    return out


@pytest.mark.parametrize("n", [1, 3, 17, 200, 5000])
def test_a_count_that_is_not_the_records_is_refused(n):
    _check(_around(_section(n), n))
    for count in (n - 1, n + 1):
        if count > 0:
            with pytest.raises(InvalidRecordError):
                _check(_around(_section(n), count))
    with pytest.raises(InvalidRecordError):
        _check(_around(_section(n) + b"\x00", n))


def test_a_record_in_a_long_run_that_is_one_byte_longer_is_refused():
    """One record in the middle of 5,000 of one length is a byte longer (its length says so, and so do its
    fields): the run ends there, the walk goes on with the new length and the count no longer fits."""
    rng = random.Random(7)
    for _ in range(20):
        k = rng.randrange(1, 4999)
        out = bytearray()
        for i in range(5000):
            encode_record(out, i, 0, None, b"v" * (31 if i == k else 30))
        _check(_around(out, 5000))  # a valid batch: taken
        with pytest.raises(InvalidRecordError):
            _check(_around(out[:-5], 5000))  # the last record cut short


def test_fields_that_do_not_fill_a_record_are_refused():
    out = bytearray()
    for i in range(3):
        encode_record(out, i, 0, None, None)
        out[-1] = 2  # one header announced, none there
    with pytest.raises(InvalidRecordError):
        _check(_around(out, 3))


@pytest.mark.parametrize("deltas", [[0, 5, 9], [1, 2, 3], [0, 0, 0]])
def test_offset_deltas_that_are_not_the_positions_are_unreadable(deltas):
    with pytest.raises(UnreadableRecordsError):
        _check(_around(_section(3, deltas=deltas), 3))


@pytest.mark.parametrize("codec", [SNAPPY, LZ4, ZSTD])
def test_a_payload_that_does_not_decompress_is_unreadable(codec):
    with pytest.raises(UnreadableRecordsError):
        _check(batch_around(bytes(range(200)), compression=codec, record_count=3, last_offset_delta=2))


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
def test_a_decompression_bomb_is_refused_without_decompressing_it_all(codec, monkeypatch):
    """A few kilobytes that decompress to more than MAX_DECOMPRESSED_BYTES (here lowered to 1 MB): refused
    once that much is out (snappy: from the lengths its blocks declare), not decompressed whole."""
    import kbroker.records.validation as validation
    monkeypatch.setattr(validation, "MAX_DECOMPRESSED_BYTES", 1_000_000)
    payload = compress(codec, bytes(4_000_000))
    assert len(payload) < 250_000
    with pytest.raises(InvalidRecordError, match="decompress to more than 1000000 bytes"):
        _check(batch_around(payload, compression=codec, record_count=3, last_offset_delta=2))
    _check(build_batch(_records([100] * 5000), compression=codec))  # 0.6 MB: within it


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
def test_the_bounded_decompression_reads_what_the_unbounded_does(codec):
    from kbroker.records.compression import decompress
    for data in (b"", b"abc" * 1000, bytes(range(256)) * 300):
        payload = compress(codec, data)
        assert decompress(codec, payload, 1 << 20) == decompress(codec, payload) == data
        cut = payload[:len(payload) // 2]
        try:
            unbounded = decompress(codec, cut)
        except CorruptRecordError:
            with pytest.raises(CorruptRecordError):
                decompress(codec, cut, 1 << 20)
        else:  # zstd's stream reader returns what a cut frame holds (nothing here), bounded or not
            assert decompress(codec, cut, 1 << 20) == unbounded
