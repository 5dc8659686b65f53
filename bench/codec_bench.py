"""Codec micro-benchmark: kbroker's generated codec against kafka-python's, on the same messages.

Two messages, both with one topic of 15 partitions, each partition holding a 10-record RecordBatch of
100 B values (about 1.2 KB; records are opaque bytes to both codecs):

- a Produce request (v9, flexible; v3 non-flexible too), as a producer sends it;
- a Fetch response (v12, flexible with topic names; v11 too), as a broker sends it.

Decode takes the body bytes (no frame or header) to an object; encode takes that object back to
bytes. kbroker: ``REQUEST_DECODERS[v](memoryview(buf), 0)`` and ``REQUEST_ENCODERS[v](obj, bytearray())``
(RESPONSE_* for Fetch). kafka-python: ``Class.decode(buf, version=v)`` and ``obj.encode(version=v)``.
Both encodings are checked to be byte-identical before timing. Figures are microseconds per
operation, the median of 7 repeats of a loop sized to take about 0.2 s.

    python bench/codec_bench.py            prints the table and the JSON
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARTITIONS = 15


def _batch(partition: int) -> bytes:
    from kbroker.records.builder import simple_batch
    return bytes(simple_batch(*[bytes([65 + partition]) * 100 for _ in range(10)], base_offset=0,
                              timestamp_ms=1_700_000_000_000))


def _produce_request():
    from kbroker.wire.messages.produce import ProduceRequest
    return ProduceRequest(transactional_id=None, acks=-1, timeout_ms=30000, topic_data=[
        ProduceRequest.TopicProduceData(name="bench-topic", partition_data=[
            ProduceRequest.PartitionProduceData(index=i, records=_batch(i)) for i in range(PARTITIONS)])])


def _fetch_response():
    from kbroker.wire.messages.fetch import FetchResponse
    return FetchResponse(throttle_time_ms=0, error_code=0, session_id=0, responses=[
        FetchResponse.FetchableTopicResponse(topic="bench-topic", partitions=[
            FetchResponse.PartitionData(partition_index=i, error_code=0, high_watermark=1000, last_stable_offset=1000,
                                        log_start_offset=0, aborted_transactions=[], preferred_read_replica=-1,
                                        records=_batch(i)) for i in range(PARTITIONS)])])


def _time_us(fn, target_s: float = 0.2, repeats: int = 7) -> dict:
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > target_s / 4:
            break
        n *= 2
    n = max(1, int(n * target_s / dt))
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return {"median_us": statistics.median(runs), "min_us": min(runs), "loops": n}


def bench() -> dict:
    import kafka
    import kafka.protocol.consumer  # noqa: F401
    import kafka.protocol.producer  # noqa: F401
    from kafka.protocol.consumer import FetchResponse as KPFetchResponse
    from kafka.protocol.producer import ProduceRequest as KPProduceRequest

    from kbroker.wire.messages import fetch, produce

    cases = [
        ("Produce request", produce.REQUEST_DECODERS, produce.REQUEST_ENCODERS, _produce_request(), KPProduceRequest, 9),
        ("Produce request", produce.REQUEST_DECODERS, produce.REQUEST_ENCODERS, _produce_request(), KPProduceRequest, 3),
        ("Fetch response", fetch.RESPONSE_DECODERS, fetch.RESPONSE_ENCODERS, _fetch_response(), KPFetchResponse, 12),
        ("Fetch response", fetch.RESPONSE_DECODERS, fetch.RESPONSE_ENCODERS, _fetch_response(), KPFetchResponse, 11),
    ]
    rows = []
    for name, decoders, encoders, obj, kp_cls, v in cases:
        buf = bytearray()
        encoders[v](obj, buf)
        buf = bytes(buf)
        ours_obj, end = decoders[v](memoryview(buf), 0)
        assert end == len(buf)
        theirs = kp_cls.decode(buf, version=v)
        if not hasattr(theirs, "_header"):
            theirs._header = None  # kafka-python's decoder leaves this slot unset; encode() reads it
        same = bytes(theirs.encode(version=v)) == buf
        out = bytearray()
        encoders[v](ours_obj, out)
        assert bytes(out) == buf

        dec, enc = decoders[v], encoders[v]
        row = {
            "message": f"{name} v{v}", "bytes": len(buf), "partitions": PARTITIONS, "identical_encoding": same,
            "kbroker_decode": _time_us(lambda: dec(memoryview(buf), 0)),
            "kbroker_encode": _time_us(lambda: enc(ours_obj, bytearray())),
            "kafka_python_decode": _time_us(lambda: kp_cls.decode(buf, version=v)),
            "kafka_python_encode": _time_us(lambda: theirs.encode(version=v)),
        }
        rows.append(row)
    return {"kafka_python": kafka.__version__, "rows": rows}


def table(result: dict) -> str:
    lines = ["| message | bytes | kbroker decode | kafka-python decode | kbroker encode | kafka-python encode | same bytes |",
             "|---|---:|---:|---:|---:|---:|:-:|"]
    for r in result["rows"]:
        def us(k):
            return f"{r[k]['median_us']:.1f} us"
        lines.append(
            f"| {r['message']} ({r['partitions']} partitions) | {r['bytes']:,} | {us('kbroker_decode')} | "
            f"{us('kafka_python_decode')} ({r['kafka_python_decode']['median_us'] / r['kbroker_decode']['median_us']:.1f}x) | "
            f"{us('kbroker_encode')} | {us('kafka_python_encode')} "
            f"({r['kafka_python_encode']['median_us'] / r['kbroker_encode']['median_us']:.1f}x) | "
            f"{'yes' if r['identical_encoding'] else 'no'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    res = bench()
    print(table(res))
    print(json.dumps(res, indent=1))
