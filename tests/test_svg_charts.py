"""The server's SVG charts and maps: valid XML, the band and the polygons
where they belong, hostile labels escaped, the numbers said in words; the
colour scales and the message catalogue."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from agri.api.web import colours, i18n
from agri.api.web.svg_charts import BAND, LINE, BandSpan, time_series
from agri.api.web.svg_map import Projection, polygon_map
from agri.clock import TZ

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '</title><script>alert("x")</script>&<a href="javascript:1">'


def _parse(markup) -> ET.Element:
    return ET.fromstring(str(markup))  # noqa: S314 - the module's own output


def _week():
    start = datetime(2026, 7, 9, tzinfo=TZ)
    points = [(start + timedelta(hours=h), 4.0 + (h % 24) / 12) for h in range(7 * 24)]
    band = [BandSpan(start + timedelta(days=d), start + timedelta(days=d + 1),
                     3.0 if d < 4 else 5.0, 6.0) for d in range(7)]
    return start, points, band


def test_chart_is_valid_svg_with_band_line_and_description():
    start, points, band = _week()
    svg = time_series(points, title="水位", unit="cm", lang="ja", start=start,
                      end=start + timedelta(days=7), band=band)
    root = _parse(svg)
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "水位"
    desc = root.find(f"{SVG}desc").text
    assert "最小 4.0 cm" in desc and "最大 5.9 cm" in desc and "目標の範囲 3.0 cm〜6.0 cm" in desc
    # Two runs of equal days: two band rectangles, the second higher (narrower) than the first.
    rects = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == BAND]
    assert len(rects) == 2
    ys = [float(r.get("y")) + float(r.get("height")) for r in rects]
    assert ys[1] < ys[0]  # low edge 5 cm sits above 3 cm
    x_end = float(rects[1].get("x")) + float(rects[1].get("width"))
    assert x_end == pytest.approx(360 - 8, abs=0.2)
    lines = [p for p in root.iter(f"{SVG}path") if p.get("stroke") == LINE]
    assert len(lines) == 1 and lines[0].get("d").count("L") == len(points) - 1
    # Day ticks in local time: 7/9 .. 7/15 (and 7/16 at the right edge).
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "7/9" in labels and "7/15" in labels
    # Coordinates rounded: no long decimals.
    assert not re.search(r"\d\.\d{2,}", str(svg))
    assert len(str(svg)) < 8000


def test_chart_counts_points_outside_the_band_and_breaks_gaps():
    start = datetime(2026, 7, 9, tzinfo=TZ)
    band = [BandSpan(start, start + timedelta(days=2), 4.0, 6.0)]
    points = [(start + timedelta(hours=1), 5.0), (start + timedelta(hours=2), 7.0),
              (start + timedelta(hours=12), 3.0), (start + timedelta(hours=13), 5.0)]
    svg = time_series(points, title="Water", unit="cm", lang="en", start=start,
                      end=start + timedelta(days=2), band=band)
    root = _parse(svg)
    assert "2 points outside the range" in root.find(f"{SVG}desc").text
    line = next(p for p in root.iter(f"{SVG}path") if p.get("stroke") == LINE).get("d")
    assert line.count("M") == 2  # a 10-hour gap breaks the line


def test_chart_escapes_hostile_titles_and_says_when_empty():
    start = datetime(2026, 7, 9, tzinfo=UTC)
    svg = time_series([], title=HOSTILE, unit="<b>", lang="ja", start=start,
                      end=start + timedelta(days=1))
    root = _parse(svg)  # still well-formed
    assert "<script>" not in str(svg)
    assert root.find(f"{SVG}title").text == HOSTILE
    assert "データがありません" in root.find(f"{SVG}desc").text
    assert not [p for p in root.iter(f"{SVG}path") if p.get("stroke") == LINE]


@pytest.mark.parametrize("values", [[5.0, 5.000000000000001], [5.0] * 3, [1e9, 1e9 + 1e-7],
                                    [0.0, 5e-324], [-3.2, -3.2000000000000006]])
def test_a_flat_series_is_drawn_at_once(values):
    """Values within rounding noise of each other (a paddy's level reported flat)
    once made the axis's tick loop never end."""
    start = datetime(2026, 7, 9, tzinfo=TZ)
    points = [(start + timedelta(hours=h), v) for h, v in enumerate(values)]
    svg = time_series(points, title="水位", unit="cm", lang="ja", start=start,
                      end=start + timedelta(days=1))
    root = _parse(svg)
    assert [p for p in root.iter(f"{SVG}path") if p.get("stroke") == LINE]


def _square(lon, lat, size=0.001, **props):
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size],
            [lon, lat]]
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


def test_map_projects_polygons_into_the_box_with_links_and_tooltips():
    features = [_square(140.46, 40.60, id="a", name="田A"),
                _square(140.47, 40.61, id="b", name=HOSTILE),
                {"type": "Feature", "properties": {"id": "c"}, "geometry": None}]
    svg = polygon_map(features, colour=lambda f: "#d73027" if f["properties"]["id"] == "a"
                      else "#1a9850", href=lambda f: f"/fields/{f['properties']['id']}",
                      label=lambda f: f["properties"]["name"], title="地図", lang="ja",
                      width=360)
    root = _parse(svg)
    w, h = (float(v) for v in root.get("viewBox").split()[2:])
    assert w == 360 and 0 < h <= 480
    links = list(root.iter(f"{SVG}a"))
    assert [a.get("href") for a in links] == ["/fields/a", "/fields/b"]
    paths = [a.find(f"{SVG}path") for a in links]
    assert [p.get("fill") for p in paths] == ["#d73027", "#1a9850"]
    assert paths[1].find(f"{SVG}title").text == HOSTILE
    assert "<script>" not in str(svg) and 'href="javascript' not in str(svg)
    for p in paths:
        nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", p.get("d"))]
        assert all(-0.1 <= v <= 360.1 for v in nums[0::2])
        assert all(-0.1 <= v <= h + 0.1 for v in nums[1::2])
    # North is up: field b (north-east) is right of and above field a.
    ax, ay = (float(v) for v in paths[0].get("d")[1:].split("L")[0].split())
    bx, by = (float(v) for v in paths[1].get("d")[1:].split("L")[0].split())
    assert bx > ax and by < ay
    assert root.find(f"{SVG}desc").text == "2 枚の田んぼ。"


def test_projection_keeps_ground_proportions():
    # A square of 0.01 deg at 40.6 N is about 0.76 times as wide as it is tall on the ground.
    proj = Projection.fit([_square(140.0, 40.6, size=0.01)], width=1000, max_height=1000, pad=0)
    x0, y0 = proj.xy(140.0, 40.6)
    x1, y1 = proj.xy(140.01, 40.61)
    assert (x1 - x0) / (y0 - y1) == pytest.approx(0.759, abs=0.002)


def test_tiny_polygons_stay_visible_and_links_can_be_left_out():
    features = [_square(140.0, 40.0, size=0.1), _square(140.05, 40.05, size=1e-7)]
    svg = polygon_map(features, colour=lambda f: "#000000", href=lambda f: None,
                      label=lambda f: "x", title="t", lang="en")
    root = _parse(svg)
    assert not list(root.iter(f"{SVG}a"))
    assert len(list(root.iter(f"{SVG}path"))) == 2


def test_harvest_scale_runs_red_to_green_with_labelled_classes():
    first, last = date(2026, 9, 10), date(2026, 9, 24)
    assert colours.harvest(first, first, last) == colours.HARVEST[0]
    assert colours.harvest(last, first, last) == colours.HARVEST[-1]
    assert colours.harvest(None, first, last) == colours.NO_VALUE
    legend = colours.harvest_legend(first, last, "ja")
    assert [s.mark for s in legend] == ["1", "2", "3", "4", "5"]
    assert legend[0].label.startswith("早い 9/10") and legend[-1].label.endswith("9/24")
    # Every day falls in the class whose legend names it.
    for n in range(15):
        day = first + timedelta(days=n)
        k = colours.harvest_class(day, first, last)
        lo, hi = legend[k].label.split()[-1].split("–")
        assert date(2026, *map(int, lo.split("/"))) <= day <= date(2026, *map(int, hi.split("/")))


def test_status_and_protein_swatches_carry_words():
    for name in colours.STATUS:
        for lang in i18n.LANGUAGES:
            s = colours.status(name, lang)
            assert s.label and s.mark and s.colour.startswith("#")
    assert colours.protein("over", "en").label == "Over the standard"
    assert colours.protein(None, "ja").colour == colours.NO_VALUE


def _luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def test_status_colours_keep_white_text_readable():
    for colour, _ in colours.STATUS.values():
        ratio = (1.05) / (_luminance(colour) + 0.05)
        assert ratio >= 4.5, colour


def test_catalogue_has_every_message_in_both_languages():
    ja, en = i18n.MESSAGES["ja"], i18n.MESSAGES["en"]
    assert set(ja) == set(en)
    for key in ja:
        assert set(re.findall(r"{(\w+)}", ja[key])) == set(re.findall(r"{(\w+)}", en[key])), key
