"""Every rule opens its alert on the condition and clears it when the
condition is gone, judged by the alerts service's own database role over
rows written as the other services write them; the key keeps a condition
that lasts to one alert; hostile evidence is bounded."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from agri.alerts import evaluate, rules, store
from agri.api import accounts
from agri.clock import TZ
from agri.settings import Settings

SQUARE = {"type": "Polygon", "coordinates": [[[140.5, 40.6], [140.51, 40.6], [140.51, 40.61],
                                              [140.5, 40.6]]]}


def ex(platform, query: str, params: tuple = ()) -> None:
    """Run a statement as the owner (the other services' writes)."""
    with psycopg.connect(platform.db_url) as conn:
        conn.execute(query, params)


def alerts_url(platform) -> str:
    return Settings(home=platform.home).db_url("alerts")


def add_user(platform, name: str, role: str = "farmer", regions: tuple = ()) -> str:
    with psycopg.connect(platform.db_url) as conn:
        accounts.add_user(conn, name=name, role=role, regions=list(regions))
    return name


def add_field(platform, field_id: str, owner: str, *, municipality: str = "Aomori-Test",
              low: float = 0.03, high: float = 0.06) -> str:
    ex(platform, "INSERT INTO fields (id, name, owner, cultivar, municipality, geometry) "
                 "VALUES (%s, %s, %s, 'masshigura', %s, %s)",
                 (field_id, f"田 {field_id}", owner, municipality, Jsonb(SQUARE)))
    today = datetime.now(TZ).date()
    for day in (today - timedelta(days=1), today, today + timedelta(days=1)):
        ex(platform, "INSERT INTO field_water_bands (field_id, day, low_m, high_m, phase, "
                     "computed_for) VALUES (%s, %s, %s, %s, 'flooded', %s)",
                     (field_id, day, low, high, today))
    return field_id


def add_device(platform, device_id: str, field_id: str | None, profile: str = "paddy-water",
               owner: str | None = None) -> str:
    # Registered as operators do (with its broker account): the shared broker
    # and registry must agree for the tests that sync or export them.
    platform.add_device(device_id, profile, field_id=field_id, owner=owner)
    return device_id


def write(platform, device: str, metric: str, values: list[tuple[datetime, float]]) -> None:
    with psycopg.connect(platform.db_url) as conn:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO readings (device_id, metric, time, value, received_at) "
                            "VALUES (%s, %s, %s, %s, now()) ON CONFLICT DO NOTHING",
                            [(device, metric, t, v) for t, v in values])


def series(start: datetime, end: datetime, value: float, step_s: int = 600):
    out, t = [], start
    while t <= end:
        out.append((t, value))
        t += timedelta(seconds=step_s)
    return out


def open_alerts(platform, rule: str, like: str) -> list[tuple]:
    return platform.sql("SELECT key, severity, evidence, observed_at FROM alerts "
                        "WHERE rule = %s AND key LIKE %s AND cleared_at IS NULL",
                        (rule, f"%{like}%"))


@pytest.fixture
def conn(platform):
    with psycopg.connect(alerts_url(platform), autocommit=True) as c:
        yield c


@pytest.fixture
def uid():
    return secrets.token_hex(3)


def now() -> datetime:
    return datetime.now(UTC)


def test_water_gone_and_out_of_band_open_and_clear(platform, conn, uid):
    owner = add_user(platform, f"ar-{uid}")
    field = add_field(platform, f"arf-{uid}", owner)
    dev = add_device(platform, f"ard-{uid}", field)
    t = now().replace(microsecond=0)
    write(platform, dev, "water_level", series(t - timedelta(hours=5), t - timedelta(hours=4),
                                               0.04))
    write(platform, dev, "water_level", series(t - timedelta(hours=3, minutes=50), t, -0.01))
    evaluate.on_readings(conn, {"water_level": {dev}}, now=now())
    gone = open_alerts(platform, "water-gone", dev)
    assert len(gone) == 1 and gone[0][1] == "urgent"
    assert gone[0][3] == t - timedelta(hours=3, minutes=50)  # the reading that crossed
    assert len(open_alerts(platform, "water-out-of-band", dev)) == 1
    # Lasting: judged again, still one alert each.
    evaluate.on_readings(conn, {"water_level": {dev}}, now=now())
    assert platform.sql("SELECT count(*) FROM alerts WHERE device_id = %s", (dev,))[0][0] == 2
    # Back in the band: both clear.
    write(platform, dev, "water_level", [(t + timedelta(seconds=60), 0.045)])
    evaluate.on_readings(conn, {"water_level": {dev}}, now=now())
    assert open_alerts(platform, "water-gone", dev) == []
    assert open_alerts(platform, "water-out-of-band", dev) == []


def test_out_of_band_needs_three_hours(platform, conn, uid):
    owner = add_user(platform, f"ar-{uid}")
    field = add_field(platform, f"arf-{uid}", owner)
    dev = add_device(platform, f"ard-{uid}", field)
    t = now()
    write(platform, dev, "water_level", series(t - timedelta(hours=2), t, 0.09))
    evaluate.on_readings(conn, {"water_level": {dev}}, now=now())
    assert open_alerts(platform, "water-out-of-band", dev) == []
    assert open_alerts(platform, "water-gone", dev) == []


def test_battery_low_opens_and_clears(platform, conn, uid):
    dev = add_device(platform, f"ard-{uid}", None, owner=add_user(platform, f"ar-{uid}"))
    write(platform, dev, "battery", [(now() - timedelta(minutes=1), 15.0)])
    evaluate.on_readings(conn, {"battery": {dev}}, now=now())
    assert open_alerts(platform, "battery-low", dev)[0][2]["battery_pct"] == 15.0
    write(platform, dev, "battery", [(now(), 95.0)])
    evaluate.on_readings(conn, {"battery": {dev}}, now=now())
    assert open_alerts(platform, "battery-low", dev) == []


def test_sensor_silent_opens_and_clears_when_heard(platform, conn, uid):
    dev = add_device(platform, f"ard-{uid}", None)
    never = add_device(platform, f"ard-{uid}-never", None)
    with psycopg.connect(platform.db_url) as c:
        c.execute("INSERT INTO readings VALUES (%s, 'water_level', %s, 0.04, %s)",
                  (dev, now() - timedelta(hours=3), now() - timedelta(hours=3)))
    store.sync(conn, rules.SENSOR_SILENT, evaluate.silent(conn, now=now()),
               scope=[dev, never], now=now())
    assert len(open_alerts(platform, "sensor-silent", dev)) == 1
    assert open_alerts(platform, "sensor-silent", never) == []  # never heard: not silent
    write(platform, dev, "water_level", [(now(), 0.04)])
    evaluate.on_readings(conn, {"water_level": {dev}}, now=now())
    assert open_alerts(platform, "sensor-silent", dev) == []


def _command(platform, device: str, owner: str, status: str, **kw) -> None:
    ex(platform, "INSERT INTO device_commands (device_id, name, args, status, requested_by, "
                 "requested_at, expires_at, done_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                 (device, kw.get("name", "set_gate"), Jsonb(kw.get("args", {"position": 50})),
                  status, owner, kw.get("at", now() - timedelta(hours=2)),
                  kw.get("at", now() - timedelta(hours=2)) + timedelta(minutes=10),
                  kw.get("done_at")))


def test_gate_not_answering_and_not_moving(platform, conn, uid):
    owner = add_user(platform, f"ar-{uid}")
    field = add_field(platform, f"arf-{uid}", owner)
    gate = add_device(platform, f"arg-{uid}", field, profile="water-gate")
    _command(platform, gate, owner, "expired")
    evaluate.scheduled(conn, now=now(), today=datetime.now(TZ).date())
    assert len(open_alerts(platform, "gate-not-answering", gate)) == 1
    done = now() - timedelta(hours=1)
    _command(platform, gate, owner, "done", at=done - timedelta(minutes=1), done_at=done,
             args={"position": 80})
    write(platform, gate, "gate_position", series(done, now(), 20.0))
    evaluate.scheduled(conn, now=now(), today=datetime.now(TZ).date())
    assert open_alerts(platform, "gate-not-answering", gate) == []
    moving = open_alerts(platform, "gate-not-moving", gate)
    assert moving[0][2]["commanded_pct"] == 80 and moving[0][2]["reported_pct"] == 20
    write(platform, gate, "gate_position", [(now(), 79.0)])
    evaluate.scheduled(conn, now=now(), today=datetime.now(TZ).date())
    assert open_alerts(platform, "gate-not-moving", gate) == []


def test_analytics_rules_open_and_clear(platform, conn, uid):
    owner = add_user(platform, f"ar-{uid}")
    field = add_field(platform, f"arf-{uid}", owner)
    today = datetime.now(TZ).date()
    station = f"st-{uid}"
    ex(platform, "INSERT INTO field_stages (field_id, computed_for, year, cultivar, dvi, stage, "
                 "station_id) VALUES (%s, %s, %s, 'masshigura', 1.1, 'booting', %s)",
                 (field, today, today.year, station))
    ex(platform, "INSERT INTO station_blast (station_id, day, risk, wet_hours, source) "
                 "VALUES (%s, %s, 'favourable', 12, 'test')", (station, today))
    ex(platform, "INSERT INTO field_harvest_windows (field_id, computed_for, opens, closes, "
                 "opens_cday, closes_cday, rule) VALUES (%s, %s, %s, %s, 1000, 1200, 'test')",
                 (field, today, today, today + timedelta(days=7)))
    adv = platform.sql(
        "INSERT INTO advisories (key, kind, severity, status, field_ids, reason, valid_from, "
        "valid_until, title_ja, body_ja, title_en, body_en, computed_for) VALUES "
        "(%s, 'cold-damage', 'urgent', 'draft', %s, 'cold-forecast', %s, %s, '低温', '深水', "
        "'cold', 'deep water', %s) RETURNING id",
        (f"cold-{uid}", [field], today, today + timedelta(days=3), today))[0][0]
    pub = platform.sql(
        "INSERT INTO advisories (key, kind, severity, status, field_ids, reason, valid_from, "
        "valid_until, title_ja, body_ja, title_en, body_en, computed_for) VALUES "
        "(%s, 'deep-water', 'warning', 'published', '{}', 'x', %s, %s, %s, 'b', 't', 'b', %s) "
        "RETURNING id",
        (f"pub-{uid}", today, today + timedelta(days=3), "<script>" * 100, today))[0][0]
    ex(platform, "INSERT INTO advisory_publications (advisory_id, target, field_ids, "
                 "published_by) VALUES (%s, 'fields', %s, 'officer')", (pub, [field]))
    evaluate.scheduled(conn, now=now(), today=today)
    for rule in ("cold-ahead", "blast-day", "harvest-window", "advisory-published"):
        assert len(open_alerts(platform, rule, field)) == 1, rule
    published = open_alerts(platform, "advisory-published", field)[0]
    assert published[1] == "warning"  # the advisory's severity
    assert len(published[2]["title_ja"]) <= rules.TEXT_MAX_CHARS
    # Gone: withdrawn, the window moved on, the blast day past, cold over.
    ex(platform, "UPDATE advisories SET status = 'withdrawn' WHERE id = ANY(%s)", ([adv, pub],))
    ex(platform, "DELETE FROM station_blast WHERE station_id = %s", (station,))
    ex(platform, "UPDATE field_harvest_windows SET closes = %s WHERE field_id = %s",
                 (today - timedelta(days=1), field))
    evaluate.scheduled(conn, now=now(), today=today)
    for rule in ("cold-ahead", "blast-day", "harvest-window", "advisory-published"):
        assert open_alerts(platform, rule, field) == [], rule


def test_hostile_evidence_is_bounded():
    hostile = {"x" * 5000: "y" * 10_000, "nested": [{"a": ["b" * 999] * 50}] * 50,
               "nan": float("nan"), "obj": object()}
    out = store.bounded(hostile)
    import orjson
    assert len(orjson.dumps(out)) <= rules.EVIDENCE_MAX_CHARS


def test_quiet_hours_span_midnight():
    start, end = datetime.strptime("22:00", "%H:%M").time(), \
        datetime.strptime("06:00", "%H:%M").time()
    at = datetime(2026, 7, 1, 23, 30, tzinfo=TZ)
    assert store.quiet_until(at, start, end) == datetime(2026, 7, 2, 6, 0, tzinfo=TZ)
    assert store.quiet_until(datetime(2026, 7, 1, 12, 0, tzinfo=TZ), start, end) is None
    assert store.quiet_until(datetime(2026, 7, 1, 5, 0, tzinfo=TZ), start, end) == \
        datetime(2026, 7, 1, 6, 0, tzinfo=TZ)
