"""DescribeConfigs (32): v1-4. Topic resources: every topic config with its effective value, where it came
from (the topic's override, a broker setting, or Kafka's default), its synonyms when asked (v1+), its type
(v3+) and its documentation (v3+, when asked). Broker resources: its node id lists every key Kafka lists,
the empty name the cluster-wide dynamic defaults, with Kafka's sources and synonyms (broker_configs.py).
Client metrics resources (KIP-714): the subscription's configs as set (source CLIENT_METRICS_CONFIG), none for
an unknown subscription. Group resources: every share group config (coordinator/group_config.py), the group's
value (GROUP_CONFIG) or the broker's group.share.* setting (DEFAULT_CONFIG), for any group id. Unknown topics get UNKNOWN_TOPIC_OR_PARTITION; other resource types INVALID_REQUEST.
Authorisation, as Kafka's ConfigHelper: DESCRIBE_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED) or, for
the broker and client metrics, on the cluster (CLUSTER_AUTHORIZATION_FAILED), or on the group
(GROUP_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..broker_configs import broker_configs
from ..coordinator.group_config import GROUP_CONFIGS, group_config_default
from ..errors import ErrorCode
from ..security import acl
from ..topic_config import TOPIC_CONFIGS
from ..wire.messages import describe_configs as API

R = API.DescribeConfigsResponse

TOPIC, BROKER, CLIENT_METRICS, GROUP = 2, 4, 16, 32
SOURCE_TOPIC, SOURCE_DEFAULT, SOURCE_CLIENT_METRICS, SOURCE_GROUP = 1, 5, 7, 8
CONFIG_TYPES = {"boolean": 1, "string": 2, "int": 3, "short": 4, "long": 5, "double": 6, "list": 7, "class": 8,
                "password": 9}


def topic_config_entries(broker, topic, keys, synonyms: bool, docs: bool) -> list:
    """As Kafka's ConfigHelper: the topic's override (TOPIC_CONFIG), then the synonyms of the broker setting
    that supplies its default, level by level (broker_configs.py)."""
    levels = broker_configs(broker)
    out = []
    for key in sorted(TOPIC_CONFIGS) if keys is None else keys:
        d = TOPIC_CONFIGS.get(key)
        if d is None or (keys is None and not d.listed and key not in topic.configs):
            continue
        syn = []
        if key in topic.configs:
            syn.append(R.DescribeConfigsSynonym(name=key, value=topic.configs[key], source=SOURCE_TOPIC))
        if d.broker_key:
            syn.extend(R.DescribeConfigsSynonym(name=n, value=v, source=s) for n, v, s in levels.synonyms(d.broker_key))
        source = syn[0].source if syn else SOURCE_DEFAULT
        out.append(R.DescribeConfigsResourceResult(
            name=key, value=topic.config(key), read_only=False, config_source=source, is_sensitive=False,
            synonyms=syn if synonyms else [], config_type=CONFIG_TYPES[d.type],
            documentation=d.doc if docs else None,
        ))
    return out


# Kafka's answers carry a message even without an error: "" for a described resource and for an unknown topic
# (ConfigHelper), the error's default message where authorisation is denied (KafkaApis).
DENIED_MESSAGES = {ErrorCode.TOPIC_AUTHORIZATION_FAILED: "Topic authorization failed.",
                   ErrorCode.CLUSTER_AUTHORIZATION_FAILED: "Cluster authorization failed.",
                   ErrorCode.GROUP_AUTHORIZATION_FAILED: "Group authorization failed."}


def group_config_entries(broker, group_id: str, keys, docs: bool) -> list:
    overrides = broker.controller.group_configs().get(group_id, {})
    out = []
    for name in sorted(GROUP_CONFIGS) if not keys else keys:
        if name not in GROUP_CONFIGS:
            continue
        kind = GROUP_CONFIGS[name][0]
        value = overrides.get(name, group_config_default(broker.group_config, name))
        out.append(R.DescribeConfigsResourceResult(
            name=name, value=value, read_only=False, config_source=SOURCE_GROUP if name in overrides else SOURCE_DEFAULT,
            is_sensitive=False, synonyms=[], config_type=CONFIG_TYPES[kind], documentation=None if not docs else ""))
    return out


def handle(ctx, req: API.DescribeConfigsRequest) -> R:
    broker = ctx.broker
    results = []
    for res in req.resources:
        denied = None
        if res.resource_type == TOPIC and not ctx.authorize(acl.DESCRIBE_CONFIGS, acl.TOPIC, res.resource_name):
            denied = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        elif res.resource_type in (BROKER, CLIENT_METRICS) and not ctx.authorize_cluster(acl.DESCRIBE_CONFIGS):
            denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        elif res.resource_type == GROUP and not ctx.authorize(acl.DESCRIBE_CONFIGS, acl.GROUP, res.resource_name):
            denied = ErrorCode.GROUP_AUTHORIZATION_FAILED
        if denied is not None:
            results.append(R.DescribeConfigsResult(error_code=denied, error_message=DENIED_MESSAGES[denied], configs=[],
                                                   resource_type=res.resource_type, resource_name=res.resource_name))
            continue
        if res.resource_type == TOPIC:
            topic = broker.topics.get(res.resource_name)
            if topic is None:
                results.append(R.DescribeConfigsResult(
                    error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, resource_type=TOPIC,
                    resource_name=res.resource_name, error_message=""))
                continue
            configs = topic_config_entries(broker, topic, res.configuration_keys, req.include_synonyms,
                                           req.include_documentation)
        elif res.resource_type == BROKER:
            message = None
            if res.resource_name != "":
                try:
                    if int(res.resource_name) != broker.config.node_id:
                        message = (f"Unexpected broker id, expected {broker.config.node_id} or empty string, "
                                   f"but received {res.resource_name}")
                except ValueError:
                    message = f"Broker id must be an integer, but it is: {res.resource_name}"
            if message is not None:
                results.append(R.DescribeConfigsResult(
                    error_code=ErrorCode.INVALID_REQUEST, resource_type=BROKER, resource_name=res.resource_name,
                    error_message=message))
                continue
            configs = broker_configs(broker).describe(res.resource_name, res.configuration_keys,
                                                      req.include_synonyms, req.include_documentation, R)
        elif res.resource_type == CLIENT_METRICS:
            if not res.resource_name:
                results.append(R.DescribeConfigsResult(
                    error_code=ErrorCode.INVALID_REQUEST, resource_type=CLIENT_METRICS, resource_name="",
                    error_message="Client metrics subscription name must not be empty"))
                continue
            subscription = broker.controller.client_metrics_subscriptions().get(res.resource_name, {})
            configs = [R.DescribeConfigsResourceResult(
                name=k, value=v, read_only=False, config_source=SOURCE_CLIENT_METRICS, is_sensitive=False,
                synonyms=[], config_type=CONFIG_TYPES["int" if k == "interval.ms" else "list"], documentation=None)
                for k, v in sorted(subscription.items())
                if not res.configuration_keys or k in res.configuration_keys]
        elif res.resource_type == GROUP:
            configs = group_config_entries(broker, res.resource_name, res.configuration_keys,
                                           req.include_documentation)
        else:
            results.append(R.DescribeConfigsResult(
                error_code=ErrorCode.INVALID_REQUEST, resource_type=res.resource_type,
                resource_name=res.resource_name, error_message=f"Unsupported resource type {res.resource_type}"))
            continue
        results.append(R.DescribeConfigsResult(error_code=0, error_message="", resource_type=res.resource_type,
                                               resource_name=res.resource_name, configs=configs))
    return R(throttle_time_ms=0, results=results)
