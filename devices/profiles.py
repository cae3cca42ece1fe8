"""Device profiles: which metrics a kind of device reports, in which unit,
within which physical range, how often, in which payload formats, and which
commands it accepts.

Profiles and metrics are data: ``devices/profiles/metrics.toml`` and one
TOML file per profile beside it, plus the files of the folder named by
AGRI_PROFILES_DIR, if set (see docs/device-developers.md, "Adding a device
type"). They are read and checked once, when this module is imported; a bad
file stops the process with a message naming the file, the key and what is
wrong (exit code 2).

This module is the one place that knows a metric's canonical unit (SenML
units, RFC 8428 section 12.1 and the secondary-unit registry of RFC 8798),
the units accepted and converted on ingest, and the physically possible
range. Profile and metric names are part of the public contract (see the README).
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agri.settings import ProfilesSettings


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
class Argument:
    """One argument of a command: a number within ``low``..``high`` (in
    ``unit``, if it has one), a whole number if ``integer``."""

    name: str
    low: float
    high: float
    unit: str | None = None
    integer: bool = False


@dataclass(frozen=True, slots=True)
class Command:
    """A command a device accepts, with its arguments (devices/commands.py)."""

    name: str
    args: Mapping[str, Argument] = field(default_factory=dict)


# The payload formats, as devices.topics.Format names them (that module
# imports this one, so they cannot be taken from it here; the profile tests
# check the two are the same).
FORMATS = ("senml", "senml-cbor", "events", "acks", "flights", "tts-uplink",
           "chirpstack-uplink")
DEVICE_FORMATS = ("senml", "senml-cbor", "events", "acks", "tts-uplink", "chirpstack-uplink")
# The LoRaWAN FPort commands go out on, as a downlink through the device's
# bridge, unless its profile names another (``downlink_port``); 1 to 223 are
# the application's ports (LoRaWAN 1.0.4, section 4.3.2).
DOWNLINK_PORT = 10
DOWNLINK_PORTS = range(1, 224)


@dataclass(frozen=True, slots=True)
class Profile:
    """A kind of device: its metrics and their expected reporting interval (s);
    ``flights``: it sends drone flight records (only such devices may).

    ``version`` numbers the profile's definition (devices record the version
    they were registered with); ``battery`` names the metric that reports the
    battery, if any; ``formats`` are the payload formats it sends;
    ``commands`` those it accepts, sent to a LoRaWAN device on FPort
    ``downlink_port``; ``optional`` the
    metrics a device of the profile may lack altogether (a gate without a
    canal level sensor): not counted as missing while it has never sent them."""

    name: str
    description: str
    intervals_s: Mapping[str, int]
    flights: bool = False
    version: int = 1
    battery: str | None = None
    formats: tuple[str, ...] = DEVICE_FORMATS
    commands: Mapping[str, Command] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()
    downlink_port: int = DOWNLINK_PORT

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.intervals_s)


# SenML unit names: RFC 8428 section 12.1 (with the units it marks as not
# recommended for new producers), the primary units added by RFC 8798, and
# RFC 8798's secondary units.
SENML_UNITS = frozenset("""
m kg g s A K cd mol Hz rad sr N Pa J W C V F Ohm S Wb T H Cel lm lx Bq Gy Sv kat
m2 m3 l m/s m/s2 m3/s l/s W/m2 cd/m2 bit bit/s lat lon pH dB dBW Bspl count / % %RH
%EL EL 1/s 1/min beat/min beats S/m
B VA VAs var vars J/m kg/m3 deg
ms min h MHz kW kVA kvar Ah Wh kWh varh kvarh kVAh Wh/km KiB GB Mbit/s B/s MB/s mV mA
dBm ug/m3 mm/h m/h ppm /100 /1000 hPa mm cm km km/h
""".split())

PACKAGE_DIR: Traversable = resources.files("agri.devices") / "profiles"
METRICS_FILE = "metrics.toml"
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,47}")
METRIC_RE = re.compile(r"[a-z][a-z0-9_]{0,47}")
FACTOR_RE = re.compile(r"([1-9][0-9]*)(?:/([1-9][0-9]*))?")


class ProfileError(ValueError):
    """A profile or metrics file is not valid; the message names the file,
    the key and what is wrong."""

    def __init__(self, file: str, key: str | None, problem: str) -> None:
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")
        self.file, self.key, self.problem = file, key, problem


class _File:
    """One TOML file being read: its name for messages, and checks of its values."""

    def __init__(self, path: Traversable | Path, label: str) -> None:
        self.label = label
        try:
            self.data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(label, None, f"not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(label, None, f"cannot be read: {exc}") from None

    def fail(self, key: str | None, problem: str) -> ProfileError:
        return ProfileError(self.label, key, problem)

    def keys(self, table: Mapping, key: str | None, *, required: Iterable[str],
              optional: Iterable[str] = ()) -> None:
        required = tuple(required)
        allowed = set(required) | set(optional)
        for k in table:
            if k not in allowed:
                raise self.fail(_join(key, k),
                                f"unknown key; expected {', '.join(sorted(allowed))}")
        for k in required:
            if k not in table:
                raise self.fail(_join(key, k), "missing")

    def table(self, value: Any, key: str) -> Mapping:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, not {_kind(value)}")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty string, not {_kind(value)}")
        return value

    def number(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value \
                or value in (float("inf"), float("-inf")):
            raise self.fail(key, f"must be a finite number, not {_kind(value)}")
        return float(value)

    def positive_int(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(key, f"must be a positive whole number, not {_kind(value)}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {_kind(value)}")
        return value

    def unit(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or value not in SENML_UNITS:
            raise self.fail(key, f"{value!r} is not a SenML unit (RFC 8428 section 12.1, "
                                 f"RFC 8798), e.g. 'm', 'Cel', '%EL', '/'")
        return value

    def range(self, table: Mapping, key: str) -> tuple[float, float]:
        low = self.number(table["low"], _join(key, "low"))
        high = self.number(table["high"], _join(key, "high"))
        if low >= high:
            raise self.fail(key, f"low ({low:g}) must be below high ({high:g})")
        return low, high


def _join(key: str | None, sub: str) -> str:
    return f"{key}.{sub}" if key else sub


def _kind(value: Any) -> str:
    return repr(value) if isinstance(value, str | int | float | bool) else type(value).__name__


def _factor(f: _File, value: Any, key: str) -> Fraction:
    """An exact factor: a positive integer, or a string "n" or "n/d"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return Fraction(value)
    if isinstance(value, str) and (m := FACTOR_RE.fullmatch(value)):
        return Fraction(int(m.group(1)), int(m.group(2) or 1))
    raise f.fail(key, f"factor {_kind(value)} is not exact: write a positive integer "
                      f"or a fraction in quotes, such as \"1/100\"")


def _read_metrics(f: _File, known: Mapping[str, tuple[Metric, str]]) -> dict[str, Metric]:
    """The metrics of one metrics file; ``known``: those read before, with their file."""
    found: dict[str, Metric] = {}
    for name, spec in f.data.items():
        if not METRIC_RE.fullmatch(name):
            raise f.fail(name, f"a metric name is lower case letters, digits and _, "
                               f"at most 48 (pattern {METRIC_RE.pattern})")
        spec = f.table(spec, name)
        f.keys(spec, name, required=("unit", "low", "high", "description"),
               optional=("accept", "boolean"))
        unit = f.unit(spec["unit"], f"{name}.unit")
        if name in known:
            earlier, where = known[name]
            if earlier.unit != unit:
                raise f.fail(f"{name}.unit", f"changes the canonical unit of {name} from "
                                             f"{earlier.unit!r} ({where}) to {unit!r}: readings "
                                             f"stored in {earlier.unit!r} would be misread; "
                                             f"choose a new metric name")
            raise f.fail(name, f"already defined in {where}; choose another name")
        low, high = f.range(spec, name)
        convert: dict[str, Fraction] = {}
        for other, factor in f.table(spec.get("accept", {}), f"{name}.accept").items():
            key = f"{name}.accept.{other}"
            f.unit(other, key)
            if other == unit:
                raise f.fail(key, f"{other!r} is the canonical unit; list only other units")
            convert[other] = _factor(f, factor, key)
        boolean = f.boolean(spec.get("boolean", False), f"{name}.boolean")
        found[name] = Metric(name, unit, low, high, f.text(spec["description"],
                                                          f"{name}.description"),
                             MappingProxyType(convert), boolean)
    return found


def _own_metric(f: _File, key: str, metric: Any, intervals: Mapping[str, int]) -> None:
    if metric not in intervals:
        raise f.fail(key, f"{_kind(metric)} is not one of this profile's metrics "
                          f"({', '.join(intervals) or 'none'})")


def _read_profile(f: _File, metrics: Mapping[str, Metric]) -> Profile:
    d = f.data
    f.keys(d, None, required=("name", "version", "description", "formats", "metrics"),
           optional=("battery", "flights", "commands", "optional", "downlink_port"))
    name = f.text(d["name"], "name")
    if not NAME_RE.fullmatch(name):
        raise f.fail("name", f"{name!r}: a profile name is lower case letters, digits and -, "
                             f"at most 48 (pattern {NAME_RE.pattern})")
    version = f.positive_int(d["version"], "version")
    intervals: dict[str, int] = {}
    for metric, interval in f.table(d["metrics"], "metrics").items():
        if metric not in metrics:
            raise f.fail(f"metrics.{metric}", f"unknown metric {metric!r}: define it in "
                                              f"{METRICS_FILE} first")
        intervals[metric] = f.positive_int(interval, f"metrics.{metric}")
    battery = None
    if "battery" in d:
        battery = f.text(d["battery"], "battery")
        _own_metric(f, "battery", battery, intervals)
    optional = d.get("optional", [])
    if not isinstance(optional, list):
        raise f.fail("optional", f"must be a list of this profile's metrics, not "
                                 f"{_kind(optional)}")
    for metric in optional:
        _own_metric(f, "optional", metric, intervals)
    formats = d["formats"]
    if not isinstance(formats, list) or not formats:
        raise f.fail("formats", f"must be a non-empty list of payload formats, "
                                f"not {_kind(formats)}")
    for fmt in formats:
        if fmt not in FORMATS:
            raise f.fail("formats", f"unknown payload format {_kind(fmt)}; choose among "
                                    f"{', '.join(FORMATS)}")
    if len(set(formats)) != len(formats):
        raise f.fail("formats", "lists a format twice")
    flights = f.boolean(d.get("flights", False), "flights")
    if flights != ("flights" in formats):
        raise f.fail("flights", "flights = true goes with the format 'flights' in formats, "
                                "and only with it")
    commands = {}
    for cmd, args in f.table(d.get("commands", {}), "commands").items():
        if not METRIC_RE.fullmatch(cmd):
            raise f.fail(f"commands.{cmd}", f"a command name is lower case letters, digits "
                                            f"and _ (pattern {METRIC_RE.pattern})")
        parsed = {}
        for arg, spec in f.table(args, f"commands.{cmd}").items():
            parsed[arg] = _argument(f, arg, spec, f"commands.{cmd}.{arg}", metrics)
        commands[cmd] = Command(cmd, MappingProxyType(parsed))
    port = d.get("downlink_port", DOWNLINK_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or port not in DOWNLINK_PORTS:
        raise f.fail("downlink_port", f"must be a LoRaWAN application port, a whole number "
                                      f"from 1 to 223, not {_kind(port)}")
    return Profile(name, f.text(d["description"], "description"), MappingProxyType(intervals),
                   flights, version, battery, tuple(formats), MappingProxyType(commands),
                   frozenset(optional), port)


def _argument(f: _File, name: str, spec: Any, key: str,
              metrics: Mapping[str, Metric]) -> Argument:
    spec = f.table(spec, key)
    if "metric" in spec:
        f.keys(spec, key, required=("metric",), optional=("integer",))
        metric = metrics.get(spec["metric"])
        if metric is None:
            raise f.fail(f"{key}.metric", f"unknown metric {_kind(spec['metric'])}")
        return Argument(name, metric.low, metric.high, metric.unit,
                        f.boolean(spec.get("integer", False), f"{key}.integer"))
    f.keys(spec, key, required=("low", "high"), optional=("unit", "integer"))
    low, high = f.range(spec, key)
    unit = f.unit(spec["unit"], f"{key}.unit") if "unit" in spec else None
    return Argument(name, low, high, unit, f.boolean(spec.get("integer", False),
                                                     f"{key}.integer"))


def load(folders: Iterable[tuple[Traversable | Path, str]]
         ) -> tuple[Mapping[str, Metric], Mapping[str, Profile]]:
    """Read and check the metrics and profiles of ``folders`` ((folder, its
    name in messages), in order): each may hold a ``metrics.toml`` adding
    metrics and any number of profile files (``*.toml``, read in name order).
    Raises ProfileError for the first problem."""
    metrics: dict[str, tuple[Metric, str]] = {}
    profiles: dict[str, tuple[Profile, str]] = {}
    files = []
    for folder, label in folders:
        if not folder.is_dir():
            raise ProfileError(label, None, "not a folder")
        entries = sorted((e for e in folder.iterdir() if e.name.endswith(".toml")),
                         key=lambda e: e.name)
        for entry in entries:
            where = f"{label}/{entry.name}"
            if entry.name == METRICS_FILE:
                f = _File(entry, where)
                metrics.update({n: (m, where) for n, m in _read_metrics(f, metrics).items()})
            else:
                files.append((entry, where))
    known = {n: m for n, (m, _) in metrics.items()}
    for entry, where in files:
        p = _read_profile(_File(entry, where), known)
        if p.name in profiles:
            raise ProfileError(where, "name", f"profile {p.name!r} is already defined in "
                                              f"{profiles[p.name][1]}")
        profiles[p.name] = (p, where)
    return (MappingProxyType(known),
            MappingProxyType({n: p for n, (p, _) in profiles.items()}))


def folders(extra: Path | None) -> list[tuple[Traversable | Path, str]]:
    """The shipped profiles, then those of ``extra`` (AGRI_PROFILES_DIR)."""
    found: list[tuple[Traversable | Path, str]] = [(PACKAGE_DIR, "devices/profiles")]
    if extra is not None:
        found.append((extra, f"AGRI_PROFILES_DIR={extra}"))
    return found


def _load_at_start() -> tuple[Mapping[str, Metric], Mapping[str, Profile]]:
    try:
        return load(folders(ProfilesSettings().profiles_dir))
    except ProfileError as exc:
        # Imported by every service before it can report errors its own way.
        print(f"agri: device profiles: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


METRICS: Mapping[str, Metric]
PROFILES: Mapping[str, Profile]
METRICS, PROFILES = _load_at_start()
# Accepted from every device besides its profile's metrics: radio quality, which
# ingest takes from a LoRaWAN uplink's metadata (metrics.toml).
RADIO_METRICS = ("rssi", "snr")


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
