"""The records of __share_group_state in Kafka's formats (share-coordinator ShareSnapshotValue and
ShareUpdateValue v0, DeliveryCompleteCount as tagged field 0): a ShareUpdate carries the batches that changed,
and replaying it on the state it was written from gives the state it was written for."""

from kbroker.share import state_records as SR

AVAILABLE, ACKNOWLEDGED, ARCHIVED = 0, 2, 4


def test_an_update_carries_what_changed_and_replays_to_the_new_state():
    old = SR.ShareState(0, 0, 3, 1, [(0, 4, AVAILABLE, 1), (5, 9, AVAILABLE, 0)])
    new = SR.ShareState(2, 0, 3, 0, [(2, 2, ACKNOWLEDGED, 1), (3, 4, AVAILABLE, 1), (5, 9, AVAILABLE, 0),
                                     (10, 11, ARCHIVED, 0)])
    changed = SR.changed_batches(old, new)
    assert changed == [(2, 2, ACKNOWLEDGED, 1), (10, 11, ARCHIVED, 0)]
    value = SR.update_value(SR.ShareState(2, -1, 3, 1, changed), SR.delivery_complete_count(new))
    # version 0, snapshot epoch 1, leader epoch 3, start offset 2, two batches, tag 0 = 3 records complete
    assert value[:18] == bytes.fromhex("0000" "00000001" "00000003" "0000000000000002")
    assert value[-7:] == bytes.fromhex("01" "00" "04" "00000003")
    decoded = SR.decode_share_value(SR.SHARE_UPDATE, value)
    assert (decoded.start_offset, decoded.leader_epoch, decoded.snapshot_epoch) == (2, 3, 1)
    merged = SR.merge_update(old, decoded)
    assert SR.per_offset(merged) == SR.per_offset(new) and merged.start_offset == 2


def test_an_update_cannot_drop_an_offset():
    old = SR.ShareState(0, 0, 0, 0, [(0, 4, AVAILABLE, 1)])
    assert SR.changed_batches(old, SR.ShareState(0, 0, 0, 0, [(0, 2, AVAILABLE, 1)])) is None


def test_a_snapshot_carries_its_delivery_complete_count_as_tagged_field_0():
    s = SR.ShareState(0, 1, 2, 3, [(0, 1, ACKNOWLEDGED, 1), (2, 2, AVAILABLE, 1)], 10, 20)
    value = SR.snapshot_value(s)
    assert value[-7:] == bytes.fromhex("01" "00" "04" "00000002")
    d = SR.decode_share_value(SR.SHARE_SNAPSHOT, value)
    assert (d.start_offset, d.state_epoch, d.leader_epoch, d.snapshot_epoch, d.state_batches) == (
        0, 1, 2, 3, s.state_batches)
