"""kbroker: a Kafka-compatible broker in Python, for tests and laptops."""

from .embedded import Broker

__all__ = ["Broker"]
__version__ = "0.1.0"
