"""Running an out-of-process client: bounded in time, its output kept for the failure message.

A client is either run once per operation (``run_json``) or kept running and fed one operation per
line (``serve_json``, through a ``DriverPool``): the same JSON argument and answer either way.
"""

from __future__ import annotations

import atexit
import json
import queue
import subprocess
import threading
import time

from .base import ClientError

STDERR_KEPT = 64 * 1024  # bytes of a long-lived driver's stderr kept for the next failure message
STOP_S = 10.0  # how long a long-lived driver has to exit once its stdin is closed


def run(cmd: list[str], input_bytes: bytes | None = None, timeout_s: float = 60.0, env=None,
        cwd=None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, input=input_bytes, capture_output=True, timeout=timeout_s, env=env, cwd=cwd,
                              check=False)
    except subprocess.TimeoutExpired as e:
        tail = (e.stderr or b"")[-2000:].decode(errors="replace")
        raise ClientError("TIMEOUT", f"{cmd[0]} did not finish in {timeout_s:.0f} s; stderr: {tail}") from None


def run_json(cmd: list[str], arg: dict, timeout_s: float = 60.0, env=None, cwd=None):
    """A driver taking one JSON argument and printing one JSON line: {"ok": true, "result": ...} or
    {"ok": false, "error": {"kind": ..., "message": ...}}.

    The drivers take the argument from argv or, as here, from stdin: a large record does not fit in
    one command-line argument (Linux caps one at 128 KiB).
    """
    p = run(cmd, json.dumps(arg).encode(), timeout_s=timeout_s, env=env, cwd=cwd)
    lines = [line for line in p.stdout.decode(errors="replace").splitlines() if line.startswith("{")]
    if not lines:
        raise ClientError("OTHER", f"{cmd[0]} exited {p.returncode} without an answer; "
                                   f"stderr: {p.stderr.decode(errors='replace')[-2000:]}")
    return _result(json.loads(lines[-1]))


def _result(answer: dict):
    """The result of a driver's answer, or its error as a ClientError."""
    if not answer.get("ok"):
        err = answer.get("error") or {}
        raise ClientError(err.get("kind") or "OTHER", err.get("message") or str(err))
    return answer.get("result")


class Driver:
    """One long-lived driver process: an operation is a JSON line on its stdin, its answer the next
    line starting with ``{`` on its stdout. Its stderr since the last answer is kept for the failure
    message of the operation in flight."""

    def __init__(self, cmd: list[str]):
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr = bytearray()
        self._stderr_lock = threading.Lock()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            if line.startswith(b"{"):
                self._lines.put(line)
        self._lines.put(None)  # end of file: the driver has exited

    def _read_stderr(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            with self._stderr_lock:
                self._stderr += chunk
                del self._stderr[:-STDERR_KEPT]

    def _stderr_tail(self) -> str:
        with self._stderr_lock:
            return self._stderr[-2000:].decode(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, arg: dict, timeout_s: float):
        """The driver's answer to ``arg``. If the driver dies or overruns ``timeout_s`` it is stopped and the
        operation fails with the driver's stderr; a driver that answered, even with an error, stays usable."""
        try:
            self.proc.stdin.write(json.dumps(arg).encode() + b"\n")
            self.proc.stdin.flush()
            line = self._lines.get(timeout=timeout_s)
        except (BrokenPipeError, queue.Empty) as e:
            timed_out = isinstance(e, queue.Empty)
            self.stop(wait_s=0 if timed_out else STOP_S)
            if timed_out:
                raise ClientError("TIMEOUT", f"{self.cmd[0]} did not answer in {timeout_s:.0f} s; "
                                             f"stderr: {self._stderr_tail()}") from None
            line = None
        if line is None:
            self.proc.wait(STOP_S)
            raise ClientError("OTHER", f"{self.cmd[0]} exited {self.proc.returncode} without an answer; "
                                       f"stderr: {self._stderr_tail()}")
        with self._stderr_lock:
            self._stderr.clear()
        return _result(json.loads(line))

    def stop(self, wait_s: float = STOP_S) -> None:
        """Close its stdin (the driver exits at end of input); kill it if it has not exited in ``wait_s``."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class DriverPool:
    """Long-lived drivers for one command, started on demand: an operation takes an idle driver or starts
    one, so operations running at the same time (on several threads) each have their own process."""

    def __init__(self, cmd: list[str]):
        self.cmd = cmd
        self._idle: list[Driver] = []
        self._all: list[Driver] = []
        self._lock = threading.Lock()

    def call(self, arg: dict, timeout_s: float):
        driver = None
        with self._lock:
            while self._idle and driver is None:
                driver = self._idle.pop()
                if not driver.alive():  # it died between operations: no operation of its to fail
                    self._all.remove(driver)
                    driver = None
        if driver is None:
            driver = Driver(self.cmd)
            with self._lock:
                self._all.append(driver)
        try:
            return driver.call(arg, timeout_s)
        except ClientError:
            raise  # the driver answered, or Driver.call stopped it
        except BaseException:  # interrupted mid-operation (a test timeout): its answer would go to the next one
            driver.stop(wait_s=0)
            raise
        finally:
            with self._lock:
                if driver.alive():
                    self._idle.append(driver)
                else:
                    self._all.remove(driver)

    def close(self) -> None:
        with self._lock:
            drivers, self._all, self._idle = self._all, [], []
        deadline = time.monotonic() + STOP_S
        for d in drivers:
            try:
                d.proc.stdin.close()
            except OSError:
                pass
        for d in drivers:
            d.stop(wait_s=max(0.0, deadline - time.monotonic()))


_POOLS: dict[tuple[str, ...], DriverPool] = {}
_POOLS_LOCK = threading.Lock()


def serve_json(cmd: list[str], arg: dict, timeout_s: float = 60.0):
    """``run_json`` for a driver that serves one operation per line (``cmd`` starts it in that mode): the
    process is started on the first operation and kept for the next ones, and stopped when this Python
    process exits."""
    with _POOLS_LOCK:
        pool = _POOLS.get(tuple(cmd))
        if pool is None:
            pool = _POOLS[tuple(cmd)] = DriverPool(cmd)
    return pool.call(arg, timeout_s)


@atexit.register
def close_drivers() -> None:
    """Stop every long-lived driver (also run at exit)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()
