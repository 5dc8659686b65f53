"""Kafka's error codes (generated from protocol/errors.json) and the exceptions handlers raise with them."""

from __future__ import annotations

from .wire.error_codes import ErrorCode

__all__ = ["ErrorCode", "KafkaError"]


class KafkaError(Exception):
    """An error a handler answers with a Kafka error code (and, where the API has one, a message)."""

    def __init__(self, code: ErrorCode, message: str | None = None):
        super().__init__(message or code.name)
        self.code = code
        self.message = message
