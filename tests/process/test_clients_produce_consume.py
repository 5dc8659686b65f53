"""The core broker as each stock client sees it, over TCP, against a kbroker process.

For each client: create a 3-partition topic; produce 10,000 keyed messages with headers, once per
compression codec; consume them back with assign() from the beginning and check every key, value, header
and the order within each partition; look up offsets by timestamp; restart the broker and read the same
messages again; delete the topic.
"""

from __future__ import annotations

import time

import pytest

from support.clients import CLIENTS

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 2000  # 5 codecs x 2,000 = 10,000 messages
PARTITIONS = 3


def _messages(codec: str, base_ts: int):
    out = []
    for i in range(PER_CODEC):
        key = f"{codec}-k{i % 97}".encode()
        value = f"{codec}-v{i}-".encode() + bytes([i % 256]) * (i % 50)
        headers = [("seq", str(i).encode()), ("codec", codec.encode()), ("empty", b"")]
        out.append((key, value, headers, None, base_ts + i))
    return out


def _check(consumed, sent_by_codec):
    assert len(consumed) == sum(len(m) for m in sent_by_codec.values())
    by_partition: dict[int, list] = {}
    for rec in consumed:
        by_partition.setdefault(rec[0], []).append(rec)
    keys_to_partition: dict[bytes, int] = {}
    seen = set()
    for part, recs in by_partition.items():
        offsets = [r[1] for r in recs]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        last_seq: dict[str, int] = {}
        for _p, _off, key, value, headers, ts in recs:
            h = dict((k, bytes(v) if v is not None else None) for k, v in headers)
            codec, seq = h["codec"].decode(), int(h["seq"])
            assert h["empty"] == b""
            sent_key, sent_value, sent_headers, _, sent_ts = sent_by_codec[codec][seq]
            assert key == sent_key and value == sent_value and ts == sent_ts
            assert seq > last_seq.get(codec, -1), "records of one producer out of order within a partition"
            last_seq[codec] = seq
            # The same key always lands in the same partition.
            assert keys_to_partition.setdefault(key, part) == part
            seen.add((codec, seq))
    assert len(seen) == len(consumed)


@pytest.mark.parametrize("client_name", list(CLIENTS))
def test_produce_consume_restart_delete(broker_proc, topic_name, client_name):
    client = CLIENTS[client_name](broker_proc.bootstrap_servers)
    client.create_topic(topic_name, PARTITIONS)
    assert topic_name in client.list_topics()

    base_ts = int(time.time() * 1000) - 100_000
    sent = {}
    for n, codec in enumerate(CODECS):
        msgs = _messages(codec, base_ts + n * 10_000)
        client.produce(topic_name, msgs, compression=None if codec == "none" else codec)
        sent[codec] = msgs

    consumed = client.consume_assigned(topic_name, PARTITIONS, 5 * PER_CODEC)
    _check(consumed, sent)

    # Offsets by timestamp: the first record at or after the timestamp of the zstd round's 100th message.
    target = base_ts + 4 * 10_000 + 100
    expected = {}
    for p, off, key, value, headers, ts in consumed:
        if ts >= target and (p not in expected or off < expected[p]):
            expected[p] = off
    found = client.offsets_for_times(topic_name, PARTITIONS, target)
    assert {p: o for p, o in found.items() if o is not None} == expected
    assert client.offsets_for_times(topic_name, PARTITIONS, base_ts + 10**9) == {p: None for p in range(PARTITIONS)}

    broker_proc.restart()
    client = CLIENTS[client_name](broker_proc.bootstrap_servers)
    again = client.consume_assigned(topic_name, PARTITIONS, 5 * PER_CODEC)
    assert sorted(again) == sorted(consumed)

    client.delete_topic(topic_name)
    assert topic_name not in client.list_topics()
