"""What the Schema Registry tests share: values through a serializer, a Producer, a Consumer and a deserializer."""

from __future__ import annotations


def serde_roundtrip(bootstrap: str, topic: str, serializer, deserializer, values: list, timeout_s: float = 10.0,
                    producer_config: dict | None = None) -> list:
    """Produce ``values`` serialized (confluent-kafka's serializers, the registry they were given), consume
    them from the start with a group of the topic's name and return them deserialized."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.serialization import MessageField, SerializationContext

    context = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": bootstrap, **(producer_config or {})})
    for v in values:
        producer.produce(topic, value=serializer(v, context))
    assert producer.flush(timeout_s) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    out = []
    try:
        while len(out) < len(values):
            msg = consumer.poll(timeout_s)
            assert msg is not None, f"no record within {timeout_s} s"
            assert msg.error() is None, msg.error()
            out.append(deserializer(msg.value(), context))
    finally:
        consumer.close()
    return out
