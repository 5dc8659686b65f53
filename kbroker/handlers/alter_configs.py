"""AlterConfigs (33): v0-2. Replaces a topic's whole set of overrides (keys not named go back to their
defaults), validated first (INVALID_CONFIG); ``validate_only`` changes nothing. Changes persist and take
effect at once. Broker resources (its node id, or "" for the cluster default): dynamic broker configs
(KIP-226, broker_configs.py): the resource's whole set of dynamic configs is replaced. Client metrics
resources (KIP-714, client_metrics.py): a subscription's configs, validated, kept by the controller; no
configs delete it.
Authorisation: ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED) or, for the broker and client metrics,
on the cluster (CLUSTER_AUTHORIZATION_FAILED), as KafkaApis.
"""

from __future__ import annotations

from .. import client_metrics
from ..broker_configs import broker_configs
from ..controller import eager
from ..coordinator.group_config import validate_group_configs
from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..topic_config import validate_topic_configs
from ..wire.messages import alter_configs as API

R = API.AlterConfigsResponse
TOPIC, BROKER, CLIENT_METRICS, GROUP = 2, 4, 16, 32


def alter_resources(ctx, req, R, new_topic_configs, new_broker_configs, new_client_metrics_configs=None,
                    new_group_configs=None):
    """The loop AlterConfigs and IncrementalAlterConfigs share: per resource, check the principal may
    alter it, compute the topic's new overrides with ``new_topic_configs(topic, resource)``, the broker's
    new dynamic configs with ``new_broker_configs(current, resource)`` or a client metrics subscription's
    with ``new_client_metrics_configs(current, resource)`` (the broker's function if not given; they raise
    KafkaError for bad ones), a group's with ``new_group_configs(current, resource)`` (GROUP resources are
    refused when not given), and apply them unless ``validate_only``. Returns the response (``R``), or a
    coroutine giving it once the controller has every topic's and group's change (a database's)."""
    broker = ctx.broker
    out = []
    waiting = []  # (result, change) of the topic changes the controller has not finished yet
    for res in req.resources:
        err, msg = 0, None
        try:
            names = [c.name for c in res.configs]  # ConfigAdminManager.preprocess: before anything else
            if len(set(names)) != len(names):
                raise KafkaError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
            if res.resource_type == TOPIC and not ctx.authorize(acl.ALTER_CONFIGS, acl.TOPIC, res.resource_name):
                raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED, None)
            if res.resource_type in (BROKER, CLIENT_METRICS) and not ctx.authorize_cluster(acl.ALTER_CONFIGS):
                raise KafkaError(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, None)
            if res.resource_type == GROUP and new_group_configs is not None and \
                    not ctx.authorize(acl.ALTER_CONFIGS, acl.GROUP, res.resource_name):
                raise KafkaError(ErrorCode.GROUP_AUTHORIZATION_FAILED, None)
            if res.resource_type == TOPIC:
                topic = broker.topics.get(res.resource_name)
                if topic is None:
                    raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                     f"The topic '{res.resource_name}' does not exist.")
                new = new_topic_configs(topic, res)
                if not req.validate_only:
                    _start(broker.set_topic_configs(topic, new), waiting, len(out))
            elif res.resource_type == BROKER:
                configs = broker_configs(broker)
                configs.check_resource_name(res.resource_name)
                new = new_broker_configs(configs.current(res.resource_name), res)
                configs.replace(res.resource_name, new, req.validate_only)
            elif res.resource_type == CLIENT_METRICS:
                names = [c.name for c in res.configs]
                if len(set(names)) != len(names):
                    raise KafkaError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
                current = broker.controller.client_metrics_subscriptions().get(res.resource_name, {})
                new = (new_client_metrics_configs or new_broker_configs)(current, res)
                client_metrics.validate(res.resource_name, new)
                if not req.validate_only:
                    _start(broker.controller.set_client_metrics_subscription(res.resource_name, new), waiting,
                           len(out))
            elif res.resource_type == GROUP and new_group_configs is not None:
                if not res.resource_name:
                    raise KafkaError(ErrorCode.INVALID_REQUEST, "Group name must not be empty")
                new = new_group_configs(broker.controller.group_configs().get(res.resource_name, {}), res)
                try:
                    validate_group_configs(broker.group_config, new)
                except ValueError as e:
                    raise KafkaError(ErrorCode.INVALID_CONFIG, str(e)) from None
                if not req.validate_only:
                    _start(broker.controller.set_group_configs(res.resource_name, new), waiting, len(out))
            else:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {res.resource_type}")
        except KafkaError as e:
            err, msg = e.code, e.message
        out.append(R.AlterConfigsResourceResponse(error_code=err, error_message=msg,
                                                  resource_type=res.resource_type, resource_name=res.resource_name))
    response = R(throttle_time_ms=0, responses=out)
    return _when_changed(response, waiting) if waiting else response


def _start(change, waiting: list, index: int) -> None:
    """Start a controller change for the resource answered at ``index``: done at once (its error raised
    here), or left in ``waiting`` for the answer to wait for (a database's)."""
    started = eager(change)
    if started.done():
        started.result()
    else:
        waiting.append((index, started))


async def _when_changed(response, waiting):
    for i, change in waiting:
        try:
            await change
        except KafkaError as e:
            response.responses[i].error_code, response.responses[i].error_message = e.code, e.message
    return response


def _replace_all(topic, res) -> dict[str, str]:
    configs = {c.name: c.value for c in res.configs}
    validate_topic_configs(configs)
    return {k: v for k, v in configs.items() if v is not None}


def _replace_broker(current, res) -> dict[str, str]:
    nulls = [c.name for c in res.configs if c.value is None]
    if nulls:
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Null value not supported for : " + ", ".join(nulls))
    return {c.name: c.value for c in res.configs}


def handle(ctx, req: API.AlterConfigsRequest) -> R:
    return alter_resources(ctx, req, R, _replace_all, _replace_broker)
