"""upload_on, set_network and set_power_save (issue 18 item 4): under
upload_on="unmetered" nothing goes on a metered network, not even on
flush(); everything arrives once the network is unmetered. Power save never
holds an explicit flush."""

import pytest

import outbox


def test_unmetered_policy_waits_for_an_unmetered_network(collector, tmp_path):
    client = outbox.Client(
        write_key="key-n", endpoint=collector.url, path=tmp_path / "n.db", upload_on="unmetered"
    )
    client.set_network(True, "metered")
    ids = ["py-net-{}".format(i) for i in range(3)]
    for i in ids:
        client.track("u-1", "Metered", message_id=i)
    client.sync()
    report = client.flush(timeout=0.3)
    assert report["outcome"] == "timed_out" and report["pending"] == 3, report
    stats = client.stats()
    assert stats["network_up"] and not stats["uploads_allowed"], stats
    assert (stats["delivered"], stats["in_flight"], stats["retries"]) == (0, 0, 0), stats
    client.set_network(True, "unmetered")
    assert client.flush(timeout=60)["outcome"] == "settled"
    assert sorted(collector.wait_for(ids)) == ids
    client.shutdown()


def test_power_save_never_holds_an_explicit_flush(collector, tmp_path):
    client = outbox.Client(write_key="key-p", endpoint=collector.url, path=tmp_path / "p.db")
    client.set_power_save(True)
    assert client.stats()["power_save"]
    client.track("u-1", "Saving Power", message_id="py-power")
    assert client.flush(timeout=60)["outcome"] == "settled"
    collector.wait_for(["py-power"])
    client.shutdown()


def test_bad_policy_and_kind_are_value_errors(tmp_path):
    with pytest.raises(ValueError):
        outbox.Client(write_key="k", path=tmp_path / "b.db", upload_on="wifi")
    client = outbox.Client(write_key="k", endpoint="http://127.0.0.1:9", path=tmp_path / "c.db")
    with pytest.raises(ValueError):
        client.set_network(True, "cellular")
    with pytest.raises(TypeError):
        client.set_power_save("yes")
    client.close()


def test_a_critical_track_uploads_the_queue_in_power_save(collector, tmp_path):
    # Power save defers the automatic uploads of plain events; a critical
    # event asks for an upload of the queue up to it, with no flush() call.
    client = outbox.Client(write_key="key-c", endpoint=collector.url, path=tmp_path / "c.db")
    client.set_power_save(True)
    plain = ["py-plain-{}".format(i) for i in range(2)]
    for i in plain:
        client.track("u-1", "Saving Power", message_id=i)
    client.track("u-1", "Alarm", message_id="py-critical", critical=True)
    assert sorted(collector.wait_for(plain + ["py-critical"])) == sorted(plain + ["py-critical"])
    with pytest.raises(TypeError):
        client.track("u-1", "Alarm", critical="yes")
    client.shutdown()
