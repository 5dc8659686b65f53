"""RecordBatch v2 headers: parse, validate, and edit in place.

The stored format is the wire format: Produce validates batch headers and
CRC32C here, assigns offsets in place, and the bytes go to storage untouched.
Nothing in this module looks at individual records (see ``record.py``).

Header layout (61 bytes, big-endian), Kafka's ``DefaultRecordBatch``::

    offset  size  field
       0     8    baseOffset
       8     4    batchLength            bytes after this field
      12     4    partitionLeaderEpoch   not covered by the CRC
      16     1    magic                  2
      17     4    crc                    CRC32C of bytes 21..end
      21     2    attributes             bits 0-2 codec, 3 LogAppendTime,
                                         4 transactional, 5 control,
                                         6 delete horizon set (KIP-534)
      23     4    lastOffsetDelta
      27     8    baseTimestamp          the delete horizon when bit 6 is set
      35     8    maxTimestamp
      43     8    producerId
      51     2    producerEpoch
      53     4    baseSequence
      57     4    recordCount
      61          records

baseOffset and partitionLeaderEpoch sit before the CRC'd range so a broker can
set them without recomputing the checksum; changing the timestamp type or
maxTimestamp (LogAppendTime) does require a new CRC.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from crc32c import crc32c

from kbroker.records.errors import CorruptRecordError, InvalidRecordError

__all__ = [
    "HEADER", "HEADER_SIZE", "LOG_OVERHEAD", "MIN_BATCH_LENGTH", "MAGIC",
    "BASE_OFFSET_OFFSET", "LENGTH_OFFSET", "PARTITION_LEADER_EPOCH_OFFSET",
    "MAGIC_OFFSET", "CRC_OFFSET", "ATTRIBUTES_OFFSET", "MAX_TIMESTAMP_OFFSET",
    "COMPRESSION_MASK", "TIMESTAMP_TYPE_MASK", "TRANSACTIONAL_MASK", "CONTROL_MASK",
    "DELETE_HORIZON_MASK", "NO_TIMESTAMP",
    "BatchHeader", "read_header", "iter_batches", "validate_batches",
    "compute_crc", "crc_matches",
    "set_base_offset", "set_partition_leader_epoch", "set_log_append_time",
    "assign_offsets",
]

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
assert HEADER_SIZE == 61

BASE_OFFSET_OFFSET = 0
LENGTH_OFFSET = 8
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
LAST_OFFSET_DELTA_OFFSET = 23
BASE_TIMESTAMP_OFFSET = 27
MAX_TIMESTAMP_OFFSET = 35
RECORDS_COUNT_OFFSET = 57
RECORDS_OFFSET = 61

# baseOffset + batchLength: the bytes not counted by batchLength.
LOG_OVERHEAD = 12
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD  # 49: a header and no records
MAGIC = 2
NO_TIMESTAMP = -1
NO_PRODUCER_ID = -1

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
DELETE_HORIZON_MASK = 0x40
MAX_CODEC = 4  # zstd

_unpack_header = HEADER.unpack_from
_LENGTH_MAGIC = struct.Struct(">i4xb")  # batchLength, skip the epoch, magic
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")
_I32_MAX = 2**31 - 1


class BatchHeader(NamedTuple):
    """The 61-byte header, field for field; derived values are properties."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_MASK)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & DELETE_HORIZON_MASK)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id != NO_PRODUCER_ID

    @property
    def last_sequence(self) -> int:
        """Sequence of the last record; sequences wrap at int32 max like Kafka's."""
        if self.base_sequence < 0:
            return -1
        return (self.base_sequence + self.last_offset_delta) % (_I32_MAX + 1)


def read_header(buf, pos: int = 0) -> BatchHeader:
    """Parse the header at ``pos`` without any checks beyond its length."""
    try:
        return BatchHeader._make(_unpack_header(buf, pos))
    except struct.error:
        raise CorruptRecordError(f"truncated batch header at position {pos}") from None


def iter_batches(buf, pos: int = 0, end: int | None = None):
    """Yield ``(position, header)`` for each whole batch in ``buf[pos:end]``.

    Trusting walk over bytes that were validated before (storage, fetch
    results): only checks that each batch fits.  A trailing partial batch is
    not yielded -- Fetch responses may legitimately end with one.
    """
    if end is None:
        end = len(buf)
    while pos + HEADER_SIZE <= end:
        header = BatchHeader._make(_unpack_header(buf, pos))
        size = header.batch_length + LOG_OVERHEAD
        if header.batch_length < MIN_BATCH_LENGTH or pos + size > end:
            return
        yield pos, header
        pos += size


def compute_crc(buf, pos: int, size: int) -> int:
    """CRC32C of the CRC'd range of the batch at ``pos`` (no copying)."""
    with memoryview(buf) as view:
        return crc32c(view[pos + ATTRIBUTES_OFFSET:pos + size])


def crc_matches(buf, pos: int, header: BatchHeader) -> bool:
    return compute_crc(buf, pos, header.batch_length + LOG_OVERHEAD) == header.crc


def validate_batches(buf, *, from_client: bool = True) -> list[tuple[int, BatchHeader]]:
    """Check every batch in a Produce request's records field.

    Returns ``[(position, header), ...]`` in order.  Raises
    :class:`CorruptRecordError` for bytes that cannot be a batch (truncation,
    lengths that contradict the buffer, CRC mismatch) and
    :class:`InvalidRecordError` for batches Kafka refuses on principle (magic
    0/1, no batches at all, and -- when ``from_client`` -- the client-origin
    rules of Kafka's ``LogValidator``: a positive record count equal to the
    offset range, no control batches, a sequence when a producer id is set).

    Only headers are parsed; record bodies are covered by the CRC alone.
    Produce v3+ allows exactly one batch per partition; that count rule is
    the caller's, since the list is returned.
    """
    view = memoryview(buf)
    end = len(view)
    if end == 0:
        raise InvalidRecordError("no record batches")
    result = []
    append = result.append
    pos = 0
    with view:
        while pos < end:
            if end - pos < HEADER_SIZE:
                _refuse_short(view, pos, end)
            fields = _unpack_header(view, pos)
            (_base, batch_length, _epoch, magic, crc, attributes, last_delta, _base_ts, _max_ts,
             producer_id, _producer_epoch, base_sequence, count) = fields
            if magic != MAGIC:
                raise InvalidRecordError(
                    f"record batch at position {pos} has magic {magic}; only magic 2 is supported")
            if batch_length < MIN_BATCH_LENGTH:
                raise CorruptRecordError(
                    f"batch length {batch_length} at position {pos} is shorter than a header")
            size = batch_length + LOG_OVERHEAD
            if pos + size > end:
                raise CorruptRecordError(
                    f"batch at position {pos} claims {size} bytes but only {end - pos} remain")
            if crc32c(view[pos + ATTRIBUTES_OFFSET:pos + size]) != crc:
                raise CorruptRecordError(f"CRC32C mismatch in batch at position {pos}")
            if count < 0:
                raise CorruptRecordError(f"negative record count {count} at position {pos}")
            if last_delta < 0:
                raise CorruptRecordError(f"negative lastOffsetDelta {last_delta} at position {pos}")
            if attributes & COMPRESSION_MASK > MAX_CODEC:
                raise InvalidRecordError(f"unknown compression codec {attributes & COMPRESSION_MASK}")
            if from_client:
                _check_client_batch(pos, attributes, last_delta, count, producer_id, base_sequence)
            append((pos, _new_tuple(BatchHeader, fields)))
            pos += size
    return result


_new_tuple = tuple.__new__


def _refuse_short(view, pos: int, end: int) -> None:
    """Fewer bytes than a v2 header remain: old magic is invalid, anything else corrupt."""
    if end - pos > MAGIC_OFFSET:
        batch_length, magic = _LENGTH_MAGIC.unpack_from(view, pos + LENGTH_OFFSET)
        if magic != MAGIC:
            raise InvalidRecordError(
                f"record batch at position {pos} has magic {magic}; only magic 2 is supported")
    raise CorruptRecordError(f"{end - pos} bytes at position {pos} are too few for a batch header")


def _check_client_batch(pos, attributes, last_delta, count, producer_id, base_sequence) -> None:
    # Kafka's LogValidator.validateBatch for AppendOrigin.CLIENT.
    if count == 0:
        raise InvalidRecordError(f"batch at position {pos} has no records")
    if last_delta + 1 != count:
        raise InvalidRecordError(
            f"batch at position {pos} has {count} records but an offset range of {last_delta + 1}")
    if attributes & CONTROL_MASK:
        raise InvalidRecordError("clients may not write control batches")
    if producer_id != NO_PRODUCER_ID and base_sequence < 0:
        raise InvalidRecordError(f"batch with producer id {producer_id} has no sequence number")


# -- in-place edits ------------------------------------------------------------


def set_base_offset(buf, pos: int, base_offset: int) -> None:
    """Write baseOffset of the batch at ``pos`` (outside the CRC)."""
    _I64.pack_into(buf, pos + BASE_OFFSET_OFFSET, base_offset)


def set_partition_leader_epoch(buf, pos: int, epoch: int) -> None:
    """Write partitionLeaderEpoch of the batch at ``pos`` (outside the CRC)."""
    _I32.pack_into(buf, pos + PARTITION_LEADER_EPOCH_OFFSET, epoch)


def set_log_append_time(buf, pos: int, now_ms: int) -> None:
    """Stamp the batch at ``pos`` with LogAppendTime and recompute its CRC.

    As Kafka does: attributes bit 3 set and maxTimestamp = now; record
    timestamps stay as written and readers use maxTimestamp for all of them.
    """
    (attributes,) = _I16.unpack_from(buf, pos + ATTRIBUTES_OFFSET)
    _I16.pack_into(buf, pos + ATTRIBUTES_OFFSET, attributes | TIMESTAMP_TYPE_MASK)
    _I64.pack_into(buf, pos + MAX_TIMESTAMP_OFFSET, now_ms)
    (batch_length,) = _I32.unpack_from(buf, pos + LENGTH_OFFSET)
    _U32.pack_into(buf, pos + CRC_OFFSET, compute_crc(buf, pos, batch_length + LOG_OVERHEAD))


def assign_offsets(buf, batches: list[tuple[int, BatchHeader]], base_offset: int) -> int:
    """Give consecutive offsets to validated ``batches`` in ``buf`` from ``base_offset``.

    Returns the last offset assigned.  ``batches`` is what validate_batches
    returned; the headers in it keep their old baseOffset.
    """
    next_offset = base_offset
    for pos, header in batches:
        _I64.pack_into(buf, pos, next_offset)
        next_offset += header.last_offset_delta + 1
    return next_offset - 1
