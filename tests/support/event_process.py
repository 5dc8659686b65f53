"""A child process that reports what it does as JSON lines on stdout (the group members and transactional
processors the client tests run): its events are collected as they arrive, and a test waits for one."""

from __future__ import annotations

import json
import os
import subprocess
import threading


class EventProcess:
    """``cmd`` run with unbuffered output; ``events`` fills from its stdout (a line that is not JSON becomes
    ``{"ev": "garbage"}``, the end of the output ``{"ev": "eof"}``) and ``stderr`` keeps its error output."""

    name = "process"

    def __init__(self, cmd: list[str]):
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"ev": "garbage", "line": line}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self.events.append({"ev": "eof"})
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            with self._cond:
                self.stderr.append(line)

    def first_event(self, predicate, timeout: float, what: str) -> dict:
        """The first event (in arrival order) for which ``predicate(event)`` holds, waiting for it; an
        AssertionError naming ``what`` if none comes within ``timeout`` or the output ends first."""
        with self._cond:
            def found():
                return next((e for e in self.events if predicate(e)), None)

            self._cond.wait_for(lambda: found() is not None or self.events[-1:] == [{"ev": "eof"}], timeout)
            event = found()
        if event is None:
            raise AssertionError(f"{self.name}: no {what} within {timeout}s; "
                                 f"events {self.events[-10:]}; stderr {''.join(self.stderr[-30:])}")
        return event

    def events_where(self, predicate) -> list[dict]:
        with self._cond:
            return [e for e in self.events if predicate(e)]

    def kill(self) -> None:
        """SIGKILL: gone without a word to the broker."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
