"""The topic store: what the broker must remember about topics across a restart (names, ids, partition
counts, config overrides, and the cluster id and producer-id block kept beside them).

Kafka keeps this in its KRaft metadata log; kbroker keeps, per data directory, a snapshot (one JSON
document, ``metadata.json``) and a change log beside it (``metadata.log``), so that a change costs an
append and one fsync, not a rewrite of every topic (creating 5,000 topics one by one rewrote the whole
document 5,000 times: quadratic).

The document is a dict: ``topics`` maps a name to ``{"id", "partitions", "configs"}``; other top-level keys
(the cluster id, the producer id block) are broker-wide facts. A change is one of

    {"op": "topic", "name": N, "value": {...}}    put a topic (creation, more partitions, new configs)
    {"op": "delete_topic", "name": N}
    {"op": "set", "key": K, "value": V}            a broker-wide fact

Each carries the new value, not a difference, so replaying a change twice gives the same document: that
makes compaction safe without coordination. Compaction writes the whole document as the new snapshot
(temporary file, fsync, rename, fsync of the directory) and then empties the log; a crash between the two
replays the old log over the new snapshot, which changes nothing. It runs when the log has grown past the
snapshot's size (and 1 MiB), so its cost per change stays constant and creating N topics is linear.

The log is lines ``<crc32 of the JSON, 8 hex digits> <JSON>\\n``. Reading stops at the first line that is
incomplete or fails its CRC (a write torn by a crash: the change was never acknowledged) and the file is
cut there. Each append of a batch of changes (one request's) is one write and one fsync.

The snapshot carries a format version: 1 is a snapshot alone (what older kbroker wrote; read unchanged),
2 a snapshot that may have a log beside it. A newer one than we know is refused, so an older kbroker
does not start on a directory whose log it would ignore. The in-memory twin serves ``--storage memory``.
"""

from __future__ import annotations

import copy
import json
import os
import zlib
from pathlib import Path

from .storage.checkpoint import fsync_dir, write_atomically

FORMAT_VERSION = 2
LOG_NAME = "metadata.log"
COMPACT_MIN_BYTES = 1 << 20


def apply_change(doc: dict, change: dict) -> None:
    op = change["op"]
    if op == "topic":
        doc.setdefault("topics", {})[change["name"]] = change["value"]
    elif op == "delete_topic":
        doc.setdefault("topics", {}).pop(change["name"], None)
    elif op == "set":
        doc[change["key"]] = change["value"]
    else:
        raise ValueError(f"unknown metadata change {op!r}")


class TopicStore:
    def load(self) -> dict:
        raise NotImplementedError

    def save(self, doc: dict) -> None:
        """Replace everything with ``doc``."""
        raise NotImplementedError

    def append(self, changes: list[dict]) -> None:
        """Make ``changes`` durable, in order, all or none."""
        raise NotImplementedError


class MemoryTopicStore(TopicStore):
    def __init__(self):
        self._doc: dict = {}

    def load(self) -> dict:
        return copy.deepcopy(self._doc)

    def save(self, doc: dict) -> None:
        self._doc = copy.deepcopy(doc)

    def append(self, changes: list[dict]) -> None:
        for c in changes:
            apply_change(self._doc, copy.deepcopy(c))


def _encode(change: dict) -> bytes:
    body = json.dumps(change, separators=(",", ":"), sort_keys=True).encode()
    return b"%08x " % zlib.crc32(body) + body + b"\n"


class FileTopicStore(TopicStore):
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.log_path = self.path.with_name(LOG_NAME)
        self._doc: dict | None = None   # what load() and the appends since make of the files
        self._log_bytes = 0
        self._snapshot_bytes = 0

    def load(self) -> dict:
        doc: dict = {}
        if self.path.exists():
            text = self.path.read_text()
            self._snapshot_bytes = len(text)
            doc = json.loads(text)
            if doc.get("format_version", 0) > FORMAT_VERSION:
                raise RuntimeError(f"{self.path} was written by a newer kbroker (format {doc['format_version']})")
            doc.pop("format_version", None)
        good = 0
        if self.log_path.exists():
            data = self.log_path.read_bytes()
            while True:
                end = data.find(b"\n", good)
                if end < 0:
                    break
                line = data[good:end]
                crc, _, body = line.partition(b" ")
                try:
                    ok = len(crc) == 8 and int(crc, 16) == zlib.crc32(body)
                    change = json.loads(body) if ok else None
                except ValueError:
                    ok = False
                if not ok:
                    break
                apply_change(doc, change)
                good = end + 1
            if good < len(data):  # a torn tail: the change it held was never acknowledged
                with open(self.log_path, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
        self._log_bytes = good
        self._doc = doc
        return copy.deepcopy(doc)

    def save(self, doc: dict) -> None:
        self._doc = copy.deepcopy(doc)
        self._compact()

    def append(self, changes: list[dict]) -> None:
        if not changes:
            return
        if self._doc is None:
            self.load()
        data = b"".join(_encode(c) for c in changes)
        new_file = not self.log_path.exists()
        with open(self.log_path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if new_file:
            fsync_dir(str(self.log_path.parent))
        for c in changes:
            apply_change(self._doc, copy.deepcopy(c))
        self._log_bytes += len(data)
        if self._log_bytes > max(COMPACT_MIN_BYTES, self._snapshot_bytes):
            self._compact()

    def _compact(self) -> None:
        text = json.dumps(dict(self._doc, format_version=FORMAT_VERSION), indent=1, sort_keys=True)
        write_atomically(str(self.path), text)
        self._snapshot_bytes = len(text)
        if self.log_path.exists() and self._log_bytes:
            with open(self.log_path, "r+b") as f:
                f.truncate(0)
                os.fsync(f.fileno())
        self._log_bytes = 0
