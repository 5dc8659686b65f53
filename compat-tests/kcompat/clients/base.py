"""What every client adapter offers, and the few types the scenarios and adapters share.

An adapter drives one stock client the way that client's users do (its documented producer, consumer
and admin calls, with its defaults unless a scenario needs otherwise). Scenarios call only the
operations below; an operation a client cannot do raises ``Unsupported`` with the reason, and the
scenario turns it into a skip. Everything else a client raises is the client's real answer.

Records are ``Rec`` both ways. Keys, values and header values are bytes; header names are str.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TIMEOUT_S = 20.0  # per operation; small message counts finish far sooner


@dataclass(frozen=True)
class Rec:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int | None = None  # CreateTime in ms; None: the client's clock
    partition: int | None = None  # None: the client's partitioner decides
    offset: int | None = None  # filled in on records read back

    def content(self) -> tuple:
        return (self.key, self.value)


@dataclass
class Cluster:
    brokers: list[tuple[str, int]]
    topics: dict[str, int] = field(default_factory=dict)  # name -> partition count


class Unsupported(Exception):
    """The client has no way to do this operation (a property of the client, not of the broker)."""


class ClientError(Exception):
    """The client reported an error; ``kind`` is the Kafka error name when it could be told.

    Kinds the scenarios look for: MESSAGE_TOO_LARGE, UNKNOWN_TOPIC_OR_PARTITION, TIMEOUT; anything
    else is OTHER.
    """

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


ERROR_CODES = {
    3: "UNKNOWN_TOPIC_OR_PARTITION", 7: "REQUEST_TIMED_OUT", 10: "MESSAGE_TOO_LARGE",
    35: "UNSUPPORTED_VERSION", 36: "TOPIC_ALREADY_EXISTS", 76: "UNSUPPORTED_COMPRESSION_TYPE",
    87: "INVALID_RECORD",
}

_PATTERNS = [
    ("MESSAGE_TOO_LARGE", r"too.?large|MESSAGE_TOO_LARGE|MSG_SIZE_TOO_LARGE|RecordTooLarge"),
    ("UNKNOWN_TOPIC_OR_PARTITION",
     r"unknown.?topic|unknown.?partition|does not host this topic|UNKNOWN_TOPIC|not present in metadata"
     r"|topic.*not exist"),
    ("TIMEOUT", r"timed?.?out|timeout"),
]


def settled(assignments: list[set[int]], partitions: int) -> bool:
    """Both group members own partitions, none twice, all of them: the rebalance has finished (a member
    keeps showing its old assignment until it has rejoined)."""
    a, b = assignments
    return bool(a) and bool(b) and not (a & b) and (a | b) == set(range(partitions))


def classify(message: str, code: int | None = None) -> str:
    """The Kafka error name for a client's error message (and broker error code, when known)."""
    if code is not None and code in ERROR_CODES:
        return ERROR_CODES[code]
    for kind, pattern in _PATTERNS:
        if re.search(pattern, message, re.IGNORECASE):
            return kind
    return "OTHER"


class Adapter:
    """One stock client. Subclasses set the class attributes and implement what the client can do."""

    name = "?"
    language = "?"
    partitioner = "murmur2"  # the default partitioner's rule for keyed records (see partitioners.py)
    consume_needs_group = False  # True: the client can only consume as a consumer-group member
    kip848 = False  # True: the *_kip848 group operations speak the KIP-848 consumer group protocol
    # Operations for which the client sends one fixed request version whatever the broker advertises:
    # {method name: (api key, version, why)}. Where the broker does not serve that version (Kafka 4
    # dropped many old ones, KIP-896) the operation skips with the reason instead of failing.
    pinned: dict[str, tuple[int, int, str]] = {}

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    # -- availability ------------------------------------------------------------

    @classmethod
    def missing(cls) -> str | None:
        """Why this client cannot run on this machine, or None when it can."""
        return None

    @classmethod
    def version(cls) -> str:
        return "?"

    @classmethod
    def codecs(cls) -> tuple[str, ...]:
        """Compression codecs this client can produce and consume here."""
        return ("none", "gzip", "snappy", "lz4", "zstd")

    @classmethod
    def codec_unusable(cls, codec: str) -> str | None:
        """Why this client cannot use ``codec`` here, or None."""
        if codec not in cls.codecs():
            return f"{cls.name} has no {codec} codec on this machine (its codec library is not installed)"
        return None

    def unsupported(self, what: str) -> Unsupported:
        return Unsupported(f"{self.name}: {what}")

    # -- cluster and admin -------------------------------------------------------

    def cluster(self, topics: list[str]) -> Cluster:
        raise self.unsupported("no way to read cluster metadata")

    def create_topic(self, topic: str, partitions: int, configs: dict[str, str] | None = None) -> None:
        raise self.unsupported("no admin API to create topics")

    def delete_topic(self, topic: str) -> None:
        raise self.unsupported("no admin API to delete topics")

    def describe_topic_configs(self, topic: str) -> dict[str, str]:
        raise self.unsupported("no admin API to describe configs")

    def alter_topic_configs(self, topic: str, configs: dict[str, str]) -> None:
        raise self.unsupported("no admin API to alter configs")

    def list_groups(self) -> set[str]:
        raise self.unsupported("no admin API to list groups")

    def describe_group(self, group: str) -> dict:
        """{"state": str, "members": int} as the client reports them."""
        raise self.unsupported("no admin API to describe groups")

    # -- producing ---------------------------------------------------------------

    def produce(self, topic: str, records: list[Rec], compression: str = "none", idempotent: bool | None = None,
                timeout_s: float = TIMEOUT_S) -> None:
        """Send and wait for every acknowledgement (acks=all); ``ClientError`` if any failed.

        ``idempotent=None`` keeps the client's default; True or False sets it explicitly.
        """
        raise NotImplementedError

    def produce_transactions(self, topic: str, committed: list[Rec], aborted: list[Rec], transactional_id: str,
                             timeout_s: float = TIMEOUT_S) -> None:
        """One transaction with ``committed``, committed; then one with ``aborted``, aborted."""
        raise self.unsupported("no transactional producer")

    # -- consuming ---------------------------------------------------------------

    def consume_from_beginning(self, topic: str, count: int, read_committed: bool = False,
                               timeout_s: float = TIMEOUT_S) -> list[Rec]:
        """Every partition from its earliest offset, without committing, until ``count`` records."""
        raise NotImplementedError

    def offsets_for_times(self, topic: str, partitions: int, timestamp_ms: int) -> dict[int, int | None]:
        """The earliest offset whose timestamp is >= timestamp_ms, per partition; None when there is none."""
        raise self.unsupported("no offsets-for-times lookup")

    def group_consume(self, topic: str, group: str, count: int, timeout_s: float = TIMEOUT_S) -> list[Rec]:
        """Join ``group`` subscribed to ``topic`` (earliest when no offset is committed), take ``count``
        records, commit the position after exactly those records, and leave the group."""
        raise self.unsupported("no consumer-group consumer")

    def group_consume_kip848(self, topic: str, group: str, count: int, timeout_s: float = TIMEOUT_S) -> list[Rec]:
        """``group_consume`` with the consumer group protocol of KIP-848 (``group.protocol=consumer``:
        ConsumerGroupHeartbeat, assignment by the broker) instead of JoinGroup/SyncGroup."""
        raise self.no_kip848()

    def group_rebalance_kip848(self, topic: str, group: str, partitions: int,
                               timeout_s: float = TIMEOUT_S) -> tuple[list[set[int]], set[int]]:
        """``group_rebalance`` with the consumer group protocol of KIP-848."""
        raise self.no_kip848()

    @staticmethod
    def no_kip848() -> Unsupported:
        # One reason for every such client (not prefixed with its name), so the matrix shows one footnote.
        return Unsupported("this client has no consumer for the KIP-848 group protocol (group.protocol=consumer); "
                           "the java, confluent-kafka and franz-go columns run it")

    def word_count(self, input_topic: str, output_topic: str, application_id: str, expected: dict[str, int],
                   timeout_s: float = 60.0) -> dict[str, int]:
        """A Kafka Streams word count with processing.guarantee=exactly_once_v2 from ``input_topic`` to
        ``output_topic``, run until the output holds ``expected``; returns the last count per word seen."""
        raise Unsupported("Kafka Streams is a Java library: only the java column runs it")

    def group_rebalance(self, topic: str, group: str, partitions: int,
                        timeout_s: float = TIMEOUT_S) -> tuple[list[set[int]], set[int]]:
        """Two members join ``group`` subscribed to ``topic`` (with ``partitions`` partitions); returns
        (both members' assignments once they have settled, see ``settled``; the first member's
        assignment after the second left, waited for until it holds every partition). On a timeout the
        last assignments seen are returned, for the scenario to report.)"""
        raise self.unsupported("no way to run two group members and observe their assignments")
