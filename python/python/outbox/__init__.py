"""outbox: a durable drop-in for analytics-python.

Same class, method names and arguments as Segment's analytics-python, so
switching is changing one import::

    import outbox as analytics            # was: import segment.analytics as analytics
    client = analytics.Client(write_key="KEY", host="https://api.segment.io")
    client.track(user_id="u-1", event="Order Completed", properties={"total": 9.5})

The difference: every event is committed to a SQLite database (``path``,
default ``$OUTBOX_PATH`` or ``outbox.db``) before ``track`` returns, and is
delivered by outbox's Rust engine (retries with backoff, batches, server-side
dedup by ``messageId``), also after the process was killed and started again.
analytics-python keeps its queue in memory and loses it on a kill.

Wrong argument types raise ``TypeError`` (missing required values
``ValueError``); both are also ``AssertionError``, which analytics-python
raises, so existing ``except`` clauses keep working.
"""

import atexit
import datetime as _dt
import decimal
import enum
import json
import numbers
import os
import threading
import uuid

from . import _native
from ._native import OutboxError, QueueFullError

__all__ = [
    "Client",
    "OutboxError",
    "QueueFullError",
    "OutboxTypeError",
    "OutboxValueError",
    "track",
    "identify",
    "group",
    "alias",
    "page",
    "screen",
    "flush",
    "join",
    "shutdown",
]

VERSION = "0.1.0"
__version__ = VERSION

DEFAULT_HOST = "https://api.segment.io"
DEFAULT_PATH = "outbox.db"


class OutboxTypeError(TypeError, AssertionError):
    """An argument of the wrong type (analytics-python raised AssertionError)."""


class OutboxValueError(ValueError, AssertionError):
    """A required argument is missing or a value is out of range."""


def _type_name(types):
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


def _require(name, value, types, required=False):
    if value is None:
        if required:
            raise OutboxValueError("{} is required".format(name))
        return
    if isinstance(value, bool) or not isinstance(value, types):
        raise OutboxTypeError(
            "{} must be {}, got {}: {!r}".format(name, _type_name(types), type(value).__name__, value)
        )


_ID_TYPES = (str, numbers.Number)


def _id(name, value, required=False):
    """Segment ids are strings; numbers become their text (analytics-python's stringify_id)."""
    _require(name, value, _ID_TYPES, required)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _timestamp(value):
    """RFC 3339 in UTC; a naive datetime is read as analytics-python reads it."""
    _require("timestamp", value, _dt.datetime)
    if value is None:
        value = _dt.datetime.now(_dt.timezone.utc)
    elif value.tzinfo is None:
        # analytics-python's guess_timezone: made by datetime.now() (within
        # 5 s) means local time, anything else is taken as UTC.
        if abs((_dt.datetime.now() - value).total_seconds()) < 5:
            value = value.astimezone()
        else:
            value = value.replace(tzinfo=_dt.timezone.utc)
    text = value.astimezone(_dt.timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _json_default(value):
    # What analytics-python's clean() turns into JSON.
    if isinstance(value, _dt.datetime):
        return _timestamp(value)
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    raise OutboxTypeError("a value of type {} cannot be sent as JSON: {!r}".format(type(value).__name__, value))


def _to_json(msg):
    try:
        return json.dumps(msg, default=_json_default, allow_nan=False, separators=(",", ":"))
    except OutboxTypeError:
        raise
    except TypeError as e:  # e.g. a dict key that is not a string
        raise OutboxTypeError(str(e)) from None
    except ValueError as e:  # NaN, infinity, a circular reference
        raise OutboxValueError(str(e)) from None


class Client:
    """analytics-python's Client, durable.

    ``path`` is the SQLite database (created when missing; one Client per
    file), ``endpoint`` (or analytics-python's ``host``) the collector whose
    ``/v1/batch`` gets the events. ``durable`` (default True): ``track`` and
    the other calls return once the event is committed; False returns at
    once and commits within about 100 ms (a kill in between loses those).
    ``on_delivered(message_id)`` and ``on_error(exception, batch)`` are
    called from a background thread for events tracked by this process.

    analytics-python's ``flush_at``, ``flush_interval``, ``gzip``,
    ``max_retries``, ``proxies``, ``thread``, ``upload_size``,
    ``upload_interval``, ``oauth_*`` and backoff limits are accepted and
    ignored: outbox uploads as soon as events arrive, in batches of what is
    pending, and retries until the server answers (events are never dropped
    after a number of retries).

    What outbox tracks by itself (README, "What is tracked automatically"):
    with ``lifecycle_events`` (default True), ``Application Installed`` /
    ``Application Updated`` at the first start after an install or a change
    of ``app_version``/``app_build``, and ``Application Opened`` /
    ``Application Backgrounded`` on ``lifecycle("foreground")`` /
    ``lifecycle("background")``; with ``sessions`` (default True),
    ``session_start`` on a foreground, ``session_end`` (``duration`` in
    seconds) once the app has been in the background longer than
    ``session_timeout`` seconds (default 60) or at ``lifecycle("terminate")``,
    and ``context.session_id`` on every event inside a session. With
    ``loss_reports`` (default True), after events are dropped (a full queue,
    a damaged record) the next batch carries one ``outbox dropped events``
    event with the counts by reason; ``loss_reports=False`` sends none.
    With ``max_event_age`` (seconds, default None: off), an event older than
    that (wall-clock time since it was tracked) when its batch is formed is
    dropped unsent and reported as lost with reason ``expired`` (Mixpanel
    refuses events older than 5 days: ``max_event_age=5 * 24 * 3600``).
    Critical events never expire.
    """

    def __init__(
        self,
        write_key=None,
        host=None,
        debug=False,
        max_queue_size=10000,
        send=True,
        on_error=None,
        flush_at=100,
        flush_interval=0.5,
        gzip=False,
        max_retries=10,
        sync_mode=False,
        timeout=15,
        proxies=None,
        thread=1,
        upload_size=100,
        upload_interval=0.5,
        log_handler=None,
        oauth_client_id=None,
        oauth_client_key=None,
        oauth_key_id=None,
        oauth_auth_server=None,
        oauth_scope=None,
        max_total_backoff_duration=None,
        max_rate_limit_duration=None,
        path=None,
        endpoint=None,
        durable=True,
        on_delivered=None,
        lifecycle_events=True,
        sessions=True,
        session_timeout=60.0,
        app_name=None,
        app_version=None,
        app_build=None,
        loss_reports=True,
        upload_on="any",
        max_event_age=None,
    ):
        _require("write_key", write_key, str, required=True)
        _require("upload_on", upload_on, str, required=True)
        if upload_on not in self.UPLOAD_POLICIES:
            raise OutboxValueError(
                "upload_on must be one of {}, got {!r}".format(", ".join(self.UPLOAD_POLICIES), upload_on)
            )
        _require("host", host, str)
        _require("endpoint", endpoint, str)
        _require("max_queue_size", max_queue_size, int, required=True)
        _require("timeout", timeout, numbers.Real, required=True)
        for name, flag in (
            ("durable", durable),
            ("lifecycle_events", lifecycle_events),
            ("sessions", sessions),
            ("loss_reports", loss_reports),
        ):
            if not isinstance(flag, bool):
                raise OutboxTypeError("{} must be bool, got {}".format(name, type(flag).__name__))
        _require("max_event_age", max_event_age, numbers.Real)
        if max_event_age is not None and not 0 < max_event_age < float("inf"):
            raise OutboxValueError("max_event_age must be a number of seconds > 0, got {}".format(max_event_age))
        _require("session_timeout", session_timeout, numbers.Real, required=True)
        if not 0 < session_timeout < float("inf"):
            raise OutboxValueError("session_timeout must be a number of seconds > 0, got {}".format(session_timeout))
        for name, value in (("app_name", app_name), ("app_version", app_version), ("app_build", app_build)):
            _require(name, value, str)
        for name, fn in (("on_error", on_error), ("on_delivered", on_delivered)):
            if fn is not None and not callable(fn):
                raise OutboxTypeError("{} must be callable, got {!r}".format(name, fn))
        if path is None:
            path = os.environ.get("OUTBOX_PATH", DEFAULT_PATH)
        if not isinstance(path, (str, os.PathLike)):
            raise OutboxTypeError("path must be str or os.PathLike, got {}".format(type(path).__name__))
        if not 1 <= max_queue_size < 2**32:
            raise OutboxValueError("max_queue_size must be between 1 and 2**32 - 1, got {}".format(max_queue_size))
        self.write_key = write_key
        self.host = endpoint or host or DEFAULT_HOST
        self.send = send
        self.sync_mode = sync_mode
        self.timeout = timeout
        self.durable = durable
        self.debug = debug
        self._native = _native.NativeClient(
            os.fspath(path),
            self.host,
            write_key,
            max_queue_size=max_queue_size,
            lifecycle_events=lifecycle_events,
            sessions=sessions,
            session_timeout=float(session_timeout),
            app_name=app_name,
            app_version=app_version,
            app_build=app_build,
            loss_reports=loss_reports,
            upload_on=upload_on,
            max_event_age=None if max_event_age is None else float(max_event_age),
        )
        self._on_delivered = []
        self._on_error = []
        self._lock = threading.Lock()
        self._dispatcher = None
        self._stopped = False
        self._drain = False
        if on_delivered is not None:
            self.on_delivered(on_delivered)
        if on_error is not None:
            self.on_error(on_error)
        atexit.register(self._at_exit)

    @property
    def path(self):
        """The SQLite database file."""
        return self._native.path

    # --- analytics-python's calls -------------------------------------

    def identify(self, user_id=None, traits=None, context=None, timestamp=None, anonymous_id=None, integrations=None, message_id=None):
        _require("traits", traits, dict)
        msg = {"type": "identify", "traits": traits or {}}
        return self._enqueue(msg, user_id, anonymous_id, context, timestamp, integrations, message_id)

    def track(self, user_id=None, event=None, properties=None, context=None, timestamp=None, anonymous_id=None, integrations=None, message_id=None, critical=False):
        """analytics-python's ``track``. ``critical=True`` (an alarm, a
        purchase): the queue up to this event is uploaded at once, even in
        power save, and a full queue drops a non-critical event before it."""
        _require("properties", properties, dict)
        _require("event", event, str, required=True)
        if not isinstance(critical, bool):
            raise OutboxTypeError("critical must be bool, got {}".format(type(critical).__name__))
        msg = {"type": "track", "event": event, "properties": properties or {}}
        return self._enqueue(msg, user_id, anonymous_id, context, timestamp, integrations, message_id, critical)

    def alias(self, previous_id=None, user_id=None, context=None, timestamp=None, integrations=None, message_id=None):
        msg = {"type": "alias", "previousId": _id("previous_id", previous_id, required=True)}
        _require("user_id", user_id, _ID_TYPES, required=True)
        return self._enqueue(msg, user_id, None, context, timestamp, integrations, message_id)

    def group(self, user_id=None, group_id=None, traits=None, context=None, timestamp=None, anonymous_id=None, integrations=None, message_id=None):
        _require("traits", traits, dict)
        msg = {"type": "group", "groupId": _id("group_id", group_id, required=True), "traits": traits or {}}
        return self._enqueue(msg, user_id, anonymous_id, context, timestamp, integrations, message_id)

    def page(self, user_id=None, category=None, name=None, properties=None, context=None, timestamp=None, anonymous_id=None, integrations=None, message_id=None):
        return self._page("page", user_id, category, name, properties, context, timestamp, anonymous_id, integrations, message_id)

    def screen(self, user_id=None, category=None, name=None, properties=None, context=None, timestamp=None, anonymous_id=None, integrations=None, message_id=None):
        return self._page("screen", user_id, category, name, properties, context, timestamp, anonymous_id, integrations, message_id)

    def _page(self, kind, user_id, category, name, properties, context, timestamp, anonymous_id, integrations, message_id):
        _require("properties", properties, dict)
        _require("name", name, str)
        _require("category", category, str)
        msg = {"type": kind, "properties": properties or {}}
        if name is not None:
            msg["name"] = name
        if category is not None:
            msg["category"] = category
        return self._enqueue(msg, user_id, anonymous_id, context, timestamp, integrations, message_id)

    def _enqueue(self, msg, user_id, anonymous_id, context, timestamp, integrations, message_id, critical=False):
        """Check, commit (durable) and queue; returns ``(True, msg)`` as analytics-python does."""
        user_id = _id("user_id", user_id)
        anonymous_id = _id("anonymous_id", anonymous_id)
        if msg["type"] != "alias" and user_id is None and anonymous_id is None:
            raise OutboxValueError("user_id or anonymous_id is required")
        _require("context", context, dict)
        _require("integrations", integrations, dict)
        msg["context"] = dict(context or {})
        msg["integrations"] = integrations or {}
        msg["timestamp"] = _timestamp(timestamp)
        if user_id is not None:
            msg["userId"] = user_id
        if anonymous_id is not None:
            msg["anonymousId"] = anonymous_id
        message_id = _id("message_id", message_id)
        if message_id is not None:
            msg["messageId"] = message_id
        text = _to_json(msg)
        if not self.send:
            msg.setdefault("messageId", str(uuid.uuid4()))
            return True, msg
        try:
            msg["messageId"] = self._native.enqueue(text, self.durable, critical)
        except QueueFullError:
            return False, msg
        if self.sync_mode:
            self.flush(self.timeout)
        return True, msg

    def flush(self, timeout=30.0):
        """Upload now and wait until every earlier event is delivered,
        dropped or rejected, or ``timeout`` seconds (None: no limit).
        Returns a report: delivered, dropped, rejected, pending, outcome
        (settled, timed_out, halted). Undelivered events stay queued."""
        return self._native.flush_and_wait(float("inf") if timeout is None else timeout)

    def join(self, timeout=5.0):
        """A final upload for at most ``timeout`` seconds, then stop. What is
        not delivered stays in the database for the next start."""
        with self._lock:
            if self._stopped:
                return None
            self._stopped = True
        try:
            report = self._native.shutdown(float("inf") if timeout is None else timeout)
        finally:
            self._stop_dispatcher()
        return report

    def shutdown(self, timeout=30.0):
        """Flush (at most ``timeout`` seconds) and stop, as analytics-python's shutdown."""
        return self.join(timeout)

    def close(self):
        """Commit and stop without uploading; everything stays queued."""
        with self._lock:
            if self._stopped:
                return None
            self._stopped = True
        try:
            return self._native.close()
        finally:
            self._stop_dispatcher()

    def _at_exit(self):
        try:
            self.join()
        except Exception:
            pass

    # --- outbox's additions -------------------------------------------

    LIFECYCLE_STATES = ("foreground", "background", "terminate")
    UPLOAD_POLICIES = ("any", "unmetered")
    NETWORK_KINDS = ("unmetered", "metered", "unknown")

    def set_network(self, available, kind="unknown"):
        """Tell outbox whether the network is up and its kind:
        ``"unmetered"``, ``"metered"`` or ``"unknown"``. With
        ``upload_on="unmetered"`` nothing is uploaded, not even by
        ``flush()``, until the network is reported unmetered; events are
        still stored."""
        if not isinstance(available, bool):
            raise OutboxTypeError("available must be bool, got {}".format(type(available).__name__))
        _require("kind", kind, str, required=True)
        if kind not in self.NETWORK_KINDS:
            raise OutboxValueError(
                "kind must be one of {}, got {!r}".format(", ".join(self.NETWORK_KINDS), kind)
            )
        self._native.set_network(available, kind)

    def set_power_save(self, on):
        """Tell outbox the device entered (True) or left power save / low
        battery: automatic uploads wait until it ends; ``flush()`` still
        uploads."""
        if not isinstance(on, bool):
            raise OutboxTypeError("on must be bool, got {}".format(type(on).__name__))
        self._native.set_power_save(on)

    def lifecycle(self, state):
        """Tell outbox the app's state: ``"foreground"``, ``"background"`` or
        ``"terminate"`` (anything else raises ``OutboxValueError``). Tracks
        ``Application Opened``/``Backgrounded`` and starts or ends sessions,
        as ``lifecycle_events`` and ``sessions`` say."""
        _require("state", state, str, required=True)
        if state not in self.LIFECYCLE_STATES:
            raise OutboxValueError(
                "state must be one of {}, got {!r}".format(", ".join(self.LIFECYCLE_STATES), state)
            )
        self._native.lifecycle(state)

    def sync(self):
        """Wait until every event tracked so far is committed (for durable=False)."""
        self._native.sync()

    def stats(self):
        """Counters: pending, delivered, dropped, rejected, retries, ..."""
        return self._native.stats()

    def next_notification(self, timeout=0.0):
        """The next notification as a dict (``kind``: delivered, dropped,
        rejected, refused, halted, salvaged, retry_scheduled; ``first``/
        ``last`` sequence numbers, ``message_ids`` of this process's events
        once ``on_delivered``/``on_error``/``keep_message_ids`` turned that
        on), or None after ``timeout`` seconds. While an ``on_delivered`` or
        ``on_error`` callback is registered, its thread reads them instead."""
        _require("timeout", timeout, numbers.Real, required=True)
        return self._native.next_notification(float(timeout))

    def keep_message_ids(self, on=True):
        """Remember each tracked event's messageId so notifications name them."""
        self._native.keep_receipts(bool(on))

    def on_delivered(self, callback):
        """Call ``callback(message_id)`` from a background thread for each
        event tracked from now on that the server acknowledged. Returns the
        callback, so it works as a decorator."""
        return self._add_callback(self._on_delivered, "on_delivered", callback)

    def on_error(self, callback):
        """Call ``callback(exception, batch)`` (analytics-python's on_error)
        for events tracked from now on that were dropped, rejected or not
        stored; ``batch`` is a list of ``{"messageId": ...}``."""
        return self._add_callback(self._on_error, "on_error", callback)

    def _add_callback(self, callbacks, name, callback):
        if not callable(callback):
            raise OutboxTypeError("{} needs a callable, got {!r}".format(name, callback))
        self._native.keep_receipts(True)
        callbacks.append(callback)
        with self._lock:
            if self._dispatcher is None and not self._stopped:
                self._dispatcher = threading.Thread(target=self._dispatch, name="outbox-notifications", daemon=True)
                self._dispatcher.start()
        return callback

    def _dispatch(self):
        while True:
            stopping = self._drain
            note = self._native.next_notification(0.0 if stopping else 0.2)
            if note is None:
                if stopping:
                    return
                continue
            self._deliver(note)

    def _deliver(self, note):
        kind = note["kind"]
        if kind == "delivered":
            for message_id in note["message_ids"]:
                for cb in list(self._on_delivered):
                    try:
                        cb(message_id)
                    except Exception:
                        pass
        elif kind in ("dropped", "rejected", "refused") and note["message_ids"]:
            error = OutboxError("{}: {}".format(kind, note.get("reason")))
            batch = [{"messageId": m} for m in note["message_ids"]]
            for cb in list(self._on_error):
                try:
                    cb(error, batch)
                except Exception:
                    pass

    def _stop_dispatcher(self):
        # The native client has stopped: the thread reads what is left, then ends.
        self._drain = True
        thread = self._dispatcher
        if thread is not None and thread is not threading.current_thread():
            thread.join()


# --- analytics-python's module-level API: outbox.write_key = ...; outbox.track(...)

write_key = None
host = None
path = None
on_error = None
debug = False
send = True
sync_mode = False
max_queue_size = 10000
timeout = 15
durable = True
default_client = None


def track(*args, **kwargs):
    """Send a track call with the default client."""
    return _proxy("track", *args, **kwargs)


def identify(*args, **kwargs):
    """Send an identify call with the default client."""
    return _proxy("identify", *args, **kwargs)


def group(*args, **kwargs):
    """Send a group call with the default client."""
    return _proxy("group", *args, **kwargs)


def alias(*args, **kwargs):
    """Send an alias call with the default client."""
    return _proxy("alias", *args, **kwargs)


def page(*args, **kwargs):
    """Send a page call with the default client."""
    return _proxy("page", *args, **kwargs)


def screen(*args, **kwargs):
    """Send a screen call with the default client."""
    return _proxy("screen", *args, **kwargs)


def flush(*args, **kwargs):
    """Flush the default client."""
    return _proxy("flush", *args, **kwargs)


def join(*args, **kwargs):
    """Stop the default client."""
    return _proxy("join", *args, **kwargs)


def shutdown(*args, **kwargs):
    """Flush and stop the default client."""
    return _proxy("shutdown", *args, **kwargs)


def _proxy(method, *args, **kwargs):
    global default_client
    if default_client is None:
        default_client = Client(
            write_key,
            host=host,
            path=path,
            on_error=on_error,
            debug=debug,
            send=send,
            sync_mode=sync_mode,
            max_queue_size=max_queue_size,
            timeout=timeout,
            durable=durable,
        )
    return getattr(default_client, method)(*args, **kwargs)
