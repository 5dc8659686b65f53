"""The README's screenshots of the web console: a broker with some traffic, headless Chromium, PNGs in docs/.

    .venv/bin/python tools/console_screenshots.py
"""

from __future__ import annotations

import threading
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from playwright.sync_api import expect, sync_playwright

from kbroker import Broker

DOCS = Path(__file__).resolve().parent.parent / "docs"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def traffic(b, stop: threading.Event) -> None:
    p = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 20, "client.id": "order-service"})
    i = 0
    while not stop.is_set():
        for _ in range(200):
            p.produce("orders", key=f"customer-{i % 17}".encode(), partition=i % 3,
                      value=b'{"order": %d, "item": "apple", "quantity": %d}' % (i, i % 5 + 1),
                      headers=[("source", b"web")])
            i += 1
        p.poll(0)
        stop.wait(0.1)
    p.flush(10)


def consume(c, stop: threading.Event) -> None:
    while not stop.is_set():
        c.poll(0.1)


def main() -> None:
    with Broker(port=0, storage="memory", control_port=0, num_partitions=3) as b:
        stop = threading.Event()
        t = threading.Thread(target=traffic, args=(b, stop), daemon=True)
        t.start()
        c = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": "billing", "client.id": "billing-1",
                      "auto.offset.reset": "earliest"})
        c.subscribe(["orders"])
        for _ in range(300):
            c.poll(0.05)
        b.control.wait_for_group("billing")
        reader = threading.Thread(target=consume, args=(c, stop), daemon=True)
        reader.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 760})
            page.goto(b.control_url + "/")
            expect(page.locator("#live")).to_have_text("live")
            # A few seconds of charts. Playwright is kept busy meanwhile: a browser whose driver is not read
            # from stalls its event stream.
            page.wait_for_timeout(8000)
            page.screenshot(path=DOCS / "console-overview.png")
            page.goto(b.control_url + "/#/topics/orders")
            page.get_by_test_id("browse-format").select_option("json")
            expect(page.get_by_test_id("records").locator("tr[data-offset]").first).to_be_visible()
            page.screenshot(path=DOCS / "console-topic.png")
            page.goto(b.control_url + "/#/groups/billing")
            expect(page.get_by_test_id("group-state")).to_have_text("Stable")
            page.screenshot(path=DOCS / "console-group.png")
            page.goto(b.control_url + "/#/clients")
            expect(page.get_by_test_id("clients")).to_be_visible()
            page.screenshot(path=DOCS / "console-clients.png")
            browser.close()
        stop.set()
        t.join()
        reader.join()
        c.close()


if __name__ == "__main__":
    main()
