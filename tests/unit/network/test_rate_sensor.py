"""connection_quotas.RateSensor against the arithmetic of Kafka's Rate, SampledStat and QuotaUtils."""

from __future__ import annotations

from kbroker.connection_quotas import UNLIMITED, RateSensor


def test_a_burst_is_measured_against_the_whole_window():
    # 11 samples of 1 s: the elapsed time counts as at least 10 s, so 20 connections at once are 2/s.
    r = RateSensor(11, 1000)
    for _ in range(20):
        assert r.record_and_throttle_ms(0, 2, 1000) == 0
    assert r.rate(0) == 2.0
    # The 21st makes it 2.1/s: (2.1 - 2) / 2 x 10 s = 500 ms.
    assert r.record_and_throttle_ms(0, 2, 1000) == 500


def test_the_delay_is_bounded_by_one_quota_window():
    r = RateSensor(2, 1000)
    for _ in range(100):
        throttle = r.record_and_throttle_ms(0, 1, 1000)
    assert throttle == 1000


def test_old_samples_expire():
    r = RateSensor(2, 1000)
    for _ in range(10):
        r.record(1.0, 0)
    assert r.rate(500) == 10 / 1.5  # 0.5 s elapsed, padded to one full window: 1.5 s
    assert r.rate(1999) > 0
    assert r.rate(2000) == 0.0  # samples x window later nothing counts


def test_unlimited_never_throttles():
    r = RateSensor(11, 1000)
    assert all(r.record_and_throttle_ms(0, UNLIMITED, 1000) == 0 for _ in range(10_000))
