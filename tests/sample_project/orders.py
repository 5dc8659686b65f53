"""The code under test of the sample project: a tiny service that publishes orders to Kafka."""

from __future__ import annotations

import json

from confluent_kafka import Producer


class OrderPublisher:
    def __init__(self, bootstrap_servers: str, topic: str):
        self.topic = topic
        self.producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})

    def publish(self, order_id: str, amount_cents: int, customer: str) -> None:
        value = json.dumps({"order_id": order_id, "amount_cents": amount_cents}).encode()
        self.producer.produce(self.topic, key=customer.encode(), value=value,
                              headers=[("source", b"orders-service")])

    def close(self) -> None:
        if self.producer.flush(10):
            raise RuntimeError("orders were not delivered")
