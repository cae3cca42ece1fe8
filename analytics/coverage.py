"""Exact fraction of each raster cell covered by a polygon.

Work in pixel coordinates (column, row), where every cell is a unit square:
an affine geotransform keeps ratios of areas, so a fraction there is the
fraction on the ground. Every polygon edge is cut at the grid lines; each
piece lies in one cell and, with its signed height ``dy`` and its mean
position ``u_mid`` across the cell, adds ``dy * (c + 1 - u_mid)`` to that cell
``c`` (the area of the cell's strip to the right of the piece) and the rest
of ``dy`` to the cell on its right. A running sum along each row then holds,
in every cell, the exact area of the polygon inside it: interior cells 1,
exterior 0, edge cells their fraction (the accumulation of exact-area scan
converters). Holes and multipolygons need nothing special, as the rings'
orientations cancel. Cost: one entry per piece of boundary plus one running
sum over the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from rasterio.transform import Affine
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

SNAP = 1e-9  # a running sum this close to 0 or 1 is 0 or 1 (its rounding)


@dataclass(frozen=True, slots=True)
class Coverage:
    """A polygon prepared over its window of a ``height`` x ``width`` raster.

    The window is rows ``r0:r1`` and columns ``c0:c1`` (the polygon's bounds,
    clipped to the raster); ``area`` is the polygon's area in cells,
    including any part outside the raster.
    """

    r0: int
    r1: int
    c0: int
    c1: int
    area: float
    rows: np.ndarray  # accumulation entries, sorted by row in the window ...
    cols: np.ndarray  # ... column in the window, 0..width ...
    values: np.ndarray  # ... and signed area

    def fractions(self, row_start: int | None = None, row_stop: int | None = None
                  ) -> np.ndarray:
        """Coverage of the window's cells (float64, rows x columns), for the
        raster rows ``row_start:row_stop`` (default: the whole window)."""
        row_start = self.r0 if row_start is None else row_start
        row_stop = self.r1 if row_stop is None else row_stop
        width = self.c1 - self.c0
        a, b = row_start - self.r0, row_stop - self.r0
        lo, hi = np.searchsorted(self.rows, [a, b])
        flat = (self.rows[lo:hi] - a) * (width + 1) + self.cols[lo:hi]
        acc = np.bincount(flat, weights=self.values[lo:hi], minlength=(b - a) * (width + 1))
        out = np.cumsum(acc.reshape(b - a, width + 1), axis=1)[:, :width]
        out[out < SNAP] = 0.0
        out[out > 1.0 - SNAP] = 1.0
        return out


def _edges(geom: BaseGeometry) -> tuple[np.ndarray, float]:
    """Edges (u0, v0, u1, v1) of every ring that are not horizontal, and the
    signed area (exteriors one way, holes the other)."""
    rings = []
    for poly in getattr(geom, "geoms", [geom]):
        poly = orient(poly, sign=1.0)
        rings.append(np.asarray(poly.exterior.coords))
        rings.extend(np.asarray(r.coords) for r in poly.interiors)
    edges = np.concatenate([np.column_stack((r[:-1], r[1:])) for r in rings])
    u0, v0, u1, v1 = edges.T
    signed_area = 0.5 * float(np.sum(u0 * v1 - u1 * v0))
    return edges[v0 != v1], signed_area


def _pieces(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut the edges at every grid line: (row, column, dy, u_mid) of each piece."""
    u0, v0, u1, v1 = edges.T
    n = len(edges)
    idx = np.arange(n)
    ts, owners = [np.zeros(n), np.ones(n)], [idx, idx]
    for a0, a1 in ((u0, u1), (v0, v1)):
        first = np.floor(np.minimum(a0, a1)) + 1.0
        count = np.maximum(np.ceil(np.maximum(a0, a1)) - first, 0).astype(np.int64)
        total = int(count.sum())
        if total:
            owner = np.repeat(idx, count)
            k = np.repeat(first, count) + (np.arange(total) - np.repeat(np.cumsum(count) - count,
                                                                        count))
            with np.errstate(divide="ignore", invalid="ignore"):
                ts.append((k - a0[owner]) / (a1 - a0)[owner])
            owners.append(owner)
    t = np.concatenate(ts)
    e = np.concatenate(owners)
    order = np.lexsort((t, e))
    t, e = t[order], e[order]
    same = e[1:] == e[:-1]
    ta, tb, ee = t[:-1][same], t[1:][same], e[:-1][same]
    mid = 0.5 * (ta + tb)
    u_mid = u0[ee] + mid * (u1 - u0)[ee]
    v_mid = v0[ee] + mid * (v1 - v0)[ee]
    dy = (tb - ta) * (v1 - v0)[ee]
    return np.floor(v_mid).astype(np.int64), np.floor(u_mid).astype(np.int64), dy, u_mid


def prepare(geom: BaseGeometry, height: int, width: int) -> Coverage | None:
    """``geom`` (a Polygon or MultiPolygon in pixel coordinates) prepared over a
    ``height`` x ``width`` raster; None when it does not overlap the raster."""
    minx, miny, maxx, maxy = geom.bounds
    if not all(map(math.isfinite, (minx, miny, maxx, maxy))):
        return None
    r0, r1 = max(math.floor(miny), 0), min(math.ceil(maxy), height)
    c0, c1 = max(math.floor(minx), 0), min(math.ceil(maxx), width)
    if r0 >= r1 or c0 >= c1:
        return None
    edges, signed_area = _edges(geom)
    row, col, dy, u_mid = _pieces(edges)
    if signed_area > 0:  # the running sums count rings clockwise in pixel space positive
        dy = -dy
    rr, cc, w = row - r0, col - c0, c1 - c0
    keep = (rr >= 0) & (rr < r1 - r0) & (cc < w)
    rr, cc, dy, u_mid = rr[keep], cc[keep], dy[keep], u_mid[keep] - c0
    left = cc < 0  # a piece left of a window cut by the raster's edge covers the whole row
    inside = dy * (cc + 1 - u_mid)
    rows = np.concatenate((rr, rr[~left]))
    cols = np.concatenate((np.where(left, 0, cc), cc[~left] + 1))
    values = np.concatenate((np.where(left, dy, inside), (dy - inside)[~left]))
    order = np.argsort(rows, kind="stable")
    return Coverage(r0=r0, r1=r1, c0=c0, c1=c1, area=abs(signed_area), rows=rows[order],
                    cols=cols[order], values=values[order])


def to_pixels(geom: BaseGeometry, transform: Affine) -> BaseGeometry:
    """``geom`` from the raster's CRS into its pixel coordinates (column, row)."""
    inv = ~transform
    return shapely.transform(geom, lambda xy: np.column_stack((
        inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c, inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f)))


def coverage_fractions(geom: BaseGeometry, transform: Affine, shape: tuple[int, int]
                       ) -> np.ndarray:
    """Exact covered fraction of every cell of a raster of ``shape`` (rows,
    columns) and geotransform ``transform`` by ``geom`` (in the raster's CRS)."""
    height, width = shape
    out = np.zeros((height, width))
    prepared = prepare(to_pixels(geom, transform), height, width)
    if prepared is not None:
        out[prepared.r0:prepared.r1, prepared.c0:prepared.c1] = prepared.fractions()
    return out
