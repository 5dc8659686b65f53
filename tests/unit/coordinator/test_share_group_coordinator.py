"""Share groups (KIP-932) in the group coordinator, on a ManualClock: joining, the simple assignor sharing
partitions between members, epochs and the errors Kafka answers, sessions, leaving, the listeners the
share-partition side hears from, DeleteGroups and ListGroups, one namespace with the other group types, and the
group rebuilt from its ShareGroup* records after a restart."""

import uuid

import pytest

from kbroker.clock import ManualClock
from kbroker.coordinator import GroupConfig, GroupCoordinator, MemoryOffsetStore
from kbroker.coordinator import share_group_records as S
from kbroker.coordinator.assignors import MemberSpec, simple_assign
from kbroker.coordinator.share_group_listener import ShareGroupListener
from kbroker.errors import ErrorCode
from support.fake_topics import FakeTopics


SESSION_MS = 45_000


class Recorder(ShareGroupListener):
    def __init__(self):
        self.events = []

    def on_member_leave(self, group_id, member_id):
        self.events.append(("leave", group_id, member_id))

    def on_group_empty(self, group_id):
        self.events.append(("empty", group_id))

    def on_group_deleted(self, group_id, partitions):
        self.events.append(("deleted", group_id, partitions))


def coordinator(store=None, topics=None, clock=None, listeners=None, **config):
    clock = clock or ManualClock()
    topics = topics if topics is not None else FakeTopics()
    coord = GroupCoordinator(clock, GroupConfig(**config), store or MemoryOffsetStore(), topics=topics,
                             share_listeners=listeners)
    coord.load()
    return clock, topics, coord


def hb(coord, member, epoch, group="sg", topics=None, rack=None):
    if epoch == 0 and topics is None:
        topics = ["t"]
    return coord.share_group_heartbeat(group, member, epoch, rack, topics, "client", "/127.0.0.1")


def parts(result, topic_id):
    return sorted(result.assignment.get(topic_id, ())) if result.assignment is not None else None


def test_a_member_joins_and_gets_every_partition():
    _, topics, coord = coordinator()
    t = topics.create("t", 3)
    r = hb(coord, "m1", 0)
    assert (r.error_code, r.member_id, r.member_epoch, r.heartbeat_interval_ms) == (0, "m1", 1, 5_000)
    assert parts(r, t) == [0, 1, 2]
    r = hb(coord, "m1", 1)
    assert (r.error_code, r.member_epoch, r.assignment) == (0, 1, None)
    d = coord.share_group_describe("sg")
    assert (d.error_code, d.state, d.group_epoch, d.assignment_epoch, d.assignor_name) == (0, "Stable", 1, 1, "simple")
    assert [(m.member_id, m.member_epoch, m.assignment) for m in d.members] == [("m1", 1, [(t, "t", [0, 1, 2])])]


def test_three_members_share_a_one_partition_topic_at_once():
    """No revocation step: the second and third members get the partition as soon as they heartbeat, and the
    first keeps it."""
    _, topics, coord = coordinator()
    t = topics.create("t", 1)
    assert parts(hb(coord, "a", 0), t) == [0]
    r = hb(coord, "b", 0)
    assert (r.member_epoch, parts(r, t)) == (2, [0])
    r = hb(coord, "c", 0)
    assert (r.member_epoch, parts(r, t)) == (3, [0])
    r = hb(coord, "a", 1)
    assert (r.member_epoch, r.assignment) == (3, None)  # the epoch moves; the assignment did not change
    assert coord.share_group_assignment("sg") == {m: {t: frozenset({0})} for m in "abc"}


def test_members_split_partitions_when_there_are_enough():
    _, topics, coord = coordinator()
    t = topics.create("t", 4)
    hb(coord, "a", 0)
    hb(coord, "b", 0)
    r = hb(coord, "a", 1)
    assert r.member_epoch == 2 and len(parts(r, t)) == 2
    b = coord.share_group_assignment("sg")["b"][t]
    assert set(parts(r, t)) | b == {0, 1, 2, 3} and not set(parts(r, t)) & b


def test_simple_assignor_is_sticky_and_balanced():
    t = uuid.uuid4()
    specs = {m: MemberSpec(frozenset({t}), {}) for m in "abc"}
    first = simple_assign(specs, {t: 6})
    assert sorted(len(a[t]) for a in first.values()) == [2, 2, 2]
    # A fourth member takes partitions without the others' moving more than needed.
    specs = {m: MemberSpec(frozenset({t}), first[m]) for m in "abc"}
    specs["d"] = MemberSpec(frozenset({t}), {})
    second = simple_assign(specs, {t: 6})
    assert sorted(len(a.get(t, ())) for a in second.values()) == [1, 1, 2, 2]
    assert all(second[m][t] <= first[m][t] for m in "abc")
    # More members than partitions: every partition shared by ceil(5 / 2) = 3 members; 6 places for 5 members.
    specs = {m: MemberSpec(frozenset({t}), {}) for m in "abcde"}
    third = simple_assign(specs, {t: 2})
    assert sorted(len(a[t]) for a in third.values()) == [1, 1, 1, 1, 2]
    assert sorted(sum(p in a[t] for a in third.values()) for p in (0, 1)) == [3, 3]


@pytest.mark.parametrize("member,epoch,topics,message", [
    ("", 0, ["t"], None),  # Kafka 4.4 gives no message for this one
    ("m", 0, None, "SubscribedTopicNames must be set in first request."),
    ("m", -2, None, "MemberEpoch is invalid."),
])
def test_invalid_requests_as_kafka_answers_them(member, epoch, topics, message):
    _, _, coord = coordinator()
    r = coord.share_group_heartbeat("sg", member, epoch, None, topics if epoch != 0 or topics else [], "c", "h")
    assert (r.error_code, r.error_message) == (ErrorCode.INVALID_REQUEST, message)
    r = coord.share_group_heartbeat("sg", "m", 0, "", ["t"], "c", "h")
    assert (r.error_code, r.error_message) == (ErrorCode.INVALID_REQUEST, "RackId can't be empty.")


def test_epoch_errors():
    _, topics, coord = coordinator()
    topics.create("t", 1)
    assert hb(coord, "m", 1).error_code == ErrorCode.GROUP_ID_NOT_FOUND  # no group yet
    hb(coord, "m", 0)
    assert hb(coord, "other", 1).error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert hb(coord, "m", 5).error_code == ErrorCode.FENCED_MEMBER_EPOCH
    hb(coord, "n", 0)  # epoch 2; m is at 1 and may still come with 1 (its previous epoch is 0)
    assert hb(coord, "m", 1).member_epoch == 2
    assert hb(coord, "m", 1).error_code == ErrorCode.NONE  # the previous epoch: the answer may have been lost
    hb(coord, "o", 0)
    hb(coord, "m", 2)  # now at 3, previous 2
    r = hb(coord, "m", 1)
    assert r.error_code == ErrorCode.FENCED_MEMBER_EPOCH and "does not match the previous member epoch" in r.error_message


def test_group_max_size():
    _, topics, coord = coordinator(group_share_max_size=2)
    topics.create("t", 1)
    hb(coord, "a", 0)
    hb(coord, "b", 0)
    r = hb(coord, "c", 0)
    assert (r.error_code, r.error_message) == (
        ErrorCode.GROUP_MAX_SIZE_REACHED, "The share group has reached its maximum capacity of 2 members.")


def test_leaving_and_session_timeout_tell_the_listeners():
    rec = Recorder()
    clock, topics, coord = coordinator(listeners=[rec])
    topics.create("t", 1)
    hb(coord, "a", 0)
    hb(coord, "b", 0)
    r = hb(coord, "a", -1)
    assert (r.error_code, r.member_epoch) == (0, -1)
    assert rec.events == [("leave", "sg", "a")]
    clock.advance(SESSION_MS - 1)
    assert coord.share_group_assignment("sg").keys() == {"b"}
    clock.advance(1)
    assert rec.events == [("leave", "sg", "a"), ("leave", "sg", "b"), ("empty", "sg")]
    d = coord.share_group_describe("sg")
    assert (d.state, d.members, d.group_epoch) == ("Empty", [], 4)


def test_a_heartbeat_keeps_the_session():
    clock, topics, coord = coordinator()
    topics.create("t", 1)
    hb(coord, "a", 0)
    for _ in range(5):
        clock.advance(SESSION_MS - 1000)
        assert hb(coord, "a", 1).error_code == 0
    assert coord.member_count("sg") == 1


def test_new_partitions_and_subscription_changes_are_assigned():
    _, topics, coord = coordinator()
    t = topics.create("t", 1)
    assert parts(hb(coord, "a", 0), t) == [0]
    topics.grow("t", 3)
    r = hb(coord, "a", 1)
    assert (r.member_epoch, parts(r, t)) == (2, [0, 1, 2])
    u = topics.create("u", 1)
    r = hb(coord, "a", 2, topics=["t", "u"])
    assert (r.member_epoch, parts(r, u), parts(r, t)) == (3, [0], [0, 1, 2])


def test_delete_groups_and_list_groups():
    rec = Recorder()
    _, topics, coord = coordinator(listeners=[rec])
    t = topics.create("t", 2)
    hb(coord, "a", 0)
    listed = coord.list_groups(None, ["share"]).groups
    assert [(g.group_id, g.protocol_type, g.state, g.group_type) for g in listed] == [("sg", "share", "Stable", "share")]
    assert coord.list_groups(None, ["consumer"]).groups == []
    assert [g.group_id for g in coord.list_groups(["stable"], None).groups] == ["sg"]
    assert coord.delete_groups(["sg"]) == {"sg": ErrorCode.NON_EMPTY_GROUP}
    hb(coord, "a", -1)
    assert coord.delete_groups(["sg"]) == {"sg": ErrorCode.NONE}
    assert rec.events[-1] == ("deleted", "sg", {t: frozenset({0, 1})})
    assert coord.share_group_describe("sg").error_code == ErrorCode.GROUP_ID_NOT_FOUND
    assert coord.list_groups().groups == []


def test_one_namespace_with_classic_and_consumer_groups():
    _, topics, coord = coordinator()
    topics.create("t", 1)
    coord.commit_offsets("cg", -1, "", None, {("t", 0): (5, -1, "")})
    r = hb(coord, "m", 0, group="cg")
    assert (r.error_code, r.error_message) == (ErrorCode.GROUP_ID_NOT_FOUND, "Group cg is not a share group.")
    hb(coord, "m", 0)
    r = coord.consumer_group_heartbeat(1, "sg", "x", 0, None, None, 30_000, ["t"], None, None, {}, "c", "h")
    assert (r.error_code, r.error_message) == (ErrorCode.GROUP_ID_NOT_FOUND, "Group sg is not a consumer group.")
    assert coord.commit_offsets("sg", -1, "", None, {("t", 0): (5, -1, "")}) == {("t", 0): ErrorCode.GROUP_ID_NOT_FOUND}
    fetched = coord.fetch_offsets("sg")  # as Kafka's: no offsets, no error
    assert (fetched.error_code, fetched.offsets) == (ErrorCode.NONE, {})
    joined = coord.join_group("sg", "x", None, "c", "h", 30_000, 30_000, "consumer", [("range", b"")], True).result()
    assert (joined.error_code, joined.member_id) == (ErrorCode.INCONSISTENT_GROUP_PROTOCOL, "")
    assert coord.share_group_describe("cg").error_message == "Group cg is not a share group."


def test_the_group_survives_a_restart_as_kafka_records():
    store = MemoryOffsetStore()
    clock, topics, coord = coordinator(store=store)
    t = topics.create("t", 2)
    hb(coord, "a", 0, rack="r1")
    hb(coord, "b", 0)
    hb(coord, "a", 1)
    before = coord.share_group_describe("sg")
    # The records are Kafka's: a ShareGroupMetadataValue says the epoch, per member its three records.
    (value,) = store.records_of_type(S.GROUP_METADATA).values()
    assert S.decode_group_metadata(value)[0] == 2
    assert len(store.records_of_type(S.MEMBER_METADATA)) == 2
    assert S.decode_member_metadata(store.records_of_type(S.MEMBER_METADATA)[S.key(S.MEMBER_METADATA, "sg", "a")]) \
        == S.MemberMetadata("r1", "client", "/127.0.0.1", ("t",))
    coord.close()
    _, _, again = coordinator(store=store, topics=topics, clock=clock)
    after = again.share_group_describe("sg")
    assert (after.state, after.group_epoch, after.assignment_epoch) == (before.state, 2, 2)
    assert sorted((m.member_id, m.member_epoch, m.rack_id, m.assignment) for m in after.members) == \
        sorted((m.member_id, m.member_epoch, m.rack_id, m.assignment) for m in before.members)
    # Members carry on in their epochs, and their sessions started again at the load.
    assert hb(again, "a", 2).error_code == 0
    clock.advance(SESSION_MS)
    assert again.share_group_assignment("sg").keys() == set()
    # After the deletion nothing comes back.
    assert again.delete_groups(["sg"]) == {"sg": 0}
    _, _, third = coordinator(store=store, topics=topics, clock=clock)
    assert third.share_group_describe("sg").error_code == ErrorCode.GROUP_ID_NOT_FOUND


def test_records_round_trip():
    t = uuid.uuid4()
    cases = [
        (S.member_metadata_value(S.MemberMetadata(None, "c", "h", ("a", "b"))), S.decode_member_metadata,
         S.MemberMetadata(None, "c", "h", ("a", "b"))),
        (S.current_assignment_value(S.CurrentAssignment(3, 2, 0, {t: frozenset({1, 4})})), S.decode_current_assignment,
         S.CurrentAssignment(3, 2, 0, {t: frozenset({1, 4})})),
        (S.target_assignment_member_value({t: frozenset({0})}), S.decode_target_assignment_member, {t: frozenset({0})}),
        (S.state_partition_metadata_value(S.StatePartitionMetadata({}, {t: ("x", frozenset({0, 1}))}, {t: "y"})),
         S.decode_state_partition_metadata, S.StatePartitionMetadata({}, {t: ("x", frozenset({0, 1}))}, {t: "y"})),
    ]
    for raw, decode, expected in cases:
        assert decode(raw) == expected
    # Kafka's bytes: version 0, Epoch 7, MetadataHash 9, no tagged fields.
    assert S.group_metadata_value(7, 9) == bytes.fromhex("0000" "00000007" "0000000000000009" "00")
    assert S.key(S.MEMBER_METADATA, "g", "m") == bytes.fromhex("000a" "0001") + b"g" + bytes.fromhex("0001") + b"m"
    assert S.decode_key(S.key(S.TARGET_ASSIGNMENT_METADATA, "g")) == S.ShareKey(12, "g")


def test_group_configs_validation_and_effective_settings():
    from kbroker.coordinator.group_config import share_group_settings, validate_group_configs

    config = GroupConfig()
    validate_group_configs(config, {"share.auto.offset.reset": "by_duration:PT1H", "share.isolation.level":
                                    "read_committed", "share.delivery.count.limit": "10"})
    for configs, message in [
        ({"share.delivery.count.limit": "11"}, "share.delivery.count.limit must be less than or equal to "
                                               "group.share.max.delivery.count.limit"),
        ({"share.session.timeout.ms": "44999"}, "share.session.timeout.ms must be greater than or equal to "
                                               "group.share.min.session.timeout.ms"),
        ({"share.heartbeat.interval.ms": "15000", "share.session.timeout.ms": "45000"}, None),
        ({"share.auto.offset.reset": "by_duration:1h"}, "Invalid value by_duration:1h for configuration "
                                                        "share.auto.offset.reset"),
        ({"share.isolation.level": "dirty"}, "String must be one of: read_committed, read_uncommitted"),
        ({"nope": "1"}, "Unknown group config name: nope"),
        ({"streams.session.timeout.ms": "50000"}, "not supported by kbroker"),
    ]:
        if message is None:
            validate_group_configs(config, configs)
            continue
        with pytest.raises(ValueError, match=message):
            validate_group_configs(config, configs)
    s = share_group_settings(GroupConfig(group_share_record_lock_duration_ms=20_000),
                             {"share.auto.offset.reset": "EARLIEST", "share.renew.acknowledge.enable": "true"})
    assert (s.auto_offset_reset, s.record_lock_duration_ms, s.renew_acknowledge_enable, s.delivery_count_limit) == \
        ("earliest", 20_000, True, 5)


def test_a_groups_session_timeout_config_fences_sooner():
    from kbroker.coordinator.group_config import share_group_settings

    overrides = {"sg": {"share.session.timeout.ms": "50000", "share.heartbeat.interval.ms": "6000"}}
    clock, topics = ManualClock(), FakeTopics()
    coord = GroupCoordinator(clock, GroupConfig(), MemoryOffsetStore(), topics=topics,
                             share_settings=lambda g: share_group_settings(GroupConfig(), overrides.get(g, {})))
    coord.load()
    topics.create("t", 1)
    assert hb(coord, "a", 0).heartbeat_interval_ms == 6000
    assert hb(coord, "b", 0, group="other").heartbeat_interval_ms == 5000
    clock.advance(SESSION_MS)
    assert coord.share_group_assignment("sg").keys() == {"a"} and coord.share_group_assignment("other") == {}
    clock.advance(50_000 - SESSION_MS)
    assert coord.share_group_assignment("sg") == {}
