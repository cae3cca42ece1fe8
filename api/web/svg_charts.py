"""Charts drawn on the server as inline SVG: a time series line with a target
band (the shaded area between the band's low and high over time), days on
the time axis in the platform's time zone.

The SVG is accessible (``role="img"``, a ``<title>`` and a ``<desc>`` that
says the numbers in words) and small: coordinates rounded to 0.1 px, one
path per line, adjacent equal band days merged into one rectangle.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from agri.api.web.i18n import gettext
from agri.clock import TZ

LINE = "#0b4f8a"        # the series (8.6:1 on white)
BAND = "#9fd8b4"        # the target band fill
BAND_EDGE = "#2e7d4f"
AXIS = "#333333"
GRID = "#d0d0d0"
OUTSIDE = "#b3261e"     # points outside the band
MAX_GAP = timedelta(hours=3)  # a longer gap between points breaks the line


@dataclass(frozen=True, slots=True)
class BandSpan:
    """The target from ``start`` to ``end`` (UTC-aware), between ``low`` and ``high``."""

    start: datetime
    end: datetime
    low: float
    high: float


def _r(v: float) -> str:
    text = f"{v:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    # A range within rounding noise (a flat series: 5.0 and 5.000000000000001)
    # is drawn as flat: a step below the values' precision would never advance.
    if hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi)):
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + k * step, 10) for k in range(count * 3 + 2)
            if first + k * step <= hi + step * 1e-9]


def _fmt(v: float, digits: int) -> str:
    return f"{v:.{digits}f}"


def _local(t: datetime) -> str:
    return t.astimezone(TZ).strftime("%m-%d %H:%M")


def _in_band(t: datetime, v: float, band: Sequence[BandSpan]) -> bool | None:
    for b in band:
        if b.start <= t < b.end:
            return b.low <= v <= b.high
    return None


def _merge(band: Sequence[BandSpan]) -> list[BandSpan]:
    merged: list[BandSpan] = []
    for b in sorted(band, key=lambda b: b.start):
        last = merged[-1] if merged else None
        if last and last.end == b.start and (last.low, last.high) == (b.low, b.high):
            merged[-1] = BandSpan(last.start, b.end, b.low, b.high)
        else:
            merged.append(b)
    return merged


def time_series(points: Sequence[tuple[datetime, float]], *, title: str, unit: str,
                lang: str, start: datetime, end: datetime,
                band: Sequence[BandSpan] = (), digits: int = 1,
                width: int = 360, height: int = 180) -> Markup:
    """An inline SVG line chart of ``points`` ((time, value), times aware)
    from ``start`` to ``end``, with ``band`` shaded behind it. ``title``
    names the chart; ``unit`` follows the numbers in the description;
    ``digits``: decimals shown."""
    left, right, top, bottom = 34, 8, 8, 22
    pw, ph = width - left - right, height - top - bottom
    pts = sorted((t, v) for t, v in points if v is not None and math.isfinite(v))
    shown = [b for b in band if b.end > start and b.start < end]
    values = [v for _, v in pts] + [x for b in shown for x in (b.low, b.high)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or 0.5
    ticks = _nice_ticks(lo - pad, hi + pad)
    y0, y1 = min(ticks[0], lo - pad), max(ticks[-1], hi + pad)
    t0, span = start.timestamp(), max(1.0, (end - start).total_seconds())

    def x(t: datetime) -> float:
        return left + (min(max(t.timestamp(), t0), t0 + span) - t0) / span * pw

    def y(v: float) -> float:
        return top + (y1 - v) / (y1 - y0) * ph

    ident = "c" + hashlib.blake2s(f"{title}|{start.isoformat()}".encode(),
                                  digest_size=4).hexdigest()
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'class="chart" role="img" aria-labelledby="{ident}-t {ident}-d">',
           f'<title id="{ident}-t">{escape(title)}</title>',
           f'<desc id="{ident}-d">{escape(_describe(pts, shown, title, unit, lang, digits))}'
           f'</desc>']
    for b in _merge(shown):
        bx0, bx1 = x(max(b.start, start)), x(min(b.end, end))
        out.append(f'<rect x="{_r(bx0)}" y="{_r(y(b.high))}" width="{_r(bx1 - bx0)}" '
                   f'height="{_r(max(0.5, y(b.low) - y(b.high)))}" fill="{BAND}" '
                   f'stroke="{BAND_EDGE}" stroke-width="0.5"/>')
    tick_step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    tick_digits = next(d for d in range(6) if abs(round(tick_step, d) - tick_step) < 1e-9
                       or d == 5)
    for v in ticks:
        if y0 <= v <= y1:
            out.append(f'<path d="M{left} {_r(y(v))}H{left + pw}" stroke="{GRID}" '
                       f'stroke-width="0.5"/><text x="{left - 3}" y="{_r(y(v) + 4)}" '
                       f'text-anchor="end">{escape(_fmt(v, tick_digits))}</text>')
    day = start.astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    days = []
    while day <= end:
        if day >= start:
            days.append(day)
        day += timedelta(days=1)  # wall-clock days in the platform's zone
    step = max(1, math.ceil(len(days) / 8))
    for n, d in enumerate(days):
        px = _r(x(d))
        out.append(f'<path d="M{px} {top}V{top + ph}" stroke="{GRID}" stroke-width="0.5"/>')
        if n % step == 0:
            out.append(f'<text x="{px}" y="{height - 6}" text-anchor="middle">'
                       f'{d.month}/{d.day}</text>')
    out.append(f'<path d="M{left} {top}V{top + ph}H{left + pw}" stroke="{AXIS}" fill="none"/>')
    if pts:
        d_parts, prev = [], None
        for t, v in pts:
            cmd = "L" if prev is not None and t - prev <= MAX_GAP else "M"
            d_parts.append(f"{cmd}{_r(x(t))} {_r(y(v))}")
            prev = t
        out.append(f'<path d="{"".join(d_parts)}" stroke="{LINE}" stroke-width="2" '
                   f'fill="none" stroke-linejoin="round"/>')
        lt, lv = pts[-1]
        out.append(f'<circle cx="{_r(x(lt))}" cy="{_r(y(lv))}" r="4" fill="{LINE}"/>')
    else:
        out.append(f'<text x="{_r(left + pw / 2)}" y="{_r(top + ph / 2)}" text-anchor="middle" '
                   f'font-size="14">{escape(gettext(lang, "chart.no_points"))}</text>')
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text and attribute above is escaped


def _describe(pts, band, title, unit, lang, digits) -> str:
    if not pts:
        return gettext(lang, "chart.empty", title=title)
    vals = [v for _, v in pts]

    def n(v: float) -> str:
        return f"{_fmt(v, digits)} {unit}".strip()

    text = gettext(lang, "chart.summary", title=title, min=n(min(vals)), max=n(max(vals)),
                   last=n(vals[-1]), at=_local(pts[-1][0]))
    if band:
        lows, highs = [b.low for b in band], [b.high for b in band]
        text += " " + gettext(lang, "chart.band", low=n(min(lows)), high=n(max(highs)))
        outside = sum(1 for t, v in pts if _in_band(t, v, band) is False)
        text += " " + gettext(lang, "chart.outside", n=outside)
    return text
