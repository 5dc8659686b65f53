"""The handler table: one module per API, each declaring the versions it serves.

ApiVersions is answered from this table, so what kbroker advertises is exactly what it has a handler for.
A handler module defines ``API`` (its generated codec module), ``VERSIONS`` (the advertised range) and
``handle(ctx, request)``, which returns the response object, None for no response (acks=0 Produce), or an
awaitable of either (long-polling Fetch, JoinGroup).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from . import (
    alter_user_scram_credentials,
    create_acls,
    delete_acls,
    describe_acls,
    describe_user_scram_credentials,
    sasl_authenticate,
    sasl_handshake,
    add_offsets_to_txn,
    add_partitions_to_txn,
    describe_producers,
    describe_transactions,
    end_txn,
    list_transactions,
    txn_offset_commit,
    alter_configs,
    api_versions,
    delete_groups,
    describe_groups,
    find_coordinator,
    heartbeat,
    join_group,
    leave_group,
    list_groups,
    offset_commit,
    offset_delete,
    offset_fetch,
    sync_group,
    create_partitions,
    create_topics,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    describe_log_dirs,
    fetch,
    incremental_alter_configs,
    init_producer_id,
    list_offsets,
    metadata,
    offset_for_leader_epoch,
    produce,
)


@dataclass(frozen=True)
class Handler:
    api_key: int
    name: str
    min_version: int
    max_version: int
    handle: Callable
    codec: ModuleType

    def flexible(self, version: int) -> bool:
        f = self.codec.REQUEST_FLEXIBLE_FROM
        return f is not None and version >= f


def _table(*modules: ModuleType) -> dict[int, Handler]:
    out = {}
    for m in modules:
        lo, hi = m.VERSIONS
        out[m.API.API_KEY] = Handler(m.API.API_KEY, m.API.NAME, lo, hi, m.handle, m.API)
    return dict(sorted(out.items()))


def advertised_versions(emulate: str | None = None) -> dict[int, tuple[int, int]]:
    """What ApiVersions advertises: every handler's range or, emulating a Kafka release, for each API that
    release has, its range limited to what kbroker serves (the release's max whenever kbroker serves it)."""
    ours = {k: (h.min_version, h.max_version) for k, h in HANDLERS.items()}
    if emulate is None:
        return ours
    from ..releases import RELEASES

    if emulate not in RELEASES:
        raise ValueError(f"cannot emulate Kafka {emulate}: choose one of {', '.join(RELEASES)}")
    out = {}
    for key, (lo, hi) in RELEASES[emulate].items():
        if key in ours:
            lo, hi = max(lo, ours[key][0]), min(hi, ours[key][1])
            if lo <= hi:
                out[key] = (lo, hi)
    return out


HANDLERS: dict[int, Handler] = _table(
    produce,
    fetch,
    init_producer_id,
    list_offsets,
    metadata,
    api_versions,
    create_topics,
    delete_topics,
    describe_cluster,
    init_producer_id,
    offset_for_leader_epoch,
    describe_configs,
    alter_configs,
    incremental_alter_configs,
    create_partitions,
    delete_records,
    describe_log_dirs,
    find_coordinator,
    join_group,
    sync_group,
    heartbeat,
    leave_group,
    offset_commit,
    offset_fetch,
    describe_groups,
    list_groups,
    delete_groups,
    offset_delete,
    add_partitions_to_txn,
    add_offsets_to_txn,
    end_txn,
    txn_offset_commit,
    describe_producers,
    describe_transactions,
    list_transactions,
    sasl_handshake,
    sasl_authenticate,
    describe_acls,
    create_acls,
    delete_acls,
    describe_user_scram_credentials,
    alter_user_scram_credentials,
)
