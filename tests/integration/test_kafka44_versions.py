"""The versions Kafka 4.2-4.4 added that kbroker serves, each answered as Kafka 4.4.0 answers (read off a real
broker): ApiVersions v5's cluster and node check (KIP-1242), ListOffsets v11's earliest pending upload
(KIP-1023, on a broker without tiered storage), DescribeLogDirs v5's IsCordoned (KIP-1066)."""

from __future__ import annotations

import pytest

from kbroker import Broker
from kbroker.client import BlockingClient, BlockingConnection
from kbroker.errors import ErrorCode
from kbroker.wire.messages import api_versions as AV
from kbroker.wire.messages import describe_log_dirs as DLD
from kbroker.wire.messages import list_offsets as LO
from kbroker.wire.messages import metadata as MD


@pytest.fixture(scope="module")
def broker():
    with Broker(port=0, storage="memory") as b:
        with BlockingClient(b.bootstrap_servers) as c:
            c.create_topic("k44", 1)
        yield b


def api_versions_v5(b, cluster_id, node_id):
    with BlockingConnection(b.host, b.port) as c:
        r = c.request(18, 5, AV.ApiVersionsRequest(client_software_name="t", client_software_version="1",
                                                   cluster_id=cluster_id, node_id=node_id))
        still_open = c.request(3, 12, MD.MetadataRequest(topics=None)).cluster_id == b.state.cluster_id
    return r, still_open


def test_api_versions_v5_checks_the_cluster_and_node(broker):
    cluster, node = broker.state.cluster_id, broker.state.node_id
    ok, _ = api_versions_v5(broker, cluster, node)
    assert ok.error_code == 0 and {k.api_key for k in ok.api_keys} >= {0, 1, 3, 18}
    assert ok.finalized_features_epoch >= 0
    none, _ = api_versions_v5(broker, None, -1)
    assert none.error_code == 0 and none.api_keys
    for cluster_id, node_id, code in ((cluster, node + 1, ErrorCode.REBOOTSTRAP_REQUIRED),
                                      ("another-cluster", node, ErrorCode.REBOOTSTRAP_REQUIRED),
                                      (cluster, -1, ErrorCode.INVALID_REQUEST),
                                      (None, node, ErrorCode.INVALID_REQUEST)):
        r, still_open = api_versions_v5(broker, cluster_id, node_id)
        assert (r.error_code, r.api_keys, r.finalized_features_epoch) == (code, [], -1), (cluster_id, node_id)
        assert still_open


def list_offsets(conn, version, timestamp):
    Q = LO.ListOffsetsRequest
    r = conn.request(2, version, Q(replica_id=-1, isolation_level=0, timeout_ms=1000, topics=[Q.ListOffsetsTopic(
        name="k44", partitions=[Q.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1,
                                                        timestamp=timestamp)])]))
    p = r.topics[0].partitions[0]
    return p.error_code, p.offset, p.timestamp, p.leader_epoch


def test_list_offsets_v11_earliest_pending_upload(broker):
    with BlockingConnection(broker.host, broker.port) as c:
        assert list_offsets(c, 11, -6) == (0, -1, -1, -1)
        assert list_offsets(c, 10, -6)[0] == ErrorCode.UNSUPPORTED_VERSION
        assert list_offsets(c, 11, -2) == (0, 0, -1, 0)


def test_describe_log_dirs_v5(broker):
    with BlockingConnection(broker.host, broker.port) as c:
        r = c.request(35, 5, DLD.DescribeLogDirsRequest(topics=None))
    (d,) = r.results
    assert d.error_code == 0 and d.is_cordoned is False
    assert any(t.name == "k44" for t in d.topics)


def list_config_resources(conn, version, types=()):
    from kbroker.wire.messages import list_config_resources as LCR

    r = conn.request(74, version, LCR.ListConfigResourcesRequest(resource_types=list(types)))
    return r.error_code, sorted((c.resource_type, c.resource_name) for c in r.config_resources)


def test_list_config_resources(broker):
    node = str(broker.state.node_id)
    with BlockingConnection(broker.host, broker.port) as c:
        from kbroker.wire.messages import incremental_alter_configs as IAC

        IQ = IAC.IncrementalAlterConfigsRequest
        assert c.request(44, 1, IQ(resources=[IQ.AlterConfigsResource(
            resource_type=16, resource_name="sub-k44", configs=[IQ.AlterableConfig(
                name="metrics", config_operation=0, value="*")])])).responses[0].error_code == 0
        # v0 is the client metrics subscriptions; v1 by type, all when none given (Kafka also lists each broker
        # as a broker logger, whose configs kbroker does not serve).
        assert list_config_resources(c, 0) == (0, [(16, "sub-k44")])
        assert list_config_resources(c, 1) == (0, [(2, "k44"), (4, node), (16, "sub-k44")])
        assert list_config_resources(c, 1, [2, 16]) == (0, [(2, "k44"), (16, "sub-k44")])
        assert list_config_resources(c, 1, [32]) == (0, [])
        assert list_config_resources(c, 1, [5]) == (ErrorCode.UNSUPPORTED_VERSION, [])
