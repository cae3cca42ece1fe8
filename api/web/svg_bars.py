"""Horizontal bar charts drawn on the server as inline SVG, for counts: one
bar per label, its number written at its end (nothing said by length
alone), a ``<title>`` and a ``<desc>`` listing every bar in words.

Horizontal bars keep long Japanese labels readable at phone width: each
label sits on its own line above its bar.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from markupsafe import Markup, escape

BAR = "#0b4f8a"   # 8.6:1 on white
TEXT = "#111111"
ROW_PX, BAR_PX, LABEL_PX = 44, 18, 16


def _number(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def bar_chart(bars: Sequence[tuple[str, float]], *, title: str, unit: str = "",
              digits: int = 0, width: int = 360) -> Markup:
    """An inline SVG of ``bars`` ((label, value), values >= 0) scaled to the
    largest; ``unit`` follows each number; ``digits``: decimals shown."""
    values = [max(0.0, float(v)) for _, v in bars]
    top = max(values, default=0.0) or 1.0
    right = 64  # room for the number after the longest bar
    height = max(ROW_PX, ROW_PX * len(bars) + 4)
    ident = "b" + hashlib.blake2s(title.encode(), digest_size=4).hexdigest()
    described = "; ".join(f"{label}: {_number(v, digits)}{unit}" for (label, _), v
                          in zip(bars, values, strict=True))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'class="chart" role="img" aria-labelledby="{ident}-t {ident}-d">',
           f'<title id="{ident}-t">{escape(title)}</title>',
           f'<desc id="{ident}-d">{escape(described or "-")}</desc>']
    for n, ((label, _), v) in enumerate(zip(bars, values, strict=True)):
        y = n * ROW_PX
        length = (width - right) * v / top
        out.append(f'<text x="0" y="{y + LABEL_PX - 2}" fill="{TEXT}" font-size="13">'
                   f'{escape(label)}</text>')
        out.append(f'<rect x="0" y="{y + LABEL_PX + 2}" width="{max(length, 1.0):.1f}" '
                   f'height="{BAR_PX}" fill="{BAR}"/>')
        out.append(f'<text x="{length + 4:.1f}" y="{y + LABEL_PX + BAR_PX - 2}" fill="{TEXT}" '
                   f'font-size="14" font-weight="700">{escape(_number(v, digits) + unit)}</text>')
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every value above is escaped
