"""The true crop of each simulated field: stages, damage, canopy and protein.

Development is the simulator's own model (:mod:`agri.simulator.development`: hourly
temperature, the water temperature before panicle initiation, seedlings, transplanting
shock, per-field variation), not the platform's DVR model. Cold and heat damage apply the
published formulas (SIMRIW's cooling degree-days and sterility, the chalky-grain
regression, :mod:`agri.analytics.phenology`) to the true stages and to the temperature the
panicle feels. The canopy and the grain protein are a documented simple model
(assumptions, chosen to land on published magnitudes):

- Nitrogen status ``n_index`` = (soil N supply + applied N) / the supply of a
  standard crop; soil supply is the paddy's own (the same every year) and varies by
  paddy; a crop rich in N ripens a little later (``RIPENING_PER_N_INDEX``).
- Plant area (LAI, m2/m2) rises logistically with DVI to a peak that grows
  with N and holds until ripening; leaf greenness (``chlorophyll``, 1 =
  standard) follows N and fades slowly after heading; ripening panicles and
  leaves turn yellow from DVI 1.3 (``yellow``, 0..1), a crop rich in N fading and
  yellowing later (stay-green: ``STAY_GREEN_PER_N_INDEX``, ``YELLOW_DELAY_PER_N_INDEX``);
  from heading the panicles emerge over the leaves and hide up to
  ``PANICLE_SHARE_MAX`` of them by DVI ``PANICLE_FULL_DVI`` (``panicle_share``), green
  at first and yellowing with the leaves.
- Within a field, N varies in smooth random patches (Gaussian bumps), the paddy's own.
- Reflectance of the five P4 Multispectral bands mixes a green and a yellow
  canopy spectrum by ``yellow``, and canopy with background (water or soil)
  by cover = 1 - exp(-k LAI). Typical rice and soil spectra, not measured.
- Protein (% brown rice, 15 % moisture) rises with ``n_index`` and with
  cold sterility (fewer grains share the crop's N), plus field noise that
  imagery cannot see, so a GNDVI model fits only modestly (section 9).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import shapely

from agri.analytics import agronomy as ag
from agri.analytics import phenology as ph
from agri.simulator import development as dev

if TYPE_CHECKING:
    from agri.simulator.fields import Field
    from agri.simulator.water import PaddyWater
    from agri.simulator.weather import Weather

RIPENING_PER_N_INDEX = 0.05  # relative lengthening of grain filling per unit n_index above 1
SHOCK_WEEK_DAYS = 7  # days after transplanting whose cold lengthens the shock
SOIL_N_KG_PER_10A = (6.0, 1.0)  # mean, sd of the soil's N supply (assumption)
SOIL_N_LIMITS = (3.5, 8.5)
STANDARD_N_KG_PER_10A = 12.0  # soil + applied N of a standard crop
LAI_TRANSPLANTED = 0.1
LAI_STANDARD_PEAK = 4.5  # peak plant area of a standard crop (typical Tohoku rice 4-5)
LAI_N_EXPONENT = 0.8
LAI_MID_DVI = 0.45  # logistic rise of LAI with DVI
LAI_WIDTH_DVI = 0.10
CHLOROPHYLL_N_EXPONENT = 1.0
CHLOROPHYLL_FADE_BY_HEADING = 0.10  # relative loss of greenness from transplanting to heading
CHLOROPHYLL_FADE_RIPENING = 0.30  # further loss per DVI unit after heading
YELLOW_START_DVI = 1.3
PANICLE_SHARE_MAX = 0.25  # share of the canopy's top the panicles hide (assumption)
PANICLE_FULL_DVI = 1.15  # all panicles out (about a week after heading)
YELLOW_MAX = 0.9  # about 90 % husk yellowing at harvest (analytics/agronomy.py section 3)
YELLOW_EXPONENT = 1.5
STAY_GREEN_PER_N_INDEX = 1.0  # relative slowing of the leaves' fading per unit n_index above 1
YELLOW_DELAY_PER_N_INDEX = 0.3  # later start of yellowing (DVI) per unit n_index above 1
EXTINCTION = 0.6  # canopy cover = 1 - exp(-EXTINCTION * LAI)
PATCH_COUNT = (6, 12)
PATCH_SIGMA_M = (6.0, 20.0)
PATCH_AMPLITUDE_SD = 0.08  # relative N change at a patch centre
PATCH_GRID_M = 2.0  # grid used to remove a field's mean patch offset
PROTEIN_STANDARD_PCT = 6.0  # protein of a standard crop (assumption)
PROTEIN_PER_N_INDEX = 3.0  # percentage points per unit n_index (assumption)
PROTEIN_PER_STERILITY_PCT = 0.02  # per % sterility above the SIMRIW intercept
PROTEIN_STERILITY_CAP_PCT = 1.0
PROTEIN_NOISE_SD_PCT = 0.15  # what imagery cannot see (assumption)
PROTEIN_LIMITS_PCT = (5.0, 8.5)
WATER_PROTECTION_WEIGHT = 0.5  # share of the water's warmth the young panicle feels ...
WATER_PROTECTION_FULL_DEPTH_M = 0.15  # ... when the water is this deep (less when shallower)
_SOIL_STREAM, _PATCH_STREAM = 1, 2  # streams of a paddy's soil seed

# Reflectance (blue, green, red, red edge, NIR): typical values (assumption).
GREEN_CANOPY = np.array([0.030, 0.085, 0.035, 0.250, 0.450])
CHLOROPHYLL_SENSITIVITY = np.array([-0.005, -0.035, -0.020, -0.060, 0.030])  # per unit above 1
YELLOW_CANOPY = np.array([0.060, 0.130, 0.150, 0.250, 0.330])
GREEN_PANICLES = np.array([0.045, 0.100, 0.080, 0.220, 0.320])
WATER = np.array([0.060, 0.060, 0.040, 0.030, 0.025])
WET_SOIL = np.array([0.060, 0.080, 0.100, 0.120, 0.140])
DRY_SOIL = np.array([0.100, 0.130, 0.160, 0.190, 0.220])
FLOODED_LEVEL_M = 0.005  # above: the background is water
WET_SOIL_LEVEL_M = -0.05  # above: wet soil, drying towards ...
DRY_SOIL_LEVEL_M = -0.10  # ... dry soil here (the sensor's floor)


def daily_weather(weather: Weather) -> pd.DataFrame:
    """``weather.daily()`` indexed by local date (tz-naive ``DatetimeIndex``)."""
    table = weather.daily()
    return table.set_index(pd.DatetimeIndex(pd.to_datetime(table["date"]))).drop(columns="date")


@dataclass(frozen=True, slots=True)
class Patches:
    """Smooth within-field variation of N: a sum of Gaussian bumps (EPSG:6678 metres)."""

    centres: np.ndarray  # (k, 2) easting, northing
    sigma_m: np.ndarray
    amplitude: np.ndarray
    offset: float  # removes the field mean, so a field's mean factor is 1

    def factor(self, easting: np.ndarray, northing: np.ndarray) -> np.ndarray:
        """Multiplicative N factor at the given points."""
        e = np.asarray(easting, dtype=float)[..., None]
        n = np.asarray(northing, dtype=float)[..., None]
        d2 = (e - self.centres[:, 0]) ** 2 + (n - self.centres[:, 1]) ** 2
        bumps = (self.amplitude * np.exp(-d2 / (2.0 * self.sigma_m ** 2))).sum(axis=-1)
        return 1.0 + bumps - self.offset


def make_patches(field: Field, rng: np.random.Generator) -> Patches:
    """Random patches inside ``field``'s bounding box."""
    minx, miny, maxx, maxy = field.polygon.bounds
    k = int(rng.integers(PATCH_COUNT[0], PATCH_COUNT[1] + 1))
    centres = np.column_stack([rng.uniform(minx, maxx, k), rng.uniform(miny, maxy, k)])
    patches = Patches(centres, rng.uniform(*PATCH_SIGMA_M, k),
                      rng.normal(0.0, PATCH_AMPLITUDE_SD, k), 0.0)
    xs = np.arange(minx, maxx, PATCH_GRID_M)
    ys = np.arange(miny, maxy, PATCH_GRID_M)
    gx, gy = np.meshgrid(xs, ys)
    inside = shapely.contains_xy(field.polygon, gx, gy)
    mean = float(patches.factor(gx[inside], gy[inside]).mean()) - 1.0 if inside.any() else 0.0
    return replace(patches, offset=mean)


def canopy_state(dvi: np.ndarray | float, n_index: np.ndarray | float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(LAI m2/m2, chlorophyll relative to standard, yellow fraction 0..1)."""
    d = np.asarray(dvi, dtype=float)
    n = np.asarray(n_index, dtype=float)

    def rise(x: np.ndarray | float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(np.asarray(x) - LAI_MID_DVI) / LAI_WIDTH_DVI))

    share = (rise(np.minimum(d, 1.0)) - rise(0.0)) / (rise(1.0) - rise(0.0))
    peak = LAI_STANDARD_PEAK * n ** LAI_N_EXPONENT
    lai = LAI_TRANSPLANTED + (peak - LAI_TRANSPLANTED) * share
    # A crop rich in N stays green longer after heading (slower fading and yellowing).
    stay_green = np.clip(1.0 - STAY_GREEN_PER_N_INDEX * (n - 1.0), 0.5, 1.5)
    fade = (1.0 - CHLOROPHYLL_FADE_BY_HEADING * np.minimum(d, 1.0)
            - CHLOROPHYLL_FADE_RIPENING * stay_green * np.maximum(d - 1.0, 0.0))
    chlorophyll = n ** CHLOROPHYLL_N_EXPONENT * fade
    start = YELLOW_START_DVI + YELLOW_DELAY_PER_N_INDEX * (n - 1.0)
    yellow = YELLOW_MAX * np.clip((d - start) / (ag.DVI_MATURITY - start),
                                  0.0, 1.0) ** YELLOW_EXPONENT
    return lai, chlorophyll, yellow


def background_reflectance(level_m: np.ndarray | float) -> np.ndarray:
    """Reflectance (5, ...) of a paddy's bare surface at water level ``level_m``."""
    level = np.asarray(level_m, dtype=float)
    wet = np.clip((level - WET_SOIL_LEVEL_M)
                  / (FLOODED_LEVEL_M - WET_SOIL_LEVEL_M), 0.0, 1.0)
    dry = np.clip((WET_SOIL_LEVEL_M - level) / (WET_SOIL_LEVEL_M - DRY_SOIL_LEVEL_M), 0.0, 1.0)
    shape = (5,) + (1,) * level.ndim
    soil = (1.0 - dry) * WET_SOIL.reshape(shape) + dry * DRY_SOIL.reshape(shape)
    return wet * WATER.reshape(shape) + (1.0 - wet) * soil


def cover_of(lai: np.ndarray | float) -> np.ndarray:
    """Share of the ground the canopy hides, 1 - exp(-k LAI)."""
    return 1.0 - np.exp(-EXTINCTION * np.asarray(lai, dtype=float))


def panicle_share(dvi: np.ndarray | float) -> np.ndarray:
    """Share of the canopy's top hidden by panicles (0 before heading)."""
    d = np.asarray(dvi, dtype=float)
    return PANICLE_SHARE_MAX * np.clip((d - ag.DVI_HEADING) / (PANICLE_FULL_DVI - ag.DVI_HEADING),
                                       0.0, 1.0)


def canopy_spectrum(chlorophyll: np.ndarray | float, yellow: np.ndarray | float,
                    panicles: np.ndarray | float = 0.0) -> np.ndarray:
    """Reflectance (5, ...) of a closed canopy of the given greenness, yellowing and share
    hidden by panicles."""
    chlorophyll, yellow, panicles = np.broadcast_arrays(
        np.asarray(chlorophyll, dtype=float), np.asarray(yellow, dtype=float),
        np.asarray(panicles, dtype=float))
    shape = (5,) + (1,) * chlorophyll.ndim
    green = GREEN_CANOPY.reshape(shape) + CHLOROPHYLL_SENSITIVITY.reshape(shape) * (
        chlorophyll - 1.0)
    leaves = (1.0 - yellow) * green + yellow * YELLOW_CANOPY.reshape(shape)
    heads = (1.0 - yellow) * GREEN_PANICLES.reshape(shape) + yellow * YELLOW_CANOPY.reshape(shape)
    return (1.0 - panicles) * leaves + panicles * heads


def canopy_reflectance(*, lai: np.ndarray, chlorophyll: np.ndarray, yellow: np.ndarray,
                       background: np.ndarray, panicles: np.ndarray | float = 0.0) -> np.ndarray:
    """Band reflectance (5, ...) of canopy over ``background`` (5, ...), 0..1."""
    lai, chlorophyll, yellow = np.broadcast_arrays(lai, chlorophyll, yellow)
    cover = cover_of(lai)
    return np.clip(cover * canopy_spectrum(chlorophyll, yellow, panicles)
                   + (1.0 - cover) * background, 0.0, 1.0)


def spectral_indices(reflectance: np.ndarray) -> dict[str, np.ndarray]:
    """NDVI, GNDVI and NDRE (analytics/agronomy.py section 9) of a (5, ...) reflectance array."""
    blue, green, red, red_edge, nir = reflectance
    del blue

    def nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a - b) / np.maximum(a + b, 1e-6)

    return {"ndvi": nd(nir, red), "gndvi": nd(nir, green), "ndre": nd(nir, red_edge)}


@dataclass(frozen=True, slots=True)
class CropGrowth:
    """A field's true crop: development, N status and its within-field patches."""

    field: str
    cultivar: dev.FieldDevelopment
    phenology: dev.Development
    n_index: float
    patches: Patches

    def dvi_on(self, day: date) -> float:
        """DVI at the end of ``day`` (0 before transplanting)."""
        return self.phenology.dvi_on(day)

    def canopy_cover(self) -> pd.Series:
        """Daily canopy cover (0..1) of the field mean crop, from transplanting."""
        lai, _, _ = canopy_state(self.phenology.dvi.to_numpy(), self.n_index)
        return pd.Series(cover_of(lai), index=self.phenology.dvi.index)

    def mean_reflectance(self, day: date, level_m: float) -> np.ndarray:
        """Field-mean reflectance (5,) on ``day`` with water level ``level_m``."""
        dvi = self.dvi_on(day)
        lai, chl, yellow = canopy_state(dvi, self.n_index)
        return canopy_reflectance(lai=lai, chlorophyll=chl, yellow=yellow,
                                  background=background_reflectance(level_m),
                                  panicles=panicle_share(dvi))


@dataclass(frozen=True, slots=True)
class FieldTruth:
    """What the platform's analytics try to find out about a field."""

    field: str
    cultivar: str
    transplanted_on: date
    heading: date | None
    maturity: date | None
    harvest_opens: date | None  # grain ripe and dry enough to start the harvest
    sterility_pct: float  # max of cold and heat sterility (SIMRIW)
    chalky_pct: float
    protein_pct: float  # brown rice, 15 % moisture; two decimals, as a lab reports it
    cold_q_cday: float
    n_index: float


def soil_n_supply(field: Field) -> float:
    """The paddy's own soil N supply, kg/10a (the same every year)."""
    rng = np.random.default_rng([field.soil_seed, _SOIL_STREAM])
    return float(np.clip(rng.normal(*SOIL_N_KG_PER_10A), *SOIL_N_LIMITS))


def grow(field: Field, weather: Weather, rng: np.random.Generator, *,
         water: PaddyWater | None = None, daily: pd.DataFrame | None = None) -> CropGrowth:
    """The true crop of ``field`` under the hourly ``weather`` and, when given, the
    field's hourly ``water`` (without it the growing point feels the air); ``daily`` is
    :func:`daily_weather` of ``weather``, computed when not given."""
    n_index = (soil_n_supply(field) + field.nitrogen_kg_per_10a) / STANDARD_N_KG_PER_10A
    tmean = (daily_weather(weather) if daily is None else daily)["tmean"]
    first = tmean.index.get_loc(pd.Timestamp(field.transplanted_on))
    params = dev.field_development(
        cultivar=field.cultivar, seedling_age_days=field.seedling_age_days,
        first_week_tmean_c=tmean.to_numpy()[first:first + SHOCK_WEEK_DAYS], rng=rng,
        ripening_factor=1.0 + RIPENING_PER_N_INDEX * (n_index - 1.0))
    point = None
    if water is not None:
        offset = (water.times[0].date() - date(weather.year, 1, 1)).days * dev.HOURS
        point = dev.growing_point_temp(air_c=weather.air_temp, water_c=water.water_temp_c,
                                       level_m=water.water_level_m, first_hour=offset)
    development = dev.develop(field=params, transplanted_on=field.transplanted_on,
                              air_c=weather.air_temp, point_c=point,
                              precipitation_mm=weather.precipitation)
    patches = make_patches(field, np.random.default_rng([field.soil_seed, _PATCH_STREAM]))
    return CropGrowth(field.id, params, development, n_index, patches)


def protected_tmean(tmean: pd.Series, water: pd.DataFrame | None) -> pd.Series:
    """Daily mean temperature felt by the young panicle: air, warmed by a share of the
    water's excess warmth that grows with depth (``water``: daily level_m, water_temp_c)."""
    air = ph.daily_series(tmean)
    if water is None:
        return air
    joined = water.reindex(air.index)
    depth = np.clip(joined["level_m"].fillna(0.0) / WATER_PROTECTION_FULL_DEPTH_M, 0.0, 1.0)
    excess = np.maximum(joined["water_temp_c"].fillna(air) - air, 0.0)
    return air + WATER_PROTECTION_WEIGHT * depth * excess


def field_truth(*, field: Field, growth: CropGrowth, daily: pd.DataFrame,
                water: pd.DataFrame | None, rng: np.random.Generator) -> FieldTruth:
    """Sterility, chalky grain and protein of ``field`` (``water``: daily means or None).

    Cold sterility: SIMRIW's cooling degree-days over the true stages 0.75-1.2 of the
    temperature the young panicle feels (:func:`protected_tmean`)."""
    pheno = growth.phenology
    q = ph.cooling_degree_days(protected_tmean(daily["tmean"], water), pheno.dvi)
    cold = float(ph.cold_sterility_pct(q))
    tmax = ph.flowering_mean_tmax_c(daily["tmax"], pheno.dvi)
    heat = float(ph.heat_sterility_pct(tmax)) if np.isfinite(tmax) else 0.0
    sterility = max(cold, heat) if pheno.heading is not None else ag.STERILITY_MAX_PCT
    chalky = (ph.chalky_grain_pct(daily["tmean"], pheno.heading) if pheno.heading is not None
              else float("nan"))
    protein = (PROTEIN_STANDARD_PCT + PROTEIN_PER_N_INDEX * (growth.n_index - 1.0)
               + min(PROTEIN_PER_STERILITY_PCT * max(sterility - ag.COLD_STERILITY_INTERCEPT_PCT,
                                                     0.0), PROTEIN_STERILITY_CAP_PCT)
               + rng.normal(0.0, PROTEIN_NOISE_SD_PCT))
    return FieldTruth(
        field=field.id, cultivar=field.cultivar, transplanted_on=field.transplanted_on,
        heading=pheno.heading, maturity=pheno.maturity, harvest_opens=pheno.harvest_opens,
        sterility_pct=sterility,
        chalky_pct=chalky, protein_pct=round(float(np.clip(protein, *PROTEIN_LIMITS_PCT)), 2),
        cold_q_cday=q, n_index=growth.n_index,
    )
