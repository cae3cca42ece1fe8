"""Checks of decoded records against the device's profile: known metric, value
kind, unit (converted exactly), physical range, and measurement time.

Every reason a reading is turned away, other than undecodable payloads, is
written here, in words a device developer can act on.
"""

from __future__ import annotations

from dataclasses import dataclass

from agri.devices.codecs import Record, RecordError
from agri.devices.profiles import METRICS, ONE, RADIO_METRICS, Metric, Profile, scale

Row = tuple[str, str, float, float, float]  # device_id, metric, time (s), value, received (s)

# A "time" above this is not seconds since 1970 (that would be the year 5138)
# but, most likely, milliseconds.
MILLISECONDS_THRESHOLD = 1e11


@dataclass(frozen=True, slots=True)
class TimeLimits:
    """How far from arrival a measurement time may be (seconds)."""

    max_age_s: float
    max_future_s: float

    @classmethod
    def of(cls, settings) -> TimeLimits:
        """The limits of ``settings`` (AGRI_MAX_AGE_DAYS, AGRI_MAX_FUTURE_S)."""
        return cls(settings.max_age_days * 86_400, settings.max_future_s)


def profile_metrics(profile: Profile) -> dict[str, Metric]:
    """The metrics a device of ``profile`` may send: its own, and radio quality."""
    return {name: METRICS[name] for name in (*profile.metrics, *RADIO_METRICS)}


def time_problem(t: float, *, received: float, limits: TimeLimits) -> str | None:
    """Why a measurement time ``t`` (s) is not accepted, or None when it is."""
    if t > MILLISECONDS_THRESHOLD:
        return f"time {t:.0f} looks like milliseconds; times are seconds since 1970-01-01"
    if t > received + limits.max_future_s:
        return (f"measurement time is {t - received:.0f} s ahead of the server clock "
                f"(at most {limits.max_future_s:.0f} s accepted)")
    if t < received - limits.max_age_s:
        return (f"measurement time is {(received - t) / 86400:.1f} days old "
                f"(at most {limits.max_age_s / 86400:g} days accepted)")
    return None


def validate(records: list[Record], *, device_id: str, profile: Profile,
             metrics: dict[str, Metric], received: float, limits: TimeLimits
             ) -> tuple[list[Row], list[RecordError]]:
    """Rows to store and errors ``(index, reason, record)`` for the rest."""
    rows: list[Row] = []
    errors: list[RecordError] = []
    oldest = received - limits.max_age_s
    newest = received + limits.max_future_s
    for i, rec in enumerate(records):
        name, unit, value, t = rec
        metric = metrics.get(name)
        reason = None
        factor = None
        if metric is None:
            reason = (f"unknown metric {name!r} for profile {profile.name!r}; expected one of "
                      f"{', '.join(profile.metrics) or '(none: this profile sends no readings)'}")
        elif (factor := metric.factor(unit)) is None:
            accepted = ", ".join([metric.unit, *metric.convert])
            reason = f"unit {unit!r} not accepted for {name}; send {accepted}"
        elif type(value) is bool:
            if metric.boolean:
                value = 1.0 if value else 0.0  # true/false, never scaled by a unit
            else:
                reason = f"{name} takes a number (v), not a boolean (vb)"
        elif type(value) is str:
            reason = f"{name} takes a number (v), not text (vs/vd)"
        elif factor is not ONE:
            value = scale(value, factor)
        if reason is None:
            if not metric.low <= value <= metric.high:
                reason = (f"{name} = {value:g} {metric.unit} is outside the physical range "
                          f"{metric.low:g}..{metric.high:g} {metric.unit}")
            elif not oldest <= t <= newest or t > MILLISECONDS_THRESHOLD:
                reason = time_problem(t, received=received, limits=limits)
        if reason is None:
            rows.append((device_id, name, t, value, received))
        else:
            errors.append((i, reason, {"n": name, "u": unit, "v": value, "t": t}))
    return rows, errors
