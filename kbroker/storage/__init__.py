"""Log storage behind a small interface (see ``base`` for the theory of operation).

* ``base``        -- LogStore / PartitionLog / LogConfig, the errors, split_batches
* ``memory``      -- MemoryLogStore: lists of batches (``--storage memory``, tests)
* ``segment``     -- SegmentLogStore: Kafka's directory of segment files (default)
* ``log_segment`` -- one segment's files, reads with pread, recovery of its tail
* ``index``       -- the sparse offset and time indexes of a segment
* ``checkpoint``  -- small files written atomically (log-start-offset, partition.metadata)
"""
