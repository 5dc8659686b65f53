"""A creation's partitions are registered once: the controller's validation (which places and checks them)
builds their registrations, the broker makes its partitions of them while it opens their logs, and the
creation keeps those same registrations instead of placing and building them again. Only a partition
whose brokers are no longer all alive when the creation lands is built again, from the live ones then, as a
creation made at that moment would have it. The socket-level tests of CreateTopics and CreatePartitions
(validate_only, policy violations, the partitions-per-request bound, the creation waits) keep the answers."""

from __future__ import annotations

import pytest

import kbroker.controller as controller_module
from kbroker.controller import (BrokerRegistration, InProcessController, MetadataListener, PartitionRegistration,
                                run_now, still_placed)
from kbroker.errors import ErrorCode, KafkaError
from kbroker.storage.memory import MemoryLogStore
from kbroker.topic_store import MemoryTopicStore
from kbroker.topics import TopicManager, run_steps


class _Applies(MetadataListener):
    def __init__(self):
        self.topics: TopicManager | None = None

    def on_topic_change(self, topic):
        self.topics.apply(topic)


def _cluster(n: int) -> tuple[InProcessController, list[TopicManager]]:
    controller = InProcessController(MemoryTopicStore())
    managers = []
    for node in range(n):
        listener = _Applies()
        listener.topics = TopicManager(controller, node, MemoryLogStore(), {})
        run_now(controller.register_broker(BrokerRegistration(node, {"PLAINTEXT": ("h", node)}), listener))
        managers.append(listener.topics)
    return controller, managers


@pytest.fixture
def built(monkeypatch) -> list[int]:
    """How many partition registrations the controller's rules build, call by call."""
    calls: list[int] = []
    real = controller_module.new_partitions

    def counting(replicas, live):
        calls.append(len(replicas))
        return real(replicas, live)
    monkeypatch.setattr(controller_module, "new_partitions", counting)
    return calls


def test_a_topic_of_many_partitions_is_registered_once(built):
    controller, (broker,) = _cluster(1)
    topic = run_steps(broker.creation("t", 1000, {}))
    assert built == [1000]
    registered = controller.topic("t").partitions
    assert len(registered) == 1000 and len({id(p) for p in registered}) == 1000
    assert [(p.index, p.leader_id, p.leader_epoch, p.replicas, p.isr) for p in topic.partitions] == \
        [(i, 0, 0, [0], [0]) for i in range(1000)]
    assert all(p.is_leader and p.log is not None for p in topic.partitions)


def test_a_growth_registers_its_new_partitions_once(built):
    controller, (broker,) = _cluster(1)
    topic = run_steps(broker.creation("t", 2, {}))
    run_steps(broker.partition_growth(topic, 500))
    assert built == [2, 498]
    assert [(p.index, p.leader_id, p.isr) for p in broker.get("t").partitions] == [(i, 0, [0]) for i in range(500)]
    assert len(controller.topic("t").partitions) == 500


def test_validate_only_builds_and_keeps_nothing(built):
    controller, (broker,) = _cluster(1)
    run_steps(broker.creation("t", 300, {}, validate_only=True))
    topic = run_steps(broker.creation("g", 1, {}))
    run_steps(broker.partition_growth(topic, 50, validate_only=True))
    assert built == [300, 1, 49]
    assert controller.topic("t") is None and broker.get("t") is None
    assert len(controller.topic("g").partitions) == len(topic.partitions) == 1


def test_a_broker_that_stops_while_the_logs_open_does_not_lead_what_is_created(built):
    """Validated with brokers 0 and 1 alive; broker 1 stops before the creation lands: the partitions it was
    to lead are built again, led by broker 0 with an ISR of the live replicas, as a creation at that moment
    would make them; the others are the validation's registrations."""
    controller, (a, _b) = _cluster(2)
    steps = a.creation("t", 4, {}, replication_factor=2, assignments=[[0, 1], [1, 0], [0, 1], [1, 0]])
    validation = next(steps)
    steps.send(run_now(validation))  # the validation's answer: a opens the first of its logs and yields
    run_now(controller.unregister_broker(1))
    topic = run_steps(steps)
    assert built == [4, 1, 1, 1, 1]  # the validation's four, then each partition again (every one names 1)
    assert [(p.leader_id, p.isr) for p in topic.partitions] == [(0, [0])] * 4
    assert [(p.leader, p.isr) for p in controller.topic("t").partitions] == [(0, [0])] * 4


def test_still_placed_keeps_what_is_still_live_and_refuses_an_unknown_broker():
    kept = PartitionRegistration([1, 2], [1, 2], 1)
    waiting = PartitionRegistration([3, 1], [1], 1)  # 3 was down at the validation
    out = still_placed([kept, waiting], known={1, 2, 3}, live={1, 2, 3})
    assert out[0] is kept and (out[1].leader, out[1].isr) == (3, [3, 1])
    prepared = [kept]
    assert still_placed(prepared, known={1, 2}, live={1, 2}) is prepared
    with pytest.raises(KafkaError) as e:
        still_placed([kept, PartitionRegistration([4], [4], 4)], known={1, 2}, live={1, 2})
    assert e.value.code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert e.value.message == "Replica assignment for partition 1 names unknown or repeated brokers"
