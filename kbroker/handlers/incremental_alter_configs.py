"""IncrementalAlterConfigs (44): v0-1 (KIP-339). Per key: SET (0), DELETE (1, back to the default),
APPEND (2) and SUBTRACT (3) for list configs (``cleanup.policy``). Validated as a whole before anything
changes (INVALID_CONFIG); ``validate_only`` changes nothing. Broker resources (its node id, or "" for the
cluster default): the same operations on its dynamic broker configs (KIP-226, broker_configs.py); APPEND
and SUBTRACT start from the dynamic value, else Kafka's default, as ConfigAdminManager does. Client metrics
resources (KIP-714): the same operations on a subscription's configs (``metrics`` and ``match`` are lists).
Group resources (KIP-848, KIP-932): SET and DELETE of a group's share group configs (coordinator/group_config.py:
``share.session.timeout.ms``, ``share.heartbeat.interval.ms``, ``share.record.lock.duration.ms``,
``share.delivery.count.limit``, ``share.partition.max.record.locks``, ``share.auto.offset.reset``,
``share.isolation.level``, ``share.renew.acknowledge.enable``) within the broker's bounds; the consumer.* and
streams.* group configs are refused (INVALID_CONFIG).
Authorisation: ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED), the group (GROUP_AUTHORIZATION_FAILED)
or, for the broker, on the cluster (CLUSTER_AUTHORIZATION_FAILED), as KafkaApis.
"""

from __future__ import annotations

from ..errors import ErrorCode, KafkaError
from ..client_metrics import MATCH, METRICS
from ..kafka_broker_configs import KAFKA_BROKER_CONFIGS
from ..topic_config import TOPIC_CONFIGS, validate_topic_configs
from ..wire.messages import incremental_alter_configs as API
from .alter_configs import alter_resources

R = API.IncrementalAlterConfigsResponse
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def _not_a_list(c) -> str:
    """The controller's refusal of APPEND or SUBTRACT on a key that is not a list (ConfigurationControlManager)."""
    operation = "APPEND" if c.config_operation == APPEND else "SUBTRACT"
    return f"Can't {operation} to key {c.name} because its type is not LIST."


def _apply(topic, configs) -> dict[str, str]:
    new = dict(topic.configs)
    for c in configs:
        d = TOPIC_CONFIGS.get(c.name)
        if d is None:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {c.name}")
        if c.config_operation == SET:
            if c.value is None:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"Null value not supported for : {c.name}")
            new[c.name] = c.value
        elif c.config_operation == DELETE:
            new.pop(c.name, None)
        elif c.config_operation in (APPEND, SUBTRACT):
            if d.type != "list":
                raise KafkaError(ErrorCode.INVALID_CONFIG, _not_a_list(c))
            items = [x.strip() for x in topic.config(c.name).split(",") if x.strip()]
            given = [x.strip() for x in (c.value or "").split(",") if x.strip()]
            if c.config_operation == APPEND:
                items += [x for x in given if x not in items]
            else:
                items = [x for x in items if x not in given]
            new[c.name] = ",".join(items)
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown config operation {c.config_operation}")
    validate_topic_configs(new)
    return new


def _broker_list_default(name: str) -> str | None:
    spec = KAFKA_BROKER_CONFIGS.get(name)
    return spec[1] or "" if spec is not None and spec[0] == 7 else None


def _apply_broker(current: dict[str, str], res, list_default=_broker_list_default) -> dict[str, str]:
    """The operations on a dynamic set of configs; ``list_default(name)``: a list config's default, None
    for a config that is not a list."""
    nulls = [c.name for c in res.configs if c.config_operation != DELETE and c.value is None]
    if nulls:
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Null value not supported for : " + ", ".join(nulls))
    new = dict(current)
    for c in res.configs:
        if c.config_operation == SET:
            new[c.name] = c.value
        elif c.config_operation == DELETE:
            new.pop(c.name, None)
        elif c.config_operation in (APPEND, SUBTRACT):
            default = list_default(c.name)
            if default is None:
                raise KafkaError(ErrorCode.INVALID_CONFIG, _not_a_list(c))
            old = new.get(c.name, default)
            items = [x.strip() for x in old.split(",") if x.strip()]
            given = [x.strip() for x in c.value.split(",") if x.strip()]
            if c.config_operation == APPEND:
                items += [x for x in given if x not in items]
            else:
                items = [x for x in items if x not in given]
            new[c.name] = ",".join(items)
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown operations type {c.config_operation}")
    return new


def _apply_client_metrics(current: dict[str, str], res) -> dict[str, str]:
    return _apply_broker(current, res, lambda name: "" if name in (METRICS, MATCH) else None)


def handle(ctx, req: API.IncrementalAlterConfigsRequest) -> R:
    return alter_resources(ctx, req, R, lambda topic, res: _apply(topic, res.configs), _apply_broker,
                           _apply_client_metrics, lambda current, res: _apply_broker(current, res, lambda name: None))
