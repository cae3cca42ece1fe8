"""Checks of decoded records against the device's profile: known metric, value
kind, unit (converted when exact), physical range, and measurement time.

Every reason a reading is turned away, other than undecodable payloads, is
written here, in words a device developer can act on.
"""

from __future__ import annotations

from dataclasses import dataclass

from agri.devices.codecs import Record, RecordError
from agri.devices.profiles import METRICS, Metric, Profile

Row = tuple[str, str, float, float, float]  # device_id, metric, time (s), value, received (s)

# A "time" above this is not seconds since 1970 but (most likely) milliseconds.
MILLISECONDS_THRESHOLD = 1e11


@dataclass(frozen=True, slots=True)
class TimeLimits:
    """How far from arrival a measurement time may be (seconds)."""

    max_age_s: float
    max_future_s: float


def profile_metrics(profile: Profile) -> dict[str, Metric]:
    return {name: METRICS[name] for name in profile.metrics}


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
        if metric is None:
            reason = (f"unknown metric {name!r} for profile {profile.name!r}; expected one of "
                      f"{', '.join(profile.metrics) or '(none: this profile sends no readings)'}")
        elif type(value) is bool:
            if metric.boolean:
                value = 1.0 if value else 0.0
            else:
                reason = f"{name} takes a number (v), not a boolean (vb)"
        elif type(value) is str:
            reason = f"{name} takes a number (v), not text (vs/vd)"
        if reason is None:
            factor = metric.factor(unit)
            if factor is None:
                accepted = ", ".join([metric.unit, *metric.convert])
                reason = f"unit {unit!r} not accepted for {name}; send {accepted}"
            else:
                # Divide by 100 rather than multiply by 0.01: correctly rounded.
                value = value * factor if factor >= 1 else value / round(1 / factor)
                if not metric.low <= value <= metric.high:
                    reason = (f"{name} = {value:g} {metric.unit} is outside the physical range "
                              f"{metric.low:g}..{metric.high:g} {metric.unit}")
                elif t > MILLISECONDS_THRESHOLD:
                    reason = (f"time {t:.0f} looks like milliseconds; SenML times are seconds "
                              f"since 1970-01-01")
                elif t > newest:
                    reason = (f"measurement time is {t - received:.0f} s ahead of the server "
                              f"clock (at most {limits.max_future_s:.0f} s accepted)")
                elif t < oldest:
                    reason = (f"measurement time is {(received - t) / 86400:.1f} days old "
                              f"(at most {limits.max_age_s / 86400:g} days accepted)")
        if reason is None:
            rows.append((device_id, name, t, value, received))
        else:
            errors.append((i, reason, {"n": name, "u": unit, "v": value, "t": t}))
    return rows, errors
