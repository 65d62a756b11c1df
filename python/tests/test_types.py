"""Wrong types and values raise Python exceptions; nothing crashes."""

import datetime as dt
import math

import pytest

import outbox
from outbox import _native


@pytest.fixture
def client(tmp_path):
    # Nothing listens on port 9: these tests never get as far as an upload.
    c = outbox.Client(write_key="k", endpoint="http://127.0.0.1:9", path=tmp_path / "t.db")
    yield c
    c.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.track(user_id="u", event=3),
        lambda c: c.track(user_id="u", event="e", properties=[1, 2]),
        lambda c: c.track(user_id=["u"], event="e"),
        lambda c: c.track(user_id=True, event="e"),
        lambda c: c.track(user_id="u", event="e", context="ctx"),
        lambda c: c.track(user_id="u", event="e", integrations=1),
        lambda c: c.track(user_id="u", event="e", timestamp="2024-01-01"),
        lambda c: c.track(user_id="u", event="e", message_id=object()),
        lambda c: c.track(user_id="u", event="e", properties={"x": object()}),
        lambda c: c.track(user_id="u", event="e", properties={(1, 2): "tuple key"}),
        lambda c: c.identify("u", traits="plan"),
        lambda c: c.group("u", group_id={"g": 1}),
        lambda c: c.page("u", name=5),
        lambda c: c.screen("u", category=5),
        lambda c: c.next_notification(timeout="soon"),
    ],
)
def test_wrong_types_raise_type_error(client, call):
    with pytest.raises(TypeError) as e:
        call(client)
    # analytics-python raised AssertionError for these: except clauses keep working.
    assert isinstance(e.value, AssertionError)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.track(event="no identity"),
        lambda c: c.track(user_id="u"),
        lambda c: c.track(user_id="u", event="e", properties={"nan": math.nan}),
        lambda c: c.group("u"),
        lambda c: c.alias(previous_id="a"),
        lambda c: c.alias(user_id="u"),
    ],
)
def test_missing_or_bad_values_raise_value_error(client, call):
    with pytest.raises(ValueError):
        call(client)


def test_a_cycle_raises_value_error(client):
    props = {}
    props["self"] = props
    with pytest.raises(ValueError):
        client.track("u", "e", props)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({}, ValueError),
        ({"write_key": 5}, TypeError),
        ({"write_key": "k", "max_queue_size": "many"}, TypeError),
        ({"write_key": "k", "max_queue_size": 0}, ValueError),
        ({"write_key": "k", "path": 3}, TypeError),
        ({"write_key": "k", "on_delivered": "not callable"}, TypeError),
        ({"write_key": "k", "endpoint": "not a url"}, ValueError),
    ],
)
def test_bad_client_arguments_raise(tmp_path, kwargs, error):
    kwargs.setdefault("path", tmp_path / "c.db")
    with pytest.raises(error):
        outbox.Client(**kwargs)


def test_the_native_layer_refuses_wrong_types_too(tmp_path):
    with pytest.raises(TypeError):
        _native.NativeClient(1, "http://127.0.0.1:9", "k")
    with pytest.raises(TypeError):
        _native.NativeClient(str(tmp_path / "n.db"), "http://127.0.0.1:9", "k", max_queue_size="x")
    with pytest.raises(OverflowError):
        _native.NativeClient(str(tmp_path / "n.db"), "http://127.0.0.1:9", "k", max_queue_size=-1)
    native = _native.NativeClient(str(tmp_path / "n.db"), "http://127.0.0.1:9", "k")
    for bad in ["not json", "[1]", '{"type": "track", "userId": "u"}', '{"type": "nope", "userId": "u"}']:
        with pytest.raises(ValueError):
            native.enqueue(bad, True)
    with pytest.raises(TypeError):
        native.enqueue(b"{}", True)
    for timeout in [math.nan, -1.0]:
        with pytest.raises(ValueError):
            native.flush_and_wait(timeout)
        with pytest.raises(ValueError):
            native.next_notification(timeout)
    native.close()
    with pytest.raises(outbox.OutboxError):
        native.enqueue('{"type": "track", "event": "e", "userId": "u"}', True)
    with pytest.raises(outbox.OutboxError):
        native.flush()


def test_a_stopped_client_raises_outbox_error(tmp_path):
    c = outbox.Client(write_key="k", endpoint="http://127.0.0.1:9", path=tmp_path / "s.db")
    c.close()
    with pytest.raises(outbox.OutboxError):
        c.track("u", "after close")


def test_a_naive_datetime_is_taken_as_utc_when_not_now(client):
    _, msg = client.track("u", "e", timestamp=dt.datetime(2020, 1, 2, 3, 4, 5))
    assert msg["timestamp"] == "2020-01-02T03:04:05.000Z"
