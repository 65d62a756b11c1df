"""What outbox tracks by itself, through the Python binding (issue 23):
lifecycle events and sessions on the wire with their fields, each turned
off by its setting, and the lifecycle input's typed errors."""

import time

import pytest

import outbox

TIMEOUT = 0.3


def wait_until(collector, condition, limit=60.0):
    """Polls the collector until `condition(events)` holds or `limit`
    seconds passed (a generous bound, not a timing check)."""
    deadline = time.monotonic() + limit
    while True:
        events = collector.events()
        if condition(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def named(events, name):
    return [e for e in events if e.get("event") == name]


def test_lifecycle_events_and_sessions_reach_the_wire(collector, tmp_path):
    client = outbox.Client(
        write_key="k",
        endpoint=collector.url,
        path=tmp_path / "s.db",
        app_name="shop",
        app_version="1.0",
        app_build="7",
        session_timeout=TIMEOUT,
    )
    client.lifecycle("foreground")
    client.track(user_id="u-1", event="Inside", message_id="py-inside")
    # In the foreground longer than the timeout: the session's duration
    # (start to background) is at least that long.
    began = time.monotonic()
    time.sleep(TIMEOUT + 0.1)
    in_foreground = time.monotonic() - began
    client.lifecycle("background")
    # No call from here on: the client ends the session by itself.
    events = wait_until(collector, lambda ev: named(ev, "session_end"))
    client.shutdown()

    installed = named(events, "Application Installed")
    assert len(installed) == 1, events
    assert installed[0]["properties"]["version"] == "1.0"
    assert installed[0]["properties"]["build"] == "7"
    assert installed[0]["context"]["app"] == {"name": "shop", "version": "1.0"}

    starts = named(events, "session_start")
    ends = named(events, "session_end")
    assert len(starts) == 1 and len(ends) == 1, [e.get("event") for e in events]
    session = starts[0]["context"]["session_id"]
    assert isinstance(session, int) and session > 0
    assert ends[0]["context"]["session_id"] == session
    duration = ends[0]["properties"]["duration"]
    # Wall-clock milliseconds at both ends: allow their truncation.
    assert duration >= in_foreground - 0.002, (duration, in_foreground)
    assert duration >= TIMEOUT

    opened = named(events, "Application Opened")
    assert len(opened) == 1
    assert opened[0]["properties"]["from_background"] is False
    assert opened[0]["properties"]["version"] == "1.0"
    assert opened[0]["context"]["session_id"] == session
    backgrounded = named(events, "Application Backgrounded")
    assert len(backgrounded) == 1
    assert backgrounded[0]["context"]["session_id"] == session

    inside = [e for e in events if e["messageId"] == "py-inside"]
    assert len(inside) == 1
    assert inside[0]["context"]["session_id"] == session
    assert inside[0]["userId"] == "u-1"


def test_each_setting_turns_its_events_off(make_collector, tmp_path):
    for name, settings, expected in (
        ("no-lifecycle", {"lifecycle_events": False}, ["session_start", "Marker"]),
        ("no-sessions", {"sessions": False}, ["Application Installed", "Application Opened", "Marker"]),
        ("neither", {"lifecycle_events": False, "sessions": False}, ["Marker"]),
    ):
        collector = make_collector(name)
        client = outbox.Client(
            write_key="k",
            endpoint=collector.url,
            path=tmp_path / (name + ".db"),
            app_version="2.0",
            session_timeout=TIMEOUT,
            **settings
        )
        client.lifecycle("foreground")
        client.track(user_id="u-1", event="Marker", message_id="py-" + name)
        report = client.flush(timeout=60)
        assert report["outcome"] == "settled", report
        client.shutdown()
        collector.wait_for(["py-" + name])
        events = collector.events()
        assert [e["event"] for e in events] == expected, (name, events)
        marker = [e for e in events if e["event"] == "Marker"][0]
        has_session = "session_id" in marker.get("context", {})
        assert has_session == settings.get("sessions", True), (name, marker)


def test_bad_lifecycle_input_and_settings_are_typed_errors(tmp_path):
    with pytest.raises(ValueError):
        outbox.Client(write_key="k", endpoint="http://127.0.0.1:9", path=tmp_path / "a.db", session_timeout=0)
    with pytest.raises(TypeError):
        outbox.Client(write_key="k", endpoint="http://127.0.0.1:9", path=tmp_path / "b.db", sessions="yes")
    with pytest.raises(TypeError):
        outbox.Client(write_key="k", endpoint="http://127.0.0.1:9", path=tmp_path / "c.db", app_version=2)
    client = outbox.Client(write_key="k", endpoint="http://127.0.0.1:9", path=tmp_path / "d.db")
    try:
        with pytest.raises(ValueError, match="foreground"):
            client.lifecycle("sideways")
        with pytest.raises(TypeError):
            client.lifecycle(1)
        # The native layer refuses a bad state by itself too.
        with pytest.raises(ValueError):
            client._native.lifecycle("sideways")
    finally:
        client.close()
