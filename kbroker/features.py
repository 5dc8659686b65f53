"""Feature versioning (KIP-584): which levels of each Kafka feature kbroker supports, which are finalized for
the cluster (what ApiVersions v3+ reports), and UpdateFeatures' checks, as Kafka's BrokerFeatures,
QuorumFeatures and FeatureControlManager make them.

kbroker supports only the levels whose behaviour it has, so that no client switches on a protocol kbroker
does not speak because of a level it reads:

- metadata.version: supports 33, finalized 33 (Kafka 4.4's latest production level, what a new 4.4 cluster is
  formatted with); kbroker's metadata has one shape, so no other level.
- transaction.version: supports 0-2, finalized 2, as a new Kafka 4.4 cluster. Level 2 tells clients to use
  transaction protocol v2 (KIP-890 part 2: an epoch bump per transaction, partitions added by Produce v12 and
  TxnOffsetCommit v5, EndTxn v5; coordinator/transaction.py); clients that do not know it keep the classic
  protocol, which stays served. Level 1 changes only the transaction log's record format, the broker's own.
- group.version: supports 1 while ConsumerGroupHeartbeat (68) is served, finalized 1: level 1 tells clients
  that the KIP-848 consumer protocol is available; without the API it is not supported (level 0, unreported).
- share.version: supports 1 while ShareGroupHeartbeat (76) is served, finalized 1: level 1 turns share groups
  on (KIP-932; on by default since Kafka 4.2). Level 2 (Kafka 4.4's default) gates the share groups' dead-letter
  queues (KIP-1191), which kbroker does not implement.
- kraft.version, streams.version, eligible.leader.replicas.version: not supported (level 0): dynamic KRaft
  quorums, streams groups (KIP-1071) and ELR are not implemented.

A Kafka 4.4 broker reports all seven features supported from 0 (metadata.version from 7) and finalizes
eligible.leader.replicas.version 1, group.version 1, kraft.version 1, metadata.version 33, share.version 2,
streams.version 1, transaction.version 2.

A feature at level 0 is not finalized (not reported), and one whose highest supported level is 0 is not
supported (Kafka's ``defaultSupportedFeatureMap`` leaves it out). ApiVersions before v4 leaves out
supported features whose lowest level is 0 (KAFKA-17011). Levels UpdateFeatures sets are kept by the
controller (``Controller.feature_levels``), with an epoch that every change raises.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import ErrorCode, KafkaError

METADATA_VERSION = "metadata.version"
TRANSACTION_VERSION = "transaction.version"
GROUP_VERSION = "group.version"
SHARE_VERSION = "share.version"
SHARE_GROUP_HEARTBEAT = 76
LATEST_METADATA_VERSION = 33  # Kafka 4.4.0's MetadataVersion.latestProduction()
CONSUMER_GROUP_HEARTBEAT = 68

# UpdateFeatures' upgrade types (FeatureUpdate.UpgradeType)
UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE = 1, 2, 3


def supported_features(served_apis: Iterable[int]) -> dict[str, tuple[int, int]]:
    """Feature name -> (lowest, highest) level this broker supports, given the API keys it serves."""
    out = {METADATA_VERSION: (LATEST_METADATA_VERSION, LATEST_METADATA_VERSION), TRANSACTION_VERSION: (0, 2)}
    served = set(served_apis)
    if CONSUMER_GROUP_HEARTBEAT in served:
        out[GROUP_VERSION] = (1, 1)
    if SHARE_GROUP_HEARTBEAT in served:
        out[SHARE_VERSION] = (1, 1)
    return out


def finalized_features(supported: dict[str, tuple[int, int]], levels: dict[str, int]) -> dict[str, int]:
    """Feature name -> finalized level (0s left out): each feature's highest supported level unless
    UpdateFeatures set another."""
    out = {}
    for name, (_lo, hi) in supported.items():
        level = levels.get(name, hi)
        if level > 0:
            out[name] = level
    return out


def _range(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def check_update(node_id: int, supported: dict[str, tuple[int, int]], finalized: dict[str, int],
                 name: str, level: int, upgrade_type: int) -> None:
    """Raise KafkaError(INVALID_UPDATE_VERSION) with Kafka's message if ``name`` may not go to ``level``."""
    def refuse(why: str):
        raise KafkaError(ErrorCode.INVALID_UPDATE_VERSION, f"Invalid update version {level} for feature {name}. {why}")

    if upgrade_type not in (UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE):
        refuse("The controller does not support the given upgrade type.")
    current = finalized.get(name, 0)
    if level < 0:
        refuse("A feature version cannot be less than 0.")
    lo, hi = supported.get(name, (0, 0))
    if not lo <= level <= hi:
        if hi == 0:
            refuse(f"Local controller {node_id} does not support this feature.")
        refuse(f"Local controller {node_id} only supports versions {_range(lo, hi)}")
    if level < current and upgrade_type == UPGRADE:
        refuse("Can't downgrade the version of this feature without setting the upgrade type to either safe or "
               "unsafe downgrade.")
    if level > current and upgrade_type != UPGRADE:
        refuse("Can't downgrade to a newer version.")
