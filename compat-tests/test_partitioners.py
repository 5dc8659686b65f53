"""The suite's own partitioner models, checked against known values and the Python clients' code.

Not part of the matrix (no ``client`` fixture): these guard the expectations the partitioner scenario
holds every client to.
"""

import random
import zlib

from kcompat.partitioners import fnv1a32, murmur2, partition_for

KEYS = [b"", b"a", b"ab", b"abc", b"abcd", b"abcde", "ключ".encode(), b"\xff" * 7] + [
    random.Random(seed).randbytes(seed % 37) for seed in range(200)]


def test_murmur2_matches_kafka_python():
    from kafka.partitioner.default import murmur2 as theirs

    for key in KEYS:
        assert murmur2(key) & 0xFFFFFFFF == theirs(key) & 0xFFFFFFFF, key


def test_murmur2_partitions_match_aiokafka():
    from aiokafka.partitioner import DefaultPartitioner

    for key in KEYS:
        for n in (1, 3, 6, 7):
            assert partition_for("murmur2", key, n) == DefaultPartitioner()(key, list(range(n)), list(range(n)))


def test_murmur2_known_values():
    # From the Java client's UtilsTest.testMurmur2.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


def test_fnv1a_known_values():
    assert fnv1a32(b"") == 0x811C9DC5
    assert fnv1a32(b"a") == 0xE40C292C
    assert fnv1a32(b"foobar") == 0xBF9CF968


def test_crc32_rule_and_random_empty_keys():
    assert partition_for("crc32", b"user-1", 6) == zlib.crc32(b"user-1") % 6
    assert partition_for("crc32", b"", 6) is None


def test_fnv1a_rule_negates_negative_remainders():
    # sarama: int32(hash) % n, then negated when negative (Go's % truncates toward zero).
    for key in KEYS:
        h = fnv1a32(key)
        signed = h - (1 << 32) if h >= 1 << 31 else h
        for n in (3, 6, 7):
            q = abs(signed) // n * (1 if signed >= 0 else -1)  # Go's / truncates toward zero
            r = signed - q * n  # so its % takes the dividend's sign
            assert partition_for("fnv1a", key, n) == (-r if r < 0 else r)
