"""Calibration constants of the Tsugaru weather generator (``agri.simulator.weather``).

Every number sits here with its source. Monthly tables run January..December. Numbers
marked "assumption" are not published for the station; they are chosen to be plausible
for the Sea-of-Japan side of northern Tohoku and are safe to override per deployment.
Numbers marked "fitted" were tuned so that the simulated statistics land on the published
targets named beside them.
"""

from __future__ import annotations

# --- Station -------------------------------------------------------------------------

STATION_NAME = "Hirosaki"
LATITUDE_DEG = 40.61  # Hirosaki AMeDAS station
LONGITUDE_DEG = 140.46  # Hirosaki AMeDAS station
from agri.clock import TIME_ZONE as TIMEZONE  # noqa: E402, F401 - UTC+9, no DST

STANDARD_MERIDIAN_DEG = 135.0  # meridian of Japan Standard Time (UTC+9)
FIRST_YEAR_WITHOUT_DST = 1952  # Japan observed daylight saving time 1948-1951

# --- Temperature ---------------------------------------------------------------------

# Monthly mean temperature, C. Hirosaki, AMeDAS quasi-normals 1979-1990 (JMA).
MEAN_TEMP_C = (-2.5, -1.9, 1.4, 8.1, 13.5, 17.7, 20.9, 23.3, 18.2, 11.8, 5.7, 0.9)

# Mean daily maximum, C. Hirosaki, JMA normals 1991-2020 (via a secondary source).
# Used only as the target of DIURNAL_RANGE_C below.
MEAN_TMAX_C = (1.7, 2.5, 6.7, 14.3, 20.3, 23.9, 27.4, 28.8, 24.9, 18.4, 11.3, 4.4)

# Mean diurnal range (daily max - daily min of the hourly values), C. Fitted so that the
# simulated mean daily maximum lands about 0.8 C under MEAN_TMAX_C: that table covers
# 1991-2020, which ran warmer than the 1979-1990 means above (assumption). Read against
# the older means, the newer maxima imply wide ranges, so simulated minima run low
# (July about 15 C); a deployment holding its station's own minima should refit these.
DIURNAL_RANGE_C = (6.1, 6.6, 8.5, 10.6, 12.3, 11.3, 11.8, 9.3, 11.4, 10.8, 8.7, 4.8)

# Share of the clear-day diurnal range left on a day without sunshine (assumption).
DIURNAL_RANGE_OVERCAST_SHARE = 0.4

# Diurnal cycle of Parton & Logan (1981, Agric. Meteorol. 23:205-216), their fit for air
# at 150 cm: the daytime sine peaks this many hours after solar noon (about 13:30 at
# Hirosaki; the city history, Shinpen Hirosaki Shishi vol. 1 ch. 1 sec. 6, puts the
# maximum around 14:00 and the minimum at dawn), and the night decays exponentially with
# this coefficient.
PARTON_LOGAN_MAX_LAG_H = 1.86
PARTON_LOGAN_NIGHT_DECAY = 2.2

# Day-to-day anomaly of the daily mean: AR(1) with this lag-one correlation (assumption,
# typical of mid-latitude stations) and monthly standard deviation, C (assumption;
# smaller in summer, where yamase episodes and the year type add their own swings).
TEMP_ANOMALY_LAG1 = 0.7
TEMP_ANOMALY_SD_C = (2.0, 2.0, 1.9, 1.8, 1.5, 1.0, 0.9, 0.9, 1.3, 1.6, 1.8, 2.0)

# --- Summer year types ---------------------------------------------------------------

# Target June-August mean temperature, C, of a cool / normal / hot season. Project
# agronomy reference: a cool year near 18-19 C (Aomori 1993: 18.3 C, 1980: 19.2 C),
# a normal year near 20-21 C, a hot year near 23 C.
JJA_TARGET_C = {"cool": 18.5, "normal": 20.5, "hot": 23.0}

# Probability that a year is cool (assumption: roughly one summer in seven). The hot
# share is derived so that the climate mix reproduces the June-August mean of
# MEAN_TEMP_C (it comes to about 0.19); the rest is normal.
COOL_YEAR_PROBABILITY = 0.15

# Days over which the background anomaly of a cool or hot season ramps in before
# 1 June and out after 31 August (assumption).
SEASON_ANOMALY_RAMP_DAYS = 15

# How a season's departure is spread over June-August: weights at mid-June, mid-July and
# mid-August, linear between and held before and after. Both the background anomaly and
# the yamase episode rate (YAMASE_START_RATE_PER_DAY) of the type follow them; their sizes
# are set by JJA_TARGET_C and by that rate. Cool seasons grow colder through the summer
# (assumption): crops failed in cool years when the July or August mean fell to 20 C or
# below (project agronomy reference), the months in which the Tsugaru crop goes through
# meiosis and heading (late July to mid-August, SIMRIW's cold-sensitive window): the cool
# weights rise linearly from half the season's mean in mid-June to one and a half times it
# in mid-August. A cool season then runs about 1.0 C under a normal one in June, 2.0 C in
# July and 2.9 C in August (July near 19 C, August near 20.5 C). Normal and hot seasons
# are flat.
SEASON_PROFILE = {"cool": (0.5, 1.0, 1.5), "normal": (1.0, 1.0, 1.0), "hot": (1.0, 1.0, 1.0)}

# --- Yamase ---------------------------------------------------------------------------

# Cooling of the daily mean during an episode, C: yamase winds run about 5 C colder than
# westerlies at Hachinohe (project agronomy reference). Applied to Hirosaki unchanged
# (assumption; the Ou mountains shelter the Tsugaru side somewhat).
YAMASE_COOLING_C = 5.0

# Rise of the daily relative humidity during an episode, %RH: yamase air is about
# 18 % more humid than westerlies at Hachinohe (project agronomy reference), read here
# as +18 points of relative humidity (assumption).
YAMASE_HUMIDITY_RISE_PCT = 18.0

# Share of the day's relative sunshine an episode removes (assumption: the Tsugaru side,
# west of the Ou mountains, keeps more sunshine than the Pacific side).
YAMASE_SUNSHINE_CUT = 0.5

# Episode starts: a daily Bernoulli (discrete Poisson) process from 1 June to 31 August,
# mean rate per day by year type (assumption), shaped over the season by SEASON_PROFILE
# (rising from June to August in a cool season). Expected yamase days in June-August:
# about 12 in a cool season, 4 in a normal one, 1 in a hot one; the rest of a cool or hot
# season's departure is a background anomaly (see JJA_TARGET_C). Rates and duration are
# kept low enough that one simulated season rarely strays more than 1 C from its target.
YAMASE_START_RATE_PER_DAY = {"cool": 0.05, "normal": 0.015, "hot": 0.004}
YAMASE_SEASON_MONTHS = (6, 7, 8)

# Mean episode length, days (assumption). Lengths are geometric: most episodes last days,
# about one in eleven a week or more ("days to weeks").
YAMASE_MEAN_DURATION_DAYS = 3.0

# Wind during an episode: from the east-north-east (north-easterly to easterly,
# project agronomy reference), spread as a von Mises distribution (assumption).
YAMASE_WIND_FROM_DEG = 67.5
YAMASE_WIND_CONCENTRATION = 12.0

# --- Precipitation -------------------------------------------------------------------

# Annual precipitation, mm. Shinpen Hirosaki Shishi, vol. 1, ch. 1, sec. 6: Aomori
# 1,300 mm, Hirosaki 1,100 mm, Kuroishi about 900 mm.
ANNUAL_PRECIPITATION_MM = 1100.0

# Monthly share of the annual total (assumption: snowy December-January, driest April-
# June, wettest July-September, as on the Sea-of-Japan side of northern Tohoku).
PRECIPITATION_SHARE = (
    0.100, 0.073, 0.064, 0.055, 0.064, 0.059, 0.109, 0.114, 0.100, 0.081, 0.090, 0.091,
)

# Probability that a day has precipitation, and the lag-one correlation of the wet/dry
# state (assumption). Wet/dry days follow a first-order Markov chain and amounts a gamma
# distribution, as in WGEN (Richardson & Wright 1984, USDA ARS-8).
WET_DAY_PROBABILITY = (0.60, 0.55, 0.45, 0.36, 0.32, 0.32, 0.36, 0.35, 0.38, 0.42, 0.52, 0.60)
WET_DAY_PERSISTENCE = 0.3
PRECIPITATION_GAMMA_SHAPE = 0.75  # assumption, within the 0.6-0.9 usual for daily totals

# Mean intensity while it precipitates, mm/h (assumption: light snow in winter, showers
# and frontal rain in summer); sets how many hours a day's amount is spread over.
PRECIPITATION_INTENSITY_MM_H = (0.8, 0.8, 0.9, 1.1, 1.4, 1.8, 2.4, 2.6, 2.2, 1.6, 1.1, 0.9)
# Gamma shape of a day's intensity and of the hour-to-hour split of the spell (assumption).
PRECIPITATION_INTENSITY_GAMMA_SHAPE = 2.0

# --- Sunshine and radiation ----------------------------------------------------------

# Monthly sunshine hours. Aomori Local Meteorological Observatory, JMA normals 1961-1990
# (1,695 h/year; Shinpen Hirosaki Shishi, vol. 1, table 19).
SUNSHINE_H = (56, 75, 145, 189, 216, 186, 179, 189, 163, 156, 88, 53)

# Relative sunshine of a wet day as a share of a dry day's (assumption).
WET_DAY_SUNSHINE_SHARE = 0.3

# Weight of an hour with precipitation, against 1 for a dry hour, when a day's sunshine is
# spread over its hours (assumption: bright spells between showers and snow flurries).
RAIN_HOUR_SUNSHINE_WEIGHT = 0.1

# Hour-to-hour spread of relative sunshine within a day, log scale (assumption).
SUNSHINE_HOUR_SD_LOG = 0.5

# Concentration of the beta distribution of a day's relative sunshine (assumption).
SUNSHINE_BETA_CONCENTRATION = 4.0

# Angstrom-Prescott coefficients, global = extraterrestrial x (a + b x relative sunshine),
# and the solar constant, W/m2: FAO Irrigation and Drainage Paper 56 (Allen et al. 1998),
# eq. 35 defaults and Gsc = 0.0820 MJ/m2/min.
ANGSTROM_A = 0.25
ANGSTROM_B = 0.50
SOLAR_CONSTANT_W_M2 = 1367.0

# --- Humidity ------------------------------------------------------------------------

# Daily mean relative humidity of a dry day without yamase, %RH (assumption, near the
# 70-80 % normals of Sea-of-Japan-side Tohoku stations), the rise on a wet day, and the
# day-to-day spread.
DRY_DAY_RH_PCT = (74.0, 72.0, 66.0, 60.0, 62.0, 69.0, 73.0, 73.0, 72.0, 69.0, 70.0, 73.0)
WET_DAY_RH_RISE_PCT = 12.0
DAY_RH_SD_PCT = 6.0
HOUR_RH_SD_PCT = 2.0  # hour-to-hour noise (assumption)
RAIN_HOUR_MIN_RH_PCT = 92.0  # relative humidity while it rains, drawn between these two
RAIN_HOUR_MAX_RH_PCT = 98.0  # (assumption)

# Exponent with which the hour's vapour pressure follows the hour's saturation vapour
# pressure: 0 holds it at the day's value, 1 keeps relative humidity constant (assumption:
# dawn near 95 % and mid-afternoon near 60 % on an ordinary summer day).
VAPOUR_DIURNAL_COUPLING = 0.3

# --- Wind ----------------------------------------------------------------------------

# Monthly mean wind speed at the anemometer, m/s (assumption: windier in the winter
# monsoon, calmest in summer).
WIND_MEAN_MS = (3.3, 3.3, 3.3, 3.4, 3.0, 2.5, 2.3, 2.3, 2.4, 2.7, 3.1, 3.3)
WIND_DAY_SD_LOG = 0.35  # day-to-day spread, log scale (assumption)
WIND_HOUR_SD_LOG = 0.25  # hour-to-hour spread, log scale (assumption)
WIND_DIURNAL_AMPLITUDE = 0.3  # relative (assumption) ...
WIND_PEAK_HOUR = 14.0  # ... strongest at this local hour, with the warmest air (assumption)

# Direction the wind blows from outside yamase, degrees: westerlies, west-north-west in
# the winter monsoon (assumption), with day-to-day and hour-to-hour von Mises spreads.
PREVAILING_WIND_FROM_DEG = (292.5, 292.5, 282.0, 270.0, 260.0, 250.0, 250.0, 255.0, 265.0,
                            280.0, 292.5, 292.5)
WIND_DAY_CONCENTRATION = 1.5
WIND_HOUR_CONCENTRATION = 6.0

# --- Leaf wetness --------------------------------------------------------------------

# Dew forms on a leaf-wetness sensor when it is dark (global radiation below the value
# here, W/m2), relative humidity is high and wind is light (assumption).
DEW_MAX_RADIATION_W_M2 = 50.0
DEW_RH_START_PCT = 88.0  # wet fraction rises from here ...
DEW_RH_FULL_PCT = 96.0  # ... to fully wet here
DEW_CALM_MS = 1.0  # fully wet at or under this wind speed ...
DEW_WINDY_MS = 3.0  # ... and dry at or above it

# The hour after rain stays wet in the dark or at DEW_RH_FULL_PCT and above; in daylight
# and drier air the sensor dries within the hour, wet for this share of it (assumption).
AFTER_RAIN_SUNLIT_WET_SHARE = 0.5
