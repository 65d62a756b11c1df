"""Every analytics-python call of outbox.Client reaches `outbox collect`."""

import datetime as dt
import decimal

import outbox


def test_every_method_reaches_the_collector(collector, tmp_path):
    client = outbox.Client(write_key="key-1", endpoint=collector.url, path=tmp_path / "events.db")
    when = dt.datetime(2024, 5, 1, 12, 30, 0, tzinfo=dt.timezone.utc)
    ok, msg = client.track(
        user_id="u-1",
        event="Order Completed",
        properties={"total": decimal.Decimal("12.5"), "big": 123456789012345678901234567890, "at": when},
        context={"ip": "10.0.0.1"},
        timestamp=when,
        integrations={"All": True},
        message_id="py-track",
    )
    assert ok and msg["messageId"] == "py-track"
    client.identify("u-1", {"plan": "pro"}, message_id="py-identify")
    client.group("u-1", "g-1", {"name": "Acme"}, message_id="py-group")
    client.alias("anon-1", "u-1", message_id="py-alias")
    client.page("u-1", "Docs", "Home", {"path": "/"}, message_id="py-page")
    client.screen(anonymous_id=42, category="App", name="Cart", properties={"items": 2}, message_id="py-screen")
    _, generated = client.track(user_id=7, event="No Id Given")
    report = client.flush(timeout=60)
    assert report["outcome"] == "settled", report
    client.shutdown()

    got = collector.wait_for(
        ["py-track", "py-identify", "py-group", "py-alias", "py-page", "py-screen", generated["messageId"]]
    )
    track = got["py-track"]
    assert track["type"] == "track" and track["event"] == "Order Completed" and track["userId"] == "u-1"
    assert track["properties"]["total"] == 12.5
    assert track["properties"]["big"] == 123456789012345678901234567890
    assert track["properties"]["at"] == "2024-05-01T12:30:00.000Z"
    assert track["timestamp"] == "2024-05-01T12:30:00.000Z"
    assert track["context"]["ip"] == "10.0.0.1" and track["integrations"] == {"All": True}
    assert got["py-identify"]["type"] == "identify" and got["py-identify"]["traits"] == {"plan": "pro"}
    assert got["py-group"]["type"] == "group" and got["py-group"]["groupId"] == "g-1"
    assert got["py-group"]["traits"] == {"name": "Acme"}
    assert got["py-alias"]["type"] == "alias"
    assert (got["py-alias"]["previousId"], got["py-alias"]["userId"]) == ("anon-1", "u-1")
    page = got["py-page"]
    assert (page["type"], page["category"], page["name"], page["properties"]) == ("page", "Docs", "Home", {"path": "/"})
    screen = got["py-screen"]
    assert (screen["type"], screen["anonymousId"], screen["name"]) == ("screen", "42", "Cart")
    assert got[generated["messageId"]]["userId"] == "7"


def test_module_level_api_as_analytics_python(collector, tmp_path):
    outbox.write_key = "key-2"
    outbox.host = collector.url
    outbox.path = str(tmp_path / "module.db")
    try:
        outbox.track("u-2", "Module Event", message_id="py-module")
        outbox.flush()
        outbox.shutdown()
    finally:
        outbox.default_client = None
        outbox.write_key = outbox.host = outbox.path = None
    assert "py-module" in collector.wait_for(["py-module"])


def test_on_delivered_and_the_notification_poll(collector, tmp_path):
    delivered = []
    client = outbox.Client(write_key="k", endpoint=collector.url, path=tmp_path / "n.db", on_delivered=delivered.append)
    ids = [client.track("u-3", "Noted", message_id="note-{}".format(i))[1]["messageId"] for i in range(5)]
    client.flush(timeout=60)
    client.shutdown()  # waits for the callback thread to read what is left
    assert sorted(delivered) == sorted(ids)

    polled = outbox.Client(write_key="k", endpoint=collector.url, path=tmp_path / "p.db")
    polled.keep_message_ids()
    polled.track("u-3", "Polled", message_id="poll-1")
    polled.flush(timeout=60)
    seen = []
    while True:
        note = polled.next_notification(timeout=0)
        if note is None:
            break
        seen.append(note)
    polled.shutdown()
    assert any(n["kind"] == "delivered" and n["message_ids"] == ["poll-1"] for n in seen), seen


def test_waiting_for_a_notification_releases_the_gil(collector, tmp_path):
    # A thread blocks in next_notification; if that held the GIL, this
    # thread could not track the event that ends the wait, and the wait would
    # run out (None) instead of returning the delivery.
    import threading
    import time

    client = outbox.Client(write_key="k", endpoint=collector.url, path=tmp_path / "g.db")
    client.keep_message_ids()
    got = []
    ready = threading.Event()

    def wait():
        ready.set()
        while True:
            note = client.next_notification(timeout=120)
            got.append(note)
            if note is None or note["kind"] == "delivered":
                return

    waiter = threading.Thread(target=wait)
    waiter.start()
    ready.wait()
    time.sleep(0.2)  # let it block first (not a timing assertion)
    client.track("u-4", "While Waiting", message_id="gil-1")
    waiter.join()
    client.shutdown()
    assert got[-1] is not None and got[-1]["message_ids"] == ["gil-1"], got
