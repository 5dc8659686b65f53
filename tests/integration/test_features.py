"""Feature levels (KIP-584) over a socket: what ApiVersions v3 and v4 report, UpdateFeatures' versions and
refusals as Kafka's FeatureControlManager words them, ALTER on the cluster, and a level finalized through one
broker of a cluster seen by the other."""

from __future__ import annotations

import pytest

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.errors import ErrorCode
from kbroker.security import acl
from kbroker.wire.messages import api_versions as AV
from kbroker.wire.messages import update_features as UF

Key = UF.UpdateFeaturesRequest.FeatureUpdateKey


def features(conn, version=4):
    r = conn.request(18, version, AV.ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    return ({f.name: (f.min_version, f.max_version) for f in r.supported_features},
            {f.name: (f.min_version_level, f.max_version_level) for f in r.finalized_features},
            r.finalized_features_epoch)


def update(conn, version, *keys, validate_only=False):
    return conn.request(57, version, UF.UpdateFeaturesRequest(feature_updates=list(keys), validate_only=validate_only))


@pytest.fixture
def conn():
    with Broker(port=0, storage="memory") as b:
        with BlockingConnection(b.host, b.port) as c:
            yield c


def test_api_versions_reports_supported_and_finalized_levels(conn):
    supported, finalized, epoch = features(conn, 4)
    assert supported["metadata.version"] == (33, 33) and supported["transaction.version"] == (0, 2)
    assert finalized["metadata.version"] == (33, 33) and finalized["transaction.version"] == (2, 2)
    # Share groups (KIP-932) are on: share.version 1 while ShareGroupHeartbeat is served.
    assert supported["share.version"] == (1, 1) and finalized["share.version"] == (1, 1)
    assert epoch == 0
    # Before v4 a supported feature whose lowest level is 0 is left out (KAFKA-17011).
    supported_v3, finalized_v3, _ = features(conn, 3)
    assert "transaction.version" not in supported_v3 and finalized_v3 == finalized
    # Before v3 there are no features at all.
    r = conn.request(18, 2, AV.ApiVersionsRequest())
    assert r.error_code == 0 and not r.supported_features


def test_update_features_refusals_change_nothing(conn):
    r = update(conn, 1, Key(feature="transaction.version", max_version_level=0, upgrade_type=1))
    assert (r.error_code, r.results) == (ErrorCode.INVALID_UPDATE_VERSION, [])
    assert r.error_message == ("The update failed for all features since the following feature had an error: Invalid "
                               "update version 0 for feature transaction.version. Can't downgrade the version of this "
                               "feature without setting the upgrade type to either safe or unsafe downgrade.")
    r = update(conn, 1, Key(feature="streams.version", max_version_level=1))
    assert r.error_message.endswith("Invalid update version 1 for feature streams.version. Local controller 0 does not "
                                    "support this feature.")
    r = update(conn, 1, Key(feature="share.version", max_version_level=2))
    assert r.error_message.endswith("Invalid update version 2 for feature share.version. Local controller 0 only "
                                    "supports versions 1")
    r = update(conn, 1, Key(feature="transaction.version", max_version_level=1, upgrade_type=9))
    assert "The controller does not support the given upgrade type." in r.error_message
    r = update(conn, 1, Key(feature="transaction.version", max_version_level=-1, upgrade_type=2))
    assert "A feature version cannot be less than 0." in r.error_message
    # The first refusal refuses the whole request: the valid downgrade beside it is not made.
    r = update(conn, 1, Key(feature="transaction.version", max_version_level=0, upgrade_type=2),
               Key(feature="metadata.version", max_version_level=34))
    assert r.error_code == ErrorCode.INVALID_UPDATE_VERSION
    assert features(conn)[1]["transaction.version"] == (2, 2) and features(conn)[2] == 0


def test_update_features_versions(conn):
    # v1 validate-only: the answer of a change, no change.
    r = update(conn, 1, Key(feature="transaction.version", max_version_level=0, upgrade_type=2), validate_only=True)
    assert (r.error_code, [(x.feature, x.error_code, x.error_message) for x in r.results]) == (
        0, [("transaction.version", 0, "NONE")])
    assert features(conn)[2] == 0
    # v0: AllowDowngrade is a safe downgrade.
    r = update(conn, 0, Key(feature="transaction.version", max_version_level=0, allow_downgrade=True))
    assert (r.error_code, [(x.feature, x.error_code) for x in r.results]) == (0, [("transaction.version", 0)])
    _, finalized, epoch = features(conn)
    assert "transaction.version" not in finalized and epoch == 1
    # v2: no per-feature results.
    r = update(conn, 2, Key(feature="transaction.version", max_version_level=1, upgrade_type=1))
    assert (r.error_code, r.results) == (0, [])
    _, finalized, epoch = features(conn)
    assert finalized["transaction.version"] == (1, 1) and epoch == 2


def test_update_features_needs_alter_on_the_cluster():
    with Broker(port=0, storage="memory", authorizer_enabled=True) as b:
        with BlockingConnection(b.host, b.port) as c:
            r = update(c, 2, Key(feature="transaction.version", max_version_level=0, upgrade_type=2))
            assert (r.error_code, r.results) == (ErrorCode.CLUSTER_AUTHORIZATION_FAILED, [])
            b.call(b.state.authorizer.create, acl.AclBinding(
                acl.CLUSTER, acl.CLUSTER_NAME, acl.PatternType.LITERAL, "User:ANONYMOUS", "*", acl.ALTER,
                acl.PermissionType.ALLOW))
            assert update(c, 2, Key(feature="transaction.version", max_version_level=0, upgrade_type=2)).error_code == 0


def test_levels_are_cluster_wide():
    with Broker(port=0, storage="memory", brokers=2) as b:
        first, second = (b.cluster.servers[n].port for n in b.node_ids)
        with BlockingConnection(b.host, first) as one, BlockingConnection(b.host, second) as two:
            assert update(one, 2, Key(feature="transaction.version", max_version_level=0, upgrade_type=2)).error_code == 0
            _, finalized, epoch = features(two)
    assert "transaction.version" not in finalized and epoch == 1
