"""The GSI standard map (地理院タイル 標準地図) as an optional basemap under the
server-drawn field map: ``<image>`` tiles placed with the map's projection.

Only drawn when the officer asks for it (the tiles come from the GSI tile
server, so the page then needs the network); the page shows the attribution
the GSI terms ask for (出典：国土地理院) with a link to the tile list. The
tiles are Web Mercator; inside one tile the map's equirectangular projection
differs from it by far less than a pixel at the zooms used here.
"""

from __future__ import annotations

import math

from markupsafe import Markup, escape

from agri.api.web.svg_map import Projection

TILE_URL = "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png"
TILE_ORIGIN = "https://cyberjapandata.gsi.go.jp"
TILE_LIST_URL = "https://maps.gsi.go.jp/development/ichiran.html"
MIN_ZOOM, MAX_ZOOM = 5, 18  # the standard map's zoom levels
TILE_PX = 256
MAX_TILES = 36  # more would make the page heavy on a weak signal: zoom out


def _tile_x(lon: float, z: int) -> float:
    return (lon + 180.0) / 360.0 * 2 ** z


def _tile_y(lat: float, z: int) -> float:
    lat = max(min(lat, 85.0511), -85.0511)
    r = math.radians(lat)
    return (1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * 2 ** z


def _lon(x: float, z: int) -> float:
    return x / 2 ** z * 360.0 - 180.0


def _lat(y: float, z: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / 2 ** z))))


def zoom_for(proj: Projection) -> int:
    """The zoom at which a tile is drawn about TILE_PX wide on the map."""
    px_per_degree = proj.scale * proj.kx
    z = round(math.log2(max(px_per_degree * 360.0 / TILE_PX, 1.0)))
    return max(MIN_ZOOM, min(MAX_ZOOM, z))


def tiles(proj: Projection) -> list[tuple[int, int, int]]:
    """(z, x, y) of the tiles covering what the map shows, at most MAX_TILES."""
    lon0, _, _, lat1 = proj.bounds  # the box is fitted from its north-west corner
    # What the box shows, padding included.
    pad_deg = proj.pad / proj.scale
    west, east = lon0 - pad_deg / proj.kx, lon0 + (proj.width - proj.pad) / (proj.scale * proj.kx)
    north, south = lat1 + pad_deg, lat1 - (proj.height - proj.pad) / proj.scale
    z = zoom_for(proj)
    while True:
        x0, x1 = int(_tile_x(west, z)), int(_tile_x(east, z))
        y0, y1 = int(_tile_y(north, z)), int(_tile_y(south, z))
        if (x1 - x0 + 1) * (y1 - y0 + 1) <= MAX_TILES or z <= MIN_ZOOM:
            break
        z -= 1
    return [(z, x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)][:MAX_TILES]


def underlay(proj: Projection) -> Markup:
    """The tiles as SVG ``<image>`` elements (decorative: the map's paths carry
    the meaning)."""
    out = ['<g class="basemap" aria-hidden="true">']
    for z, x, y in tiles(proj):
        left, top = proj.xy(_lon(x, z), _lat(y, z))
        right, bottom = proj.xy(_lon(x + 1, z), _lat(y + 1, z))
        href = TILE_URL.format(z=z, x=x, y=y)
        out.append(f'<image href="{escape(href)}" x="{left:.1f}" y="{top:.1f}" '
                   f'width="{right - left:.1f}" height="{bottom - top:.1f}" '
                   f'preserveAspectRatio="none"/>')
    out.append("</g>")
    return Markup("".join(out))  # noqa: S704 - every value above is escaped
