"""The Java admin client reads kbroker's feature levels (describeFeatures: ApiVersions' supported and finalized
features) and changes them (updateFeatures), with Kafka's refusals; a finalized level survives a restart."""

from __future__ import annotations

from kbroker import Broker
from kbroker.handlers import TABLE
from support.java_client import java_client_or_skip


def test_java_admin_describes_and_updates_features(tmp_path):
    java = java_client_or_skip()
    with Broker(port=0, data_dir=tmp_path) as b:
        admin = java(b.bootstrap_servers)
        before = admin._call("describeFeatures")
        assert before["finalized"]["metadata.version"] == 33
        assert before["finalized"]["transaction.version"] == 2
        assert before["supported"]["transaction.version"] == [0, 2]
        assert ("group.version" in before["finalized"]) == (68 in TABLE)
        assert before["finalized"]["share.version"] == 1 and before["supported"]["share.version"] == [1, 1]
        for absent in ("kraft.version", "streams.version", "eligible.leader.replicas.version"):
            assert absent not in before["supported"] and absent not in before["finalized"]

        refused = admin._call("updateFeatures", updates={"transaction.version": [3, "UPGRADE"]})
        assert refused["transaction.version"].startswith("InvalidUpdateVersionException: The update failed for all "
                                                         "features since the following feature had an error: Invalid "
                                                         "update version 3 for feature transaction.version. Local "
                                                         "controller")
        refused = admin._call("updateFeatures", updates={"metadata.version": [32, "SAFE_DOWNGRADE"]})
        assert "only supports versions 33" in refused["metadata.version"]
        assert admin._call("updateFeatures", updates={"transaction.version": [0, "SAFE_DOWNGRADE"]},
                           validateOnly=True) == {"transaction.version": None}
        assert admin._call("describeFeatures")["finalized"]["transaction.version"] == 2

        assert admin._call("updateFeatures", updates={"transaction.version": [0, "SAFE_DOWNGRADE"]}) == {
            "transaction.version": None}
        after = admin._call("describeFeatures")
        assert "transaction.version" not in after["finalized"]
        assert after["epoch"] == before["epoch"] + 1
    with Broker(port=0, data_dir=tmp_path) as b:
        again = java(b.bootstrap_servers)._call("describeFeatures")
    assert "transaction.version" not in again["finalized"] and again["epoch"] == after["epoch"]
