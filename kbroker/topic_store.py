"""The topic store: what the broker must remember about topics across a restart (names, ids, partition
counts, config overrides, and the cluster id and producer-id block kept beside them).

Kafka keeps this in its KRaft metadata log; kbroker keeps one small JSON document per data directory,
replaced atomically (write a temporary file, fsync it, rename it over the old one, fsync the directory),
so a crash leaves either the old or the new document, never half of one. The in-memory twin serves
``--storage memory``. The document carries a format version; a newer one than we know is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .storage.checkpoint import write_atomically

FORMAT_VERSION = 1


class TopicStore:
    def load(self) -> dict:
        raise NotImplementedError

    def save(self, doc: dict) -> None:
        raise NotImplementedError


class MemoryTopicStore(TopicStore):
    def __init__(self):
        self._doc: dict = {}

    def load(self) -> dict:
        return json.loads(json.dumps(self._doc))

    def save(self, doc: dict) -> None:
        self._doc = json.loads(json.dumps(doc))


class FileTopicStore(TopicStore):
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def load(self) -> dict:
        if not self.path.exists():
            return {}
        doc = json.loads(self.path.read_text())
        if doc.get("format_version", 0) > FORMAT_VERSION:
            raise RuntimeError(f"{self.path} was written by a newer kbroker (format {doc['format_version']})")
        return doc

    def save(self, doc: dict) -> None:
        doc = dict(doc, format_version=FORMAT_VERSION)
        write_atomically(str(self.path), json.dumps(doc, indent=1, sort_keys=True))
