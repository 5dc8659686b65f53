"""Group configs of consumer-protocol (KIP-848) groups, Kafka 4.4's GroupConfig: consumer.session.timeout.ms and
consumer.heartbeat.interval.ms validated against the broker's group.consumer.* bounds with Kafka's messages, and the
coordinator giving a group's members its session timeout and heartbeat interval from the next heartbeat on."""

import pytest

from kbroker.clock import ManualClock
from kbroker.coordinator import GroupConfig, GroupCoordinator, MemoryOffsetStore
from kbroker.coordinator.group_config import consumer_group_settings, validate_group_configs
from kbroker.errors import ErrorCode
from support.fake_topics import FakeTopics


@pytest.mark.parametrize("configs, message", [
    ({"consumer.session.timeout.ms": "44999"}, "consumer.session.timeout.ms must be in the range 45000 to 60000 "
                                               "inclusive."),
    ({"consumer.session.timeout.ms": "60001"}, "consumer.session.timeout.ms must be in the range 45000 to 60000 "
                                               "inclusive."),
    ({"consumer.heartbeat.interval.ms": "4999"}, "consumer.heartbeat.interval.ms must be in the range 5000 to 15000 "
                                                 "inclusive."),
    ({"consumer.heartbeat.interval.ms": "fast"}, "Invalid value fast for configuration consumer.heartbeat.interval.ms: "
                                                 "Not a number of type INT"),
    ({"consumer.assignment.interval.ms": "100"}, "not supported by kbroker"),
    ({"streams.num.standby.replicas": "1"}, "not supported by kbroker"),
])
def test_invalid_consumer_group_configs_are_refused_with_kafkas_messages(configs, message):
    with pytest.raises(ValueError) as e:
        validate_group_configs(GroupConfig(), configs)
    assert message in str(e.value)


def test_the_session_timeout_must_exceed_the_heartbeat_interval_counting_the_brokers_setting_for_the_other():
    config = GroupConfig(group_consumer_min_session_timeout_ms=1_000, group_consumer_min_heartbeat_interval_ms=500)
    validate_group_configs(config, {"consumer.session.timeout.ms": "45000", "consumer.heartbeat.interval.ms": "15000"})
    validate_group_configs(config, {"consumer.session.timeout.ms": "5001"})  # over the broker's 5000 interval
    for configs in ({"consumer.session.timeout.ms": "5000"},
                    {"consumer.session.timeout.ms": "2000", "consumer.heartbeat.interval.ms": "2000"}):
        with pytest.raises(ValueError, match="^consumer.session.timeout.ms must be greater than "
                                             "consumer.heartbeat.interval.ms$"):
            validate_group_configs(config, configs)


def test_effective_settings_are_the_groups_configs_over_the_brokers():
    config = GroupConfig(group_consumer_heartbeat_interval_ms=6_000)
    assert consumer_group_settings(config, {}) == consumer_group_settings(config, {"share.session.timeout.ms": "1"})
    s = consumer_group_settings(config, {})
    assert (s.session_timeout_ms, s.heartbeat_interval_ms) == (45_000, 6_000)
    s = consumer_group_settings(config, {"consumer.session.timeout.ms": "50000"})
    assert (s.session_timeout_ms, s.heartbeat_interval_ms) == (50_000, 6_000)


def test_members_get_the_groups_heartbeat_interval_and_session_timeout_from_the_next_heartbeat():
    clock, topics = ManualClock(), FakeTopics()
    configs: dict[str, dict[str, str]] = {}
    config = GroupConfig(group_consumer_min_session_timeout_ms=1_000, group_consumer_min_heartbeat_interval_ms=100)
    coord = GroupCoordinator(clock, config, MemoryOffsetStore(), topics=topics,
                             consumer_settings=lambda gid: consumer_group_settings(config, configs.get(gid, {})))
    coord.load()
    topics.create("t", 2)

    def hb(group, member, epoch):
        return coord.consumer_group_heartbeat(1, group, member, epoch, None, None, 30_000 if epoch == 0 else -1,
                                              ["t"] if epoch == 0 else None, None, None, {} if epoch == 0 else None,
                                              "client", "127.0.0.1")

    assert hb("g", "m1", 0).heartbeat_interval_ms == 5_000
    assert hb("other", "o1", 0).heartbeat_interval_ms == 5_000
    configs["g"] = {"consumer.heartbeat.interval.ms": "250", "consumer.session.timeout.ms": "2000"}
    r = hb("g", "m1", 1)
    assert (r.error_code, r.heartbeat_interval_ms) == (ErrorCode.NONE, 250)
    assert hb("other", "o1", 1).heartbeat_interval_ms == 5_000  # another group keeps the broker's settings
    # m1's session is now 2 s from its last heartbeat: silent for longer, it is fenced; "other" keeps 45 s.
    clock.advance(1_900)
    assert "m1" in coord.consumer_manager.groups["g"].members
    clock.advance(200)
    assert "m1" not in coord.consumer_manager.groups["g"].members
    assert "o1" in coord.consumer_manager.groups["other"].members
    # Back to the broker's settings when the group's configs are deleted.
    del configs["g"]
    r = hb("g", "m2", 0)
    assert r.heartbeat_interval_ms == 5_000
    clock.advance(44_000)
    assert "m2" in coord.consumer_manager.groups["g"].members
    clock.advance(1_001)
    assert "m2" not in coord.consumer_manager.groups["g"].members
