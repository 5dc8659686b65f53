"""kbroker.uuids.random_uuid: Kafka's Uuid.randomUuid().toString(), never starting with "-" (kafka-storage's
`format -t <id>` reads such an id as an option: it failed a CI run) and never a reserved id."""

import uuid

from kbroker import uuids


def test_an_id_starting_with_a_dash_or_reserved_is_drawn_again(monkeypatch):
    draws = iter([bytes([0xF8]) + bytes(15),  # base64 "-A..."
                  bytes(16),  # the zero id
                  (1).to_bytes(16, "big"),  # the metadata topic's id
                  bytes([0x04]) + bytes(15)])  # "BA...": taken
    monkeypatch.setattr(uuids.uuid, "uuid4", lambda: uuid.UUID(bytes=next(draws)))
    assert uuids.random_uuid() == "BAAAAAAAAAAAAAAAAAAAAA"


def test_ids_are_22_url_safe_characters():
    for _ in range(200):
        text = uuids.random_uuid()
        assert len(text) == 22 and not text.startswith("-")
        assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
