"""Differences between kbroker's answers and Apache Kafka's that are known, each with its reason.

An entry matches a difference by scenario key ("<scenario>@v<N>", fnmatch pattern), step label and field
path (shell-style patterns: * and ?; brackets are literal, as in "topics[name=t]"), and optionally by kbroker's and Kafka's values (patterns over their JSON text,
"<absent>" for a field one side lacks). A difference no entry matches fails ``make test``; one that matches is shown
as a known difference with the reason. Fixing kbroker removes entries: keep the list short and honest.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Known:
    scenario: str
    step: str
    path: str
    reason: str
    ours: str = "*"
    theirs: str = "*"


KNOWN: list[Known] = [
    # -- ApiVersions --------------------------------------------------------------------------------------
    Known("api_versions_ranges@*", "*", "api_keys*",
          "kbroker serves fewer APIs than Kafka 4.4 (no AlterReplicaLogDirs, ElectLeaders, reassignment, quotas, "
          "share groups, ...), some at older newest versions (OffsetCommit/OffsetFetch v10, TxnOffsetCommit v6, "
          "DeleteGroups v3: the README's compatibility table), and advertises the telemetry APIs (71, 72), which "
          "Kafka advertises only with a telemetry reporter plugin"),
    Known("api_versions_ranges@v*", "*", "*features*",
          "kbroker supports and finalizes only the feature levels it implements (features.py): metadata.version 33, "
          "transaction.version up to 1; Kafka 4.4 also finalizes transaction.version 2 (KIP-890 part 2), "
          "kraft.version, share.version, streams.version and eligible.leader.replicas.version"),
    Known("api_versions_bad_software_name@v3", "bad_name", "api_keys*",
          "on INVALID_REQUEST for a bad client software name Kafka sends no API ranges; kbroker sends them "
          "(same error code; clients give up either way)"),
    # -- Metadata -----------------------------------------------------------------------------------------
    Known("metadata_auto_create@*", "first_error", "",
          "the Metadata answer that triggers auto-creation: Kafka 4 says UNKNOWN_TOPIC_OR_PARTITION until the "
          "controller has created the topic, kbroker creates it synchronously and answers 0 with its partitions"),
    # -- CreateTopics -------------------------------------------------------------------------------------
    Known("create_topics_*", "*", "topics*.error_message",
          "validation messages are worded differently (same error codes): kbroker's predate Kafka 4's wording"),
    Known("create_topics_*", "*", "topics*.configs",
          "on a failed creation Kafka sends an empty configs list, kbroker null (v5+; clients treat both as none)"),
    Known("create_topics_*", "*", "topics*.configs[name=*].*",
          "topic config keys kbroker lacks: compression.{gzip,lz4,zstd}.level (KIP-390), "
          "errors.deadletterqueue.group.enable, leader/follower.replication.throttled.replicas, local.retention.* "
          "and remote.* (tiered storage), max.decompressed.message.bytes", ours="<absent>"),
    Known("create_topics_duplicate_in_request@*", "create", "topics*",
          "a name twice in one request: Kafka answers once for it, kbroker once per occurrence (both "
          "INVALID_REQUEST)"),
    Known("create_partitions_errors@*", "*", "results*.error_message",
          "CreatePartitions messages are worded differently (\"Topic already has 3 partition(s).\", \"The topic t "
          "currently has 3 partition(s); 2 would not be an increase.\"), and Kafka sends none for an unknown "
          "topic; same error codes (a one-line fix in kbroker/handlers/create_partitions.py, left to its owner)"),
    # -- DeleteTopics -------------------------------------------------------------------------------------
    Known("delete_topics_*", "delete", "responses*.error_message",
          "v5+: Kafka sends the error's default message, kbroker null (same error codes)"),
    # -- Produce ------------------------------------------------------------------------------------------
    Known("produce_unknown_topic@v*", "produce", "responses*",
          "kbroker auto-creates a topic on Produce when auto.create.topics.enable is on; Kafka 4 creates only "
          "from Metadata and answers UNKNOWN_TOPIC_OR_PARTITION (finding: needs a change in kbroker's produce "
          "handler; clients refresh Metadata first, so they see no difference)"),
    Known("produce_*", "*", "responses*.partition_responses*.error_message",
          "kbroker explains Produce errors in error_message (v8+); Kafka leaves it null for these errors"),
    Known("produce_idempotent_sequences@*", "seq0_again", "responses*.log_append_time_ms",
          "a duplicate batch: Kafka answers with the original batch's timestamp as log_append_time_ms even for "
          "CreateTime topics; kbroker -1 (as for any CreateTime append)"),
    Known("produce_idempotent_sequences@*", "*", "responses*.log_start_offset",
          "on OUT_OF_ORDER_SEQUENCE_NUMBER / INVALID_PRODUCER_EPOCH Kafka reports the log start offset, kbroker -1"),
    Known("produce_transactional_without_txn@*", "produce", "responses*",
          "a transactional batch for a partition never added to the transaction: Kafka 4 verifies it (KIP-890) "
          "and refuses with INVALID_TXN_STATE; kbroker appends it (finding: transaction verification is not "
          "implemented)"),
    # -- Fetch --------------------------------------------------------------------------------------------
    Known("fetch_records_and_out_of_range@*", "from_*", "responses*.partitions*",
          "OFFSET_OUT_OF_RANGE: Kafka sends -1 for high watermark, last stable offset and log start offset, "
          "kbroker the partition's real values (clients reset from ListOffsets either way)"),
    # -- ListOffsets --------------------------------------------------------------------------------------
    Known("list_offsets_by_time@*", "t9999", "topics*.leader_epoch",
          "no record at or after the time: Kafka sends leader_epoch -1 with offset -1, kbroker the current epoch"),
    # -- DescribeConfigs ----------------------------------------------------------------------------------
    Known("describe_configs_*", "*", "results*.error_message",
          "Kafka sends an empty error message where kbroker sends null (and its own text for an unknown topic)"),
    Known("describe_configs_topic_all_keys@*", "keys", "*",
          "the topic config keys kbroker lacks (see create_topics: compression levels, replication throttles, "
          "tiered storage, max.decompressed.message.bytes, errors.deadletterqueue.group.enable)"),
    Known("describe_configs_topic_all_keys@*", "defaults", "*",
          "the topic config keys kbroker lacks (as above)", ours="<absent>"),
    Known("*", "*", "*message.timestamp.after.max.ms*",
          "finding: Kafka 4 defaults message.timestamp.after.max.ms to one hour (records stamped further in the "
          "future are refused); kbroker keeps the 3.x default of Long.MAX",
          ours="9223372036854775807", theirs="3600000"),
    Known("describe_configs_broker@*", "*", "*",
          "broker configs: kbroker lacks keys Kafka lists (advertised.listeners, default.replication.factor, "
          "log.retention.hours...), marks dynamic keys read-only, and its sources and synonyms differ "
          "(issue 18, 'Differences already known'); group.initial.rebalance.delay.ms is set to 0 in Kafka's "
          "server.properties (static) to match kbroker's default"),
]


def reason_for(scenario_key: str, step: str, path: str, ours=None, theirs=None) -> str | None:
    for k in KNOWN:
        if _match(scenario_key, k.scenario) and _match(step, k.step) \
                and _match(path, k.path) and _value_matches(ours, k.ours) \
                and _value_matches(theirs, k.theirs):
            return k.reason
    return None


def _value_matches(value, pattern: str) -> bool:
    if pattern == "*":
        return True
    text = value if isinstance(value, str) else json.dumps(value)
    return _match(text, pattern)


def _match(text: str, pattern: str) -> bool:
    """fnmatch with literal brackets (paths name list items as "[key=value]")."""
    literal = pattern.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]")
    return fnmatch.fnmatchcase(text, literal)
