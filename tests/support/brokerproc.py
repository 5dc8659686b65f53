"""Start kbroker as a real process on a free port, the way a user would, and stop, restart or kill it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading


class BrokerProcess:
    def __init__(self, data_dir, *extra_args: str, storage: str = "segment", preexec_fn=None):
        """``preexec_fn``: run in the child before kbroker starts (e.g. to lower a resource limit)."""
        self.preexec_fn = preexec_fn
        self.data_dir = str(data_dir)
        self.extra_args = list(extra_args)
        self.storage = storage
        self.proc: subprocess.Popen | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.stderr_lines: list[str] = []
        self._stderr_cond = threading.Condition()

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> "BrokerProcess":
        cmd = [sys.executable, "-m", "kbroker", "serve", "--port", "0", "--data-dir", self.data_dir,
               "--storage", self.storage, *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"), preexec_fn=self.preexec_fn)
        self.stderr_lines = []
        threading.Thread(target=self._drain_stderr, args=(self.proc,), daemon=True).start()
        line = self._read_ready_line(timeout)
        addr = line.rsplit(" ", 1)[1]
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        return self

    def _read_ready_line(self, timeout: float) -> str:
        result: list[str] = []

        def read():
            result.append(self.proc.stdout.readline())

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if not result or not result[0].startswith("kbroker listening on "):
            self.kill()
            raise RuntimeError(f"kbroker did not start: {result!r}\n{''.join(self.stderr_lines)}")
        return result[0].strip()

    def next_stdout_line(self, timeout: float = 10.0) -> str:
        """The next line the broker printed after its ready line (the console's, the Schema Registry's)."""
        result: list[str] = []
        t = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not result:
            raise AssertionError("the broker printed no further line")
        return result[0].strip()

    def _drain_stderr(self, proc) -> None:
        for line in proc.stderr:
            with self._stderr_cond:
                self.stderr_lines.append(line)
                self._stderr_cond.notify_all()

    def wait_for_stderr(self, pattern: str, timeout: float = 10.0):
        """The first match of the regular expression in the broker's log, waiting for it to be written."""
        import re

        rx = re.compile(pattern)
        with self._stderr_cond:
            def found():
                return next((m for m in map(rx.search, self.stderr_lines) if m), None)

            self._stderr_cond.wait_for(lambda: found() is not None, timeout)
            m = found()
        if m is None:
            raise AssertionError(f"no {pattern!r} in the broker's log:\n{''.join(self.stderr_lines)}")
        return m

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, as a service manager would; returns the exit code."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self.proc = None
        return rc

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> "BrokerProcess":
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill() if exc[0] else self.stop()
