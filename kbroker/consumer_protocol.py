"""The consumer protocol's embedded formats (what JoinGroup metadata and SyncGroup assignments carry when
the protocol type is "consumer"): decoded only for the control plane's group view. The broker itself never
needs to understand them; it relays them.

ConsumerProtocolAssignment: version int16, then assigned partitions as an array of (topic string,
partitions int32 array), then user data bytes (and from v1 nothing more the broker needs).
"""

from __future__ import annotations

import struct

from .wire.primitives import DecodeError, read_array_len, read_string


def decode_consumer_assignment(data) -> list[dict] | None:
    """[{"topic": ..., "partitions": [...]}], or None when the bytes are not a consumer assignment."""
    if not data:
        return []
    buf = memoryview(bytes(data))
    try:
        pos = 2  # version
        n, pos = read_array_len(buf, pos)
        out = []
        for _ in range(max(n, 0)):
            topic, pos = read_string(buf, pos)
            m, pos = read_array_len(buf, pos)
            parts = list(struct.unpack_from(f">{max(m, 0)}i", buf, pos))
            pos += 4 * max(m, 0)
            out.append({"topic": topic, "partitions": parts})
        return out
    except (DecodeError, struct.error):
        return None
