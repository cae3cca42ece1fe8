"""Regression tests of defects found by reading ingest: a worker stopping
keeps the batch it was building, the writer's failure handling is bounded
and loses nothing, conflicting readings keep the first value, events are
counted as stored only when inserted, drone flight records only for fields
the drone may serve, and a worker whose thread dies ends non-zero."""

from __future__ import annotations

import secrets
import signal
import threading
import time
from fractions import Fraction

import httpx
import orjson
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.devices.topics import events_topic, flights_topic, senml_topic
from agri.ingest.batch import Batch
from agri.ingest.rejects import reason_code
from agri.ingest.writer import OUTAGE, REFUSED, TRANSIENT, Writer, classify
from tests.fix_stack import publisher, wait_for
from tests.test_ingest_e2e import FIELD


def publish(client, topic: str, payload: bytes | dict | list) -> None:
    if not isinstance(payload, bytes):
        payload = orjson.dumps(payload)
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(30)
    assert info.rc == 0


def counters(platform, worker: str = "1") -> dict:
    rows = platform.sql("SELECT counters FROM ingest_stats WHERE worker = %s", (worker,))
    return rows[0][0] if rows else {}


def readings(platform, device: str) -> list[tuple]:
    return platform.sql("SELECT metric, extract(epoch FROM time)::float8, value FROM readings "
                        "WHERE device_id = %s ORDER BY metric, time", (device,))


def reasons(platform, device: str) -> list[str]:
    return [r[0] for r in platform.sql("SELECT reason FROM rejects WHERE device_id = %s "
                                       "ORDER BY id", (device,))]


def device(platform, device_id: str, profile: str = "paddy-water", **kw):
    return platform.device_client(device_id, platform.add_device(device_id, profile, **kw))


# ---------------------------------------------------------------------------
# Stopping and retiring


def test_stopping_commits_the_batch_it_was_building(platform):
    """A worker stopped while its batch waits for the batch deadline commits
    that batch (it used to drop it: with --retire, lost with the session)."""
    worker = "flush"
    proc = platform.start_ingest(worker, AGRI_INGEST_BATCH_SECONDS="60")
    client = device(platform, "def-flush")
    now = int(time.time())
    for k in range(20):
        publish(client, senml_topic("def-flush"), [{"bt": now - 600 + k, "n": "water_temp",
                                                    "v": 20.0}])
    client.loop_stop()
    client.disconnect()
    wait_for(lambda: counters(platform, worker).get("pending_messages") == 20,
             what="the worker to hold the 20 messages in its batch")
    assert readings(platform, "def-flush") == []
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert len(readings(platform, "def-flush")) == 20
    platform.retire_ingest(worker)


def test_retiring_waits_for_what_it_received(platform):
    """A retiring worker whose batch waits for its deadline is not idle: it
    ends its session only once the batch is committed (its idle detector
    used to count only committed messages and stop it mid-batch)."""
    worker = "retire-wait"
    proc = platform.start_ingest(worker)
    platform.stop_ingest(proc, retire=False)  # its session keeps its share
    client = device(platform, "def-retire")
    now = int(time.time())
    for k in range(20):
        publish(client, senml_topic("def-retire"), [{"bt": now - 600 + k, "n": "water_temp",
                                                     "v": 20.0}])
    client.loop_stop()
    client.disconnect()
    # Batches close after 3 s; the worker would be idle after 0.5 s.
    platform.cli("ingest", "--worker", worker, "--retire", "--retire-after-idle", "0.5",
                 AGRI_INGEST_BATCH_SECONDS="3")
    assert len(readings(platform, "def-retire")) == 20
    assert counters(platform, worker)["retired"] == 1


# ---------------------------------------------------------------------------
# The writer: bounded retries, refused messages rejected, the rest stored


def _message(batch: Batch, topic: str, device_id: str, rows: list, rejects: list) -> None:
    batch.rows += rows
    batch.rejects += rejects
    batch.messages += 1
    batch.end_message((time.time(), topic, device_id, b"payload of " + device_id.encode()))


def test_a_batch_that_always_fails_the_same_way_is_stored_but_the_message_refused(platform):
    """Here: a unique index the merge does not expect (as a restored database
    with a reset sequence, or a schema change, would give). Every try of the
    batch fails with a unique violation; it used to be retried forever."""
    now = time.time()
    marker = f"def-dup-{secrets.token_hex(4)}"
    with psycopg.connect(platform.db_url) as conn:
        conn.execute(f"CREATE UNIQUE INDEX def_dup ON rejects (reason) WHERE reason = '{marker}'")
    try:
        batch = Batch()
        for i in range(6):
            rows = [(f"def-w{i}", "water_temp", now - 60, 20.0 + i, now)]
            bad = [(now, senml_topic(f"def-w{i}"), f"def-w{i}", marker, 0, b"{}")] \
                if i in (2, 3) else []
            _message(batch, senml_topic(f"def-w{i}"), f"def-w{i}", rows, bad)
        writer = Writer(platform.db_url)
        result = {}
        thread = threading.Thread(target=lambda: result.update(w=writer.write(batch)),
                                  daemon=True)
        thread.start()
        thread.join(60)
        assert not thread.is_alive(), "the writer retries the batch forever"
        writer.close()
    finally:
        with psycopg.connect(platform.db_url) as conn:
            conn.execute("DROP INDEX def_dup")
    written = result["w"]
    assert (written.stored, written.refused) == (5, 1)
    stored = platform.sql("SELECT device_id FROM readings WHERE device_id LIKE 'def-w%%' "
                          "ORDER BY 1")
    assert [d for (d,) in stored] == ["def-w0", "def-w1", "def-w2", "def-w4", "def-w5"]
    refused = platform.sql("SELECT reason, payload FROM rejects WHERE device_id = 'def-w3' "
                           "AND reason LIKE 'the database refused%%'")
    assert len(refused) == 1 and "def_dup" in refused[0][0]
    assert bytes(refused[0][1]) == b"payload of def-w3"


def test_a_deadlock_is_retried_not_refused(platform):
    """DeadlockDetected is an OperationalError: the writer's classification
    checks it as a rollback to retry, not a lost connection nor a refusal."""
    assert issubclass(psycopg.errors.DeadlockDetected, psycopg.OperationalError)
    a, b = psycopg.connect(platform.db_url), psycopg.connect(platform.db_url)
    try:
        for conn in (a, b):
            conn.execute("SET deadlock_timeout = '100ms'")
            conn.commit()
        a.execute("CREATE TEMP TABLE IF NOT EXISTS dl (k int PRIMARY KEY)")
        a.commit()
        with psycopg.connect(platform.db_url) as setup:
            setup.execute("CREATE TABLE IF NOT EXISTS def_deadlock (k int PRIMARY KEY)")
            setup.execute("INSERT INTO def_deadlock VALUES (1), (2) ON CONFLICT DO NOTHING")
        a.execute("UPDATE def_deadlock SET k = k WHERE k = 1")
        b.execute("UPDATE def_deadlock SET k = k WHERE k = 2")
        errors: list[BaseException] = []

        def cross(conn, key):
            try:
                conn.execute("UPDATE def_deadlock SET k = k WHERE k = %s", (key,))
            except psycopg.Error as exc:
                errors.append((conn, exc))
                conn.rollback()

        t = threading.Thread(target=cross, args=(a, 2))
        t.start()
        cross(b, 1)
        t.join(30)
        assert len(errors) == 1
        conn, exc = errors[0]
        assert isinstance(exc, psycopg.errors.DeadlockDetected)
        assert classify(exc, conn) == TRANSIENT
        conn.rollback()
        with pytest.raises(psycopg.errors.DivisionByZero) as refused:
            conn.execute("SELECT 1 / 0")
        assert classify(refused.value, conn) == REFUSED
        conn.rollback()
        pid = conn.info.backend_pid
        with psycopg.connect(platform.db_url) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError) as lost:
            conn.execute("SELECT 1")
        assert classify(lost.value, conn) == OUTAGE
    finally:
        a.close()
        b.close()
        with psycopg.connect(platform.db_url) as setup:
            setup.execute("DROP TABLE IF EXISTS def_deadlock")


def test_a_message_the_database_refuses_does_not_stop_ingest(platform, ingest):
    """An event whose type is too long for the key's index (the database's
    "program limit exceeded", an OperationalError that used to be retried
    forever) is rejected; the other messages of its batch are stored."""
    client = device(platform, "def-big-event")
    now = time.time()
    publish(client, senml_topic("def-big-event"), [{"bt": now, "n": "water_temp", "v": 21.0}])
    publish(client, events_topic("def-big-event"), {"type": secrets.token_urlsafe(6000)})
    publish(client, senml_topic("def-big-event"), [{"bt": now + 1, "n": "water_temp",
                                                    "v": 22.0}])
    wait_for(lambda: reasons(platform, "def-big-event"), timeout=30, what="the reject")
    wait_for(lambda: len(readings(platform, "def-big-event")) == 2, what="the readings")
    assert "refused" in reasons(platform, "def-big-event")[0]
    assert ingest.poll() is None
    client.loop_stop()
    client.disconnect()


# ---------------------------------------------------------------------------
# Duplicates and conflicts


def test_a_conflicting_reading_keeps_the_first_value_and_is_counted(platform, ingest, api):
    client = device(platform, "def-conflict")
    t = int(time.time()) - 120
    publish(client, senml_topic("def-conflict"), [{"bt": t, "n": "water_temp", "v": 18.0}])
    wait_for(lambda: readings(platform, "def-conflict"), what="the first reading")
    before = counters(platform)
    # The same key again: once with the same value (a duplicate), once with
    # another (a conflict), and within one pack the same key twice.
    publish(client, senml_topic("def-conflict"), [{"bt": t, "n": "water_temp", "v": 18.0}])
    publish(client, senml_topic("def-conflict"), [{"bt": t, "n": "water_temp", "v": 25.0}])
    publish(client, senml_topic("def-conflict"), [{"bt": t + 60, "n": "water_temp", "v": 1.0},
                                                  {"bt": t + 60, "n": "water_temp", "v": 2.0}])
    wait_for(lambda: counters(platform).get("readings_conflict", 0)
             >= before.get("readings_conflict", 0) + 2, what="two conflicts counted")
    after = counters(platform)
    assert after["readings_duplicate"] - before["readings_duplicate"] == 1
    assert readings(platform, "def-conflict") == [("water_temp", t, 18.0),
                                                  ("water_temp", t + 60, 1.0)]
    log = (platform.home / "ingest-1.log").read_text()
    assert "conflicting reading of def-conflict water_temp at" in log
    assert "kept 18.0, not 25.0" in log
    wait_for(lambda: 'agri_ingest_readings_conflict_total{worker="1"}'
             in httpx.get(f"{api}/metrics").text, what="the counter in /metrics")
    client.loop_stop()
    client.disconnect()


def test_events_are_counted_stored_only_when_inserted(platform, ingest):
    client = device(platform, "def-events")
    before = counters(platform)
    event = {"type": "boot", "time": int(time.time()) - 30, "firmware": "1.2"}
    for _ in range(3):
        publish(client, events_topic("def-events"), event)
    wait_for(lambda: counters(platform).get("events_duplicate", 0)
             >= before.get("events_duplicate", 0) + 2, what="two duplicate events counted")
    after = counters(platform)
    assert after["events_stored"] - before["events_stored"] == 1
    assert platform.sql("SELECT count(*) FROM device_events WHERE device_id = 'def-events'"
                        ) == [(1,)]
    client.loop_stop()
    client.disconnect()


def test_events_and_flights_have_the_readings_time_limits(platform, ingest):
    client = device(platform, "def-event-time")
    now = int(time.time())
    for t in (now + 3600, now * 1000, now - 40 * 86400, "2020-01-01T00:00:00+09:00"):
        publish(client, events_topic("def-event-time"), {"type": "boot", "time": t})
    publish(client, events_topic("def-event-time"), {"type": "fault", "time": now - 5})
    wait_for(lambda: len(reasons(platform, "def-event-time")) >= 4, what="four rejects")
    got = reasons(platform, "def-event-time")
    assert len(got) == 4
    assert "ahead of the server clock" in got[0] and "milliseconds" in got[1]
    assert "days old" in got[2] and "days old" in got[3]
    wait_for(lambda: platform.sql("SELECT kind FROM device_events WHERE device_id = "
                                  "'def-event-time'") == [("fault",)], what="the good event")
    client.loop_stop()
    client.disconnect()


# ---------------------------------------------------------------------------
# Drone flight records


@pytest.fixture(scope="module")
def drone_fields(platform):
    """Field A (farmer def-fa), field B (def-fb); a drone registered to A, a
    drone of farmer def-fb, and a paddy sensor on A."""
    data = orjson.loads(orjson.dumps(FIELD))
    base = data["features"][0]
    data["features"] = []
    for fid, owner in (("def-field-a", "def-fa"), ("def-field-b", "def-fb")):
        feature = orjson.loads(orjson.dumps(base))
        feature["properties"].update(id=fid, owner=owner, name=fid)
        data["features"].append(feature)
    with psycopg.connect(platform.db_url) as conn:
        import_fields(conn, parse_features(data), create_owners=True)
        # Contractors: one serving the fields' municipality, one elsewhere.
        add_user(conn, name="def-contractor", role="farmer",
                 regions=[base["properties"]["municipality"]])
        add_user(conn, name="def-far-contractor", role="farmer", regions=["Mutsu"])
    return {
        "def-drone-c": platform.add_device("def-drone-c", "drone", owner="def-contractor"),
        "def-drone-far": platform.add_device("def-drone-far", "drone",
                                             owner="def-far-contractor"),
        "def-drone-a": platform.add_device("def-drone-a", "drone", field_id="def-field-a"),
        "def-drone-b": platform.add_device("def-drone-b", "drone", owner="def-fb"),
        "def-paddy-a": platform.add_device("def-paddy-a", "paddy-water",
                                           field_id="def-field-a"),
    }


def test_flight_records_only_from_drones_for_fields_they_may_serve(platform, ingest,
                                                                   drone_fields):
    now = time.time()

    def record(kind="spray", minutes=10, **where):
        started = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - minutes * 60))
        return {"kind": kind, "started_at": started, **where}

    a = platform.device_client("def-drone-a", drone_fields["def-drone-a"])
    b = platform.device_client("def-drone-b", drone_fields["def-drone-b"])
    c = platform.device_client("def-drone-c", drone_fields["def-drone-c"])
    far = platform.device_client("def-drone-far", drone_fields["def-drone-far"])
    sim = publisher(platform.simulator_url())  # a bridge: may publish on any drone's topic
    accepted = [(a, "def-drone-a", record(field="def-field-a")),
                (c, "def-drone-c", record("survey", minutes=15,
                                          fields=["def-field-a", "def-field-b"])),
                (b, "def-drone-b", record(minutes=20, field="def-field-b")),
                (b, "def-drone-b", record("survey", minutes=30, fields=["def-field-b"]))]
    refused = [
        (a, "def-drone-a", record(minutes=40, field="def-field-b"), "may not serve field"),
        (b, "def-drone-b", record(minutes=50, fields=["def-field-b", "def-field-a"]),
         "may not serve field 'def-field-a'"),
        (a, "def-drone-a", record(minutes=60, field="def-no-such-field"), "unknown field"),
        (a, "def-drone-a", record(minutes=70), "names the field"),
        (a, "def-drone-a", record(minutes=60 * 24 * 40, field="def-field-a"), "days old"),
        (sim, "def-paddy-a", record(field="def-field-a"), "only from drones"),
        (far, "def-drone-far", record(minutes=80, field="def-field-a"), "contractor whose"),
    ]
    for client, drone, body in accepted:
        publish(client, flights_topic(drone), body)
    for client, drone, body, _ in refused:
        publish(client, flights_topic(drone), body)

    def rejected():
        rows = platform.sql("SELECT reason FROM rejects WHERE device_id IN ('def-drone-a', "
                            "'def-drone-b', 'def-paddy-a', 'def-drone-far') ORDER BY id")
        return rows if len(rows) >= len(refused) else None

    got = [r for (r,) in wait_for(rejected, what="the refused flight records")]
    assert len(got) == len(refused)
    for (*_, why), reason in zip(refused, got, strict=True):
        assert why in reason, (why, reason)
    wait_for(lambda: len(platform.sql("SELECT 1 FROM drone_records WHERE drone_id LIKE "
                                      "'def-drone-%%'")) >= len(accepted),
             what="the accepted flight records")
    stored = platform.sql("SELECT drone_id, kind, field_id FROM drone_records "
                          "WHERE drone_id LIKE 'def-%%' ORDER BY time DESC")
    assert stored == [("def-drone-a", "spray", "def-field-a"),
                      ("def-drone-c", "survey", None),
                      ("def-drone-b", "spray", "def-field-b"),
                      ("def-drone-b", "survey", None)]
    for client in (a, b, c, far, sim):
        client.loop_stop()
        client.disconnect()


def test_a_device_publishing_a_format_its_profile_does_not_list_is_refused(
        platform, ingest, drone_fields):
    """A drone's profile sends events and flight records only: its SenML
    readings are refused with the format's reason, and nothing is stored."""
    a = platform.device_client("def-drone-a", drone_fields["def-drone-a"])
    publish(a, senml_topic("def-drone-a"), [{"bt": time.time() - 60, "n": "battery", "v": 80}])
    (reason,), = wait_for(lambda: platform.sql(
        "SELECT reason FROM rejects WHERE device_id = 'def-drone-a' AND topic LIKE "
        "'%%/senml'"), what="the refused SenML of a drone")
    assert reason.startswith("format 'senml' is not one the profile 'drone' sends (events, "
                             "flights)")
    assert reason_code(reason) == "format-not-in-profile"
    assert platform.sql("SELECT count(*) FROM readings WHERE device_id = 'def-drone-a'"
                        ) == [(0,)]
    a.loop_stop()
    a.disconnect()


# ---------------------------------------------------------------------------
# A worker whose thread dies ends non-zero; nothing is lost


def _exits(proc, timeout: float = 30.0) -> int:
    wait_for(lambda: proc.poll() is not None, timeout=timeout, what="the worker to exit")
    return proc.returncode


def test_a_dead_decoder_ends_the_worker_and_nothing_is_lost(platform):
    """The registry's schema changes under a running worker (here a renamed
    column): its device lookup fails, which kills the decoder thread. The
    worker used to hang, holding what it had received unacknowledged."""
    client = device(platform, "def-decoder")
    proc = platform.start_ingest("decoder")
    sim = publisher(platform.simulator_url())
    try:
        with psycopg.connect(platform.db_url) as conn:
            # (a column the device lookup reads and the command sender does not)
            conn.execute("ALTER TABLE devices RENAME COLUMN owner TO owner_renamed")
        try:
            publish(client, senml_topic("def-decoder"), [{"n": "water_temp", "v": 20.0}])
            # An unknown device makes the worker read the registry again.
            publish(sim, senml_topic("def-ghost"), [{"n": "water_temp", "v": 20.0}])
            assert _exits(proc) != 0
        finally:
            with psycopg.connect(platform.db_url) as conn:
                conn.execute("ALTER TABLE devices RENAME COLUMN owner_renamed TO owner")
        log = (platform.home / "ingest-decoder.log").read_text()
        assert "decoder thread died" in log
        # Restarted by its supervisor, the worker gets the messages again.
        proc = platform.start_ingest("decoder")
        wait_for(lambda: readings(platform, "def-decoder"), what="the redelivered reading")
    finally:
        platform.stop_ingest(proc)
        for c in (client, sim):
            c.loop_stop()
            c.disconnect()


def test_a_writer_that_cannot_store_rejects_ends_the_worker(platform):
    """The rejects table is gone (renamed by its owner): a bad message cannot
    be kept anywhere, so the worker ends non-zero without acknowledging it;
    once the table is back, the restarted worker stores the reject."""
    client = device(platform, "def-writer")
    proc = platform.start_ingest("writer")
    try:
        with psycopg.connect(platform.db_url) as conn:
            conn.execute("ALTER TABLE rejects RENAME TO rejects_away")
        try:
            publish(client, senml_topic("def-writer"), b"not json")
            assert _exits(proc) != 0
        finally:
            with psycopg.connect(platform.db_url) as conn:
                conn.execute("ALTER TABLE rejects_away RENAME TO rejects")
        assert "WriteError" in (platform.home / "ingest-writer.log").read_text()
        proc = platform.start_ingest("writer")
        wait_for(lambda: reasons(platform, "def-writer"), what="the redelivered reject")
        assert "malformed JSON" in reasons(platform, "def-writer")[0]
    finally:
        platform.stop_ingest(proc)
        client.loop_stop()
        client.disconnect()


def test_the_statistics_connection_recovers(platform, ingest):
    """Its backend terminated, or a save refused (here by a constraint an
    operator added): the counters keep moving afterwards."""
    client = device(platform, "def-stats")

    def moved(since: float) -> bool:
        publish(client, senml_topic("def-stats"), [{"n": "battery", "v": 50}])
        return counters(platform).get("messages_received", 0) > since

    wait_for(lambda: moved(0), what="the counters")
    # The worker's connections (counters, registry, writer), all of them.
    user = conninfo_to_dict(platform.stack.database_url_for("ingest"))["user"]
    assert platform.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE usename = %s", (user,))[0][0] >= 1
    seen = counters(platform)["messages_received"]
    wait_for(lambda: moved(seen), what="the counters after the backend was terminated")

    with psycopg.connect(platform.db_url) as conn:
        conn.execute("ALTER TABLE ingest_stats ADD CONSTRAINT def_block "
                     "CHECK (worker <> '1') NOT VALID")
    try:
        log = platform.home / "ingest-1.log"
        wait_for(lambda: "could not save ingest stats" in log.read_text(),
                 what="a refused save")
    finally:
        with psycopg.connect(platform.db_url) as conn:
            conn.execute("ALTER TABLE ingest_stats DROP CONSTRAINT def_block")
    seen = counters(platform)["messages_received"]
    wait_for(lambda: moved(seen), what="the counters after a refused save")
    client.loop_stop()
    client.disconnect()


def test_units_convert_exactly():
    """km/h to m/s is 5/18; the old rule (divide by round(1/factor)) gave /4."""
    from agri.devices.profiles import METRICS, scale

    factor = METRICS["wind_speed"].factor("km/h")
    assert factor == Fraction(5, 18)
    assert scale(36.0, factor) == 10.0
    for v in (0.1, 1.0, 7.3, 123.456):
        assert scale(v, factor) == float(Fraction(v) * Fraction(5, 18))
