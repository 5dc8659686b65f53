"""The registry's state, kept in the compacted ``_schemas`` topic as Confluent keeps it.

Theory of operation. Every change is records of partition 0 of ``_schemas`` with JSON keys and values in
Confluent's layout: ``{"keytype":"SCHEMA","subject":s,"version":v,"magic":1}`` ->
``{"subject","version","id","schemaType","schema","references","deleted"}`` (a null value when a version
is deleted permanently), ``{"keytype":"CONFIG","subject":s|null,"magic":0}`` -> ``{"compatibilityLevel"}``,
``{"keytype":"MODE",...}`` -> ``{"mode"}``. The memory state is only ever changed by applying the records
read back from the log below its high watermark (kafka_store.py), in offset order, so every broker's registry
holds the same state for the same offset, and the state survives restarts and leader changes.

Writes, in a cluster as on one broker (``write``): one request at a time per registry; the registry reads
the log to what its leader has, computes the request's records from that state (``_write`` collects them),
and appends them as one batch on condition that the log still ends where it read to (conditional.py), with
acks=all, through the partition's leader wherever it is. If another registry wrote first it reads on and
computes again; if the partition cannot take the write now (no leader, a leader change) it reads and tries
again until ``WRITE_TIMEOUT_S``. Once written, the records are read back before the answer, so a registry
answers what it has applied. Confluent elects one registry leader to the same end (ids from one sequence).

Ids: one more than the largest id ever seen. A permanent delete first writes ``{"keytype":"ID_WATERMARK"}``
-> ``{"max_id"}`` (kept by compaction as the latest value of its key), so an id freed by a tombstone is
never handed out again once compaction has removed the schema it named.

The topic is created (compacted, one partition, replication factor ``kafkastore.topic.replication.factor``,
3, capped by the live brokers, as Confluent's KafkaStore makes it) by ``ensure_topic``, which ``write``
awaits: the controller's change is awaited, so it works over a database too.

Concurrency: the event loop. Reads (every method but ``write``, ``refresh``, ``read_latest`` and
``ensure_topic``) do not suspend: they apply what the local replica has below its high watermark and answer.
If ``_schemas`` is deleted (the control plane's reset does), the registry is empty again until a write makes
the topic anew.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from ..errors import ErrorCode, KafkaError
from ..topics import run_in_turns
from . import errors as E
from .conditional import SCHEMAS_TOPIC
from .kafka_store import KafkaStore, Unavailable
from .schemas import LEVELS, TYPES, check, parse

log = logging.getLogger("kbroker.schema_registry")

MODES = ("READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT")
MAX_VERSION = 2**31 - 1
TOPIC_WAIT_S = 10  # how long a write waits for another broker's creation of _schemas to reach this one
WRITE_TIMEOUT_S = 15.0  # Confluent: kafkastore.timeout.ms per step; here the whole write, across leader changes
RETRY_BACKOFF_S = 0.1  # between attempts while _schemas-0 has no leader or moves (Kafka's retry.backoff.ms)
REPLICATION_FACTOR_KEY = "kafkastore.topic.replication.factor"
DEFAULT_REPLICATION_FACTOR = 3


@dataclass
class SchemaVersion:
    subject: str
    version: int
    id: int
    deleted: bool = False


@dataclass
class StoredSchema:
    id: int
    schema_type: str
    schema: str
    references: list
    parsed: object = None


def _refs_key(refs: list) -> str:
    return json.dumps([[r.get("name"), r.get("subject"), r.get("version")] for r in refs])


class Registry:
    def __init__(self, state, default_compatibility: str = "BACKWARD"):
        self.state = state
        self.default_compatibility = default_compatibility
        self._clear()
        self.store = KafkaStore(state, self._replay, self._clear)
        self._pending: list[tuple[bytes, bytes | None]] | None = None  # a write's records, while it computes
        self._write_lock = asyncio.Lock()
        self.lost_races = 0  # writes computed again because another registry wrote first (tests, debugging)
        self._sync()

    def _clear(self) -> None:
        self.by_id: dict[int, StoredSchema] = {}
        self.ids_by_key: dict[tuple, int] = {}
        self.subjects: dict[str, dict[int, SchemaVersion]] = {}
        self.versions_by_id: dict[int, dict[tuple[str, int], SchemaVersion]] = {}  # every version, deleted too
        self.configs: dict[str | None, str] = {}
        self.modes: dict[str | None, str] = {}
        self.max_id = 0
        self._parse_cache: dict[tuple, object] = {}

    # -- the _schemas topic ----------------------------------------------------------------------

    def _sync(self) -> None:
        """Apply what the local replica of ``_schemas`` has below its high watermark (kafka_store.py)."""
        self.store.follow()

    async def close(self) -> None:
        await self.store.close()

    def _replay(self, offset: int, key: bytes, value: bytes | None) -> None:
        try:
            key = json.loads(key)
            value = json.loads(value) if value is not None else None
        except ValueError:
            log.warning("_schemas offset %d: not JSON, skipped", offset)
            return
        if not isinstance(key, dict) or not (value is None or isinstance(value, dict)):
            return
        try:
            self._apply(key, value)
        except (KeyError, TypeError, ValueError) as e:  # a record another writer made: skipped, as Confluent does
            log.warning("_schemas offset %d: %s not applied: %r", offset, key.get("keytype"), e)

    async def ensure_topic(self) -> None:
        """Create ``_schemas`` if it does not exist (one partition, compacted, replicated as Confluent's
        KafkaStore does: ``kafkastore.topic.replication.factor`` capped by the live brokers), awaiting the
        controller; a creation already under way (this broker's, or another's) is waited for."""
        topics = self.state.topics
        deadline = time.monotonic() + TOPIC_WAIT_S
        while topics.get(SCHEMAS_TOPIC) is None:
            if SCHEMAS_TOPIC not in topics.pending:
                try:
                    await run_in_turns(topics, topics.creation(SCHEMAS_TOPIC, 1, {"cleanup.policy": "compact"},
                                                               replication_factor=self._replication_factor()))
                    continue
                except KafkaError as e:
                    if e.code != ErrorCode.TOPIC_ALREADY_EXISTS:
                        raise E.RegistryError(500, E.STORE_ERROR,
                                              f"Error while creating the _schemas topic: {e.message}") from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise E.RegistryError(500, E.STORE_ERROR, "Timed out waiting for the _schemas topic")
            try:  # another creation of it: its topic arrives with the controller's notification
                await asyncio.wait_for(self.state.changes.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        self._sync()

    def _replication_factor(self) -> int:
        try:
            wanted = int(self.state.config.settings.get(REPLICATION_FACTOR_KEY, DEFAULT_REPLICATION_FACTOR))
        except ValueError:
            wanted = DEFAULT_REPLICATION_FACTOR
        live = len(self.state.controller.live_broker_ids())
        if live < wanted:
            log.info("creating _schemas with replication factor %d: %d live brokers, fewer than %s=%d", live, live,
                     REPLICATION_FACTOR_KEY, wanted)
        return max(1, min(wanted, live))

    async def write(self, change):
        """Run ``change()``, a request that may write, against the whole log, and append what it writes; see
        the module docstring. Returns what ``change`` returns; RegistryError as it raises, or 500 when the
        write cannot be made in time. While the leader cannot be read, a request that needs no write (a
        schema registered already) is answered from the state applied here, as Confluent's leader answers it
        from its cache."""
        async with self._write_lock:
            await self.ensure_topic()
            deadline = time.monotonic() + WRITE_TIMEOUT_S
            lost_race = False
            why = "no attempt"
            while True:
                try:
                    try:
                        await self.store.catch_up(deadline, wait_for_more=lost_race)
                        caught_up = True
                    except Unavailable as e:
                        caught_up, why = False, str(e)
                    self._pending = []
                    try:
                        result = change()
                    except E.RegistryError:
                        if caught_up:
                            raise
                        result = None  # judged on a state that may be behind: asked again once it is not
                    finally:
                        records, self._pending = self._pending, None
                    if not records and (caught_up or result is not None):
                        return result
                    if caught_up:
                        last = await self.store.write(records, deadline)
                        if last is not None:
                            await self._read_back(last, deadline)
                            return result
                        lost_race, why = True, "another registry kept writing first"
                        self.lost_races += 1
                    else:
                        lost_race = False
                except Unavailable as e:
                    lost_race, why = False, str(e)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise E.RegistryError(500, E.STORE_ERROR, f"Error while writing to the _schemas topic: {why}")
                if lost_race:
                    continue  # at once: the next read waits for the write that came first
                try:  # a leader elected, a broker back: the controller's change, or the next attempt
                    await asyncio.wait_for(self.state.changes.wait(), min(remaining, RETRY_BACKOFF_S))
                except asyncio.TimeoutError:
                    pass

    async def _read_back(self, last: int, deadline: float) -> None:
        """Apply our own records (up to ``last``) before answering; the write is done whatever happens here."""
        while self.store.next_offset <= last:
            try:
                await self.store.catch_up(deadline, at_least=last + 1)
            except Unavailable as e:
                if time.monotonic() >= deadline:
                    log.warning("_schemas offset %d written but not read back in time: %s", last, e)
                    return
                try:
                    await asyncio.wait_for(self.state.changes.wait(), RETRY_BACKOFF_S)
                except asyncio.TimeoutError:
                    pass

    async def refresh(self) -> None:
        """Before a read: the local replica's records, or the leader's where this broker has no replica."""
        self._sync()
        p = self.store.partition()
        if p is not None and p.log is None:
            await self.read_latest()

    async def read_latest(self) -> bool:
        """Apply what the leader has below its high watermark (a read that found nothing asks this before it
        says so). True if anything was applied; False too when the leader cannot be read now."""
        before = self.store.next_offset
        try:
            await self.store.catch_up(time.monotonic() + TOPIC_WAIT_S)
        except Unavailable as e:
            log.debug("reading _schemas from its leader: %s", e)
        return self.store.next_offset != before

    def _write(self, key: dict, value: dict | None) -> None:
        """One record of the request ``write`` runs; applied once it is read back from the log."""
        if self._pending is None:
            raise RuntimeError("a registry change outside Registry.write")
        self._pending.append((json.dumps(key, separators=(",", ":")).encode(),
                              None if value is None else json.dumps(value, separators=(",", ":")).encode()))

    def _apply(self, key: dict, value: dict | None) -> None:
        kind = key.get("keytype")
        subject = key.get("subject")
        if kind == "SCHEMA":
            versions = self.subjects.setdefault(subject, {})
            old = versions.pop(key.get("version"), None)
            if old is not None:
                self.versions_by_id.get(old.id, {}).pop((subject, old.version), None)
            if value is None:
                if not versions:
                    del self.subjects[subject]
                return
            sid = int(value["id"])
            sv = SchemaVersion(subject, int(value["version"]), sid, bool(value.get("deleted")))
            versions[sv.version] = sv
            self.versions_by_id.setdefault(sid, {})[(subject, sv.version)] = sv
            self.max_id = max(self.max_id, sid)
            if sid not in self.by_id:
                stored = StoredSchema(sid, value.get("schemaType") or "AVRO", value["schema"],
                                      value.get("references") or [])
                self.by_id[sid] = stored
                try:
                    stored.parsed = self._parse(stored.schema_type, stored.schema, stored.references)
                    self.ids_by_key[(stored.schema_type, stored.parsed.canonical, _refs_key(stored.references))] = sid
                except E.RegistryError as e:
                    log.warning("schema %d no longer parses: %s", sid, e.message)
        elif kind == "CONFIG":
            if value is None:
                self.configs.pop(subject, None)
            else:
                self.configs[subject] = value["compatibilityLevel"]
        elif kind == "MODE":
            if value is None:
                self.modes.pop(subject, None)
            else:
                self.modes[subject] = value["mode"]
        elif kind == "ID_WATERMARK" and value is not None:
            self.max_id = max(self.max_id, int(value["max_id"]))

    # -- parsing ----------------------------------------------------------------------------------

    def _find_version(self, subject: str, version) -> SchemaVersion | None:
        versions = self.subjects.get(subject) or {}
        if version in (-1, "-1", "latest", None):
            live = [v for v in versions.values() if not v.deleted] or list(versions.values())
            return max(live, key=lambda v: v.version) if live else None
        return versions.get(int(version))

    def _deps(self, refs: list, out: list, seen: set) -> None:
        for ref in refs:
            v = self._find_version(ref.get("subject"), ref.get("version"))
            if v is None:
                raise E.invalid_schema(f"Invalid schema: no schema reference found for subject "
                                       f"\"{ref.get('subject')}\" and version {ref.get('version')}")
            stored = self.by_id[v.id]
            self._deps(stored.references, out, seen)
            if ref.get("name") not in seen:
                seen.add(ref.get("name"))
                out.append((ref.get("name"), stored.schema))

    def _parse(self, schema_type: str, schema: str, refs: list):
        key = (schema_type, schema, _refs_key(refs))
        cached = self._parse_cache.get(key)
        if cached is not None:
            return cached
        deps: list = []
        self._deps(refs, deps, set())
        try:
            parsed = parse(schema_type, schema, deps)
        except ValueError as e:
            raise E.invalid_schema(f"Invalid schema {schema} with refs {refs} of type {schema_type}, details: {e}")
        self._parse_cache[key] = parsed
        return parsed

    def _request_schema(self, body, normalize: bool):
        if not isinstance(body, dict):
            raise E.invalid_schema("Invalid schema: the request body is not a JSON object")
        schema_type = (body.get("schemaType") or "AVRO").upper()
        if schema_type not in TYPES:
            raise E.invalid_schema(f"Invalid schema type {body.get('schemaType')}")
        schema = body.get("schema")
        if not isinstance(schema, str) or not schema.strip():
            raise E.invalid_schema("Empty schema")
        refs = body.get("references") or []
        if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
            raise E.invalid_schema("Invalid schema: references must be a list of objects")
        refs = [{"name": r.get("name"), "subject": r.get("subject"), "version": r.get("version")} for r in refs]
        parsed = self._parse(schema_type, schema, refs)
        if normalize:
            schema = parsed.normalized()
            parsed = self._parse(schema_type, schema, refs)
        return schema_type, schema, refs, parsed

    # -- subjects and versions --------------------------------------------------------------------

    def _live(self, subject: str) -> list[SchemaVersion]:
        return sorted((v for v in (self.subjects.get(subject) or {}).values() if not v.deleted),
                      key=lambda v: v.version)

    def _versions(self, subject: str, deleted: bool) -> list[SchemaVersion]:
        versions = sorted((self.subjects.get(subject) or {}).values(), key=lambda v: v.version)
        out = versions if deleted else [v for v in versions if not v.deleted]
        if not out:
            raise E.subject_not_found(subject)
        return out

    @staticmethod
    def _version_arg(version) -> int | str:
        if isinstance(version, str) and version.lower() == "latest":
            return "latest"
        try:
            n = int(version)
        except (TypeError, ValueError):
            raise E.invalid_version(version) from None
        if n == -1:
            return "latest"
        if not 1 <= n <= MAX_VERSION:
            raise E.invalid_version(version)
        return n

    def _key_of(self, sid: int):
        s = self.by_id[sid]
        return (s.schema_type, s.parsed.canonical if s.parsed is not None else s.schema, _refs_key(s.references))

    def _check_writable(self, subject: str) -> str:
        mode = self.mode(subject, True)
        if mode in ("READONLY", "READONLY_OVERRIDE"):
            raise E.not_permitted(f"Subject {subject} is in read-only mode")
        return mode

    def register(self, subject: str, body, normalize: bool = False) -> dict:
        self._sync()
        if not subject or any(ord(c) < 32 for c in subject):
            raise E.invalid_subject(subject)
        mode = self._check_writable(subject)
        given_id = body.get("id") if isinstance(body, dict) else None
        if given_id is not None and int(given_id) >= 0 and mode != "IMPORT":
            raise E.not_permitted(f"Subject {subject} is not in import mode")
        schema_type, schema, refs, parsed = self._request_schema(body, normalize)
        key = (schema_type, parsed.canonical, _refs_key(refs))
        live = self._live(subject)
        for v in reversed(live):
            if self._key_of(v.id) == key:
                if given_id is not None and int(given_id) >= 0 and int(given_id) != v.id:
                    raise E.id_does_not_match(f"Schema already registered with id {v.id} instead of input id "
                                              f"{given_id}")
                return {"id": v.id, "version": v.version}
        if mode != "IMPORT":
            level = self.compatibility(subject, True)
            msgs = check(level, parsed, [(v.version, self.by_id[v.id].parsed) for v in live])
            if msgs:
                raise E.incompatible(f"Schema being registered is incompatible with an earlier schema for subject "
                                     f"\"{subject}\", details: [{', '.join(msgs)}]")
        if given_id is not None and int(given_id) >= 0:
            sid = int(given_id)
            if sid in self.by_id and self._key_of(sid) != key:
                raise E.not_permitted(f"Overwrite new schema with id {sid} is not permitted.")
        else:
            sid = self.ids_by_key.get(key) or self.max_id + 1
        versions = self.subjects.get(subject) or {}
        version = body.get("version") if mode == "IMPORT" and body.get("version") else None
        version = int(version) if version else max(versions, default=0) + 1
        if version in versions and mode == "IMPORT":
            raise E.not_permitted(f"Version {version} of subject {subject} already exists")
        value = {"subject": subject, "version": version, "id": sid, "schema": schema, "deleted": False}
        if schema_type != "AVRO":
            value["schemaType"] = schema_type
        if refs:
            value["references"] = refs
        self._write({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}, value)
        return {"id": sid, "version": version}

    def lookup(self, subject: str, body, normalize: bool = False, deleted: bool = False) -> dict:
        self._sync()
        versions = self._versions(subject, deleted)
        schema_type, _schema, refs, parsed = self._request_schema(body, normalize)
        key = (schema_type, parsed.canonical, _refs_key(refs))
        for v in reversed(versions):
            if self._key_of(v.id) == key:
                return self.version_body(v)
        raise E.schema_not_found()

    def version_body(self, v: SchemaVersion, fmt: str | None = None) -> dict:
        s = self.by_id[v.id]
        out = {"subject": v.subject, "version": v.version, "id": v.id}
        if s.schema_type != "AVRO":
            out["schemaType"] = s.schema_type
        if s.references:
            out["references"] = s.references
        out["schema"] = s.parsed.serialized() if fmt == "serialized" and s.schema_type == "PROTOBUF" else s.schema
        return out

    def list_subjects(self, prefix: str = "", deleted: bool = False, deleted_only: bool = False) -> list[str]:
        self._sync()
        out = []
        for subject, versions in self.subjects.items():
            if not subject.startswith(prefix or ""):
                continue
            has_live = any(not v.deleted for v in versions.values())
            if deleted_only:
                if any(v.deleted for v in versions.values()):
                    out.append(subject)
            elif has_live or deleted:
                out.append(subject)
        return sorted(out)

    def list_versions(self, subject: str, deleted: bool = False) -> list[int]:
        self._sync()
        return [v.version for v in self._versions(subject, deleted)]

    def get_version(self, subject: str, version, deleted: bool = False, fmt: str | None = None) -> dict:
        self._sync()
        arg = self._version_arg(version)
        versions = self._versions(subject, deleted) if self.subjects.get(subject) else None
        if not versions:
            raise E.subject_not_found(subject)
        if arg == "latest":
            return self.version_body(versions[-1], fmt)
        v = self.subjects[subject].get(arg)
        if v is None or (v.deleted and not deleted):
            raise E.version_not_found(arg)
        return self.version_body(v, fmt)

    def referenced_by(self, subject: str, version) -> list[int]:
        self._sync()
        arg = self._version_arg(version)
        if not self.subjects.get(subject):
            raise E.subject_not_found(subject)
        v = self._find_version(subject, arg)
        if v is None:
            raise E.version_not_found(arg)
        return sorted(self._referrers(subject, v.version))

    def _referrers(self, subject: str, version: int) -> set[int]:
        latest = self._find_version(subject, "latest")
        out = set()
        for versions in self.subjects.values():
            for sv in versions.values():
                if sv.deleted:
                    continue
                for ref in self.by_id[sv.id].references:
                    rv = ref.get("version")
                    if ref.get("subject") == subject and (rv == version or (rv in (-1, "latest")
                                                                            and latest and latest.version == version)):
                        out.add(sv.id)
        return out

    def _watermark(self) -> None:
        self._write({"keytype": "ID_WATERMARK", "magic": 0}, {"max_id": self.max_id})

    def delete_version(self, subject: str, version, permanent: bool = False) -> int:
        self._sync()
        self._check_writable(subject)
        arg = self._version_arg(version)
        if not self.subjects.get(subject):
            raise E.subject_not_found(subject)
        if arg == "latest":
            live = self._live(subject)
            v = live[-1] if live else None
        else:
            v = self.subjects[subject].get(arg)
        if v is None:
            raise E.version_not_found(arg)
        if self._referrers(subject, v.version):
            raise E.reference_exists(f"One or more references exist to the schema {{subject={subject}, "
                                     f"version={v.version}}}.")
        key = {"keytype": "SCHEMA", "subject": subject, "version": v.version, "magic": 1}
        if permanent:
            if not v.deleted:
                raise E.version_not_soft_deleted(subject, v.version)
            self._watermark()
            self._write(key, None)
        else:
            if v.deleted:
                raise E.version_soft_deleted(subject, v.version)
            value = self.version_body(v)
            value["deleted"] = True
            self._write(key, value)
        return v.version

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        self._sync()
        self._check_writable(subject)
        versions = sorted((self.subjects.get(subject) or {}).values(), key=lambda v: v.version)
        if not versions:
            raise E.subject_not_found(subject)
        for v in versions:
            if self._referrers(subject, v.version):
                raise E.reference_exists(f"One or more references exist to the schema {{subject={subject}, "
                                         f"version={v.version}}}.")
        if permanent:
            if any(not v.deleted for v in versions):
                raise E.subject_not_soft_deleted(subject)
            self._watermark()
            for v in versions:
                self._write({"keytype": "SCHEMA", "subject": subject, "version": v.version, "magic": 1}, None)
            for kind, table in (("CONFIG", self.configs), ("MODE", self.modes)):
                if subject in table:
                    self._write({"keytype": kind, "subject": subject, "magic": 0}, None)
            return [v.version for v in versions]
        live = [v for v in versions if not v.deleted]
        if not live:
            raise E.subject_soft_deleted(subject)
        for v in live:
            value = self.version_body(v)
            value["deleted"] = True
            self._write({"keytype": "SCHEMA", "subject": subject, "version": v.version, "magic": 1}, value)
        return [v.version for v in live]

    # -- schemas by id ------------------------------------------------------------------------------

    def _versions_of_id(self, sid: int, deleted: bool = True) -> list[SchemaVersion]:
        out = [v for v in (self.versions_by_id.get(sid) or {}).values() if deleted or not v.deleted]
        return sorted(out, key=lambda v: (v.subject, v.version))

    def schema_by_id(self, sid: int, fmt: str | None = None) -> dict:
        self._sync()
        s = self.by_id.get(sid)
        if s is None or not self._versions_of_id(sid):
            raise E.schema_not_found(sid)
        out: dict = {}
        if s.schema_type != "AVRO":
            out["schemaType"] = s.schema_type
        if s.references:
            out["references"] = s.references
        out["schema"] = s.parsed.serialized() if fmt == "serialized" and s.schema_type == "PROTOBUF" else s.schema
        return out

    def parsed_by_id(self, sid: int):
        """For the broker: the parsed schema of a registered id, or None."""
        self._sync()
        s = self.by_id.get(sid)
        if s is None or not self._versions_of_id(sid):
            return None
        return s.parsed

    def subjects_of_id(self, sid: int, deleted: bool = False) -> list[str]:
        self._sync()
        if sid not in self.by_id or not self._versions_of_id(sid):
            raise E.schema_not_found(sid)
        return sorted({v.subject for v in self._versions_of_id(sid, deleted)})

    def versions_of_id(self, sid: int, deleted: bool = False) -> list[dict]:
        self._sync()
        if sid not in self.by_id or not self._versions_of_id(sid):
            raise E.schema_not_found(sid)
        return [{"subject": v.subject, "version": v.version} for v in self._versions_of_id(sid, deleted)]

    def list_schemas(self, prefix: str = "", deleted: bool = False, latest_only: bool = False) -> list[dict]:
        self._sync()
        out = []
        for subject in sorted(self.subjects):
            if not subject.startswith(prefix or ""):
                continue
            versions = [v for v in sorted(self.subjects[subject].values(), key=lambda v: v.version)
                        if deleted or not v.deleted]
            if latest_only:
                versions = versions[-1:]
            out += [self.version_body(v) for v in versions]
        return out

    # -- compatibility and mode ---------------------------------------------------------------------

    def compatibility(self, subject: str | None, default_to_global: bool = True) -> str:
        self._sync()
        if subject is not None and subject in self.configs:
            return self.configs[subject]
        if subject is not None and not default_to_global:
            raise E.compatibility_not_configured(subject)
        return self.configs.get(None, self.default_compatibility)

    def set_compatibility(self, subject: str | None, level) -> str:
        self._sync()
        if not isinstance(level, str) or level.upper() not in LEVELS:
            raise E.invalid_compatibility(level)
        self._write({"keytype": "CONFIG", "subject": subject, "magic": 0}, {"compatibilityLevel": level.upper()})
        return level.upper()

    def delete_compatibility(self, subject: str | None) -> str:
        self._sync()
        if subject is not None and subject not in self.configs and subject not in self.subjects:
            raise E.subject_not_found(subject)
        previous = self.compatibility(subject, True)
        if subject in self.configs:
            self._write({"keytype": "CONFIG", "subject": subject, "magic": 0}, None)
        return previous

    def mode(self, subject: str | None, default_to_global: bool = True) -> str:
        self._sync()
        if subject is not None and subject in self.modes:
            return self.modes[subject]
        if subject is not None and not default_to_global:
            raise E.mode_not_configured(subject)
        return self.modes.get(None, "READWRITE")

    def set_mode(self, subject: str | None, mode, force: bool = False) -> str:
        self._sync()
        if not isinstance(mode, str) or mode.upper() not in MODES:
            raise E.invalid_mode(mode)
        mode = mode.upper()
        if mode == "IMPORT" and not force:
            busy = bool(self._live(subject)) if subject is not None else bool(self.list_subjects())
            if busy:
                raise E.not_permitted("Cannot import since found existing subjects")
        self._write({"keytype": "MODE", "subject": subject, "magic": 0}, {"mode": mode})
        return mode

    def delete_mode(self, subject: str) -> str:
        self._sync()
        previous = self.mode(subject, True)
        if subject in self.modes:
            self._write({"keytype": "MODE", "subject": subject, "magic": 0}, None)
        return previous

    def test_compatibility(self, subject: str, version, body, normalize: bool = False,
                           verbose: bool = False) -> dict:
        self._sync()
        _t, _s, _r, parsed = self._request_schema(body, normalize)
        level = self.compatibility(subject, True)
        live = self._live(subject)
        if version is None:
            previous = [(v.version, self.by_id[v.id].parsed) for v in live]
        else:
            arg = self._version_arg(version)
            if not live:
                if arg != "latest":
                    raise E.subject_not_found(subject)
                previous = []
            else:
                v = live[-1] if arg == "latest" else self.subjects[subject].get(arg)
                if v is None or v.deleted:
                    raise E.version_not_found(arg)
                previous = [(v.version, self.by_id[v.id].parsed)]
                level = level.removesuffix("_TRANSITIVE")
        msgs = check(level, parsed, previous)
        out: dict = {"is_compatible": not msgs}
        if verbose:
            out["messages"] = msgs
        return out
