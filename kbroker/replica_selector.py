"""Which replica a consumer should read from (KIP-392, fetching from the closest replica): Kafka's
``replica.selector.class`` and its ``RackAwareReplicaSelector``.

A consumer that names its rack (``client.rack``, Fetch v11+ ``rack_id``) fetches from the leader as always; when
the broker has a replica selector, the leader looks at the partition's replicas that could serve the fetch
(in the ISR, their log holding the fetch offset as of their last fetch) and, when the selector picks one other
than itself, answers with no records and ``preferred_read_replica`` set; the consumer then fetches from that
replica, which serves it up to its own high watermark (handlers/fetch.py). With no selector (Kafka's default) the
leader never names one, but a follower still serves a v11+ consumer that comes to it.

Pure functions over plain values: the fetch handler gathers the replicas' positions and racks.
"""

from __future__ import annotations

from dataclasses import dataclass

RACK_AWARE = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
# replica.selector.class values kbroker knows; Kafka takes any class on its classpath, kbroker only its own
# selector (by its Java name or its simple name).
SELECTORS = {RACK_AWARE: RACK_AWARE, "RackAwareReplicaSelector": RACK_AWARE}


def parse_selector(value: str) -> str | None:
    """``replica.selector.class`` as set: the selector's canonical name, None for none (empty)."""
    value = value.strip()
    if not value:
        return None
    if value not in SELECTORS:
        raise ValueError(f"replica.selector.class {value!r} is not available: kbroker has {RACK_AWARE}")
    return SELECTORS[value]


@dataclass(frozen=True)
class ReplicaView:
    """One replica as a selector sees it (Kafka's ReplicaView): its node, its rack, its log end offset and how
    long since it was last caught up with the leader (0 for the leader)."""
    node_id: int
    rack: str | None
    log_end_offset: int
    time_since_caught_up_ms: float


def rack_aware_select(client_rack: str | None, leader: ReplicaView, replicas: list[ReplicaView]) -> ReplicaView:
    """Kafka's RackAwareReplicaSelector: without a client rack, the leader; else the leader if it is in the
    client's rack, else the most caught-up replica in that rack (largest log end offset, then the most
    recently caught up), else the leader when no replica is."""
    if not client_rack:
        return leader
    same_rack = [r for r in replicas if r.rack == client_rack]
    if not same_rack or leader in same_rack:
        return leader
    return max(same_rack, key=lambda r: (r.log_end_offset, -r.time_since_caught_up_ms))


def preferred_read_replica(selector: str | None, client_rack: str | None, leader: ReplicaView,
                           candidates: list[ReplicaView]) -> int:
    """The replica the leader tells a consumer to read from, or -1 (read from the leader): what the selector
    picks among the leader and ``candidates`` (the followers that can serve the fetch offset), unless it
    picks the leader (Kafka's ReplicaManager.findPreferredReadReplica)."""
    if selector is None:
        return -1
    chosen = rack_aware_select(client_rack, leader, [leader, *candidates])
    return -1 if chosen is leader else chosen.node_id
