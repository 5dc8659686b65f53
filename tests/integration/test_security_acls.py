"""ACLs with stock clients: a user without WRITE gets TopicAuthorizationFailed, gains it through CreateAcls
(the admin client) and loses it through DeleteAcls; super users bypass ACLs; Metadata hides what a principal
may not describe and reports authorised operations; groups, transactional ids and the cluster are checked
where Kafka checks them; the principal of a client certificate and of an OAUTHBEARER token is what ACLs name."""

from __future__ import annotations

import uuid

import pytest

from kbroker.errors import ErrorCode
from kbroker.security import acl
from kbroker.wire.messages import describe_acls as DA
from kbroker.wire.messages import find_coordinator as FC
from kbroker.wire.messages import init_producer_id as IP
from kbroker.wire.messages import metadata as MD
from kbroker.client import BlockingConnection
from support.securityhelpers import TIMEOUT_S, confluent_conf, confluent_consume, confluent_produce, host_port, make_certs, \
    start_broker

CLIENT_DN = "User:CN=client,OU=kbroker-test,O=kbroker"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def broker(certs):
    b = start_broker(certs, acl=True, users=(("alice", "alice-secret"), ("admin", "admin-secret")))
    yield b
    b.stop()


def admin_client(broker, certs):
    from confluent_kafka.admin import AdminClient

    return AdminClient(confluent_conf(broker.listeners, certs, "SASL_SSL", "PLAIN", "admin", "admin-secret"))


def alice(broker, certs):
    return confluent_conf(broker.listeners, certs, "SASL_SSL", "SCRAM-SHA-256", "alice", "alice-secret")


def binding(principal, op, name, rtype="TOPIC", pattern="LITERAL", permission="ALLOW"):
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    return AclBinding(getattr(ResourceType, rtype), name, getattr(ResourcePatternType, pattern), principal, "*",
                      getattr(AclOperation, op), getattr(AclPermissionType, permission))


def create_acls(admin, *bindings):
    for f in admin.create_acls(list(bindings)).values():
        f.result(TIMEOUT_S)


def new_topic(admin) -> str:
    from confluent_kafka.admin import NewTopic

    name = f"acl-{uuid.uuid4().hex[:10]}"
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(TIMEOUT_S)
    return name


def test_write_granted_by_create_acls_and_taken_back_by_delete_acls(broker, certs):
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType, \
        ResourceType

    admin = admin_client(broker, certs)
    t = new_topic(admin)
    (err,) = confluent_produce(alice(broker, certs), t, [b"no"])
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    create_acls(admin, binding("User:alice", "WRITE", t))
    assert confluent_produce(alice(broker, certs), t, [b"yes"]) == [None]
    described = admin.describe_acls(AclBindingFilter(ResourceType.TOPIC, t, ResourcePatternType.ANY, None, None,
                                                     AclOperation.ANY, AclPermissionType.ANY)).result(TIMEOUT_S)
    assert [(b.principal, b.operation) for b in described] == [("User:alice", AclOperation.WRITE)]

    flt = AclBindingFilter(ResourceType.TOPIC, t, ResourcePatternType.LITERAL, "User:alice", None, AclOperation.ANY,
                           AclPermissionType.ANY)
    (deleted,) = [f.result(TIMEOUT_S) for f in admin.delete_acls([flt]).values()]
    assert len(deleted) == 1
    (err,) = confluent_produce(alice(broker, certs), t, [b"no again"])
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_super_users_bypass_acls(broker, certs):
    conf = confluent_conf(broker.listeners, certs, "SASL_SSL", "SCRAM-SHA-512", "admin", "admin-secret")
    t = f"acl-{uuid.uuid4().hex[:10]}"
    assert confluent_produce(conf, t, [b"admin writes anywhere"]) == [None]  # auto-created, too
    assert confluent_consume(conf, t, 1) == [b"admin writes anywhere"]


def test_consuming_needs_read_on_topic_and_group(broker, certs):
    admin = admin_client(broker, certs)
    t = new_topic(admin)
    create_acls(admin, binding("User:alice", "WRITE", t), binding("User:alice", "READ", t))
    assert confluent_produce(alice(broker, certs), t, [b"m"]) == [None]
    group = f"g-{t}"
    with pytest.raises(AssertionError, match="GROUP_AUTHORIZATION_FAILED|Group authorization"):
        confluent_consume(alice(broker, certs), t, 1, group=group)
    create_acls(admin, binding("User:alice", "READ", group, rtype="GROUP"))
    assert confluent_consume(alice(broker, certs), t, 1, group=group) == [b"m"]


def test_metadata_hides_topics_a_principal_may_not_describe(broker, certs):
    from confluent_kafka.admin import AdminClient

    admin = admin_client(broker, certs)
    visible, hidden = new_topic(admin), new_topic(admin)
    create_acls(admin, binding("User:alice", "READ", visible))
    topics = AdminClient(alice(broker, certs)).list_topics(timeout=TIMEOUT_S).topics
    assert visible in topics and hidden not in topics
    assert hidden in admin.list_topics(timeout=TIMEOUT_S).topics


def test_metadata_authorized_operations_and_named_topics(broker, certs):
    """Over PLAINTEXT the principal is User:ANONYMOUS."""
    admin = admin_client(broker, certs)
    visible, hidden = new_topic(admin), new_topic(admin)
    create_acls(admin, binding("User:ANONYMOUS", "READ", visible), binding("User:ANONYMOUS", "ALTER_CONFIGS", visible))
    raw = BlockingConnection(*host_port(broker.listeners["PLAINTEXT"]))
    try:
        req = MD.MetadataRequest(topics=[MD.MetadataRequest.MetadataRequestTopic(name=n) for n in (visible, hidden)],
                                 allow_auto_topic_creation=False, include_cluster_authorized_operations=True,
                                 include_topic_authorized_operations=True)
        r = raw.request(3, 9, req)
        by_name = {t.name: t for t in r.topics}
        assert by_name[visible].error_code == 0
        assert by_name[visible].topic_authorized_operations == acl.bit_set(
            [acl.READ, acl.DESCRIBE, acl.ALTER_CONFIGS, acl.DESCRIBE_CONFIGS])
        assert by_name[hidden].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
        assert r.cluster_authorized_operations == 0  # no DESCRIBE on the cluster
        everything = raw.request(3, 9, MD.MetadataRequest(topics=None))
        assert visible in {t.name for t in everything.topics} and hidden not in {t.name for t in everything.topics}
        auto = raw.request(3, 9, MD.MetadataRequest(topics=[MD.MetadataRequest.MetadataRequestTopic(name="new-one")],
                                                   allow_auto_topic_creation=True))
        assert auto.topics[0].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
        assert raw.request(29, 1, DA.DescribeAclsRequest(resource_type_filter=1, operation=1, permission_type=1,
                                                         pattern_type_filter=1)).error_code == \
            ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        assert raw.request(22, 1, IP.InitProducerIdRequest(transactional_id=None)).error_code == \
            ErrorCode.CLUSTER_AUTHORIZATION_FAILED  # no IDEMPOTENT_WRITE, no WRITE on any topic
        assert raw.request(22, 1, IP.InitProducerIdRequest(transactional_id="tx", transaction_timeout_ms=60000)) \
            .error_code == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        assert raw.request(10, 1, FC.FindCoordinatorRequest(key="g", key_type=0)).error_code == \
            ErrorCode.GROUP_AUTHORIZATION_FAILED
    finally:
        raw.close()


def test_client_certificate_subject_is_the_principal(broker, certs):
    from confluent_kafka import KafkaError

    admin = admin_client(broker, certs)
    mine, other = new_topic(admin), new_topic(admin)
    create_acls(admin, binding(CLIENT_DN, "WRITE", mine))
    conf = confluent_conf(broker.listeners, certs, "SSL", **{"ssl.certificate.location": certs["client-cert.pem"],
                                                             "ssl.key.location": certs["client-key.pem"]})
    assert confluent_produce(conf, mine, [b"by certificate"]) == [None]
    (err,) = confluent_produce(conf, other, [b"not here"])
    assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_oauthbearer_principal_is_the_tokens_subject(broker, certs):
    from confluent_kafka import KafkaError

    admin = admin_client(broker, certs)
    t = new_topic(admin)
    create_acls(admin, binding("User:bob", "WRITE", t))

    def conf(principal):
        return confluent_conf(broker.listeners, certs, "SASL_PLAINTEXT", "OAUTHBEARER",
                              **{"sasl.oauthbearer.config": f"principal={principal}",
                                 "enable.sasl.oauthbearer.unsecure.jwt": True})

    assert confluent_produce(conf("bob"), t, [b"bob"]) == [None]
    (err,) = confluent_produce(conf("eve"), t, [b"eve"])
    assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_prefixed_acls_and_wildcard_principal(broker, certs):
    admin = admin_client(broker, certs)
    prefix = f"pre-{uuid.uuid4().hex[:6]}-"
    create_acls(admin, binding("User:*", "ALL", prefix, pattern="PREFIXED"),
                binding("User:*", "READ", "g-" + prefix, rtype="GROUP", pattern="PREFIXED"))
    assert confluent_produce(alice(broker, certs), prefix + "x", [b"p"]) == [None]  # CREATE and WRITE by prefix
    assert confluent_consume(alice(broker, certs), prefix + "x", 1) == [b"p"]


def test_acl_apis_validate_like_kafka(broker, certs):
    from confluent_kafka import KafkaException

    admin = admin_client(broker, certs)
    with pytest.raises(KafkaException, match="kafka-cluster"):
        create_acls(admin, binding("User:alice", "ALTER", "not-the-cluster", rtype="BROKER"))
