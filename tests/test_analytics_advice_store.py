"""Advisory drafts in the database: one per condition while it lasts, updated by
re-runs; an advisory an officer published is not changed nor doubled."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg

from agri.analytics import advice, advice_results


def draft(day: date, fields: tuple[str, ...], body: str) -> advice.Advisory:
    return advice.Advisory(
        kind=advice.AdviceKind.COLD_DAMAGE, severity=advice.Severity.WARNING,
        municipality="Teststore", field_ids=fields, reason="cold-forecast",
        evidence={"fields": {f: {"recent_tmean_c": 18.5} for f in fields}},
        valid_from=day, valid_until=day + timedelta(days=3), title_ja="冷害に注意",
        body_ja=body, title_en="Cold damage", body_en=body)


def rows(platform) -> list[tuple]:
    return platform.sql("SELECT status, field_ids, body_ja FROM advisories WHERE "
                        "municipality = 'Teststore' ORDER BY id")


def test_a_lasting_condition_keeps_one_draft_and_a_published_one_is_left(platform):
    day = date(2001, 7, 10)
    with psycopg.connect(platform.db_url) as conn:
        advice_results.store(conn, [draft(day, ("f1",), "a")], as_of=day)
        advice_results.store(conn, [draft(day, ("f1",), "a")], as_of=day)  # same day again
        nxt = day + timedelta(days=1)
        advice_results.store(conn, [draft(nxt, ("f1", "f2"), "b")], as_of=nxt)
        conn.commit()
    assert rows(platform) == [("draft", ["f1", "f2"], "b")]
    with psycopg.connect(platform.db_url) as conn:
        conn.execute("UPDATE advisories SET status = 'published' WHERE municipality = "
                     "'Teststore'")
        later = day + timedelta(days=2)
        advice_results.store(conn, [draft(later, ("f1", "f2", "f3"), "c")], as_of=later)
        conn.commit()
    assert rows(platform) == [("published", ["f1", "f2"], "b")]
    # Once it has run out, the condition gets a new draft.
    with psycopg.connect(platform.db_url) as conn:
        much_later = day + timedelta(days=10)
        advice_results.store(conn, [draft(much_later, ("f3",), "d")], as_of=much_later)
        conn.commit()
    assert rows(platform) == [("published", ["f1", "f2"], "b"), ("draft", ["f3"], "d")]


def test_an_officers_edit_of_a_draft_outlives_the_next_runs(platform):
    day = date(2002, 7, 10)

    def mine() -> list[tuple]:
        return platform.sql("SELECT field_ids, body_ja, severity FROM advisories WHERE "
                            "municipality = 'Teststore' AND valid_from >= '2002-01-01'")
    with psycopg.connect(platform.db_url) as conn:
        advice_results.store(conn, [draft(day, ("f1",), "rule")], as_of=day)
        conn.execute("UPDATE advisories SET body_ja = 'officer', severity = 'urgent', "
                     "edited_at = now() WHERE municipality = 'Teststore' "
                     "AND valid_from >= '2002-01-01'")
        advice_results.store(conn, [draft(day, ("f1",), "rule again")], as_of=day)
        conn.commit()
        assert mine() == [(["f1"], "officer", "urgent")]
        nxt = day + timedelta(days=1)
        advice_results.store(conn, [draft(nxt, ("f1", "f2"), "rule next")], as_of=nxt)
        conn.commit()
    # The fields follow the data; the officer's words and severity stay.
    assert mine() == [(["f1", "f2"], "officer", "urgent")]
