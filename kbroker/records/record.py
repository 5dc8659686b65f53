"""Records inside a v2 batch: encode and decode, decompressing as needed.

Record layout (all varints zig-zag encoded)::

    length          varint   bytes after this field
    attributes      int8     unused, 0
    timestampDelta  varlong  from the batch's baseTimestamp
    offsetDelta     varint   from the batch's baseOffset
    keyLength       varint   -1 for a null key
    key
    valueLength     varint   -1 for a null value
    value
    headerCount     varint
    headers         keyLength varint, key (UTF-8), valueLength varint (-1 null), value

Decoding is for inspection, ListOffsets by timestamp and compaction -- never
the produce or fetch path, which moves batches as opaque bytes.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Sequence

from kbroker.records.batch import HEADER_SIZE, BatchHeader, read_header
from kbroker.records.compression import NONE, decompress
from kbroker.records.errors import CorruptRecordError
from kbroker.wire.primitives import (
    DecodeError, read_varint, read_varlong, write_varint, write_varlong,
)

__all__ = [
    "Record", "decode_records", "decode_batch", "encode_record",
    "record_for_timestamp", "ABORT", "COMMIT", "control_record", "parse_control_record",
]


class Record(NamedTuple):
    """One record with absolute offset and timestamp, as decoded or to build."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()


def encode_record(out: bytearray, offset_delta: int, timestamp_delta: int,
                  key, value, headers=()) -> None:
    """Append one length-prefixed record to ``out``."""
    body = bytearray(b"\x00")  # attributes
    write_varlong(body, timestamp_delta)
    write_varint(body, offset_delta)
    _write_bytes(body, key)
    _write_bytes(body, value)
    write_varint(body, len(headers))
    for h_key, h_value in headers:
        _write_bytes(body, h_key.encode("utf-8"))
        _write_bytes(body, h_value)
    write_varint(out, len(body))
    out += body


def _write_bytes(out: bytearray, data) -> None:
    if data is None:
        write_varint(out, -1)
    else:
        write_varint(out, len(data))
        out += data


def decode_batch(buf, pos: int = 0) -> tuple[BatchHeader, list[Record]]:
    """Header and records of the batch at ``pos`` (the CRC is not checked here)."""
    header = read_header(buf, pos)
    return header, decode_records(buf, pos, header)


def decode_records(buf, pos: int = 0, header: BatchHeader | None = None, decompressed=None) -> list[Record]:
    """Decode every record of the batch at ``pos``.

    Timestamps are absolute: baseTimestamp + delta, or the batch's
    maxTimestamp for every record when the batch uses LogAppendTime.
    Malformed records raise :class:`CorruptRecordError`. ``decompressed``: the records of a compressed batch
    already decompressed (records/validation.py did it on append), so they are not decompressed again.
    """
    if header is None:
        header = read_header(buf, pos)
    end = pos + header.size
    if end > len(buf):
        raise CorruptRecordError("batch runs past the end of the buffer")
    with memoryview(buf) as view:
        section = view[pos + HEADER_SIZE:end]
        codec = header.compression
        data = section if codec == NONE else decompressed if decompressed is not None else decompress(codec, section)
        try:
            return _decode_section(data, header)
        except DecodeError as exc:
            raise CorruptRecordError(f"malformed record: {exc}") from None
        finally:
            section.release()


def _decode_section(data, header: BatchHeader) -> list[Record]:
    base_offset = header.base_offset
    base_timestamp = header.base_timestamp
    append_time = header.max_timestamp if header.is_log_append_time else None
    records = []
    pos = 0
    end = len(data)
    for _ in range(header.record_count):
        length, pos = read_varint(data, pos)
        record_end = pos + length
        if length < 1 or record_end > end:
            raise CorruptRecordError(f"record length {length} runs past the records section")
        pos += 1  # attributes
        timestamp_delta, pos = read_varlong(data, pos)
        offset_delta, pos = read_varint(data, pos)
        key, pos = _read_bytes(data, pos, record_end)
        value, pos = _read_bytes(data, pos, record_end)
        header_count, pos = read_varint(data, pos)
        if header_count < 0:
            raise CorruptRecordError(f"negative header count {header_count}")
        headers = []
        for _ in range(header_count):
            h_key, pos = _read_bytes(data, pos, record_end)
            if h_key is None:
                raise CorruptRecordError("null record header key")
            h_value, pos = _read_bytes(data, pos, record_end)
            try:
                headers.append((h_key.decode("utf-8"), h_value))
            except UnicodeDecodeError:
                raise CorruptRecordError("record header key is not UTF-8") from None
        if pos != record_end:
            raise CorruptRecordError(
                f"record declares {length} bytes but its fields take {length + pos - record_end}")
        timestamp = append_time if append_time is not None else base_timestamp + timestamp_delta
        records.append(Record(base_offset + offset_delta, timestamp, key, value, headers))
    if pos != end:
        raise CorruptRecordError(
            f"{end - pos} bytes left after the {header.record_count} records the batch declares")
    return records


def _read_bytes(data, pos: int, limit: int) -> tuple[bytes | None, int]:
    n, pos = read_varint(data, pos)
    if n < 0:
        if n != -1:
            raise CorruptRecordError(f"invalid length {n}")
        return None, pos
    end = pos + n
    if end > limit:
        raise CorruptRecordError("field runs past the end of its record")
    return bytes(data[pos:end]), end


def record_for_timestamp(buf, timestamp_ms: int, min_offset: int = 0, pos: int = 0) -> Record | None:
    """The first record of the batch at ``pos`` with timestamp >= ``timestamp_ms``
    and offset >= ``min_offset`` (ListOffsets by timestamp), or None."""
    for record in decode_records(buf, pos):
        if record.timestamp >= timestamp_ms and record.offset >= min_offset:
            return record
    return None


# -- transaction markers (control records) --------------------------------------

ABORT = 0
COMMIT = 1
_CONTROL_KEY = struct.Struct(">hh")      # version 0, type
_MARKER_VALUE = struct.Struct(">hi")     # version 0, coordinatorEpoch


def control_record(control_type: int, coordinator_epoch: int) -> tuple[bytes, bytes]:
    """Key and value of an end-transaction marker record."""
    return _CONTROL_KEY.pack(0, control_type), _MARKER_VALUE.pack(0, coordinator_epoch)


def parse_control_record(record: Record) -> tuple[int, int]:
    """``(control_type, coordinator_epoch)`` of a record from a control batch.

    Unknown key versions are read by their version-0 prefix, as Kafka does;
    the coordinator epoch is -1 for control types that carry no marker value.
    """
    key = record.key
    if key is None or len(key) < _CONTROL_KEY.size:
        raise CorruptRecordError("control record key is too short")
    _version, control_type = _CONTROL_KEY.unpack_from(key)
    value = record.value
    if control_type in (ABORT, COMMIT):
        if value is None or len(value) < _MARKER_VALUE.size:
            raise CorruptRecordError("transaction marker value is too short")
        return control_type, _MARKER_VALUE.unpack_from(value)[1]
    return control_type, -1
