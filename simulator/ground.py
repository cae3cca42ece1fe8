"""What the ground of the simulated blocks looks like from above on a day: band reflectance
on any grid, for the drone's camera and the satellites.

A pixel's reflectance is the area-weighted mix of what lies in it: ``render`` rasterizes the
ground at ``supersample`` times the grid's resolution, so a pixel on a levee, a road or a
channel edge mixes them by area (a 30 m paddy is three 10 m pixels wide). The ground
(assumptions, typical magnitudes, not measured):

- paddies: the crop of :mod:`agri.simulator.crop` (the field's stage, its within-field N
  patches at the pixel, panicles after heading) over the background of the field's water
  level (water, wet or dry soil). The transplanter leaves a strip of ``EDGE_GAP_M``
  along the levees unplanted, so a paddy's edge shows water or soil. Paddies of growers
  outside the platform show the block's mean crop.
- hills and gaps: the canopy covers the ground in hills (rows 30 cm apart); a pixel of
  size ``p`` sees a cover drawn from a beta distribution around the mean cover whose
  variance falls with the number of hills in the pixel, ``C (1 - C) / (1 + (p /
  HILL_SCALE_M) ** 2)``: at 5 cm a young crop shows plants and open water side by side,
  at 10 m only the mean. Leaves and soil get a brightness texture that averages out the
  same way; open water shows some sun glint.
- levees and verges: grass in June-September (bare earth otherwise) mixed with bare
  patches; roads gravel; channels water.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.transform import Affine

from agri.simulator.crop import (
    WATER,
    CropGrowth,
    background_reflectance,
    canopy_spectrum,
    canopy_state,
    cover_of,
    panicle_share,
)
from agri.simulator.fields import PLANE_CRS, Block, Field

BANDS = 5  # blue, green, red, red edge, NIR (DJI P4 Multispectral, agronomy section 9)
EDGE_GAP_M = 0.3  # unplanted strip along the levees (assumption)
HILL_SCALE_M = 0.15  # size of the canopy's hill-and-gap pattern
CANOPY_TEXTURE_SD = 0.15  # relative brightness of leaves at the hill scale (sunlit, shaded)
SOIL_TEXTURE_SD = 0.15  # relative brightness of soil and water
GRASS_COVER = (8.0, 2.0)  # beta parameters of the grass share of a levee pixel
GLINT_MEAN = 0.01  # sun glint added to open water, all bands (mean)
ROAD = np.array([0.140, 0.160, 0.180, 0.200, 0.220])  # gravel farm road (assumption)
GRASS = np.array([0.030, 0.080, 0.040, 0.250, 0.380])  # levees and verges in summer
BARE = np.array([0.090, 0.110, 0.130, 0.160, 0.190])  # bare earth, and verges out of season
GRASS_MONTHS = range(6, 10)  # June-September: verges green

_NONE, _ROAD, _CHANNEL, _LAND, _OTHER, _OTHER_EDGE = 0, 1, 2, 3, 4, 5
_FIRST_FIELD = 10  # field i: planted 10 + 2i, its unplanted edge 11 + 2i


@dataclass(frozen=True, slots=True)
class FieldScene:
    """What a field looks like on the day of a flight or a scene."""

    field: Field
    growth: CropGrowth
    level_m: float  # daily mean water level


@lru_cache(maxsize=8)
def transformer(src: str, dst: str) -> Transformer:
    """A cached (lon, lat)-ordered transformer between two CRSs."""
    return Transformer.from_crs(src, dst, always_xy=True)


def pixel_variance_share(pixel_m: float) -> float:
    """Share of a single hill's variance left in a pixel of ``pixel_m`` metres."""
    return 1.0 / (1.0 + (pixel_m / HILL_SCALE_M) ** 2)


@dataclass(frozen=True, slots=True)
class Layout:
    """Which kinds of ground each pixel of a grid holds, and in what shares: the part of
    rendering that does not change from day to day."""

    transform: Affine
    width: int
    height: int
    crs: str
    fields: tuple[str, ...]  # field ids, in the order of the scenes to paint
    pure: tuple[tuple[int, np.ndarray], ...]  # (code, flat pixel indices)
    mixed: tuple[tuple[int, np.ndarray, np.ndarray], ...]  # (code, indices, shares)


def layout(*, blocks: Sequence[Block], fields: Sequence[Field], transform: Affine, width: int,
           height: int, crs: str = PLANE_CRS, footprint: Any = None,
           supersample: int = 4) -> Layout:
    """Rasterize the blocks at ``supersample`` times the grid's resolution; ``footprint``
    (a shapely geometry in EPSG:6678) limits what is seen (nothing beyond it); without it
    everything outside the blocks is land."""
    k = max(int(supersample), 1)
    fine = transform @ Affine.scale(1.0 / k)
    shapes = _shapes(blocks, fields, crs, footprint)
    labels = rasterize(shapes, out_shape=(height * k, width * k), transform=fine,
                       fill=_NONE if footprint is not None else _LAND, dtype="uint16")
    sub = labels.reshape(height, k, width, k).transpose(0, 2, 1, 3).reshape(height * width,
                                                                             k * k)
    first = sub[:, 0]
    is_pure = (sub == first[:, None]).all(axis=1)
    pure = tuple((int(code), np.flatnonzero(is_pure & (first == code)))
                 for code in np.unique(first[is_pure]) if code != _NONE)
    mixed_at = np.flatnonzero(~is_pure)
    mixed = []
    if mixed_at.size:
        mixed_sub = sub[mixed_at]
        for code in np.unique(mixed_sub):
            if code == _NONE:
                continue
            share = (mixed_sub == code).mean(axis=1)
            sel = share > 0
            mixed.append((int(code), mixed_at[sel], share[sel]))
    return Layout(transform, width, height, crs, tuple(f.id for f in fields), pure,
                  tuple(mixed))


def paint(grid: Layout, *, scenes: Sequence[FieldScene], day: date,
          rng: np.random.Generator) -> np.ndarray:
    """Reflectance (5, height, width) of the ground of ``grid`` on ``day``, float32 0..1,
    NaN where nothing is seen. ``scenes`` are the grid's fields, in its order."""
    if tuple(s.field.id for s in scenes) != grid.fields:
        raise ValueError("pass the scenes of the fields the layout was made for, in order")
    size = grid.width * grid.height
    out = np.zeros((BANDS, size))
    weight = np.zeros(size)
    painter = _Painter(scenes=scenes, day=day, grid=grid, rng=rng)
    for code, where in grid.pure:
        out[:, where] = painter.paint(code, where)
        weight[where] = 1.0
    for code, where, share in grid.mixed:
        out[:, where] += share * painter.paint(code, where)
        weight[where] += share
    seen = weight >= 0.5
    result = np.full((BANDS, size), np.nan)
    result[:, seen] = np.clip(out[:, seen] / weight[seen], 0.0, 1.0)
    return result.reshape(BANDS, grid.height, grid.width).astype(np.float32)


def render(*, blocks: Sequence[Block], scenes: Sequence[FieldScene], day: date,
           transform: Affine, width: int, height: int, rng: np.random.Generator,
           crs: str = PLANE_CRS, footprint: Any = None, supersample: int = 4) -> np.ndarray:
    """:func:`layout` and :func:`paint` in one call."""
    grid = layout(blocks=blocks, fields=[s.field for s in scenes], transform=transform,
                  width=width, height=height, crs=crs, footprint=footprint,
                  supersample=supersample)
    return paint(grid, scenes=scenes, day=day, rng=rng)


def _shapes(blocks: Sequence[Block], fields: Sequence[Field], crs: str,
            footprint: Any) -> list[tuple[Any, int]]:
    to_grid = None if crs == PLANE_CRS else transformer(PLANE_CRS, crs).transform

    def on_grid(geometry: Any) -> Any:
        if to_grid is None:
            return geometry
        return shapely.transform(geometry, lambda xy: np.column_stack(to_grid(xy[:, 0],
                                                                              xy[:, 1])))

    shapes: list[tuple[Any, int]] = []
    if footprint is not None:
        shapes.append((on_grid(footprint), _LAND))
    for block in blocks:
        for paddy in block.paddies:
            shapes += [(on_grid(paddy), _OTHER_EDGE), (on_grid(paddy.buffer(-EDGE_GAP_M)), _OTHER)]
        shapes += [(on_grid(c), _CHANNEL) for c in block.channels]
        shapes.append((on_grid(block.road), _ROAD))
    for i, field in enumerate(fields):
        polygon = field.polygon
        shapes += [(on_grid(polygon), _FIRST_FIELD + 2 * i + 1),
                   (on_grid(polygon.buffer(-EDGE_GAP_M)), _FIRST_FIELD + 2 * i)]
    return shapes


class _Painter:
    """Reflectance of each kind of ground at given pixels (flat indices of the grid)."""

    def __init__(self, *, scenes: Sequence[FieldScene], day: date, grid: Layout,
                 rng: np.random.Generator) -> None:
        self.scenes, self.day, self.rng = scenes, day, rng
        self.transform, self.width, crs = grid.transform, grid.width, grid.crs
        self.pixel_m = abs(self.transform.a)
        self.share = pixel_variance_share(self.pixel_m)
        self.to_plane = None if crs == PLANE_CRS else transformer(crs, PLANE_CRS).transform
        self.land = GRASS if day.month in GRASS_MONTHS else BARE
        if scenes:
            dvi = float(np.mean([s.growth.dvi_on(day) for s in scenes]))
            n = float(np.mean([s.growth.n_index for s in scenes]))
            level = float(np.mean([s.level_m for s in scenes]))
        else:  # a block without platform fields: bare flooded paddies
            dvi, n, level = 0.0, 1.0, 0.0
        self.mean_crop = (dvi, n, level)

    def paint(self, code: int, where: np.ndarray) -> np.ndarray:
        n = where.size
        if code == _ROAD:
            return ROAD[:, None] * self._texture(n, SOIL_TEXTURE_SD / 3)
        if code == _CHANNEL:
            return WATER[:, None] * self._texture(n, SOIL_TEXTURE_SD) + self._glint(n)
        if code == _LAND:
            grass = self.rng.beta(*GRASS_COVER, n) if self.land is GRASS else np.zeros(n)
            mix = grass * GRASS[:, None] + (1.0 - grass) * BARE[:, None]
            return mix * self._texture(n, SOIL_TEXTURE_SD)
        if code in (_OTHER, _OTHER_EDGE):
            dvi, n_index, level = self.mean_crop
            return self._paddy(n, dvi=dvi, n_index=np.full(n, n_index), level_m=level,
                               planted=code == _OTHER)
        scene = self.scenes[(code - _FIRST_FIELD) // 2]
        planted = (code - _FIRST_FIELD) % 2 == 0
        n_index = scene.growth.n_index * scene.growth.patches.factor(*self._plane_xy(where))
        return self._paddy(n, dvi=scene.growth.dvi_on(self.day), n_index=n_index,
                           level_m=scene.level_m, planted=planted)

    def _paddy(self, n: int, *, dvi: float, n_index: np.ndarray, level_m: float,
               planted: bool) -> np.ndarray:
        background = background_reflectance(level_m)[:, None] * self._texture(
            n, SOIL_TEXTURE_SD)
        wet = float(level_m > 0.0)
        if not planted:
            return background + wet * self._glint(n)
        lai, chlorophyll, yellow = canopy_state(dvi, n_index)
        cover = self._cover(np.broadcast_to(cover_of(lai), (n,)))
        heads = panicle_share(dvi)
        if heads > 0:
            heads = self._cover(np.full(n, heads))
        canopy = canopy_spectrum(chlorophyll, yellow, heads) * self._texture(n,
                                                                            CANOPY_TEXTURE_SD)
        return cover * canopy + (1.0 - cover) * (background + wet * self._glint(n))

    def _cover(self, mean: np.ndarray) -> np.ndarray:
        """Cover seen in each pixel: beta around ``mean`` with the pixel's variance."""
        m = np.clip(mean, 1e-4, 1.0 - 1e-4)
        concentration = 1.0 / self.share - 1.0
        if concentration > 1e6:
            return m
        return self.rng.beta(m * concentration, (1.0 - m) * concentration)

    def _texture(self, n: int, sd: float) -> np.ndarray:
        """Multiplicative brightness (1, n), mean 1, averaged over the pixel."""
        s = sd * np.sqrt(self.share)
        return np.exp(self.rng.normal(-0.5 * s * s, s, n))[None, :]

    def _glint(self, n: int) -> np.ndarray:
        """Sun glint of open water (1, n): exponential at the hill scale, its mean at any."""
        spread = np.sqrt(self.share)
        return GLINT_MEAN * (1.0 + (self.rng.exponential(1.0, n) - 1.0) * spread)[None, :]

    def _plane_xy(self, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = np.divmod(where, self.width)
        t = self.transform
        xs = t.c + (cols + 0.5) * t.a + (rows + 0.5) * t.b
        ys = t.f + (cols + 0.5) * t.d + (rows + 0.5) * t.e
        if self.to_plane is not None:
            xs, ys = self.to_plane(xs, ys)
        return np.asarray(xs), np.asarray(ys)
