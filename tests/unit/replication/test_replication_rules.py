"""The rules of replication, without sockets: the controller's election rules (pure functions), the leader's
view of its followers (ReplicaState), the high watermark over the ISR, ISR expansion and shrinking through
the in-process controller, acks=all's wait on the high watermark, a follower's append and its truncation
point (Kafka's ReplicaManager, Partition and AbstractFetcherThread rules)."""

from __future__ import annotations

import asyncio

import pytest

from kbroker.controller import (NO_LEADER, BrokerRegistration, InProcessController, MetadataListener, run_now,
                                PartitionRegistration, check_leader_move, choose_leader, isr_without,
                                leader_and_isr_without)
from kbroker.errors import ErrorCode, KafkaError
from kbroker.partition import Partition, ReplicaState, high_watermark_over
from kbroker.records.builder import build_batch
from kbroker.records.record import Record
from kbroker.replica_fetcher import truncation_offset
from kbroker.storage.base import LogConfig
from kbroker.storage.memory import MemoryLogStore
from kbroker.topic_store import MemoryTopicStore
from kbroker.topics import Topic


# -- elections ------------------------------------------------------------------------------------------

def test_choose_leader_takes_the_first_live_isr_member_in_assignment_order():
    assert choose_leader([3, 1, 2], [1, 2, 3], live={1, 2, 3}) == (3, [1, 2, 3])
    assert choose_leader([3, 1, 2], [1, 2], live={1, 2, 3}) == (1, [1, 2])
    assert choose_leader([3, 1, 2], [2], live={1, 3}) == (NO_LEADER, [2])  # offline: the ISR is kept


def test_unclean_election_takes_any_live_replica_which_becomes_the_isr():
    assert choose_leader([3, 1, 2], [2], live={1, 3}, unclean=True) == (3, [3])
    assert choose_leader([3, 1, 2], [2], live=set(), unclean=True) == (NO_LEADER, [2])


def test_a_gone_broker_leaves_every_isr_but_the_last():
    assert isr_without([1, 2, 3], 2) == [1, 3]
    assert isr_without([2], 2) == [2]
    p = PartitionRegistration([1, 2, 3], [1, 2, 3], leader=1)
    assert leader_and_isr_without(p, 1, live={2, 3}) == (2, [2, 3])  # the leader went: the next in sync
    assert leader_and_isr_without(p, 3, live={1, 2}) == (1, [1, 2])  # a follower went: the leader stays
    alone = PartitionRegistration([1, 2], [1], leader=1)
    assert leader_and_isr_without(alone, 1, live={2}) == (NO_LEADER, [1])
    assert leader_and_isr_without(alone, 1, live={2}, unclean=True) == (2, [2])


def test_leadership_moves_only_to_a_live_isr_member():
    p = PartitionRegistration([1, 2, 3], [1, 2], leader=1)
    check_leader_move(p, 2, live={1, 2, 3})
    for target, live in ((3, {1, 2, 3}), (2, {1, 3}), (7, {1, 2, 3, 7})):
        with pytest.raises(KafkaError) as e:
            check_leader_move(p, target, live)
        assert e.value.code == ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE


def test_controller_kill_and_return_with_replication():
    """A broker going away leaves the ISRs and hands its leaderships over; coming back it leads nothing
    (it must catch up and be let into the ISR by the leader first)."""
    c = InProcessController(MemoryTopicStore())
    for n in (1, 2, 3):
        run_now(c.register_broker(BrokerRegistration(n, {"PLAINTEXT": ("h", n)}), MetadataListener()))
    run_now(c.create_topic("t", 1, 3, [[1, 2, 3]], {}))
    run_now(c.unregister_broker(1))
    p = c.topic("t").partitions[0]
    assert (p.leader, p.isr, p.leader_epoch) == (2, [2, 3], 1)
    run_now(c.register_broker(BrokerRegistration(1, {"PLAINTEXT": ("h", 1)}), MetadataListener()))
    p = c.topic("t").partitions[0]
    assert (p.leader, p.isr) == (2, [2, 3])
    with pytest.raises(KafkaError) as e:  # an ISR naming a broker that is not a replica
        run_now(c.alter_partition("t", 0, p.leader_epoch, p.partition_epoch, 2, [2, 3, 9]))
    assert e.value.code == ErrorCode.INVALID_REQUEST


# -- the leader's view of its followers -----------------------------------------------------------------

def test_replica_state_caught_up_time_follows_kafka():
    s = ReplicaState(now_ms=0)
    s.update(fetch_offset=5, leader_end_offset=10, now_ms=100)  # behind, and the leader had 10 before
    assert s.last_caught_up_ms == 0 and s.log_end_offset == 5
    s.update(fetch_offset=10, leader_end_offset=12, now_ms=200)  # reached what the leader had at 100
    assert s.last_caught_up_ms == 100
    s.update(fetch_offset=12, leader_end_offset=12, now_ms=300)  # the whole log
    assert s.last_caught_up_ms == 300
    assert s.caught_up(leader_end_offset=12, now_ms=10**6, lag_ms=1)  # has everything: never lagging
    assert not s.caught_up(leader_end_offset=13, now_ms=400, lag_ms=50)
    assert s.caught_up(leader_end_offset=13, now_ms=340, lag_ms=50)


def test_high_watermark_is_the_smallest_log_end_over_the_isr():
    followers = {2: ReplicaState(0), 3: ReplicaState(0)}
    followers[2].log_end_offset, followers[3].log_end_offset = 7, 4
    assert high_watermark_over([1, 2, 3], 1, 10, followers) == 4
    assert high_watermark_over([1, 2], 1, 10, followers) == 7  # 3 is not in the ISR: it does not count
    assert high_watermark_over([1], 1, 10, followers) == 10
    followers[2].log_end_offset = -1  # unknown since this broker became leader: nothing advances
    assert high_watermark_over([1, 2], 1, 10, followers) == -1


# -- a partition led here, over the in-process controller -----------------------------------------------

class _Image(MetadataListener):
    """A broker's image of one partition: applies the controller's changes to the Partition under test."""

    def __init__(self):
        self.partition: Partition | None = None

    def on_topic_change(self, topic):
        if self.partition is not None and topic.name == self.partition.topic.name:
            self.partition.update(topic.partitions[self.partition.index])


def _leader_partition(min_isr: str = "2", replicas: tuple[int, ...] = (1, 2, 3)) -> tuple[Partition, InProcessController]:
    c = InProcessController(MemoryTopicStore())
    image = _Image()
    run_now(c.register_broker(BrokerRegistration(1, {"PLAINTEXT": ("h", 1)}), image))
    for n in (2, 3):
        run_now(c.register_broker(BrokerRegistration(n, {"PLAINTEXT": ("h", n)}), MetadataListener()))
    reg = run_now(c.create_topic("t", 1, len(replicas), [list(replicas)], {"min.insync.replicas": min_isr}))
    topic = Topic("t", reg.topic_id, {"min.insync.replicas": min_isr})
    store = MemoryLogStore().open_log("t", reg.topic_id, 0, LogConfig())
    p = Partition(topic, 0, store, node_id=1, registration=reg.partitions[0], controller=c)
    topic.partitions = [p]
    image.partition = p
    return p, c


def _append(p: Partition, n: int = 1, acks: int = -1) -> int:
    p.append(build_batch([Record(i, 1000, None, b"v") for i in range(n)]), 1 << 20, False, required_acks=acks)
    return p.log_end_offset


def test_high_watermark_waits_for_every_isr_member_and_fetches_move_it():
    p, _c = _leader_partition()
    end = _append(p, 3)
    assert (end, p.high_watermark) == (3, 0)
    p.update_follower_fetch_state(2, 3)
    assert p.high_watermark == 0  # 3 has not fetched since this broker became leader
    p.update_follower_fetch_state(3, 2)
    assert p.high_watermark == 2
    p.update_follower_fetch_state(3, 3)
    assert p.high_watermark == 3


def test_lagging_follower_leaves_the_isr_and_rejoins_when_caught_up():
    p, c = _leader_partition()
    _append(p, 2)
    p.update_follower_fetch_state(2, 2)
    p.update_follower_fetch_state(3, 0)
    t = p.followers[3].last_caught_up_ms
    assert p.out_of_sync_replicas(lag_ms=1000, t=t + 500) == []
    assert p.maybe_shrink_isr(lag_ms=1000, t=t + 2000)
    assert sorted(p.isr) == [1, 2] and c.topic("t").partitions[0].isr == p.isr
    assert p.high_watermark == 2  # the shrink let the high watermark move
    epoch = p.partition_epoch
    p.update_follower_fetch_state(3, 1)  # below the high watermark: not yet
    assert 3 not in p.isr
    p.update_follower_fetch_state(3, 2)
    assert sorted(p.isr) == [1, 2, 3] and p.partition_epoch == epoch + 1


def test_min_insync_replicas_before_and_after_the_append():
    p, _c = _leader_partition(min_isr="3")
    _append(p, 1)
    p.update_follower_fetch_state(2, 1)
    p.update_follower_fetch_state(3, 0)
    assert p.maybe_shrink_isr(lag_ms=0, t=p.followers[3].last_caught_up_ms + 1)
    with pytest.raises(KafkaError) as e:
        _append(p, 1)
    assert e.value.code == ErrorCode.NOT_ENOUGH_REPLICAS
    assert p.log_end_offset == 1  # nothing appended
    end = _append(p, 1, acks=1)
    p.update_follower_fetch_state(2, end)
    # Under min ISR the high watermark stays (Kafka 4, KIP-966): what acks=1 appended is not yet readable,
    # and an acks=all append keeps waiting (Kafka 4.4 times it out) instead of answering
    # NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    assert p.high_watermark == 0 and p.check_enough_replicas(end) is None
    p.update_follower_fetch_state(3, 1)  # at the high watermark: back in the ISR, which is whole again
    assert sorted(p.isr) == [1, 2, 3] and p.high_watermark == 1
    p.update_follower_fetch_state(3, end)
    assert p.high_watermark == end and p.check_enough_replicas(end) == 0


def test_the_effective_min_isr_is_capped_at_the_replica_count():
    """min.insync.replicas above the replica count asks for every replica (Kafka's effectiveMinIsr): an
    acks=all append to a partition of one replica is accepted and readable at once."""
    p, _c = _leader_partition(min_isr="2", replicas=(1,))
    end = _append(p, 1)
    assert p.effective_min_isr() == 1 and p.high_watermark == end and p.check_enough_replicas(end) == 0


def test_wait_for_high_watermark_wakes_on_the_follower_fetch_and_times_out():
    async def run():
        p, c = _leader_partition()
        end = _append(p, 2)
        waiter = asyncio.ensure_future(p.wait_for_high_watermark(end, 5.0))
        await asyncio.sleep(0)
        assert not waiter.done()
        p.update_follower_fetch_state(2, end)
        p.update_follower_fetch_state(3, end)
        assert await waiter == 0
        end = _append(p, 1)
        assert await p.wait_for_high_watermark(end, 0.05) == ErrorCode.REQUEST_TIMED_OUT
        waiter = asyncio.ensure_future(p.wait_for_high_watermark(end, 5.0))
        await asyncio.sleep(0)
        reg = c.topic("t").partitions[0]
        run_now(c.alter_partition("t", 0, reg.leader_epoch, reg.partition_epoch, 2, reg.isr))  # leadership moves
        assert await waiter == ErrorCode.NOT_LEADER_OR_FOLLOWER
    asyncio.run(run())


# -- a follower ------------------------------------------------------------------------------------------

def test_follower_appends_the_leaders_batches_as_they_are():
    leader, _c = _leader_partition(min_isr="1")
    _append(leader, 2, acks=1)
    _append(leader, 3, acks=1)
    reg = PartitionRegistration([1, 2, 3], [1, 2, 3], leader=1, leader_epoch=0)
    topic = Topic("t", leader.topic.topic_id, {})
    follower = Partition(topic, 0, MemoryLogStore().open_log("t", topic.topic_id, 0, LogConfig()), node_id=2,
                         registration=reg)
    data = b"".join(bytes(c) for c in leader.read(0, 1 << 20))
    assert follower.append_as_follower(data, leader_high_watermark=4, leader_log_start_offset=0) == len(data)
    assert (follower.log_end_offset, follower.high_watermark) == (5, 4)
    assert follower.append_as_follower(data, 5, 0) == 0  # what it has already is skipped
    assert follower.high_watermark == 5
    assert b"".join(bytes(c) for c in follower.read(0, 1 << 20)) == data
    assert follower.log.latest_epoch() == 0


def test_truncation_offset_keeps_what_both_logs_have_of_the_epoch():
    # The follower's epoch 3 ends at 10 here; the leader says epoch 3 ended at 7 there: keep 7.
    assert truncation_offset((3, 10), high_watermark=5, leader_epoch=3, leader_end_offset=7) == 7
    # The leader has more of it: the follower keeps all of its own.
    assert truncation_offset((3, 10), 5, 3, 12) == 10
    # The leader's largest epoch at or below ours is 2, which ends at 8; ours (2) ends at 6.
    assert truncation_offset((2, 6), 5, 2, 8) == 6
    # An undefined answer: back to the high watermark.
    assert truncation_offset((3, 10), 5, -1, -1) == 5


def test_an_epoch_led_without_a_batch_goes_at_truncation():
    """A replica that became leader at epoch 1 and wrote nothing before losing it: the epoch ends its cache.
    Truncating to its log end (what the new leader's diverging answer amounts to) forgets it, so the next
    fetch names epoch 0 and does not diverge again (Kafka's truncateTo)."""
    p, _c = _leader_partition(min_isr="1")
    _append(p, 2, acks=1)
    p.log.maybe_assign_epoch_start_offset(1, 2)  # as _make_leader at a new epoch
    assert p.log.latest_epoch() == 1
    p.truncate_to(2)
    assert p.log.latest_epoch() == 0 and p.log_end_offset == 2
