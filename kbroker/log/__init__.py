"""A partition's log and what keeps it: Kafka's ``kafka.log`` / ``storage.internals.log`` seams.

- ``unified_log.UnifiedLog``: one partition's log over a log store (``kbroker/storage/``): appends as the
  leader, transaction markers, truncation, the log start offset, and the high watermark and last stable
  offset as fields;
- ``producer_state``: idempotent producers and open transactions (Kafka's ProducerStateManager);
- ``transaction_index``: the aborted transactions read_committed fetches are told about (TransactionIndex);
- ``leader_epoch_cache``: where each leader epoch began (LeaderEpochFileCache);
- ``cleaner``: compaction's record work (LogCleaner), run by
- ``log_manager``: retention, compaction, time-based rolls and flushes in the background (LogManager).

The partition as a replica (leader epoch, high watermark rule, fetch waiters) is ``kbroker/partition.py``;
only these two touch a log's store.
"""
