"""The sandbox's conformance check of a prototype: what it sent in a window
of time, judged check by check, with what to change (docs/sandbox.md).

:func:`gather` reads the window (readings by arrival, rejects, commands);
:func:`judge` turns what was read into the checks, each ``pass``, ``fail``,
``not_tried`` (nothing to judge by: no command was sent) or ``not_measured``
(the platform does not record what the check would need); :func:`store`
keeps the report with the device. Regularity and stuck values are judged
by quality control's own functions (analytics/quality.py), the clock by
device health's (api/queries/device_health.py), with their thresholds.
Texts are Japanese with English beside, as the device health reasons.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import pandas as pd
from psycopg import AsyncConnection

from agri.analytics import quality
from agri.api.queries import device_health
from agri.devices.profiles import PROFILES
from agri.devices.topics import acks_topic, commands_topic, senml_topic
from agri.ingest.rejects import doc_link, reason_code

DEFAULT_MINUTES = 60
MAX_MINUTES = 7 * 24 * 60  # a week: what a report may look back over
MAX_READINGS = 100_000  # readings read for one report (a week of a busy station is ~20,000)
MAX_REJECTS = 5_000  # the newest rejects read one by one; all are counted
GUIDE = "docs/device-developers.md"
COMMANDS_DOC = "docs/device-commands.md"
SANDBOX_DOC = "docs/sandbox.md"
ANSWERED = ("accepted", "done", "rejected")  # a device's own answers (device_commands)

CHECKS = ("accepted", "rejected", "regularity", "clock", "stuck", "duplicates",
          "payload_sizes", "commands")
STATUSES = ("pass", "fail", "not_tried", "not_measured")


def _text(ja: str, en: str) -> dict:
    return {"ja": ja, "en": en}


def _change(ja: str, en: str, doc: str) -> dict:
    return {"ja": ja, "en": en, "doc": doc}


@dataclass
class Window:
    """What one device sent in [start, end), as :func:`gather` read it."""

    device_id: str
    profile: str
    start: datetime
    end: datetime
    # (metric, measurement time, arrival, value), by arrival in the window
    readings: list[tuple[str, datetime, datetime, float]] = field(default_factory=list)
    # (id, arrival, reason, record index, payload size), newest first (at most MAX_REJECTS)
    rejects: list[tuple[int, datetime, str, int | None, int]] = field(default_factory=list)
    rejects_total: int = 0
    # status -> commands asked for in the window
    commands: dict[str, int] = field(default_factory=dict)


# --- Reading the window ---------------------------------------------------------------------

_READINGS = """SELECT metric, time, received_at, value FROM readings
WHERE device_id = %(id)s AND received_at >= %(start)s AND received_at < %(end)s
  AND time > %(start)s - interval '400 days'
ORDER BY time LIMIT %(limit)s"""
_REJECTS = """SELECT id, received_at, reason, record_index, payload_size FROM rejects
WHERE device_id = %(id)s AND received_at >= %(start)s AND received_at < %(end)s
ORDER BY received_at DESC, id DESC LIMIT %(limit)s"""
_REJECT_COUNT = """SELECT count(*) FROM rejects
WHERE device_id = %(id)s AND received_at >= %(start)s AND received_at < %(end)s"""
_COMMANDS = """SELECT status, count(*) FROM device_commands
WHERE device_id = %(id)s AND requested_at >= %(start)s AND requested_at < %(end)s
GROUP BY status"""
_NEW_REJECTS = """SELECT id, received_at, reason, record_index, payload_size FROM rejects
WHERE device_id = %(id)s AND id > %(after)s ORDER BY id LIMIT %(limit)s"""


async def gather(conn: AsyncConnection, device_id: str, profile: str, *,
                 minutes: int = DEFAULT_MINUTES, end: datetime | None = None) -> Window:
    """What ``device_id`` sent in the ``minutes`` before ``end`` (now)."""
    end = end or datetime.now(UTC)
    w = Window(device_id, profile, end - timedelta(minutes=minutes), end)
    params = {"id": device_id, "start": w.start, "end": w.end}
    cur = await conn.execute(_READINGS, {**params, "limit": MAX_READINGS})
    w.readings = [tuple(r) for r in await cur.fetchall()]
    cur = await conn.execute(_REJECTS, {**params, "limit": MAX_REJECTS})
    w.rejects = [tuple(r) for r in await cur.fetchall()]
    cur = await conn.execute(_REJECT_COUNT, params)
    w.rejects_total = (await cur.fetchone())[0]
    cur = await conn.execute(_COMMANDS, params)
    w.commands = dict(await cur.fetchall())
    return w


async def rejects_after(conn: AsyncConnection, device_id: str, after: int,
                        limit: int = 100) -> list[tuple]:
    """The device's rejects stored after the one with id ``after`` (oldest first)."""
    cur = await conn.execute(_NEW_REJECTS, {"id": device_id, "after": after, "limit": limit})
    return [tuple(r) for r in await cur.fetchall()]


# --- The checks (pure) -----------------------------------------------------------------------

def _check(name: str, status: str, summary: dict, figures: dict,
           change: list[dict] | None = None) -> dict:
    return {"check": name, "status": status, "summary": summary, "figures": figures,
            "change": change or []}


def accepted(w: Window) -> dict:
    by_metric: dict[str, int] = {}
    for metric, *_ in w.readings:
        by_metric[metric] = by_metric.get(metric, 0) + 1
    n = len(w.readings)
    figures = {"readings": n, "by_metric": dict(sorted(by_metric.items())),
               "capped": n >= MAX_READINGS}
    if n:
        return _check("accepted", "pass", _text(f"{n} 件の測定値を保存しました",
                                                f"{n} readings stored"), figures)
    return _check("accepted", "fail",
                  _text("この期間に保存された測定値がありません",
                        "no reading was stored in this window"), figures,
                  [_change(f"{senml_topic(w.device_id)} に機器自身の ID とパスワードで接続して"
                           f"送ってください。下の「拒否」も確認してください",
                           f"publish to {senml_topic(w.device_id)}, connected with the "
                           f"device's own id and password; see the rejects below",
                           f"{GUIDE}#connecting")])


def rejected(w: Window) -> dict:
    codes: dict[str, dict] = {}
    for _id, received, reason, index, _size in w.rejects:  # newest first
        code = reason_code(reason) or "other"
        entry = codes.setdefault(code, {"count": 0, "latest_reason": reason,
                                        "record_index": index,
                                        "received_at": received.isoformat(),
                                        "doc": doc_link(code) if code != "other" else GUIDE})
        entry["count"] += 1
    figures = {"total": w.rejects_total, "read": len(w.rejects), "by_code": codes}
    if not w.rejects_total:
        return _check("rejected", "pass", _text("拒否されたメッセージはありません",
                                                "nothing was rejected"), figures)
    listed = ", ".join(f"{c} {e['count']}" for c, e in codes.items())
    change = []
    for code, e in codes.items():
        at = "" if e["record_index"] is None else f" (record {e['record_index']})"
        at_ja = "" if e["record_index"] is None else f" (レコード {e['record_index']})"
        change.append(_change(f"{code}{at_ja}: {e['latest_reason']}",
                              f"{code}{at}: {e['latest_reason']}", e["doc"]))
    return _check("rejected", "fail",
                  _text(f"{w.rejects_total} 件が拒否されました ({listed})",
                        f"{w.rejects_total} rejected ({listed})"), figures, change)


def _series(w: Window, metric: str) -> pd.Series:
    rows = [(t, v) for m, t, _r, v in w.readings if m == metric]
    s = pd.Series([v for _, v in rows], index=pd.to_datetime([t for t, _ in rows], utc=True),
                  dtype=float)
    return quality.clean(s)[0]


def _in_window(s: pd.Series, w: Window) -> pd.Series:
    return s[(s.index >= pd.Timestamp(w.start)) & (s.index < pd.Timestamp(w.end))]


def regularity(w: Window) -> dict:
    """Readings per interval of the profile over the window, by measurement
    time, from the first reading in the window on (a device switched on
    within the window is not missing before it)."""
    profile = PROFILES[w.profile]
    series = {m: _in_window(_series(w, m), w) for m in profile.intervals_s}
    firsts = [s.index[0] for s in series.values() if len(s)]
    start = max(pd.Timestamp(w.start), min(firsts)) if firsts else pd.Timestamp(w.start)
    end = pd.Timestamp(w.end)
    metrics, short, never = {}, [], []
    for metric, interval in profile.intervals_s.items():
        s = series[metric]
        if not len(s) and metric in profile.optional:
            continue
        g = quality.gaps(s.index, interval_s=interval, start=start, end=end)
        share = g.received / g.expected if g.expected else None
        metrics[metric] = {"interval_s": interval, "expected": g.expected,
                           "intervals_with_reading": g.received, "missing": g.missing,
                           "share": None if share is None else round(share, 3),
                           "longest_gap_s": round(g.longest_s, 1)}
        if not len(s):
            never.append(metric)
        elif share is not None and share < device_health.REGULARITY_MIN_SHARE:
            short.append((metric, share, g))
    figures = {"from": start.isoformat(), "to": end.isoformat(),
               "min_share": device_health.REGULARITY_MIN_SHARE, "metrics": metrics}
    if not short and not never:
        return _check("regularity", "pass",
                      _text("報告間隔どおりに届いています", "reports arrive at the profile's "
                            "intervals"), figures)
    change = [_change(f"{m}: {interval_s_text(metrics[m]['interval_s'], 'ja')}ごとに送って"
                      f"ください (届いたのは {g.received}/{g.expected} 区間、最長の空白 "
                      f"{g.longest_s / 60:.0f} 分)",
                      f"{m}: send one every {interval_s_text(metrics[m]['interval_s'], 'en')} "
                      f"(a reading in {g.received} of {g.expected} intervals, longest gap "
                      f"{g.longest_s / 60:.0f} min)", f"{SANDBOX_DOC}#regularity")
              for m, _share, g in short]
    change += [_change(f"{m}: 一度も届いていません。プロファイルの測定項目です",
                       f"{m}: never sent; the profile expects it", f"{GUIDE}#metrics-and-units")
               for m in never]
    listed = ", ".join([f"{m} {s:.0%}" for m, s, _ in short] + [f"{m} 0" for m in never])
    return _check("regularity", "fail",
                  _text(f"報告に欠けがあります ({listed})",
                        f"missing intervals ({listed} of intervals with a reading)"),
                  figures, change)


def interval_s_text(seconds: int, lang: str) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} 時間" if lang == "ja" else f"{seconds // 3600} h"
    return f"{seconds // 60} 分" if lang == "ja" else f"{seconds // 60} min"


def clock(w: Window) -> dict:
    """Device health's clock skew over the window's readings and the records
    refused for their time."""
    samples = [(r, (t - r).total_seconds()) for _m, t, r, _v in w.readings]
    refused = [(received, offset) for _id, received, reason, _i, _s in w.rejects
               if (offset := device_health.reject_offset(reason)) is not None]
    figures, why = device_health.skew(samples + refused)
    figures["refused"] = len(refused)
    if why is None:
        if figures["skew_s"] is None:
            summary = _text("時刻を判断できる測定値が足りません",
                            "too few readings to judge the clock")
        else:
            summary = _text("時計は合っています", "the clock is right")
        return _check("clock", "pass", summary, figures)
    text = why.to_json()["text"]
    return _check("clock", "fail", _text(text["ja"], text["en"]), figures,
                  [_change(text["ja"], text["en"], f"{GUIDE}#time-in-future"
                           if figures["skew_s"] > 0 else f"{GUIDE}#time-too-old")])


def stuck(w: Window) -> dict:
    """Quality control's stuck check on each metric's readings in the window."""
    span = (w.end - w.start).total_seconds()
    figures: dict = {"min_run_s": quality.STUCK_MIN_S,
                     "min_readings": quality.STUCK_MIN_READINGS, "runs": []}
    if span < quality.STUCK_MIN_S:
        hours = quality.STUCK_MIN_S // 3600
        return _check("stuck", "not_measured",
                      _text(f"値の張り付きは {hours} 時間以上の期間でしか判断できません",
                            f"a stuck value needs a window of at least {hours} h to tell"),
                      figures,
                      [_change(f"{hours} 時間以上の期間で確認してください (--minutes "
                               f"{hours * 60 + 60})",
                               f"check over {hours} h or more (--minutes {hours * 60 + 60})",
                               f"{SANDBOX_DOC}#stuck")])
    for metric in PROFILES[w.profile].intervals_s:
        s = _in_window(_series(w, metric), w)
        for f in quality.stuck_flags(s[s.notna()], metric=metric):
            figures["runs"].append({"metric": metric, "value": f.detail.get("value"),
                                    "from": f.start.isoformat(), "to": f.end.isoformat(),
                                    "readings": f.readings})
    if not figures["runs"]:
        return _check("stuck", "pass", _text("張り付いた値はありません", "no stuck value"),
                      figures)
    change = [_change(f"{r['metric']} が {r['value']} のまま変わりません ({r['readings']} 件): "
                      f"センサーと配線、毎回読み直しているかを確認してください",
                      f"{r['metric']} stuck at {r['value']} ({r['readings']} readings): check "
                      f"the sensor, its wiring and that the firmware reads it anew each time",
                      f"{SANDBOX_DOC}#stuck") for r in figures["runs"]]
    listed = ", ".join(sorted({r["metric"] for r in figures["runs"]}))
    return _check("stuck", "fail", _text(f"値が張り付いています ({listed})",
                                         f"stuck value ({listed})"), figures, change)


def duplicates(w: Window) -> dict:
    return _check("duplicates", "not_measured",
                  _text("再送された重複は機器ごとには記録されていません (取り込みプロセスごとの"
                        "件数のみ)", "resent duplicates are not recorded per device (ingest "
                        "counts them per worker only)"),
                  {"recorded": False}, [])


def payload_sizes(w: Window, *, max_payload_bytes: int) -> dict:
    sizes = [size for *_, size in w.rejects]
    too_large = [r for r in w.rejects if reason_code(r[2]) == "payload-too-large"]
    figures = {"limit_bytes": max_payload_bytes, "accepted_recorded": False,
               "rejected_messages": len(sizes),
               "rejected_max_bytes": max(sizes, default=None),
               "rejected_median_bytes": statistics.median(sizes) if sizes else None,
               "too_large": len(too_large)}
    note_ja = "受け付けたメッセージの大きさは記録されていません"
    note_en = "the sizes of accepted messages are not recorded"
    if too_large:
        return _check("payload_sizes", "fail",
                      _text(f"{len(too_large)} 件が上限 {max_payload_bytes} バイトを超えました"
                            f" ({note_ja})", f"{len(too_large)} over the limit of "
                            f"{max_payload_bytes} bytes ({note_en})"), figures,
                      [_change("1 メッセージを上限より小さく分けて送ってください",
                               "split the pack into messages under the limit",
                               doc_link("payload-too-large"))])
    return _check("payload_sizes", "pass",
                  _text(f"上限を超えたメッセージはありません ({note_ja})",
                        f"no message over the limit ({note_en})"), figures)


def commands(w: Window) -> dict:
    sent = sum(w.commands.values())
    answered = sum(w.commands.get(s, 0) for s in ANSWERED)
    figures = {"sent": sent, "answered": answered, "by_status": dict(sorted(
        w.commands.items()))}
    if not sent:
        return _check("commands", "not_tried",
                      _text("この期間にコマンドは送られていません",
                            "no command was sent in this window"), figures,
                      [_change("コマンドへの応答を確かめるには、API でコマンドを送ってから確認"
                               "してください", "to check answers, send a command through "
                               "the API, then check again", f"{COMMANDS_DOC}")])
    if answered:
        return _check("commands", "pass",
                      _text(f"{sent} 件中 {answered} 件に応答しました",
                            f"answered {answered} of {sent} commands"), figures)
    return _check("commands", "fail",
                  _text(f"{sent} 件のコマンドに一度も応答していません",
                        f"answered none of {sent} commands"), figures,
                  [_change(f"{commands_topic(w.device_id)} を購読し、{acks_topic(w.device_id)}"
                           f" に応答を送ってください",
                           f"subscribe to {commands_topic(w.device_id)} and answer on "
                           f"{acks_topic(w.device_id)}", f"{GUIDE}#commands")])


def judge(w: Window, *, max_payload_bytes: int) -> dict:
    """The report of ``w``: every check, and passed when none failed."""
    checks = [accepted(w), rejected(w), regularity(w), clock(w), stuck(w), duplicates(w),
              payload_sizes(w, max_payload_bytes=max_payload_bytes), commands(w)]
    return {"device": w.device_id, "profile": w.profile, "window_from": w.start.isoformat(),
            "window_to": w.end.isoformat(),
            "passed": all(c["status"] != "fail" for c in checks), "checks": checks}


# --- Keeping reports -------------------------------------------------------------------------

_STORE = """INSERT INTO conformance_reports (device_id, window_from, window_to, passed, checks,
    created_by) VALUES (%s, %s, %s, %s, %s::jsonb, %s) RETURNING id, created_at"""
_REPORTS = """SELECT id, created_at, window_from, window_to, passed, checks, created_by
FROM conformance_reports WHERE device_id = %(id)s ORDER BY created_at DESC, id DESC
LIMIT %(limit)s"""


async def store(conn: AsyncConnection, report: dict, *, created_by: str | None) -> dict:
    """Keep ``report`` (judge's) with its device; returns it with id and created_at."""
    cur = await conn.execute(_STORE, (report["device"], report["window_from"],
                                      report["window_to"], report["passed"],
                                      orjson.dumps(report["checks"]).decode(), created_by))
    report_id, created = await cur.fetchone()
    return {"id": report_id, "created_at": created.isoformat(), "created_by": created_by,
            **report}


def stored_report(device_id: str, profile: str, row) -> dict:
    report_id, created, start, end, passed, checks, by = row
    return {"id": report_id, "created_at": created.isoformat(), "created_by": by,
            "device": device_id, "profile": profile, "window_from": start.isoformat(),
            "window_to": end.isoformat(), "passed": passed, "checks": checks}


async def reports(conn: AsyncConnection, device_id: str, profile: str, *,
                  limit: int = 20) -> list[dict]:
    """The device's latest reports, newest first."""
    cur = await conn.execute(_REPORTS, {"id": device_id, "limit": limit})
    return [stored_report(device_id, profile, r) for r in await cur.fetchall()]


async def first_passed(conn: AsyncConnection, device_id: str) -> str | None:
    """When the device's first passing report was made (the KPIs count that)."""
    cur = await conn.execute("SELECT min(created_at) FROM conformance_reports "
                             "WHERE device_id = %s AND passed", (device_id,))
    first = (await cur.fetchone())[0]
    return first and first.isoformat()


async def run(conn: AsyncConnection, device_id: str, profile: str, *, minutes: int,
              max_payload_bytes: int, created_by: str | None) -> dict:
    """Check the last ``minutes`` of ``device_id`` and keep the report."""
    window = await gather(conn, device_id, profile, minutes=minutes)
    return await store(conn, judge(window, max_payload_bytes=max_payload_bytes),
                       created_by=created_by)


def lines(report: dict, lang: str = "en") -> list[str]:
    """The report as text, a check a line and what to change under it."""
    out = [f"device {report['device']} ({report['profile']}), {report['window_from']} to "
           f"{report['window_to']}"]
    for c in report["checks"]:
        out.append(f"{c['status'].upper():13} {c['check']:14} {c['summary'][lang]}")
        out += [f"{'':13} -> {ch[lang]}  [{ch['doc']}]" for ch in c["change"]]
    out.append(f"overall: {'PASS' if report['passed'] else 'FAIL'}"
               + (f" (report {report['id']} stored)" if "id" in report else ""))
    return out
