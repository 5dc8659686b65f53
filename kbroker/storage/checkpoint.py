"""Small state files written atomically: write a temporary, fsync, rename.

Used for a partition's ``log-start-offset``, ``cleaner-offset-checkpoint`` and
``partition.metadata``, and for a log directory's ``replication-offset-checkpoint`` (every partition's high
watermark, Kafka's format: a version line ``0``, the number of entries, then one ``topic partition offset``
line each).  Each file starts with a format version so a later format can migrate the old one.
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
    "REPLICATION_OFFSET_CHECKPOINT_FILE", "offset_checkpoint_text", "parse_offset_checkpoint",
    "read_offset_checkpoint", "write_offset_checkpoint",
]

LOG_START_OFFSET_FILE = "log-start-offset"
CLEANER_CHECKPOINT_FILE = "cleaner-offset-checkpoint"
PARTITION_METADATA_FILE = "partition.metadata"
REPLICATION_OFFSET_CHECKPOINT_FILE = "replication-offset-checkpoint"
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


def offset_checkpoint_text(offsets: dict[tuple[str, int], int]) -> str:
    """Kafka's offset checkpoint file (CheckpointFile with OffsetCheckpointFile's formatter), version 0."""
    lines = ["0", str(len(offsets))]
    lines.extend(f"{topic} {partition} {offset}" for (topic, partition), offset in sorted(offsets.items()))
    return "\n".join(lines) + "\n"


def parse_offset_checkpoint(text: str, name: str = REPLICATION_OFFSET_CHECKPOINT_FILE) -> dict[tuple[str, int], int]:
    """The entries of an offset checkpoint file; ValueError for another version, a count that does not
    match the entries, or a malformed line (Kafka refuses such a file too)."""
    lines = text.splitlines()
    if len(lines) < 2 or lines[0].strip() != "0":
        raise ValueError(f"unknown {name} format: {lines[:1]}")
    count = int(lines[1])
    entries = [line for line in lines[2:] if line.strip()]
    if count != len(entries):
        raise ValueError(f"{name}: expected {count} entries, found {len(entries)}")
    offsets = {}
    for line in entries:
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f"{name}: malformed entry {line!r}")
        offsets[(fields[0], int(fields[1]))] = int(fields[2])
    return offsets


def read_offset_checkpoint(path: str) -> dict[tuple[str, int], int]:
    """``{(topic, partition): offset}`` of the checkpoint file at ``path``; empty when there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    return parse_offset_checkpoint(text, os.path.basename(path))


def write_offset_checkpoint(path: str, offsets: dict[tuple[str, int], int]) -> None:
    write_atomically(path, offset_checkpoint_text(offsets))


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
