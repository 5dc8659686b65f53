"""A produced compressed batch is decompressed and its records read, as Kafka's LogValidator does on append
(records/validation.py): the frames a broken or hostile producer sends, under valid CRCs, with the error code
Kafka 4.4 answers each (measured on its jars: the conformance scenario produce_compressed_records_that_lie),
and nothing stored. Before, kbroker checked headers and CRCs only and stored every one of them; a ListOffsets
by timestamp over the garbage one then answered CORRUPT_MESSAGE. Stock clients' batches of every codec, with
keys, headers and values of varying sizes, are still taken and read back whole."""

from __future__ import annotations

import time
import uuid

import pytest

from kbroker import Broker
from kbroker.errors import ErrorCode
from kbroker.records.builder import batch_around, simple_batch
from kbroker.records.compression import GZIP, LZ4, SNAPPY, ZSTD, compress
from kbroker.records.record import encode_record
from kbroker.wire.messages import list_offsets, produce
from test_hostile_fetch import _client, _create, _fetch, _produce

CODECS = {"gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}


def _section(count: int, offset_deltas=None, value: bytes = b"v" * 20) -> bytearray:
    out = bytearray()
    for i in range(count):
        encode_record(out, offset_deltas[i] if offset_deltas else i, i, None, value)
    return out


def _fields_that_overrun() -> bytearray:
    out = bytearray()
    for i in range(3):
        encode_record(out, i, 0, None, None)
        out[-1] = 2  # the header count says one header; there is none
    return out


def _lies(codec: int) -> dict[str, tuple[bytearray, ErrorCode]]:
    def around(payload, count=3, last_delta=2):
        return batch_around(payload, compression=codec, record_count=count, last_offset_delta=last_delta,
                            timestamp_ms=int(time.time() * 1000))

    garbage = bytes(range(7, 250, 3))
    if codec == SNAPPY:
        garbage = b"\x82SNAPPY\x00" + b"\x00\x00\x00\x01\x00\x00\x00\x01" + b"\x00\x00\x00\x40" + garbage[:64]
    big = _section(3000, value=b"x" * 90)  # long runs of records of one length, then one record fewer
    return {
        "garbage": (around(garbage), ErrorCode.UNKNOWN_SERVER_ERROR),
        "fewer": (around(compress(codec, _section(2))), ErrorCode.INVALID_RECORD),
        "more": (around(compress(codec, _section(4))), ErrorCode.INVALID_RECORD),
        "trailing byte": (around(compress(codec, _section(3) + b"\x00")), ErrorCode.INVALID_RECORD),
        "fields": (around(compress(codec, _fields_that_overrun())), ErrorCode.INVALID_RECORD),
        "offset deltas": (around(compress(codec, _section(3, [0, 5, 9]))), ErrorCode.UNKNOWN_SERVER_ERROR),
        "long, one short": (around(compress(codec, big), count=3001, last_delta=3000), ErrorCode.INVALID_RECORD),
        "long, one over": (around(compress(codec, big), count=2999, last_delta=2998), ErrorCode.INVALID_RECORD),
    }


@pytest.mark.parametrize("codec", list(CODECS))
def test_compressed_batches_whose_records_lie_are_refused_and_not_stored(codec):
    P = produce.ProduceRequest
    L = list_offsets.ListOffsetsRequest
    with Broker(port=0) as b:
        c = _client(b)
        topic = f"lies-{uuid.uuid4().hex[:8]}"
        _create(c, topic)
        _produce(c, topic, simple_batch(b"kept", timestamp_ms=int(time.time() * 1000)))
        for name, (batch, expected) in _lies(CODECS[codec]).items():
            resp = c.request(0, 9, P(acks=1, timeout_ms=5000, topic_data=[P.TopicProduceData(
                name=topic, partition_data=[P.PartitionProduceData(index=0, records=bytes(batch))])]))
            part = resp.responses[0].partition_responses[0]
            assert (part.error_code, part.base_offset) == (expected, -1), (name, part)
        fetched = c.request(1, 11, _fetch(topic=topic)).responses[0].partitions[0]
        assert (fetched.error_code, fetched.high_watermark) == (0, 1)
        # A search by timestamp decodes the stored batches: only the one that was taken is there.
        r = c.request(2, 7, L(replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(
            name=topic, partitions=[L.ListOffsetsPartition(partition_index=0, timestamp=0)])]))
        assert (r.topics[0].partitions[0].error_code, r.topics[0].partitions[0].offset) == (0, 0)
        c.close()


def test_stock_clients_compressed_batches_are_taken_and_read_back():
    """confluent-kafka (librdkafka) batches of each codec with keys, headers and values from 0 to 3,000
    bytes (records of many lengths, so the walk meets runs of every size): all acknowledged, all read back."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    with Broker(port=0) as b:
        for codec in CODECS:
            topic = f"stock-{codec}-{uuid.uuid4().hex[:6]}"
            errors = []
            p = confluent_kafka.Producer({"bootstrap.servers": b.bootstrap_servers, "compression.type": codec,
                                          "linger.ms": 20, "acks": "1"})
            sent = []
            for i in range(3000):
                value = bytes([i % 251]) * ((i * 37) % 3001 if i % 7 else 100)
                key = None if i % 3 == 0 else str(i).encode()
                headers = [("h", str(i).encode())] * (i % 4)
                sent.append((key, value))
                p.produce(topic, value, key, headers=headers,
                          on_delivery=lambda err, msg: errors.append(err) if err else None)
            assert p.flush(30) == 0 and errors == [], errors[:3]
            cons = confluent_kafka.Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": topic,
                                             "auto.offset.reset": "earliest"})
            cons.subscribe([topic])
            got = []
            deadline = time.monotonic() + 30
            while len(got) < len(sent) and time.monotonic() < deadline:
                m = cons.poll(0.5)
                if m is not None and m.error() is None:
                    got.append((m.key(), m.value()))
            cons.close()
            assert got == sent, codec
