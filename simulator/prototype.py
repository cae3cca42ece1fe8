"""A reference device of any profile, with the faults a developer chooses.

``agri simulate device`` connects with a registered device's own
credentials, publishes SenML packs of every metric of its profile (values
inside the metric's physical range, in its canonical unit, at the profile's
interval, measurement times going back from now) and answers the commands it
receives, exactly as a well-behaved device would. Each fault of
:data:`FAULTS` breaks one part of the contract the way real firmware does,
so the sandbox's conformance check (``agri devices check``) can be compared
between a developer's prototype, a clean reference and a faulty one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import orjson

from agri.devices.profiles import METRICS, profile
from agri.devices.topics import acks_topic, commands_topic, senml_topic

FAULTS: dict[str, str] = {
    "wrong-unit": "one metric in a unit the platform does not take for it (inches for "
                  "metres, Fahrenheit for Celsius, volts for a battery's percent)",
    "milliseconds": "the last pack's time in milliseconds instead of seconds",
    "clock-9h": "every time nine hours ahead: Japan time sent as UTC",
    "stuck": "one metric stuck at one value (the first whose flat runs are not ordinary)",
    "gaps": "nothing sent in 40 % of the intervals, in the middle of the run",
    "no-answers": "commands received and never answered",
}
WRONG_UNITS = {"m": "in", "Cel": "degF", "%EL": "V", "%RH": "g/m3", "mm": "in"}
WRONG_UNIT_DEFAULT = "count"
NINE_HOURS_S = 9 * 3600
GAP_SHARE = 0.4
DEFAULT_COUNT = 30


class PrototypeError(ValueError):
    """A reference device cannot be played as asked; the message says what to change."""


def check_faults(faults: Iterable[str]) -> frozenset[str]:
    out = frozenset(faults)
    unknown = sorted(out - FAULTS.keys())
    if unknown:
        raise PrototypeError(f"unknown fault {unknown[0]!r}; choose from: "
                             f"{', '.join(FAULTS)}")
    return out


def _stuck_metric(metrics: list[str], battery: str | None) -> str:
    """A metric whose flat run quality control takes for a fault: not the
    battery, nor one that is flat in ordinary weather or a drained paddy."""
    from agri.analytics import quality

    ordinary = {*quality.FLAT_ANY, *quality.FLAT_VALUES, *quality.FLAT_AT_LEAST,
                *quality.FLAT_AT_MOST, *quality.FLAT_AT_FLOOR, *quality.FLAT_AT_CEILING}
    return next((m for m in metrics if m != battery and m not in ordinary), metrics[0])


def _value(metric: str, k: int, rng: np.random.Generator) -> float:
    """A smooth, plausible value inside the metric's physical range."""
    m = METRICS[metric]
    span = m.high - m.low
    v = m.low + span * (0.45 + 0.05 * math.sin(k / 4) + 0.002 * float(rng.standard_normal()))
    return round(min(max(v, m.low), m.high), 4)


def packs(profile_name: str, *, now: float, count: int = DEFAULT_COUNT,
          interval_s: int | None = None, faults: Iterable[str] = (),
          seed: int = 0) -> list[list[dict]]:
    """``count`` SenML packs of a device of ``profile_name``, the last measured
    just before ``now``, one every ``interval_s`` (default the profile's
    shortest interval); each metric in the packs its interval falls on, counted
    in the profile's shortest intervals (the battery of a paddy sensor in every
    sixth pack)."""
    faults = check_faults(faults)
    p = profile(profile_name)
    if not p.metrics:
        raise PrototypeError(f"profile {profile_name!r} has no metrics to send")
    if count < 1:
        raise PrototypeError("send at least one pack")
    shortest = min(p.intervals_s.values())
    base = interval_s or shortest
    rng = np.random.default_rng(seed)
    metrics = list(p.metrics)
    stuck = _stuck_metric(metrics, p.battery) if "stuck" in faults else None
    gap = range(int(count * (1 - GAP_SHARE) / 2), int(count * (1 + GAP_SHARE) / 2)) \
        if "gaps" in faults else range(0)
    out = []
    for k in range(count):
        t = int(now - 30 - base * (count - 1 - k))
        if k in gap:
            continue
        if "clock-9h" in faults:
            t += NINE_HOURS_S
        records = []
        for metric in metrics:
            # each metric at its interval relative to the profile's shortest
            every = max(1, round(p.intervals_s[metric] / shortest))
            if k % every:
                continue
            if metric == p.battery:
                v = round(95.0 - 0.1 * k, 2)
            elif metric == stuck:
                v = _value(metric, 0, np.random.default_rng(seed))
            else:
                v = _value(metric, k, rng)
            records.append({"n": metric, "u": METRICS[metric].unit, "v": v})
        if records:
            records[0] = {"bt": t, **records[0]}
            out.append(records)
    if "milliseconds" in faults and out:
        last = out[-1]
        last[0] = {**last[0], "bt": int(now - 10) * 1000}
    if "wrong-unit" in faults:
        metric = next(m for m in metrics if m != p.battery) if len(metrics) > 1 else metrics[0]
        unit = WRONG_UNITS.get(METRICS[metric].unit, WRONG_UNIT_DEFAULT)
        out.append([{"bt": int(now - 20) + (NINE_HOURS_S if "clock-9h" in faults else 0),
                     "n": metric, "u": unit, "v": 2.0}])
    return out


@dataclass
class Played:
    """What :func:`play` did."""

    packs: int
    records: int
    commands: int  # distinct commands received
    answered: int  # answers sent (a resent command is answered again)

    def to_json(self) -> dict:
        return {"packs": self.packs, "records": self.records, "commands": self.commands,
                "answered": self.answered}


def play(url: str, device_id: str, profile_name: str, *, faults: Iterable[str] = (),
         count: int = DEFAULT_COUNT, interval_s: int | None = None, listen_s: float = 0.0,
         seed: int = 0, stop: threading.Event | None = None) -> Played:
    """Publish the packs as ``device_id`` (its own credentials in ``url``), then
    stay ``listen_s`` seconds answering commands ("done", unless the
    ``no-answers`` fault)."""
    from agri.simulator.publish import Publisher

    faults = check_faults(faults)
    made = packs(profile_name, now=time.time(), count=count, interval_s=interval_s,
                 faults=faults, seed=seed)
    stop = stop or threading.Event()
    got: set[int] = set()  # distinct: an unanswered command is sent again
    answered = [0]
    with Publisher(url, client_id=device_id) as pub:
        client = pub.client

        def on_message(c, userdata, message) -> None:
            try:
                command = orjson.loads(message.payload)
            except orjson.JSONDecodeError:
                return
            if not isinstance(command, dict) or not isinstance(command.get("id"), int):
                return  # a delivery receipt, or not a command
            if command["id"] in got and "no-answers" in faults:
                return
            got.add(command["id"])
            if "no-answers" not in faults:
                c.publish(acks_topic(device_id), orjson.dumps(
                    {"id": command["id"], "status": "done"}), qos=1)
                answered[0] += 1

        client.on_message = on_message
        client.subscribe(commands_topic(device_id), qos=1)
        for pack in made:
            pub.publish(senml_topic(device_id), orjson.dumps(pack))
        pub.drain()
        stop.wait(listen_s)
    return Played(len(made), sum(len(p) for p in made), len(got), answered[0])
