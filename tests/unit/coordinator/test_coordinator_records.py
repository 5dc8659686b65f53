"""The coordinators' records in Kafka's formats, and the placement of keys on partitions.

Expected bytes are laid out by hand from Kafka's message definitions (OffsetCommitKey/Value,
GroupMetadataKey/Value, TransactionLogKey/Value); hash values are Java's String.hashCode.
"""

from __future__ import annotations

import struct

import pytest

from kbroker.coordinator import records as R
from kbroker.coordinator.offsets import StoredGroup, StoredMember
from kbroker.coordinator.runtime import java_string_hash, partition_for


@pytest.mark.parametrize("key, expected", [
    ("", 0),
    ("g1", 3242),
    ("hello", 99162322),
    ("é", 233),
    ("\U0001F600", 0xD83D * 31 + 0xDE00),  # two UTF-16 code units, as Java counts them
    ("polygenelubricants", -(1 << 31)),  # Integer.MIN_VALUE
    ("a much longer group id that overflows many times", None),
])
def test_java_string_hash(key, expected):
    h = java_string_hash(key)
    assert -(1 << 31) <= h < (1 << 31)
    if expected is not None:
        assert h == expected


def test_partition_for_is_kafkas_utils_abs_modulo():
    assert partition_for("g1", 50) == 3242 % 50
    assert partition_for("polygenelubricants", 50) == 0  # Utils.abs(Integer.MIN_VALUE) is 0
    negative = next(k for k in (f"a longer group id, number {i}" for i in range(1000)) if java_string_hash(k) < 0)
    assert partition_for(negative, 50) == abs(java_string_hash(negative)) % 50


def _s(text: str) -> bytes:
    return struct.pack(">h", len(text)) + text.encode()


def test_offset_commit_key_and_values_are_kafkas_bytes():
    assert R.offset_commit_key("g", "t", 3) == b"\x00\x01" + _s("g") + _s("t") + b"\x00\x00\x00\x03"
    v3 = R.offset_commit_value(R.OffsetValue(5, 2, "m", 1000, None))
    assert v3 == b"\x00\x03" + struct.pack(">qi", 5, 2) + _s("m") + struct.pack(">q", 1000)
    v1 = R.offset_commit_value(R.OffsetValue(5, -1, "", 1000, 2000))
    assert v1 == b"\x00\x01" + struct.pack(">q", 5) + _s("") + struct.pack(">qq", 1000, 2000)
    assert R.decode_offset_value(v3) == R.OffsetValue(5, 2, "m", 1000, None)
    assert R.decode_offset_value(v1) == R.OffsetValue(5, -1, "", 1000, 2000)
    # v0 (no leader epoch) as written by old Kafka releases
    v0 = b"\x00\x00" + struct.pack(">q", 9) + _s("x") + struct.pack(">q", 7)
    assert R.decode_offset_value(v0) == R.OffsetValue(9, -1, "x", 7, None)
    assert R.decode_offsets_key(R.offset_commit_key("g", "t", 3)) == R.OffsetsKey(R.OFFSET_COMMIT, "g", "t", 3)
    legacy = b"\x00\x00" + _s("g") + _s("t") + b"\x00\x00\x00\x01"
    assert R.decode_offsets_key(legacy) == R.OffsetsKey(R.OFFSET_COMMIT, "g", "t", 1)


def test_group_metadata_round_trips_in_version_3():
    member = StoredMember("m-1", "static-1", "client", "/127.0.0.1", 30000, 10000, b"sub", b"assign")
    value = StoredGroup("g", 4, "consumer", "range", "m-1", 123, (member,))
    encoded = R.group_metadata_value(value)
    assert encoded[:2] == b"\x00\x03" and encoded[2:4 + len("consumer")] == _s("consumer")
    assert R.decode_group_value("g", encoded) == value
    assert R.group_metadata_key("g") == b"\x00\x02" + _s("g")
    assert R.decode_offsets_key(R.group_metadata_key("g")) == R.OffsetsKey(R.GROUP_METADATA, "g")


def test_transaction_log_values_round_trip_in_both_versions():
    v0 = R.TxnValue(7, 3, 60000, "Ongoing", (("a", 1), ("a", 0), ("b", 2)), 1000, 900)
    encoded = R.transaction_log_value(v0)
    assert encoded[:2] == b"\x00\x00"
    assert R.decode_transaction_log_value(encoded) == R.TxnValue(7, 3, 60000, "Ongoing",
                                                                 (("a", 0), ("a", 1), ("b", 2)), 1000, 900)
    v1 = R.TxnValue(8, 0, 60000, "CompleteCommit", (), 5, -1, previous_producer_id=7)
    encoded = R.transaction_log_value(v1)
    assert encoded[:2] == b"\x00\x01"  # the previous producer id is a tagged field of the flexible version
    assert R.decode_transaction_log_value(encoded) == v1
    assert R.decode_transaction_log_key(R.transaction_log_key("tx")) == "tx"


def test_transaction_log_value_keeps_the_next_producer_id_and_the_client_transaction_version():
    # TransactionLogValue v1's tagged fields 1 (NextProducerId, int64) and 2 (ClientTransactionVersion, int16).
    v = R.TxnValue(8, 32767, 60000, "PrepareCommit", (), 5, 4, next_producer_id=9, client_transaction_version=2)
    encoded = R.transaction_log_value(v)
    assert encoded == (b"\x00\x01" + (8).to_bytes(8, "big") + (32767).to_bytes(2, "big") + (60000).to_bytes(4, "big")
                       + b"\x02" + b"\x01" + (5).to_bytes(8, "big") + (4).to_bytes(8, "big")
                       + b"\x02" + b"\x01\x08" + (9).to_bytes(8, "big") + b"\x02\x02" + (2).to_bytes(2, "big"))
    assert R.decode_transaction_log_value(encoded) == v


def test_record_types_this_reader_does_not_know_are_reported_as_such():
    with pytest.raises(R.UnknownRecordType):
        R.decode_offsets_key(b"\x00\x05" + _s("g"))  # a KIP-848 consumer group record, say
    with pytest.raises(R.UnknownRecordType):
        R.decode_transaction_log_key(b"\x00\x01" + _s("tx"))
    key = R.pending_txn_offsets_key("g", 42)
    assert R.decode_offsets_key(key) == R.OffsetsKey(R.PENDING_TXN_OFFSETS, "g", producer_id=42)
    assert R.decode_pending_txn_offsets(R.pending_txn_offsets_value([["t", 0, 5, -1, "", 1]])) == [
        ["t", 0, 5, -1, "", 1]]
