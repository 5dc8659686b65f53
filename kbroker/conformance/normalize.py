"""Every rule that makes two brokers' answers comparable, each with its reason. Nothing else is rewritten:
a difference that survives these rules is a finding (fixed in kbroker, or listed in known_differences.py).

An answer is first turned into plain data (``Message.to_dict``); ``normalize`` then walks it with the field
name of each value in hand. The rules, in the order they apply:
"""

from __future__ import annotations

import re
import time
from typing import Any

ZERO_UUID_TEXT = "00000000-0000-0000-0000-000000000000"

# 1. Throttle times: quotas are not configured on either broker, and Kafka reports time actually spent
#    throttled, which depends on the machine's load.
THROTTLE_FIELDS = {"throttle_time_ms"}

# 2. Where the broker is: the address, port and id of a node are chosen by whoever starts it (Kafka runs as
#    node 1 on a free port, kbroker as node 0 on another). The broker's own id becomes "<self>" in every field
#    that names a node; -1 ("none") stays.
ADDRESS_FIELDS = {"host", "port"}
NODE_FIELDS = {"node_id", "leader_id", "controller_id", "broker_id", "coordinator_id", "replica_nodes",
               "isr_nodes", "offline_replicas", "eligible_leader_replicas", "last_known_elr", "leader"}

# 3. Identities generated at random: the cluster id (on format), topic ids (on creation), member ids
#    (Kafka: client id + "-" + UUID), producer ids (from a block the controller hands out), fetch session
#    ids. Each distinct value becomes "<name-N>" in order of first appearance within one scenario, so that
#    "the same id came back" and "a new id was given" still compare.
GENERATED_FIELDS = {"cluster_id": "cluster", "topic_id": "topic-id", "member_id": "member", "leader": "member",
                    "producer_id": "pid", "session_id": "session", "transactional_id_prefix": None}
NOT_GENERATED = {"", None, -1, ZERO_UUID_TEXT}  # and a session_id of 0: "no session"

# 4. Wall-clock times: a log-append time, a commit time, the timestamp Kafka stamps on a batch. Values within
#    a day of now become "<now>"; timestamps the scenario itself wrote (small, fixed numbers) are kept.
DAY_MS = 86_400_000

# 5. Epochs of the cluster's metadata log (ApiVersions' finalized_features_epoch): Kafka's is the offset of
#    a record in its controller log, kbroker has no such log.
METADATA_EPOCH_FIELDS = {"finalized_features_epoch"}

# 6. Order of lists that are sets: Kafka builds topics, partitions, configs and groups from hash maps and
#    sends them in that order; no client relies on it. Such lists are sorted by their key fields.
# Lists of names that are sets are sorted too: SaslHandshake's mechanisms, which Kafka lists from a hash map
# of the enabled mechanisms' handlers, not in the order sasl.enabled.mechanisms gives them.
SORTED_NAME_LISTS = {"mechanisms"}
SORT_KEYS = ("name", "topic", "topic_name", "resource_name", "api_key", "partition_index", "partition",
             "index", "group_id", "member_id", "transactional_id", "key")

# 7. Record batches (the ``records`` bytes of Fetch): compared as what a client reads, batch by batch
#    (base offset, record count, attributes, producer id and epoch, base sequence), not as bytes: the
#    CRC covers the partition leader epoch and the broker-stamped times.

# 8. The run token: every topic, group and transactional id of a run carries a random token, so that a run
#    against a long-lived broker never meets an earlier run's state; in any string it becomes "<run>", and in
#    any bytes too (a consumer's subscription and assignment name their topics) before they are shown as hex.

# 9. Broker settings that describe the host, not the behaviour (paths, listener addresses, ids), in
#    DescribeConfigs of the broker resource: the value becomes "<env>"; the broker resource's name (its
#    node id, rule 2) becomes "<self>".
ENVIRONMENT_CONFIGS = {"log.dirs", "log.dir", "listeners", "advertised.listeners", "node.id", "broker.id",
                       "controller.quorum.bootstrap.servers", "controller.quorum.voters", "process.roles",
                       "controller.listener.names", "listener.security.protocol.map", "metadata.log.dir",
                       "inter.broker.listener.name"}


# 10. Kafka's authorization messages print its internal Request object ("Request Request(processor=2,
#    connectionId=..., session=...Session@650bed6d, ...) needs ALTER permission."): connection ids, ports and
#    object hashes, new on every run. That object becomes "<request>"; the permission named stays.
KAFKA_REQUEST_TEXT = re.compile(r"Request Request\(.*\) needs ")

# 11. ShareFetch's and ShareAcknowledge's CurrentLeader is not optional (not a tagged field as in Fetch): a
#    partition answered without a leader hint carries the field's default, leader 0 at epoch 0, which is not
#    a node. It stays "<no-hint>" rather than becoming "<self>" on the broker that happens to be node 0.
NO_LEADER_HINT = {"leader_id": 0, "leader_epoch": 0}

# 12. Clusters (the scenarios of cluster_scenarios.py): node ids stay as they are (both clusters' brokers are
#    0, 1, 2). The controller id that Metadata and DescribeCluster give clients is, on a Kafka 4 broker, a
#    broker picked at random among the live ones (KRaft's controllers are not reachable by clients; its
#    KafkaApis answers metadataCache.getRandomAliveBrokerId), and on kbroker the lowest live broker: both
#    become "<a listed broker>" when the answer lists that broker.
LISTED_CONTROLLER = "<a listed broker>"


class Normalizer:
    """One per scenario run: holds the broker's own node id, the run token and the generated-id tables."""

    def __init__(self, token: str, self_node_id: int | None, cluster: bool = False):
        self.token = token
        self.cluster = cluster
        self.self_node_id = self_node_id
        self.ids: dict[tuple[str, Any], str] = {}
        self.counts: dict[str, int] = {}
        self.now_ms = int(time.time() * 1000)

    def generated(self, kind: str, value: Any) -> str:
        key = (kind, value)
        if key not in self.ids:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.ids[key] = f"<{kind}-{self.counts[kind]}>"
        return self.ids[key]

    def __call__(self, value: Any, field: str = "") -> Any:
        if isinstance(value, dict):
            out = {k: "<no-hint>" if k == "current_leader" and v == NO_LEADER_HINT and not self.cluster
                   else self(v, k) for k, v in value.items()}
            if out.get("name") in ENVIRONMENT_CONFIGS and "value" in out:
                out["value"] = "<env>" if out["value"] is not None else None
                if isinstance(out.get("synonyms"), list):
                    for s in out["synonyms"]:
                        if isinstance(s, dict) and "value" in s:
                            s["value"] = "<env>" if s["value"] is not None else None
            if self.cluster and "controller_id" in value and isinstance(value.get("brokers"), list):
                listed = {b.get("node_id", b.get("broker_id")) for b in value["brokers"] if isinstance(b, dict)}
                if value["controller_id"] in listed:
                    out["controller_id"] = LISTED_CONTROLLER
            return out
        if isinstance(value, list):
            items = [self(v, field) for v in value]
            if field in SORTED_NAME_LISTS and all(isinstance(i, str) for i in items):
                return sorted(items)
            return _sorted_if_set(items)
        if field in THROTTLE_FIELDS:
            return 0
        if field == "records":
            return summarize_records(value, self)
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            return (data.replace(self.token.encode(), b"<run>") if self.token else data).hex()
        if isinstance(value, uuid_types()):
            value = str(value)
        if field in ADDRESS_FIELDS and field == "host":
            return "<host>"
        if field in ADDRESS_FIELDS and isinstance(value, int):
            return "<port>"
        if field == "resource_name" and self.self_node_id is not None and value == str(self.self_node_id):
            return "<self>"
        if field in NODE_FIELDS and isinstance(value, int) and value >= 0:
            return "<self>" if value == self.self_node_id else value
        if field in METADATA_EPOCH_FIELDS:
            return "<metadata-epoch>" if isinstance(value, int) and value >= 0 else value
        kind = GENERATED_FIELDS.get(field)
        if kind and value not in NOT_GENERATED and not (field == "session_id" and value == 0):
            return self.generated(kind, self._text(value) if isinstance(value, str) else value)
        if isinstance(value, int) and not isinstance(value, bool) and _is_time_field(field) \
                and abs(value - self.now_ms) < DAY_MS:
            return "<now>"
        if isinstance(value, str):
            return self._text(value)
        return value

    def _text(self, s: str) -> str:
        s = KAFKA_REQUEST_TEXT.sub("<request> needs ", s)
        return s.replace(self.token, "<run>") if self.token else s


def _is_time_field(field: str) -> bool:
    return "time" in field or field.endswith("_ms") or field == "timestamp"


def uuid_types() -> tuple:
    import uuid

    return (uuid.UUID,)


def _sorted_if_set(items: list) -> list:
    if not items or not all(isinstance(i, dict) for i in items):
        return items
    for key in SORT_KEYS:
        if all(key in i for i in items):
            return sorted(items, key=lambda i: (str(i[key]), repr(i)))
    return items


def summarize_records(value, norm: Normalizer) -> Any:
    if value is None:
        return None
    from ..records.batch import iter_batches

    data = bytes(value)
    out = []
    try:
        for _, h in iter_batches(data):
            out.append({"base_offset": h.base_offset, "records": h.record_count, "attributes": h.attributes,
                        "producer_id": norm(h.producer_id, "producer_id"),
                        "producer_epoch": h.producer_epoch, "base_sequence": h.base_sequence})
    except Exception as e:  # noqa: BLE001  an unparsable answer is itself the observation
        return {"unparsable_records": str(e)[:200], "bytes": len(data)}
    return out


def _list_key(items: list) -> str | None:
    """The key field that names each item of a list of records uniquely, if there is one."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in SORT_KEYS:
        if all(key in i for i in items) and len({repr(i[key]) for i in items}) == len(items):
            return key
    return None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"topics[name=t].partitions[partition_index=1].error_code": 3, ...}: items of a list of records are
    named by their key field where one names them uniquely (so one extra item is one difference, not a
    shift of every later one), else by position. Empty lists and dicts stay as values."""
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
    elif isinstance(value, list) and value:
        key = _list_key(value)
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{key}={v[key]}]" if key else f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


ABSENT = "<absent>"


def compare(ours: Any, theirs: Any) -> list[tuple[str, Any, Any]]:
    """Field-by-field differences: (path, our value, their value); a path only one side has shows ABSENT."""
    a, b = flatten(ours), flatten(theirs)
    diffs = []
    for path in list(a) + [p for p in b if p not in a]:
        va, vb = a.get(path, ABSENT), b.get(path, ABSENT)
        if va != vb:
            diffs.append((path, va, vb))
    return diffs
