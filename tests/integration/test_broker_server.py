"""Two brokers on one event loop, the shape a cluster in one process takes: each BrokerServer has its own
state, data directory and listener, and a stock client sees two separate brokers."""

from __future__ import annotations

from support.clients import ConfluentClient

from kbroker.broker_server import BrokerServer
from kbroker.config import BrokerConfig
from kbroker.embedded import LoopThread


def test_two_brokers_on_one_loop_keep_their_own_topics_and_data(tmp_path):
    brokers = [BrokerServer(BrokerConfig(host="127.0.0.1", port=0, data_dir=str(tmp_path / f"node{i}"),
                                         node_id=i)) for i in range(2)]

    async def start():
        for b in brokers:
            await b.start()

    async def stop():
        for b in brokers:
            await b.stop()

    loop_thread = LoopThread()
    loop_thread.start(start, stop)
    try:
        a, b = (ConfluentClient(f"{s.host}:{s.port}") for s in brokers)
        assert brokers[0].port != brokers[1].port
        a.create_topic("on-a", 1)
        b.create_topic("on-b", 1)
        a.produce("on-a", [(None, b"a%d" % i, None, 0, None) for i in range(3)])
        b.produce("on-b", [(None, b"b%d" % i, None, 0, None) for i in range(2)])
        assert "on-a" in a.list_topics() and "on-b" not in a.list_topics()
        assert "on-b" in b.list_topics() and "on-a" not in b.list_topics()
        assert [r[3] for r in a.consume_assigned("on-a", 1, 3)] == [b"a0", b"a1", b"a2"]
        assert [r[3] for r in b.consume_assigned("on-b", 1, 2)] == [b"b0", b"b1"]
        assert loop_thread.call(lambda: [s.state.topics.get("on-a") is not None for s in brokers]) == [True, False]
    finally:
        loop_thread.stop()
    assert (tmp_path / "node0" / "on-a-0").is_dir() and not (tmp_path / "node0" / "on-b-0").exists()
    assert (tmp_path / "node1" / "on-b-0").is_dir() and not (tmp_path / "node1" / "on-a-0").exists()
