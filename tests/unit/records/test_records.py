"""RecordBatch v2: build, validate, edit in place, decode -- against ourselves and kafka-python."""

from __future__ import annotations

import random
import struct

import cramjam
import pytest
from crc32c import crc32c

import kafka.codec
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder

from kbroker.records import (
    ABORT, COMMIT, GZIP, LZ4, NONE, SNAPPY, ZSTD, CorruptRecordError, InvalidRecordError, Record,
    RecordError, assign_offsets, build_batch, build_control_batch, decode_batch, decode_records,
    iter_batches, parse_control_record, read_header, record_for_timestamp, set_base_offset,
    set_log_append_time, set_partition_leader_epoch, simple_batch, validate_batches,
)
from kbroker.records import compression
from kbroker.records.batch import ATTRIBUTES_OFFSET, CRC_OFFSET, LENGTH_OFFSET, MAGIC_OFFSET

CODECS = [NONE, GZIP, SNAPPY, LZ4, ZSTD]
CODEC_IDS = [compression.CODEC_NAMES[c] for c in CODECS]


def sample_records(base_offset=0, n=5, base_ts=1_700_000_000_000):
    out = []
    for i in range(n):
        headers = [("trace", b"abc%d" % i), ("empty", None), ("ünï", b"")] if i % 2 else []
        key = None if i == 3 else b"key-%d" % i
        value = None if i == 4 else (b"value-%d " % i) * 40
        # Timestamps not in order: deltas go negative.
        out.append(Record(base_offset + i, base_ts + (i * 7919) % 13 - 6, key, value, headers))
    return out


def normalized(records):
    return [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in records]


# -- round trips -----------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_round_trip_builder_validate_decode(codec):
    records = sample_records(base_offset=100)
    buf = build_batch(records, compression=codec, producer_id=42, producer_epoch=3, base_sequence=7)
    [(pos, header)] = validate_batches(buf)
    assert pos == 0
    assert header.size == len(buf)
    assert header.compression == codec
    assert (header.base_offset, header.last_offset, header.record_count) == (100, 104, 5)
    assert header.base_timestamp == records[0].timestamp
    assert header.max_timestamp == max(r.timestamp for r in records)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (42, 3, 7)
    assert header.last_sequence == 11
    assert not header.is_transactional and not header.is_control and not header.is_log_append_time
    got_header, got = decode_batch(buf)
    assert got_header == header
    assert normalized(got) == normalized(records)


def test_transactional_flag_and_empty_values():
    buf = build_batch([Record(0, 5, None, None)], transactional=True, producer_id=1,
                      producer_epoch=0, base_sequence=0)
    [(_, h)] = validate_batches(buf)
    assert h.is_transactional and not h.is_control
    assert normalized(decode_records(buf)) == [(0, 5, None, None, [])]


def test_large_snappy_batch_uses_several_xerial_blocks():
    value = bytes(random.Random(1).randrange(4) for _ in range(100_000))
    buf = build_batch([Record(0, 1, b"k", value)], compression=SNAPPY)
    section = bytes(buf[61:])
    assert section.startswith(compression.XERIAL_MAGIC)
    assert decode_records(buf)[0].value == value


def test_raw_snappy_without_xerial_framing_is_accepted():
    body = bytes(build_batch(sample_records())[61:])
    assert compression.decompress(SNAPPY, bytes(cramjam.snappy.compress_raw(body))) == body


def test_zstd_frame_without_content_size_is_accepted():
    import zstandard
    body = bytes(build_batch(sample_records())[61:])
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(body)
    assert compression.decompress(ZSTD, frame) == body


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD], ids=CODEC_IDS[1:])
def test_garbage_compressed_section_is_corrupt(codec):
    records = sample_records()
    buf = build_batch(records, compression=codec)
    garbage = bytearray(buf[:61]) + b"\x00\x01not compressed at all" * 3
    struct.pack_into(">i", garbage, LENGTH_OFFSET, len(garbage) - 12)
    struct.pack_into(">I", garbage, CRC_OFFSET, crc32c(bytes(garbage[ATTRIBUTES_OFFSET:])))
    validate_batches(garbage)  # the header and CRC are fine; only decoding notices
    with pytest.raises(CorruptRecordError):
        decode_records(garbage)


def test_simple_batch_and_several_batches_back_to_back():
    a = simple_batch(b"a", b"b", timestamp_ms=10)
    b = simple_batch(b"c", base_offset=2, timestamp_ms=20, keys=[b"k"])
    buf = a + b
    batches = validate_batches(buf)
    assert [p for p, _ in batches] == [0, len(a)]
    assert [h.record_count for _, h in batches] == [2, 1]
    assert [(p, h) for p, h in iter_batches(buf)] == batches
    assert assign_offsets(buf, batches, 1000) == 1002
    offsets = [r.offset for p, _ in iter_batches(buf) for r in decode_records(buf, p)]
    assert offsets == [1000, 1001, 1002]
    validate_batches(buf)  # base offsets are outside the CRC


def test_iter_batches_stops_before_a_partial_batch():
    a = simple_batch(b"a")
    b = simple_batch(b"b", base_offset=1)
    assert len(list(iter_batches(a + b[:-1]))) == 1


# -- kafka-python as the oracle --------------------------------------------------------


class _CramjamSnappy:
    """python-snappy's two functions, for kafka-python's snappy codec."""

    @staticmethod
    def compress(data):
        return bytes(cramjam.snappy.compress_raw(bytes(data)))

    @staticmethod
    def decompress(data):
        return bytes(cramjam.snappy.decompress_raw(bytes(data)))


@pytest.fixture
def kafka_python_snappy(monkeypatch):
    monkeypatch.setattr(kafka.codec, "snappy", _CramjamSnappy)


KP_CODEC = {NONE: 0, GZIP: 1, SNAPPY: 2, LZ4: 3, ZSTD: 4}


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_decode_batch_built_by_kafka_python(codec, kafka_python_snappy):
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=KP_CODEC[codec], is_transactional=False,
                                        producer_id=9, producer_epoch=1, base_sequence=20, batch_size=1 << 20)
    records = sample_records()
    for r in records:
        builder.append(r.offset, timestamp=r.timestamp, key=r.key, value=r.value, headers=list(r.headers))
    buf = bytes(builder.build())
    [(_, header)] = validate_batches(buf)
    assert header.compression == codec  # the values compress well, so kafka-python keeps the codec
    assert (header.producer_id, header.base_sequence, header.record_count) == (9, 20, 5)
    assert normalized(decode_records(buf)) == normalized(records)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_kafka_python_decodes_our_batch(codec, kafka_python_snappy):
    records = sample_records(base_offset=50)
    buf = bytes(build_batch(records, compression=codec, producer_id=5, producer_epoch=2, base_sequence=0))
    theirs = DefaultRecordBatch(buf)
    assert theirs.validate_crc()
    assert (theirs.base_offset, theirs.last_offset_delta, theirs.compression_type) == (50, 4, codec)
    got = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in theirs]
    assert got == normalized(records)


def test_kafka_python_reads_our_control_batch():
    buf = bytes(build_control_batch(COMMIT, producer_id=77, producer_epoch=4, coordinator_epoch=12,
                                    timestamp_ms=999, base_offset=30))
    theirs = DefaultRecordBatch(buf)
    assert theirs.is_control_batch and theirs.is_transactional
    [marker] = list(theirs)
    assert marker.commit and not marker.abort and marker.offset == 30


# -- validation refusals ---------------------------------------------------------------


def test_crc_mismatch_is_corrupt():
    buf = build_batch(sample_records())
    for where in (ATTRIBUTES_OFFSET, 40, len(buf) - 1):
        bad = bytearray(buf)
        bad[where] ^= 0x01
        with pytest.raises(CorruptRecordError, match="CRC"):
            validate_batches(bad)
    bad = bytearray(buf)
    bad[CRC_OFFSET] ^= 0x80
    with pytest.raises(CorruptRecordError):
        validate_batches(bad)


def test_fields_outside_the_crc_can_change():
    buf = build_batch(sample_records())
    set_base_offset(buf, 0, 123456789)
    set_partition_leader_epoch(buf, 0, 17)
    [(_, h)] = validate_batches(buf)
    assert (h.base_offset, h.partition_leader_epoch) == (123456789, 17)


def test_log_append_time_rewrites_max_timestamp_and_crc():
    records = sample_records()
    buf = build_batch(records, compression=LZ4)
    set_log_append_time(buf, 0, 1_800_000_000_000)
    [(_, h)] = validate_batches(buf)
    assert h.is_log_append_time and h.compression == LZ4
    assert h.max_timestamp == 1_800_000_000_000
    assert h.base_timestamp == records[0].timestamp
    assert {r.timestamp for r in decode_records(buf)} == {1_800_000_000_000}


def test_every_truncation_is_corrupt_and_every_boundary_valid():
    a = simple_batch(b"x" * 30, b"y")
    buf = bytes(a + simple_batch(b"z", base_offset=2))
    for n in range(1, len(buf) + 1):
        if n in (len(a), len(buf)):
            assert len(validate_batches(buf[:n])) == (1 if n == len(a) else 2)
        else:
            with pytest.raises(CorruptRecordError):
                validate_batches(buf[:n])


def test_trailing_garbage_is_corrupt():
    buf = bytes(simple_batch(b"x"))
    for tail in (b"\x00", b"\xff" * 16, b"\x00" * 17, b"\x00" * 70):
        with pytest.raises(RecordError):
            validate_batches(buf + tail)


def test_lying_batch_lengths_are_corrupt():
    buf = simple_batch(b"x", b"y")
    for length in (len(buf) - 12 + 1, 2**31 - 1, 48, 0, -1, -100):
        bad = bytearray(buf)
        struct.pack_into(">i", bad, LENGTH_OFFSET, length)
        with pytest.raises(CorruptRecordError):
            validate_batches(bad)
    # Shorter than the records yet a whole header: the CRC no longer matches.
    bad = bytearray(buf)
    struct.pack_into(">i", bad, LENGTH_OFFSET, len(buf) - 12 - 3)
    with pytest.raises(CorruptRecordError):
        validate_batches(bad[:-3])


@pytest.mark.parametrize("magic", [0, 1])
def test_old_magic_is_invalid(magic):
    builder = LegacyRecordBatchBuilder(magic=magic, compression_type=0, batch_size=1 << 20)
    builder.append(0, timestamp=None if magic == 0 else 1000, key=b"k", value=b"v")
    with pytest.raises(InvalidRecordError, match="magic"):
        validate_batches(bytes(builder.build()))


def test_unknown_magic_is_invalid():
    bad = simple_batch(b"x")
    bad[MAGIC_OFFSET] = 3
    with pytest.raises(InvalidRecordError):
        validate_batches(bad)


def test_empty_records_are_invalid():
    with pytest.raises(InvalidRecordError):
        validate_batches(b"")


def test_client_origin_rules():
    control = build_control_batch(ABORT, producer_id=1, producer_epoch=0, coordinator_epoch=0, timestamp_ms=0)
    with pytest.raises(InvalidRecordError, match="control"):
        validate_batches(control)
    validate_batches(control, from_client=False)

    empty = build_batch([], base_offset=0, last_offset_delta=0)
    with pytest.raises(InvalidRecordError, match="no records"):
        validate_batches(empty)
    validate_batches(empty, from_client=False)

    gap = build_batch([Record(0, 0, None, b"a"), Record(2, 0, None, b"b")])
    with pytest.raises(InvalidRecordError, match="offset range"):
        validate_batches(gap)
    validate_batches(gap, from_client=False)

    no_sequence = build_batch([Record(0, 0, None, b"a")], producer_id=3, producer_epoch=0)
    with pytest.raises(InvalidRecordError, match="sequence"):
        validate_batches(no_sequence)


def test_unknown_codec_is_invalid():
    bad = simple_batch(b"x")
    bad[ATTRIBUTES_OFFSET + 1] |= 0x05
    struct.pack_into(">I", bad, CRC_OFFSET, crc32c(bytes(bad[ATTRIBUTES_OFFSET:])))
    with pytest.raises(InvalidRecordError, match="codec"):
        validate_batches(bad)


def test_errors_carry_kafka_codes():
    assert (CorruptRecordError.error_code, CorruptRecordError.error_name) == (2, "CORRUPT_MESSAGE")
    assert (InvalidRecordError.error_code, InvalidRecordError.error_name) == (87, "INVALID_RECORD")


def test_fuzz_any_input_validates_or_raises_record_error():
    """One invariant, as h11's fuzz target: never any other exception."""
    rng = random.Random(2024)
    seeds = [bytes(build_batch(sample_records(), compression=c)) for c in CODECS]
    for _ in range(3000):
        buf = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(3)
            if op == 0 and buf:
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            elif op == 1:
                del buf[rng.randrange(len(buf) + 1):]
            else:
                buf += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))
        try:
            batches = validate_batches(buf)
        except RecordError:
            continue
        for pos, header in batches:
            try:
                decode_records(buf, pos, header)
            except RecordError:
                pass


def test_fuzz_decoding_mutated_records_with_fixed_crc():
    """Mutations behind a recomputed CRC reach the record decoder: it raises
    CorruptRecordError or returns records, nothing else."""
    rng = random.Random(7)
    seed = bytes(build_batch(sample_records()))
    for _ in range(3000):
        buf = bytearray(seed)
        for _ in range(rng.randrange(1, 3)):
            buf[rng.randrange(61, len(buf))] = rng.randrange(256)
        struct.pack_into(">I", buf, CRC_OFFSET, crc32c(bytes(buf[ATTRIBUTES_OFFSET:])))
        validate_batches(buf)
        try:
            decode_records(buf)
        except CorruptRecordError:
            pass


# -- control batches, empty batches, lookups -------------------------------------------------


@pytest.mark.parametrize("kind", [ABORT, COMMIT])
def test_control_batch(kind):
    buf = build_control_batch(kind, producer_id=77, producer_epoch=4, coordinator_epoch=12,
                              timestamp_ms=999, base_offset=30, partition_leader_epoch=2)
    [(_, h)] = validate_batches(buf, from_client=False)
    assert h.is_control and h.is_transactional
    assert (h.producer_id, h.producer_epoch, h.base_sequence, h.partition_leader_epoch) == (77, 4, -1, 2)
    [record] = decode_records(buf)
    assert record.key == struct.pack(">hh", 0, kind)
    assert record.value == struct.pack(">hi", 0, 12)
    assert parse_control_record(record) == (kind, 12)


def test_empty_batch_keeps_offset_range_and_delete_horizon():
    buf = build_batch([], base_offset=10, last_offset_delta=4, producer_id=8, producer_epoch=1,
                      base_sequence=5, delete_horizon_ms=5000)
    [(_, h)] = validate_batches(buf, from_client=False)
    assert (h.base_offset, h.last_offset, h.record_count) == (10, 14, 0)
    assert h.has_delete_horizon and h.base_timestamp == 5000
    assert decode_records(buf) == []


def test_compacted_batch_keeps_its_range_and_timestamps():
    kept = [Record(11, 300, b"a", b"1"), Record(13, 100, b"b", None)]
    buf = build_batch(kept, base_offset=10, last_offset_delta=4, delete_horizon_ms=50, compression=GZIP)
    [(_, h)] = validate_batches(buf, from_client=False)
    assert (h.base_offset, h.last_offset, h.max_timestamp) == (10, 14, 300)
    assert normalized(decode_records(buf)) == normalized(kept)


def test_builder_refuses_offsets_out_of_order():
    with pytest.raises(ValueError):
        build_batch([Record(5, 0, None, b"a"), Record(5, 0, None, b"b")])
    with pytest.raises(ValueError):
        build_batch([Record(5, 0, None, b"a")], base_offset=6)
    with pytest.raises(ValueError):
        build_batch([Record(5, 0, None, b"a"), Record(7, 0, None, b"b")], last_offset_delta=1)


def test_record_for_timestamp():
    records = [Record(0, 100, None, b"a"), Record(1, 300, None, b"b"), Record(2, 200, None, b"c")]
    buf = build_batch(records)
    assert record_for_timestamp(buf, 150).offset == 1
    assert record_for_timestamp(buf, 150, min_offset=2).offset == 2
    assert record_for_timestamp(buf, 301) is None
    assert read_header(buf).max_timestamp == 300


def test_read_header_of_a_short_buffer_is_corrupt():
    with pytest.raises(CorruptRecordError):
        read_header(b"\x00" * 60)
