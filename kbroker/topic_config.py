"""Per-topic configuration: Kafka's names, types, defaults and validation.

A topic stores only its overrides; the effective value of a key is the override, else the broker-wide
default (``log.*`` and friends in Kafka), else Kafka's default. DescribeConfigs reports which one applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .errors import ErrorCode, KafkaError

LONG_MAX = 9223372036854775807
INT_MAX = 2147483647


@dataclass(frozen=True)
class ConfigDef:
    name: str
    type: str  # long | int | string | list | boolean | double | class
    default: str
    broker_key: str | None = None  # the broker setting that supplies the default
    check: Callable[[str], bool] | None = None
    doc: str = ""
    why: str = ""  # said after Kafka's "Invalid value ... for configuration ...:" when the check fails
    # False for a key Apache Kafka does not have (Confluent Server's): accepted, but listed by CreateTopics
    # and DescribeConfigs only where the topic sets it, so the answers stay Kafka's.
    listed: bool = True


def _at_least(lo: int) -> Callable[[str], bool]:
    """ConfigDef.Range.atLeast, and its refusal."""
    def check(v: str) -> bool:
        return int(v) >= lo
    check.why = f"Value must be at least {lo}"
    return check


def _one_of(*choices: str) -> Callable[[str], bool]:
    """ConfigDef.ValidString.in: its refusal names the choices in their order."""
    def check(v: str) -> bool:
        return v in choices
    check.why = "String must be one of: " + ", ".join(choices)
    return check


def _list_of(*choices: str) -> Callable[[str], bool]:
    """ConfigDef.ValidList.in; Kafka 4 accepts an empty list (an IncrementalAlterConfigs SUBTRACT of every value
    leaves one). Its refusal names the first element that is not a choice."""
    def check(v: str) -> bool:
        return v.strip() == "" or all(x.strip() in choices for x in v.split(","))
    check.why = "String must be one of: " + ", ".join(choices)
    check.element = lambda v: next(x.strip() for x in v.split(",") if x.strip() not in choices)
    return check


def _throttled_replicas(v: str) -> bool:
    """ThrottledReplicaListValidator: "*", or partitionId:brokerId pairs (an empty list too)."""
    items = [x.strip() for x in v.split(",")]
    if v.strip() in ("", "*"):
        return True
    return all(len(x.split(":")) == 2 and all(p.strip().isdigit() for p in x.split(":")) for x in items)


_NO_TIERED_STORAGE = ("Tiered Storage functionality is disabled in the broker. Topic cannot be configured with "
                      "remote log storage.")


def _throttled_why(name: str) -> str:
    return (f"{name} must be the literal '*' or a list of replicas in the following format: "
            f"[partitionId]:[brokerId],[partitionId]:[brokerId],...")


def _ratio(v: str) -> bool:
    return 0.0 <= float(v) <= 1.0


TOPIC_CONFIGS: dict[str, ConfigDef] = {c.name: c for c in [
    ConfigDef("cleanup.policy", "list", "delete", "log.cleanup.policy", _list_of("compact", "delete"),
              "Retention policy for old segments: delete, compact, or both."),
    ConfigDef("compression.type", "string", "producer", "compression.type",
              _one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
              "Final compression of the topic's data; producer keeps the producer's codec."),
    ConfigDef("delete.retention.ms", "long", "86400000", "log.cleaner.delete.retention.ms", _at_least(0),
              "How long tombstones are kept on compacted topics."),
    ConfigDef("file.delete.delay.ms", "long", "60000", "log.segment.delete.delay.ms", _at_least(0),
              "Time to wait before deleting a file from the filesystem."),
    ConfigDef("flush.messages", "long", str(LONG_MAX), "log.flush.interval.messages", _at_least(1),
              "Force an fsync after this many messages."),
    ConfigDef("flush.ms", "long", str(LONG_MAX), "log.flush.interval.ms", _at_least(0),
              "Force an fsync after this much time."),
    ConfigDef("index.interval.bytes", "int", "4096", "log.index.interval.bytes", _at_least(0),
              "Bytes between offset index entries."),
    ConfigDef("max.compaction.lag.ms", "long", str(LONG_MAX), "log.cleaner.max.compaction.lag.ms", _at_least(1),
              "Longest time a message stays ineligible for compaction."),
    ConfigDef("max.message.bytes", "int", "1048588", "message.max.bytes", _at_least(0),
              "Largest record batch size allowed."),
    ConfigDef("message.timestamp.type", "string", "CreateTime", "log.message.timestamp.type",
              _one_of("CreateTime", "LogAppendTime"), "CreateTime or LogAppendTime."),
    ConfigDef("min.cleanable.dirty.ratio", "double", "0.5", "log.cleaner.min.cleanable.ratio", _ratio,
              "Dirty ratio above which the log is eligible for cleaning."),
    ConfigDef("min.compaction.lag.ms", "long", "0", "log.cleaner.min.compaction.lag.ms", _at_least(0),
              "Shortest time a message stays uncompacted."),
    ConfigDef("min.insync.replicas", "int", "1", "min.insync.replicas", _at_least(1),
              "Minimum in-sync replicas for acks=all."),
    ConfigDef("retention.bytes", "long", "-1", "log.retention.bytes", None,
              "Maximum size of a partition before old segments are discarded."),
    ConfigDef("retention.ms", "long", "604800000", "log.retention.ms", _at_least(-1),
              "Longest time a segment is kept before it is discarded."),
    ConfigDef("segment.bytes", "int", "1073741824", "log.segment.bytes", _at_least(14),
              "Segment file size."),
    ConfigDef("segment.index.bytes", "int", "10485760", "log.index.size.max.bytes", _at_least(4),
              "Size of the offset index per segment."),
    ConfigDef("segment.jitter.ms", "long", "0", "log.roll.jitter.ms", _at_least(0),
              "Random jitter subtracted from segment.ms."),
    ConfigDef("segment.ms", "long", "604800000", "log.roll.ms", _at_least(1),
              "Time after which a segment is rolled even if not full."),
    ConfigDef("unclean.leader.election.enable", "boolean", "false", "unclean.leader.election.enable",
              _one_of("true", "false"), "Not used on one broker."),
    ConfigDef("message.timestamp.before.max.ms", "long", str(LONG_MAX), "log.message.timestamp.before.max.ms",
              _at_least(0), "Largest allowed difference of a timestamp before the broker's time."),
    ConfigDef("message.timestamp.after.max.ms", "long", "3600000", "log.message.timestamp.after.max.ms",
              _at_least(0), "Largest allowed difference of a timestamp after the broker's time."),
    # Keys of Kafka 4 that kbroker accepts, validates and shows; they change nothing here (kbroker stores batches as
    # the producer compressed them, and has no tiered storage or dead-letter queues).
    ConfigDef("compression.gzip.level", "int", "-1", "compression.gzip.level",
              lambda v: int(v) == -1 or 1 <= int(v) <= 9, "The gzip level when the broker compresses (-1: default)."),
    ConfigDef("compression.lz4.level", "int", "9", "compression.lz4.level", lambda v: 1 <= int(v) <= 17,
              "The lz4 level when the broker compresses."),
    ConfigDef("compression.zstd.level", "int", "3", "compression.zstd.level", lambda v: -131072 <= int(v) <= 22,
              "The zstd level when the broker compresses."),
    ConfigDef("errors.deadletterqueue.group.enable", "boolean", "false", None, _one_of("true", "false"),
              "Whether share groups may write undeliverable records to a dead-letter queue."),
    ConfigDef("local.retention.bytes", "long", "-2", "log.local.retention.bytes", _at_least(-2),
              "Local retention size with tiered storage (-2: retention.bytes)."),
    ConfigDef("local.retention.ms", "long", "-2", "log.local.retention.ms", _at_least(-2),
              "Local retention time with tiered storage (-2: retention.ms)."),
    ConfigDef("max.decompressed.message.bytes", "int", "2147483639", "max.decompressed.message.bytes",
              _at_least(0), "The largest a record batch may grow when decompressed."),
    ConfigDef("remote.copy.lag.bytes", "long", "-1", "log.remote.copy.lag.bytes", _at_least(-1),
              "Tiered storage: bytes a segment may lag before it is copied."),
    ConfigDef("remote.copy.lag.ms", "long", "0", "log.remote.copy.lag.ms", _at_least(0),
              "Tiered storage: time a segment may lag before it is copied."),
    ConfigDef("remote.log.copy.disable", "boolean", "false", None, _one_of("true", "false"),
              "Tiered storage: stop copying segments to remote storage."),
    ConfigDef("remote.log.delete.on.disable", "boolean", "false", None, _one_of("true", "false"),
              "Tiered storage: delete remote segments when it is turned off."),
    ConfigDef("remote.storage.enable", "boolean", "false", None, _one_of("true", "false"),
              "Tiered storage is not available: true is refused, as Kafka refuses it while "
              "remote.log.storage.system.enable is off."),
    ConfigDef("confluent.key.schema.validation", "boolean", "false", None, _one_of("true", "false"),
              "Refuse records whose key lacks a registered schema id (Confluent Server; schema_registry/).",
              listed=False),
    ConfigDef("confluent.value.schema.validation", "boolean", "false", None, _one_of("true", "false"),
              "Refuse records whose value lacks a registered schema id (Confluent Server; schema_registry/).",
              listed=False),
    ConfigDef("preallocate", "boolean", "false", "log.preallocate", _one_of("true", "false"),
              "Preallocate segment files."),
    # Replication quotas (KIP-73): the replicas whose replication traffic is throttled. Accepted, validated and
    # shown now; they act once kbroker replicates.
    ConfigDef("leader.replication.throttled.replicas", "list", "", None, _throttled_replicas,
              "Replicas throttled on the leader side: partitionId:brokerId pairs, or * for all.",
              _throttled_why("leader.replication.throttled.replicas")),
    ConfigDef("follower.replication.throttled.replicas", "list", "", None, _throttled_replicas,
              "Replicas throttled on the follower side: partitionId:brokerId pairs, or * for all.",
              _throttled_why("follower.replication.throttled.replicas")),
]}


def validate_topic_configs(configs: dict[str, str | None]) -> None:
    """Raise INVALID_CONFIG for an unknown key or a bad value (Kafka's CreateTopics/AlterConfigs answer)."""
    for key, value in configs.items():
        d = TOPIC_CONFIGS.get(key)
        if d is None:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {key}")
        if value is None:
            continue
        if d.type in ("long", "int"):  # ConfigDef.parseType: not a number of the type at all
            try:
                n = int(value.strip())
            except ValueError:
                n = None
            if n is None or not -(LONG_MAX + 1) <= n <= LONG_MAX or (d.type == "int" and abs(n) > INT_MAX + 1):
                raise KafkaError(ErrorCode.INVALID_CONFIG, f"Invalid value {value} for configuration {key}: "
                                 f"Not a number of type {d.type.upper()}")
        try:
            ok = d.check(value) if d.check else True
        except ValueError:
            ok = False
        if ok and key == "remote.storage.enable" and value.strip() == "true":  # LogConfig.validateRemoteStorage...
            raise KafkaError(ErrorCode.INVALID_CONFIG, _NO_TIERED_STORAGE)
        if not ok:
            if d.why:  # Kafka shows a list value as Java prints a list
                shown = "[" + ", ".join(x.strip() for x in value.split(",")) + "]" if d.type == "list" else value
                raise KafkaError(ErrorCode.INVALID_CONFIG, f"Invalid value {shown} for configuration {key}: {d.why}")
            why = getattr(d.check, "why", None)
            if why:
                shown = d.check.element(value) if hasattr(d.check, "element") else value
                raise KafkaError(ErrorCode.INVALID_CONFIG, f"Invalid value {shown} for configuration {key}: {why}")
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"Invalid value {value} for configuration {key}")
