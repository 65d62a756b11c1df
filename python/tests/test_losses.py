"""Losses reported to the server through the Python binding (issue 18
item 6): after an overflow the next batch carries one `outbox dropped
events` event with the counts, also after a restart; `loss_reports=False`
sends none."""

import outbox


def reports_after_an_overflow(collector, tmp_path, **settings):
    """Four events into a queue of two while the endpoint is down (two
    drop), then a new client on the same file delivers to the collector."""
    common = dict(
        write_key="k",
        path=tmp_path / "l.db",
        max_queue_size=2,
        lifecycle_events=False,
        sessions=False,
        **settings
    )
    # Port 9 on loopback: nothing listens, the connection is refused.
    offline = outbox.Client(endpoint="http://127.0.0.1:9", **common)
    for i in range(4):
        offline.track(user_id="u-1", event="E{}".format(i), message_id="py-loss-{}".format(i))
    offline.shutdown(timeout=0.5)
    client = outbox.Client(endpoint=collector.url, **common)
    client.flush()
    client.shutdown()
    events = collector.events()
    names = [e.get("event") for e in events if e.get("event") != "outbox dropped events"]
    assert len(names) == 2, events
    return [e for e in events if e.get("event") == "outbox dropped events"]


def test_an_overflow_is_reported_by_default(collector, tmp_path):
    reports = reports_after_an_overflow(collector, tmp_path)
    assert len(reports) == 1, reports
    assert reports[0]["properties"]["counts"] == {"overflow": 2}
    assert reports[0]["properties"]["total"] == 2


def test_loss_reports_false_sends_none(collector, tmp_path):
    assert reports_after_an_overflow(collector, tmp_path, loss_reports=False) == []


def test_loss_reports_must_be_bool(tmp_path):
    try:
        outbox.Client(write_key="k", endpoint="http://127.0.0.1:9", path=tmp_path / "b.db", loss_reports="yes")
    except outbox.OutboxTypeError:
        return
    raise AssertionError("loss_reports='yes' was accepted")
