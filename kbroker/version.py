"""kbroker's version: a module of its own so that the client (client/), which the brokers use to fetch from
one another, can name it without importing the package's ``__init__`` (and through it the whole broker)."""

__version__ = "0.1.0"
