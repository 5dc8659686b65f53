"""The consumer protocol's embedded formats (what JoinGroup metadata and SyncGroup assignments carry when
the protocol type is "consumer"): decoded for the control plane's group view, and by the consumer group
coordinator when classic members join a consumer-protocol group (KIP-848's online migration): it reads their
subscriptions and writes their assignments. Otherwise the broker relays them.

ConsumerProtocolSubscription: version int16, topics (array of string), user data bytes; v1 adds the owned
partitions (array of (topic string, partitions int32 array)); later versions add fields the broker ignores.

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


def decode_subscription_owned(data) -> dict[str, list[int]]:
    """The owned partitions of a ConsumerProtocolSubscription v1+ (cooperative members say what they kept);
    empty for v0, whose eager members give everything up before they rejoin, and for what does not parse."""
    buf = memoryview(bytes(data))
    try:
        (version,) = struct.unpack_from(">h", buf, 0)
        if version < 1:
            return {}
        n, pos = read_array_len(buf, 2)
        for _ in range(max(n, 0)):
            _topic, pos = read_string(buf, pos)
        (user_len,) = struct.unpack_from(">i", buf, pos)
        pos += 4 + max(user_len, 0)
        n, pos = read_array_len(buf, pos)
        out: dict[str, list[int]] = {}
        for _ in range(max(n, 0)):
            topic, pos = read_string(buf, pos)
            m, pos = read_array_len(buf, pos)
            out[topic] = list(struct.unpack_from(f">{max(m, 0)}i", buf, pos))
            pos += 4 * max(m, 0)
        return out
    except (DecodeError, struct.error):
        return {}


def encode_consumer_assignment(partitions: dict[str, list[int]]) -> bytes:
    """A ConsumerProtocolAssignment v0 (every client reads it) with no user data."""
    out = [struct.pack(">hi", 0, len(partitions))]
    for topic, parts in sorted(partitions.items()):
        name = topic.encode()
        out.append(struct.pack(">h", len(name)) + name + struct.pack(f">i{len(parts)}i", len(parts), *sorted(parts)))
    out.append(struct.pack(">i", -1))
    return b"".join(out)
