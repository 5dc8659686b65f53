"""``kbroker serve``: one broker in the foreground, on the loop the command line runs, until a signal."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal

from .broker_server import BrokerServer
from .config import BrokerConfig
from .security.listeners import unauthenticated_exposures

log = logging.getLogger("kbroker")


async def serve(config: BrokerConfig, ready=None) -> None:
    """Run until SIGTERM or SIGINT, then stop accepting, finish requests in flight, flush and return."""
    running = BrokerServer(config)
    await running.start()
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
    if ready is not None:
        ready(running)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await running.stop()
