"""Kafka's error codes (generated from protocol/errors.json) and the exceptions handlers raise with them."""

from __future__ import annotations

from .wire.error_codes import ErrorCode

__all__ = ["ErrorCode", "KafkaError", "RecordValidationError"]


class KafkaError(Exception):
    """An error a handler answers with a Kafka error code (and, where the API has one, a message)."""

    def __init__(self, code: ErrorCode, message: str | None = None):
        super().__init__(message or code.name)
        self.code = code
        self.message = message


class RecordValidationError(KafkaError):
    """A batch refused for some of its records (Kafka's RecordValidationException, KIP-467): Produce v8+
    names each in ``record_errors``, (index of the record in its batch, why), and the partition's message
    is Kafka's summary of them (LogValidator.processRecordErrors)."""

    def __init__(self, code: ErrorCode, record_errors: list[tuple[int, str]]):
        shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in record_errors[:3])
        super().__init__(code, f"One or more records have been rejected due to {len(record_errors)} record "
                               f"errors in total, and only showing the first three errors at most: [{shown}]")
        self.record_errors = record_errors
