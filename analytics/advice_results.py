"""The advice step of the daily run: each field's results as an
:class:`agri.analytics.advice.FieldState`, the rules' advisories stored as
drafts for an officer to review.

A draft is identified by :func:`agri.analytics.advice.advisory_key`: a re-run
updates its draft (text, fields, evidence) instead of adding one; an advisory
an officer has already published or withdrawn is left as they decided.
"""

from __future__ import annotations

from datetime import date, timedelta

import orjson
import pandas as pd
import psycopg

from agri.analytics import advice, water_results
from agri.analytics.blast import BlastRisk
from agri.analytics.runner import FieldResult

RECENT_DAYS = 3
# No weather forecast reaches the platform yet: the advice goes by the days observed
# (the recent mean). The climate normal is no forecast: in early July it is at or
# under 20 C in Tsugaru every year, and would call for deep water in hot years too.


def water_and_advice(conn: psycopg.Connection, results: list[FieldResult],
                     nights: dict[str, pd.DataFrame], as_of: date) -> dict:
    """Runner step: the water band and status, then the advice that uses them."""
    summary, statuses = water_results.store_for(conn, results, as_of)
    protein = _protein(conn, as_of.year)
    issues = device_issues(conn, as_of)
    states = [state_of(r, nights.get(r.station_id), statuses.get(r.season.field_id), as_of,
                       protein=protein, issues=issues.get(r.season.field_id, ()))
              for r in results]
    drafts = advice.advise(states)
    summary["advisories"] = store(conn, drafts, as_of=as_of)
    return summary


def _protein(conn: psycopg.Connection, year: int) -> dict[str, tuple[float, str]]:
    """Field -> (protein %, class) of its latest estimate this year."""
    rows = conn.execute(
        "SELECT DISTINCT ON (p.field_id) p.field_id, p.protein_pct, p.class FROM "
        "field_protein p JOIN images i ON i.id = p.image_id WHERE p.year = %s AND "
        "p.protein_pct IS NOT NULL ORDER BY p.field_id, i.acquired_at DESC NULLS LAST",
        (year,)).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def device_issues(conn: psycopg.Connection, as_of: date
                  ) -> dict[str, tuple[advice.DeviceIssue, ...]]:
    """Field -> its devices that quality control scored as may be broken on ``as_of``."""
    from agri.analytics import quality

    rows = conn.execute(
        "SELECT d.field_id, q.device_id, q.score, q.reasons FROM device_quality q JOIN devices "
        "d ON d.id = q.device_id WHERE q.computed_for = %s AND q.score < %s AND d.field_id "
        "IS NOT NULL ORDER BY q.device_id", (as_of, quality.USABLE_SCORE)).fetchall()
    out: dict[str, list[advice.DeviceIssue]] = {}
    for field_id, device_id, score, reasons in rows:
        first = reasons[0] if reasons else {}
        since = first.get("from")
        out.setdefault(field_id, []).append(advice.DeviceIssue(
            device_id, str(first.get("check", "quality")),
            date.fromisoformat(since[:10]) if isinstance(since, str) else None, float(score)))
    return {k: tuple(v) for k, v in out.items()}


def state_of(r: FieldResult, nights: pd.DataFrame | None, water, as_of: date, *,
             protein: dict, issues: tuple = ()) -> advice.FieldState:
    e = r.estimate
    temps = e.tmean
    recent = temps.loc[pd.Timestamp(as_of - timedelta(days=RECENT_DAYS - 1)):pd.Timestamp(as_of)]
    blast_risk = blast_day = None
    if nights is not None and not nights.empty:
        flagged = nights[nights["risk"].isin([BlastRisk.FAVOURABLE, BlastRisk.SUB_FAVOURABLE])]
        row = flagged.iloc[-1] if len(flagged) else nights.iloc[-1]
        blast_risk, blast_day = row["risk"], row["day"]
    pct, cls = protein.get(r.season.field_id, (None, None))
    return advice.FieldState(
        field_id=r.season.field_id, municipality=r.season.municipality,
        cultivar=r.season.cultivar, as_of=as_of, transplanted_on=r.season.transplanted_on,
        dvi=e.dvi, heading=e.heading.date, heading_observed=e.heading.observed,
        maturity=e.maturity.date, harvest_opens=e.harvest_opens,
        harvest_closes=e.harvest_closes, cold_q_cday=e.cold_q_cday,
        cold_sterility_pct=e.cold_sterility_pct,
        forecast_tmean_c={},
        recent_tmean_c=float(recent.mean()) if len(recent) else None,
        days_to_sensitive_start=(None if e.sensitive_from is None
                                 else (e.sensitive_from - as_of).days),
        days_to_sensitive_end=(None if e.sensitive_until is None
                               else (e.sensitive_until - as_of).days),
        post_heading_mean_c=e.post_heading_mean_c, heat_sterility_pct=e.heat_sterility_pct,
        blast_risk=blast_risk, blast_day=blast_day, water=water,
        protein_pct=pct, protein_class=cls, device_issues=issues)


# What an officer may edit of a draft; a later run leaves an edited one's alone.
_EDITABLE = ("severity", "valid_until", "title_ja", "body_ja", "title_en", "body_en")
_KEEP_EDIT = "{c} = CASE WHEN advisories.edited_at IS NULL THEN {v} ELSE advisories.{c} END"


def store(conn: psycopg.Connection, drafts: list[advice.Advisory], *, as_of: date) -> int:
    """Write the drafts; returns how many were written (added or updated).

    A condition that lasts several days keeps one advisory: a draft of the same
    kind and municipality still valid yesterday or later is updated (its key
    stays), and while an advisory of that kind and municipality published by an
    officer is still valid, no new draft is made beside it. Otherwise the draft
    is added, or updated by its key when the same day is run again.
    """
    written = 0
    for a in drafts:
        values = (str(a.severity), list(a.field_ids), a.reason,
                  orjson.dumps(a.evidence, default=str).decode(), a.valid_until, a.title_ja,
                  a.body_ja, a.title_en, a.body_en, as_of)
        current = conn.execute(
            "SELECT id, status FROM advisories WHERE kind = %s AND municipality = %s AND "
            "status <> 'withdrawn' AND valid_until >= %s AND valid_from <= %s "
            "ORDER BY (status = 'published') DESC, id DESC LIMIT 1",
            (str(a.kind), a.municipality, as_of - timedelta(days=1), as_of)).fetchone()
        if current is not None and current[1] == "published":
            continue
        if current is not None:
            # An officer's edit (edited_at) keeps its severity, validity and
            # text; the fields and evidence follow the data.
            conn.execute(
                f"UPDATE advisories SET {_KEEP_EDIT.format(v='%s', c='severity')}, "
                f"field_ids = %s, reason = %s, evidence = %s::jsonb, "
                f"{_KEEP_EDIT.format(v='%s', c='valid_until')}, "
                f"{_KEEP_EDIT.format(v='%s', c='title_ja')}, "
                f"{_KEEP_EDIT.format(v='%s', c='body_ja')}, "
                f"{_KEEP_EDIT.format(v='%s', c='title_en')}, "
                f"{_KEEP_EDIT.format(v='%s', c='body_en')}, "
                f"computed_for = %s, updated_at = now() WHERE id = %s",
                (*values, current[0]))
        else:
            conn.execute(
                "INSERT INTO advisories (key, kind, municipality, valid_from, severity, "
                "field_ids, reason, evidence, valid_until, title_ja, body_ja, title_en, "
                "body_en, computed_for) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, "
                "%s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
                + ", ".join(_KEEP_EDIT.format(v=f"EXCLUDED.{c}", c=c) for c in _EDITABLE)
                + ", field_ids = EXCLUDED.field_ids, reason = EXCLUDED.reason, "
                "evidence = EXCLUDED.evidence, computed_for = EXCLUDED.computed_for, "
                "updated_at = now() WHERE advisories.status = 'draft'",
                (advice.advisory_key(a), str(a.kind), a.municipality, a.valid_from, *values))
        written += 1
    return written
