"""Kafka's error codes (generated from protocol/errors.json) and the two kinds of error kbroker raises.

``KafkaError``: a request is answered with a Kafka error code (the client hears why). ``ProtocolViolation``:
the client sent something Kafka does not answer, so the connection is closed instead (server.py does so,
with one log line, as Kafka's SocketServer does).
"""

from __future__ import annotations

from .wire.error_codes import ErrorCode

__all__ = ["ErrorCode", "KafkaError", "LogAppendError", "ProtocolViolation", "RecordValidationError"]


class KafkaError(Exception):
    """An error a handler answers with a Kafka error code (and, where the API has one, a message)."""

    def __init__(self, code: ErrorCode, message: str | None = None):
        super().__init__(message or code.name)
        self.code = code
        self.message = message


class LogAppendError(KafkaError):
    """An append refused by the log while it reads the batch's records (Kafka's validator, past the request's
    own checks): Produce answers it with the partition's log start offset, as Kafka's appendToLocalLog does."""


class ProtocolViolation(Exception):
    """The client sent something we do not answer; the connection is closed."""


class RecordValidationError(KafkaError):
    """A batch refused for some of its records (Kafka's RecordValidationException, KIP-467): Produce v8+
    names each in ``record_errors``, (index of the record in its batch, why), and the partition's message
    is Kafka's summary of them (LogValidator.processRecordErrors)."""

    def __init__(self, code: ErrorCode, record_errors: list[tuple[int, str]], summary: str | None = None):
        shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in record_errors[:3])
        super().__init__(code, summary or f"One or more records have been rejected due to {len(record_errors)} "
                               f"record errors in total, and only showing the first three errors at most: [{shown}]")
        self.record_errors = record_errors
