"""A field's status colour: the one place that decides it, for the API's
lists and GeoJSON, the farmer's list of fields and the officer's map.

``await field_statuses(conn, user, field_ids)`` returns ``{field_id: Status}``
for the fields among ``field_ids`` that ``user`` may see (the others are
left out, as everywhere: see api/queries/access.py). It reads only what the
user may see: the devices of access.DEVICE_VISIBLE (a developer judges a
shared field by their own devices alone).

Colours, worst first; each reason has its own colour and the field takes the
worst of them:

- ``red`` (act now): water outside the target band for ``WATER_ACT_H`` hours
  or more (the analytics' water status of today or yesterday); a risk
  (cold, heat, blast) at level ``high``; a battery under
  conditions.BATTERY_EMPTY_PCT;
- ``yellow`` (attention): water outside the band for less than that; a risk
  at level ``moderate``; a device not heard for longer than
  conditions.STALE_INTERVALS of its interval; a battery under
  conditions.BATTERY_LOW_PCT;
- ``grey`` (no data): none of the above, and no device on the field heard
  within conditions.OFFLINE_S, nor a water status computed for today or
  yesterday;
- ``green``: none of the above.

Analytics results older than yesterday (Asia/Tokyo) are not used: a status
shows the present. Reasons carry Japanese text first, English beside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

from agri.api.accounts import User
from agri.api.queries import access, conditions
from agri.api.queries.series import iso
from agri.clock import today_local
from agri.devices.profiles import PROFILES
from agri.settings import Settings

WATER_ACT_H = 6.0  # hours outside the band after which a field needs action now
MAX_FIELDS = 10_000  # per call
# Readings further ahead than ingest accepts do not count yet (AGRI_MAX_FUTURE_S).
MAX_FUTURE_S = Settings.model_fields["max_future_s"].default
RANK = {"green": 0, "grey": 1, "yellow": 2, "red": 3}
LABELS = {"green": {"ja": "良好", "en": "OK"},
          "yellow": {"ja": "注意", "en": "Attention"},
          "red": {"ja": "すぐ対応", "en": "Act now"},
          "grey": {"ja": "データなし", "en": "No data"}}
_RISK = {"cold": ("冷害", "cold damage"), "heat": ("高温障害", "heat damage"),
         "blast": ("いもち病", "rice blast")}
_LEVEL = {"high": ("高", "high"), "moderate": ("中", "moderate")}


@dataclass(frozen=True, slots=True)
class Reason:
    code: str  # water_below, water_above, risk_cold, ..., sensor_stale, battery_low, no_data
    colour: str
    ja: str
    en: str

    def to_json(self) -> dict:
        return {"code": self.code, "colour": self.colour, "text": {"ja": self.ja, "en": self.en}}


@dataclass(frozen=True, slots=True)
class Status:
    colour: str  # green | yellow | red | grey
    reasons: tuple[Reason, ...] = ()
    as_of: datetime | None = None  # the newest reading it rests on
    devices: int = 0  # devices of the user's scope on the field
    label: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"colour": self.colour, "label": self.label,
                "reasons": [r.to_json() for r in self.reasons],
                "as_of": None if self.as_of is None else iso(self.as_of)}


def _hours(h: float | None) -> str:
    return "" if h is None else f"{h:.0f}"


def judge(reasons: list[Reason], *, heard: bool, analysed: bool, as_of: datetime | None,
          devices: int) -> Status:
    """The status from its reasons: the worst colour; grey when nothing was heard."""
    colour = max((r.colour for r in reasons), key=RANK.__getitem__, default="green")
    if colour == "green" and not heard and not analysed:
        colour = "grey"
        reasons = [Reason("no_data", "grey", "24時間以内にセンサーのデータがありません",
                          "no sensor data in the last 24 hours")]
    reasons = sorted(reasons, key=lambda r: -RANK[r.colour])
    return Status(colour, tuple(reasons), as_of, devices, LABELS[colour])


def probes(devices: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """The (device, metric) pairs whose latest readings a status rests on: the
    metric each device reports most often (its freshness), and its battery."""
    pairs = []
    for d, p, _ in devices:
        if not PROFILES[p].metrics:
            continue
        intervals = PROFILES[p].intervals_s
        pairs.append((d, min(intervals, key=intervals.__getitem__)))
        if "battery" in intervals and pairs[-1][1] != "battery":
            pairs.append((d, "battery"))
    return pairs


async def field_statuses(conn: AsyncConnection, user: User, field_ids: list[str], *,
                         max_future_s: float = MAX_FUTURE_S) -> dict[str, Status]:
    """Status of each field among ``field_ids`` that ``user`` may see (at most
    MAX_FIELDS; the others are not in the answer)."""
    ids = list(dict.fromkeys(field_ids))[:MAX_FIELDS]
    if not ids:
        return {}
    scope = access.who(user)
    cur = await conn.execute(f"SELECT f.id FROM fields f WHERE f.id = ANY(%(ids)s) "
                             f"AND {access.FIELD_VISIBLE}", {"ids": ids, **scope})
    visible = [r[0] for r in await cur.fetchall()]
    if not visible:
        return {}
    devices = await access.devices_on(conn, user, visible)
    found = await conditions.latest(conn, probes(devices), max_future_s=max_future_s)
    since = today_local() - timedelta(days=1)
    cur = await conn.execute(
        "SELECT DISTINCT ON (field_id) field_id, state, off_hours FROM field_water_status "
        "WHERE field_id = ANY(%s) AND computed_for >= %s ORDER BY field_id, computed_for DESC",
        (visible, since))
    water = {f: (state, hours) for f, state, hours in await cur.fetchall()}
    cur = await conn.execute(
        "SELECT r.field_id, r.kind, r.level FROM field_risks r WHERE r.field_id = ANY(%s) "
        "AND r.level IN ('moderate', 'high') AND r.computed_for >= %s AND r.computed_for = "
        "(SELECT max(computed_for) FROM field_risks m WHERE m.field_id = r.field_id) "
        "ORDER BY r.field_id, r.kind", (visible, since))
    risks: dict[str, list] = {}
    for f, kind, level in await cur.fetchall():
        risks.setdefault(f, []).append((kind, level))
    return judge_fields(visible, devices, found, water, risks)


def judge_one(field_id: str, devices: list[tuple[str, str]], found: dict,
              water: dict | None, risks: list[dict]) -> Status:
    """The status of one visible field from what its page has read already:
    its devices (id, profile) the user sees, their latest readings (at least
    those of ``probes``), results.water and results.risks of today; the same
    rules as ``field_statuses``."""
    since = (today_local() - timedelta(days=1)).isoformat()
    fresh_water = ({field_id: (water["state"], water["off_hours"])}
                   if water and water["computed_for"] >= since else {})
    fresh_risks = {field_id: [(r["kind"], r["level"]) for r in risks
                              if r["level"] in _LEVEL and r["computed_for"] >= since]}
    on_field = [(d, p, field_id) for d, p in devices]
    probed = {k: found[k] for k in probes(on_field) if k in found}
    return judge_fields([field_id], on_field, probed, fresh_water, fresh_risks)[field_id]


def judge_fields(visible: list[str], devices: list[tuple[str, str, str]], found: dict,
                 water: dict[str, tuple], risks: dict[str, list]) -> dict[str, Status]:
    """The rules of the module's docstring over what was read: ``devices``
    (id, profile, field), ``found`` (conditions.latest of ``probes``),
    ``water`` {field: (state, off hours)}, ``risks`` {field: [(kind, level)]}
    of today or yesterday."""
    devices = [(d, p, f) for d, p, f in devices if PROFILES[p].metrics]
    now = datetime.now(UTC)
    reasons: dict[str, list[Reason]] = {f: [] for f in visible}
    heard: dict[str, bool] = dict.fromkeys(visible, False)
    newest: dict[str, datetime | None] = dict.fromkeys(visible)
    count: dict[str, int] = dict.fromkeys(visible, 0)
    for d, p, f in devices:
        count[f] += 1
        intervals = PROFILES[p].intervals_s
        heard_at = [found[k][0] for k in ((d, m) for m in intervals) if k in found]
        if not heard_at:
            continue
        seen = max(heard_at)
        age = max(0.0, (now - seen).total_seconds())
        if newest[f] is None or seen > newest[f]:
            newest[f] = seen
        # Last heard (any metric probed) against the shortest interval it reports at.
        state = conditions.status(age, min(intervals.values()))
        if state == "ok":
            heard[f] = True
        elif state == "stale":
            heard[f] = True
            reasons[f].append(Reason("sensor_stale", "yellow",
                                     f"センサー {d} の最新データが {age / 3600:.1f} 時間前です",
                                     f"sensor {d} last heard {age / 3600:.1f} h ago"))
        battery = found.get((d, "battery"))
        if battery is not None and conditions.status(
                max(0.0, (now - battery[0]).total_seconds()), intervals["battery"]) == "ok":
            state = conditions.metric_status("battery", battery[1], 0.0, intervals["battery"])
            if state in ("low", "empty"):
                reasons[f].append(Reason(
                    "battery_low", conditions.COLOURS[state],
                    f"センサー {d} の電池残量が {battery[1]:.0f}% です",
                    f"sensor {d} battery at {battery[1]:.0f} %"))
    for f, (state, hours) in water.items():
        if state in ("below", "above"):
            colour = "red" if (hours or 0.0) >= WATER_ACT_H else "yellow"
            ja = "低い" if state == "below" else "高い"
            reasons[f].append(Reason(
                f"water_{state}", colour,
                f"水位が目標より{ja}状態が {_hours(hours)} 時間続いています",
                f"water {state} the target band for {_hours(hours)} h"))
    for f, items in risks.items():
        for kind, level in items:
            name_ja, name_en = _RISK.get(kind, (kind, kind))
            level_ja, level_en = _LEVEL[level]
            reasons[f].append(Reason(f"risk_{kind}", "red" if level == "high" else "yellow",
                                     f"{name_ja}の危険度: {level_ja}",
                                     f"{name_en} risk {level_en}"))
    return {f: judge(reasons[f], heard=heard[f],
                     analysed=water.get(f, ("no data",))[0] != "no data",
                     as_of=newest[f], devices=count[f]) for f in visible}
