"""The web console in a real browser: Debian's Chromium driven by Playwright, against a broker that stock
clients use at the same time. Skipped, saying why, where Chromium or Playwright is missing (`make test`
installs both)."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kbroker import Broker

CHROMIUM = os.environ.get("KBROKER_CHROMIUM", "/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect
expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def broker():
    with Broker(port=0, storage="memory", control_port=0) as b:
        yield b


@pytest.fixture
def page(browser, broker):
    p = browser.new_page(viewport={"width": 1280, "height": 900})
    p.goto(broker.control_url + "/")
    expect(p.locator("#live")).to_have_text("live")
    yield p
    p.close()


def _produce(b, topic: str, values: list[bytes], partition: int = 0) -> None:
    p = Producer({"bootstrap.servers": b.bootstrap_servers})
    for i, v in enumerate(values):
        p.produce(topic, key=f"k{i}".encode(), value=v, partition=partition, headers=[("source", b"test")])
    assert p.flush(30) == 0


def test_records_produced_by_a_client_are_found_in_the_browser(broker, page):
    topic = f"orders-{uuid.uuid4().hex[:6]}"
    _produce(broker, topic, [b'{"order": %d, "item": "apple"}' % i for i in range(5)])
    page.goto(broker.control_url + "/#/topics")
    row = page.locator(f'tr[data-topic="{topic}"]')
    expect(row).to_contain_text("5")  # records, updated live
    row.get_by_role("link").click()
    records = page.get_by_test_id("records")
    expect(records.locator("tr[data-offset]")).to_have_count(5)
    expect(records.locator('tr[data-offset="3"]')).to_contain_text('"order": 3')
    expect(records.locator('tr[data-offset="3"]')).to_contain_text("source: test")
    # As JSON, pretty-printed; as hex: '{' is 7b.
    page.get_by_test_id("browse-format").select_option("json")
    expect(records.locator('tr[data-offset="0"] td').nth(3)).to_contain_text('"item": "apple"')
    page.get_by_test_id("browse-format").select_option("hex")
    expect(records.locator('tr[data-offset="0"] td').nth(3)).to_contain_text("7b 22 6f 72")
    # From an offset.
    page.get_by_test_id("browse-mode").select_option("offset")
    page.get_by_test_id("browse-at").fill("2")
    page.get_by_test_id("browse").click()
    expect(records.locator("tr[data-offset]")).to_have_count(3)
    # A record produced from the page is one a consumer reads.
    page.get_by_test_id("produce-key").fill("from-page")
    page.get_by_test_id("produce-value").fill("hello from the console")
    page.get_by_test_id("produce").click()
    expect(page.locator("#toast")).to_contain_text("produced at offset 5")
    c = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "reader", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 5)])
        m = c.poll(30)
        assert m is not None and m.error() is None
        assert (m.key(), m.value(), m.offset()) == (b"from-page", b"hello from the console", 5)
    finally:
        c.close()


AVRO_PAYMENT = json.dumps({"type": "record", "name": "Payment", "namespace": "kb.console", "fields": [
    {"name": "payer", "type": "string"}, {"name": "cents", "type": "long"},
    {"name": "note", "type": ["null", "string"], "default": None}]})


def test_avro_values_are_shown_decoded_through_the_schema_registry(browser):
    with Broker(port=0, storage="memory", schema_registry_port=0, control_port=0) as b:
        topic = f"payments-{uuid.uuid4().hex[:6]}"
        client = SchemaRegistryClient({"url": b.schema_registry_url})
        serialize = AvroSerializer(client, AVRO_PAYMENT)
        p = Producer({"bootstrap.servers": b.bootstrap_servers})
        for i, payer in enumerate(["grace-hopper", "edsger-dijkstra"]):
            value = serialize({"payer": payer, "cents": 1000 * (i + 1) + 7, "note": f"invoice-{i}"},
                              SerializationContext(topic, MessageField.VALUE))
            p.produce(topic, key=f"k{i}".encode(), value=value, partition=0)
        assert p.flush(30) == 0
        schema_id = client.get_latest_version(f"{topic}-value").schema_id
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(f"{b.control_url}/#/topics/{topic}")
            records = page.get_by_test_id("records")
            expect(records.locator("tr[data-offset]")).to_have_count(2)
            # Shown decoded by default, with the schema id the serializer registered.
            expect(page.get_by_test_id("browse-format")).to_have_value("decoded")
            value = records.locator('tr[data-offset="1"] td').nth(3)
            expect(value).to_contain_text(f"schema id {schema_id} (AVRO)")
            expect(value).to_contain_text('"payer": "edsger-dijkstra"')
            expect(value).to_contain_text('"cents": 2007')
            expect(value).to_contain_text('"note": "invoice-1"')
            # The key is not in the wire format: shown as text.
            expect(records.locator('tr[data-offset="1"] td').nth(2)).to_have_text("k1")
            # The raw bytes stay one choice away: magic byte 0, then the id, big endian.
            page.get_by_test_id("browse-format").select_option("hex")
            expect(value).to_contain_text("00 " + " ".join(f"{x:02x}" for x in schema_id.to_bytes(4, "big")))
            expect(value).not_to_contain_text("schema id")
            page.get_by_test_id("browse-format").select_option("decoded")
            expect(value).to_contain_text('"payer": "edsger-dijkstra"')
        finally:
            page.close()


def test_a_topic_created_from_the_page_is_seen_by_the_admin_client(broker, page):
    topic = f"made-in-browser-{uuid.uuid4().hex[:6]}"
    page.goto(broker.control_url + "/#/topics")
    page.get_by_test_id("new-topic-name").fill(topic)
    page.get_by_test_id("new-topic-partitions").fill("3")
    page.locator("#create-topic input[name=configs]").fill("retention.ms=3600000")
    page.get_by_test_id("create-topic").click()
    expect(page.locator(f'tr[data-topic="{topic}"]')).to_be_visible()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    md = admin.list_topics(topic, timeout=10).topics[topic]
    assert md.error is None and len(md.partitions) == 3
    assert _configs(admin, topic)["retention.ms"] == "3600000"
    # Change a config from the topic's page: the admin client sees the new value.
    page.locator(f'tr[data-topic="{topic}"] a').click()
    row = page.locator('tr[data-config="cleanup.policy"]')
    row.locator("input").fill("compact")
    row.locator("[data-save]").click()
    expect(page.locator('tr[data-config="cleanup.policy"]')).to_contain_text("set")
    assert _configs(admin, topic)["cleanup.policy"] == "compact"


def _configs(admin, topic) -> dict[str, str]:
    [f] = admin.describe_configs([ConfigResource("topic", topic)]).values()
    return {k: e.value for k, e in f.result(10).items()}


def test_a_groups_lag_falls_as_its_consumer_catches_up(broker, page):
    topic = f"lagging-{uuid.uuid4().hex[:6]}"
    _produce(broker, topic, [b"v%d" % i for i in range(30)])
    group = "catching-up"
    c = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        page.goto(broker.control_url + f"/#/groups/{group}")
        lag = page.get_by_test_id("lag")
        expect(lag).to_have_text("30")
        read = 0
        for target in (10, 30):
            while read < target:
                m = c.poll(30)
                assert m is not None and m.error() is None
                read += 1
            c.commit(message=m, asynchronous=False)
            expect(lag).to_have_text(str(30 - target))  # pushed by server-sent events, no reload
    finally:
        c.close()
    # The group is empty now: its offsets can be reset from the page, and its lag is back.
    page.get_by_test_id("reset-offsets").click()
    expect(page.get_by_test_id("lag")).to_have_text("30")


def test_the_page_asks_for_the_control_planes_token_and_sends_it(browser):
    with Broker(port=0, storage="memory", control_port=0, control_token="s3cret-console") as b:
        _produce(b, "guarded", [b"inside"])
        p = browser.new_page()
        asked = []

        def answer(dialog):
            asked.append(dialog.message)
            dialog.accept("s3cret-console")
        p.on("dialog", answer)
        try:
            p.goto(b.control_url + "/#/topics")  # the page loads without the token; its data needs it
            expect(p.locator("#live")).to_have_text("live")
            assert asked and "token" in asked[0]
            expect(p.locator('tr[data-topic="guarded"]')).to_contain_text("1")
            p.get_by_test_id("new-topic-name").fill("made-with-token")
            p.get_by_test_id("create-topic").click()
            expect(p.locator('tr[data-topic="made-with-token"]')).to_be_visible()
            assert b.call(lambda: b.broker_server.state.topics.get("made-with-token")) is not None
        finally:
            p.close()
