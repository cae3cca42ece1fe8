"""Sensor quality: is a device's data fit to use?

Checks of one device's readings, per metric, against the metric's plausible
range, against itself (stuck values, spikes, clock ahead of reception,
missing reports) and against its peers (slow drift from the devices of the
same profile nearby; silence while the others report); then an unsupervised
anomaly score of each device-day among the devices of one profile
(scikit-learn's IsolationForest, seeded), and a quality score per device and
local day, 0..1, with the reasons a person can read ("water_level stuck at
0.052 m since ...", "silent since ..."). Analytics ignore a device whose score
is below ``USABLE_SCORE``.

Pure functions over pandas: a metric's readings are a float Series indexed by
measurement time (tz-aware); reception times a Series on the same index. The
database side is :mod:`agri.analytics.quality_store`. Readings are flagged,
never changed: a :class:`Flag` covers one device's readings of one metric from
``start`` to ``end`` (both included); a silence covers the whole device.

Every threshold is here, with its reasoning; figures marked "assumption" are
judgement, checked against the simulator's injected faults (tests) rather
than a publication.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import numpy as np
import pandas as pd

from agri.analytics import solar
from agri.analytics.agronomy import TSUGARU_LATITUDE_DEG
from agri.clock import TZ, UTC_OFFSET_S
from agri.devices.profiles import METRICS

# --- Checks -------------------------------------------------------------------
RANGE, CLOCK, SPIKE, STUCK, DRIFT, SILENT = "range", "clock", "spike", "stuck", "drift", "silent"
KINDS = (RANGE, CLOCK, SPIKE, STUCK, DRIFT, SILENT)
# A reading under one of these has a wrong value or a wrong time and is left
# out of readings_usable; a silence has no readings to leave out.
EXCLUDING = frozenset({RANGE, CLOCK, SPIKE, STUCK, DRIFT})
DEVICE_WIDE = "*"  # the metric of a flag about the device as a whole (a silence)

# --- Windows of a run -----------------------------------------------------------
DEFAULT_DAYS = 3  # a daily run re-checks the last 3 local days: buffered readings arrive late
CONTEXT_DAYS = 2  # raw readings read before the window, so a stuck run or an outage that
#                   began earlier is seen whole (the simulator's outages last up to 36 h)
DRIFT_CONTEXT_DAYS = 21  # hourly means read before the window for the drift baseline
DEAD_LOOKBACK_DAYS = 35  # a device silent for the whole window but heard within this many
#                          days is reported "silent since" (ingest accepts readings as old)

# --- Range: plausible values, tighter than the physical range of devices/profiles.py -----
PLAUSIBLE: Mapping[str, tuple[float, float]] = MappingProxyType({
    # Levees are about 0.3 m high and deep-water irrigation asks for at most about
    # 0.17 m (agronomy.WATER_SEVERE_COLD_FORECAST); a probe reaches 0.1-0.2 m below the
    # soil surface (assumption).
    "water_level": (-0.20, 0.35),
    # Paddy water between May and October: neither frozen nor hotter than the hottest
    # shallow water measured in Japanese paddies, about 40 C (assumption).
    "water_temp": (-1.0, 42.0),
    # Japan's records: 41.1 C highest (Kumagaya 2018), Aomori prefecture's lowest about
    # -25 C (assumption for the limit).
    "air_temp": (-30.0, 42.0),
    "soil_temp": (-10.0, 40.0),  # 10 cm under a paddy (assumption)
    "rel_humidity": (1.0, 100.0),  # 0 %RH does not occur outdoors
    # Above the solar constant (1361 W/m2) only briefly at the edge of a cloud.
    "solar_radiation": (0.0, 1400.0),
    # In 10 minutes: Japan's record is about 50 mm (assumption for the limit).
    "precipitation": (0.0, 60.0),
})

# --- Clock: measured after it was received ------------------------------------------
CLOCK_AHEAD_S = 120.0  # a device stamps before it sends; more than this ahead is its clock

# --- Spike: robust z-score against a rolling median and MAD ---------------------------
SPIKE_WINDOW = 13  # intervals, centred: about 2 h at 10 minutes
SPIKE_MIN_PERIODS = 5
SPIKE_Z = 6.0  # a Gaussian sensor's noise passes 6 robust SDs about once in 10^9 readings
MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation
# The MAD of a window can be 0 (a flat stretch); the scale never goes below the
# metric's noise and ordinary two-hour wobble (assumption, canonical units).
# Metrics absent here are not spike-checked: rain, sunshine and leaf wetness jump
# by nature; wind direction is circular.
SPIKE_MIN_SCALE: Mapping[str, float] = MappingProxyType({
    "water_level": 0.005, "water_temp": 0.3, "air_temp": 0.5, "rel_humidity": 3.0,
    "wind_speed": 1.5, "solar_radiation": 80.0, "soil_moisture": 0.01, "soil_temp": 0.3,
    "soil_ec": 0.01, "battery": 2.0})

# --- Stuck: the same value for longer than a varying metric ever keeps it ---------------
STUCK_MIN_S = 3 * 3600  # noisy metrics repeat a value for minutes; faults last hours
STUCK_MIN_READINGS = 8  # and at least this many readings (4 h at 30 minutes) ...
STUCK_MIN_READINGS_BY_METRIC: Mapping[str, int] = MappingProxyType({
    "sunshine_duration": 4,  # ... hourly seconds of sunshine: 4 equal hours are enough
})
STUCK_EQUAL = 1e-9  # values closer than this are the same value
STUCK_MAX_GAP_S = 3 * 3600  # readings further apart do not continue a run
# A battery's charge falls ~0.1 %/day: flat for hours; a gate holds its
# position and state for days while nothing is wrong.
NOT_STUCK_CHECKED = frozenset({"battery", "gate_position", "gate_state"})
# Flat runs that are ordinary: no rain (or a steady drizzle through a tipping bucket),
# calm, a dark or overcast sky, dry or wet leaves all interval, saturated air. Such a
# run is stuck only when the peers (same profile, median of the hour) disagree, or
# the sun says otherwise.
FLAT_ANY = frozenset({"precipitation"})
FLAT_VALUES: Mapping[str, tuple[float, ...]] = MappingProxyType({
    "solar_radiation": (0.0,), "sunshine_duration": (0.0, 3600.0), "leaf_wetness": (0.0, 1.0),
    "wind_speed": (0.0,)})
FLAT_AT_LEAST: Mapping[str, float] = MappingProxyType({"rel_humidity": 99.5})
FLAT_AT_MOST: Mapping[str, float] = MappingProxyType({"sunshine_duration": 60.0})  # overcast
# A dry paddy's level sits at the sensor's floor and saturated soil at its ceiling:
# flat at the device's own lowest (highest) value of the window, within this much.
FLAT_AT_FLOOR: Mapping[str, float] = MappingProxyType({"water_level": 0.01})
FLAT_AT_CEILING: Mapping[str, float] = MappingProxyType({"soil_moisture": 0.01})
FLOOR_MAX = MappingProxyType({"water_level": 0.0})  # a floor is at or below the soil surface
# Peers disagree with a flat run when their hourly median differs from the run's value
# by more than this in at least STUCK_PEER_SHARE of the run's hours (and 2 hours).
PEER_TOLERANCE: Mapping[str, float] = MappingProxyType({
    "precipitation": 0.1, "solar_radiation": 50.0, "sunshine_duration": 900.0,
    "leaf_wetness": 0.5, "wind_speed": 1.0, "rel_humidity": 5.0})
STUCK_PEER_SHARE = 0.3
# ... and a run of any value is not stuck when the peers' median stayed within the
# tolerance of it in this share of its hours (the whole block had that weather).
STUCK_PEER_AGREE_SHARE = 0.9
STUCK_PEER_MIN_HOURS = 2
# The sun decides alone: no radiation with the sun 15 degrees up is impossible (diffuse
# light under thick cloud is tens of W/m2); a full hour of sunshine with the sun below
# the horizon is impossible.
SUN_UP_SIN = math.sin(math.radians(15.0))
SITE_LONGITUDE_DEG = 140.4  # Tsugaru plain, where devices have no field location
STANDARD_MERIDIAN_DEG = UTC_OFFSET_S / 3600 * 15.0

# --- Silence: no reception while the others report ---------------------------------
# Lost transmissions are independent (about 2 % each): 4 in a row happen about once in
# 6 x 10^6 transmissions, an outage (a device offline, a dead battery) lasts hours.
SILENT_MIN_S = 90 * 60
SILENT_MIN_TRANSMISSIONS = 4  # ... and 4 transmissions (the profile's shortest interval) lost
SILENT_FLEET_SHARE = 0.5  # the others report: at least half of the devices heard that hour

# --- Drift: slow departure from the peers -------------------------------------------
# Daily median of (hourly mean - peers' hourly median) against its median over the
# first DRIFT_BASELINE_DAYS days; departures beyond the tolerance for DRIFT_MIN_DAYS
# days in a row. Only metrics that peers share: a paddy's level, soil moisture and EC
# follow each farmer's water management, rain and wind are local.
DRIFT_TOLERANCE: Mapping[str, float] = MappingProxyType({
    "air_temp": 0.6, "rel_humidity": 6.0, "water_temp": 1.2, "soil_temp": 1.2})
DRIFT_BASELINE_DAYS = 5
DRIFT_MIN_DAYS = 2
DRIFT_MIN_HOURS = 12  # hours of residuals a day needs to count
# Water temperature is compared only while the paddy holds water: a drained sensor sits
# in the soil (simulator and practice), and peers drain on other days.
PONDED_MIN_LEVEL_M = 0.01

# --- Peers ----------------------------------------------------------------------------
MIN_PEERS = 3  # an hour's peer median needs at least 3 other devices
PEER_GROUP_MIN = 4  # devices of a profile in one municipality to be their own peer group
LOO_EXACT_MAX = 200  # larger groups use the plain median (one device moves it little)

# --- Anomaly score across the devices of one profile --------------------------------
ANOMALY_SEED = 20240607
ANOMALY_TREES = 200
ANOMALY_MIN_SAMPLES = 20  # device-days
ANOMALY_MIN_DEVICES = 5
# IsolationForest's score s = 2^(-E(h)/c(n)) is about 0.5 for ordinary samples and
# near 1 for isolated ones (Liu, Ting & Zhou 2008); below NEUTRAL it costs nothing, at
# FULL and above it takes ANOMALY_WEIGHT off the score. Alone it never makes a device
# unusable: an isolated day is a question, flags are evidence.
ANOMALY_NEUTRAL, ANOMALY_FULL, ANOMALY_WEIGHT = 0.6, 0.8, 0.25
# Per metric and device-day: share of expected reports missing, share of readings equal
# to the one before, spread of the good values, median distance from the peers,
# share of readings flagged.
FEATURES = ("gap_share", "flat_share", "spread", "residual", "flagged_share")

# --- Score ------------------------------------------------------------------------------
# A day's score is the mean over the profile's metrics (battery aside) of the share of
# expected readings that arrived and passed every check, times the anomaly factor.
USABLE_SCORE = 0.7  # analytics ignore a device-day below this
NOT_SCORED = frozenset({"battery"})
BATTERY_LOW_PCT = 10.0
MAX_REASONS = 12
GAP_REASON_SHARE = 0.1  # a metric missing more of a day's expected reports is a reason

# --- Bounds of a run -------------------------------------------------------------------
MAX_FLAGS_PER_SERIES = 500  # a series with more is broken; the rest is counted, not stored
MAX_FLAGS_PER_RUN = 200_000  # a broken fleet cannot fill the disk


@dataclass(frozen=True, slots=True)
class Flag:
    """Readings of ``metric`` (``DEVICE_WIDE`` for a silence) from ``start`` to ``end``,
    both included, that failed check ``kind``; ``readings`` of them (0 for a silence)."""

    metric: str
    kind: str
    start: pd.Timestamp
    end: pd.Timestamp
    readings: int
    detail: Mapping[str, object] = field(default_factory=dict)

    @property
    def excludes(self) -> bool:
        return self.kind in EXCLUDING


def plausible_range(metric: str) -> tuple[float, float]:
    """The plausible range of ``metric``; the physical one where none is set tighter."""
    spec = METRICS[metric]
    low, high = PLAUSIBLE.get(metric, (spec.low, spec.high))
    return max(low, spec.low), min(high, spec.high)


def clean(series: pd.Series) -> tuple[pd.Series, int]:
    """``series`` as floats sorted by time, a repeated time kept once (the first);
    returns it and the number of repeats dropped."""
    s = series.astype(float)
    s = s[s.index.notna()].sort_index(kind="stable")
    repeated = s.index.duplicated(keep="first")
    return s[~repeated], int(repeated.sum())


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True in ``mask``."""
    if not mask.any():
        return []
    padded = np.r_[False, mask, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), (edges[1::2] - 1).tolist(), strict=True))


def _num(x: float) -> float | None:
    """A JSON-safe number."""
    return round(float(x), 6) if x is not None and math.isfinite(x) else None


def _flags_of_runs(series: pd.Series, mask: np.ndarray, metric: str, kind: str,
                   detail) -> list[Flag]:
    index = series.index
    return [Flag(metric, kind, index[i], index[j], j - i + 1, detail(i, j))
            for i, j in _runs(mask)]


def range_check(series: pd.Series, *, metric: str) -> tuple[np.ndarray, list[Flag]]:
    """Readings that are not finite or outside the plausible range: mask and flags."""
    v = series.to_numpy(dtype=float)
    low, high = plausible_range(metric)
    finite = np.isfinite(v)
    with np.errstate(invalid="ignore"):
        bad = ~finite | (v < low) | (v > high)

    def detail(i: int, j: int) -> dict:
        part = v[i:j + 1][finite[i:j + 1]]
        return {"low": low, "high": high, "non_finite": int((~finite[i:j + 1]).sum()),
                "min": _num(part.min()) if part.size else None,
                "max": _num(part.max()) if part.size else None}

    return bad, _flags_of_runs(series, bad, metric, RANGE, detail)


def clock_check(series: pd.Series, received: pd.Series, *,
                metric: str) -> tuple[np.ndarray, list[Flag]]:
    """Readings stamped more than ``CLOCK_AHEAD_S`` after they were received."""
    ahead = (series.index - pd.DatetimeIndex(received)).total_seconds().to_numpy()
    bad = ahead > CLOCK_AHEAD_S
    return bad, _flags_of_runs(series, bad, metric, CLOCK,
                               lambda i, j: {"ahead_s": _num(ahead[i:j + 1].max())})


def spike_mask(series: pd.Series, *, metric: str, interval_s: float) -> np.ndarray:
    """Readings further than ``SPIKE_Z`` robust SDs from the median of the readings
    within ``SPIKE_WINDOW`` intervals around them (a window in time: readings across
    an outage are not neighbours)."""
    scale_min = SPIKE_MIN_SCALE.get(metric)
    if scale_min is None or len(series) < SPIKE_MIN_PERIODS:
        return np.zeros(len(series), dtype=bool)
    width = pd.Timedelta(seconds=SPIKE_WINDOW * interval_s)
    median = series.rolling(width, center=True, min_periods=SPIKE_MIN_PERIODS).median()
    deviation = (series - median).abs()
    mad = deviation.rolling(width, center=True, min_periods=SPIKE_MIN_PERIODS).median()
    z = deviation / np.maximum(MAD_TO_SD * mad, scale_min)
    return (z > SPIKE_Z).to_numpy()


def spike_flags(series: pd.Series, mask: np.ndarray, *, metric: str) -> list[Flag]:
    """One flag per spike: a spike is one wrong reading, its neighbours are fine."""
    return [Flag(metric, SPIKE, t, t, 1, {"value": _num(v)})
            for t, v in zip(series.index[mask], series.to_numpy()[mask], strict=True)]


SUN_METRICS = frozenset({"solar_radiation", "sunshine_duration"})


def _sin_sun(times: pd.DatetimeIndex, *, latitude_deg: float, longitude_deg: float,
             hours_before: float = 0.0) -> np.ndarray:
    """Sine of the sun's elevation at ``times`` (less ``hours_before``)."""
    local = times.tz_convert(TZ)
    hours = (local.hour + local.minute / 60.0).to_numpy() - hours_before
    return solar.sin_elevation(latitude_deg=latitude_deg, longitude_deg=longitude_deg,
                               standard_meridian_deg=STANDARD_MERIDIAN_DEG,
                               day_of_year=local.day_of_year.to_numpy(), hour=hours % 24.0)


def _sun_contradicts(metric: str, value: float, times: pd.DatetimeIndex, *,
                     latitude_deg: float, longitude_deg: float) -> bool:
    if metric not in SUN_METRICS:
        return False
    site = {"latitude_deg": latitude_deg, "longitude_deg": longitude_deg}
    sin_h = _sin_sun(times, **site)
    if metric == "solar_radiation":
        return value == 0.0 and bool((sin_h > SUN_UP_SIN).any())
    # an hour's sunshine, stamped at the hour's end: the sun was down the whole hour
    before = _sin_sun(times, hours_before=1.0, **site)
    return value > 0.0 and bool(((sin_h < 0) & (before < 0)).any())


def _ordinarily_flat(metric: str, value: float, series: pd.Series,
                     history: pd.Series | None) -> bool:
    if metric in FLAT_ANY:
        return True
    if any(abs(value - x) <= STUCK_EQUAL for x in FLAT_VALUES.get(metric, ())):
        return True
    if metric in FLAT_AT_LEAST and value >= FLAT_AT_LEAST[metric]:
        return True
    if metric in FLAT_AT_MOST and value <= FLAT_AT_MOST[metric]:
        return True
    seen = series.to_numpy(dtype=float)
    if history is not None and len(history):
        seen = np.r_[seen, history.to_numpy(dtype=float)]
    if metric in FLAT_AT_FLOOR:
        return (value <= FLOOR_MAX.get(metric, math.inf)
                and value <= np.nanmin(seen) + FLAT_AT_FLOOR[metric])
    if metric in FLAT_AT_CEILING:
        return value >= np.nanmax(seen) - FLAT_AT_CEILING[metric]
    return False


def _peer_offsets(metric: str, value: float, times: pd.DatetimeIndex,
                  reference: pd.Series | None, **site: float) -> pd.Series | None:
    """By hour wholly inside the run (at its ends the value may have changed within the
    hour; for the sun's metrics, only hours with the sun up), whether the peers'
    median is further than the tolerance from ``value``."""
    tolerance = PEER_TOLERANCE.get(metric)
    if reference is None or tolerance is None or reference.empty:
        return None
    hours = pd.date_range(times[0].ceil("h"), times[-1].floor("h"), freq="h",
                          inclusive="left")
    if metric in SUN_METRICS and len(hours):
        hours = hours[_sin_sun(hours + pd.Timedelta(minutes=30), **site) > 0]
    ref = reference.reindex(hours).dropna()
    if len(ref) < STUCK_PEER_MIN_HOURS:
        return None
    return (ref - value).abs() > tolerance


def _peers_disagree(off: pd.Series | None) -> bool:
    return off is not None and int(off.sum()) >= STUCK_PEER_MIN_HOURS and float(
        off.mean()) >= STUCK_PEER_SHARE


def _peers_agree(off: pd.Series | None) -> bool:
    """The peers kept the value too: what the sensor saw was the weather."""
    return off is not None and float(off.mean()) <= 1.0 - STUCK_PEER_AGREE_SHARE


def stuck_flags(series: pd.Series, *, metric: str, reference: pd.Series | None = None,
                history: pd.Series | None = None, latitude_deg: float = TSUGARU_LATITUDE_DEG,
                longitude_deg: float = SITE_LONGITUDE_DEG) -> list[Flag]:
    """Runs of one value over at least ``STUCK_MIN_S`` and enough readings, unless such a
    run is ordinary for the metric (see ``FLAT_*``) and neither the peers' hourly
    ``reference`` nor the sun says otherwise, or the peers kept the value too.
    ``series`` holds finite values only; ``history`` (the device's hourly means over a
    longer past) shows where its floor and ceiling are."""
    if metric in NOT_STUCK_CHECKED or len(series) < 2:
        return []
    v = series.to_numpy(dtype=float)
    t = series.index
    need = STUCK_MIN_READINGS_BY_METRIC.get(metric, STUCK_MIN_READINGS)
    out = []
    # a run does not bridge a stretch without readings: no one saw what the value did
    apart = np.diff(t.as_unit("ns").asi8) / 1e9
    same = (np.abs(np.diff(v)) <= STUCK_EQUAL) & (apart <= STUCK_MAX_GAP_S)
    for i, j in _runs(same):
        last = j + 1  # the diff's run i..j covers readings i..j+1
        if last - i + 1 < need or (t[last] - t[i]).total_seconds() < STUCK_MIN_S:
            continue
        value, times = float(v[i]), t[i:last + 1]
        off = _peer_offsets(metric, value, times, reference, latitude_deg=latitude_deg,
                            longitude_deg=longitude_deg)
        if _sun_contradicts(metric, value, times, latitude_deg=latitude_deg,
                            longitude_deg=longitude_deg):
            why = "sun"
        elif _peers_agree(off):
            continue
        elif not _ordinarily_flat(metric, value, series, history):
            why = "flat"
        elif _peers_disagree(off):
            why = "peers"
        else:
            continue
        out.append(Flag(metric, STUCK, t[i], t[last], last - i + 1,
                        {"value": _num(value), "why": why}))
    return out


@dataclass(frozen=True, slots=True)
class Gaps:
    """Reports of one metric in a window: expected, received (distinct intervals),
    missing, and the longest stretch without one (s)."""

    expected: int
    received: int
    missing: int
    longest_s: float


def gaps(times: pd.DatetimeIndex, *, interval_s: float, start: pd.Timestamp,
         end: pd.Timestamp) -> Gaps:
    """Missing reports of a metric reported every ``interval_s`` in [start, end)."""
    return gaps_by_span(times, interval_s=interval_s, spans=[(start, end)])[0]


def gaps_by_span(times: pd.DatetimeIndex, *, interval_s: float,
                 spans: list[tuple[pd.Timestamp, pd.Timestamp]]) -> list[Gaps]:
    """:func:`gaps` of each [start, end) in ``spans`` (``times`` sorted)."""
    ns = np.sort(times.as_unit("ns").asi8)
    step = interval_s * 1e9
    out = []
    for start, end in spans:
        a, b = start.as_unit("ns").value, end.as_unit("ns").value
        span = max(b - a, 0)
        inside = ns[np.searchsorted(ns, a):np.searchsorted(ns, b)]
        slots = np.unique((inside - a) // step).size
        edges = np.r_[a, inside, b] if span else np.array([a])
        longest = float(np.diff(edges).max()) / 1e9 if span else 0.0
        expected = int(span // step)
        out.append(Gaps(expected, slots, max(expected - slots, 0), longest))
    return out


def silent_after_s(base_interval_s: float) -> float:
    """How long without a reception counts as a silence for a device reporting every
    ``base_interval_s``: ``SILENT_MIN_S``, and ``SILENT_MIN_TRANSMISSIONS`` transmissions
    lost in a row (k lost make a stretch of k + 1 intervals, give or take the
    latency)."""
    return max(SILENT_MIN_S, (SILENT_MIN_TRANSMISSIONS + 0.5) * base_interval_s)


def silences(received: pd.DatetimeIndex, *, base_interval_s: float,
             until: pd.Timestamp | None = None) -> list[Flag]:
    """Stretches without any reception longer than :func:`silent_after_s`, between
    receptions and, when ``until`` is given, from the last one to ``until`` (open)."""
    if received.empty:
        return []
    r = received.sort_values().unique()
    limit = silent_after_s(base_interval_s)
    stretch = (r[1:] - r[:-1]).total_seconds().to_numpy()
    out = [Flag(DEVICE_WIDE, SILENT, r[k], r[k + 1], 0,
                {"hours": _num(stretch[k] / 3600), "open": False})
           for k in np.flatnonzero(stretch > limit)]
    if until is not None and (until - r[-1]).total_seconds() > limit:
        out.append(Flag(DEVICE_WIDE, SILENT, r[-1], until, 0,
                        {"hours": _num((until - r[-1]).total_seconds() / 3600),
                         "open": True}))
    return out


def while_others_report(flags: list[Flag], activity: pd.Series) -> list[Flag]:
    """The silences during which at least ``SILENT_FLEET_SHARE`` of the devices were
    heard in most hours (``activity``: share of devices heard, by UTC hour); a silence
    of the whole fleet is the platform's, not the device's."""
    kept = []
    for f in flags:
        hours = activity[(activity.index >= f.start.floor("h")) & (activity.index <= f.end)]
        if hours.empty or float((hours >= SILENT_FLEET_SHARE).mean()) >= 0.5:
            kept.append(f)
    return kept


def hourly_means(series: pd.Series) -> pd.Series:
    """Mean of each UTC hour that has readings."""
    if series.empty:
        return series
    return series.groupby(series.index.floor("h")).mean()


def peer_reference(hourly: pd.DataFrame, members: list[str] | None = None) -> pd.DataFrame:
    """Each member's reference: the median of the others' hourly means (columns are
    devices, rows UTC hours), where at least ``MIN_PEERS`` others have a value."""
    members = list(hourly.columns) if members is None else members
    out = {}
    if hourly.shape[1] > LOO_EXACT_MAX:
        median = hourly.median(axis=1)
        counts = hourly.notna().sum(axis=1)
        for c in members:
            out[c] = median.where(counts - hourly[c].notna() >= MIN_PEERS)
    else:
        values = hourly.to_numpy(dtype=float)
        for c in members:
            k = hourly.columns.get_loc(c)
            others = np.delete(values, k, axis=1)
            enough = np.isfinite(others).sum(axis=1) >= MIN_PEERS
            med = np.full(len(hourly), np.nan)
            if enough.any():
                med[enough] = np.nanmedian(others[enough], axis=1)
            out[c] = pd.Series(med, index=hourly.index)
    return pd.DataFrame(out, index=hourly.index)


def peer_groups(devices: Mapping[str, tuple[str, str | None]]) -> dict[str, list[str]]:
    """Peers of each device (``devices``: id -> (profile, municipality or None)): the
    devices of its profile in its municipality when there are ``PEER_GROUP_MIN`` of them,
    otherwise every device of its profile; the device itself included."""
    by_profile: dict[str, list[str]] = {}
    by_place: dict[tuple[str, str], list[str]] = {}
    for d, (profile, place) in sorted(devices.items()):
        by_profile.setdefault(profile, []).append(d)
        if place:
            by_place.setdefault((profile, place), []).append(d)
    out = {}
    for d, (profile, place) in devices.items():
        local = by_place.get((profile, place or ""), [])
        out[d] = local if len(local) >= PEER_GROUP_MIN else by_profile[profile]
    return out


def local_day(index: pd.DatetimeIndex) -> np.ndarray:
    """The local calendar day of each time."""
    return index.tz_convert(TZ).normalize().tz_localize(None).to_numpy()


def theil_sen(y: np.ndarray) -> float:
    """Median of the slopes between all pairs of points of ``y`` (one per step)."""
    n = len(y)
    if n < 2:
        return 0.0
    i, j = np.triu_indices(n, k=1)
    return float(np.median((y[j] - y[i]) / (j - i)))


def drift_flags(hourly: pd.Series, reference: pd.Series | None, *, metric: str) -> list[Flag]:
    """Days on which the device's daily median departure from its peers moved away
    from its baseline: each stretch of days beyond half of ``DRIFT_TOLERANCE`` that
    holds ``DRIFT_MIN_DAYS`` days in a row beyond all of it, and over which (with
    the days before it) the departure grows by half the tolerance or more; local
    midnight to midnight."""
    tolerance = DRIFT_TOLERANCE.get(metric)
    if tolerance is None or reference is None or hourly.empty:
        return []
    residual = (hourly - reference.reindex(hourly.index)).dropna()
    if residual.empty:
        return []
    per_day = residual.groupby(local_day(residual.index)).agg(["median", "count"])
    per_day = per_day[per_day["count"] >= DRIFT_MIN_HOURS]["median"]
    if len(per_day) < DRIFT_BASELINE_DAYS + DRIFT_MIN_DAYS:
        return []
    baseline = float(per_day.iloc[:DRIFT_BASELINE_DAYS].median())
    departure = per_day.to_numpy() - baseline
    out = []
    for sign in (1.0, -1.0):
        over = sign * departure > tolerance
        for i, j in _runs(sign * departure > tolerance / 2):
            if max((b - a + 1 for a, b in _runs(over[i:j + 1])), default=0) < DRIFT_MIN_DAYS:
                continue
            # slow: the departure grows (a constant offset or one step is not a drift)
            lead = max(i - DRIFT_BASELINE_DAYS, 0)
            if sign * theil_sen(departure[lead:j + 1]) * (j - lead) < tolerance / 2:
                continue
            first = pd.Timestamp(per_day.index[i]).tz_localize(TZ)
            last = pd.Timestamp(per_day.index[j]).tz_localize(TZ) + pd.Timedelta(days=1)
            peak = i + int(np.argmax(sign * departure[i:j + 1]))
            out.append(Flag(metric, DRIFT, first.tz_convert("UTC"),
                            last.tz_convert("UTC") - pd.Timedelta(microseconds=1), 0,
                            {"departure": _num(departure[peak]), "baseline": _num(baseline),
                             "days": j - i + 1}))
    return out


@dataclass(slots=True)
class SeriesResult:
    """One metric of one device: its flags and per local day the counts and features
    (index: day; columns ``readings``, ``good``, ``flat_share``, ``spread``,
    ``residual``, ``flagged_share``)."""

    metric: str
    flags: list[Flag]
    days: pd.DataFrame
    repeated: int
    first: pd.Timestamp | None
    last_value: float | None


def check_series(values: pd.Series, received: pd.Series, *, metric: str, interval_s: float,
                 reference: pd.Series | None = None, history: pd.Series | None = None,
                 ponded: pd.Series | None = None, latitude_deg: float = TSUGARU_LATITUDE_DEG,
                 longitude_deg: float = SITE_LONGITUDE_DEG) -> SeriesResult:
    """Every per-series check of one metric of one device (reported every
    ``interval_s``), in order: range (and non-finite), clock, spike, stuck (on what is
    left), drift (on the hourly means of what is left, after ``history``: the device's
    hourly means over a longer past). ``reference``: the peers' hourly median;
    ``ponded``: by UTC hour, whether the paddy held water (for water temperature); the
    site's latitude and longitude place the sun."""
    values = values.copy()
    values.index = pd.DatetimeIndex(values.index)
    received = received[~received.index.duplicated(keep="first")]
    s, repeated = clean(values)
    rec = received.reindex(s.index)
    bad_range, flags = range_check(s, metric=metric)
    bad_clock, clock = clock_check(s, rec.fillna(pd.Timestamp.max.tz_localize("UTC")),
                                   metric=metric)
    flags += clock
    bad = bad_range | bad_clock
    rest = s[~bad]
    spiked = spike_mask(rest, metric=metric, interval_s=interval_s)
    flags += spike_flags(rest, spiked, metric=metric)
    steady = rest[~spiked]
    stuck = stuck_flags(steady, metric=metric, reference=reference, history=history,
                        latitude_deg=latitude_deg, longitude_deg=longitude_deg)
    flags += stuck
    unstuck = steady
    for f in stuck:
        unstuck = unstuck[(unstuck.index < f.start) | (unstuck.index > f.end)]
    hourly = hourly_means(unstuck)
    if history is not None and len(history) and len(s):
        # the longer past from the hourly rollups, the checked readings where there are any
        hourly = pd.concat([history[history.index < s.index[0].floor("h")], hourly])
    if ponded is not None and metric == "water_temp":
        hourly = hourly[ponded.reindex(hourly.index, fill_value=False).to_numpy(dtype=bool)]
    flags += drift_flags(hourly, reference, metric=metric)
    excluded = bad.copy()
    excluded[np.flatnonzero(~bad)[spiked]] = True
    times = s.index
    for f in flags:
        if f.kind in (STUCK, DRIFT):
            excluded |= (times >= f.start) & (times <= f.end)
    return SeriesResult(metric, sorted(flags, key=lambda f: (f.start, f.kind)),
                        _day_stats(s, excluded, reference), repeated,
                        times[0] if len(times) else None,
                        float(steady.iloc[-1]) if len(steady) else None)


def _day_stats(s: pd.Series, excluded: np.ndarray, reference: pd.Series | None) -> pd.DataFrame:
    if s.empty:
        return pd.DataFrame(columns=["readings", "good", "flat_share", "spread", "residual",
                                     "flagged_share"])
    v = s.to_numpy(dtype=float)
    same = np.r_[False, np.abs(np.diff(v)) <= STUCK_EQUAL]
    good = np.where(excluded, np.nan, v)
    frame = pd.DataFrame({"day": local_day(s.index), "excluded": excluded, "same": same,
                          "good": good}, index=s.index)
    if reference is not None:
        hour = s.index.floor("h")
        frame["residual"] = np.abs(good - reference.reindex(hour).to_numpy())
    else:
        frame["residual"] = np.nan
    g = frame.groupby("day")
    days = pd.DataFrame({
        "readings": g.size(),
        "good": g["good"].count(),
        "flat_share": g["same"].mean(),
        "spread": g["good"].std(),
        "residual": g["residual"].median(),
        "flagged_share": g["excluded"].mean(),
    })
    return days


# --- Anomaly and score -------------------------------------------------------------------

def anomaly_scores(features: pd.DataFrame) -> pd.Series:
    """IsolationForest anomaly score (0..1, about 0.5 ordinary, near 1 isolated) of each
    row of ``features`` (index (device, day), one profile); NaN for all rows when there
    are too few rows or devices to compare. Deterministic: seeded, rows sorted."""
    from sklearn.ensemble import IsolationForest

    out = pd.Series(np.nan, index=features.index, dtype=float)
    devices = features.index.get_level_values(0).nunique() if len(features) else 0
    if len(features) < ANOMALY_MIN_SAMPLES or devices < ANOMALY_MIN_DEVICES:
        return out
    ordered = features.sort_index()
    x = ordered.replace([np.inf, -np.inf], np.nan).fillna(0.0).to_numpy(dtype=float)
    forest = IsolationForest(n_estimators=ANOMALY_TREES, random_state=ANOMALY_SEED)
    forest.fit(x)
    return pd.Series(-forest.score_samples(x), index=ordered.index).reindex(features.index)


def anomaly_factor(anomaly: float | None) -> float:
    if anomaly is None or not math.isfinite(anomaly):
        return 1.0
    excess = (anomaly - ANOMALY_NEUTRAL) / (ANOMALY_FULL - ANOMALY_NEUTRAL)
    return 1.0 - ANOMALY_WEIGHT * min(max(excess, 0.0), 1.0)


def day_score(coverage: Mapping[str, float], anomaly: float | None) -> float:
    """The score of a device-day from each scored metric's ``coverage`` (share of the
    expected readings that arrived and passed, 0..1) and its anomaly score."""
    shares = [min(max(c, 0.0), 1.0) for m, c in coverage.items() if m not in NOT_SCORED]
    if not shares:
        return 0.0
    return round(float(np.mean(shares)) * anomaly_factor(anomaly), 4)


def _local(t: datetime) -> str:
    return pd.Timestamp(t).tz_convert(TZ).strftime("%Y-%m-%d %H:%M")


def _fmt(x: object) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _unit(metric: str) -> str:
    spec = METRICS.get(metric)
    return "" if spec is None or spec.unit == "/" else f" {spec.unit}"


def day_reasons(flags: list[Flag], *, gaps: Mapping[str, Gaps] | None = None,
                anomaly: float | None = None, profile: str = "",
                battery_pct: float | None = None) -> list[dict[str, object]]:
    """Why a device-day scored as it did: one reason per check and metric among
    ``flags`` (those touching the day), the metrics missing more than
    ``GAP_REASON_SHARE`` of their expected reports, the anomaly and a low battery;
    at most ``MAX_REASONS``, times in local time."""
    groups: dict[tuple[str, str], list[Flag]] = {}
    for f in sorted(flags, key=lambda f: (KINDS.index(f.kind), f.metric, f.start)):
        groups.setdefault((f.kind, f.metric), []).append(f)
    out: list[dict[str, object]] = []
    for (kind, metric), group in groups.items():
        first, n = group[0], sum(f.readings for f in group)
        d, unit = first.detail, _unit(metric)
        match kind:
            case "stuck":
                text = (f"{metric} stuck at {_fmt(d.get('value'))}{unit} "
                        f"since {_local(first.start)}")
            case "silent":
                last = group[-1]
                text = (f"silent since {_local(last.start)}" if last.detail.get("open") else
                        f"silent {len(group)} time(s), the longest "
                        f"{_fmt(max(f.detail.get('hours') or 0.0 for f in group))} h")
                text += " while other devices reported"
            case "drift":
                text = (f"{metric} departs from its peers by {_fmt(d.get('departure'))}"
                        f"{unit} since {_local(first.start)}")
            case "clock":
                text = f"{n} {metric} readings stamped after they were received"
            case "range":
                text = f"{n} {metric} readings outside {d.get('low')}..{d.get('high')}{unit}"
            case _:
                text = f"{n} {metric} spike(s)"
        out.append({"check": kind, "metric": metric, "from": first.start.isoformat(),
                    "to": group[-1].end.isoformat(), "readings": n, "text": text})
    for metric, g in sorted((gaps or {}).items()):
        if g.expected and g.missing / g.expected > GAP_REASON_SHARE:
            out.append({"check": "gap", "metric": metric, "missing": g.missing,
                        "expected": g.expected, "longest_s": round(g.longest_s),
                        "text": f"{metric}: {g.missing} of {g.expected} expected readings "
                                f"missing, the longest gap {g.longest_s / 3600:.1f} h"})
    if anomaly is not None and math.isfinite(anomaly) and anomaly > ANOMALY_NEUTRAL:
        out.append({"check": "anomaly", "score": round(anomaly, 3),
                    "text": f"unusual among the {profile} devices (anomaly {anomaly:.2f})"})
    if battery_pct is not None and battery_pct < BATTERY_LOW_PCT:
        out.append({"check": "battery", "value": round(battery_pct, 1),
                    "text": f"battery at {battery_pct:.0f} %"})
    return out[:MAX_REASONS]
