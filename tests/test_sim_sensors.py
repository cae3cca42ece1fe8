"""Simulated sensors: fault rates as set, determinism, store-and-forward bursts, exact
duplicates, and payloads that the platform's codecs decode to the intended readings; the
drones' flight records as ingest reads them."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from datetime import date, datetime

import numpy as np
import pytest

from agri.devices import codecs
from agri.devices.profiles import METRICS, PROFILES
from agri.devices.topics import Format, parse
from agri.simulator.season import SURVEY_DAYS_FROM_HEADING, simulate_season
from agri.simulator.sensors import (
    BATTERY_DEAD_PCT,
    DAY_S,
    FLUSH_PACK_SLOTS,
    RECONNECT_S,
    FaultRates,
    Fleet,
    Transport,
    local_midnight,
)

YEAR = 2026
SEED = 11
FIELDS = 30
WINDOW = (date(YEAR, 6, 10), date(YEAR, 7, 10))  # [first, last) day
RATES = FaultRates(gap=0.05, duplicate=0.03, spike=0.01, spike_out_of_range=0.5, stuck=0.02,
                   drift=0.01, clock_skew=0.4, offline=0.02, battery_death=0.25)
SIGMAS = 4.0  # tolerance of a measured rate, in standard deviations


def within(observed: float, *, rate: float, trials: int) -> bool:
    """``observed`` events in ``trials`` agree with ``rate`` (binomial, SIGMAS wide)."""
    sd = math.sqrt(trials * rate * (1 - rate))
    return abs(observed - rate * trials) <= SIGMAS * sd + 1


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    return simulate_season(fields=FIELDS, seed=SEED, year=YEAR, surveys=False,
                           out=tmp_path_factory.mktemp("season"))


@pytest.fixture(scope="module")
def fleet(season):
    return Fleet(season, seed=SEED, rates=RATES)


@pytest.fixture(scope="module")
def window():
    return local_midnight(WINDOW[0]), local_midnight(WINDOW[1])


@pytest.fixture(scope="module")
def messages(fleet, window):
    return list(fleet.messages(*window))


@pytest.fixture(scope="module")
def decoded(fleet, messages):
    return [decode(topic, payload, fleet) for topic, payload, _ in messages]


def decode(topic: str, payload: bytes, fleet: Fleet) -> list[tuple[str, float, float]]:
    """(metric, time, canonical value) of each record, through the platform's codecs."""
    route = parse(topic)
    match route.format:
        case Format.SENML_JSON:
            records, errors = codecs.decode_senml_json(payload, now=0.0)
        case Format.SENML_CBOR:
            records, errors = codecs.decode_senml_cbor(payload, now=0.0)
        case Format.TTS_UPLINK:
            records, errors = codecs.decode_tts_uplink(payload, device_id=route.device)
        case Format.CHIRPSTACK_UPLINK:
            records, errors = codecs.decode_chirpstack_uplink(payload, dev_eui=route.device)
    assert not errors
    out = []
    for name, unit, value, t in records:
        factor = METRICS[name].factor(unit)
        out.append((name, t, value * factor if factor >= 1 else value / round(1 / factor)))
    return out


def test_fleet_has_every_profile_and_transport(fleet, season):
    kinds = Counter((d.profile, d.transport) for d in fleet.devices)
    assert {p for p, _ in kinds} == {"paddy-water", "weather-station", "soil"}
    assert {t for _, t in kinds} == set(Transport)
    paddy = [d for d in fleet.devices if d.profile == "paddy-water"]
    assert 0.7 * FIELDS <= len(paddy) <= FIELDS
    assert all(d.id == f"sim-pw-{d.field}" for d in paddy)
    blocks = {f.block.id for f in season.fields}
    assert sum(d.profile == "weather-station" for d in fleet.devices) == len(blocks)
    assert all((d.dev_eui is not None) == (d.transport is Transport.CHIRPSTACK)
               for d in fleet.devices)


def test_payloads_decode_to_the_intended_readings(fleet, messages, decoded):
    formats = Counter()
    for (topic, _, meta), records in zip(messages, decoded, strict=True):
        formats[parse(topic).format] += 1
        assert len(records) == len(meta.readings)
        metrics = PROFILES[fleet.device(meta.device).profile].metrics
        for (name, t, value), (metric, t_meta, v_meta, ok) in zip(records, meta.readings,
                                                                  strict=True):
            spec = METRICS[name]
            assert name == metric and name in metrics
            assert t == t_meta and abs(value - v_meta) < 1e-9
            assert ok == (spec.low <= value <= spec.high)
    assert set(formats) == {Format.SENML_JSON, Format.SENML_CBOR, Format.TTS_UPLINK,
                            Format.CHIRPSTACK_UPLINK}


def test_messages_come_in_publish_order_within_the_window(messages, window):
    times = [m[2].publish_s for m in messages]
    assert times == sorted(times)
    assert window[0] <= times[0] and times[-1] < window[1]


def test_duplicates_are_exact_and_at_their_rate(messages):
    seen: dict[tuple[str, bytes], int] = Counter()
    originals = 0
    for topic, payload, meta in messages:
        if meta.duplicate:
            assert seen[(topic, payload)] == 1, "a duplicate repeats an earlier message exactly"
        else:
            originals += 1
            assert seen[(topic, payload)] == 0, "distinct messages differ"
        seen[(topic, payload)] += 1
    duplicates = sum(n - 1 for n in seen.values())
    assert duplicates == sum(m[2].duplicate for m in messages)
    assert within(duplicates, rate=RATES.duplicate, trials=originals)


def test_gaps_and_spikes_at_their_rates(fleet, messages, decoded, window):
    delivered = Counter(m[2].device for m in messages if not (m[2].duplicate or m[2].flush))
    lost = expected = 0
    for d in fleet.devices:
        grid = np.arange(window[0] + (d.phase_s - window[0]) % d.base_s, window[1], d.base_s)
        away = np.zeros(grid.size, dtype=bool)
        for f in fleet.faults:
            if f.device == d.id and f.kind in ("offline", "battery-death"):
                away |= (grid >= f.start_s) & (grid < f.end_s)
        expected += int((~away).sum())
        lost += int((~away).sum()) - delivered[d.id]
    assert within(lost, rate=RATES.gap, trials=expected)

    originals = [m[2] for m in messages if not m[2].duplicate]
    eligible = sum(r[0] != "battery" for meta in originals for r in meta.readings)
    spikes = sum(meta.spikes for meta in originals)
    assert within(spikes, rate=RATES.spike, trials=eligible)
    beyond = sum(meta.bad for meta in originals)
    assert beyond == sum(
        not METRICS[name].low <= value <= METRICS[name].high
        for (_, _, meta), records in zip(messages, decoded, strict=True) if not meta.duplicate
        for name, _, value in records)
    assert within(beyond, rate=RATES.spike_out_of_range, trials=spikes)


def test_episode_rates_match_their_settings(fleet):
    device_days = len(fleet.devices) * fleet.days
    kinds = Counter(f.kind for f in fleet.faults)
    assert within(kinds["stuck"], rate=RATES.stuck, trials=device_days)
    assert within(kinds["drift"], rate=RATES.drift, trials=device_days)
    assert within(kinds["offline"], rate=RATES.offline, trials=device_days)
    senml = [d for d in fleet.devices if d.transport in (Transport.SENML, Transport.SENML_CBOR)]
    assert within(kinds["clock-skew"], rate=RATES.clock_skew, trials=len(senml))
    assert within(kinds["battery-death"], rate=RATES.battery_death, trials=len(fleet.devices))
    assert {f.device for f in fleet.faults if f.kind == "clock-skew"} <= {d.id for d in senml}


def test_store_and_forward_flushes_the_outage_in_one_burst(fleet, messages, window):
    live, bursts = defaultdict(list), defaultdict(list)
    for _, _, meta in messages:
        if meta.flush and not meta.duplicate:
            bursts[meta.device].append(meta)
        elif not meta.flush:
            live[meta.device] += [r[1] for r in meta.readings]
    checked = 0
    for f in fleet.faults:
        if f.kind != "offline" or not window[0] + 2 * DAY_S < f.end_s < window[1] - DAY_S:
            continue
        d = fleet.device(f.device)
        if any(g.device == d.id and g.kind == "clock-skew" for g in fleet.faults):
            continue  # its readings may be stamped anywhere
        assert not [t for t in live[d.id] if f.start_s <= t < f.end_s], \
            "nothing is published live during an outage"
        if d.transport in (Transport.TTS, Transport.CHIRPSTACK):
            assert not bursts[d.id], "LoRaWAN devices do not buffer: outage readings are lost"
            continue
        packs = [m for m in bursts[d.id] if f.end_s <= m.publish_s < f.end_s + RECONNECT_S + 60]
        slots = sorted({r[1] for m in packs for r in m.readings})
        grid = np.arange(f.start_s + (d.phase_s - f.start_s) % d.base_s, f.end_s, d.base_s)
        assert slots == grid.tolist(), "the burst holds every reading of the outage"
        assert len(packs) == math.ceil(len(slots) / FLUSH_PACK_SLOTS) > 1
        checked += 1
    assert checked >= 3


def test_stuck_and_skewed_devices_show_it(fleet, messages, window):
    by_device = defaultdict(list)
    for _, _, meta in messages:
        if not meta.duplicate:
            by_device[meta.device] += meta.readings
    stuck_checked = skew_checked = 0
    for f in fleet.faults:
        if not (window[0] < f.start_s and f.end_s < window[1]):
            continue
        skewed = any(g.device == f.device and g.kind == "clock-skew" and g.start_s < f.end_s
                     and f.start_s < g.end_s for g in fleet.faults)
        if f.kind == "stuck" and not skewed:  # a skewed clock stamps other times
            values = [v for m, t, v, _ in by_device[f.device]
                      if m == f.metric and f.start_s <= t < f.end_s]
            assert sum(v == pytest.approx(f.value, abs=1e-9) for v in values) >= 0.9 * len(values)
            stuck_checked += 1
        if f.kind == "clock-skew":
            d = fleet.device(f.device)
            shifted = [t for _, t, _, _ in by_device[f.device]
                       if (t - d.phase_s) % d.base_s != 0]
            assert shifted and all((t - f.value - d.phase_s) % d.base_s == 0 for t in shifted)
            skew_checked += 1
    assert stuck_checked >= 5 and skew_checked >= 1


def test_batteries_decline_and_dead_devices_fall_silent(fleet):
    deaths = [f for f in fleet.faults if f.kind == "battery-death"
              and fleet.span[0] + 3 * DAY_S < f.start_s < fleet.span[1] - 3 * DAY_S]
    assert deaths
    for f in deaths[:3]:
        around = list(fleet.messages(f.start_s - 2 * DAY_S, f.start_s + 2 * DAY_S,
                                     devices={f.device}))
        mine = [r for _, _, m in around if m.device == f.device for r in m.readings]
        assert max(t for _, t, _, _ in mine) < f.start_s
        battery = [v for m, _, v, _ in mine if m == "battery"]
        assert battery[-1] <= BATTERY_DEAD_PCT + 5 and battery[0] >= battery[-1]


def test_same_seed_same_messages_whatever_the_window(season, fleet, window):
    start, end = window[0] + 5 * DAY_S, window[0] + 6 * DAY_S
    again = Fleet(season, seed=SEED, rates=RATES)
    first = [(t, p) for t, p, _ in fleet.messages(start, end)]
    assert first == [(t, p) for t, p, _ in again.messages(start, end)]
    longer = [(t, p) for t, p, m in again.messages(start - 2 * DAY_S, end)
              if m.publish_s >= start]
    assert first == longer
    other = Fleet(season, seed=SEED + 1, rates=RATES)
    assert first != [(t, p) for t, p, _ in other.messages(start, end)]


def test_shifted_messages_are_the_same_readings_later(fleet, window):
    start, end = window[0], window[0] + DAY_S
    shift = 100 * DAY_S
    plain = list(fleet.messages(start, end))
    shifted = list(fleet.messages(start, end, shift_s=shift))
    assert len(plain) == len(shifted)
    for (_, _, a), (_, _, b) in zip(plain, shifted, strict=True):
        assert b.publish_s == pytest.approx(a.publish_s + shift)
        assert [(m, t + shift, v) for m, t, v, _ in a.readings] == [
            (m, t, v) for m, t, v, _ in b.readings]


def test_rows_are_the_distinct_in_range_readings(fleet, window):
    start, end = window[0], window[0] + 2 * DAY_S
    rows = fleet.rows(start, end)
    keys = [(d, m, t) for d, m, t, _, _ in rows]
    assert len(keys) == len(set(keys))
    good = {(m.device, r[0], r[1]) for _, _, m in fleet.messages(start, end)
            for r in m.readings if r[3]}
    assert set(keys) == good
    assert all(METRICS[m].low <= v <= METRICS[m].high for _, m, _, v, _ in rows)


def test_no_faults_means_every_reading_on_time(season, window):
    clean = Fleet(season, seed=SEED, rates=FaultRates.none())
    start, end = window[0], window[0] + DAY_S
    msgs = list(clean.messages(start, end))
    assert not clean.faults
    assert not any(m.duplicate or m.flush or m.spikes or m.bad for _, _, m in msgs)
    expected = sum(len(np.arange(start + (d.phase_s - start) % d.base_s, end, d.base_s))
                   for d in clean.devices)
    assert len(msgs) == expected


def test_rates_outside_zero_to_one_are_refused():
    with pytest.raises(ValueError, match="gap"):
        FaultRates(gap=1.5)


def test_drone_flight_records_are_published_once_each_as_ingest_reads_them(season, fleet):
    records = fleet.flights.records
    kinds = Counter(r["kind"] for r in records)
    blocks = {f.block.id for f in season.fields}
    assert kinds["spray"] == sum(r["kind"] == "spray" for r in season.flights) > 0
    assert kinds["survey"] == len(SURVEY_DAYS_FROM_HEADING) * len(blocks)
    assert not any("image" in r for r in records), "no GeoTIFFs were written"
    assert set(fleet.flights.drones) == {r["drone_id"] for r in records}
    assert all(d.startswith("sim-") for d in fleet.flights.drones)

    shift = 100 * DAY_S
    plain = list(fleet.flights.messages(*fleet.span))
    shifted = list(fleet.flights.messages(*fleet.span, shift_s=shift))
    assert len(plain) == len(shifted) == len(records)
    keys = set()
    for (topic, payload, meta), (_, later, meta_later) in zip(plain, shifted, strict=True):
        route, body = parse(topic), json.loads(payload)
        assert route.format is Format.FLIGHTS and route.device == meta.device == body["drone_id"]
        started = datetime.fromisoformat(body["started_at"]).timestamp()
        assert meta.flight == (body["kind"], started, body.get("field"))
        assert meta.publish_s > datetime.fromisoformat(body["ended_at"]).timestamp() > started
        assert meta_later.flight == (body["kind"], started + shift, body.get("field"))
        assert meta_later.publish_s == meta.publish_s + shift
        assert datetime.fromisoformat(json.loads(later)["started_at"]).timestamp() \
            == started + shift
        keys.add((meta.device, started, body["kind"]))
    assert len(keys) == len(records), "ingest keys a record by drone, start and kind"
    times = [m.publish_s for _, _, m in plain]
    assert times == sorted(times)
