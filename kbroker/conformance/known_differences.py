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
          "kbroker serves fewer APIs than Kafka 4.4 (no delegation tokens, streams groups, ...), "
          "some at older newest versions (OffsetCommit/OffsetFetch v10: the "
          "README's compatibility table), and advertises the telemetry APIs (71, 72), which Kafka advertises only "
          "with a telemetry reporter plugin"),
    Known("api_versions_ranges@v*", "*", "*features*",
          "kbroker supports and finalizes only the feature levels it implements (features.py): metadata.version 33, "
          "transaction.version 2 and share.version 1; Kafka 4.4 also finalizes share.version 2 (share groups' "
          "dead-letter queues, KIP-1191), kraft.version, streams.version and eligible.leader.replicas.version"),
    # -- Metadata -----------------------------------------------------------------------------------------
    Known("metadata_auto_create@*", "first_error", "",
          "the Metadata answer that triggers auto-creation: Kafka 4 says UNKNOWN_TOPIC_OR_PARTITION until the "
          "controller has created the topic, kbroker creates it synchronously and answers 0 with its partitions"),
    # -- Produce ------------------------------------------------------------------------------------------
    Known("produce_*", "*", "responses*.partition_responses*.error_message",
          "kbroker explains Produce errors in error_message (v8+); Kafka leaves it null for these errors"),
    *(Known(f"produce_transactional_without_txn@v{v}", "produce", "responses*",
            "a transactional batch (Produce v11 or older) for a partition never added to the transaction: Kafka 4 "
            "verifies it (KIP-890) and refuses with INVALID_TXN_STATE; kbroker appends it (the verify-only check "
            "is not implemented; from v12 both add the partition to the transaction, transaction protocol v2)")
      for v in (3, 9)),
    # -- transactions and configs ---------------------------------------------------------------------------
    Known("txn_offset_commit_flow@*", "commit_after_end", "topics*.error_code",
          "TxnOffsetCommit for a group not added to the current transaction: Kafka 4 verifies it with the "
          "transaction coordinator (KIP-890) and refuses (INVALID_TXN_STATE, v4+ TRANSACTION_ABORTABLE); kbroker "
          "accepts it (transaction verification is coordinator work, as for Produce above)"),
    Known("incremental_alter_configs_topic@*", "bad_operation", "responses*",
          "an operation code no client sends (9): Kafka fails with UNKNOWN_SERVER_ERROR (its OpType lookup gives "
          "null), kbroker answers INVALID_REQUEST naming the operation"),
    Known("list_config_resources_types@v1", "all", "config_resources*",
          "Kafka lists its broker logger (type 8, BROKER_LOGGER) among all config resources; kbroker has no "
          "broker loggers (DescribeConfigs refuses the type), so it lists none"),
    # -- SASL and ACLs --------------------------------------------------------------------------------------
    Known("acls_cluster_action_denied@*", "*", "*error_message",
          "CLUSTER_AUTHORIZATION_FAILED: Kafka's message prints its internal Request object ('Request Request("
          "processor=..., session=...) needs ALTER permission.'); kbroker says 'Cluster authorization failed.'",
          ours="Cluster authorization failed.", theirs="<request> needs * permission."),
    Known("acls_create_describe_delete@*", "create_match_pattern", "results*",
          "a binding with the filter-only pattern type MATCH: Kafka 4.4 answers UNKNOWN_SERVER_ERROR without a "
          "message (its controller throws past its own validation); kbroker INVALID_REQUEST 'Invalid patternType "
          "MATCH'"),
    # -- DescribeConfigs ----------------------------------------------------------------------------------
    Known("describe_configs_*", "*", "results*.error_message",
          "Kafka sends an empty error message where kbroker sends null (and its own text for an unknown topic)"),
    Known("describe_configs_broker@*", "*", "*",
          "broker configs: kbroker lacks keys Kafka lists (advertised.listeners, default.replication.factor, "
          "log.retention.hours...), marks dynamic keys read-only, and its sources and synonyms differ "
          "(issue 18, 'Differences already known'); group.initial.rebalance.delay.ms is set to 0 in Kafka's "
          "server.properties (static) to match kbroker's default"),
    # -- share groups (KIP-932) ---------------------------------------------------------------------------
    Known("share_group_*", "*", "*topic_partitions*",
          "Kafka assigns a share group's partitions only once its share coordinator has initialised their state, "
          "asynchronously after the join (the first heartbeats and describes carry no partitions); kbroker "
          "initialises them within the join and assigns them at once"),
    Known("share_group_*", "*", "*epoch*",
          "share group epochs: Kafka 4.4's first join already answers epoch 2 (the asynchronous initialisation "
          "of the share-partitions' state, above), kbroker's answers 1, so every later epoch is one behind"),
    Known("share_group_heartbeat_errors@*", "epoch_ahead", "error_message",
          "the FENCED_MEMBER_EPOCH message names the member's epoch, one behind Kafka's (see the share group "
          "epochs)"),
    Known("share_fetch_refused@*", "empty_group", "*",
          "a ShareFetch with an empty group id: Kafka 4.4 opens a session and answers each partition "
          "UNKNOWN_SERVER_ERROR (an internal failure), kbroker refuses the request with INVALID_REQUEST"),
    Known("share_fetch_refused@*", "unknown_topic_id", "*",
          "a ShareFetch naming a topic id the cluster does not have: Kafka 4.4 fails the whole request with "
          "UNKNOWN_SERVER_ERROR (an internal failure), kbroker answers that partition UNKNOWN_TOPIC_ID, as Fetch does"),
    Known("share_group_offsets_describe@*", "*", "*start_offset", ours="2", theirs="0", reason=
          "after acknowledgements move the start offset, Kafka 4.4 describes the start offset it last wrote to its "
          "share coordinator, written before the acknowledgement moved it (the next write catches up); kbroker "
          "writes the state after the move and describes the current start offset (the lag agrees)"),
]


# The cluster scenarios' (cluster_scenarios.py), against Kafka 4.4 with three brokers and a controller;
# tests/process/test_conformance_cluster.py checks that each is still seen.
KNOWN_CLUSTER: list[Known] = [
    Known("cluster_min_insync_replicas@*", "describe_partitions_two_down", "*eligible_leader_replicas*",
          "eligible leader replicas (KIP-966; Kafka 4.4 finalizes eligible.leader.replicas.version): Kafka's controller "
          "keeps a replica that leaves an ISR already under min.insync.replicas as eligible to lead (and elects from "
          "them when the ISR is gone); kbroker has no ELR (an ISR that is gone leaves the partition offline unless "
          "unclean.leader.election.enable) and lists none. The high watermark's rule of KIP-966 (no move under min "
          "ISR) kbroker follows"),
]


def reason_for(scenario_key: str, step: str, path: str, ours=None, theirs=None) -> str | None:
    for k in KNOWN + KNOWN_CLUSTER:
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
