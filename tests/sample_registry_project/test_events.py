"""A user's test with the plugin's fixtures: Avro events through the broker and the registry beside it."""

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

EVENT = '{"type": "record", "name": "Event", "fields": [{"name": "kind", "type": "string"}]}'


def test_events_round_trip(kafka_broker, kafka_topic, schema_registry_url):
    topic = kafka_topic()
    client = SchemaRegistryClient({"url": schema_registry_url})
    ctx = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    producer.produce(topic, value=AvroSerializer(client, EVENT)({"kind": "created"}, ctx))
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap_servers, "group.id": topic,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    msg = consumer.poll(10)
    consumer.close()
    assert msg is not None and msg.error() is None
    assert AvroDeserializer(client)(msg.value(), ctx) == {"kind": "created"}
    assert client.get_subjects() == [f"{topic}-value"]
