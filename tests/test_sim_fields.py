"""Simulated fields: valid RFC 7946 GeoJSON in the Tsugaru plain, importable as DESIGN.md says."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer
from shapely.geometry import Polygon, shape

from agri.simulator.fields import fields_geojson, make_fields, write_fields_geojson

YEAR = 2025
# Tsugaru plain, roughly (lon, lat).
LON_RANGE = (140.2, 140.7)
LAT_RANGE = (40.5, 41.0)
# Real municipalities of the Tsugaru plain (Aomori Prefecture).
TSUGARU_MUNICIPALITIES = {"Hirosaki", "Kuroishi", "Goshogawara", "Tsugaru", "Itayanagi",
                          "Fujisaki", "Tsuruta", "Inakadate", "Hirakawa", "Nakadomari",
                          "Owani", "Nishimeya", "Ajigasawa"}
CULTIVARS = {"seiten-no-hekireki", "tsugaru-roman", "masshigura"}
PROPERTIES = {"id", "name", "owner", "cultivar", "transplanted_on", "municipality"}


@pytest.fixture(scope="module")
def collection() -> dict:
    return fields_geojson(make_fields(np.random.default_rng(7), 120, year=YEAR))


def _signed_area(ring: list[list[float]]) -> float:
    xs, ys = np.array(ring).T
    return 0.5 * float(np.sum(xs[:-1] * ys[1:] - xs[1:] * ys[:-1]))


def test_feature_collection_is_rfc7946(collection: dict) -> None:
    assert collection["type"] == "FeatureCollection"
    assert "crs" not in collection
    assert len(collection["features"]) == 120
    for feature in collection["features"]:
        assert feature["type"] == "Feature"
        geometry = feature["geometry"]
        assert geometry["type"] == "Polygon"
        (ring,) = geometry["coordinates"]
        assert ring[0] == ring[-1] and len(ring) >= 4
        assert _signed_area(ring) > 0  # exterior ring counter-clockwise
        for lon, lat in ring:  # lon, lat order inside the plain
            assert LON_RANGE[0] < lon < LON_RANGE[1]
            assert LAT_RANGE[0] < lat < LAT_RANGE[1]
        assert shape(geometry).is_valid


def test_paddies_are_about_30_by_100_m(collection: dict) -> None:
    to_plane = Transformer.from_crs("EPSG:4326", "EPSG:6678", always_xy=True)
    polygons = []
    for feature in collection["features"]:
        (ring,) = feature["geometry"]["coordinates"]
        lon, lat = np.array(ring).T
        polygons.append(Polygon(zip(*to_plane.transform(lon, lat), strict=True)))
    areas = np.array([p.area for p in polygons])
    assert ((areas > 2800) & (areas < 3200)).all()
    sides = [sorted({round(np.hypot(*np.subtract(a, b))) for a, b in
                     zip(p.exterior.coords[:-1], p.exterior.coords[1:], strict=True)})
             for p in polygons]
    assert all(29 <= s[0] <= 31 and 98 <= s[-1] <= 102 for s in sides)
    for i, a in enumerate(polygons):  # no two paddies overlap
        for b in polygons[i + 1:]:
            assert a.intersection(b).area < 1.0


def test_properties_are_exactly_the_import_format(collection: dict) -> None:
    ids = []
    for feature in collection["features"]:
        props = feature["properties"]
        assert set(props) == PROPERTIES
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", props["id"])
        assert re.fullmatch(r"farmer-\d{3}", props["owner"])
        assert props["cultivar"] in CULTIVARS
        assert props["municipality"] in TSUGARU_MUNICIPALITIES
        assert props["name"]
        planted = date.fromisoformat(props["transplanted_on"])
        assert date(YEAR, 5, 10) <= planted <= date(YEAR, 5, 31)
        ids.append(props["id"])
    assert len(set(ids)) == len(ids)


def test_farmers_own_several_fields_in_one_municipality(collection: dict) -> None:
    owners = Counter(f["properties"]["owner"] for f in collection["features"])
    assert len(owners) >= 10
    assert min(owners.values()) >= 2
    places: dict[str, set[str]] = {}
    for f in collection["features"]:
        places.setdefault(f["properties"]["owner"], set()).add(f["properties"]["municipality"])
    assert all(len(p) == 1 for p in places.values())
    cultivars = Counter(f["properties"]["cultivar"] for f in collection["features"])
    assert cultivars.most_common(1)[0][0] == "seiten-no-hekireki"
    assert set(cultivars) == CULTIVARS
    planted = {f["properties"]["transplanted_on"] for f in collection["features"]}
    assert len(planted) >= 8  # spread over mid to late May


def test_written_file_round_trips(tmp_path: Path) -> None:
    fields = make_fields(np.random.default_rng(3), 15, year=YEAR)
    path = write_fields_geojson(fields, tmp_path / "fields.geojson")
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded == json.loads(json.dumps(fields_geojson(fields)))
    again = make_fields(np.random.default_rng(3), 15, year=YEAR)
    assert fields_geojson(again) == loaded  # same seed, same fields


def test_farmers_keep_their_paddies_from_year_to_year() -> None:
    seasons = {year: make_fields(np.random.default_rng(7), 60, year=year)
               for year in (2023, 2024, 2025)}
    base = seasons[2025]
    for year, fields in seasons.items():
        assert [(f.id, f.name, f.owner, f.municipality, f.block.id) for f in fields] == [
            (f.id, f.name, f.owner, f.municipality, f.block.id) for f in base], year
        assert all(a.polygon.equals_exact(b.polygon, 1e-9) for a, b in
                   zip(fields, base, strict=True))
        assert all(f.transplanted_on.year == year for f in fields)
    # What the farmers decide changes from one year to the next.
    for field in ("cultivar", "nitrogen_kg_per_10a"):
        assert [getattr(f, field) for f in seasons[2024]] != [getattr(f, field) for f in base]
    assert [f.transplanted_on.timetuple().tm_yday for f in seasons[2024]] != [
        f.transplanted_on.timetuple().tm_yday for f in base]
    assert len({f.seedling_age_days for f in base}) > 1


def test_a_season_of_a_seed_has_the_same_paddies_in_every_year(tmp_path: Path) -> None:
    from agri.simulator.season import season_fields

    a = season_fields(fields=30, seed=5, year=2022)
    b = season_fields(fields=30, seed=5, year=2026)
    assert [(f.id, f.owner, f.polygon.wkb) for f in a] == [(f.id, f.owner, f.polygon.wkb)
                                                          for f in b]
    assert [f.id for f in season_fields(fields=30, seed=6, year=2022)] != [f.id for f in a] or [
        f.polygon.wkb for f in season_fields(fields=30, seed=6, year=2022)] != [
        f.polygon.wkb for f in a]


def test_every_farm_size_splits() -> None:
    for n in range(1, 30):
        for seed in range(30):
            fields = make_fields(np.random.default_rng(seed), n, year=YEAR)
            assert len(fields) == n
