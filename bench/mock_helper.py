"""Keeps a librdkafka mock cluster alive for the benchmark: ``python mock_helper.py LIBRDKAFKA_SO``.

The mock cluster lives inside an rd_kafka_t handle, so it needs a process that holds the handle. This
one loads the librdkafka shipped in the confluent-kafka wheel with ctypes (no confluent_kafka import,
so it starts fast), creates a one-broker cluster, prints ``mock listening on HOST:PORT`` and then serves
one command a line on stdin, answering ``ok <error code>``:

    create TOPIC PARTITIONS    rd_kafka_mock_topic_create (the mock serves no CreateTopics)
    delete TOPIC               rd_kafka_mock_topic_delete

End of input destroys the cluster and exits.
"""

import ctypes
import sys

RD_KAFKA_PRODUCER = 0


def main() -> int:
    lib = ctypes.CDLL(sys.argv[1])
    vp, cp, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_conf_set.argtypes = [vp, cp, cp, cp, ctypes.c_size_t]
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_new.argtypes = [ctypes.c_int, vp, cp, ctypes.c_size_t]
    lib.rd_kafka_mock_cluster_new.restype = vp
    lib.rd_kafka_mock_cluster_new.argtypes = [vp, ctypes.c_int]
    lib.rd_kafka_mock_cluster_bootstraps.restype = cp
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [vp]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [vp, i32]
    lib.rd_kafka_mock_topic_create.argtypes = [vp, cp, ctypes.c_int, ctypes.c_int]
    lib.rd_kafka_mock_topic_delete.argtypes = [vp, cp]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [vp]
    lib.rd_kafka_destroy.argtypes = [vp]

    errstr = ctypes.create_string_buffer(512)
    conf = lib.rd_kafka_conf_new()
    lib.rd_kafka_conf_set(conf, b"log_level", b"3", errstr, len(errstr))  # no "no bootstrap.servers" notice
    rk = lib.rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
    if not rk:
        print("error", errstr.value.decode(), flush=True)
        return 1
    mcluster = lib.rd_kafka_mock_cluster_new(rk, 1)
    if not mcluster:
        print("error rd_kafka_mock_cluster_new failed", flush=True)
        return 1
    # Kafka's group.initial.rebalance.delay.ms; the mock defaults to 3 s, test setups use 0.
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms(mcluster, 0)
    print("mock listening on", lib.rd_kafka_mock_cluster_bootstraps(mcluster).decode(), flush=True)

    for line in sys.stdin:
        parts = line.split()
        if parts[:1] == ["create"] and len(parts) == 3:
            err = lib.rd_kafka_mock_topic_create(mcluster, parts[1].encode(), int(parts[2]), 1)
        elif parts[:1] == ["delete"] and len(parts) == 2:
            err = lib.rd_kafka_mock_topic_delete(mcluster, parts[1].encode())
        else:
            err = -1
        print("ok", err, flush=True)

    lib.rd_kafka_mock_cluster_destroy(mcluster)
    lib.rd_kafka_destroy(rk)
    return 0


if __name__ == "__main__":
    sys.exit(main())
