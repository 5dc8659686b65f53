"""The topic store: what the broker must remember about topics across a restart (names, ids, partition
counts, config overrides, and the cluster id and producer-id block kept beside them).

Kafka keeps this in its KRaft metadata log; kbroker keeps it in a state log (``state_log.py``), the file
``.kbroker/topics.journal``, one record per admin request: ``{"changes": [change, ...]}``, where a change is

    {"op": "topic", "name": N, "value": {"id", "partitions", "configs"}}   a topic as it now is
    {"op": "delete_topic", "name": N}
    {"op": "set", "key": K, "value": V}                                    a broker-wide fact

So creating a topic costs one append and one fsync, shared by every topic of the request, not a rewrite of
the whole document (creating 5,000 topics one request after another rewrote it 5,000 times: quadratic). A
change carries the new value, not a difference, so replaying one twice changes nothing. The state log cuts a
torn tail at start-up and compacts the file (one record per live topic and fact) when it has grown well past
what is live, so creating N topics costs O(N) in all.

Data directories written before the journal have ``.kbroker/metadata.json`` (format 1: the whole document,
replaced atomically on every change). It is read at start-up; the first change folds it into the journal (its
content appended as one record, then the file removed; a crash in between leaves both, which load to the same
topics). The in-memory twin serves ``--storage memory``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from .state_log import FileStateLog
from .storage.checkpoint import fsync_dir

LEGACY_FORMAT_VERSION = 1
JOURNAL_NAME = "topics.journal"
MAGIC = b"kbtopics"


def apply_change(doc: dict, change: dict) -> None:
    op = change["op"]
    if op == "topic":
        doc.setdefault("topics", {})[change["name"]] = change["value"]
    elif op == "delete_topic":
        doc.setdefault("topics", {}).pop(change["name"], None)
    elif op == "set":
        doc[change["key"]] = change["value"]
    else:
        raise ValueError(f"unknown topic store change {op!r}")


def document_changes(doc: dict) -> list[dict]:
    """Changes that build ``doc`` from nothing."""
    out = [{"op": "set", "key": k, "value": v} for k, v in doc.items() if k != "topics"]
    out += [{"op": "topic", "name": n, "value": t} for n, t in doc.get("topics", {}).items()]
    return out


class TopicStore:
    def load(self) -> dict:
        raise NotImplementedError

    def append(self, changes: list[dict]) -> None:
        """Make ``changes`` durable, in order, all or none; raises OSError and keeps nothing if it cannot.
        The store keeps the changes' values as its document from then on: the caller gives values it shares
        with nothing (a copy of one as big as a topic of 10,000 partitions cost 150 ms of the event loop)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class MemoryTopicStore(TopicStore):
    def __init__(self):
        self._doc: dict = {}

    def load(self) -> dict:
        return copy.deepcopy(self._doc)

    def append(self, changes: list[dict]) -> None:
        for c in changes:
            apply_change(self._doc, c)


class FileTopicStore(TopicStore):
    def __init__(self, path: str | os.PathLike, *, fsync: bool = True):
        """``path``: the format-1 document (``.kbroker/metadata.json``); the journal goes beside it."""
        self.path = Path(path)
        self.journal_path = self.path.with_name(JOURNAL_NAME)
        self.fsync = fsync
        self._log: FileStateLog | None = None
        self._doc: dict = {}
        self._legacy = False  # metadata.json still to be folded into the journal

    def load(self) -> dict:
        doc: dict = {}
        if self.path.exists():
            doc = json.loads(self.path.read_text())
            if doc.get("format_version", 0) > LEGACY_FORMAT_VERSION:
                raise RuntimeError(f"{self.path} was written by a newer kbroker (format {doc['format_version']})")
            doc.pop("format_version", None)
            self._legacy = True
        if self._log is not None:
            self._log.close()
        self._log = FileStateLog(self.journal_path, MAGIC, fsync=self.fsync)

        def apply(record: dict) -> None:
            for change in record["changes"]:
                apply_change(doc, change)
        self._log.replay(apply)
        self._doc = doc
        self._log.compact_if_due(self._live)
        return copy.deepcopy(doc)

    def _live(self) -> list[dict]:
        return [{"changes": [c]} for c in document_changes(self._doc)]

    def append(self, changes: list[dict]) -> None:
        if not changes:
            return
        if self._log is None:
            self.load()
        if self._legacy:
            self._log.append({"changes": document_changes(self._doc)})
            self.path.unlink()
            fsync_dir(str(self.path.parent))
            self._legacy = False
        self._log.append({"changes": changes})
        for c in changes:
            apply_change(self._doc, c)
        self._log.compact_if_due(self._live)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
