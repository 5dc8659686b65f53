"""Building a Go client driver in module mode: its go.mod and go.sum pin the client, the modules come
from the Go module proxy into Go's own module cache (outside git), and the binary goes to
compat-tests/.build, rebuilt only when its source, go.mod or go.sum, or the package the drivers share
(go/driver), is newer."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from pathlib import Path

GO_DIR = Path(__file__).resolve().parents[2] / "go"
BUILD = GO_DIR.parent / ".build"
BUILD_TIMEOUT_S = 600  # the first build downloads and compiles the client and its dependencies


def go_env() -> dict:
    # GOFLAGS cleared: a user's -mod=vendor or similar must not change what is built. GOTOOLCHAIN=local:
    # never download another Go; an older Go says so in the build error instead.
    return dict(os.environ, GOFLAGS="", GOTOOLCHAIN="local", CGO_ENABLED="0")


def binary(name: str) -> Path:
    return BUILD / f"{name}-driver"


def build(name: str) -> str | None:
    """Build go/<name> if its binary is missing or stale; the reason it cannot be, or None."""
    go = shutil.which("go")
    if go is None:
        return "Go is not installed (the Go toolchain from go.dev or Debian's golang-go)"
    src = GO_DIR / name
    out = binary(name)
    BUILD.mkdir(exist_ok=True)
    with open(BUILD / f"{name}.lock", "w") as lock:  # pytest-xdist workers build it once between them
        fcntl.flock(lock, fcntl.LOCK_EX)
        sources = (src / "main.go", src / "go.mod", src / "go.sum", *(GO_DIR / "driver").iterdir())
        newest = max(p.stat().st_mtime for p in sources)
        if out.exists() and out.stat().st_mtime >= newest:
            return None
        try:
            p = subprocess.run([go, "build", "-o", f"{out}.tmp", "."], cwd=src, env=go_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"building the {name} driver took over {BUILD_TIMEOUT_S // 60} minutes"
        if p.returncode:
            return f"the {name} driver does not build (go build in go/{name}): {p.stdout.decode(errors='replace')[-800:]}"
        os.replace(f"{out}.tmp", out)
    return None


def module_version(name: str, module: str) -> str:
    """The version go.mod pins for ``module``."""
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", (GO_DIR / name / "go.mod").read_text(), re.M)
    return m.group(1) if m else "?"


def go_version() -> str:
    try:
        text = subprocess.run(["go", "version"], capture_output=True, timeout=10).stdout.decode()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(r"go(\d+\.\d+(\.\d+)?)", text)
    return m.group(1) if m else "?"
