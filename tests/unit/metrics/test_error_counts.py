"""metrics.BrokerMetrics.request_done counts the error codes of Produce and Fetch answers while it walks their
partitions for records and bytes; what it counts must be what the generic walk over any answer
(``_count_errors``, Kafka's AbstractResponse.errorCounts) finds in the same answers, errors and nested fields
(record errors, leader hints, aborted transactions, diverging epochs) included."""

from types import SimpleNamespace

from kbroker.metrics import FETCH, PRODUCE, BrokerMetrics, _count_errors
from kbroker.records.builder import simple_batch
from kbroker.wire.messages import fetch, produce

P, PR = produce.ProduceRequest, produce.ProduceResponse
FR = fetch.FetchResponse


def _counted(api_key, request, response) -> dict:
    m = BrokerMetrics(SimpleNamespace(state=None))
    header = SimpleNamespace(api_key=api_key, api_version=12, client_id="c")
    m.request_done(None, header, 0, request, response)
    return {code: n for (_name, code), n in m.errors.items()}


def _generic(response) -> dict:
    out: dict[int, int] = {}
    _count_errors(response, out)
    return out


def test_a_produce_answer_counts_what_the_generic_walk_counts():
    batch = bytes(simple_batch(b"a", b"b"))
    request = P(acks=1, timeout_ms=1000, topic_data=[
        P.TopicProduceData(name="t", partition_data=[P.PartitionProduceData(index=i, records=batch)
                                                     for i in range(3)]),
        P.TopicProduceData(name="u", partition_data=[P.PartitionProduceData(index=0, records=batch)])])
    response = PR(throttle_time_ms=0, node_endpoints=[PR.NodeEndpoint(node_id=2, host="h", port=1, rack=None)],
                  responses=[
        PR.TopicProduceResponse(name="t", partition_responses=[
            PR.PartitionProduceResponse(index=0, error_code=0, base_offset=5),
            PR.PartitionProduceResponse(index=1, error_code=6, base_offset=-1,
                                        current_leader=PR.LeaderIdAndEpoch(leader_id=2, leader_epoch=3)),
            PR.PartitionProduceResponse(index=2, error_code=87, base_offset=-1, record_errors=[
                PR.BatchIndexAndErrorMessage(batch_index=1, batch_index_error_message="no key")])]),
        PR.TopicProduceResponse(name="u", partition_responses=[
            PR.PartitionProduceResponse(index=0, error_code=0, base_offset=0)])])
    assert _counted(PRODUCE, request, response) == _generic(response) == {0: 2, 6: 1, 87: 1}


def test_an_acks_0_produce_counts_no_errors():
    request = P(acks=0, timeout_ms=1000, topic_data=[P.TopicProduceData(name="t", partition_data=[
        P.PartitionProduceData(index=0, records=bytes(simple_batch(b"a")))])])
    assert _counted(PRODUCE, request, None) == {}


def test_a_fetch_answer_counts_what_the_generic_walk_counts():
    response = FR(throttle_time_ms=0, error_code=0, session_id=0, node_endpoints=[], responses=[
        FR.FetchableTopicResponse(topic="t", partitions=[
            FR.PartitionData(partition_index=0, error_code=0, high_watermark=3, records=b"",
                             aborted_transactions=[FR.AbortedTransaction(producer_id=1, first_offset=0)]),
            FR.PartitionData(partition_index=1, error_code=1, high_watermark=-1, records=b""),
            FR.PartitionData(partition_index=2, error_code=0, high_watermark=3, records=b"",
                             diverging_epoch=FR.EpochEndOffset(epoch=1, end_offset=2),
                             current_leader=FR.LeaderIdAndEpoch(leader_id=1, leader_epoch=1))]),
        FR.FetchableTopicResponse(topic="u", partitions=[
            FR.PartitionData(partition_index=0, error_code=6, high_watermark=-1, records=b"")])])
    assert _counted(FETCH, None, response) == _generic(response) == {0: 3, 1: 1, 6: 1}
    top = FR(throttle_time_ms=0, error_code=70, session_id=0, responses=[], node_endpoints=[])
    assert _counted(FETCH, None, top) == _generic(top) == {70: 1}
