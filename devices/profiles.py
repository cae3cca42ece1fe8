"""Device profiles: which metrics a kind of device reports, in which unit,
within which physical range, and how often.

This module is the one place that knows a metric's canonical unit (SenML
units, RFC 8428 section 12.1 and the secondary-unit registry of RFC 8798),
the units accepted and converted on ingest, and the physically possible
range. Profile and metric names are part of the public contract (see the README).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Metric:
    """One measured quantity.

    ``low``/``high`` bound the physically possible value in the canonical
    unit; anything outside is a sensor or encoding fault and is rejected.
    ``convert`` maps accepted non-canonical units to the exact factor (a
    Fraction) that turns them into the canonical unit; :func:`scale` applies
    it with one correctly rounded result.
    """

    name: str
    unit: str
    low: float
    high: float
    description: str
    convert: Mapping[str, Fraction] = field(default_factory=dict)
    boolean: bool = False  # accepts SenML ``vb`` (stored as 0/1, never scaled)

    def factor(self, unit: str | None) -> Fraction | None:
        """Exact factor from ``unit`` to the canonical unit; None if not accepted."""
        if unit is None or unit == self.unit:
            return ONE
        return self.convert.get(unit)


ONE = Fraction(1)


def scale(value: float, factor: Fraction) -> float:
    """``value * factor`` rounded once, as if computed exactly: 0.07 cm is the
    float nearest to 0.0007 m (multiplying by the float 0.01 is not). Factors
    n or 1/n take one float operation; any other ratio goes through Fraction."""
    if factor == ONE:
        return value
    n, d = factor.numerator, factor.denominator
    if d == 1:
        return value * n
    if n == 1:
        return value / d
    return float(Fraction(value) * factor)


@dataclass(frozen=True, slots=True)
class Profile:
    """A kind of device: its metrics and their expected reporting interval (s);
    ``flights``: it sends drone flight records (only such devices may)."""

    name: str
    description: str
    intervals_s: Mapping[str, int]
    flights: bool = False

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.intervals_s)


def _metrics(*items: Metric) -> Mapping[str, Metric]:
    return MappingProxyType({m.name: m for m in items})


METRICS: Mapping[str, Metric] = _metrics(
    # Paddy water. Level is relative to the soil surface: negative when the
    # paddy is drained below the surface (mid-season drainage, final drainage).
    Metric("water_level", "m", -0.30, 0.50, "paddy water depth above the soil surface",
           {"cm": Fraction(1, 100), "mm": Fraction(1, 1000)}),
    Metric("water_temp", "Cel", -5.0, 50.0, "paddy water temperature"),
    Metric("battery", "%EL", 0.0, 100.0, "remaining battery charge"),
    # Weather station.
    Metric("air_temp", "Cel", -40.0, 50.0, "air temperature at 1.5 m"),
    Metric("rel_humidity", "%RH", 0.0, 100.0, "relative humidity"),
    Metric("precipitation", "mm", 0.0, 200.0, "precipitation during the record interval",
           {"m": Fraction(1000)}),
    # km/h: a secondary unit of m/s (RFC 8798), factor 1000/3600 = 5/18.
    Metric("wind_speed", "m/s", 0.0, 75.0, "mean wind speed over the record interval",
           {"km/h": Fraction(5, 18)}),
    Metric("wind_direction", "deg", 0.0, 360.0, "direction the wind blows from"),
    Metric("solar_radiation", "W/m2", 0.0, 1500.0, "global solar irradiance"),
    Metric("sunshine_duration", "s", 0.0, 3600.0,
           "seconds of bright sunshine during the record interval (at most one hour)"),
    Metric("leaf_wetness", "/", 0.0, 1.0,
           "fraction of the record interval the leaf-wetness sensor read wet",
           {"%": Fraction(1, 100)},
           boolean=True),
    # Soil.
    Metric("soil_moisture", "/", 0.0, 1.0, "volumetric water content (m3/m3)",
           {"%": Fraction(1, 100)}),
    Metric("soil_temp", "Cel", -20.0, 50.0, "soil temperature at 10 cm"),
    Metric("soil_ec", "S/m", 0.0, 2.0, "bulk electrical conductivity of the soil"),
)

PROFILES: Mapping[str, Profile] = MappingProxyType({
    p.name: p
    for p in (
        Profile("paddy-water", "paddy water level and temperature sensor (LoRaWAN or LTE-M)",
                {"water_level": 600, "water_temp": 600, "battery": 3600}),
        Profile("weather-station", "field weather station",
                {"air_temp": 600, "rel_humidity": 600, "precipitation": 600,
                 "wind_speed": 600, "wind_direction": 600, "solar_radiation": 600,
                 "sunshine_duration": 3600, "leaf_wetness": 600, "battery": 3600}),
        Profile("soil", "soil moisture, temperature and EC probe",
                {"soil_moisture": 1800, "soil_temp": 1800, "soil_ec": 1800, "battery": 3600}),
        Profile("drone", "survey or spraying drone (flight records and imagery, no readings)",
                {}, flights=True),
    )
})


def profile(name: str) -> Profile:
    """The profile called ``name``; raises UnknownProfile with the known names."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(name) from None


class UnknownProfile(KeyError):
    """The profile name is not one of PROFILES."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown profile {self.name!r}; choose one of: {', '.join(PROFILES)}"
