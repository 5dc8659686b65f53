"""Small state files written atomically: write a temporary, fsync, rename.

Used for a partition's ``log-start-offset``, ``cleaner-offset-checkpoint`` and
``partition.metadata``.  Each
file starts with a format version so a later format can migrate the old one.
"""

from __future__ import annotations

import base64
import os
import uuid

__all__ = [
    "write_atomically", "fsync_dir",
    "read_log_start_offset", "write_log_start_offset",
    "read_topic_id", "write_topic_id", "topic_id_file_text",
    "read_cleaner_checkpoint", "write_cleaner_checkpoint",
]

LOG_START_OFFSET_FILE = "log-start-offset"
CLEANER_CHECKPOINT_FILE = "cleaner-offset-checkpoint"
PARTITION_METADATA_FILE = "partition.metadata"
TMP_SUFFIX = ".tmp"


def fsync_dir(path: str) -> None:
    """Make renames and new files in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, data: str | bytes) -> None:
    """Replace the file at ``path`` with ``data`` so that a crash leaves the old or the new file."""
    tmp = str(path) + TMP_SUFFIX
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def _read_offset(directory: str, name: str) -> int | None:
    """Format version 0: a line ``0`` then a line with the offset."""
    try:
        with open(os.path.join(directory, name), encoding="ascii") as f:
            lines = f.read().split()
    except FileNotFoundError:
        return None
    if len(lines) != 2 or lines[0] != "0":
        raise ValueError(f"unknown {name} format in {directory}: {lines[:2]}")
    return int(lines[1])


def read_log_start_offset(directory: str) -> int | None:
    """The checkpointed log start offset; None when there is none."""
    return _read_offset(directory, LOG_START_OFFSET_FILE)


def write_log_start_offset(directory: str, offset: int) -> None:
    write_atomically(os.path.join(directory, LOG_START_OFFSET_FILE), f"0\n{offset}\n")


def read_cleaner_checkpoint(directory: str) -> int | None:
    """The offset below which compaction last cleaned the partition; None when never."""
    return _read_offset(directory, CLEANER_CHECKPOINT_FILE)


def write_cleaner_checkpoint(directory: str, offset: int) -> None:
    write_atomically(os.path.join(directory, CLEANER_CHECKPOINT_FILE), f"0\n{offset}\n")


def _kafka_uuid(topic_id: uuid.UUID) -> str:
    # Kafka prints a Uuid as URL-safe base64 without padding.
    return base64.urlsafe_b64encode(topic_id.bytes).decode("ascii").rstrip("=")


def read_topic_id(directory: str) -> uuid.UUID | None:
    """The topic id in ``partition.metadata`` (Kafka's format), or None."""
    try:
        with open(os.path.join(directory, PARTITION_METADATA_FILE), encoding="ascii") as f:
            fields = dict(line.split(": ", 1) for line in f.read().splitlines() if ": " in line)
    except FileNotFoundError:
        return None
    if fields.get("version") != "0" or "topic_id" not in fields:
        raise ValueError(f"unknown {PARTITION_METADATA_FILE} format in {directory}")
    raw = fields["topic_id"].strip()
    return uuid.UUID(bytes=base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


def topic_id_file_text(topic_id: uuid.UUID) -> str:
    return f"version: 0\ntopic_id: {_kafka_uuid(topic_id)}\n"


def write_topic_id(directory: str, topic_id: uuid.UUID) -> None:
    write_atomically(os.path.join(directory, PARTITION_METADATA_FILE), topic_id_file_text(topic_id))
