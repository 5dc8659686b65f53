"""Kafka's random Uuid as a string (``Uuid.randomUuid().toString()``): 16 random bytes, URL-safe base64
without padding, drawn again while the string starts with "-" (a command-line tool would read it as an
option: ``kafka-storage format -t -xyz...`` fails) or is one of the reserved ids (all zeros; the metadata
topic's id, 1)."""

from __future__ import annotations

import base64
import uuid

_RESERVED = (bytes(16), (1).to_bytes(16, "big"))


def random_uuid() -> str:
    while True:
        raw = uuid.uuid4().bytes
        text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if raw not in _RESERVED and not text.startswith("-"):
            return text
