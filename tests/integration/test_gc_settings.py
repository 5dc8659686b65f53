"""The garbage collector of a ``kbroker serve`` process (gc_settings.py, issue 16): what start-up loaded (the
code) is frozen before the broker opens its data, so that no collection examines it again and nothing that
can become garbage is frozen; a broker embedded in another program leaves that program's collector alone.
Read from the outside, through ``/metrics``."""

from __future__ import annotations

import gc
import re
import urllib.request

from support.brokerproc import BrokerProcess

from kbroker import Broker
from kbroker.client import BlockingClient


def _metrics(url: str) -> str:
    return urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()


def _value(text: str, sample: str) -> float:
    m = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    assert m is not None, f"no {sample} in /metrics"
    return float(m.group(1))


def _served(data_dir) -> BrokerProcess:
    return BrokerProcess(data_dir, "--control-port", "0")


def _frozen(proc: BrokerProcess) -> tuple[float, str]:
    line = proc.next_stdout_line()
    while not line.startswith("kbroker console on "):  # after a line per listener
        line = proc.next_stdout_line()
    url = re.search(r"(http://\S+?)/? ", line).group(1)
    text = _metrics(url)
    return _value(text, "kbroker_python_gc_frozen_objects"), text


def test_serve_freezes_the_code_it_loaded_and_none_of_its_data(tmp_path):
    data = tmp_path / "data"
    with _served(data) as b:
        empty, text = _frozen(b)
        assert empty > 20_000  # kbroker's modules, classes and functions, and the libraries they import
        assert _value(text, 'python_gc_collections_total{generation="2"}') >= 1  # the collection before it
        with BlockingClient(b.bootstrap_servers) as c:
            c.create_topics({f"t{i}": {"partitions": 500} for i in range(4)})
    # The same broker started again on 2,000 partitions: they are opened after the freeze, not frozen (a
    # topic deleted later would leave its cycles in the permanent generation, never collected).
    with _served(data) as b:
        loaded, _ = _frozen(b)
        with BlockingClient(b.bootstrap_servers) as c:
            assert len(c.metadata().topics) >= 4
    assert abs(loaded - empty) < 2_000, (empty, loaded)


def test_a_broker_embedded_in_a_program_leaves_its_collector_alone():
    frozen = gc.get_freeze_count()
    with Broker(port=0, control_port=0) as b:
        assert _value(_metrics(b.control_url), "kbroker_python_gc_frozen_objects") == frozen
    assert gc.get_freeze_count() == frozen
