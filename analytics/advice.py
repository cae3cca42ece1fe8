"""Advice rules: a field's results turned into advisories an extension officer
reviews and publishes.

:func:`advise` runs every rule on each :class:`FieldState` and groups the
findings of one kind, municipality and first valid day into one
:class:`Advisory` listing its fields, so that an officer reviews one draft
per topic and region. :func:`advisory_key` is that identity: a re-run for
the same day gives the same keys, so it updates the drafts instead of adding
new ones.

The rules (numbers in :mod:`agri.analytics.agronomy`; when an advisory is
raised is section 11 there):

- cold damage: deep water (WATER_COLD_FORECAST's 10 cm, WATER_SEVERE_COLD_FORECAST's
  15 cm at <= SEVERE_COLD_FORECAST_C) when the recent mean or a forecast day
  up to the end of the cold-sensitive period is <= COLD_FORECAST_C, from
  COLD_ADVICE_LEAD_DAYS before that period starts until it ends;
- heat damage: from heading over CHALKY_DAYS_AFTER_HEADING days when the
  post-heading mean reaches CHALKY_RISK_MEAN_C's lower bound, or when heat
  sterility reaches HEAT_STERILITY_ADVICE_PCT. Published prefectural
  guidance names running water and a later final drainage; the constants
  hold only the earliest final drainage (FINAL_DRAIN_MIN_DAYS_AFTER_HEADING),
  so the text asks in general words for water kept on and cool, and for no
  drainage before that day;
- blast: a favourable or sub-favourable BLASTAM day of the field's station:
  scout BLASTAM_LESION_LAG_DAYS later and consider control;
- harvest: the window opens within HARVEST_ADVICE_LEAD_DAYS, or is open;
  getting machines ready is general wording, not a constant;
- water: below or above the day's band (:mod:`agri.analytics.water_band`)
  for WATER_OFF_TARGET_ADVICE_HOURS;
- mid-season drainage: due within MIDSEASON_ADVICE_LEAD_DAYS, or due and
  the water not drained; "once productive tillers suffice, until small
  cracks" is the wording of the drainage source (agrin.jp);
- sensor check: the quality checks flag a device, or the water level has
  not been seen for WATER_NO_DATA_ADVICE_HOURS.

Evidence holds only JSON values (numbers, strings, ISO dates, lists, dicts),
with one entry per field under ``"fields"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from agri.analytics import agronomy as ag
from agri.analytics.blast import BlastRisk
from agri.analytics.water_band import (
    DEEP_WATER_PHASES,
    LevelState,
    Phase,
    WaterStatus,
    daily_band,
    phase_days,
)
from agri.clock import TZ


class AdviceError(ValueError):
    """The field states cannot be advised on; the message says what to pass."""


class AdviceKind(StrEnum):
    COLD_DAMAGE = "cold-damage"
    HEAT_DAMAGE = "heat-damage"
    BLAST = "blast"
    HARVEST_SOON = "harvest-soon"
    HARVEST_OPEN = "harvest-open"
    WATER_BELOW = "water-below-target"
    WATER_ABOVE = "water-above-target"
    MIDSEASON_DRAINAGE = "midseason-drainage"
    SENSOR_CHECK = "sensor-check"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    URGENT = "urgent"


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.URGENT: 2}


@dataclass(frozen=True, slots=True)
class DeviceIssue:
    """A device of the field that the quality checks flag (``problem``: stuck,
    dead, spike, gap, drift, range, anomaly, ...)."""

    device_id: str
    problem: str
    since: date | None = None
    quality_score: float | None = None


@dataclass(frozen=True, slots=True)
class FieldState:
    """What the analytics know of one field's season on ``as_of`` (a local date).

    Temperatures are daily means in Cel. ``forecast_tmean_c`` maps coming
    days to their expected mean; ``recent_tmean_c`` is the mean of the last
    RECENT_TMEAN_DAYS observed days. ``days_to_sensitive_start`` / ``_end``
    count days from ``as_of`` to the first and last day of the cold-sensitive
    period (negative once passed); when both are None and ``heading`` is
    known, meiosis (MEIOSIS_DAYS_BEFORE_HEADING) is used. ``cold_q_cday`` is
    the cooling degree-days so far in that period. ``post_heading_mean_c`` is
    the mean over the CHALKY_RISK_DAYS after heading (observed and expected).
    ``blast_risk``/``blast_day``: the latest BLASTAM class of the field's
    station and the day it is for. ``water``: :func:`water_band.compare`'s
    result, None without a paddy sensor.
    """

    field_id: str
    municipality: str
    cultivar: str
    as_of: date
    transplanted_on: date
    dvi: float | None = None
    heading: date | None = None
    heading_observed: bool = False
    maturity: date | None = None
    harvest_opens: date | None = None
    harvest_closes: date | None = None
    cold_q_cday: float | None = None
    cold_sterility_pct: float | None = None
    forecast_tmean_c: Mapping[date, float] = field(default_factory=dict)
    recent_tmean_c: float | None = None
    days_to_sensitive_start: int | None = None
    days_to_sensitive_end: int | None = None
    post_heading_mean_c: float | None = None
    heat_sterility_pct: float | None = None
    blast_risk: BlastRisk | None = None
    blast_day: date | None = None
    water: WaterStatus | None = None
    protein_pct: float | None = None
    protein_class: str | None = None
    device_issues: tuple[DeviceIssue, ...] = ()


@dataclass(frozen=True, slots=True)
class Advisory:
    """One draft for an officer: what to do, for which fields, why, and when."""

    kind: AdviceKind
    severity: Severity
    municipality: str
    field_ids: tuple[str, ...]
    reason: str
    evidence: Mapping[str, Any]
    valid_from: date
    valid_until: date
    title_ja: str
    body_ja: str
    title_en: str
    body_en: str


def advisory_key(a: Advisory) -> str:
    """Identity of an advisory across re-runs: kind, municipality, first valid day."""
    return f"{a.kind}:{a.municipality}:{a.valid_from.isoformat()}"


@dataclass(frozen=True, slots=True)
class _Finding:
    """One rule's result for one field."""

    kind: AdviceKind
    severity: Severity
    reason: str
    valid_from: date
    valid_until: date
    evidence: dict[str, Any]


# --- Rules ---------------------------------------------------------------------------------


def _iso(d: date | datetime | None) -> str | None:
    return None if d is None else d.isoformat()


def _num(x: float | None, digits: int = 2) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), digits)


def _sensitive_days(s: FieldState) -> tuple[int, int] | None:
    if s.days_to_sensitive_start is not None and s.days_to_sensitive_end is not None:
        return s.days_to_sensitive_start, s.days_to_sensitive_end
    if s.heading is None:
        return None
    first, last = ag.MEIOSIS_DAYS_BEFORE_HEADING
    to_heading = (s.heading - s.as_of).days
    return to_heading - first, to_heading - last


def _cold(s: FieldState) -> list[_Finding]:
    days = _sensitive_days(s)
    if days is None:
        return []
    start, end = days
    if end < 0 or start > ag.COLD_ADVICE_LEAD_DAYS:
        return []
    period_end = s.as_of + timedelta(days=end)
    forecast = {d: float(t) for d, t in s.forecast_tmean_c.items()
                if s.as_of <= d <= period_end and not math.isnan(float(t))}
    coldest_day = min(forecast, key=lambda d: (forecast[d], d)) if forecast else None
    temps = [t for t in (forecast.get(coldest_day), s.recent_tmean_c)
             if t is not None and not math.isnan(t)]
    if not temps or min(temps) > ag.COLD_FORECAST_C:
        return []
    severe = min(temps) <= ag.SEVERE_COLD_FORECAST_C
    during = start <= 0
    depth = ag.WATER_SEVERE_COLD_FORECAST if severe else ag.WATER_COLD_FORECAST
    reason = (("severe-" if severe else "") + "cold-"
              + ("in" if during else "before") + "-sensitive-period")
    return [_Finding(
        AdviceKind.COLD_DAMAGE, Severity.URGENT if severe or during else Severity.WARNING,
        reason, s.as_of, period_end, {
            "depth_min_m": depth.low_m,
            "coldest_forecast_day": _iso(coldest_day),
            "coldest_forecast_tmean_c": _num(forecast.get(coldest_day)),
            "recent_tmean_c": _num(s.recent_tmean_c),
            "sensitive_start": _iso(s.as_of + timedelta(days=start)),
            "sensitive_end": _iso(period_end),
            "heading": _iso(s.heading), "heading_observed": s.heading_observed,
            "cold_q_cday": _num(s.cold_q_cday),
            "cold_sterility_pct": _num(s.cold_sterility_pct),
            "threshold_c": ag.SEVERE_COLD_FORECAST_C if severe else ag.COLD_FORECAST_C,
        })]


def _heat(s: FieldState) -> list[_Finding]:
    if s.heading is None:
        return []
    since = (s.as_of - s.heading).days
    if not 0 <= since < ag.CHALKY_DAYS_AFTER_HEADING:
        return []
    chalky = (s.post_heading_mean_c is not None and not math.isnan(s.post_heading_mean_c)
              and s.post_heading_mean_c >= ag.CHALKY_RISK_MEAN_C[0])
    sterile = (s.heat_sterility_pct is not None and not math.isnan(s.heat_sterility_pct)
               and s.heat_sterility_pct >= ag.HEAT_STERILITY_ADVICE_PCT)
    if not chalky and not sterile:
        return []
    hot = chalky and s.post_heading_mean_c >= ag.CHALKY_RISK_MEAN_C[1]
    drain_from = s.heading + timedelta(days=ag.FINAL_DRAIN_MIN_DAYS_AFTER_HEADING)
    return [_Finding(
        AdviceKind.HEAT_DAMAGE, Severity.URGENT if hot or sterile else Severity.WARNING,
        "chalky-grain-risk" if chalky else "heat-sterility-risk", s.as_of, drain_from, {
            "post_heading_mean_c": _num(s.post_heading_mean_c),
            "heat_sterility_pct": _num(s.heat_sterility_pct),
            "heading": _iso(s.heading), "heading_observed": s.heading_observed,
            "final_drain_from": _iso(drain_from),
        })]


def _blast(s: FieldState) -> list[_Finding]:
    if s.blast_day is None or s.blast_risk not in (BlastRisk.FAVOURABLE,
                                                   BlastRisk.SUB_FAVOURABLE):
        return []
    first, last = (s.blast_day + timedelta(days=n) for n in ag.BLASTAM_LESION_LAG_DAYS)
    in_season = s.transplanted_on <= s.blast_day and (s.maturity is None
                                                      or s.blast_day < s.maturity)
    if not in_season or not s.blast_day <= s.as_of <= last:
        return []
    favourable = s.blast_risk is BlastRisk.FAVOURABLE
    return [_Finding(
        AdviceKind.BLAST, Severity.WARNING if favourable else Severity.INFO,
        "blastam-favourable" if favourable else "blastam-sub-favourable", s.blast_day, last, {
            "blastam_day": _iso(s.blast_day), "blastam_class": str(s.blast_risk),
            "scout_from": _iso(first), "scout_until": _iso(last),
        })]


def _harvest(s: FieldState) -> list[_Finding]:
    if s.harvest_opens is None:
        return []
    evidence = {"opens": _iso(s.harvest_opens), "closes": _iso(s.harvest_closes),
                "heading": _iso(s.heading), "protein_pct": _num(s.protein_pct),
                "protein_class": s.protein_class}
    until_open = (s.harvest_opens - s.as_of).days
    if 0 < until_open <= ag.HARVEST_ADVICE_LEAD_DAYS:
        return [_Finding(AdviceKind.HARVEST_SOON, Severity.INFO, "harvest-window-opens-soon",
                         s.as_of, s.harvest_opens, evidence)]
    if until_open <= 0 and (s.harvest_closes is None or s.as_of <= s.harvest_closes):
        return [_Finding(AdviceKind.HARVEST_OPEN, Severity.WARNING, "harvest-window-open",
                         s.as_of, s.harvest_closes or s.as_of, evidence)]
    return []


def _water_evidence(w: WaterStatus) -> dict[str, Any]:
    target = w.target
    return {"state": str(w.state), "phase": None if target is None else str(target.phase),
            "low_m": None if target is None else target.low_m,
            "high_m": None if target is None else target.high_m,
            "level_m": _num(w.latest_level_m, 3), "level_at": _iso(w.latest_at),
            "off_target_since": _iso(w.off_target_since),
            "off_target_hours": _num(w.off_target_hours, 1)}


def _water(s: FieldState) -> list[_Finding]:
    w = s.water
    if (w is None or w.target is None or w.target.phase == Phase.MIDSEASON_DRAINAGE
            or w.state not in (LevelState.BELOW, LevelState.ABOVE)
            or w.off_target_hours < ag.WATER_OFF_TARGET_ADVICE_HOURS):
        return []
    below = w.state is LevelState.BELOW
    urgent = below and w.target.phase in DEEP_WATER_PHASES
    return [_Finding(AdviceKind.WATER_BELOW if below else AdviceKind.WATER_ABOVE,
                     Severity.URGENT if urgent else Severity.WARNING,
                     "water-below-band" if below else "water-above-band",
                     s.as_of, s.as_of, _water_evidence(w))]


def _midseason(s: FieldState) -> list[_Finding]:
    if (s.heading is None or s.heading_observed or s.as_of >= s.heading
            or s.heading <= s.transplanted_on):
        return []
    band = daily_band(transplanted_on=s.transplanted_on, heading=s.heading,
                      days=(s.transplanted_on, s.heading))
    span = phase_days(band, Phase.MIDSEASON_DRAINAGE)
    if span is None:
        return []
    first, last = span
    evidence = {"drain_from": _iso(first), "drain_until": _iso(last),
                "heading": _iso(s.heading), "heading_observed": s.heading_observed}
    if first - timedelta(days=ag.MIDSEASON_ADVICE_LEAD_DAYS) <= s.as_of < first:
        return [_Finding(AdviceKind.MIDSEASON_DRAINAGE, Severity.INFO, "midseason-drainage-soon",
                         s.as_of, last, evidence)]
    if first <= s.as_of <= last and (s.water is None or s.water.state != LevelState.INSIDE):
        above = s.water is not None and s.water.state is LevelState.ABOVE
        if s.water is not None:
            evidence |= _water_evidence(s.water)
        return [_Finding(AdviceKind.MIDSEASON_DRAINAGE,
                         Severity.WARNING if above else Severity.INFO,
                         "midseason-drainage-due", s.as_of, last, evidence)]
    return []


def _sensor(s: FieldState) -> list[_Finding]:
    devices = [{"device_id": d.device_id, "problem": d.problem, "since": _iso(d.since),
                "quality_score": _num(d.quality_score)} for d in s.device_issues]
    w = s.water
    silent_h = None
    if w is not None and w.state is LevelState.NO_DATA:
        silent_h = (math.inf if w.latest_at is None
                    else (w.as_of - w.latest_at).total_seconds() / 3600.0)
    silent = silent_h is not None and silent_h >= ag.WATER_NO_DATA_ADVICE_HOURS
    if not devices and not silent:
        return []
    return [_Finding(AdviceKind.SENSOR_CHECK, Severity.WARNING,
                     "device-quality" if devices else "no-water-data", s.as_of, s.as_of, {
                         "devices": devices,
                         "water_silent_hours": (None if not silent or math.isinf(silent_h)
                                                else round(silent_h, 1)),
                         "water_last_at": _iso(w.latest_at) if silent else None,
                     })]


RULES: tuple[Callable[[FieldState], list[_Finding]], ...] = (
    _cold, _heat, _blast, _harvest, _water, _midseason, _sensor)


# --- Texts ---------------------------------------------------------------------------------

_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
              "Dec")


def _ja(d: date) -> str:
    return f"{d.month}月{d.day}日"


def _en(d: date) -> str:
    return f"{d.day} {_MONTHS_EN[d.month - 1]}"


def _span(days: Sequence[date], fmt: Callable[[date], str], sep: str) -> str:
    first, last = min(days), max(days)
    return fmt(first) if first == last else f"{fmt(first)}{sep}{fmt(last)}"


def _ja_span(days: Sequence[date]) -> str:
    return _span(days, _ja, "～")


def _en_span(days: Sequence[date]) -> str:
    return _span(days, _en, " to ")


def _dates(group: Sequence[_Finding], key: str) -> list[date]:
    return [date.fromisoformat(f.evidence[key]) for f in group if f.evidence.get(key)]


def _values(group: Sequence[_Finding], key: str) -> list[float]:
    return [f.evidence[key] for f in group if f.evidence.get(key) is not None]


def _fields(n: int) -> tuple[str, str]:
    return f"対象 {n}圃場。", f"{n} field{'s' if n != 1 else ''}."


def _cm(m: float) -> str:
    return f"{m * 100:.0f}"


def _band_text(low: float, high: float) -> tuple[str, str]:
    if high <= 0:
        return "落水", "drained"
    if low < 0:
        return f"間断かん水 0～{_cm(high)}cm", f"intermittent, 0-{_cm(high)} cm"
    return f"{_cm(low)}～{_cm(high)}cm", f"{_cm(low)}-{_cm(high)} cm"


def _level_at(f: _Finding) -> tuple[str, str]:
    level, at = f.evidence.get("level_m"), f.evidence.get("level_at")
    if level is None or at is None:
        return "", ""
    local = datetime.fromisoformat(at).astimezone(TZ)
    return (f"（最新 {level * 100:.1f}cm、{_ja(local.date())} {local:%H:%M}）",
            f" (latest {level * 100:.1f} cm at {local:%H:%M} on {_en(local.date())})")


Texts = tuple[str, str, str, str]  # title_ja, body_ja, title_en, body_en


def _cold_texts(group: Sequence[_Finding]) -> Texts:
    depth = _cm(max(f.evidence["depth_min_m"] for f in group))
    severe = any(f.reason.startswith("severe") for f in group)
    ja = [f"水深を{depth}cm以上に深くしてください（冷害対策）。"]
    en = [f"Deepen the water to {depth} cm or more (cold damage)."]
    if severe:
        ja.append(f"{ag.SEVERE_COLD_FORECAST_C:.0f}℃以下の低温です。")
        en.append(f"Daily means of {ag.SEVERE_COLD_FORECAST_C:.0f} °C or less.")
    coldest = [f for f in group if f.evidence["coldest_forecast_tmean_c"] is not None]
    if coldest:
        c = min(coldest, key=lambda f: f.evidence["coldest_forecast_tmean_c"]).evidence
        day = date.fromisoformat(c["coldest_forecast_day"])
        ja.append(f"{_ja(day)}の予想平均気温は{c['coldest_forecast_tmean_c']:.1f}℃。")
        en.append(f"Expected daily mean {c['coldest_forecast_tmean_c']:.1f} °C on {_en(day)}.")
    recent = _values(group, "recent_tmean_c")
    if recent:
        ja.append(f"直近{ag.RECENT_TMEAN_DAYS}日の平均気温は{min(recent):.1f}℃。")
        en.append(f"Mean of the last {ag.RECENT_TMEAN_DAYS} days {min(recent):.1f} °C.")
    starts, ends = _dates(group, "sensitive_start"), _dates(group, "sensitive_end")
    if any(f.reason.endswith("before-sensitive-period") for f in group):
        ja.append(f"低温に弱い時期が{_ja_span(starts)}に始まります"
                  f"（出穂予想 {_ja_span(_dates(group, 'heading'))}）。")
        en.append(f"The cold-sensitive period starts on {_en_span(starts)} "
                  f"(heading expected {_en_span(_dates(group, 'heading'))}).")
    else:
        ja.append(f"低温に弱い時期です（{_ja_span(ends)}まで）。")
        en.append(f"The crop is in its cold-sensitive period (until {_en_span(ends)}).")
    sterility = _values(group, "cold_sterility_pct")
    if sterility:
        ja.append(f"推定不稔率は最大{max(sterility):.0f}%。")
        en.append(f"Estimated sterility up to {max(sterility):.0f} %.")
    n_ja, n_en = _fields(len(group))
    return (f"冷害対策：水深{depth}cm以上に", "".join([*ja, n_ja]),
            f"Cold damage: water {depth} cm or deeper", " ".join([*en, n_en]))


def _heat_texts(group: Sequence[_Finding]) -> Texts:
    ja, en = [], []
    means = _values(group, "post_heading_mean_c")
    if means:
        ja.append(f"出穂後{ag.CHALKY_RISK_DAYS}日間の平均気温が{max(means):.1f}℃の見込みで、"
                  "白未熟粒のおそれがあります。")
        en.append(f"The mean temperature of the {ag.CHALKY_RISK_DAYS} days after heading is "
                  f"expected at {max(means):.1f} °C: risk of chalky grain.")
    sterility = [p for p in _values(group, "heat_sterility_pct")
                 if p >= ag.HEAT_STERILITY_ADVICE_PCT]
    if sterility:
        ja.append(f"開花期の高温による不稔が最大{max(sterility):.0f}%と推定されます。")
        en.append(f"Heat sterility at flowering estimated up to {max(sterility):.0f} %.")
    drain = _dates(group, "final_drain_from")
    ja.append("水を切らさず、水温が上がりにくい水管理をしてください。"
              f"落水は出穂後{ag.FINAL_DRAIN_MIN_DAYS_AFTER_HEADING}日"
              f"（{_ja_span(drain)}）より前にしないでください。")
    en.append("Keep the paddy flooded with water that stays cool, and do not drain before "
              f"{ag.FINAL_DRAIN_MIN_DAYS_AFTER_HEADING} days after heading "
              f"({_en_span(drain)}).")
    n_ja, n_en = _fields(len(group))
    return ("高温対策：白未熟粒に注意", "".join([*ja, n_ja]),
            "Heat: risk of chalky grain", " ".join([*en, n_en]))


def _blast_texts(group: Sequence[_Finding]) -> Texts:
    day = date.fromisoformat(group[0].evidence["blastam_day"])
    first = date.fromisoformat(group[0].evidence["scout_from"])
    last = date.fromisoformat(group[0].evidence["scout_until"])
    favourable = sum(f.reason == "blastam-favourable" for f in group)
    sub = len(group) - favourable
    kind_ja = "感染好適日" if favourable else "準好適日"
    kind_en = "favourable" if favourable else "sub-favourable"
    split_ja = f"（好適 {favourable}圃場、準好適 {sub}圃場）" if favourable and sub else ""
    split_en = (f" (favourable for {favourable}, sub-favourable for {sub})"
                if favourable and sub else "")
    n_ja, n_en = _fields(len(group))
    return (f"いもち病：{_ja(day)}は{kind_ja}",
            f"{_ja(day)}はいもち病の{kind_ja}でした（BLASTAM）{split_ja}。"
            f"{_ja(first)}～{_ja(last)}に病斑がないか見回り、防除を検討してください。{n_ja}",
            f"Rice blast: {_en(day)} was {kind_en}",
            f"{_en(day)} was a {kind_en} day for rice blast (BLASTAM){split_en}. Scout for "
            f"lesions from {_en(first)} to {_en(last)} and consider control. {n_en}")


def _harvest_texts(group: Sequence[_Finding]) -> Texts:
    n_ja, n_en = _fields(len(group))
    opens, closes = _dates(group, "opens"), _dates(group, "closes")
    if group[0].kind is AdviceKind.HARVEST_SOON:
        return ("刈取り適期が近づいています",
                f"刈取り適期は{_ja_span(opens)}に始まる見込みです（出穂後の積算気温）。"
                f"刈取りの準備をしてください。{n_ja}",
                "Harvest window opens soon",
                f"The harvest window opens on {_en_span(opens)} (accumulated temperature "
                f"after heading). Get ready to harvest. {n_en}")
    until_ja = f"終わりは{_ja_span(closes)}の見込み" if closes else "終わりは未定"
    until_en = f"closes on {_en_span(closes)}" if closes else "its end is not known yet"
    return ("刈取り適期です",
            f"刈取り適期に入りました（{_ja_span(opens)}から、{until_ja}）。"
            f"適期内に刈り取ってください。{n_ja}",
            "Harvest window open",
            f"The harvest window is open (opened {_en_span(opens)}, {until_en}). "
            f"Harvest within it. {n_en}")


def _water_texts(group: Sequence[_Finding]) -> Texts:
    worst = max(group, key=lambda f: f.evidence["off_target_hours"])
    e = worst.evidence
    band_ja, band_en = _band_text(e["low_m"], e["high_m"])
    at_ja, at_en = _level_at(worst)
    hours = e["off_target_hours"]
    n_ja, n_en = _fields(len(group))
    if worst.kind is AdviceKind.WATER_BELOW:
        deep = any(f.severity is Severity.URGENT for f in group)
        return ("水位が目標より低い",
                f"水位が目標（{band_ja}）より低い状態が{hours:.0f}時間続いています{at_ja}。"
                + ("冷害に備える深水の時期です。" if deep else "") + f"入水してください。{n_ja}",
                "Water below target",
                f"The water has been below its target ({band_en}) for {hours:.0f} hours{at_en}. "
                + ("This is the deep-water period against cold. " if deep else "")
                + f"Let water in. {n_en}")
    if e["high_m"] <= 0:
        return ("落水の時期に水が残っています",
                f"落水の時期ですが、水が{hours:.0f}時間残っています{at_ja}。排水してください。{n_ja}",
                "Water left on a drained paddy",
                f"The paddy should be drained but has held water for {hours:.0f} hours{at_en}. "
                f"Drain it. {n_en}")
    return ("水位が目標より高い",
            f"水位が目標（{band_ja}）より高い状態が{hours:.0f}時間続いています{at_ja}。"
            f"排水してください。{n_ja}",
            "Water above target",
            f"The water has been above its target ({band_en}) for {hours:.0f} hours{at_en}. "
            f"Drain it. {n_en}")


def _midseason_texts(group: Sequence[_Finding]) -> Texts:
    starts, ends = _dates(group, "drain_from"), _dates(group, "drain_until")
    heading = _dates(group, "heading")
    later, earlier = ag.MIDSEASON_DRAIN_DAYS_BEFORE_HEADING
    n_ja, n_en = _fields(len(group))
    when_ja = (f"中干しは{_ja_span(starts)}から{_ja_span(ends)}まで"
               f"（出穂予想 {_ja_span(heading)} の{earlier}～{later}日前）が目安です。")
    when_en = (f"Mid-season drainage is due from {_en_span(starts)} to {_en_span(ends)} "
               f"({earlier} to {later} days before the expected heading, "
               f"{_en_span(heading)}).")
    how_ja = "有効茎数が確保できたら落水し、小さなひび割れが入るまで干してください。"
    how_en = "Once the productive tillers suffice, drain until small cracks appear."
    if any(f.reason == "midseason-drainage-due" for f in group):
        return ("中干しの時期です", f"{when_ja}{how_ja}{n_ja}",
                "Mid-season drainage due", f"{when_en} {how_en} {n_en}")
    return ("中干しの準備", f"{when_ja}{how_ja}{n_ja}",
            "Mid-season drainage soon", f"{when_en} {how_en} {n_en}")


_PROBLEMS_JA = {"stuck": "値が変わらない", "dead": "応答なし", "spike": "急な異常値",
                "gap": "欠測", "drift": "ずれ", "range": "範囲外の値", "anomaly": "他と異なる値"}


def _sensor_texts(group: Sequence[_Finding]) -> Texts:
    devices = sorted({(d["device_id"], d["problem"]) for f in group
                      for d in f.evidence["devices"]})
    ja, en = [], []
    if devices:
        listed_ja = "、".join(f"{d}（{_PROBLEMS_JA.get(p, p)}）" for d, p in devices)
        listed_en = ", ".join(f"{d} ({p})" for d, p in devices)
        ja.append(f"センサー{len({d for d, _ in devices})}台が故障している可能性があります："
                  f"{listed_ja}。")
        en.append(f"{len({d for d, _ in devices})} sensor(s) may be broken: {listed_en}.")
    silent = [f for f in group if f.reason == "no-water-data"]
    if silent:
        hours = [f.evidence["water_silent_hours"] for f in silent
                 if f.evidence["water_silent_hours"] is not None]
        since_ja = f"{max(hours):.0f}時間" if hours else "設置から"
        since_en = f"for {max(hours):.0f} hours" if hours else "since it was installed"
        ja.append(f"水位のデータが{since_ja}届いていない圃場が{len(silent)}あります。")
        en.append(f"No water level {since_en} in {len(silent)} field(s).")
    n_ja, n_en = _fields(len(group))
    return ("センサーを点検してください", f"{''.join(ja)}点検してください。{n_ja}",
            "Check the sensors", f"{' '.join(en)} Please check them. {n_en}")


_TEXTS: Mapping[AdviceKind, Callable[[Sequence[_Finding]], Texts]] = {
    AdviceKind.COLD_DAMAGE: _cold_texts,
    AdviceKind.HEAT_DAMAGE: _heat_texts,
    AdviceKind.BLAST: _blast_texts,
    AdviceKind.HARVEST_SOON: _harvest_texts,
    AdviceKind.HARVEST_OPEN: _harvest_texts,
    AdviceKind.WATER_BELOW: _water_texts,
    AdviceKind.WATER_ABOVE: _water_texts,
    AdviceKind.MIDSEASON_DRAINAGE: _midseason_texts,
    AdviceKind.SENSOR_CHECK: _sensor_texts,
}


# --- Grouping ------------------------------------------------------------------------------


def _check(states: Sequence[FieldState]) -> None:
    seen: set[tuple[str, date]] = set()
    for s in states:
        if isinstance(s.as_of, datetime) or not isinstance(s.as_of, date):
            raise AdviceError(f"field {s.field_id}: pass as_of as a local date, not {s.as_of!r}")
        if (s.field_id, s.as_of) in seen:
            raise AdviceError(f"field {s.field_id} appears twice for {s.as_of}; pass one state "
                              "per field and day")
        seen.add((s.field_id, s.as_of))


def advise(states: Sequence[FieldState]) -> list[Advisory]:
    """Advisories for ``states``: one per kind, municipality and first valid day,
    listing its fields, ordered by first valid day, municipality and kind."""
    _check(states)
    groups: dict[tuple[AdviceKind, str, date], list[tuple[str, _Finding]]] = {}
    for s in states:
        for rule in RULES:
            for f in rule(s):
                groups.setdefault((f.kind, s.municipality, f.valid_from), []).append(
                    (s.field_id, f))
    out = []
    for (kind, municipality, valid_from), members in sorted(groups.items()):
        members.sort(key=lambda m: m[0])
        findings = [f for _, f in members]
        worst = max(findings, key=lambda f: _RANK[f.severity])
        title_ja, body_ja, title_en, body_en = _TEXTS[kind](findings)
        out.append(Advisory(
            kind=kind, severity=worst.severity, municipality=municipality,
            field_ids=tuple(fid for fid, _ in members), reason=worst.reason,
            evidence={"fields": {fid: {"reason": f.reason, "severity": str(f.severity),
                                       **f.evidence} for fid, f in members}},
            valid_from=valid_from, valid_until=max(f.valid_until for f in findings),
            title_ja=title_ja, body_ja=body_ja, title_en=title_en, body_en=body_en))
    return out
