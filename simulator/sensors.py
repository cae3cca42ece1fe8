"""The sensors of a simulated season: a fleet of devices on the season's fields, their
readings from the season's true hourly series, realistic faults, and their MQTT messages
(encoded by :mod:`agri.simulator.encoders`; the drones' records are in ``Fleet.flights``).

Fleet: a paddy-water sensor on most fields, a weather station per block (on its first
field), a soil probe on some fields; ids ``{prefix}-pw-{field}``, ``{prefix}-ws-{block}``,
``{prefix}-soil-{field}``. A device reports each metric at its profile's interval on a
grid of its own phase (whole seconds), one message per shortest interval, over SenML JSON
or CBOR (LTE-M; some paddy sensors send the level in cm) or LoRaWAN through The Things
Stack v3 or ChirpStack v4 (the network server stamps the reading with its arrival).

Truth: hourly values are placed at mid-hour and interpolated (wind direction as a
vector); per-interval amounts (precipitation through a ``TIP_MM`` tipping bucket,
sunshine seconds, leaf-wetness fraction) come from the cumulative hourly series. Soil
moisture follows the water level (saturated while ponded), soil temperature lags the
water, bulk EC follows moisture: assumptions, as no soil model is published for these
paddies. Then noise, rounding and faults; only out-of-range spikes leave a metric's
physical range (ingest rejects them, as it should).

Faults kept as truth: episodes (stuck, drift, clock-skew, offline, battery-death) in
``Fleet.faults``; per message (gaps aside, which leave no message) in its ``Meta``. Clock
offsets are never a multiple of 600 s, so a skewed reading never takes another's time.
Every draw comes from a ``(seed, crc32(device id), ...)`` stream: a device's messages do
not depend on the window asked for nor on the rest of the fleet. Times are seconds since
1970; ``shift_s`` moves every stamp (a past season replayed live at today's date).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from agri.devices.profiles import METRICS, PROFILES
from agri.simulator.climate import TIMEZONE
from agri.simulator.encoders import Device, FlightLog, Message, Transport, transmission
from agri.simulator.water import MIN_LEVEL_M

if TYPE_CHECKING:
    from agri.simulator.season import Season

DAY_S, HOUR_S = 86_400, 3_600
PADDY_FIELD_SHARE = 0.9
SOIL_FIELD_SHARE = 0.25
T = Transport
# Cycled from a random start, so the shares hold for any fleet size: paddy 50 % SenML JSON,
# 10 % CBOR, 20 % each LoRaWAN network server; weather stations on LTE; soil mostly LoRa.
TRANSPORTS = {"paddy-water": (T.SENML, T.TTS, T.SENML, T.CHIRPSTACK, T.SENML_CBOR, T.SENML, T.TTS,
                              T.CHIRPSTACK, T.SENML, T.SENML),
              "weather-station": (T.SENML, T.SENML, T.SENML_CBOR),
              "soil": (T.CHIRPSTACK, T.TTS, T.SENML)}
LEVEL_IN_CM_SHARE = 0.3  # SenML paddy sensors that send the water level in cm
LATENCY_S = (0.2, 3.0)  # device to broker
DUPLICATE_DELAY_S = (1.0, 30.0)  # a duplicate follows its original by this much
RECONNECT_S = 20.0  # from the end of an outage to the first flushed pack
FLUSH_PACK_SLOTS = 12  # transmissions per pack when a buffer is flushed
FLUSH_SPACING_S = 0.5  # between the packs of a flush
STUCK_HOURS, DRIFT_DAYS, OFFLINE_HOURS, SKEW_DAYS = (6, 48), (5, 30), (2, 36), (1, 10)
SKEW_TIMEZONE_SHARE = 0.4  # skewed clocks that send Japan time as UTC (9 h ahead) ...
SKEW_SMALL_S = (30, 300)  # ... the others are off by this much either way
SPIKE_OUT_SPAN = (0.2, 1.0)  # out-of-range spikes lie this share of the range beyond an end
BATTERY_START_PCT, BATTERY_USE_PCT_DAY = (88.0, 100.0), (0.03, 0.12)
BATTERY_DEAD_PCT = 3.0  # below this a device browns out and stays silent
TIP_MM = 0.5
THETA_SAT, THETA_DRAINED = 0.52, 0.36  # soil moisture (m3/m3) ponded, and at MIN_LEVEL_M
SOIL_TAU_H = 8.0  # soil temperature at 10 cm lags the water by this time constant
EC_SATURATED_S_M, EC_EXPONENT = (0.08, 0.20), 1.5  # bulk EC of saturated soil, per field
# Sensor noise (standard deviation), drift per day (canonical units), decimals sent.
NOISE_SD = {"water_level": 0.002, "water_temp": 0.1, "battery": 0.3, "air_temp": 0.1,
            "rel_humidity": 1.0, "wind_speed": 0.1, "wind_direction": 3.0,
            "solar_radiation": 5.0, "soil_moisture": 0.005, "soil_temp": 0.1, "soil_ec": 0.003}
DRIFT_PER_DAY = {"water_level": 0.004, "water_temp": 0.05, "air_temp": 0.05,
                 "rel_humidity": 0.5, "wind_speed": 0.05, "solar_radiation": 3.0,
                 "soil_moisture": 0.004, "soil_temp": 0.05, "soil_ec": 0.005}
DECIMALS = {"water_level": 3, "water_temp": 2, "battery": 0, "air_temp": 2, "rel_humidity": 1,
            "precipitation": 1, "wind_speed": 1, "wind_direction": 0, "solar_radiation": 0,
            "sunshine_duration": 0, "leaf_wetness": 2, "soil_moisture": 3, "soil_temp": 2,
            "soil_ec": 3}
ROWS_PER_CHUNK = 50_000
_EPISODES, _DAYS, _FLUSH = 1, 2, 3  # random stream keys
Row = tuple[str, str, float, float, float]  # device, metric, time (s), value, received (s)


def _rate(default: float, text: str) -> float:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True, slots=True)
class FaultRates:
    """How often each fault happens; defaults are typical of field deployments (assumption)."""

    gap: float = _rate(0.02, "share of transmissions lost on the way")
    duplicate: float = _rate(0.01, "share of messages published twice")
    spike: float = _rate(0.002, "share of readings (battery aside) replaced by a spike")
    spike_out_of_range: float = _rate(0.5, "share of spikes beyond the physical range")
    stuck: float = _rate(0.01, "stuck-value episodes per device-day (one metric, 6-48 h)")
    drift: float = _rate(0.005, "drift episodes per device-day (one metric, 5-30 days)")
    clock_skew: float = _rate(0.1, "share of SenML devices whose clock is off for 1-10 days")
    offline: float = _rate(0.01, "outages per device-day (2-36 h; SenML devices buffer and "
                                 "flush, LoRaWAN readings are lost)")
    battery_death: float = _rate(0.05, "share of devices whose battery dies in the season")

    def __post_init__(self) -> None:
        for f in fields(self):
            if not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"fault rate {f.name}={getattr(self, f.name)} must be in 0..1")

    @classmethod
    def none(cls) -> FaultRates:
        return cls(**{f.name: 0.0 for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected episode over simulated (unshifted) times. ``value``: the stuck value
    (canonical unit), the drift per day, or the clock offset (s)."""

    device: str
    kind: str  # stuck | drift | clock-skew | offline | battery-death
    start_s: float
    end_s: float
    metric: str | None = None
    value: float = 0.0


def local_midnight(day: date) -> float:
    """Seconds since 1970 of 00:00 Asia/Tokyo on ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(TIMEZONE)).timestamp()


class Fleet:
    """The devices of ``season`` with their faults; messages and rows on demand."""

    def __init__(self, season: Season, *, seed: int, rates: FaultRates | None = None,
                 prefix: str = "sim") -> None:
        self.season, self.seed, self.rates = season, seed, rates or FaultRates()
        hours = next(iter(season.water.values())).times  # hourly, 1 May to 31 October
        self.span = (hours[0].timestamp(), hours[0].timestamp() + len(hours) * HOUR_S)
        self.days = len(hours) // 24
        rng = np.random.default_rng([seed, zlib.crc32(prefix.encode())])
        self.devices: list[Device] = []
        self._truth: dict[str, dict[str, tuple]] = {}
        self._batteries: dict[str, tuple[float, float, float]] = {}
        weather = _weather_truth(season)
        cycle = {p: int(rng.integers(len(t))) for p, t in TRANSPORTS.items()}
        for f in season.fields:
            water, t0 = season.water[f.id], self.span[0]
            if f"{prefix}-ws-{f.block.id}" not in self._truth:
                self._add(rng, cycle, f"{prefix}-ws-{f.block.id}", "weather-station", f.id,
                          weather)
            if rng.random() < PADDY_FIELD_SHARE:
                self._add(rng, cycle, f"{prefix}-pw-{f.id}", "paddy-water", f.id,
                          {"water_level": ("point", t0, water.water_level_m),
                           "water_temp": ("point", t0, water.water_temp_c)})
            if rng.random() < SOIL_FIELD_SHARE:
                theta = THETA_SAT - (THETA_SAT - THETA_DRAINED) * np.clip(
                    water.water_level_m / MIN_LEVEL_M, 0.0, 1.0)
                ec = rng.uniform(*EC_SATURATED_S_M) * (theta / THETA_SAT) ** EC_EXPONENT
                self._add(rng, cycle, f"{prefix}-soil-{f.id}", "soil", f.id,
                          {"soil_moisture": ("point", t0, theta), "soil_ec": ("point", t0, ec),
                           "soil_temp": ("point", t0, _lag(water.water_temp_c, SOIL_TAU_H))})
        self.faults: list[Fault] = [x for d in self.devices for x in self._episodes(d)]
        self._by_device = {d.id: [x for x in self.faults if x.device == d.id]
                           for d in self.devices}
        self.flights = FlightLog(season, seed=seed, prefix=prefix)  # the drones' records

    def _add(self, rng: np.random.Generator, cycle: dict[str, int], device_id: str,
             profile: str, field_id: str, truth: dict[str, tuple]) -> None:
        transport = TRANSPORTS[profile][cycle[profile] % len(TRANSPORTS[profile])]
        cycle[profile] += 1
        base = min(PROFILES[profile].intervals_s.values())
        eui = hashlib.sha256(device_id.encode()).hexdigest()[:16] if transport is T.CHIRPSTACK \
            else None
        cm = (profile == "paddy-water" and transport in (T.SENML, T.SENML_CBOR)
              and rng.random() < LEVEL_IN_CM_SHARE)
        self.devices.append(Device(device_id, profile, field_id, transport, eui,
                                   int(rng.integers(1, base)), base, "cm" if cm else "m"))
        self._truth[device_id] = truth
        rng_b = np.random.default_rng([self.seed, zlib.crc32(device_id.encode()), _EPISODES, 0])
        b0 = float(rng_b.uniform(*BATTERY_START_PCT))
        if rng_b.random() < self.rates.battery_death:  # (start %, use %/day, death s)
            death = float(rng_b.uniform(*self.span))
            battery = b0, (b0 - BATTERY_DEAD_PCT) / ((death - self.span[0]) / DAY_S), death
        else:
            battery = b0, float(rng_b.uniform(*BATTERY_USE_PCT_DAY)), float("inf")
        self._batteries[device_id] = battery

    def device(self, device_id: str) -> Device:
        return next(d for d in self.devices if d.id == device_id)

    def truth(self, device: Device, metric: str, t: np.ndarray) -> np.ndarray:
        """The true value of ``metric`` at simulated times ``t`` (canonical unit)."""
        if metric == "battery":
            b0, use, _ = self._batteries[device.id]
            return b0 - use * (t - self.span[0]) / DAY_S
        kind, t0, y, *tip = self._truth[device.id][metric]
        if kind == "point":
            return np.interp(t, t0 + HOUR_S * (np.arange(y.size) + 0.5), y)
        if kind == "circular":
            mid = t0 + HOUR_S * (np.arange(y.size) + 0.5)
            angle = np.arctan2(np.interp(t, mid, np.sin(y)), np.interp(t, mid, np.cos(y)))
            return np.degrees(angle) % 360.0
        edges, interval = t0 + HOUR_S * np.arange(y.size), PROFILES[device.profile].intervals_s[
            metric]
        c1, c0 = np.interp(t, edges, y), np.interp(t - interval, edges, y)
        if tip[0]:
            return (np.floor(c1 / tip[0]) - np.floor(c0 / tip[0])) * tip[0]
        return (c1 - c0) / (interval if metric == "leaf_wetness" else 1.0)

    def _episodes(self, device: Device) -> list[Fault]:
        """Stuck, drift and offline episodes start as daily Bernoulli draws (an outage does
        not start during another); clock skew and battery death are drawn per device."""
        rng = np.random.default_rng([self.seed, zlib.crc32(device.id.encode()), _EPISODES, 1])
        r, n, out = self.rates, self.days, []
        metrics = [m for m in PROFILES[device.profile].metrics if m != "battery"]
        drifting = [m for m in metrics if m in DRIFT_PER_DAY]
        u, pick = rng.random((3, n)), rng.integers(1 << 30, size=n)
        start = self.span[0] + DAY_S * (np.arange(n) + rng.random(n))
        stuck_s, drift_s = rng.uniform(*STUCK_HOURS, n) * HOUR_S, rng.uniform(*DRIFT_DAYS, n)
        sign, outage_s = rng.choice((-1.0, 1.0), n), rng.uniform(*OFFLINE_HOURS, n) * HOUR_S
        offline_until = -1.0
        for i in range(n):
            t = float(start[i])
            if u[0, i] < r.stuck:
                metric = metrics[pick[i] % len(metrics)]
                value = round(float(self.truth(device, metric, np.array([t]))[0]),
                              DECIMALS[metric])
                out.append(Fault(device.id, "stuck", t, t + float(stuck_s[i]), metric, value))
            if u[1, i] < r.drift:
                metric = drifting[pick[i] % len(drifting)]
                out.append(Fault(device.id, "drift", t, t + float(drift_s[i]) * DAY_S, metric,
                                 float(sign[i]) * DRIFT_PER_DAY[metric]))
            if u[2, i] < r.offline and t > offline_until:
                offline_until = t + float(outage_s[i])
                out.append(Fault(device.id, "offline", t, offline_until))
        if device.transport in (T.SENML, T.SENML_CBOR) and rng.random() < r.clock_skew:
            t = float(rng.uniform(*self.span))
            offset = (9 * HOUR_S + int(rng.integers(1, 60)) if rng.random() < SKEW_TIMEZONE_SHARE
                      else int(rng.choice((-1, 1)) * rng.integers(*SKEW_SMALL_S)))
            out.append(Fault(device.id, "clock-skew", t,
                             t + float(rng.uniform(*SKEW_DAYS)) * DAY_S, None, offset))
        if (death := self._batteries[device.id][2]) < self.span[1]:
            out.append(Fault(device.id, "battery-death", death, self.span[1]))
        return out

    def messages(self, start_s: float, end_s: float, *, shift_s: int = 0,
                 devices: Collection[str] | None = None) -> Iterator[Message]:
        """Messages published in [start_s, end_s) (simulated times), in publish order, with
        every time stamped ``shift_s`` later; of ``devices`` (ids) only, when given."""
        streams = [self._device_messages(d, start_s, end_s, shift_s) for d in self.devices
                   if devices is None or d.id in devices]
        return heapq.merge(*streams, key=lambda m: m[2].publish_s)

    def rows(self, start_s: float, end_s: float) -> list[Row]:
        """What ingest stores of the messages published in [start_s, end_s): the in-range
        readings, each once, received at their publish time."""
        return [row for chunk in self.iter_rows(start_s, end_s) for row in chunk]

    def iter_rows(self, start_s: float, end_s: float, *,
                  chunk_rows: int = ROWS_PER_CHUNK) -> Iterator[list[Row]]:
        """:meth:`rows` in lists of about ``chunk_rows``."""
        chunk: list[Row] = []
        for _, _, meta in self.messages(start_s, end_s):
            if not meta.duplicate:
                chunk += [(meta.device, m, t, v, meta.publish_s)
                          for m, t, v, ok in meta.readings if ok]
                if len(chunk) >= chunk_rows:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk

    def _device_messages(self, dev: Device, start_s: float, end_s: float,
                         shift_s: int) -> Iterator[Message]:
        """Day by day from early enough to hold every outage flushed in the window."""
        faults = self._by_device[dev.id]
        heap: list = []
        seq = itertools.count()
        first = max(int((start_s - OFFLINE_HOURS[1] * HOUR_S - self.span[0]) // DAY_S), 0)
        last = min(int((end_s - self.span[0]) // DAY_S), self.days - 1)
        buffer: list = []
        for day in range(first, last + 1):
            horizon = self.span[0] + (day + 1) * DAY_S
            messages = self._day(dev, day, faults, buffer, shift_s)
            for f in faults:  # an outage over by the end of the day: flush its buffer
                if (f.kind == "offline" and buffer and horizon - DAY_S < f.end_s <= horizon
                        and buffer[0][0] >= f.start_s):
                    messages += self._flush(dev, f, buffer, shift_s)
                    buffer.clear()
            for msg in messages:
                heapq.heappush(heap, (msg[2].publish_s, next(seq), msg))
            while heap and (heap[0][0] < horizon + shift_s or day == last):
                publish, _, msg = heapq.heappop(heap)
                if start_s + shift_s <= publish < end_s + shift_s:
                    yield msg

    def _day(self, dev: Device, day: int, faults: list[Fault], buffer: list,
             shift_s: int) -> list[Message]:
        """One day of ``dev``: its messages; readings of an outage go to ``buffer``."""
        rng = np.random.default_rng([self.seed, zlib.crc32(dev.id.encode()), _DAYS, day])
        t0 = int(self.span[0]) + day * DAY_S
        times = np.arange(t0 + (dev.phase_s - t0) % dev.base_s, t0 + DAY_S, dev.base_s)
        times = times[times < self._batteries[dev.id][2]]
        n = times.size
        lost, latency = rng.random(n) < self.rates.gap, rng.uniform(*LATENCY_S, n)
        dup, dup_delay = rng.random(n) < self.rates.duplicate, rng.uniform(*DUPLICATE_DELAY_S, n)
        columns = []
        for metric, interval in PROFILES[dev.profile].intervals_s.items():
            due = ((times - dev.phase_s) // dev.base_s) % (interval // dev.base_s) == 0
            sent, ok, spiked = self._values(dev, metric, times, faults, rng)
            columns.append((metric, due.tolist(), sent, ok, spiked.tolist()))
        skew, offline = np.zeros(n), np.zeros(n, dtype=bool)
        for f in faults:
            inside = (times >= f.start_s) & (times < f.end_s)
            if f.kind == "clock-skew":
                skew[inside] = f.value
            elif f.kind == "offline":
                offline |= inside
        buffering = offline.tolist() if dev.transport in (T.SENML, T.SENML_CBOR) else [False] * n
        silent, skew_l = (lost | offline).tolist(), skew.tolist()
        latency_l, dup_l, delay_l = latency.tolist(), dup.tolist(), dup_delay.tolist()
        out: list[Message] = []
        for i, t in enumerate(times.tolist()):
            records = [(m, sent[i], ok[i], s[i]) for m, due, sent, ok, s in columns if due[i]]
            if buffering[i]:
                buffer.append((t, t + skew_l[i] + shift_s, records))
            elif not silent[i]:
                out += transmission(dev, [(t + skew_l[i] + shift_s, records)],
                                    t + shift_s + latency_l[i], duplicate=dup_l[i],
                                    delay_s=delay_l[i])
        return out

    def _values(self, dev: Device, metric: str, times: np.ndarray, faults: list[Fault],
                rng: np.random.Generator) -> tuple[list[float], list[bool], np.ndarray]:
        """Sent values (in the sent unit), in-range flags and spike flags at ``times``."""
        spec = METRICS[metric]
        v = self.truth(dev, metric, times.astype(float))
        v = v + NOISE_SD.get(metric, 0.0) * rng.standard_normal(times.size)
        # Drift first, then stuck: a stuck sensor repeats its value even while drifting.
        for f in sorted((f for f in faults if f.metric == metric), key=lambda f: f.kind != "drift"):
            inside = (times >= f.start_s) & (times < f.end_s)
            drifted = v + f.value * (times - f.start_s) / DAY_S
            v = np.where(inside, drifted if f.kind == "drift" else f.value, v)
        v = np.clip(v, spec.low, spec.high)
        u, out_of_range, side, size = rng.random((4, times.size))
        spiked = (u < self.rates.spike) & (metric != "battery")
        span = spec.high - spec.low
        excess = span * np.interp(size, (0.0, 1.0), SPIKE_OUT_SPAN)
        beyond = np.where(side < 0.5, spec.low - excess, spec.high + excess)
        v = np.where(spiked, np.where(out_of_range < self.rates.spike_out_of_range, beyond,
                                      spec.low + size * span), v)
        if metric == "water_level" and dev.level_unit == "cm":
            sent = np.round(v * 100.0, DECIMALS[metric] - 2)
            canonical = sent / 100.0  # as ingest converts it
        else:
            sent = canonical = np.round(v, DECIMALS[metric])
        ok = (canonical >= spec.low) & (canonical <= spec.high)
        return sent.tolist(), ok.tolist(), spiked

    def _flush(self, dev: Device, outage: Fault, buffer: list, shift_s: int) -> list[Message]:
        """The buffer of ``outage`` in packs of FLUSH_PACK_SLOTS, right after reconnecting."""
        rng = np.random.default_rng([self.seed, zlib.crc32(dev.id.encode()), _FLUSH,
                                     int(outage.start_s)])
        out = []
        for k in range(0, len(buffer), FLUSH_PACK_SLOTS):
            slots = [(t_dev, records) for _, t_dev, records in buffer[k:k + FLUSH_PACK_SLOTS]]
            p = outage.end_s + shift_s + RECONNECT_S + FLUSH_SPACING_S * (k // FLUSH_PACK_SLOTS)
            duplicate = bool(rng.random() < self.rates.duplicate)
            out += transmission(dev, slots, p, duplicate=duplicate,
                                delay_s=float(rng.uniform(*DUPLICATE_DELAY_S)), flush=True)
        return out


def _weather_truth(season: Season) -> dict[str, tuple]:
    """Truth series of a weather station, from the season's hourly weather (from 1 January)."""
    wx = season.weather
    t0 = local_midnight(date(wx.year, 1, 1))
    truth = {m: ("point", t0, getattr(wx, m)) for m in
             ("air_temp", "rel_humidity", "wind_speed", "solar_radiation")}
    return truth | {
        "wind_direction": ("circular", t0, np.radians(wx.wind_direction)),
        "precipitation": ("cumulative", t0, np.r_[0.0, np.cumsum(wx.precipitation)], TIP_MM),
        "sunshine_duration": ("cumulative", t0, np.r_[0.0, np.cumsum(wx.sunshine)] * HOUR_S,
                              None),
        "leaf_wetness": ("cumulative", t0, np.r_[0.0, np.cumsum(wx.leaf_wetness)] * HOUR_S,
                         None)}


def _lag(hourly: np.ndarray, tau_h: float) -> np.ndarray:
    """First-order lag of an hourly series (time constant ``tau_h`` hours)."""
    out = np.empty(len(hourly))
    k, state = 1.0 - np.exp(-1.0 / tau_h), float(hourly[0])
    for i, x in enumerate(hourly):
        state += k * (float(x) - state)
        out[i] = state
    return out
