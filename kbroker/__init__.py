"""kbroker: a Kafka-compatible broker in Python, for tests and laptops."""

from .embedded import Broker
from .version import __version__

__all__ = ["Broker", "__version__"]
