"""The two ways a record batch can be refused, named after Kafka's error codes.

Produce answers a partition whose records raise one of these with the class's
``error_code``; nothing else in the records package raises on bad input.
"""

from __future__ import annotations

__all__ = ["RecordError", "CorruptRecordError", "InvalidRecordError"]


class RecordError(ValueError):
    """Base class: the bytes are not an acceptable record batch."""

    error_code: int = -1
    error_name: str = "UNKNOWN_SERVER_ERROR"


class CorruptRecordError(RecordError):
    """Bad CRC, truncated data, or lengths that contradict the buffer."""

    error_code = 2
    error_name = "CORRUPT_MESSAGE"


class InvalidRecordError(RecordError):
    """Well-formed bytes that break a rule: old magic, no records, bad counts."""

    error_code = 87
    error_name = "INVALID_RECORD"
