"""Running an out-of-process client: bounded in time, its output kept for the failure message."""

from __future__ import annotations

import json
import subprocess

from .base import ClientError


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
    answer = json.loads(lines[-1])
    if not answer.get("ok"):
        err = answer.get("error") or {}
        raise ClientError(err.get("kind") or "OTHER", err.get("message") or str(err))
    return answer.get("result")
