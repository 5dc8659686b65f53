"""The client adapters, in the order the matrix shows them."""

from .aiokafka_client import AioKafka
from .base import Adapter, ClientError, Cluster, Rec, Unsupported
from .confluent import ConfluentKafka
from .franz import Franz
from .java import Java
from .kafka_python import KafkaPython
from .kafkajs import KafkaJS
from .kcat import Kcat
from .sarama import Sarama

CLIENTS: dict[str, type[Adapter]] = {
    c.name: c for c in (KafkaPython, ConfluentKafka, AioKafka, Kcat, KafkaJS, Sarama, Franz, Java)
}

__all__ = ["CLIENTS", "Adapter", "ClientError", "Cluster", "Rec", "Unsupported"]
