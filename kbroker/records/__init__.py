"""RecordBatch v2 (magic 2): the unit kbroker stores and serves.

* ``batch``       -- header view, Produce validation, in-place edits (offsets,
                     leader epoch, LogAppendTime).  The hot path; headers only.
* ``record``      -- record encode/decode with varints; control records.
* ``compression`` -- the five codecs of attributes bits 0-2.
* ``builder``     -- build a batch from records (markers, compaction, tests).
* ``errors``      -- CorruptRecordError (CORRUPT_MESSAGE, 2) and
                     InvalidRecordError (INVALID_RECORD, 87).
"""

from kbroker.records.batch import (
    HEADER_SIZE, LOG_OVERHEAD, BatchHeader, assign_offsets, crc_matches, iter_batches,
    read_header, set_base_offset, set_log_append_time, set_partition_leader_epoch,
    validate_batches,
)
from kbroker.records.builder import build_batch, build_control_batch, simple_batch
from kbroker.records.compression import GZIP, LZ4, NONE, SNAPPY, ZSTD
from kbroker.records.errors import CorruptRecordError, InvalidRecordError, RecordError
from kbroker.records.record import (
    ABORT, COMMIT, Record, decode_batch, decode_records, parse_control_record,
    record_for_timestamp,
)

__all__ = [
    "HEADER_SIZE", "LOG_OVERHEAD", "BatchHeader", "assign_offsets", "crc_matches",
    "iter_batches", "read_header", "set_base_offset", "set_log_append_time",
    "set_partition_leader_epoch", "validate_batches",
    "build_batch", "build_control_batch", "simple_batch",
    "NONE", "GZIP", "SNAPPY", "LZ4", "ZSTD",
    "RecordError", "CorruptRecordError", "InvalidRecordError",
    "ABORT", "COMMIT", "Record", "decode_batch", "decode_records",
    "parse_control_record", "record_for_timestamp",
]
