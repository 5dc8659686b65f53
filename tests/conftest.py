import uuid

import pytest

from support.brokerproc import BrokerProcess
from kbroker import Broker


@pytest.fixture
def broker_proc(tmp_path):
    """A kbroker process on a free port with its data in a temporary directory."""
    b = BrokerProcess(tmp_path / "data")
    b.start()
    yield b
    b.kill()


@pytest.fixture
def broker():
    """A kbroker on a background thread of the test process (fast; memory storage)."""
    with Broker(port=0, storage="memory") as b:
        yield b


@pytest.fixture
def topic_name():
    return f"t-{uuid.uuid4().hex[:10]}"

# The sample project is a user's project: tests/process/test_pytest_plugin.py runs it in its own pytest process.
collect_ignore = ["sample_project", "sample_registry_project"]
