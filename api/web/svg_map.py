"""Field polygons drawn on the server as an inline SVG map.

GeoJSON (lon/lat, RFC 7946) is projected to the SVG box equirectangularly,
longitudes scaled by cos(latitude) at the map's centre: at the scale of a
municipality's fields the distortion is far below a pixel. Each polygon is
filled by a colour function, carries a ``<title>`` (its tooltip and
accessible name) and links to its page.

    polygon_map(features, colour=lambda f: ..., href=lambda f: ...,
                label=lambda f: ..., title="...", lang=lang)

``underlay`` draws something beneath the polygons (a basemap of tiles, for
instance) given the map's ``Projection``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from agri.api.web.i18n import gettext

Feature = dict  # a GeoJSON Feature: {"geometry": Polygon|MultiPolygon, "properties": {...}}
STROKE = "#1f1f1f"


def _rings(geometry: dict) -> list[list[Sequence[float]]]:
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    coords = geometry.get("coordinates") if kind else None
    if kind == "Polygon":
        return list(coords or [])
    if kind == "MultiPolygon":
        return [ring for polygon in coords or [] for ring in polygon]
    return []


@dataclass(frozen=True, slots=True)
class Projection:
    """lon/lat -> SVG pixels of a ``width`` x ``height`` box; ``bounds``
    (lon_min, lat_min, lon_max, lat_max) is what the box shows."""

    bounds: tuple[float, float, float, float]
    scale: float        # pixels per degree of latitude
    kx: float           # cos(latitude at the centre)
    pad: float
    width: int
    height: int

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        lon0, _, _, lat1 = self.bounds
        return (self.pad + (lon - lon0) * self.kx * self.scale,
                self.pad + (lat1 - lat) * self.scale)

    @classmethod
    def fit(cls, features: Sequence[Feature], *, width: int, max_height: int,
            pad: float = 4.0) -> Projection:
        pts = [p for f in features for ring in _rings(f.get("geometry")) for p in ring]
        if not pts:
            return cls((0.0, 0.0, 1.0, 1.0), 1.0, 1.0, pad, width, int(width * 0.6))
        lons, lats = [float(p[0]) for p in pts], [float(p[1]) for p in pts]
        lon0, lon1, lat0, lat1 = min(lons), max(lons), min(lats), max(lats)
        kx = math.cos(math.radians((lat0 + lat1) / 2))
        w_deg = max((lon1 - lon0) * kx, 1e-9)
        h_deg = max(lat1 - lat0, 1e-9)
        scale = min((width - 2 * pad) / w_deg, (max_height - 2 * pad) / h_deg)
        height = math.ceil(h_deg * scale + 2 * pad)
        return cls((lon0, lat0, lon1, lat1), scale, kx, pad, width, height)


def _path(rings: list[list[Sequence[float]]], proj: Projection) -> str:
    parts = []
    for ring in rings:
        prev = None
        cmds = []
        for p in ring:
            x, y = proj.xy(float(p[0]), float(p[1]))
            xy = (round(x, 1), round(y, 1))
            if xy == prev:
                continue  # at this scale the vertex adds nothing
            cmds.append(("M" if not cmds else "L") + f"{xy[0]:g} {xy[1]:g}")
            prev = xy
        if len(cmds) >= 3:
            parts.append("".join(cmds) + "Z")
        elif cmds:  # smaller than a pixel at this scale: still a mark to tap
            x, y = proj.xy(float(ring[0][0]), float(ring[0][1]))
            parts.append(f"M{x - 1.5:.1f} {y - 1.5:.1f}h3v3h-3Z")
    return "".join(parts)


def polygon_map(features: Iterable[Feature], *, colour: Callable[[Feature], str],
                href: Callable[[Feature], str | None], label: Callable[[Feature], str],
                title: str, lang: str, width: int = 360, max_height: int = 480,
                underlay: Callable[[Projection], Markup] | None = None) -> Markup:
    """An inline SVG map of ``features``, each filled with ``colour(f)``,
    named ``label(f)`` and linked to ``href(f)`` (None: no link)."""
    features = [f for f in features if _rings(f.get("geometry"))]
    proj = Projection.fit(features, width=width, max_height=max_height)
    # A map whose fields are links is a group of them, not one image (links
    # inside an image are hidden from screen readers).
    role = "group" if any(href(f) for f in features) else "img"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {proj.width} {proj.height}" '
           f'class="map" role="{role}" aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>",
           f"<desc>{escape(gettext(lang, 'map.summary', n=len(features)))}</desc>"]
    if underlay is not None:
        out.append(str(underlay(proj)))
    for f in features:
        d = _path(_rings(f["geometry"]), proj)
        if not d:
            continue
        shape = (f'<path d="{d}" fill="{escape(colour(f))}" stroke="{STROKE}" '
                 f'stroke-width="0.7"><title>{escape(label(f))}</title></path>')
        link = href(f)
        if link:
            shape = f'<a href="{escape(link)}">{shape}</a>'
        out.append(shape)
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text and attribute above is escaped
