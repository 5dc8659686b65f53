"""The client side of each workload, one process per measurement.

    python bench/client.py WORKLOAD 'JSON SPEC'   ->  one JSON object on the last line of stdout

A fresh process per measurement keeps client state (librdkafka queues, Python heap) from leaking from
one measurement into the next, and lets the orchestrator kill a stuck client at its deadline. Every
spec carries ``bootstrap`` (always 127.0.0.1), ``client_conf`` (extra settings the broker needs) and
``deadline_s``; counts are bounded, so every workload ends by itself.

Clocks: durations use time.perf_counter(); end-to-end latency uses time.monotonic_ns(), which is
CLOCK_MONOTONIC and so comparable between the producing and the consuming process.
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import time

LOG_LEVEL = 3  # librdkafka: errors only; a stopped broker at teardown is not news


def _conf(spec: dict, **settings) -> dict:
    conf = {"bootstrap.servers": spec["bootstrap"], "log_level": LOG_LEVEL}
    conf.update(spec.get("client_conf", {}))
    conf.update(settings)
    return conf


def _group_conf(spec: dict) -> dict:
    # The same for every broker. Tansu answers the first JoinGroup only after about half the rebalance
    # timeout (max.poll.interval.ms), which at librdkafka's default of 300 s would stall the run;
    # Kafka 0.9 refuses session timeouts above its group.max.session.timeout.ms of 30 s.
    return {"session.timeout.ms": 10000, "max.poll.interval.ms": 10000}


def _producer(spec: dict, **settings):
    from confluent_kafka import Producer
    failures = {"count": 0, "first": None}

    def on_delivery(err, _msg):
        if err is not None:
            failures["count"] += 1
            failures["first"] = failures["first"] or str(err)

    p = Producer(_conf(spec, on_delivery=on_delivery, **{"delivery.report.only.error": True}, **settings))
    return p, failures


def _wait_metadata(client, topic: str, timeout_s: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        md = client.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and t.partitions:
            return sorted(t.partitions)
        if time.monotonic() > deadline:
            raise RuntimeError(f"no metadata for {topic}")
        time.sleep(0.05)


# -- produce -----------------------------------------------------------------------------------------

def produce(spec: dict) -> dict:
    """``count`` messages of ``size`` bytes to ``topic`` as fast as the producer takes them; the clock
    stops when flush() has every delivery report."""
    n, size, topic = spec["count"], spec["size"], spec["topic"]
    p, failures = _producer(spec, **{
        "acks": spec.get("acks", "1"), "linger.ms": spec.get("linger_ms", 5), "batch.size": 1 << 20,
        "queue.buffering.max.messages": max(100000, n), "queue.buffering.max.kbytes": 2097151,
    })
    _wait_metadata(p, topic)
    payload = os.urandom(size)
    send, poll = p.produce, p.poll
    t0 = time.perf_counter()
    for _ in range(n):
        try:
            send(topic, payload)
        except BufferError:
            poll(0.01)
            send(topic, payload)
    left = p.flush(max(1.0, spec["deadline_s"] - (time.perf_counter() - t0) - 5))
    dt = time.perf_counter() - t0
    out = {"count": n, "seconds": dt, "msgs_per_s": n / dt, "mb_per_s": n * size / dt / 1e6,
           "failed": failures["count"], "undelivered": left}
    if failures["count"] or left:
        out["error"] = f"{failures['count']} failed, {left} undelivered: {failures['first']}"
    return out


def fill_partitions(spec: dict) -> dict:
    """One small message into each partition 0..partitions-1 (for the memory-with-partitions figure)."""
    topic, parts = spec["topic"], spec["partitions"]
    p, failures = _producer(spec, **{"acks": "1", "linger.ms": 5})
    _wait_metadata(p, topic)
    for i in range(parts):
        p.produce(topic, b"m" * 100, partition=i)
    left = p.flush(spec["deadline_s"] - 5)
    out = {"count": parts, "undelivered": left, "failed": failures["count"]}
    if failures["count"] or left:
        out["error"] = f"{failures['count']} failed, {left} undelivered: {failures['first']}"
    return out


# -- consume -----------------------------------------------------------------------------------------

def consume(spec: dict) -> dict:
    """Read ``topic`` from the beginning to the high watermarks seen at the start, by ``assign`` (all
    partitions at the earliest offset) or as a new consumer ``group`` member (subscribe,
    auto.offset.reset=earliest). That is ``count`` records unless the broker kept fewer (the mock
    cluster drops old records past a few MB per partition): ``retained`` says how many it kept.

    assign: msgs_per_s counts from assign() to the last record. group: from the first record to the
    last, since the time to join is its own figure (first_record_s, measured from subscribe()).
    The first record is polled alone so that its time is exact; the rest come in batches of at most
    the records still missing, so that the last batch returns as soon as they are there."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    n, topic, mode = spec["count"], spec["topic"], spec["mode"]
    settings = {"group.id": spec["group"], "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    if mode == "group":
        settings.update(_group_conf(spec))
    c = Consumer(_conf(spec, **settings))
    parts = _wait_metadata(c, topic)
    retained = 0
    for p in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        retained += hi - lo
    want = min(n, retained)
    got = nbytes = 0
    errors = []
    t0 = time.perf_counter()
    deadline = t0 + spec["deadline_s"] - 5
    if mode == "assign":
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    else:
        c.subscribe([topic])
    t_first = None
    first_deadline = min(deadline, t0 + 60)  # nothing at all in a minute: the broker is not serving this
    while t_first is None and time.perf_counter() < first_deadline:
        m = c.poll(0.05)
        if m is None:
            continue
        if m.error() is None:
            t_first = time.perf_counter()
            got, nbytes = 1, len(m)
        elif len(errors) < 3:
            errors.append(str(m.error()))
    consume_batch = c.consume
    while t_first is not None and got < want:
        for m in consume_batch(min(10000, want - got), 0.2):
            if m.error() is None:
                got += 1
                nbytes += len(m)
            elif len(errors) < 3:
                errors.append(str(m.error()))
        if time.perf_counter() > deadline:
            break
    t_last = time.perf_counter()
    c.close()
    out = {"count": got, "expected": n, "retained": retained, "bytes": nbytes, "errors": errors,
           "first_record_s": (t_first - t0) if t_first else None}
    if mode == "assign":
        out["seconds"] = t_last - t0
    else:
        out["seconds"] = (t_last - t_first) if t_first else None
        out["seconds_from_subscribe"] = t_last - t0
    if got > 1 and out["seconds"]:
        out["msgs_per_s"] = got / out["seconds"]
        out["mb_per_s"] = nbytes / out["seconds"] / 1e6
    if got < want or not want:
        out["error"] = f"only {got} of {want} records within the deadline" + (f": {errors}" if errors else "")
    elif retained < n:
        out["note"] = f"the broker kept {retained} of the {n} records produced; measured on those"
    return out


def subscribe_first(spec: dict) -> dict:
    """Seconds from subscribe() to the first record, for a new group on a topic that has records.
    The consumer is connected (it has fetched metadata) before the clock starts."""
    from confluent_kafka import Consumer
    topic = spec["topic"]
    c = Consumer(_conf(spec, **{"group.id": spec["group"], "enable.auto.commit": False,
                                "auto.offset.reset": "earliest"}, **_group_conf(spec)))
    _wait_metadata(c, topic)
    t0 = time.perf_counter()
    c.subscribe([topic])
    deadline = t0 + spec["deadline_s"] - 5
    errors = []
    while True:
        m = c.poll(0.01)
        if m is not None and m.error() is None:
            dt = time.perf_counter() - t0
            break
        if m is not None and len(errors) < 3:
            errors.append(str(m.error()))
        if time.perf_counter() > deadline:
            c.close()
            return {"error": f"no record within {spec['deadline_s'] - 5:.0f} s of subscribe(): {errors}"}
    c.close()
    return {"seconds": dt}


# -- end-to-end latency ------------------------------------------------------------------------------

_STAMP = struct.Struct(">cq")


def e2e(spec: dict) -> dict:
    """Producer here, consumer in a child process; ``rate`` msg/s for ``duration_s`` seconds on a
    one-partition topic. Each payload carries its send time; the consumer takes the difference at
    receipt. Producer linger.ms=0 (a latency test; the throughput tests use 5), acks=1."""
    topic, rate, size = spec["topic"], spec["rate"], spec.get("size", 100)
    n = int(rate * spec["duration_s"])
    child = subprocess.Popen([sys.executable, __file__, "e2e_consumer", json.dumps(spec)],
                             stdout=subprocess.PIPE, text=True)
    try:
        p, failures = _producer(spec, **{"acks": "1", "linger.ms": 0})
        _wait_metadata(p, topic)
        pad = b"p" * max(0, size - _STAMP.size)
        # Warm up until the consumer has seen a record, so its assignment and first fetch are done.
        warm_deadline = time.monotonic() + 30
        while True:
            p.produce(topic, _STAMP.pack(b"W", time.monotonic_ns()) + pad)
            p.flush(1)
            if select.select([child.stdout], [], [], 0.1)[0]:
                if child.stdout.readline().strip() == "ready":
                    break
            if time.monotonic() > warm_deadline or child.poll() is not None:
                return {"error": "the consumer never received a warm-up record"}
        time.sleep(0.2)
        send, poll, pack, clock = p.produce, p.poll, _STAMP.pack, time.monotonic_ns
        start = time.perf_counter()
        i = 0
        while i < n:
            due = min(n, int((time.perf_counter() - start) * rate) + 1)
            while i < due:
                send(topic, pack(b"D", clock()) + pad)
                i += 1
            poll(0)
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        sent_s = time.perf_counter() - start
        p.produce(topic, pack(b"E", clock()) + pad)
        left = p.flush(10)
        out, _ = child.communicate(timeout=max(10, spec["deadline_s"] - sent_s - 10))
        res = json.loads(out.strip().splitlines()[-1])
        res.update({"sent": n, "send_rate": n / sent_s, "failed": failures["count"], "undelivered": left})
        if res.get("received", 0) < n and "error" not in res:
            res["error"] = f"received {res.get('received')} of {n}"
        return res
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def e2e_consumer(spec: dict) -> dict:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    c = Consumer(_conf(spec, **{"group.id": spec["group"], "enable.auto.commit": False}))
    c.assign([TopicPartition(spec["topic"], 0, OFFSET_BEGINNING)])
    lat_ns = []
    ready = False
    deadline = time.monotonic() + spec["deadline_s"] - 5
    unpack, clock, poll = _STAMP.unpack_from, time.monotonic_ns, c.poll
    while time.monotonic() < deadline:
        m = poll(0.1)
        if m is None or m.error() is not None:
            continue
        now = clock()
        kind, sent = unpack(m.value())
        if kind == b"D":
            lat_ns.append(now - sent)
        elif kind == b"W" and not ready:
            ready = True
            print("ready", flush=True)
        elif kind == b"E":
            break
    c.close()
    if not lat_ns:
        return {"received": 0, "error": "no timed record received"}
    lat_ns.sort()

    def pct(q):
        return lat_ns[min(len(lat_ns) - 1, int(q * len(lat_ns)))] / 1e6

    return {"received": len(lat_ns), "p50_ms": pct(0.50), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
            "max_ms": lat_ns[-1] / 1e6}


# -- many connections --------------------------------------------------------------------------------

def many_producers(spec: dict) -> dict:
    """``connections`` producers in this process, each with its own connection, sending
    ``per_connection`` messages of ``size`` bytes round robin; throughput of all of them together."""
    k, per, size, topic = spec["connections"], spec["per_connection"], spec["size"], spec["topic"]
    producers = [_producer(spec, **{"acks": "1", "linger.ms": 5, "batch.size": 1 << 20})
                 for _ in range(k)]
    for p, _ in producers:
        _wait_metadata(p, topic)
    payload = os.urandom(size)
    t0 = time.perf_counter()
    for j in range(per):
        for p, _ in producers:
            try:
                p.produce(topic, payload)
            except BufferError:
                p.poll(0.01)
                p.produce(topic, payload)
        if j % 100 == 99:
            for p, _ in producers:
                p.poll(0)
    left = sum(p.flush(max(1.0, spec["deadline_s"] - (time.perf_counter() - t0) - 10)) for p, _ in producers)
    dt = time.perf_counter() - t0
    failed = sum(f["count"] for _, f in producers)
    out = {"count": k * per, "seconds": dt, "msgs_per_s": k * per / dt, "failed": failed, "undelivered": left}
    if failed or left:
        out["error"] = f"{failed} failed, {left} undelivered: " + str(next((f["first"] for _, f in producers if f["first"]), None))
    return out


# -- kafka-python ------------------------------------------------------------------------------------

def kp_produce(spec: dict) -> dict:
    """kafka-python's KafkaProducer: acks=1, linger_ms=5, batch_size 1,000,000 (1 MiB batches would
    exceed Kafka's default message.max.bytes of 1,000,012, which kafka-python does not cap for us)."""
    from kafka import KafkaProducer
    n, size, topic = spec["count"], spec["size"], spec["topic"]
    p = KafkaProducer(bootstrap_servers=spec["bootstrap"], acks=1, linger_ms=5, batch_size=1_000_000,
                      **_kp_conf(spec))
    p.partitions_for(topic)
    payload = os.urandom(size)
    t0 = time.perf_counter()
    futures = [p.send(topic, payload) for _ in range(n)]
    p.flush(timeout=spec["deadline_s"] - 10)
    dt = time.perf_counter() - t0
    failed = sum(1 for f in futures if f.failed() or not f.is_done)
    p.close()
    out = {"count": n, "seconds": dt, "msgs_per_s": n / dt, "failed": failed}
    if failed:
        out["error"] = f"{failed} of {n} not delivered"
    return out


def kp_consume(spec: dict) -> dict:
    from kafka import KafkaConsumer, TopicPartition
    n, topic = spec["count"], spec["topic"]
    c = KafkaConsumer(bootstrap_servers=spec["bootstrap"], enable_auto_commit=False, group_id=None,
                      **_kp_conf(spec))
    parts = sorted(c.partitions_for_topic(topic) or [0])
    tps = [TopicPartition(topic, p) for p in parts]
    ends, starts = c.end_offsets(tps), c.beginning_offsets(tps)
    retained = sum(ends[tp] - starts[tp] for tp in tps)
    want = min(n, retained)
    got = 0
    t0 = time.perf_counter()
    c.assign(tps)
    c.seek_to_beginning(*tps)
    deadline = t0 + spec["deadline_s"] - 5
    while got < want and time.perf_counter() < deadline:
        for records in c.poll(timeout_ms=200, max_records=10000).values():
            got += len(records)
    dt = time.perf_counter() - t0
    c.close()
    out = {"count": got, "retained": retained, "seconds": dt, "msgs_per_s": got / dt}
    if got < want or not want:
        out["error"] = f"only {got} of {want} records within the deadline"
    elif retained < n:
        out["note"] = f"the broker kept {retained} of the {n} records produced; measured on those"
    return out


def aio_consume(spec: dict) -> dict:
    """kp_consume's reading with aiokafka (its own fetch loop: prefetches per partition in the background)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> dict:
        n, topic = spec["count"], spec["topic"]
        c = AIOKafkaConsumer(bootstrap_servers=spec["bootstrap"], enable_auto_commit=False, group_id=None)
        await c.start()
        try:
            await c.topics()  # metadata for every topic, so that the partitions are known
            parts = sorted(c.partitions_for_topic(topic) or [0])
            tps = [TopicPartition(topic, p) for p in parts]
            ends, starts = await c.end_offsets(tps), await c.beginning_offsets(tps)
            retained = sum(ends[tp] - starts[tp] for tp in tps)
            want = min(n, retained)
            got = 0
            t0 = time.perf_counter()
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            deadline = t0 + spec["deadline_s"] - 5
            while got < want and time.perf_counter() < deadline:
                for records in (await c.getmany(timeout_ms=200, max_records=10000)).values():
                    got += len(records)
            dt = time.perf_counter() - t0
        finally:
            await c.stop()
        out = {"count": got, "retained": retained, "seconds": dt, "msgs_per_s": got / dt}
        if got < want or not want:
            out["error"] = f"only {got} of {want} records within the deadline"
        return out

    return asyncio.run(run())


def _kp_conf(spec: dict) -> dict:
    conf = dict(spec.get("kafka_python_conf", {}))
    if "api_version" in conf:
        conf["api_version"] = tuple(conf["api_version"])
    return conf


def steady_produce(spec: dict) -> dict:
    """``rate`` records of 100 B a second to ``topic`` (acks=all, idempotent) for ``seconds`` after the first
    acknowledgement, which it announces with a line ``acked`` on stdout (the orchestrator then kills the
    partition's leader). Each payload starts with its send time (time.monotonic_ns()); the result lists
    the send and acknowledgement times of every record, for the failover figure."""
    from confluent_kafka import Producer
    topic, rate, seconds = spec["topic"], spec["rate"], spec["seconds"]
    sent_ns, acked_ns, failures = [], [], []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(str(err))
            return
        acked_ns.append(time.monotonic_ns())
        sent_ns.append(_STAMP.unpack_from(msg.value())[1])

    p = Producer(_conf(spec, on_delivery=on_delivery, acks="all", **{"enable.idempotence": True, "linger.ms": 0}))
    _wait_metadata(p, topic)
    pad = b"x" * (100 - _STAMP.size)
    interval = 1.0 / rate
    next_t = time.monotonic()
    end = None
    while end is None or time.monotonic() < end:
        if end is None and acked_ns:
            print("acked", flush=True)
            end = time.monotonic() + seconds
        now = time.monotonic()
        if now >= next_t:
            p.produce(topic, _STAMP.pack(b"s", time.monotonic_ns()) + pad)
            next_t += interval
            if next_t < now - 1.0:  # a stalled producer does not catch up in a burst
                next_t = now
        p.poll(max(0.0, min(next_t - time.monotonic(), 0.01)))
    left = p.flush(30)
    out = {"sent_ns": sent_ns, "acked_ns": acked_ns, "failed": len(failures), "undelivered": left}
    if failures or left:
        out["error"] = f"{len(failures)} failed, {left} undelivered: {failures[:1]}"
    return out


WORKLOADS = {f.__name__: f for f in (produce, fill_partitions, consume, subscribe_first, e2e, e2e_consumer,
                                     many_producers, kp_produce, kp_consume, aio_consume, steady_produce)}


if __name__ == "__main__":
    name, spec = sys.argv[1], json.loads(sys.argv[2])
    try:
        result = WORKLOADS[name](spec)
    except Exception as e:  # noqa: BLE001  reported as the cell's error, the run goes on
        result = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result), flush=True)
