"""KIP-951: Produce (v10+) and Fetch (v16+) answers that say NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH
name the partition's current leader and epoch, and list that leader's endpoint (by the client's listener
name), so the client goes there without a Metadata round trip, as Kafka's KafkaApis does. The generated codec
writes the tagged fields only in the versions that have them.
"""

from __future__ import annotations

from ..errors import ErrorCode

HINTED = frozenset({ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH})


class LeaderHints:
    """Collects the leaders named in one response; ``R`` is the response class (its LeaderIdAndEpoch and
    NodeEndpoint)."""

    def __init__(self, ctx, R):
        self._ctx = ctx
        self._R = R
        self._nodes: dict[int, tuple[str, int, str | None]] = {}

    def current_leader(self, topic, index: int, error_code: int):
        """The LeaderIdAndEpoch for a partition answered ``error_code`` (None when the error has no hint)."""
        if error_code not in HINTED or topic is None or not 0 <= index < len(topic.partitions):
            return None
        p = topic.partitions[index]
        endpoint = self._ctx.endpoint(p.leader_id) if p.leader_id >= 0 else None
        if endpoint is None:  # no live leader: "unknown", the client asks Metadata
            return self._R.LeaderIdAndEpoch(leader_id=-1, leader_epoch=-1)
        reg = self._ctx.broker.controller.broker(p.leader_id)
        self._nodes[p.leader_id] = (endpoint[0], endpoint[1], reg.rack if reg is not None else None)
        return self._R.LeaderIdAndEpoch(leader_id=p.leader_id, leader_epoch=p.leader_epoch)

    def node_endpoints(self) -> list:
        if not self._nodes:  # the common case: no error named a leader
            return []
        return [self._R.NodeEndpoint(node_id=n, host=h, port=port, rack=rack)
                for n, (h, port, rack) in sorted(self._nodes.items())]
