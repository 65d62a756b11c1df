"""Fixtures: the `outbox collect` binary (OUTBOX_BIN, set by scripts/test)
and a collector process per test, writing what it accepts to a JSON-lines file."""

import json
import os
import subprocess
import sys
import time

import pytest


def outbox_bin():
    path = os.environ.get("OUTBOX_BIN")
    if not path:
        pytest.fail(
            "OUTBOX_BIN is not set: these tests need the `outbox` binary for `outbox collect` "
            "(scripts/test sets it to target/checked/outbox after building it)",
            pytrace=False,
        )
    if not os.access(path, os.X_OK):
        pytest.fail("OUTBOX_BIN={} is not an executable file".format(path), pytrace=False)
    return path


class Collector:
    """A running `outbox collect --out FILE` (it deduplicates by messageId)."""

    def __init__(self, tmp_path, name="collect"):
        self.out = tmp_path / (name + ".jsonl")
        self.proc = subprocess.Popen(
            [outbox_bin(), "collect", "--listen", "127.0.0.1:0", "--out", str(self.out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        prefix = "listening on "
        if not line.startswith(prefix):
            self.proc.kill()
            pytest.fail("outbox collect did not start: first line {!r}".format(line), pytrace=False)
        self.url = line[len(prefix):]

    def events(self):
        if not self.out.exists():
            return []
        events = []
        with open(self.out) as f:
            for line in f:
                if line.endswith("\n"):
                    events.append(json.loads(line))
        return events

    def by_id(self):
        return {e["messageId"]: e for e in self.events()}

    def wait_for(self, ids, limit=60.0):
        """Polls until every id in `ids` arrived or `limit` seconds passed
        (a generous bound, not a timing check); returns what arrived."""
        ids = set(ids)
        deadline = time.monotonic() + limit
        while True:
            got = self.by_id()
            if ids <= got.keys() or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def collector(tmp_path):
    c = Collector(tmp_path)
    yield c
    c.stop()


@pytest.fixture
def make_collector(tmp_path):
    made = []

    def make(name):
        c = Collector(tmp_path, name)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


@pytest.fixture
def python_exe():
    return sys.executable
