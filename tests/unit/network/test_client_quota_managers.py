"""client_quotas: Kafka's precedence of quota entities, the throttle time of its quota sensors, KIP-599's token
bucket, and the controller's store of quotas across a restart."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kbroker.client_quotas import ClientQuotaManager, MutationQuota, TokenBucket, _Sensor, find_quota
from kbroker.controller import InProcessController, run_now
from kbroker.errors import ErrorCode, KafkaError
from kbroker.topic_store import FileTopicStore

CONFIG = SimpleNamespace(quota_window_num=11, quota_window_size_seconds=1)


def test_the_most_specific_entity_that_sets_the_key_wins():
    quotas = {
        (("client-id", None),): {"producer_byte_rate": 8},
        (("client-id", "app"),): {"producer_byte_rate": 7},
        (("user", None),): {"producer_byte_rate": 6, "consumer_byte_rate": 60},
        (("client-id", None), ("user", None)): {"producer_byte_rate": 5},
        (("client-id", "app"), ("user", None)): {"producer_byte_rate": 4},
        (("user", "alice"),): {"producer_byte_rate": 3},
        (("client-id", None), ("user", "alice")): {"producer_byte_rate": 2},
        (("client-id", "app"), ("user", "alice")): {"producer_byte_rate": 1},
    }
    assert find_quota(quotas, "producer_byte_rate", "alice", "app") == (1, ("alice", "app"))
    assert find_quota(quotas, "producer_byte_rate", "alice", "other") == (2, ("alice", "other"))
    assert find_quota(quotas, "producer_byte_rate", "bob", "app") == (4, ("bob", "app"))
    assert find_quota(quotas, "producer_byte_rate", "bob", "other") == (5, ("bob", "other"))
    # per key: alice has no consumer_byte_rate of her own, the user default's applies to her alone
    assert find_quota(quotas, "consumer_byte_rate", "alice", "app") == (60, ("alice", ""))
    del quotas[(("client-id", None), ("user", None))], quotas[(("client-id", "app"), ("user", None))]
    del quotas[(("user", None),)]
    assert find_quota(quotas, "producer_byte_rate", "bob", "app") == (7, ("", "app"))
    assert find_quota(quotas, "producer_byte_rate", "bob", "x") == (8, ("", "x"))
    assert find_quota({}, "producer_byte_rate", "bob", "x") is None


def test_a_user_quota_is_shared_by_its_client_ids():
    quotas = {(("user", "alice"),): {"producer_byte_rate": 1000.0}}
    m = ClientQuotaManager("producer_byte_rate", CONFIG, lambda: quotas)
    # 11 samples of 1 s: a start counts as 10 s, so 10,000 bytes at once are 1,000/s
    assert m.record_and_get_throttle_ms("alice", "a", 5000, now_ms=0) == 0
    assert m.record_and_get_throttle_ms("alice", "b", 5000, now_ms=0) == 0
    # 1,000 more make 1,100/s: (1100 - 1000) / 1000 x 10 s
    assert m.record_and_get_throttle_ms("alice", "c", 1000, now_ms=0) == 1000
    assert m.record_and_get_throttle_ms("bob", "a", 10 ** 9, now_ms=0) == 0  # no quota, no throttle
    assert list(m.sensors) == [("alice", "")]
    m.unrecord("alice", "c", 1000, now_ms=0)
    assert m.rates(now_ms=0) == {("alice", ""): 1000.0}


def test_request_time_throttle_is_capped_at_one_window():
    quotas = {(("client-id", "busy"),): {"request_percentage": 1.0}}
    m = ClientQuotaManager("request_percentage", CONFIG, lambda: quotas, max_throttle_windows=1)
    assert m.record_and_get_throttle_ms("u", "busy", 500.0, now_ms=0) == 1000


def test_max_value_in_a_quota_window():
    quotas = {(("client-id", "c"),): {"consumer_byte_rate": 100.0}}
    m = ClientQuotaManager("consumer_byte_rate", CONFIG, lambda: quotas)
    assert m.max_value_in_window("u", "c") == 1000
    assert m.max_value_in_window("u", "other") == 2147483647


def test_the_token_bucket_lets_a_request_go_below_zero_then_refuses_until_it_refills(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("kbroker.client_quotas._now_ms", lambda: now[0])
    sensor = _Sensor(None, TokenBucket(2, 1000), 0.0)
    strict = MutationQuota(sensor, 5.0, 0.0, strict=True)
    strict.record(12)  # a burst of 5/s x 2 s = 10 tokens: the request may take 12
    assert sensor.bucket.tokens == -2 and strict.throttle_ms == 400
    with pytest.raises(KafkaError) as refused:
        strict.record(1)
    assert refused.value.code == ErrorCode.THROTTLING_QUOTA_EXCEEDED
    now[0] = 400.0  # refilled to 0: the next may start
    MutationQuota(sensor, 5.0, 400.0, strict=True).record(1)
    permissive = MutationQuota(sensor, 5.0, 400.0, strict=False)
    permissive.record(4)  # permissive: always done, only throttled
    assert sensor.bucket.tokens == -5 and permissive.throttle_ms == 1000


def test_the_in_process_controller_keeps_quotas_across_a_restart(tmp_path):
    controller = InProcessController(FileTopicStore(tmp_path / "metadata.json"))
    run_now(controller.alter_client_quotas({(("user", "alice"),): {"producer_byte_rate": 1024.0},
                                            (("ip", None),): {"connection_creation_rate": 5.0}}))
    run_now(controller.alter_client_quotas({(("ip", None),): {}}))
    controller.close()
    again = InProcessController(FileTopicStore(tmp_path / "metadata.json"))
    assert again.client_quotas() == {(("user", "alice"),): {"producer_byte_rate": 1024.0}}
    again.close()
