"""The Java admin client (kafka-clients 4.4) sets and reads client quotas on kbroker: alterClientQuotas with
defaults, removals, validateOnly and Kafka's refusals; describeClientQuotas with exact, default and any-name
filters, strict or not, and the filter Kafka refuses."""

from __future__ import annotations

from kbroker import Broker
from support.java_client import java_client_or_skip


def test_java_admin_alters_and_describes_client_quotas(tmp_path):
    java = java_client_or_skip()
    with Broker(port=0, data_dir=tmp_path) as b:
        admin = java(b.bootstrap_servers)
        assert admin._call("alterClientQuotas", entries=[
            {"entity": {"user": "alice"}, "ops": {"producer_byte_rate": 1048576, "request_percentage": 50.5}},
            {"entity": {"user": "alice", "client-id": None}, "ops": {"consumer_byte_rate": 2048}},
            {"entity": {"client-id": "app"}, "ops": {"controller_mutation_rate": 2.5}},
            {"entity": {"ip": None}, "ops": {"connection_creation_rate": 10}},
            {"entity": {"ip": "127.0.0.1"}, "ops": {"producer_byte_rate": 10}},
            {"entity": {"user": "bob"}, "ops": {"consumer_byte_rate": 1.5}},
            {"entity": {"user": "bob", "ip": "10.0.0.1"}, "ops": {"request_percentage": 1}},
        ]) == [None, None, None, None,
               "InvalidRequestException: Invalid configuration key producer_byte_rate",
               "InvalidRequestException: consumer_byte_rate cannot be a fractional value.",
               "InvalidRequestException: Invalid quota entity combination, IP entity shouldnot be combined with "
               "User or ClientId"]
        assert admin._call("alterClientQuotas", validateOnly=True, entries=[
            {"entity": {"user": "carol"}, "ops": {"producer_byte_rate": 5}}]) == [None]
        assert admin._call("alterClientQuotas", entries=[
            {"entity": {"user": "alice"}, "ops": {"request_percentage": None}}]) == [None]

        def described(components, strict=False):
            found = admin._call("describeClientQuotas", components=components, strict=strict)
            if isinstance(found, dict):
                return found
            return {tuple(sorted(e["entity"].items(), key=lambda p: p[0])): e["values"] for e in found}

        assert described([]) == {
            (("user", "alice"),): {"producer_byte_rate": 1048576.0},
            (("client-id", None), ("user", "alice")): {"consumer_byte_rate": 2048.0},
            (("client-id", "app"),): {"controller_mutation_rate": 2.5},
            (("ip", None),): {"connection_creation_rate": 10.0},
        }
        assert described([["user", "exact", "alice"]], strict=True).keys() == {(("user", "alice"),)}
        assert described([["user", "exact", "alice"], ["client-id", "default", None]]).keys() == \
            {(("client-id", None), ("user", "alice"))}
        assert described([["client-id", "specified", None]], strict=True).keys() == {(("client-id", "app"),)}
        assert described([["ip", "default", None]]).keys() == {(("ip", None),)}
        assert described([["ip", "specified", None], ["user", "specified", None]]) == {
            "error": "InvalidRequestException: Invalid entity filter component combination. IP filter component "
                     "should not be used with user or clientId filter component."}
    with Broker(port=0, data_dir=tmp_path) as b:  # kept across a restart
        assert java(b.bootstrap_servers)._call("describeClientQuotas", components=[["ip", "default", None]],
                                               strict=False) == [
            {"entity": {"ip": None}, "values": {"connection_creation_rate": 10.0}}]
