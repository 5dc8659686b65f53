"""Two brokers of one cluster asked to create the same topic at once (two FindCoordinator requests creating
__consumer_offsets on two brokers, say): the creation that reaches the controller first wins, and the
other broker, whose own creation was still opening logs under another topic id, must end with the
winner's logs whole and open, not with them closed or removed by its losing creation's clean-up."""

from __future__ import annotations

import pytest

from kbroker.controller import BrokerRegistration, InProcessController, MetadataListener, run_now
from kbroker.errors import ErrorCode, KafkaError
from kbroker.records.builder import build_batch
from kbroker.records.record import Record
from kbroker.storage.segment import SegmentLogStore
from kbroker.topic_store import MemoryTopicStore
from kbroker.topics import TopicManager, run_steps


class _Applies(MetadataListener):
    def __init__(self):
        self.topics: TopicManager | None = None

    def on_topic_change(self, topic):
        self.topics.apply(topic)


def _brokers(tmp_path, n: int) -> list[TopicManager]:
    controller = InProcessController(MemoryTopicStore())
    managers = []
    for node in range(n):
        listener = _Applies()
        listener.topics = TopicManager(controller, node, SegmentLogStore(tmp_path / f"broker-{node}"), {})
        run_now(controller.register_broker(BrokerRegistration(node, {"PLAINTEXT": ("h", node)}), listener))
        managers.append(listener.topics)
    return managers


def test_the_losing_creation_leaves_the_winners_logs_whole(tmp_path):
    a, b = _brokers(tmp_path, 2)
    placement = [[0, 1], [1, 0], [0, 1]]
    losing = b.creation("t", 3, {}, replication_factor=2, assignments=placement)
    validation = next(losing)  # the controller's validation: a change, run here at once ...
    losing.send(run_now(validation))  # ... then b opens the log of partition 0 under its own topic id, and yields
    winner = run_steps(a.creation("t", 3, {}, replication_factor=2, assignments=placement))
    with pytest.raises(KafkaError) as e:
        run_steps(losing)
    assert e.value.code == ErrorCode.TOPIC_ALREADY_EXISTS

    topic = b.get("t")
    assert topic.topic_id == winner.topic_id
    for p in topic.partitions:
        assert p.log is not None
        p.log.append_as_follower(build_batch([Record(0, 1000, None, b"v")], base_offset=p.log_end_offset))
        assert p.log_end_offset == 1
    assert not b._prepared and "t" not in b.pending
