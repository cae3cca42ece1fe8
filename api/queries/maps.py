"""The harvest-timing map and the protein map: GeoJSON FeatureCollections of
the fields a user sees, each with what the analytics stored for it.

- harvest map: the harvest window's opening and closing dates, the field's
  place in its municipality's harvest order, and its harvest-timing class 1
  (earliest, red) to 5 (latest, green) from the image that ranked it; a
  field no image ranked gets the class of its window's opening date among
  the municipality's fields in the map (``class_basis`` says which);
- protein map: the latest protein estimate and its class (target up to 6.0
  %, acceptable up to 6.4 %, over above: :mod:`agri.analytics.protein`).

Both take ``municipality`` and ``as_of`` (results as computed up to that
day: the window computed for it or the day before, images taken up to it).
The pages draw the same features as SVG.
"""

from __future__ import annotations

from datetime import date

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from agri.analytics import agronomy as ag
from agri.analytics import maturity, protein
from agri.api.accounts import User
from agri.api.queries.access import FIELD_VISIBLE, who
from agri.clock import TZ

MAX_FEATURES = 5000  # one region's fields; more sets "truncated"
NO_DATA_COLOUR = "#bdbdbd"
# The protein map's colours: on target green, acceptable yellow, over the
# shipping standard red.
PROTEIN_COLOURS = {protein.ProteinClass.TARGET: "#1a9641",
                   protein.ProteinClass.ACCEPTABLE: "#ffffbf",
                   protein.ProteinClass.OVER: "#d7191c"}
LOCAL = TZ.key  # days of the images, as the analytics count them


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def _feature(r: dict, properties: dict) -> dict:
    return {"type": "Feature", "id": r["id"], "geometry": r["geometry"],
            "properties": {"id": r["id"], "name": r["name"],
                           "municipality": r["municipality"], **properties}}


def _collection(features: list[dict], *, limit: int, legend: list[dict], as_of, kind: str
                ) -> dict:
    return {"type": "FeatureCollection", "map": kind, "as_of": _iso(as_of),
            "features": features[:limit], "truncated": len(features) > limit,
            "legend": legend}


async def _rows(conn: AsyncConnection, user: User, query: str, *, municipality: str | None,
                as_of: date | None, limit: int) -> list[dict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, {"municipality": municipality, "as_of": as_of,
                                  "limit": limit + 1, "tz": LOCAL, **who(user)})
        return await cur.fetchall()


_HARVEST = f"""SELECT f.id, f.name, f.municipality, f.geometry, w.computed_for, w.opens,
    w.closes, w.region_order, w.order_basis, m.class AS image_class, m.image_id,
    m.acquired_at
FROM fields f
LEFT JOIN LATERAL (
    SELECT * FROM field_harvest_windows w WHERE w.field_id = f.id
    AND (%(as_of)s::date IS NULL OR w.computed_for <= %(as_of)s)
    ORDER BY w.computed_for DESC LIMIT 1) w ON true
LEFT JOIN LATERAL (
    SELECT m.class, m.image_id, i.acquired_at FROM field_maturity m
    JOIN images i ON i.id = m.image_id
    WHERE m.field_id = f.id AND m.class IS NOT NULL
    AND (%(as_of)s::date IS NULL OR (i.acquired_at AT TIME ZONE %(tz)s)::date <= %(as_of)s)
    AND (w.computed_for IS NULL OR extract(year FROM i.acquired_at AT TIME ZONE %(tz)s)
         = extract(year FROM w.computed_for))
    ORDER BY i.acquired_at DESC NULLS LAST, m.image_id DESC LIMIT 1) m ON true
WHERE {FIELD_VISIBLE} AND (%(municipality)s::text IS NULL OR f.municipality = %(municipality)s)
ORDER BY f.municipality, w.region_order NULLS LAST, f.id LIMIT %(limit)s"""


def _harvest_legend() -> list[dict]:
    return [{"class": c, "colour": colour,
             "label": {"ja": "早い" if c == 1 else "遅い" if c == maturity.HARVEST_CLASSES
                       else "", "en": "earliest" if c == 1 else "latest"
                       if c == maturity.HARVEST_CLASSES else ""}}
            for c, colour in enumerate(maturity.HARVEST_CLASS_COLOURS, start=1)]


def _opening_classes(rows: list[dict]) -> dict[str, int]:
    """Class 1..HARVEST_CLASSES of each field's window opening among the
    fields of its municipality (quantiles of the rank, as the image's map)."""
    classes: dict[str, int] = {}
    towns: dict[str, list[dict]] = {}
    for r in rows:
        if r["opens"] is not None:
            towns.setdefault(r["municipality"], []).append(r)
    for fields in towns.values():
        ordered = sorted(fields, key=lambda r: (r["opens"], r["id"]))
        n = len(ordered)
        for rank, r in enumerate(ordered):
            classes[r["id"]] = 1 + rank * maturity.HARVEST_CLASSES // n
    return classes


async def harvest_features(conn: AsyncConnection, user: User, *,
                           municipality: str | None = None, as_of: date | None = None,
                           limit: int = MAX_FEATURES) -> dict:
    """The harvest-timing map of the fields ``user`` sees (a FeatureCollection;
    each feature's ``colour`` is its class's, grey without one)."""
    rows = await _rows(conn, user, _HARVEST, municipality=municipality, as_of=as_of,
                       limit=limit)
    by_opening = _opening_classes(rows[:limit])
    features = []
    for r in rows:
        if r["image_class"] is not None:
            cls, basis = int(r["image_class"]), "image"
        elif r["id"] in by_opening:
            cls, basis = by_opening[r["id"]], "window"
        else:
            cls, basis = None, None
        features.append(_feature(r, {
            "harvest_window": None if r["computed_for"] is None else {
                "opens": _iso(r["opens"]), "closes": _iso(r["closes"]),
                "computed_for": _iso(r["computed_for"])},
            "order_in_municipality": r["region_order"], "order_basis": r["order_basis"],
            "harvest_class": cls, "class_basis": basis,
            "image": r["image_id"] if basis == "image" else None,
            "colour": NO_DATA_COLOUR if cls is None
            else maturity.HARVEST_CLASS_COLOURS[cls - 1]}))
    return _collection(features, limit=limit, legend=_harvest_legend(), as_of=as_of,
                       kind="harvest")


_PROTEIN = f"""SELECT f.id, f.name, f.municipality, f.geometry, p.protein_pct, p.image_id,
    p.year, p.acquired_at, p.cv_rmse
FROM fields f
LEFT JOIN LATERAL (
    SELECT p.protein_pct, p.image_id, p.year, i.acquired_at, pm.cv_rmse FROM field_protein p
    JOIN images i ON i.id = p.image_id
    LEFT JOIN protein_models pm ON pm.year = p.year AND pm.image_id = p.image_id
    WHERE p.field_id = f.id AND p.protein_pct IS NOT NULL
    AND (%(as_of)s::date IS NULL OR (i.acquired_at AT TIME ZONE %(tz)s)::date <= %(as_of)s)
    ORDER BY i.acquired_at DESC NULLS LAST, p.image_id DESC LIMIT 1) p ON true
WHERE {FIELD_VISIBLE} AND (%(municipality)s::text IS NULL OR f.municipality = %(municipality)s)
ORDER BY f.municipality, f.id LIMIT %(limit)s"""


def protein_legend() -> list[dict]:
    """The protein classes with their limits (% of brown rice at 15 % moisture)."""
    limits = {protein.ProteinClass.TARGET: (None, ag.TARGET_PROTEIN_MAX_PCT),
              protein.ProteinClass.ACCEPTABLE: (ag.TARGET_PROTEIN_MAX_PCT,
                                                ag.SHIPPING_PROTEIN_MAX_PCT),
              protein.ProteinClass.OVER: (ag.SHIPPING_PROTEIN_MAX_PCT, None)}
    labels = {protein.ProteinClass.TARGET: ("目標内", "on target"),
              protein.ProteinClass.ACCEPTABLE: ("出荷基準内", "within the shipping standard"),
              protein.ProteinClass.OVER: ("基準超過", "over the shipping standard")}
    return [{"class": str(c), "above_pct": low, "up_to_pct": high,
             "colour": PROTEIN_COLOURS[c], "label": {"ja": labels[c][0], "en": labels[c][1]}}
            for c, (low, high) in limits.items()]


async def protein_features(conn: AsyncConnection, user: User, *,
                           municipality: str | None = None, as_of: date | None = None,
                           limit: int = MAX_FEATURES) -> dict:
    """The protein map of the fields ``user`` sees (a FeatureCollection)."""
    rows = await _rows(conn, user, _PROTEIN, municipality=municipality, as_of=as_of,
                       limit=limit)
    features = []
    for r in rows:
        pct = r["protein_pct"]
        cls = None if pct is None else protein.protein_class(pct)
        features.append(_feature(r, {
            "protein_pct": None if pct is None else round(pct, 2),
            "protein_class": None if cls is None else str(cls),
            "rmse_pct": r["cv_rmse"], "year": r["year"], "image": r["image_id"],
            "acquired_on": None if r["acquired_at"] is None
            else _iso(r["acquired_at"].astimezone(TZ).date()),
            "colour": NO_DATA_COLOUR if cls is None else PROTEIN_COLOURS[cls]}))
    return _collection(features, limit=limit, legend=protein_legend(), as_of=as_of,
                       kind="protein")
