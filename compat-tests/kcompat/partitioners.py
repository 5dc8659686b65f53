"""Each client's default partitioner for keyed records, written independently of the clients.

The partitioner scenario computes where a key *should* land with these and checks where it *did* land
by reading the broker partition by partition. Keyless records are not covered: every client spreads
them by its own (random, round-robin or sticky) rule.

- ``murmur2``: the Java client's ``toPositive(murmur2(key)) % numPartitions``
  (org.apache.kafka.common.utils.Utils.murmur2, seed 0x9747b28c); kafka-python, aiokafka and kafkajs
  2.x ("DefaultPartitioner", formerly JavaCompatiblePartitioner) use it.
- ``crc32``: librdkafka's default ``consistent_random``: ``crc32(key) % partition_cnt`` for a non-empty
  key (rd_kafka_msg_partitioner_consistent); an empty key goes to a random partition like a null one;
  confluent-kafka and kcat.
- ``fnv1a``: sarama's ``NewHashPartitioner``: FNV-1a 32 of the key as int32, ``% n``, then negated when
  negative (not Java's ``& 0x7fffffff``; ``NewReferenceHashPartitioner`` is the Java-like variant).
"""

from __future__ import annotations

import zlib


def murmur2(data: bytes) -> int:
    """Kafka's murmur2, as a signed 32-bit int like Java's."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def _int32(u: int) -> int:
    return u - (1 << 32) if u & 0x80000000 else u


def partition_for(rule: str, key: bytes, partitions: int) -> int | None:
    """The partition ``rule`` picks for ``key``; None where the rule picks at random."""
    if rule == "murmur2":
        return (murmur2(key) & 0x7FFFFFFF) % partitions
    if rule == "crc32":
        if not key:  # consistent_random: "empty and NULL keys are randomly partitioned"
            return None
        return zlib.crc32(key) % partitions
    if rule == "fnv1a":
        # Go's % truncates toward zero, as C's does; Python's % floors, so take it on the magnitude.
        h = _int32(fnv1a32(key))
        return abs(h) % partitions
    raise ValueError(f"unknown partitioner rule {rule!r}")
