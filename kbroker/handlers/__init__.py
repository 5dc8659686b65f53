"""The handler table: which module handles each API, and the versions kbroker serves of it.

ApiVersions is answered from this table (``advertised_versions``), so what kbroker advertises is exactly what
it has a handler for. A handler module is named after its API, opens with a docstring saying what each
version served adds and what is not supported, and defines ``API`` (its generated codec module) and
``handle(ctx, request)``, which returns the response object, None for no response (acks=0 Produce), or an
awaitable of either (a long-polling Fetch, a JoinGroup). Modules are imported the first time their API is
asked for, so that a broker starts in a fraction of a second.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from ..wire.messages import NAMES

# API key -> (handler module, (min version, max version) served and advertised)
TABLE: dict[int, tuple[str, tuple[int, int]]] = {
    0: ('produce', (0, 13)),  # Produce
    1: ('fetch', (4, 18)),  # Fetch
    2: ('list_offsets', (1, 11)),  # ListOffsets
    3: ('metadata', (0, 13)),  # Metadata
    8: ('offset_commit', (2, 10)),  # OffsetCommit
    9: ('offset_fetch', (1, 10)),  # OffsetFetch
    10: ('find_coordinator', (0, 6)),  # FindCoordinator
    11: ('join_group', (0, 9)),  # JoinGroup
    12: ('heartbeat', (0, 4)),  # Heartbeat
    13: ('leave_group', (0, 5)),  # LeaveGroup
    14: ('sync_group', (0, 5)),  # SyncGroup
    15: ('describe_groups', (0, 6)),  # DescribeGroups
    16: ('list_groups', (0, 5)),  # ListGroups
    17: ('sasl_handshake', (0, 1)),  # SaslHandshake
    18: ('api_versions', (0, 5)),  # ApiVersions
    19: ('create_topics', (2, 7)),  # CreateTopics
    20: ('delete_topics', (1, 6)),  # DeleteTopics
    21: ('delete_records', (0, 2)),  # DeleteRecords
    22: ('init_producer_id', (0, 5)),  # InitProducerId
    23: ('offset_for_leader_epoch', (2, 4)),  # OffsetForLeaderEpoch
    24: ('add_partitions_to_txn', (0, 5)),  # AddPartitionsToTxn
    25: ('add_offsets_to_txn', (0, 4)),  # AddOffsetsToTxn
    26: ('end_txn', (0, 5)),  # EndTxn
    27: ('write_txn_markers', (1, 1)),  # WriteTxnMarkers
    28: ('txn_offset_commit', (0, 6)),  # TxnOffsetCommit
    29: ('describe_acls', (1, 3)),  # DescribeAcls
    30: ('create_acls', (1, 3)),  # CreateAcls
    31: ('delete_acls', (1, 3)),  # DeleteAcls
    32: ('describe_configs', (1, 4)),  # DescribeConfigs
    33: ('alter_configs', (0, 2)),  # AlterConfigs
    34: ('alter_replica_log_dirs', (1, 2)),  # AlterReplicaLogDirs
    35: ('describe_log_dirs', (1, 5)),  # DescribeLogDirs
    36: ('sasl_authenticate', (0, 2)),  # SaslAuthenticate
    37: ('create_partitions', (0, 3)),  # CreatePartitions
    42: ('delete_groups', (0, 3)),  # DeleteGroups
    43: ('elect_leaders', (0, 2)),  # ElectLeaders
    44: ('incremental_alter_configs', (0, 1)),  # IncrementalAlterConfigs
    45: ('alter_partition_reassignments', (0, 1)),  # AlterPartitionReassignments
    46: ('list_partition_reassignments', (0, 0)),  # ListPartitionReassignments
    47: ('offset_delete', (0, 0)),  # OffsetDelete
    48: ('describe_client_quotas', (0, 1)),  # DescribeClientQuotas
    49: ('alter_client_quotas', (0, 1)),  # AlterClientQuotas
    50: ('describe_user_scram_credentials', (0, 0)),  # DescribeUserScramCredentials
    51: ('alter_user_scram_credentials', (0, 0)),  # AlterUserScramCredentials
    57: ('update_features', (0, 2)),  # UpdateFeatures
    60: ('describe_cluster', (0, 2)),  # DescribeCluster
    61: ('describe_producers', (0, 0)),  # DescribeProducers
    65: ('describe_transactions', (0, 0)),  # DescribeTransactions
    66: ('list_transactions', (0, 2)),  # ListTransactions
    68: ('consumer_group_heartbeat', (0, 1)),  # ConsumerGroupHeartbeat
    69: ('consumer_group_describe', (0, 1)),  # ConsumerGroupDescribe
    71: ('get_telemetry_subscriptions', (0, 0)),  # GetTelemetrySubscriptions
    72: ('push_telemetry', (0, 0)),  # PushTelemetry
    74: ('list_config_resources', (0, 1)),  # ListConfigResources
    75: ('describe_topic_partitions', (0, 0)),  # DescribeTopicPartitions
    76: ('share_group_heartbeat', (1, 1)),  # ShareGroupHeartbeat
    77: ('share_group_describe', (1, 1)),  # ShareGroupDescribe
    78: ('share_fetch', (1, 2)),  # ShareFetch
    79: ('share_acknowledge', (1, 2)),  # ShareAcknowledge
    83: ('initialize_share_group_state', (0, 0)),  # InitializeShareGroupState
    84: ('read_share_group_state', (0, 0)),  # ReadShareGroupState
    85: ('write_share_group_state', (0, 1)),  # WriteShareGroupState
    86: ('delete_share_group_state', (0, 0)),  # DeleteShareGroupState
    87: ('read_share_group_state_summary', (0, 1)),  # ReadShareGroupStateSummary
    90: ('describe_share_group_offsets', (0, 1)),  # DescribeShareGroupOffsets
    91: ('alter_share_group_offsets', (0, 0)),  # AlterShareGroupOffsets
    92: ('delete_share_group_offsets', (0, 0)),  # DeleteShareGroupOffsets
}


@dataclass(frozen=True)
class Handler:
    api_key: int
    name: str
    min_version: int
    max_version: int
    handle: Callable
    codec: ModuleType

    def flexible(self, version: int) -> bool:
        f = self.codec.REQUEST_FLEXIBLE_FROM
        return f is not None and version >= f


class _Handlers(Mapping):
    """``HANDLERS[api_key]``: the Handler, its module imported on first use."""

    def __init__(self):
        self._loaded: dict[int, Handler] = {}

    def __getitem__(self, api_key: int) -> Handler:
        h = self._loaded.get(api_key)
        if h is None:
            module_name, (lo, hi) = TABLE[api_key]
            m = importlib.import_module(f".{module_name}", __name__)
            h = self._loaded[api_key] = Handler(api_key, NAMES[api_key], lo, hi, m.handle, m.API)
        return h

    def get(self, api_key, default=None):
        return self[api_key] if api_key in TABLE else default

    def __contains__(self, api_key) -> bool:
        return api_key in TABLE

    def __iter__(self):
        return iter(TABLE)

    def __len__(self) -> int:
        return len(TABLE)


HANDLERS = _Handlers()


# Client telemetry (KIP-714, Kafka 3.7+): a Kafka broker advertises these only with a telemetry reporter
# plugin, so no release table has them; kbroker always receives telemetry, emulating or not.
TELEMETRY_APIS = (71, 72)


def advertised_versions(emulate: str | None = None) -> dict[int, tuple[int, int]]:
    """What ApiVersions advertises: every handler's range or, emulating a Kafka release, for each API that
    release has, its range limited to what kbroker serves (the release's max whenever kbroker serves it),
    and the telemetry APIs from 3.7 on."""
    ours = {k: versions for k, (_module, versions) in TABLE.items()}
    if emulate is None:
        return ours
    from ..releases import RELEASES

    if emulate not in RELEASES:
        raise ValueError(f"cannot emulate Kafka {emulate}: choose one of {', '.join(RELEASES)}")
    out = {}
    for key, (lo, hi) in RELEASES[emulate].items():
        if key in ours:
            lo, hi = max(lo, ours[key][0]), min(hi, ours[key][1])
            if lo <= hi:
                out[key] = (lo, hi)
    if tuple(int(x) for x in emulate.split(".")) >= (3, 7):
        out.update({key: ours[key] for key in TELEMETRY_APIS if key in ours})
    return out
