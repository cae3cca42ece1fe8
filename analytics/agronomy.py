"""Published agronomy numbers for rice in the Tsugaru plain, in one place.

Every constant carries its source. The section headings below group the
constants by topic (cultivars, phenology, harvest, cold, heat, blast, water,
climate, remote sensing).
Where a number is not published the constant says so and states the
assumption. A deployment overrides values per cultivar or region by building
its own ``CultivarParams`` / ``HarvestThermalTime`` with
``dataclasses.replace``; nothing else in the code repeats these numbers.

Units: temperatures in Cel, day lengths in hours, depths in metres, protein in
percent of brown rice at 15 % moisture, wavelengths in nm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

# --- Region ---------------------------------------------------------------
from agri.clock import TIME_ZONE  # noqa: E402, F401 - every "day" is a local calendar day

TSUGARU_LATITUDE_DEG = 40.7  # centre of the Tsugaru plain (Hirosaki 40.6 N, Goshogawara 40.8 N)
GROWING_ZONES = ("Tsugaru-chuo", "Tsugaru-seihoku")  # Seiten no Hekireki zones (pref.aomori 2022)

# Hirosaki monthly mean temperature, AMeDAS quasi-normals 1979-1990, Jan..Dec (section 8).
# Used only as the "normal Tsugaru year" for the cultivar calibration below.
HIROSAKI_NORMAL_MONTHLY_TMEAN_C = (
    -2.5, -1.9, 1.4, 8.1, 13.5, 17.7, 20.9, 23.3, 18.2, 11.8, 5.7, 0.9,
)

# --- 1. Cultivars and quality criteria -------------------------------------

PROTEIN_MOISTURE_BASIS_PCT = 15.0  # protein is stated for brown rice at 15 % moisture
SHIPPING_PROTEIN_MAX_PCT = 6.4  # Seiten no Hekireki brand limit (seitennohekireki.jp 2016-03)
TARGET_PROTEIN_MAX_PCT = 6.0  # production target (pref.aomori seitennohekireki_kijun 2022-08-18)
TARGET_YIELD_BALES_PER_10A = 9.0  # same source; one bale = 60 kg brown rice
TARGET_SPIKELETS_PER_M2 = 28_000  # NARO Tohoku H26 results
TOTAL_N_DRY_PADDY_KG_PER_10A = (6.0, 7.0)  # NARO Tohoku H26
TOTAL_N_SEMI_WET_PADDY_KG_PER_10A = (5.0, 6.0)  # NARO Tohoku H26
BASAL_N_FRACTION = (0.70, 0.80)  # share of total N applied as basal, NARO Tohoku H26
# Top-dressing at panicle initiation; growth index = plant height (cm) x stems/m2 x leaf colour.
TOPDRESS_GROWTH_INDEX_LOW = 950_000  # below: up to TOPDRESS_MAX_N (NARO Tohoku H26)
TOPDRESS_GROWTH_INDEX_HIGH = 1_290_000  # at or above: no top-dressing (same)
TOPDRESS_LEAF_COLOUR_MAX = 39.0  # leaf colour above: no top-dressing (same)
TOPDRESS_MAX_N_KG_PER_10A = 2.0  # same


@dataclass(frozen=True, slots=True)
class CultivarParams:
    """DVR phenology parameters (Horie & Nakagawa 1990; SIMRIW names in brackets).

    ``g`` [GV] days of the fastest vegetative development, ``a`` [ALF] 1/Cel,
    ``th`` [TH] Cel, ``b`` [BDL] 1/h, ``lc`` [LC] critical day length in h,
    ``dvi_star`` [DVIA] DVI from which day length acts.
    """

    id: str
    name: str
    g: float
    a: float
    th: float
    b: float
    lc: float
    dvi_star: float
    source: str


# Published parameters: SIMRIW cultivars file as ported in pysimriw (section 2).
KOSHIHIKARI = CultivarParams("koshihikari", "Koshihikari", 51.3, 0.365, 17.8, 0.566, 16.0, 0.23,
                             "pysimriw cultivars file (Horie & Nakagawa 1990)")
SASANISHIKI = CultivarParams("sasanishiki", "Sasanishiki", 51.0, 0.51, 17.1, 0.53, 15.96, 0.25,
                             "pysimriw cultivars file (Horie & Nakagawa 1990)")
NIPPONBARE = CultivarParams("nipponbare", "Nipponbare", 59.6, 0.361, 18.47, 0.558, 16.2, 0.39,
                            "pysimriw cultivars file (Horie & Nakagawa 1990)")

# Not published: calibration. A, Th, B, Lc and DVI* are Sasanishiki's (a Tohoku cultivar);
# G was fitted with analytics.phenology.fit_g so that transplanting on 20 May in a normal
# Tsugaru year gives heading on the dates of CALIBRATION_HEADING: the observations were 40
# normal years of the platform's weather simulator (Hirosaki normals of section 8 with
# day-to-day variability; simulate_weather(year=2025, seed=0..39, YearType.NORMAL), daily
# means as crop.daily_weather gives them), latitude TSUGARU_LATITUDE_DEG, DVI = 0 at
# transplanting, day length from analytics.solar. Refit G whenever the simulated normal
# year changes. A heading normal is an average over years, and development responds
# non-linearly to temperature: fitted to the smooth normal curve instead
# (analytics.phenology.normal_year_tmean), G comes out 0.9-1.3 days larger, and with the
# G below heading on that curve comes 1.6-1.8 days early. G is far below the published
# values because the weeks in the nursery before transplanting are not counted.
# The prefecture normal is start 2 Aug, peak 5 Aug, end 11 Aug (applenet.jp suitou-seiiku);
# Seiten no Hekireki heads a few days before Tsugaru Roman (section 2).
# Masshigura: assumption, heading between the two, on the prefecture's peak day.
CALIBRATION_TRANSPLANTING = (5, 20)  # (month, day)
CALIBRATION_HEADING = MappingProxyType({
    "seiten-no-hekireki": (8, 4),
    "masshigura": (8, 5),
    "tsugaru-roman": (8, 7),
})
SEITEN_NO_HEKIREKI = CultivarParams(
    "seiten-no-hekireki", "Seiten no Hekireki", 25.14, 0.51, 17.1, 0.53, 15.96, 0.25,
    "calibrated: Sasanishiki A, Th, B, Lc, DVI*; G fitted to heading 4 Aug")
MASSHIGURA = CultivarParams(
    "masshigura", "Masshigura", 25.64, 0.51, 17.1, 0.53, 15.96, 0.25,
    "calibrated: Sasanishiki A, Th, B, Lc, DVI*; G fitted to heading 5 Aug (assumed)")
TSUGARU_ROMAN = CultivarParams(
    "tsugaru-roman", "Tsugaru Roman", 27.01, 0.51, 17.1, 0.53, 15.96, 0.25,
    "calibrated: Sasanishiki A, Th, B, Lc, DVI*; G fitted to heading 7 Aug")

CULTIVARS: Mapping[str, CultivarParams] = MappingProxyType({
    c.id: c for c in (SEITEN_NO_HEKIREKI, TSUGARU_ROMAN, MASSHIGURA,
                      KOSHIHIKARI, SASANISHIKI, NIPPONBARE)
})

# --- 2. Phenology ------------------------------------------------------------

DVI_TRANSPLANTING = 0.0  # DVI = 0 at emergence; transplanting used instead (section 2)
DVI_HEADING = 1.0
DVI_MATURITY = 2.0
# Panicle initiation is about 25 days before heading (the usual Tohoku rule of thumb; the
# pre-conditioning deep water of section 7 starts then). Not a published DVI: this is the
# DVI that Seiten no Hekireki reaches 25 days before heading in the calibration year below
# (transplanting 20 May, normal Tsugaru year). Until then the growing point is under water,
# so its development follows the water temperature where a paddy sensor measures it.
PANICLE_INITIATION_DAYS_BEFORE_HEADING = 25
DVI_PANICLE_INITIATION = 0.56
# Ripening (DVI > 1), SIMRIW: DVR = (1 - exp(-KCR * (T - TCR))) / GR.
RIPENING_KCR_PER_C = 0.071
RIPENING_TCR_C = 6.4
RIPENING_GR_DAYS = 30.7
DVR_HEADING_ERROR_DAYS = 3.6  # reported heading error of the DVR model (Horie & Nakagawa 1990)
# Cross-check: accumulated temperature above 10 C, 1.2 d error for 12 Tohoku cultivars
# (Kanda et al. 2002, Jpn J Crop Sci 71:394-402).
HEADING_ACCUMULATION_BASE_C = 10.0
# Prefecture heading normal (applenet.jp suitou-seiiku), (month, day).
PREFECTURE_HEADING_START = (8, 2)
PREFECTURE_HEADING_PEAK = (8, 5)
PREFECTURE_HEADING_END = (8, 11)

# --- 3. Harvest timing -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HarvestThermalTime:
    """Accumulated daily mean temperature after heading (Cel-day) bounding harvest."""

    start_cday: float
    end_cday: float
    source: str


PREFECTURE_HARVEST = HarvestThermalTime(
    960.0, 1200.0, "applenet.jp extraordinary 23086: start 960 from peak heading, finish 1,200")
HARVEST_THERMAL_TIME: Mapping[str, HarvestThermalTime] = MappingProxyType({
    "seiten-no-hekireki": HarvestThermalTime(900.0, 1100.0, "seitennohekireki.jp blog 2015-09"),
    "tsugaru-roman": HarvestThermalTime(960.0, 1150.0, "seitennohekireki.jp blog 2015-09"),
    # Not published for Masshigura: the prefecture signal is used (assumption).
    "masshigura": PREFECTURE_HARVEST,
})
# Seiten no Hekireki ripeness signs (seitennohekireki.jp blog 2015-09).
HARVEST_HUSK_YELLOWING_PCT = 90.0
HARVEST_GRAIN_MOISTURE_PCT = 25.0
HARVEST_GREEN_GRAIN_MAX_PCT = 15.0
# Heat adjustment (Niigata Koshihikari rule, optional): 1,000 normally; 50 earlier if the
# mean of days 5-24 after heading is >= 26 C; 900 if >= 27 C.
HEAT_RULE_NORMAL_CDAY = 1000.0
HEAT_RULE_DAYS_AFTER_HEADING = (5, 24)  # inclusive
HEAT_RULE_STEPS = ((27.0, 900.0), (26.0, 950.0))  # (mean >= Cel, Cel-day), hottest first

# --- 4. Cold damage (yamase) --------------------------------------------------

MEIOSIS_DAYS_BEFORE_HEADING = (16, 7)  # most sensitive (Iwate guidance, NARO reigai)
COLD_DVI_WINDOW = (0.75, 1.2)  # SIMRIW sensitive window, inclusive
COLD_Q_BASE_C = 22.0  # Q = sum of max(22 - Tmean, 0) in the window (SIMRIW)
COLD_STERILITY_INTERCEPT_PCT = 4.6  # sterility % = 4.6 + 0.054 * Q ** 1.56 (SIMRIW)
COLD_STERILITY_COEF = 0.054
COLD_STERILITY_EXPONENT = 1.56
STERILITY_MAX_PCT = 100.0
COLD_TMIN_ONSET_C = 20.0  # sterility starts rising at Tmin <= 20 C
COLD_TMIN_SHARP_C = 17.0  # and rises sharply at <= 17 C
# Alternative bases: 20 C over 20 days before heading (Uchijima 1976); 20.5 C (NARO Tohoku 2003).
UCHIJIMA_BASE_C = 20.0
UCHIJIMA_DAYS_BEFORE_HEADING = 20
NARO_TOHOKU_BASE_C = 20.5
# Validation history: failure when the July or August mean <= 20 C; Aomori Jun-Aug means.
FAILURE_MONTH_MEAN_C = 20.0
AOMORI_NORMAL_JJA_MEAN_C = 20.2
AOMORI_1993_JJA_MEAN_C = 18.3  # crop index 28 (Tsugaru 45)
AOMORI_1980_JJA_MEAN_C = 19.2  # crop index 47
SEVERE_JJA_DEPARTURE_C = -2.0

# --- 5. Heat damage ------------------------------------------------------------

CHALKY_RISK_MEAN_C = (26.0, 27.0)  # 20-day post-heading mean above this (Morita 2008)
CHALKY_RISK_DAYS = 20
# Chalky % = 1.785 + 0.685 * t, t = accumulated (Tmean - 27) over 30 days after heading
# (Saitama, Sainominori regression).
CHALKY_INTERCEPT_PCT = 1.785
CHALKY_SLOPE_PCT_PER_CDAY = 0.685
CHALKY_BASE_C = 27.0
CHALKY_DAYS_AFTER_HEADING = 30
# Heat sterility % = 100 / (1 + exp(-0.853 * (Tmax - 36.6))), Tmax = mean daily maximum
# around flowering; SIMRIW averages over 0.96 < DVI < 1.20.
HEAT_STERILITY_SLOPE_PER_C = 0.853
HEAT_STERILITY_MID_C = 36.6
HEAT_STERILITY_DVI_WINDOW = (0.96, 1.20)

# --- 6. Rice blast (BLASTAM, Koshimizu 1988) -----------------------------------
# Hourly rules quoted through secondary sources; kept here so they can be corrected.

BLASTAM_WETNESS_WINDOW_HOURS = (16, 6)  # 16:00 to 06:00
BLASTAM_WETNESS_END_HOUR = 7  # wetness lasts to 07:00 unless interrupted
BLASTAM_WIND_BREAK_MS = 4.0  # one hour at or above ends wetness
BLASTAM_WIND_SUSTAINED_MS = 3.0  # ... or 3 consecutive hours at or above
BLASTAM_WIND_SUSTAINED_HOURS = 3
BLASTAM_DAWN_HOURS = (4, 7)  # from 04:00 to 07:00 any hour >= 3 m/s ends wetness
BLASTAM_WIND_WITH_RAIN_MS = 2.0  # 3 m/s with rain counts as 2 m/s
BLASTAM_SUNSHINE_BREAK_H = 0.2  # sunshine > 0.2 h after sunset ends wetness
BLASTAM_WASHOFF_MM_H = 4.0  # rain >= 4 mm/h washes spores off ...
BLASTAM_WASHOFF_SUSTAINED_MM_H = 3.0  # ... or >= 3 mm/h for 2 h or more
BLASTAM_WASHOFF_SUSTAINED_HOURS = 2
BLASTAM_WETNESS_TEMP_C = (15.0, 25.0)  # mean temperature during wetness
BLASTAM_FIVE_DAY_MEAN_C = (20.0, 25.0)  # 5-day mean including the day, [20, 25)
BLASTAM_MIN_WETNESS_HOURS = MappingProxyType({  # by mean temperature during wetness (Cel)
    15: 17, 16: 15, 17: 14, 18: 13, 19: 12, 20: 11, 21: 11, 22: 10, 23: 10, 24: 10, 25: 10,
})
BLASTAM_SUBFAVOURABLE_MIN_HOURS = 10  # below: not favourable (pref.mie.lg.jp byogai)
BLASTAM_LESION_LAG_DAYS = (7, 10)  # first lesions about 7 (7-10) days after a favourable day
LEAF_WETNESS_SENSOR_WET_V = 0.300  # dielectric sensor (Kitanihon Byogaichu 75:30-37, 2024)

# --- 7. Paddy water management ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaterDepth:
    """Target ponded depth above the soil surface, metres."""

    low_m: float
    high_m: float
    source: str


WATER_AFTER_TRANSPLANTING_SUNNY = WaterDepth(0.02, 0.03, "applenet.jp 23165 (Aomori)")
WATER_AFTER_TRANSPLANTING_COLD = WaterDepth(0.04, 0.05, "applenet.jp 23165 (Aomori)")
WATER_ROOTING_DAY = WaterDepth(0.03, 0.04, "reigai.affrc.go.jp kangai (Tohoku)")
WATER_ROOTING_NIGHT_M = 0.05  # same source
WATER_TILLERING = WaterDepth(0.02, 0.04, "reigai.affrc.go.jp kangai: about 3 cm")
MIDSEASON_DRAIN_DAYS_BEFORE_HEADING = (35, 40)  # agrin.jp nakaboshi
INTERMITTENT_FLOODED_DAYS = 2  # then INTERMITTENT_DRAINED_DAYS drained (agrin.jp nakaboshi)
INTERMITTENT_DRAINED_DAYS = (2, 3)
WATER_PANICLE_INITIATION = WaterDepth(0.04, 0.06, "i-agri.net (Iwate)")
WATER_MEIOSIS = WaterDepth(0.10, 0.12, "i-agri.net (Iwate): raised to 10 cm by meiosis")
WATER_COLD_FORECAST = WaterDepth(0.10, 0.12, "i-agri.net (Iwate): >= 10 cm when cold forecast")
WATER_SEVERE_COLD_FORECAST = WaterDepth(0.15, 0.17, "i-agri.net (Iwate): >= 15 cm at <= 17 C")
# The guidance does not say which temperature. Assumption: both are read as the forecast
# daily mean; "cold" as <= 20 C (the July/August failure threshold above). Read as daily
# minima they would call for deep water on most July nights of a normal Tsugaru summer.
COLD_FORECAST_C = 20.0
SEVERE_COLD_FORECAST_C = 17.0  # i-agri.net (Iwate)
PRECONDITIONING_DAYS_BEFORE_HEADING = 25  # about 10 cm from then raises pollen count (Yamagata)
WATER_PRECONDITIONING = WaterDepth(0.10, 0.12, "Yamagata guidance: about 10 cm")
WATER_AFTER_HEADING = WaterDepth(0.05, 0.06, "Aomori guidance: first 10 days after heading")
AFTER_HEADING_DEEP_DAYS = 10
FINAL_DRAIN_MIN_DAYS_AFTER_HEADING = 30  # no earlier than 30 days after heading (Aomori)
SENSOR_INTERVAL_S = (600, 3600)  # commercial paddy sensors report every 10-60 min

# --- 9. Remote sensing ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Band:
    """A spectral band: centre and half width of the pass band, nm."""

    name: str
    centre_nm: float
    half_width_nm: float


# DJI P4 Multispectral (section 9): 2.08 MP per band, GSD about 5 cm at 100 m height.
P4M_BANDS = (
    Band("blue", 450.0, 16.0),
    Band("green", 560.0, 16.0),
    Band("red", 650.0, 16.0),
    Band("red_edge", 730.0, 16.0),
    Band("nir", 840.0, 26.0),
)
P4M_GSD_M = 0.05
P4M_FLIGHT_HEIGHT_M = 100.0
# Aomori harvest-timing map: red reflectance 658-670 nm, imagery 17-37 days after heading
# (Sakaiya et al. 2016).
HARVEST_MAP_RED_NM = (658.0, 670.0)
HARVEST_MAP_DAYS_AFTER_HEADING = (17, 37)
PROTEIN_MAP_DAYS_BEFORE_HARVEST = 25  # green and NIR bands (Sakaiya & Inoue 2012)
# Published protein fits are modest: R2 0.4-0.6 (Saga); r2 0.39, RMSE 0.26 % (GNDVI,
# Ryu et al. 2011); RMSE < 0.4 % within 20 days of maturity (Hokkaido).
PUBLISHED_PROTEIN_R2 = (0.39, 0.6)
PUBLISHED_PROTEIN_RMSE_PCT = 0.26
# Yield: brown rice (kg/a) = 0.371 x total dry weight (kg/a) + 0.72, r = 0.86; ~40 plots.
YIELD_SLOPE = 0.371
YIELD_INTERCEPT_KG_PER_A = 0.72
YIELD_GROUND_PLOTS = 40

# --- 10. Protein map and fertiliser plan ----------------------------------------------
# Not published: the platform's assumptions, each with its reasoning. The class limits
# are TARGET_PROTEIN_MAX_PCT and SHIPPING_PROTEIN_MAX_PCT (section 1).

# A lab protein outside this range is an entry error, not a sample: brown-rice protein of
# Japanese japonica cultivars lies near 5-9 %, so 3-12 % keeps every real sample and
# catches a slipped decimal point (64 for 6.4) or a value on another basis.
PROTEIN_PLAUSIBLE_PCT = (3.0, 12.0)
# A field's image statistics are read only when at least this fraction of its pixels is
# valid (not cloud, shadow or nodata): below half, the mean describes part of the field
# and mixed levee pixels weigh too much.
MAP_MIN_VALID_FRACTION = 0.5
BALE_KG = 60.0  # one bale (hyo) of brown rice, the unit of TARGET_YIELD_BALES_PER_10A
# Next season's total N from this season's protein. Fertiliser trials in northern Japan
# put the rise of brown-rice protein at very roughly 0.2 points per extra 1 kg N/10a
# (order of magnitude, not an Aomori figure): so 0.5 kg N/10a less for each 0.1 % above
# the target, always within the published range (section 1) and never below its low end.
N_REDUCTION_KG_PER_10A_PER_0_1_PCT = 0.5
# More N only where protein is clearly low (this margin under the target, so that the
# increase, about 0.1 % protein by the slope above, still leaves room under the target)
# and the yield is below TARGET_YIELD_BALES_PER_10A; never above the range's high end.
N_INCREASE_PROTEIN_MARGIN_PCT = 0.3
N_INCREASE_KG_PER_10A = 0.5
N_PLAN_STEP_KG_PER_10A = 0.1  # a plan is stated to 0.1 kg N/10a
# Inputs beyond these are entry errors: no paddy in Japan yields 1,200 kg/10a, and no
# standard applies 20 kg N/10a to rice.
YIELD_PLAUSIBLE_MAX_BALES_PER_10A = 20.0
N_PLAUSIBLE_MAX_KG_PER_10A = 20.0

# --- 11. Advice rules --------------------------------------------------------------------
# When the platform raises an advisory. Not published: each number is an assumption with
# its reasoning; what the advice says comes from the sections above.

# Deep water against cold counts from preconditioning (PRECONDITIONING_DAYS_BEFORE_HEADING),
# which starts this many days (9) before the most sensitive period (meiosis): cold advice
# is raised that early when the weather turns cold.
COLD_ADVICE_LEAD_DAYS = PRECONDITIONING_DAYS_BEFORE_HEADING - MEIOSIS_DAYS_BEFORE_HEADING[0]
RECENT_TMEAN_DAYS = 3  # "the weather turns cold": mean of the last 3 observed days
# Heat sterility worth a warning: 10 %, reached by the SIMRIW curve (section 5) at a mean
# daily maximum of about 34 C around flowering; a few percent is normal.
HEAT_STERILITY_ADVICE_PCT = 10.0
HARVEST_ADVICE_LEAD_DAYS = 7  # a week to ready combines and dryers before the window opens
MIDSEASON_ADVICE_LEAD_DAYS = 3  # days before mid-season drainage starts to remind of it
# Water off its band this long gets an advisory: a day covers the farmers' morning and
# evening rounds, and shorter excursions (rain, a refill) correct themselves.
WATER_OFF_TARGET_ADVICE_HOURS = 24.0
WATER_NO_DATA_ADVICE_HOURS = 24.0  # a paddy sensor silent for a day: check it
