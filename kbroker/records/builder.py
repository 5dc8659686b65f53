"""Build RecordBatch v2 bytes from records.

The broker builds batches itself only for transaction markers (control
batches) and compaction; tests use the builder to make produce payloads and
stored logs.  Produced batches are never rebuilt.
"""

from __future__ import annotations

from typing import Sequence

from kbroker.records.batch import (
    CONTROL_MASK, CRC_OFFSET, DELETE_HORIZON_MASK, HEADER, HEADER_SIZE, LOG_OVERHEAD, MAGIC,
    NO_PRODUCER_ID, NO_TIMESTAMP, TIMESTAMP_TYPE_MASK, TRANSACTIONAL_MASK, compute_crc,
)
from kbroker.records.compression import NONE, compress
from kbroker.records.record import Record, control_record, encode_record

__all__ = ["build_batch", "simple_batch", "build_control_batch", "batch_around"]

_I32_MAX = 2**31 - 1


def build_batch(
    records: Sequence[Record],
    *,
    base_offset: int | None = None,
    compression: int = NONE,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    control: bool = False,
    partition_leader_epoch: int = -1,
    log_append_time_ms: int | None = None,
    delete_horizon_ms: int | None = None,
    last_offset_delta: int | None = None,
) -> bytearray:
    """Encode ``records`` (absolute offsets and timestamps) as one batch.

    ``base_offset`` defaults to the first record's offset.  Records must have
    increasing offsets at or above it.  ``last_offset_delta`` may widen the
    batch's offset range beyond its last record, as compaction does to keep a
    batch's original range; with no records at all it is required (an empty
    batch that only preserves producer state, Kafka's ``writeEmptyHeader``).

    ``log_append_time_ms`` marks the batch LogAppendTime with that
    maxTimestamp.  ``delete_horizon_ms`` sets attributes bit 6 and makes the
    horizon the baseTimestamp (KIP-534), deltas being relative to it.
    """
    if base_offset is None:
        if not records:
            raise ValueError("an empty batch needs an explicit base_offset")
        base_offset = records[0].offset
    if delete_horizon_ms is not None:
        base_timestamp = delete_horizon_ms
    elif records:
        base_timestamp = records[0].timestamp
    else:
        base_timestamp = NO_TIMESTAMP

    body = bytearray()
    max_timestamp = NO_TIMESTAMP
    previous = base_offset - 1
    for record in records:
        offset = record.offset
        if offset <= previous:
            raise ValueError(f"record offsets must increase from the base offset: {offset} after {previous}")
        previous = offset
        encode_record(body, offset - base_offset, record.timestamp - base_timestamp,
                      record.key, record.value, record.headers)
        if record.timestamp > max_timestamp:
            max_timestamp = record.timestamp

    min_delta = previous - base_offset
    if last_offset_delta is None:
        if not records:
            raise ValueError("an empty batch needs an explicit last_offset_delta")
        last_offset_delta = min_delta
    elif last_offset_delta < min_delta or last_offset_delta > _I32_MAX:
        raise ValueError(f"last_offset_delta {last_offset_delta} does not cover the records")

    attributes = compression
    if log_append_time_ms is not None:
        attributes |= TIMESTAMP_TYPE_MASK
        max_timestamp = log_append_time_ms
    if transactional:
        attributes |= TRANSACTIONAL_MASK
    if control:
        attributes |= CONTROL_MASK
    if delete_horizon_ms is not None:
        attributes |= DELETE_HORIZON_MASK
    if not records and delete_horizon_ms is not None:
        max_timestamp = delete_horizon_ms

    payload = compress(compression, body) if compression != NONE else body
    out = bytearray(HEADER_SIZE)
    out += payload
    HEADER.pack_into(
        out, 0,
        base_offset, len(out) - LOG_OVERHEAD, partition_leader_epoch, MAGIC,
        0,  # crc, below
        attributes, last_offset_delta, base_timestamp, max_timestamp,
        producer_id, producer_epoch, base_sequence, len(records),
    )
    crc = compute_crc(out, 0, len(out))
    out[CRC_OFFSET:CRC_OFFSET + 4] = crc.to_bytes(4, "big")
    return out


def simple_batch(
    *values: bytes | None,
    base_offset: int = 0,
    timestamp_ms: int = 0,
    keys: Sequence[bytes | None] | None = None,
    **kwargs,
) -> bytearray:
    """A batch of ``values`` at consecutive offsets, all at ``timestamp_ms``.

    For tests and tools; ``kwargs`` go to :func:`build_batch`.
    """
    if keys is None:
        keys = [None] * len(values)
    records = [Record(base_offset + i, timestamp_ms, key, value)
               for i, (key, value) in enumerate(zip(keys, values, strict=True))]
    return build_batch(records, base_offset=base_offset, **kwargs)


def build_control_batch(
    control_type: int,
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    timestamp_ms: int,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
) -> bytearray:
    """A transaction marker batch: transactional + control, one record.

    ``control_type`` is :data:`~kbroker.records.record.ABORT` or
    :data:`~kbroker.records.record.COMMIT`.
    """
    key, value = control_record(control_type, coordinator_epoch)
    return build_batch(
        [Record(base_offset, timestamp_ms, key, value)],
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        transactional=True,
        control=True,
        partition_leader_epoch=partition_leader_epoch,
    )


def batch_around(payload, *, compression: int, record_count: int, last_offset_delta: int,
                 timestamp_ms: int = 0) -> bytearray:
    """A batch whose records section is ``payload`` as given (already compressed, or not compressed at all),
    whatever it holds, under a header that declares ``record_count`` records and ``last_offset_delta``, with a
    valid CRC: what a broken or hostile producer sends (tests and the conformance scenarios)."""
    out = bytearray(HEADER_SIZE)
    out += payload
    HEADER.pack_into(out, 0, 0, len(out) - LOG_OVERHEAD, -1, MAGIC, 0, compression, last_offset_delta,
                     timestamp_ms, timestamp_ms, NO_PRODUCER_ID, -1, -1, record_count)
    out[CRC_OFFSET:CRC_OFFSET + 4] = compute_crc(out, 0, len(out)).to_bytes(4, "big")
    return out
