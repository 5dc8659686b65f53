"""Broker settings under Kafka's names: properties files, KAFKA_* environment variables, --set."""

from __future__ import annotations

import argparse
import logging

import pytest

from support.brokerproc import BrokerProcess
from kbroker.client import BlockingClient
from kbroker.cli import build_config
from kbroker.config import BrokerConfig, apply_settings, env_key, read_properties, settings_from_env


def _args(**kw):
    base = dict(host=None, port=None, data_dir=None, storage=None, advertised_host=None, num_partitions=None,
                fsync=None, config=None, set=[], control_port=None, control_host=None,
                emulate_kafka=None)
    base.update(kw)
    return argparse.Namespace(**base)


def test_env_keys_map_as_the_kafka_image_does():
    assert env_key("KAFKA_NUM_PARTITIONS") == "num.partitions"
    assert env_key("KAFKA_LOG_RETENTION_MS") == "log.retention.ms"
    assert env_key("KAFKA_LISTENER_NAME_INTERNAL_SSL__CLIENT_AUTH") == "listener.name.internal.ssl_client.auth"
    assert env_key("KAFKA_SOME___DASHED") == "some-dashed"
    assert settings_from_env({"KAFKA_NUM_PARTITIONS": "3", "KAFKA_HEAP_OPTS": "-Xmx1G", "PATH": "/bin"}) == {
        "num.partitions": "3"}


def test_properties_file(tmp_path):
    p = tmp_path / "server.properties"
    p.write_text("# comment\n! also a comment\nnum.partitions=4\nlog.retention.hours = 2\n"
                 "listeners=PLAINTEXT://127.0.0.1:19092\nauto.create.topics.enable: false\n"
                 "log.dirs=/tmp/a,/tmp/b\nlong.key=one\\\n  two\n")
    props = read_properties(str(p))
    assert props["long.key"] == "onetwo"
    config = BrokerConfig()
    unknown = apply_settings(config, props)
    assert unknown == ["long.key"]
    assert config.num_partitions == 4 and config.port == 19092 and config.host == "127.0.0.1"
    assert config.auto_create_topics_enable is False and config.data_dir == "/tmp/a"
    assert config.topic_defaults["retention.ms"] == str(2 * 3600000)


def test_retention_ms_wins_over_hours():
    config = BrokerConfig()
    apply_settings(config, {"log.retention.ms": "5000", "log.retention.hours": "1"})
    assert config.topic_defaults["retention.ms"] == "5000"


def test_unknown_keys_are_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="kbroker.config"):
        assert apply_settings(BrokerConfig(), {"no.such.setting": "1"}) == ["no.such.setting"]
    assert "no.such.setting" in caplog.text


def test_bad_values_are_refused():
    with pytest.raises(ValueError):
        apply_settings(BrokerConfig(), {"num.partitions": "many"})
    with pytest.raises(ValueError):
        apply_settings(BrokerConfig(), {"log.cleanup.policy": "shred"})


def test_precedence_file_env_set_flag(tmp_path):
    p = tmp_path / "server.properties"
    p.write_text("num.partitions=2\nmessage.max.bytes=1000\ngroup.max.size=7\n")
    env = {"KAFKA_NUM_PARTITIONS": "3", "KAFKA_MESSAGE_MAX_BYTES": "2000"}
    config = build_config(_args(config=str(p), set=["num.partitions=5"]), environ=env)
    assert config.num_partitions == 5 and config.message_max_bytes == 2000 and config.group_max_size == 7
    config = build_config(_args(config=str(p), set=["num.partitions=5"], num_partitions=9), environ=env)
    assert config.num_partitions == 9


def test_a_broker_started_with_a_config_file_uses_it(tmp_path):
    p = tmp_path / "server.properties"
    p.write_text("num.partitions=3\nlog.retention.ms=123456\n")
    with BrokerProcess(tmp_path / "data", "--config", str(p)) as b:
        with BlockingClient(b.bootstrap_servers) as admin:
            md = admin.metadata(None)
            assert md.topics == []
        # Auto-created through Metadata, with num.partitions from the file.
        with BlockingClient(b.bootstrap_servers) as admin:
            from kbroker.wire.messages import metadata as M

            resp = admin.send(3, M.MetadataRequest(topics=[M.MetadataRequest.MetadataRequestTopic(name="auto")],
                                                         allow_auto_topic_creation=True))
            assert len(resp.topics[0].partitions) == 3
            from kbroker.wire.messages import describe_configs as D

            resp = admin.send(32, D.DescribeConfigsRequest(resources=[D.DescribeConfigsRequest.DescribeConfigsResource(
                resource_type=2, resource_name="auto", configuration_keys=["retention.ms"])], include_synonyms=True))
            entry = resp.results[0].configs[0]
            assert entry.value == "123456" and entry.config_source == 4  # STATIC_BROKER_CONFIG
