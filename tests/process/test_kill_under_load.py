"""Killing a broker of a cluster in one process while idempotent acks=all producers keep it busy: the requests
it was handling end with it, and none leaves a coroutine behind that was never awaited (Python's
"coroutine ... was never awaited" RuntimeWarning, raised here as an error: a request whose answer task was
cancelled before it ever ran used to leave its unstarted answer coroutine, and the handler's, unawaited)."""

from __future__ import annotations

import gc
import sys
import uuid
import warnings

from kbroker import Broker
from support.history import History
from support.txn_helpers import wait_until
from support.workload import ProducerWorker

TIMEOUT_S = 30
KILLS = 6


def test_kills_under_produce_load_leave_no_unawaited_coroutine():
    from confluent_kafka.admin import AdminClient, NewTopic

    unraisable = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(f"{u.exc_type.__name__}: {u.exc_value} ({u.object!r})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a finalizer's warning becomes an unraisable error
            with Broker(brokers=3, settings={"auto.leader.rebalance.enable": "false"}) as b:
                topic = f"kill-{uuid.uuid4().hex[:8]}"
                admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
                admin.create_topics([NewTopic(topic, 6, 3, config={"min.insync.replicas": "2"})])[topic] \
                    .result(TIMEOUT_S)
                assert b.wait_for_leaders(timeout_s=TIMEOUT_S, full_isr=True)
                history = History()
                producers = [ProducerWorker(history, b.bootstrap_servers, topic, 6, n, **{"linger.ms": 0})
                             .start() for n in range(4)]
                try:
                    for kill in range(KILLS):
                        acked = sum(p.acknowledged() for p in producers)
                        wait_until(lambda: sum(p.acknowledged() for p in producers) >= acked + 300, TIMEOUT_S,
                                   "traffic before the kill")
                        victim = kill % 3
                        b.kill_broker(victim)
                        b.call(gc.collect)  # what the kill let go is finalized now, on the broker's thread
                        b.start_broker(victim)
                        assert b.wait_for_leaders(timeout_s=TIMEOUT_S, full_isr=True)
                finally:
                    for p in producers:
                        p.stop()
            gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert not [u for u in unraisable if "never awaited" in u], unraisable
