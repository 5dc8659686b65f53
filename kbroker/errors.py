"""Kafka's error codes (generated from protocol/errors.json) and the two kinds of error kbroker raises.

``KafkaError``: a request is answered with a Kafka error code (the client hears why). ``ProtocolViolation``:
the client sent something Kafka does not answer, so the connection is closed instead (server.py does so,
with one log line, as Kafka's SocketServer does).
"""

from __future__ import annotations

from .wire.error_codes import ErrorCode

__all__ = ["ErrorCode", "KafkaError", "ProtocolViolation"]


class KafkaError(Exception):
    """An error a handler answers with a Kafka error code (and, where the API has one, a message)."""

    def __init__(self, code: ErrorCode, message: str | None = None):
        super().__init__(message or code.name)
        self.code = code
        self.message = message


class ProtocolViolation(Exception):
    """The client sent something we do not answer; the connection is closed."""
