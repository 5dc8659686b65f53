"""A tiny, independent Kafka wire client: just enough to look at a broker from the outside.

The suite checks what landed on the broker without trusting any client under test, so it speaks three
old, fixed request versions itself (every broker since Kafka 1.0 and Kafka 4 still serve them):

- ApiVersions v0: which APIs the broker advertises (scenarios for unserved features skip on it);
- Metadata v4: partitions, leaders, and whether a topic exists, without auto-creating it;
- Fetch v4: the raw record batches of a partition, whose headers tell the compression codec, the
  producer id and sequence (idempotence) and the transactional and control flags.

Written from the protocol guide, not from kbroker's codec, so a codec bug cannot hide itself.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

CLIENT_ID = b"kbroker-compat-probe"
TIMEOUT_S = 10.0

API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit", 9: "OffsetFetch",
    10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
    15: "DescribeGroups", 16: "ListGroups", 17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics",
    20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId", 23: "OffsetForLeaderEpoch",
    24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 27: "WriteTxnMarkers",
    28: "TxnOffsetCommit", 29: "DescribeAcls", 30: "CreateAcls", 31: "DeleteAcls", 32: "DescribeConfigs",
    33: "AlterConfigs", 35: "DescribeLogDirs", 36: "SaslAuthenticate", 37: "CreatePartitions",
    42: "DeleteGroups", 44: "IncrementalAlterConfigs", 47: "OffsetDelete", 50: "DescribeUserScramCredentials",
    51: "AlterUserScramCredentials", 57: "UpdateFeatures", 60: "DescribeCluster", 61: "DescribeProducers",
    65: "DescribeTransactions", 66: "ListTransactions", 68: "ConsumerGroupHeartbeat",
    69: "ConsumerGroupDescribe", 71: "GetTelemetrySubscriptions", 72: "PushTelemetry",
    74: "ListConfigResources", 75: "DescribeTopicPartitions",
}

# Record batch v2 attributes (KIP-98): bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control.
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
BATCH_HEADER = struct.Struct(">qiiBIhiqqqhii")  # 61 bytes, baseOffset .. recordsCount


class ProtocolError(Exception):
    pass


@dataclass
class Batch:
    base_offset: int
    last_offset: int
    magic: int
    codec: str
    transactional: bool
    control: bool
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int
    max_timestamp: int


@dataclass
class PartitionInfo:
    error_code: int
    leader: int


@dataclass
class TopicInfo:
    error_code: int
    partitions: dict[int, PartitionInfo] = field(default_factory=dict)


@dataclass
class ClusterInfo:
    brokers: dict[int, tuple[str, int]]
    controller_id: int
    cluster_id: str | None
    topics: dict[str, TopicInfo]


class _Reader:
    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str):
        s = struct.Struct(">" + fmt)
        vals = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return vals if len(vals) > 1 else vals[0]

    def string(self) -> str | None:
        n = self.take("h")
        if n < 0:
            return None
        v = self.buf[self.pos:self.pos + n].decode()
        self.pos += n
        return v

    def bytes_(self) -> bytes | None:
        n = self.take("i")
        if n < 0:
            return None
        v = self.buf[self.pos:self.pos + n]
        self.pos += n
        return v


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Connection:
    """One socket to one broker; requests are sent and answered one at a time."""

    def __init__(self, host: str, port: int, timeout_s: float = TIMEOUT_S):
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.correlation_id = 0

    @classmethod
    def to(cls, address: str) -> Connection:
        host, port = address.rsplit(":", 1)
        return cls(host.strip("[]"), int(port))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, api_key: int, api_version: int, body: bytes) -> _Reader:
        self.correlation_id += 1
        header = struct.pack(">hhih", api_key, api_version, self.correlation_id, len(CLIENT_ID)) + CLIENT_ID
        frame = header + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self._recv(4))[0]
        r = _Reader(self._recv(size))
        if r.take("i") != self.correlation_id:
            raise ProtocolError("correlation id mismatch")
        return r

    def _recv(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(min(n, 1 << 20))
            if not chunk:
                raise ProtocolError("connection closed by the broker")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    # -- the three requests ----------------------------------------------------

    def api_versions(self) -> dict[int, tuple[int, int]]:
        r = self.request(18, 0, b"")
        error = r.take("h")
        if error:
            raise ProtocolError(f"ApiVersions error {error}")
        return {key: (lo, hi) for key, lo, hi in (r.take("hhh") for _ in range(r.take("i")))}

    def metadata(self, topics: list[str] | None, allow_auto_create: bool = False) -> ClusterInfo:
        body = struct.pack(">i", -1) if topics is None else (
            struct.pack(">i", len(topics)) + b"".join(_str(t) for t in topics))
        r = self.request(3, 4, body + struct.pack(">?", allow_auto_create))
        r.take("i")  # throttle
        brokers = {}
        for _ in range(r.take("i")):
            node = r.take("i")
            host = r.string()
            port = r.take("i")
            r.string()  # rack
            brokers[node] = (host, port)
        cluster_id = r.string()
        controller = r.take("i")
        out = {}
        for _ in range(r.take("i")):
            err = r.take("h")
            name = r.string()
            r.take("?")
            info = TopicInfo(err)
            for _ in range(r.take("i")):
                perr, index, leader = r.take("hii")
                for _ in range(2):  # replicas, isr
                    n = r.take("i")
                    r.pos += 4 * n
                info.partitions[index] = PartitionInfo(perr, leader)
            out[name] = info
        return ClusterInfo(brokers, controller, cluster_id, out)

    def fetch(self, topic: str, partition: int, offset: int, isolation_level: int = 0,
              max_bytes: int = 16 << 20) -> tuple[int, int, int, bytes]:
        """One Fetch v4; returns (error_code, high_watermark, last_stable_offset, records)."""
        body = struct.pack(">iiiib", -1, 100, 0, max_bytes, isolation_level)
        body += struct.pack(">i", 1) + _str(topic) + struct.pack(">iiqi", 1, partition, offset, max_bytes)
        r = self.request(1, 4, body)
        r.take("i")
        for _ in range(r.take("i")):
            r.string()
            for _ in range(r.take("i")):
                _, err, hw, lso = r.take("ihqq")
                n_aborted = r.take("i")
                if n_aborted > 0:
                    r.pos += 16 * n_aborted
                return err, hw, lso, r.bytes_() or b""
        raise ProtocolError("empty Fetch response")


def parse_batches(records: bytes) -> list[Batch]:
    """Headers of the whole batches in a Fetch response's records (a partial last batch is dropped)."""
    out, pos = [], 0
    while len(records) - pos >= BATCH_HEADER.size:
        (base, length, _epoch, magic, _crc, attrs, last_delta, _first_ts, max_ts, pid, pepoch, seq,
         count) = BATCH_HEADER.unpack_from(records, pos)
        if pos + 12 + length > len(records):
            break
        out.append(Batch(base, base + last_delta, magic, CODECS.get(attrs & 7, f"codec-{attrs & 7}"),
                         bool(attrs & 0x10), bool(attrs & 0x20), pid, pepoch, seq, count, max_ts))
        pos += 12 + length
    return out


def leader_address(bootstrap: str, topic: str, partition: int) -> str:
    with Connection.to(bootstrap.split(",")[0]) as c:
        md = c.metadata([topic])
    info = md.topics.get(topic)
    if info is None or partition not in info.partitions:
        raise ProtocolError(f"{topic}-{partition} not in metadata")
    host, port = md.brokers[info.partitions[partition].leader]
    return f"{host}:{port}"


def read_batches(bootstrap: str, topic: str, partition: int, isolation_level: int = 0) -> list[Batch]:
    """Every batch of a partition from offset 0 to the high watermark, as the broker stores it."""
    batches: list[Batch] = []
    with Connection.to(leader_address(bootstrap, topic, partition)) as c:
        offset = 0
        while True:
            err, hw, _lso, records = c.fetch(topic, partition, offset, isolation_level)
            if err:
                raise ProtocolError(f"Fetch {topic}-{partition}@{offset}: error {err}")
            got = parse_batches(records)
            batches.extend(b for b in got if b.last_offset >= offset)
            if not got or got[-1].last_offset + 1 >= hw:
                return batches
            offset = got[-1].last_offset + 1


def api_versions(bootstrap: str) -> dict[int, tuple[int, int]]:
    with Connection.to(bootstrap.split(",")[0]) as c:
        return c.api_versions()


def topic_state(bootstrap: str, topic: str) -> TopicInfo | None:
    """The topic as Metadata shows it, without asking the broker to create it; None if unknown."""
    with Connection.to(bootstrap.split(",")[0]) as c:
        info = c.metadata([topic], allow_auto_create=False).topics.get(topic)
    if info is None or info.error_code == 3:  # UNKNOWN_TOPIC_OR_PARTITION
        return None
    return info
