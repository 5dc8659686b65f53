"""``kbroker serve``: one broker, or a cluster of several (``--brokers N``), or one broker of a cluster of
processes coordinated through PostgreSQL (``--node-id N --cluster postgresql://...``), in the foreground on the
loop the command line runs, until a signal."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal

from .broker_server import BrokerServer, ClusterServers
from .config import BrokerConfig
from .gc_settings import freeze_start_up
from .security.listeners import unauthenticated_exposures

log = logging.getLogger("kbroker")


def _announce(running: BrokerServer) -> None:
    for listener in unauthenticated_exposures(running.state.listeners):
        log.warning("listening on %s (listener %s, %s) without authentication: anyone who can reach it can "
                    "read and write", listener.host, listener.name, listener.security_protocol)
    # The plain line first, exactly as before (tools wait for it), then one line per listener.
    print(f"kbroker listening on {running.host}:{running.port}", flush=True)
    for listener in running.state.listeners:
        print(f"kbroker listening on {listener.name}://{listener.host}:{listener.bound_port}", flush=True)
    if running.control_port is not None:
        log.info("control plane on http://%s:%d", running.control_host, running.control_port)
        print(f"kbroker console on http://{running.control_host}:{running.control_port}/ "
              f"(metrics: /metrics)", flush=True)
    if running.schema_registry is not None:
        _server, sr_host, sr_port = running.schema_registry
        print(f"kbroker schema registry on http://{sr_host}:{sr_port}", flush=True)
        if not ipaddress.ip_address(sr_host).is_loopback:
            log.warning("schema registry on %s without authentication: anyone who can reach it can register and "
                        "delete schemas", sr_host)


async def serve(config: BrokerConfig, ready=None, brokers: int = 1) -> None:
    """Run until SIGTERM or SIGINT, then stop accepting, finish requests in flight, flush and return.
    ``brokers`` > 1: a cluster in this process (broker_server.ClusterServers), its ready lines broker by broker."""
    if brokers > 1 and config.cluster_url is not None:
        raise SystemExit("kbroker: --brokers N runs a cluster in this process; --cluster makes this process one "
                         "broker of a cluster of processes: give one or the other")
    # The code loaded so far lives as long as the process: no collection need examine it again (gc_settings.py).
    # Before any broker opens its data, whose objects come and go.
    freeze_start_up()
    if brokers > 1:
        running = ClusterServers(config, brokers)
        await running.start()
        for node in running.node_ids:
            _announce(running.servers[node])
        if running.control_port is not None:
            log.info("control plane of the cluster on http://%s:%d", running.control_host, running.control_port)
            # Its ready line, after the brokers' (tools wait for it as for the single broker's console line).
            print(f"kbroker control plane on http://{running.control_host}:{running.control_port}/ "
                  f"(the cluster of {len(running.node_ids)} brokers)", flush=True)
    elif config.cluster_url is not None:
        running = await _cluster_member(config)
        _announce(running)
    else:
        running = BrokerServer(config)
        await running.start()
        _announce(running)
    if ready is not None:
        ready(running)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await running.stop()
    if config.cluster_url is not None:
        running.controller.close()


async def _cluster_member(config: BrokerConfig) -> BrokerServer:
    """One broker of a cluster of processes (``--cluster postgresql://...``): its controller is the
    PostgreSQL one (postgres_controller.py), which this process closes after the broker stops."""
    if config.storage == "memory":
        raise SystemExit("kbroker: a broker of a cluster keeps its logs on disk: --storage memory is not supported "
                         "with --cluster")
    from .postgres_controller import PostgresController

    unclean = config.topic_defaults.get("unclean.leader.election.enable", "false").strip().lower() == "true"
    try:
        controller = PostgresController(config.cluster_url, config.node_id, cluster_id=config.cluster_id,
                                        unclean_leader_election=unclean)
    except Exception as e:  # psycopg.Error: the database cannot be reached or refused us
        raise SystemExit(f"kbroker: cannot join the cluster at {_redacted(config.cluster_url)}: {e}") from None
    running = BrokerServer(config, controller)
    try:
        await running.start()
    except BaseException:
        controller.close()
        raise
    log.info("broker %d joined cluster %s", config.node_id, controller.cluster_id)
    return running


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
