"""kbroker's version, in a module of its own so that any module can import it without importing the package's
entry points (``kbroker/__init__.py`` imports the embedding API, which imports most of kbroker)."""

__version__ = "0.1.0"
