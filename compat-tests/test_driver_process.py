"""Long-lived drivers (``proc.DriverPool``), as the Java client's driver is run: one process answers
operation after operation, a driver that dies or overruns is replaced and the operation in flight fails
with its stderr, operations at the same time get their own processes, and closing the pool stops them.

Not part of the matrix (no ``client`` fixture). The driver here is a few lines of Python speaking the
same protocol as ``kcompat.Driver --serve``, so these run without Java.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from kcompat.clients.base import ClientError
from kcompat.clients.proc import DriverPool

FAKE_DRIVER = r'''
import json, os, sys, time
for line in sys.stdin:
    arg = json.loads(line)
    op = arg["op"]
    if op == "pid":
        answer = {"ok": True, "result": os.getpid()}
    elif op == "fail":
        answer = {"ok": False, "error": {"kind": "MESSAGE_TOO_LARGE", "message": "too big"}}
    elif op == "die":
        sys.stderr.write("driver exploded\n"); sys.stderr.flush(); os._exit(3)
    elif op == "hang":
        sys.stderr.write("stuck in the operation\n"); sys.stderr.flush(); sys.stdin.read()
    elif op == "meet":  # answers once `arg["n"]` drivers are inside this operation at the same time
        Path = __import__("pathlib").Path
        Path(arg["dir"], str(os.getpid())).touch()
        deadline = time.monotonic() + 20
        while len(list(Path(arg["dir"]).iterdir())) < arg["n"] and time.monotonic() < deadline:
            time.sleep(0.01)
        answer = {"ok": True, "result": len(list(Path(arg["dir"]).iterdir()))}
    print("log line that is not an answer")
    print(json.dumps(answer), flush=True)
'''


@pytest.fixture
def pool():
    p = DriverPool([sys.executable, "-c", FAKE_DRIVER])
    yield p
    p.close()


def test_one_process_answers_every_operation(pool):
    pids = {pool.call({"op": "pid"}, 10) for _ in range(5)}
    assert len(pids) == 1


def test_error_answer_is_a_client_error_and_keeps_the_driver(pool):
    pid = pool.call({"op": "pid"}, 10)
    with pytest.raises(ClientError) as e:
        pool.call({"op": "fail"}, 10)
    assert (e.value.kind, e.value.detail) == ("MESSAGE_TOO_LARGE", "too big")
    assert pool.call({"op": "pid"}, 10) == pid


def test_driver_that_dies_fails_the_operation_with_its_stderr_and_is_replaced(pool):
    pid = pool.call({"op": "pid"}, 10)
    with pytest.raises(ClientError) as e:
        pool.call({"op": "die"}, 10)
    assert e.value.kind == "OTHER"
    assert "exited 3 without an answer" in e.value.detail and "driver exploded" in e.value.detail
    assert pool.call({"op": "pid"}, 10) != pid


def test_driver_that_died_while_idle_is_replaced_without_failing_an_operation(pool):
    pid = pool.call({"op": "pid"}, 10)
    idle = pool._all[0].proc
    idle.kill()
    idle.wait()
    assert pool.call({"op": "pid"}, 10) != pid


def test_driver_that_overruns_is_stopped_and_replaced(pool):
    pid = pool.call({"op": "pid"}, 10)
    with pytest.raises(ClientError) as e:
        pool.call({"op": "hang"}, 0.5)
    assert e.value.kind == "TIMEOUT" and "stuck in the operation" in e.value.detail
    assert pool.call({"op": "pid"}, 10) != pid


def test_operations_at_the_same_time_get_their_own_processes(pool, tmp_path: Path):
    results: list = []

    def meet():
        try:
            results.append(pool.call({"op": "meet", "dir": str(tmp_path), "n": 2}, 30))
        except ClientError as e:
            results.append(e)

    threads = [threading.Thread(target=meet) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [2, 2]  # one process serving both in turn would have seen only itself
    assert len({pool.call({"op": "pid"}, 10) for _ in range(2)}) == 1  # both are idle again; either serves


def test_close_stops_the_drivers(pool):
    pool.call({"op": "pid"}, 10)
    procs = [d.proc for d in pool._all]
    pool.close()
    assert procs and all(p.poll() is not None for p in procs)
