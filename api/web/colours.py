"""The colour scales of the pages and maps, one place.

Each colour is also named in words (a legend entry and the text beside it),
so nothing is said by colour alone. Status colours follow the Okabe-Ito
palette (told apart with the common colour-vision deficiencies), darkened to
keep 4.5:1 against white; harvest dates run red (earliest) to green (latest)
as the prefecture's harvest-timing maps do, through yellow, so that the
order also shows in lightness; protein classes use a blue-orange scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from agri.api.queries.field_status import LABELS
from agri.api.web.i18n import gettext


@dataclass(frozen=True, slots=True)
class Swatch:
    colour: str      # "#rrggbb"
    label: str       # words for the legend and the tooltip
    mark: str = ""   # a symbol shown beside the colour (not colour alone)


# A field's status (api/queries/field_status.py names it) -> (colour, mark).
STATUS = {
    "green": ("#00795c", "✓"),
    "yellow": ("#a35200", "!"),
    "red": ("#b3261e", "‼"),
    "grey": ("#5c6670", "?"),
}
STATUS_ORDER = ("red", "yellow", "grey", "green")  # most urgent first

# Red (earliest) to green (latest), five classes (ColorBrewer RdYlGn).
HARVEST = ("#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850")

PROTEIN = {"target": "#2166ac", "acceptable": "#92c5de", "over": "#e66101"}
NO_VALUE = "#bdbdbd"


def status(name: str, lang: str) -> Swatch:
    colour, mark = STATUS[name]
    return Swatch(colour, LABELS[name][lang], mark)


def status_legend(lang: str) -> list[Swatch]:
    return [status(name, lang) for name in reversed(STATUS_ORDER)]


def harvest_class(day: date, first: date, last: date) -> int:
    """0 (earliest) .. len(HARVEST)-1 (latest) of ``day`` between ``first`` and ``last``."""
    span = (last - first).days
    if span <= 0:
        return 0
    n = len(HARVEST)
    return min(n - 1, max(0, (day - first).days * n // (span + 1)))


def harvest(day: date | None, first: date, last: date) -> str:
    return NO_VALUE if day is None else HARVEST[harvest_class(day, first, last)]


def harvest_legend(first: date, last: date, lang: str) -> list[Swatch]:
    """One entry per class with its dates, "1 早い 9/10–9/13" .. "5 遅い ..."."""
    span = max(0, (last - first).days)
    n = len(HARVEST)
    entries = []
    for k, colour in enumerate(HARVEST):
        lo = first.toordinal() + -(-k * (span + 1) // n)
        hi = first.toordinal() + -(-(k + 1) * (span + 1) // n) - 1
        if hi < lo:
            continue
        a, b = date.fromordinal(lo), date.fromordinal(hi)
        words = f"{a.month}/{a.day}–{b.month}/{b.day}"
        if k == 0:
            words = f"{gettext(lang, 'harvest.early')} {words}"
        elif k == n - 1:
            words = f"{gettext(lang, 'harvest.late')} {words}"
        entries.append(Swatch(colour, words, str(k + 1)))
    return entries


def protein(name: str | None, lang: str) -> Swatch:
    if name not in PROTEIN:
        return Swatch(NO_VALUE, gettext(lang, "value.none"), "?")
    return Swatch(PROTEIN[name], gettext(lang, f"protein.{name}"))


def protein_legend(lang: str) -> list[Swatch]:
    return [protein(name, lang) for name in PROTEIN]
