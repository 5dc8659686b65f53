"""A Schema Registry beside the broker, speaking Confluent Schema Registry's REST API.

``kbroker serve --schema-registry-port N`` (or ``Broker(schema_registry_port=0)``, or the setting
``kbroker.schema.registry.port``) serves it on its own listener; in a cluster every broker may serve one. Its
state is the compacted, replicated ``_schemas`` topic (store.py), read below its high watermark and written
through its leader on condition of the log end (kafka_store.py, conditional.py); compatibility is checked per schema type (avro.py, json_schema.py,
protobuf.py; the levels in schemas.py); http.py is the REST API; wire_format.py is what the broker does
with the serializers' framing (validation on produce, decoding for the control plane).
"""

__all__ = ["start"]


async def start(state, host: str, port: int, default_compatibility: str = "BACKWARD"):
    """Open the registry over ``state`` and serve it; returns (server, host, port bound). The schema
    libraries are imported here, not with the package: the broker's produce path imports wire_format."""
    from .http import SchemaRegistryServer
    from .store import Registry

    state.schema_registry = Registry(state, default_compatibility)
    server = SchemaRegistryServer(state.schema_registry)
    bound_host, bound_port = await server.start(host, port)
    return server, bound_host, bound_port
