"""Simulated paddies, blocks and farmers in the Tsugaru plain.

Geometry is built in metres in JGD2011 / Japan Plane Rectangular CS X
(EPSG:6678, the zone of Aomori Prefecture) as (easting, northing) and
converted with pyproj to longitude/latitude for GeoJSON (RFC 7946:
lon, lat order; exterior rings counter-clockwise).

The paddies (:func:`make_paddies`: geometry, ids, owners, blocks, municipalities) depend
on the random state alone and stay the same every year; :func:`plan_season` draws each
year's management (cultivar, transplanting date, seedlings, nitrogen, whether the farmer
follows the advice).

A block is a consolidated paddy area (about 30 m x 100 m paddies, as the
land consolidation of the plain laid them out): a farm road down the middle
with an irrigation channel along each side, a row of paddies either side,
and a drainage ditch at the far end of each row. Blocks sit within a few
kilometres of the municipality's approximate centre and may be rotated.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Transformer
from shapely import affinity
from shapely.geometry import Polygon, box
from shapely.geometry.polygon import orient

PLANE_CRS = "EPSG:6678"  # JGD2011 / Japan Plane Rectangular CS X
GEO_CRS = "EPSG:4326"

# Approximate centres (lat, lon) of real municipalities of the Tsugaru plain (their
# offices, rounded); weight = assumed share of simulated blocks. Kanji for display names.
MUNICIPALITIES: dict[str, tuple[float, float, float, str]] = {
    "Hirosaki": (40.603, 140.464, 3.0, "弘前"),
    "Kuroishi": (40.643, 140.595, 1.5, "黒石"),
    "Goshogawara": (40.808, 140.446, 3.0, "五所川原"),
    "Tsugaru": (40.809, 140.380, 2.5, "つがる"),
    "Itayanagi": (40.696, 140.458, 1.5, "板柳"),
    "Fujisaki": (40.656, 140.502, 1.0, "藤崎"),
    "Tsuruta": (40.758, 140.429, 1.5, "鶴田"),
    "Inakadate": (40.631, 140.552, 1.0, "田舎館"),
    "Hirakawa": (40.584, 140.567, 1.5, "平川"),
}
BLOCK_RADIUS_M = (800.0, 3000.0)  # distance of a block from the municipality centre
BLOCK_SPACING_M = 60.0  # minimum gap between blocks' bounding circles
PLACEMENT_ATTEMPTS = 2000  # tries to place a block clear of the others ...
PLACEMENT_ROUND = 100  # ... widening the reach by PLACEMENT_GROWTH after each round
PLACEMENT_GROWTH = 0.1

PADDY_WIDTH_M = (29.0, 31.0)  # along the road
PADDY_LENGTH_M = (98.0, 102.0)  # across it
LEVEE_M = 0.6  # between neighbouring paddies
ROAD_WIDTH_M = 4.0
CHANNEL_WIDTH_M = 1.0  # irrigation channel between road and paddies
DRAIN_WIDTH_M = 1.5  # drainage ditch at the far end of each row
BLOCK_COLUMNS = (5, 10)  # paddies per row (two rows per block)
BLOCK_ROTATION_DEG = 15.0  # blocks are rotated by up to this either way

FIELDS_PER_FARMER = (2, 8)  # inclusive
# Cultivar shares (assumption: Seiten no Hekireki dominant among the simulated growers).
CULTIVAR_WEIGHTS = {"seiten-no-hekireki": 0.55, "tsugaru-roman": 0.25, "masshigura": 0.20}
MAIN_CULTIVAR_SHARE = 0.8  # share of a farmer's fields in their main cultivar
TRANSPLANT_START = (5, 14)  # earliest farmer start (month, day)
TRANSPLANT_START_SPREAD_DAYS = 12  # farmers start within this many days
TRANSPLANT_FIELD_SPREAD_DAYS = 3  # a farmer's fields are planted over a few days
TRANSPLANT_LAST = (5, 31)
FOLLOWS_ADVICE_SHARE = 0.7  # farmers who deepen the water when cold is forecast (assumption)
# Seedlings (assumption): most Aomori growers transplant mid-age seedlings (chubyo, about
# 30-35 days in the nursery), some young ones (chibyo, 20-25 days); one age per farm.
SEEDLING_AGE_DAYS = {"young": (20, 25), "mid-age": (30, 36)}
YOUNG_SEEDLING_SHARE = 0.15
# Total N (kg/10a): Seiten no Hekireki growers keep to the 5-7 kg/10a of
# analytics/agronomy.py section 1;
# growers of the other cultivars apply a little more (assumption).
NITROGEN_KG_PER_10A = {"seiten-no-hekireki": (5.0, 7.0), "tsugaru-roman": (6.0, 8.5),
                       "masshigura": (6.0, 8.5)}
COORDINATE_DECIMALS = 7  # about 1 cm
DEFAULT_YEAR = 2025


@dataclass(frozen=True, slots=True)
class Block:
    """A consolidated block; geometries in EPSG:6678 metres."""

    id: str
    municipality: str
    paddies: tuple[Polygon, ...]  # every paddy of the block, simulated fields or not
    road: Polygon
    channels: tuple[Polygon, ...]
    outline: Polygon  # paddies, road, channels and ditches


@dataclass(frozen=True, slots=True)
class Field:
    """One paddy in one season. ``polygon`` is in EPSG:6678 metres; ``cultivar``,
    ``transplanted_on``, ``follows_advice``, ``nitrogen_kg_per_10a`` (total N applied) and
    ``seedling_age_days`` are the farmer's management of the season."""

    id: str
    name: str
    owner: str
    cultivar: str
    transplanted_on: date
    municipality: str
    block: Block
    polygon: Polygon
    follows_advice: bool
    nitrogen_kg_per_10a: float
    seedling_age_days: int
    soil_seed: int  # the paddy's own soil (its N supply and patches), the same every year


@lru_cache(maxsize=2)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def to_plane(lon: float, lat: float) -> tuple[float, float]:
    """(easting, northing) in EPSG:6678 metres of a lon/lat point."""
    return _transformer(GEO_CRS, PLANE_CRS).transform(lon, lat)


def to_lonlat(polygon: Polygon) -> Polygon:
    """``polygon`` (EPSG:6678) in lon/lat, exterior counter-clockwise."""
    xs, ys = polygon.exterior.coords.xy
    lons, lats = _transformer(PLANE_CRS, GEO_CRS).transform(np.asarray(xs), np.asarray(ys))
    return orient(Polygon(zip(lons, lats, strict=True)), sign=1.0)


def _make_block(rng: np.random.Generator, *, block_id: str, municipality: str,
                taken: list[tuple[float, float, float]]) -> Block:
    lat, lon, _, _ = MUNICIPALITIES[municipality]
    centre_e, centre_n = to_plane(lon, lat)
    columns = int(rng.integers(BLOCK_COLUMNS[0], BLOCK_COLUMNS[1] + 1))
    width = float(rng.uniform(*PADDY_WIDTH_M))
    length = float(rng.uniform(*PADDY_LENGTH_M))
    span_u = columns * width + (columns - 1) * LEVEE_M
    inner = ROAD_WIDTH_M / 2 + CHANNEL_WIDTH_M
    span_v = inner + length + DRAIN_WIDTH_M
    radius = math.hypot(span_u / 2, span_v)
    for attempt in range(PLACEMENT_ATTEMPTS):
        reach = BLOCK_RADIUS_M[1] * (1.0 + PLACEMENT_GROWTH * (attempt // PLACEMENT_ROUND))
        distance = rng.uniform(BLOCK_RADIUS_M[0], reach)
        bearing = rng.uniform(0.0, 2 * math.pi)
        e = centre_e + distance * math.cos(bearing)
        n = centre_n + distance * math.sin(bearing)
        if all(math.hypot(e - te, n - tn) > radius + tr + BLOCK_SPACING_M for te, tn, tr in taken):
            break
    taken.append((e, n, radius))
    angle = float(rng.uniform(-BLOCK_ROTATION_DEG, BLOCK_ROTATION_DEG))

    def place(poly: Polygon) -> Polygon:
        rotated = affinity.rotate(poly, angle, origin=(0.0, 0.0))
        return affinity.translate(rotated, e, n)

    u0 = -span_u / 2
    paddies = []
    for side in (1, -1):
        for col in range(columns):
            u = u0 + col * (width + LEVEE_M)
            v_near, v_far = side * inner, side * (inner + length)
            paddies.append(place(box(u, min(v_near, v_far), u + width, max(v_near, v_far))))
    road = place(box(u0, -ROAD_WIDTH_M / 2, -u0, ROAD_WIDTH_M / 2))
    channels = tuple(place(box(u0, min(a, b), -u0, max(a, b))) for a, b in (
        (ROAD_WIDTH_M / 2, inner), (-ROAD_WIDTH_M / 2, -inner),
        (inner + length, span_v), (-inner - length, -span_v)))
    outline = place(box(u0, -span_v, -u0, span_v))
    return Block(block_id, municipality, tuple(paddies), road, channels, outline)


def _split_counts(rng: np.random.Generator, n: int) -> list[int]:
    low, high = FIELDS_PER_FARMER
    counts: list[int] = []
    while sum(counts) < n:
        counts.append(int(rng.integers(low, high + 1)))
    counts[-1] -= sum(counts) - n
    if counts[-1] < low and len(counts) > 1:
        last = counts.pop()  # (counts[-2] += counts.pop() would index the shortened list)
        counts[-1] += last
    return counts


@dataclass(frozen=True, slots=True)
class Paddy:
    """A paddy and its owner: what stays the same from one season to the next."""

    id: str
    name: str
    owner: str
    municipality: str
    block: Block
    polygon: Polygon
    soil_seed: int


def make_paddies(rng: np.random.Generator, n: int) -> list[Paddy]:
    """``n`` paddies owned by farmers ``farmer-001``... with several adjacent paddies each.

    Paddies of a block left over when the next farmer's fields do not fit
    belong to growers outside the platform: they stay in ``Block.paddies``.
    """
    names = list(MUNICIPALITIES)
    weights = np.array([MUNICIPALITIES[m][2] for m in names])
    paddies: list[Paddy] = []
    taken: list[tuple[float, float, float]] = []
    per_municipality: dict[str, int] = {}
    free: list[Polygon] = []
    block: Block | None = None
    for farmer_no, count in enumerate(_split_counts(rng, n) if n > 0 else [], start=1):
        if block is None or count > len(free):
            municipality = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            per_municipality[municipality] = per_municipality.get(municipality, 0) + 1
            block = _make_block(rng, block_id=f"{municipality.lower()}-"
                                f"{per_municipality[municipality]:02d}",
                                municipality=municipality, taken=taken)
            free = list(block.paddies)
        for _ in range(count):
            polygon = free.pop(0)
            field_no = block.paddies.index(polygon) + 1
            paddies.append(Paddy(
                id=f"{block.id}-{field_no:02d}",
                name=f"{MUNICIPALITIES[block.municipality][3]} {block.id[-2:]}-{field_no:02d}",
                owner=f"farmer-{farmer_no:03d}", municipality=block.municipality, block=block,
                polygon=polygon, soil_seed=int(rng.integers(1 << 62))))
    return paddies


def make_fields(rng: np.random.Generator, n: int, *, year: int = DEFAULT_YEAR) -> list[Field]:
    """``n`` paddies (:func:`make_paddies`) with ``year``'s management.

    The paddies, their ids, owners, blocks and municipalities come from ``rng`` alone, so
    the same generator state gives the same paddies in every year; each year's cultivar,
    transplanting date, seedlings, nitrogen and whether the farmer follows the advice come
    from a stream of that state and ``year``.
    """
    season_key = int(rng.integers(1 << 62))
    paddies = make_paddies(rng, n)
    return plan_season(paddies, np.random.default_rng([season_key, year]), year=year)


def plan_season(paddies: list[Paddy], rng: np.random.Generator, *, year: int) -> list[Field]:
    """Each farmer's management of their paddies in ``year``."""
    cultivars = list(CULTIVAR_WEIGHTS)
    shares = np.array(list(CULTIVAR_WEIGHTS.values()))
    planted_so_far = np.zeros(len(cultivars))
    farms: dict[str, list[Paddy]] = {}
    for p in paddies:
        farms.setdefault(p.owner, []).append(p)
    fields: list[Field] = []
    for owned in farms.values():
        count = len(owned)
        # A farmer's main cultivar is the one furthest behind its share, so the shares of
        # a season stay near CULTIVAR_WEIGHTS whatever the farm sizes.
        behind = shares * (planted_so_far.sum() + count) - planted_so_far
        main = cultivars[int(np.argmax(behind + rng.uniform(0.0, 1.0, len(cultivars))))]
        follows = bool(rng.random() < FOLLOWS_ADVICE_SHARE)
        start = date(year, *TRANSPLANT_START) + timedelta(
            days=int(rng.integers(0, TRANSPLANT_START_SPREAD_DAYS + 1)))
        habit = float(rng.uniform(0.0, 1.0))  # the farmer's place within the N range
        low_age, high_age = (SEEDLING_AGE_DAYS["young"] if rng.random() < YOUNG_SEEDLING_SHARE
                             else SEEDLING_AGE_DAYS["mid-age"])
        age = int(rng.integers(low_age, high_age + 1))
        for paddy in owned:
            cultivar = (main if rng.random() < MAIN_CULTIVAR_SHARE
                        else cultivars[int(rng.integers(len(cultivars)))])
            planted = min(start + timedelta(days=int(rng.integers(
                0, TRANSPLANT_FIELD_SPREAD_DAYS + 1))), date(year, *TRANSPLANT_LAST))
            planted_so_far[cultivars.index(cultivar)] += 1
            low, high = NITROGEN_KG_PER_10A[cultivar]
            share = float(np.clip(habit + rng.normal(0.0, 0.15), 0.0, 1.0))
            fields.append(Field(
                id=paddy.id, name=paddy.name, owner=paddy.owner, cultivar=cultivar,
                transplanted_on=planted, municipality=paddy.municipality, block=paddy.block,
                polygon=paddy.polygon, follows_advice=follows,
                nitrogen_kg_per_10a=round(low + share * (high - low), 1),
                seedling_age_days=age, soil_seed=paddy.soil_seed,
            ))
    return fields


def fields_geojson(fields: list[Field]) -> dict[str, Any]:
    """RFC 7946 FeatureCollection of the fields for ``agri fields import``."""
    features = []
    for f in fields:
        ring = [[round(x, COORDINATE_DECIMALS), round(y, COORDINATE_DECIMALS)]
                for x, y in to_lonlat(f.polygon).exterior.coords]
        features.append({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {
                "id": f.id, "name": f.name, "owner": f.owner, "cultivar": f.cultivar,
                "transplanted_on": f.transplanted_on.isoformat(),
                "municipality": f.municipality,
            },
        })
    return {"type": "FeatureCollection", "features": features}


def write_fields_geojson(fields: list[Field], path: Path) -> Path:
    """Write :func:`fields_geojson` to ``path`` as UTF-8 and return the path."""
    path = Path(path)
    path.write_text(json.dumps(fields_geojson(fields), ensure_ascii=False, indent=1),
                    encoding="utf-8")
    return path
