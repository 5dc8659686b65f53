"""The log manager: retention, compaction, time-based rolls and the flush policy, in the background.

Theory of operation.  Three periodic tasks on the broker's event loop, never on the request path:

* **Retention** every ``log.retention.check.interval.ms``: first every log whose active segment is older
  than ``segment.ms`` (less its jitter; ``max.compaction.lag.ms`` too on compacted topics) is rolled, so
  that an idle partition's data becomes a closed segment; then, for topics whose ``cleanup.policy``
  contains ``delete``, the oldest closed segments go while their largest timestamp is older than
  ``retention.ms`` (-1: kept for ever) or while the partition is larger than ``retention.bytes``.  The
  active segment is never deleted.  The log start offset moves to the first segment left; the files are
  renamed ``.deleted`` and removed ``file.delete.delay.ms`` later (a timer per log).
* **Compaction** every ``log.cleaner.backoff.ms`` (15 s, Kafka's default) for topics whose
  ``cleanup.policy`` contains ``compact``: a log is cleaned when its dirty share (bytes appended since the
  last clean over all cleanable bytes) reaches ``min.cleanable.dirty.ratio``, when dirty data is older
  than ``max.compaction.lag.ms``, or when a kept tombstone's or transaction marker's delete horizon has
  passed.  Only closed segments wholly below the last stable offset are cleaned (open transactions are
  never touched).  What to clean is decided here, on the loop, with what the cleaner needs of the
  log copied into the plan (its aborted transactions, each producer's last batch); the record work
  (``cleaner.py``) runs on one worker thread over snapshots of closed segments, and the swap of old
  segments for cleaned ones happens back on the loop, refused by the log if a segment changed meanwhile
  (deleted by retention, say).  Then the log forgets the aborted transactions the clean found no
  records of.
* **Flush** twice per flush interval (``--fsync interval``: 1 s; or the smallest ``flush.ms``): logs
  whose last fsync is older than their interval and that have unflushed appends are fsynced, so an
  acknowledged append is on disk within 1.5 intervals.  Appends check the same rule themselves (see
  ``storage.segment``).  ``start`` applies the broker's ``--fsync`` mode to the store.
* **High-watermark checkpoint** every ``replica.high.watermark.checkpoint.interval.ms`` (5 s; the file is
  written on a worker thread, its two fsyncs off the loop) and at a clean shutdown
  (``checkpoint_high_watermarks``, called by the broker before it closes its logs): every local partition's
  high watermark goes to the log directory's ``replication-offset-checkpoint`` (Kafka's file and format,
  written atomically), from which the logs start after a restart, so that a broker that leads again serves
  what was committed before followers have fetched (Kafka's ReplicaManager does this).

Configs are read from each log's ``config`` at the moment they are needed; AlterConfigs replaces it, so
changes apply at the next tick without a restart.

Tests drive the tasks directly: ``run_retention_once``, ``run_cleaner_once`` (a coroutine) and
``run_flush_once``, through ``Broker.call`` so that they run on the loop.

Concurrency: everything except ``cleaner.clean_groups`` runs on the event loop, with no ``await``
between reading a log's segments and acting on them.  The one await, for the worker thread, is bracketed
by snapshots taken before and a checked swap after.  Cleans are serialised by a lock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

from .cleaner import Aborted, CleanPlan, CleanResult, clean_groups
from ..storage.base import FSYNC_MODES, INTERVAL_FLUSH_MS, StorageError
from ..storage.log_segment import wall_ms
from ..storage.segment import remove_files

__all__ = ["LogManager", "stray_logs"]

log = logging.getLogger("kbroker.log")

# log.cleaner.backoff.ms: Kafka's default sleep between cleaner passes.
# Offsets in a cleaned segment are relative to its base offset as int32 (Kafka's limit too).
_I32_MAX = 2**31 - 1
# The offset map is a dict; past this many keys a clean stops at the segment that reached it and the
# rest waits for the next pass (Kafka sizes its map by log.cleaner.dedupe.buffer.size, 128 MB).
MAX_OFFSET_MAP_KEYS = 2_000_000


class LogManager:
    def __init__(self, state, config=None, now_ms=wall_ms):
        self.state = state
        self.config = config if config is not None else state.config
        self.now_ms = now_ms
        self.retention_check_interval_ms = self.config.log_retention_check_interval_ms
        self.cleaner_backoff_ms = self.config.log_cleaner_backoff_ms
        self._stop = asyncio.Event()
        self._abort = threading.Event()
        self._tasks: list[asyncio.Task] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._clean_lock = asyncio.Lock()
        # log -> the earliest delete horizon among its kept tombstones (a clean is due then)
        self._horizons: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.last_clean: dict[str, CleanResult] = {}  # "topic-partition" -> what its last clean did

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        mode = self.config.fsync
        if mode not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}, not {mode!r}")
        self.state.log_store.flush_policy.mode = mode
        self._tasks = [
            asyncio.ensure_future(self._every(lambda: self.retention_check_interval_ms, self.run_retention_once)),
            asyncio.ensure_future(self._every(lambda: self.cleaner_backoff_ms, self.run_cleaner_once)),
            asyncio.ensure_future(self._every(self._flush_tick_ms, self.run_flush_once)),
            asyncio.ensure_future(self._every(lambda: self.config.replica_high_watermark_checkpoint_interval_ms,
                                              self._checkpoint_high_watermarks_off_loop)),
        ]

    async def stop(self) -> None:
        """Stop the tasks; a clean in progress gives up between two batches and leaves the log as it was."""
        self._stop.set()
        self._abort.set()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _every(self, interval_ms, fn) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), max(interval_ms(), 1) / 1000)
            except asyncio.TimeoutError:
                pass
            if self._stop.is_set():
                return
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("log manager: %s failed", getattr(fn, "__name__", fn))

    def _partitions(self):
        for topic in list(self.state.topics.by_name.values()):
            for p in list(topic.partitions):
                if p.log is not None:  # the partitions this broker holds a replica of
                    yield topic, p

    # -- stray logs ---------------------------------------------------------------------------

    def remove_stray_logs(self, topics) -> list[tuple[str, int]]:
        """Once the broker has the cluster's metadata (``topics``: the controller's TopicRegistrations) and
        opened the logs of the partitions it gives this broker, remove the data of those it no longer gives
        it (reassigned away or deleted while this broker was down), as Kafka's broker does with its stray
        logs at start-up (KAFKA-14616). Returns the (topic, partition)s removed."""
        stray = stray_logs(self.state.log_store.unopened_logs(), topics, self.state.node_id)
        if stray:
            for topic, partition in stray:
                log.info("%s-%d: a stray log (the cluster's metadata no longer gives it to broker %d): removed",
                         topic, partition, self.state.node_id)
            self.state.log_store.delete_stray_logs(stray)
        return stray

    # -- high-watermark checkpoint -----------------------------------------------------------

    def checkpoint_high_watermarks(self) -> int:
        """Write every local partition's high watermark to the store's checkpoint; returns how many."""
        offsets = self._high_watermarks()
        self.state.log_store.checkpoint_high_watermarks(offsets)
        return len(offsets)

    async def _checkpoint_high_watermarks_off_loop(self) -> int:
        """The periodic checkpoint: the high watermarks are read on the loop, the file is written (two fsyncs,
        milliseconds on a busy disk) on a worker thread, as Kafka's scheduler thread writes it, so that no
        request waits behind it. The task that calls this runs one at a time and the broker's final checkpoint
        comes after the task has stopped (broker_server), so two writes never overlap."""
        offsets = self._high_watermarks()
        await asyncio.to_thread(self.state.log_store.checkpoint_high_watermarks, offsets)
        return len(offsets)

    def _high_watermarks(self) -> dict[tuple[str, int], int]:
        return {(topic.name, p.index): p.log.high_watermark
                for topic, p in self._partitions() if not p.log.store.closed}

    # -- retention ---------------------------------------------------------------------

    def run_retention_once(self, now_ms: int | None = None) -> int:
        """Roll what segment.ms says, delete what retention says; returns segments deleted."""
        now = self.now_ms() if now_ms is None else now_ms
        deleted = 0
        producer_expiry = getattr(self.config, "producer_id_expiration_ms", None)
        for topic, p in self._partitions():
            plog = p.log
            if producer_expiry is not None:
                plog.remove_expired_producers(now - producer_expiry)
            try:
                plog.maybe_roll(now)
                if plog.config.delete_enabled:
                    deleted += self._apply_retention(f"{topic.name}-{p.index}", plog, now)
                self._schedule_purge(plog)
            except OSError as e:
                log.error("%s-%d: retention failed: %s", topic.name, p.index, e)
        return deleted

    def _apply_retention(self, name: str, plog, now: int) -> int:
        cfg = plog.config
        segments = plog.segment_infos()
        closed = segments[:-1]
        by_time = 0
        if cfg.retention_ms >= 0:
            for seg in closed:
                newest = seg.max_timestamp if seg.max_timestamp >= 0 else seg.modified_ms
                if now - newest <= cfg.retention_ms:
                    break
                by_time += 1
        by_size = 0
        if cfg.retention_bytes >= 0:
            excess = sum(seg.size_bytes for seg in segments) - cfg.retention_bytes
            for seg in closed:
                if excess - seg.size_bytes < 0:
                    break
                excess -= seg.size_bytes
                by_size += 1
        count = max(by_time, by_size)
        if not count:
            return 0
        freed = plog.delete_oldest_segments(count)
        reason = "retention.ms" if by_time >= by_size else "retention.bytes"
        log.info("%s: deleted %d segment%s (%d bytes, offsets %d..%d) past %s; log start offset is now %d",
                 name, count, "" if count == 1 else "s", freed, closed[0].base_offset,
                 closed[count - 1].next_offset - 1, reason, plog.log_start_offset)
        return count

    def _schedule_purge(self, plog) -> None:
        due = plog.store.purge_deleted(self.now_ms(), self._remove_files)
        if due is None:
            return
        loop = asyncio.get_running_loop()

        def fire():
            self._timers.discard(handle)
            try:
                self._schedule_purge(plog)
            except OSError as e:
                log.error("removing deleted segment files: %s", e)

        handle = loop.call_later(max(due - self.now_ms(), 0) / 1000, fire)
        self._timers.add(handle)

    def _remove_files(self, paths: list[str]) -> None:
        """Unlinking thousands of files takes a while: off the loop, on the worker thread."""
        if self._stop.is_set():
            remove_files(paths)
        else:
            self._worker().submit(remove_files, paths)

    def _worker(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kbroker-cleaner")
        return self._executor

    # -- flush ---------------------------------------------------------------------------

    def _flush_tick_ms(self) -> int:
        policy = self.state.log_store.flush_policy
        interval = INTERVAL_FLUSH_MS
        for _topic, p in self._partitions():
            ms = policy.flush_ms(p.log.config)
            if ms is not None and ms < interval:
                interval = ms
        return max(interval // 2, 10)

    def run_flush_once(self) -> int:
        """fsync the logs whose unflushed appends are due; returns how many were."""
        n = 0
        for topic, p in self._partitions():
            try:
                n += p.log.maybe_flush()
            except OSError as e:
                log.error("%s-%d: flush failed: %s", topic.name, p.index, e)
        return n

    # -- compaction ------------------------------------------------------------------------

    async def run_cleaner_once(self, now_ms: int | None = None, force: bool = False) -> int:
        """Clean every compacted log that needs it (all of them with ``force``); returns logs cleaned."""
        cleaned = 0
        async with self._clean_lock:
            for topic, p in self._partitions():
                if self._stop.is_set():
                    break
                if not p.log.config.compact_enabled:
                    continue
                now = self.now_ms() if now_ms is None else now_ms
                try:
                    if await self._clean(f"{topic.name}-{p.index}", p, now, force):
                        cleaned += 1
                except Aborted:
                    break
                except Exception:
                    log.exception("%s-%d: compaction failed", topic.name, p.index)
        return cleaned

    def _plan(self, name: str, p, now: int, force: bool) -> tuple[CleanPlan, int] | None:
        """Decide whether and what to clean: ``(plan, offset cleaned up to)``, or None."""
        plog = p.log
        cfg = plog.config
        segments = plog.segment_infos()
        # Never the active segment, nor the one holding the last stable offset (an open transaction's first
        # record) and those after it, nor a segment younger than min.compaction.lag.ms, nor those after it.
        last_stable = plog.last_stable_offset
        first_uncleanable = segments[-1].base_offset
        for seg in segments[:-1]:
            if seg.next_offset > last_stable or (
                    cfg.min_compaction_lag_ms > 0 and seg.max_timestamp > now - cfg.min_compaction_lag_ms):
                first_uncleanable = seg.base_offset
                break
        cleanable = [s for s in segments[:-1] if s.base_offset < first_uncleanable]
        if not cleanable:
            return None
        store = plog.store
        checkpoint = store.cleaner_checkpoint
        if checkpoint > plog.log_end_offset or checkpoint < plog.log_start_offset:
            checkpoint = plog.log_start_offset
        dirty = [s for s in cleanable if s.next_offset > checkpoint and s.size_bytes]
        dirty_bytes = sum(s.size_bytes for s in dirty)
        total_bytes = sum(s.size_bytes for s in cleanable)
        horizon = self._horizons.get(plog)
        horizon_due = horizon is not None and horizon <= now
        lag_due = bool(dirty) and now - dirty[0].rolling_base_ms > cfg.max_compaction_lag_ms
        ratio = dirty_bytes / total_bytes if total_bytes else 0.0
        if not (force or horizon_due or lag_due or (dirty and ratio >= cfg.min_cleanable_dirty_ratio)):
            return None
        # Bound the offset map: stop at the segment where it would get too big.
        end = first_uncleanable
        if dirty:
            keys_estimate = 0
            for i, seg in enumerate(dirty):
                keys_estimate += seg.next_offset - seg.base_offset
                if keys_estimate > MAX_OFFSET_MAP_KEYS and i > 0:
                    end = seg.base_offset
                    dirty = dirty[:i]
                    break
        to_clean = [s for s in cleanable if s.base_offset < end]
        groups = []
        current: list = []
        size = 0
        for seg in to_clean:
            if current and (size + seg.size_bytes > cfg.segment_bytes
                            or seg.next_offset - 1 - current[0].base_offset > _I32_MAX):
                groups.append(current)
                current, size = [], 0
            current.append(seg)
            size += seg.size_bytes
        if current:
            groups.append(current)
        # Each producer's last batch keeps its header (its sequence numbers); a producer that wrote only
        # markers in its current epoch keeps those (its epoch).
        producers = plog.producer_state.producers
        last_offsets = {}
        marker_only = {}
        for pid, entry in producers.items():
            if entry.batches:
                last_offsets[pid] = entry.batches[-1].last_offset
            else:
                marker_only[pid] = entry.epoch
        plan = CleanPlan(name=name, groups=[], dirty=[], now_ms=now, delete_retention_ms=cfg.delete_retention_ms,
                         log_end_offset=plog.log_end_offset, producer_last_offsets=last_offsets, abort=self._abort,
                         aborted_txns=plog.txn_index.before(end),
                         marker_only_producers=marker_only)
        try:
            for g in groups:
                plan.groups.append(([s.uid for s in g], store.cleaned_writer(g[0].base_offset), []))
                plan.groups[-1][2].extend(store.snapshot_segment(s) for s in g)
            plan.dirty.extend(store.snapshot_segment(s) for s in dirty)
        except BaseException:
            _release(plan)
            raise
        log.debug("%s: cleaning offsets %d..%d (%d segments, dirty ratio %.2f%s%s)", name,
                  to_clean[0].base_offset, end - 1, len(to_clean), ratio,
                  ", past max.compaction.lag.ms" if lag_due else "", ", tombstones due" if horizon_due else "")
        return plan, end

    async def _clean(self, name: str, p, now: int, force: bool) -> bool:
        planned = self._plan(name, p, now, force)
        if planned is None:
            return False
        plan, end = planned
        plog = p.log
        store = plog.store
        result = await asyncio.get_running_loop().run_in_executor(self._worker(), clean_groups, plan)
        # Back on the loop: swap, group by group.  A group whose segments changed meanwhile is skipped
        # (its writer discarded) and the checkpoint stays where it was, so the next pass retries.
        swaps = [(uids, writer) for i, (uids, writer, _snaps) in enumerate(plan.groups)
                 if i not in result.unchanged_groups]
        swapped_all = all(store.replace_segments(swaps)) if swaps else True
        try:
            if swapped_all:
                store.set_cleaner_checkpoint(end)
        except StorageError:  # the log was closed meanwhile (its topic deleted)
            return False
        # Aborted transactions below ``end`` that had no batch left when the clean began (whatever became of
        # its swaps): read_committed consumers need not be told about them any more.  Their markers are
        # removed by this clean at the earliest, so an entry never outlives its marker.
        forgotten = plog.forget_aborted_txns(end, result.aborted_txns_kept)
        if result.next_delete_horizon_ms is not None:
            self._horizons[plog] = result.next_delete_horizon_ms
        else:
            self._horizons.pop(plog, None)
        self._schedule_purge(plog)
        self.last_clean[name] = result
        txn_note = ""
        if result.aborted_records_removed or result.markers_removed or forgotten:
            txn_note = (f", {result.aborted_records_removed} aborted transactional records and "
                        f"{result.markers_removed} transaction markers removed, {forgotten} aborted "
                        f"transactions forgotten")
        log.info("%s: compacted offsets up to %d: %d of %d records kept, %d tombstones removed%s, "
                 "%d -> %d bytes, %d batches rewritten, %d dropped, in %.3f s%s", name, end,
                 result.records_kept, result.records_read, result.tombstones_removed, txn_note, result.bytes_read,
                 result.bytes_written, result.batches_rewritten, result.batches_dropped, result.seconds,
                 "" if swapped_all else " (some segments changed meanwhile; they wait for the next pass)")
        return True


def stray_logs(found, topics, node_id: int) -> list[tuple[str, int]]:
    """Which of the store's unopened logs (``found``: (topic, partition, stored topic id or None)) are stray
    for broker ``node_id`` by the metadata ``topics``, as Kafka's ``LogManager.isStrayKraftReplica`` decides:
    the stored topic id (not the name: a topic deleted and made again has a new one) is no topic's, or that
    topic has no such partition, or the partition's replicas do not name this broker; a log without a
    topic id is stray too (made but never written to: the id is written before any record)."""
    by_id = {t.topic_id: t for t in topics}
    out = []
    for name, partition, topic_id in found:
        topic = by_id.get(topic_id) if topic_id is not None else None
        if topic is not None and partition < len(topic.partitions) and \
                node_id in topic.partitions[partition].replicas:
            continue  # still this broker's
        out.append((name, partition))
    return out


def _release(plan: CleanPlan) -> None:
    for _uids, writer, snapshots in plan.groups:
        writer.abort()
        for snap in snapshots:
            snap.close()
    for snap in plan.dirty:
        snap.close()
