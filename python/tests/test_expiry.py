"""Event expiry through the Python binding (issue 18 item 1):
``max_event_age`` (seconds) drops, unsent, events older than that when
their batch is formed; the loss report counts them as ``expired``; the age
survives a restart (the stamp is stored with the event)."""

import time

import pytest

import outbox


def test_old_events_expire_across_a_restart_and_are_reported(collector, tmp_path):
    common = dict(
        write_key="k",
        path=tmp_path / "x.db",
        lifecycle_events=False,
        sessions=False,
        max_event_age=1.0,
    )
    # Port 9 on loopback: nothing listens, the connection is refused.
    offline = outbox.Client(endpoint="http://127.0.0.1:9", **common)
    for i in range(2):
        offline.track(user_id="u-1", event="Old{}".format(i), message_id="py-old-{}".format(i))
    offline.shutdown(timeout=0.5)
    time.sleep(1.2)
    client = outbox.Client(endpoint=collector.url, **common)
    client.track(user_id="u-1", event="New", message_id="py-new")
    client.flush()
    client.shutdown()
    events = collector.events()
    names = [e.get("event") for e in events if e.get("event") != "outbox dropped events"]
    assert names == ["New"], events
    reports = [e for e in events if e.get("event") == "outbox dropped events"]
    assert len(reports) == 1, reports
    assert reports[0]["properties"]["counts"] == {"expired": 2}


def test_max_event_age_is_checked(tmp_path):
    with pytest.raises(outbox.OutboxValueError):
        outbox.Client(write_key="k", path=tmp_path / "a.db", max_event_age=0)
    with pytest.raises(outbox.OutboxTypeError):
        outbox.Client(write_key="k", path=tmp_path / "b.db", max_event_age="5d")


def test_expired_events_count_as_dropped_in_stats(collector, tmp_path):
    client = outbox.Client(
        write_key="k",
        endpoint="http://127.0.0.1:9",
        path=tmp_path / "s.db",
        lifecycle_events=False,
        sessions=False,
        max_event_age=0.2,
    )
    client.track(user_id="u-1", event="Old", message_id="py-stats-old")
    client.sync()
    time.sleep(0.4)
    client.set_network(True, "unmetered")
    client.flush()
    assert client.stats()["dropped"] == 1
    client.shutdown(timeout=0.5)
