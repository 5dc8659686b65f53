"""The Schema Registry with confluent-kafka's SchemaRegistryClient and its Avro, JSON and Protobuf
serializers, producing and consuming through kbroker over real sockets (kbroker/schema_registry/)."""

import importlib
import json
import sys
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kbroker import Broker
from support.registry import serde_roundtrip


@pytest.fixture(scope="module")
def sr_broker():
    with Broker(port=0, storage="memory", schema_registry_port=0, control_port=0) as b:
        yield b


def _topic():
    return f"sr-{uuid.uuid4().hex[:10]}"


def _roundtrip(broker, topic, serializer, deserializer, values):
    return serde_roundtrip(broker.bootstrap_servers, topic, serializer, deserializer, values)


AVRO_USER = json.dumps({"type": "record", "name": "User", "namespace": "kb.test", "fields": [
    {"name": "name", "type": "string"}, {"name": "age", "type": "int"},
    {"name": "email", "type": ["null", "string"], "default": None}]})


def test_avro_serializer_produces_and_consumes_through_the_registry(sr_broker):
    client = SchemaRegistryClient({"url": sr_broker.schema_registry_url})
    topic = _topic()
    values = [{"name": "ada", "age": 36, "email": None}, {"name": "alan", "age": 41, "email": "a@t"}]
    got = _roundtrip(sr_broker, topic, AvroSerializer(client, AVRO_USER), AvroDeserializer(client), values)
    assert got == values
    latest = client.get_latest_version(f"{topic}-value")
    assert latest.version == 1 and latest.schema.schema_type == "AVRO"
    # The control plane decodes what carries a registered id.
    rec = sr_broker.control.records(topic)[1]
    assert rec["value_decoded"] == {"schema_id": latest.schema_id, "schema_type": "AVRO", "json": values[1]}
    with urllib.request.urlopen(f"{sr_broker.control_url}/topics/{topic}/records") as resp:
        over_http = json.load(resp)
    assert [r["value_decoded"]["json"] for r in over_http] == values
    assert "key_decoded" not in over_http[0]  # the keys are not in the wire format


def test_json_serializer_produces_and_consumes_through_the_registry(sr_broker):
    client = SchemaRegistryClient({"url": sr_broker.schema_registry_url})
    schema = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "title": "Order", "type": "object",
                         "properties": {"id": {"type": "integer"}, "item": {"type": "string"}},
                         "required": ["id"]})
    topic = _topic()
    values = [{"id": 1, "item": "book"}, {"id": 2}]
    got = _roundtrip(sr_broker, topic, JSONSerializer(schema, client),
                     JSONDeserializer(schema, schema_registry_client=client), values)
    assert got == values
    assert client.get_latest_version(f"{topic}-value").schema.schema_type == "JSON"
    assert sr_broker.control.records(topic)[0]["value_decoded"]["json"] == values[0]
    # A value the schema refuses never leaves the serializer (it validates with the registered schema).
    with pytest.raises(Exception):
        JSONSerializer(schema, client)({"item": "no id"}, SerializationContext(topic, MessageField.VALUE))


PROTO_DEP = 'syntax = "proto3";\npackage kbt.common;\nmessage Address { string city = 1; int32 zip = 2; }\n'
PROTO_MAIN = ('syntax = "proto3";\npackage kbt;\nimport "kbt_common.proto";\n'
              'message Customer { string name = 1; kbt.common.Address address = 2; repeated string tags = 3; }\n')


@pytest.fixture(scope="module")
def proto_modules(tmp_path_factory):
    """Python classes for two .proto files, one importing the other, generated with protoc."""
    from grpc_tools import protoc

    d = tmp_path_factory.mktemp("proto")
    (d / "kbt_common.proto").write_text(PROTO_DEP)
    (d / "kbt_customer.proto").write_text(PROTO_MAIN)
    assert protoc.main(["protoc", f"-I{d}", f"--python_out={d}", "kbt_common.proto", "kbt_customer.proto"]) == 0
    sys.path.insert(0, str(d))
    try:
        yield importlib.import_module("kbt_customer_pb2")
    finally:
        sys.path.remove(str(d))


def test_protobuf_serializer_registers_the_import_as_a_reference_and_round_trips(sr_broker, proto_modules):
    client = SchemaRegistryClient({"url": sr_broker.schema_registry_url})
    Customer = proto_modules.Customer
    topic = _topic()
    ser = ProtobufSerializer(Customer, client, {"use.deprecated.format": False})
    de = ProtobufDeserializer(Customer, {"use.deprecated.format": False})
    values = [Customer(name="ada", address={"city": "London", "zip": 1}, tags=["a", "b"]), Customer(name="bo")]
    got = _roundtrip(sr_broker, topic, ser, de, values)
    assert got == values
    latest = client.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "PROTOBUF"
    assert [r.name for r in latest.schema.references] == ["kbt_common.proto"]
    ref = latest.schema.references[0]
    assert latest.schema_id in client.get_referenced_by(ref.subject, ref.version)
    decoded = sr_broker.control.records(topic)[0]["value_decoded"]
    assert decoded["schema_type"] == "PROTOBUF"
    assert decoded["json"] == {"name": "ada", "address": {"city": "London", "zip": 1}, "tags": ["a", "b"]}
    # The referenced schema cannot go while the schema that imports it is there.
    with pytest.raises(SchemaRegistryError) as e:
        client.delete_version(ref.subject, ref.version)
    assert e.value.http_status_code == 422 and e.value.error_code == 42206


def test_references_for_avro_and_json(sr_broker):
    client = SchemaRegistryClient({"url": sr_broker.schema_registry_url})
    s = uuid.uuid4().hex[:8]
    addr = json.dumps({"type": "record", "name": "Address", "namespace": "kb.ref",
                       "fields": [{"name": "city", "type": "string"}]})
    client.register_schema(f"addr-{s}", Schema(addr, "AVRO"))
    person = json.dumps({"type": "record", "name": "Person", "namespace": "kb.ref",
                         "fields": [{"name": "home", "type": "kb.ref.Address"}]})
    refs = [SchemaReference("kb.ref.Address", f"addr-{s}", 1)]
    pid = client.register_schema(f"person-{s}", Schema(person, "AVRO", refs))
    assert client.get_schema(pid).references[0].subject == f"addr-{s}"
    # Without the reference the named type is unknown: an invalid schema.
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema(f"person2-{s}", Schema(person, "AVRO"))
    assert (e.value.http_status_code, e.value.error_code) == (422, 42201)
    # Avro data through the referencing schema.
    topic = _topic()
    got = _roundtrip(sr_broker, topic, AvroSerializer(client, Schema(person, "AVRO", refs)),
                     AvroDeserializer(client), [{"home": {"city": "Oslo"}}])
    assert got == [{"home": {"city": "Oslo"}}]
    assert sr_broker.control.records(topic)[0]["value_decoded"]["json"] == {"home": {"city": "Oslo"}}

    point = json.dumps({"type": "object", "properties": {"x": {"type": "number"}}})
    client.register_schema(f"point-{s}", Schema(point, "JSON"))
    line = json.dumps({"type": "object", "properties": {"from": {"$ref": "point.json"}, "to": {"$ref": "point.json"}}})
    lid = client.register_schema(f"line-{s}", Schema(line, "JSON", [SchemaReference("point.json", f"point-{s}", 1)]))
    assert client.get_referenced_by(f"point-{s}", 1) == [lid]
    with pytest.raises(SchemaRegistryError) as e:
        client.delete_subject(f"point-{s}")
    assert e.value.error_code == 42206


def test_incompatible_evolution_is_refused_with_409_and_40901(sr_broker):
    client = SchemaRegistryClient({"url": sr_broker.schema_registry_url})
    subject = f"evo-{uuid.uuid4().hex[:8]}"
    client.register_schema(subject, Schema(AVRO_USER, "AVRO"))
    required_added = json.loads(AVRO_USER)
    required_added["fields"].append({"name": "city", "type": "string"})
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema(subject, Schema(json.dumps(required_added), "AVRO"))
    assert (e.value.http_status_code, e.value.error_code) == (409, 40901)
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in e.value.error_message
    assert not client.test_compatibility(subject, Schema(json.dumps(required_added), "AVRO"))
    required_added["fields"][-1]["default"] = "x"
    assert client.test_compatibility(subject, Schema(json.dumps(required_added), "AVRO"))
    assert client.register_schema(subject, Schema(json.dumps(required_added), "AVRO")) > 0
    assert client.get_versions(subject) == [1, 2]


def test_validation_topic_config_refuses_records_without_a_registered_id(sr_broker):
    from kbroker.client import BlockingClient

    client = SchemaRegistryClient({"url": sr_broker.schema_registry_url})
    topic = _topic()
    with BlockingClient(sr_broker.bootstrap_servers) as admin:
        admin.create_topic(topic, 1, {"confluent.value.schema.validation": "true"})
    producer = Producer({"bootstrap.servers": sr_broker.bootstrap_servers, "retries": 0})
    results = []

    def report(err, msg):
        results.append(err)

    producer.produce(topic, value=b"plain bytes", on_delivery=report)
    producer.flush(10)
    producer.produce(topic, value=b"\x00\x7f\xff\xff\xffunregistered id", on_delivery=report)
    producer.flush(10)
    assert [r.code() if r else None for r in results] == [KafkaError.INVALID_RECORD] * 2
    ser = AvroSerializer(client, AVRO_USER)
    results.clear()
    producer.produce(topic, value=ser({"name": "x", "age": 1, "email": None},
                                      SerializationContext(topic, MessageField.VALUE)), on_delivery=report)
    producer.flush(10)
    assert results == [None]
    assert len(sr_broker.control.records(topic)) == 1

    # Keys are checked only when the key config asks for it.
    key_topic = _topic()
    with BlockingClient(sr_broker.bootstrap_servers) as admin:
        admin.create_topic(key_topic, 1, {"confluent.key.schema.validation": "true"})
    results.clear()
    producer.produce(key_topic, key=b"raw key", value=b"raw value", on_delivery=report)
    producer.flush(10)  # its own batch: a refused record takes its whole batch with it
    producer.produce(key_topic, key=ser({"name": "k", "age": 2, "email": None},
                                        SerializationContext(key_topic, MessageField.KEY)), value=b"raw value",
                     on_delivery=report)
    producer.flush(10)
    assert [r.code() if r else None for r in results] == [KafkaError.INVALID_RECORD, None]


def test_pytest_plugin_fixture_names_the_registry_beside_the_broker():
    import subprocess
    from pathlib import Path

    sample = Path(__file__).resolve().parents[1] / "sample_registry_project"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(sample),
                        "-c", "/dev/null", str(sample)], capture_output=True, text=True, timeout=300, cwd=sample)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout


def test_protobuf_text_with_a_text_reference_deserializes(sr_broker, proto_modules):
    """Schemas registered as .proto text (as other clients do): confluent-kafka's deserializer asks for the
    writer schema and its references with format=serialized and gets descriptors."""
    client = SchemaRegistryClient({"url": sr_broker.schema_registry_url})
    topic = _topic()
    s = uuid.uuid4().hex[:8]
    client.register_schema(f"common-{s}", Schema(PROTO_DEP, "PROTOBUF"))
    sid = client.register_schema(f"{topic}-value", Schema(
        PROTO_MAIN, "PROTOBUF", [SchemaReference("kbt_common.proto", f"common-{s}", 1)]))
    Customer = proto_modules.Customer
    value = Customer(name="cy", address={"city": "Rome", "zip": 7})
    framed = b"\x00" + sid.to_bytes(4, "big") + b"\x00" + value.SerializeToString()
    producer = Producer({"bootstrap.servers": sr_broker.bootstrap_servers})
    producer.produce(topic, value=framed)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": sr_broker.bootstrap_servers, "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    msg = consumer.poll(10)
    consumer.close()
    assert msg is not None and msg.error() is None
    reader = SchemaRegistryClient({"url": sr_broker.schema_registry_url})  # the consumer's, nothing cached
    de = ProtobufDeserializer(Customer, {"use.deprecated.format": False}, schema_registry_client=reader)
    assert de(msg.value(), SerializationContext(topic, MessageField.VALUE)) == value
    assert sr_broker.control.records(topic)[0]["value_decoded"]["json"] == {
        "name": "cy", "address": {"city": "Rome", "zip": 7}}


def test_validation_names_each_refused_record(sr_broker):
    """KIP-467's record errors: the index in its batch of every record without a registered id."""
    from kbroker.errors import ErrorCode, RecordValidationError
    from kbroker.records.builder import simple_batch
    from kbroker.schema_registry.wire_format import validate_batches

    client = SchemaRegistryClient({"url": sr_broker.schema_registry_url})
    good = AvroSerializer(client, AVRO_USER)({"name": "v", "age": 3, "email": None},
                                             SerializationContext("validated", MessageField.VALUE))
    batch = simple_batch(good, b"raw", b"\x00\x7f\xff\xff\xfe??", good)

    class Topic:
        name = "validated"

        @staticmethod
        def config(key):
            return "true" if key == "confluent.value.schema.validation" else "false"

    def check():
        try:
            validate_batches(sr_broker.state.schema_registry, Topic, batch)
        except RecordValidationError as e:
            return e.code, [i for i, _ in e.record_errors]
        return None

    assert sr_broker.call(check) == (ErrorCode.INVALID_RECORD, [1, 2])
