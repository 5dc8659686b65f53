"""The consumer group protocol (KIP-848) in the group coordinator, on a ManualClock: epochs, the errors Kafka answers,
revocation before reassignment, sessions, static members, topics changing under a subscription, the offsets' member
epoch checks, and the group's state across a restart of the coordinator."""

import struct
import uuid

from kbroker.clock import ManualClock
from kbroker.consumer_protocol import decode_consumer_assignment, encode_consumer_assignment
from kbroker.coordinator import FileOffsetStore, GroupConfig, GroupCoordinator, MemoryOffsetStore
from kbroker.coordinator.classic_group import ClassicGroup
from kbroker.errors import ErrorCode
from support.fake_topics import FakeTopics

SESSION_MS = 45_000
INTERVAL_MS = 5_000


def coordinator(store=None, topics=None, clock=None, **config):
    clock = clock or ManualClock()
    topics = topics if topics is not None else FakeTopics()
    coord = GroupCoordinator(clock, GroupConfig(**config), store or MemoryOffsetStore(), topics=topics)
    coord.load()
    return clock, topics, coord


def hb(coord, member, epoch, group="g", topics=None, regex=None, owned=None, instance=None, assignor=None,
       rebalance=30_000, version=1):
    if epoch == 0:
        owned = owned if owned is not None else {}
        if topics is None and regex is None:
            topics = ["t"]
    return coord.consumer_group_heartbeat(version, group, member, epoch, instance, None, rebalance if epoch == 0 else -1,
                                          topics, regex, assignor, owned, "client", "127.0.0.1")


def parts(result, topic_id):
    return sorted(result.assignment.get(topic_id, ())) if result.assignment is not None else None


def test_one_member_joins_and_gets_every_partition_at_epoch_1():
    _, topics, coord = coordinator()
    t = topics.create("t", 3)
    r = hb(coord, "m1", 0)
    assert (r.error_code, r.member_id, r.member_epoch, r.heartbeat_interval_ms) == (0, "m1", 1, INTERVAL_MS)
    assert parts(r, t) == [0, 1, 2]
    assert coord.group_state("g") == "Stable"
    # A heartbeat with nothing changed carries no assignment.
    r = hb(coord, "m1", 1)
    assert (r.member_epoch, r.assignment) == (1, None)


def test_a_partition_moves_only_after_its_owner_revoked_it():
    _, topics, coord = coordinator()
    t = topics.create("t", 2)
    assert parts(hb(coord, "m1", 0), t) == [0, 1]
    r2 = hb(coord, "m2", 0)
    # m2 is at the new epoch but gets nothing yet: m1 still holds both partitions.
    assert (r2.member_epoch, parts(r2, t)) == (2, [])
    assert coord.group_state("g") == "Reconciling"
    r1 = hb(coord, "m1", 1, owned={t: frozenset({0, 1})})
    # m1 is asked to give one up and stays at epoch 1 until it has.
    assert r1.member_epoch == 1 and len(parts(r1, t)) == 1
    kept = parts(r1, t)
    assert parts(hb(coord, "m2", 2, owned={}), t) is None  # still held
    r1 = hb(coord, "m1", 1, owned={t: frozenset(kept)})
    assert (r1.member_epoch, parts(r1, t)) == (2, None)
    r2 = hb(coord, "m2", 2, owned={})
    assert parts(r2, t) == sorted({0, 1} - set(kept))
    assert coord.group_state("g") == "Stable"


def test_epoch_errors_unknown_members_and_invalid_requests():
    _, topics, coord = coordinator()
    topics.create("t", 1)
    hb(coord, "m1", 0)
    assert hb(coord, "m1", 5).error_code == ErrorCode.FENCED_MEMBER_EPOCH
    assert hb(coord, "nobody", 1).error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert hb(coord, "m1", 1, group="other").error_code == ErrorCode.GROUP_ID_NOT_FOUND
    r = coord.consumer_group_heartbeat(1, "g", "m2", 0, None, None, -1, ["t"], None, None, {})
    assert (r.error_code, r.error_message) == (ErrorCode.INVALID_REQUEST,
                                               "RebalanceTimeoutMs must be provided in first request.")
    assert coord.consumer_group_heartbeat(1, "g", "", 0, None, None, 1, ["t"], None, None, {}).error_code == \
        ErrorCode.INVALID_REQUEST
    assert hb(coord, "m2", 0, assignor="sticky").error_code == ErrorCode.UNSUPPORTED_ASSIGNOR
    assert hb(coord, "m2", 0, regex="a(b").error_code == ErrorCode.INVALID_REGULAR_EXPRESSION
    assert hb(coord, "m2", -3).error_code == ErrorCode.INVALID_REQUEST
    # v0: an empty member id on joining gets one from the coordinator.
    r = coord.consumer_group_heartbeat(0, "g", "", 0, None, None, 1000, ["t"], None, None, {})
    assert r.error_code == 0 and r.member_id


def test_group_max_size():
    _, topics, coord = coordinator(group_consumer_max_size=1)
    topics.create("t", 1)
    assert hb(coord, "m1", 0).error_code == 0
    assert hb(coord, "m2", 0).error_code == ErrorCode.GROUP_MAX_SIZE_REACHED


def test_leaving_frees_the_partitions_and_bumps_the_group_epoch():
    _, topics, coord = coordinator()
    t = topics.create("t", 2)
    hb(coord, "m1", 0)
    hb(coord, "m2", 0)
    hb(coord, "m1", 1, owned={t: frozenset({0, 1})})
    r = hb(coord, "m1", -1)
    assert (r.error_code, r.member_epoch) == (0, -1)
    r2 = hb(coord, "m2", 2, owned={})
    assert r2.member_epoch == 3 and parts(r2, t) == [0, 1]
    assert hb(coord, "m1", -1).error_code == ErrorCode.UNKNOWN_MEMBER_ID


def test_a_silent_member_is_fenced_when_its_session_ends():
    clock, topics, coord = coordinator()
    t = topics.create("t", 2)
    hb(coord, "m1", 0)
    hb(coord, "m2", 0)
    for _ in range(10):
        clock.advance(INTERVAL_MS)
        r = hb(coord, "m2", coord.consumer_manager.groups["g"].members["m2"].member_epoch, owned={})
    assert "m1" not in coord.consumer_manager.groups["g"].members
    assert sorted(coord.consumer_manager.groups["g"].members["m2"].assignment.assigned[t]) == [0, 1]


def test_a_member_that_does_not_revoke_within_its_rebalance_timeout_is_fenced():
    clock, topics, coord = coordinator()
    t = topics.create("t", 2)
    hb(coord, "m1", 0, rebalance=10_000)
    hb(coord, "m2", 0)
    hb(coord, "m1", 1, owned={t: frozenset({0, 1})})  # told to revoke one
    clock.advance(9_000)
    hb(coord, "m2", 2, owned={})
    clock.advance(2_000)
    assert "m1" not in coord.consumer_manager.groups["g"].members


def test_static_member_leaves_temporarily_and_its_next_incarnation_keeps_its_partitions():
    _, topics, coord = coordinator()
    t = topics.create("t", 4)
    hb(coord, "a1", 0, instance="a")
    hb(coord, "b1", 0, instance="b")
    ra = hb(coord, "a1", 1, owned={t: frozenset(range(4))})
    hb(coord, "b1", 2, owned={})
    ra = hb(coord, "a1", 1, owned={t: frozenset(coord.consumer_manager.groups["g"].members["a1"].assignment.assigned[t])})
    group = coord.consumer_manager.groups["g"]
    a_parts = group.members["a1"].assignment.assigned[t]
    assert len(a_parts) == 2
    epoch = group.group_epoch
    assert hb(coord, "a1", -2, instance="a").member_epoch == -2
    # Another incarnation while the first has not left: UNRELEASED_INSTANCE_ID (here: the first is released).
    r = hb(coord, "a2", 0, instance="a")
    assert r.error_code == 0 and parts(r, t) == sorted(a_parts)
    assert group.group_epoch == epoch  # no rebalance
    assert hb(coord, "a3", 0, instance="a").error_code == ErrorCode.UNRELEASED_INSTANCE_ID
    assert hb(coord, "a1", 2, instance="a").error_code == ErrorCode.FENCED_INSTANCE_ID


def test_assignments_follow_topics_created_grown_and_deleted_through_a_regex():
    _, topics, coord = coordinator()
    a = topics.create("orders-a", 1)
    topics.create("payments", 1)
    r = hb(coord, "m1", 0, topics=None, regex="orders-.*")
    assert r.assignment == {a: frozenset({0})}
    b = topics.create("orders-b", 2)
    r = hb(coord, "m1", r.member_epoch, owned={a: frozenset({0})})
    assert r.member_epoch == 2 and r.assignment == {a: frozenset({0}), b: frozenset({0, 1})}
    topics.grow("orders-a", 2)
    r = hb(coord, "m1", r.member_epoch)
    assert r.assignment[a] == frozenset({0, 1})
    topics.delete("orders-b")
    r = hb(coord, "m1", r.member_epoch, owned={a: frozenset({0, 1})})
    assert set(r.assignment) == {a}
    d = coord.consumer_group_describe("g")
    assert d.members[0].subscribed_topic_regex == "orders-.*"


def test_list_describe_and_delete_consumer_groups():
    _, topics, coord = coordinator()
    t = topics.create("t", 1)
    hb(coord, "m1", 0, assignor="range")
    listed = coord.list_groups(None, ["consumer"]).groups
    assert [(g.group_id, g.protocol_type, g.state, g.group_type) for g in listed] == [
        ("g", "consumer", "Stable", "consumer")]
    assert coord.list_groups(None, ["classic"]).groups == []
    d = coord.consumer_group_describe("g")
    assert (d.state, d.group_epoch, d.assignment_epoch, d.assignor_name) == ("Stable", 1, 1, "range")
    assert d.members[0].assignment == [(t, "t", [0])]
    assert coord.consumer_group_describe("nope").error_code == ErrorCode.GROUP_ID_NOT_FOUND
    assert coord.describe_group("g").state == "Dead"  # DescribeGroups is for classic groups
    assert coord.delete_groups(["g"]) == {"g": ErrorCode.NON_EMPTY_GROUP}
    hb(coord, "m1", -1)
    assert coord.delete_groups(["g"]) == {"g": ErrorCode.NONE}
    assert coord.consumer_group_describe("g").error_code == ErrorCode.GROUP_ID_NOT_FOUND


def test_offset_commit_and_fetch_check_the_member_epoch():
    _, topics, coord = coordinator()
    topics.create("t", 1)
    hb(coord, "m1", 0)
    offsets = {("t", 0): (5, -1, "")}
    assert coord.commit_offsets("g", 1, "m1", None, offsets, api_version=9) == {("t", 0): 0}
    assert coord.commit_offsets("g", 0, "m1", None, offsets, api_version=9) == {("t", 0): ErrorCode.STALE_MEMBER_EPOCH}
    assert coord.commit_offsets("g", 1, "x", None, offsets, api_version=9) == {("t", 0): ErrorCode.UNKNOWN_MEMBER_ID}
    assert coord.commit_offsets("g", -1, "", None, offsets, api_version=9) == {("t", 0): ErrorCode.UNKNOWN_MEMBER_ID}
    assert coord.fetch_offsets("g", [("t", 0)], member_id="m1", member_epoch=0).error_code == \
        ErrorCode.STALE_MEMBER_EPOCH
    assert coord.fetch_offsets("g", [("t", 0)], member_id="m1", member_epoch=1).offsets[("t", 0)].offset == 5


def test_transactional_commits_name_a_stale_epoch_and_an_unknown_group_by_version():
    # Kafka's validateTransactionalOffsetCommit: from TxnOffsetCommit v6 (KIP-1319) STALE_MEMBER_EPOCH and
    # GROUP_ID_NOT_FOUND, before it ILLEGAL_GENERATION for both.
    _, topics, coord = coordinator()
    topics.create("t", 1)
    hb(coord, "m1", 0)
    offsets = {("t", 0): (5, -1, "")}
    for version, stale, unknown in ((5, ErrorCode.ILLEGAL_GENERATION, ErrorCode.ILLEGAL_GENERATION),
                                    (6, ErrorCode.STALE_MEMBER_EPOCH, ErrorCode.GROUP_ID_NOT_FOUND)):
        assert coord.prepare_txn_offsets(7, "g", offsets, generation_id=0, member_id="m1", api_version=version) == {
            ("t", 0): stale}
        assert coord.prepare_txn_offsets(7, "nog", offsets, generation_id=1, member_id="m1",
                                         api_version=version) == {("t", 0): unknown}
    assert coord.prepare_txn_offsets(7, "g", offsets, generation_id=1, member_id="m1", api_version=6) == {("t", 0): 0}
    # Without a generation (a producer outside any group) an unknown group is created, as Kafka does.
    assert coord.prepare_txn_offsets(7, "new", offsets, api_version=6) == {("t", 0): 0}


def test_the_group_survives_a_restart_of_the_coordinator(tmp_path):
    topics = FakeTopics()
    t = topics.create("t", 4)
    path = tmp_path / "consumer-offsets.journal"
    _, _, coord = coordinator(FileOffsetStore(path), topics)
    hb(coord, "m1", 0)
    hb(coord, "m2", 0)
    hb(coord, "m1", 1, owned={t: frozenset(range(4))})
    coord.commit_offsets("g", 1, "m1", None, {("t", 0): (7, -1, "")}, api_version=9)
    before = coord.consumer_group_describe("g")
    coord.close()

    _, _, again = coordinator(FileOffsetStore(path), topics)
    after = again.consumer_group_describe("g")
    assert (after.state, after.group_epoch, after.assignment_epoch) == (before.state, before.group_epoch,
                                                                        before.assignment_epoch)
    assert [(m.member_id, m.member_epoch, m.assignment, m.target_assignment) for m in after.members] == [
        (m.member_id, m.member_epoch, m.assignment, m.target_assignment) for m in before.members]
    # Members carry on in their epochs.
    m1 = before.members[0]
    owned = {t: frozenset(p for _, _, ps in m1.assignment for p in ps)}
    assert hb(again, "m1", m1.member_epoch, owned=owned).error_code == 0
    assert again.fetch_offsets("g", [("t", 0)]).offsets[("t", 0)].offset == 7


# -- classic members and the consumer protocol in one group (group.consumer.migration.policy) ----------------------

def classic_subscription(*topics):
    """A ConsumerProtocolSubscription v0 (an eager classic member)."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def classic_join(coord, member, group="g"):
    reply = coord.join_group(group, member, None, "classic", "127.0.0.1", 10_000, 30_000, "consumer",
                             [("range", classic_subscription("t"))], False)
    return reply.result()


def classic_assignment(coord, member, generation, group="g"):
    r = coord.sync_group(group, generation, member, None, "consumer", "range", {member: b""}).result()
    assert r.error_code == 0, r
    rows = decode_consumer_assignment(r.assignment)
    return sorted(p for row in rows for p in row["partitions"])


def test_a_classic_group_upgrades_when_a_consumer_protocol_member_joins_and_downgrades_when_it_leaves():
    clock, topics, coord = coordinator()
    t = topics.create("t", 4)
    joined = classic_join(coord, "")
    a, gen = joined.member_id, joined.generation_id
    # The classic group's leader (its only member) assigns itself everything.
    synced = coord.sync_group("g", gen, a, None, "consumer", "range",
                              {a: encode_consumer_assignment({"t": [0, 1, 2, 3]})}).result()
    assert synced.error_code == 0 and coord.group_state("g") == "Stable"

    # Upgrade: a consumer-protocol member joins; the classic member keeps its partitions until it rejoins.
    r = hb(coord, "m1", 0)
    assert r.error_code == 0 and parts(r, t) == []
    assert coord.list_groups(None, None).groups[0].group_type == "consumer"
    assert coord.heartbeat("g", gen, a, None) == ErrorCode.REBALANCE_IN_PROGRESS
    rejoined = classic_join(coord, a)
    assert rejoined.error_code == 0 and rejoined.member_id == a
    assert len(classic_assignment(coord, a, rejoined.generation_id)) == 2
    assert coord.heartbeat("g", rejoined.generation_id, a, None) == ErrorCode.NONE
    r = hb(coord, "m1", r.member_epoch, owned={})
    assert len(parts(r, t)) == 2
    assert {m.member_id: m.classic for m in coord.consumer_group_describe("g").members} == {a: True, "m1": False}

    # Downgrade: the consumer-protocol member leaves; the classic member's group rebalances as a classic group.
    hb(coord, "m1", -1)
    assert isinstance(coord.group_manager.groups["g"], ClassicGroup)
    assert coord.group_state("g") in ("PreparingRebalance", "CompletingRebalance")
    assert coord.list_groups(None, None).groups[0].group_type == "classic"
    assert coord.consumer_group_describe("g").error_code == ErrorCode.GROUP_ID_NOT_FOUND


def test_the_migration_policy_can_refuse_classic_members():
    _, topics, coord = coordinator(group_consumer_migration_policy="disabled")
    topics.create("t", 1)
    hb(coord, "m1", 0)
    assert classic_join(coord, "").error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
