"""Observations recorded through a real `agri api` process: an officer of the
field's region records a heading date, the next `agri analytics run` dates
the stage by it; removing it puts the estimate back. Other users and hostile
bodies store nothing."""

from __future__ import annotations

import json
from datetime import date

import httpx
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.settings import Settings
from agri.simulator.publish import run_backfill
from agri.simulator.season import simulate_season
from agri.simulator.sensors import FaultRates, Fleet

YEAR = 2019  # a season no other test writes readings for
SEED = 47
AS_OF = date(YEAR, 8, 25)


@pytest.fixture(scope="module")
def season(platform, tmp_path_factory):
    out = tmp_path_factory.mktemp("observations-season")
    settings = Settings(home=platform.home, database_url=platform.db_url,
                        mqtt_url=platform.admin_url(), max_age_days=10_000.0)
    s = simulate_season(fields=1, seed=SEED, year=YEAR, out=out, surveys=False, scenes=False)
    fleet = Fleet(s, seed=SEED, rates=FaultRates.none(), prefix="aobs")
    run_backfill(settings, fleet, first=date(YEAR, 5, 10), last=AS_OF)
    return s


PLAIN = {"type": "FeatureCollection", "features": [{
    "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[
        [140.55, 40.75], [140.5504, 40.75], [140.5504, 40.7509], [140.55, 40.7509],
        [140.55, 40.75]]]},
    "properties": {"id": "aobs-plain", "name": "観察 1", "owner": "aobs-owner",
                   "cultivar": "seiten-no-hekireki", "transplanted_on": f"{YEAR}-05-20",
                   "municipality": "Aobstown"}}]}


def people(platform, municipality: str, owner: str | None = None) -> dict[str, str]:
    """Tokens of an officer of ``municipality`` and of users who may not record."""
    suffix = municipality.lower()
    with psycopg.connect(platform.db_url) as conn:
        made = {role: add_user(conn, name=f"aobs-{role}-{suffix}", role=kind,
                               regions=regions).token
                for role, kind, regions in [
                    ("officer", "officer", [municipality]), ("far", "officer", ["Nowhere"]),
                    ("none", "officer", []), ("planner", "planner", []),
                    ("stranger", "farmer", [])]}
        if owner is None:
            made["owner"] = add_user(conn, name="aobs-owner", role="farmer").token
            import_fields(conn, parse_features(PLAIN))
    if owner is not None:
        result = platform.cli("users", "token", owner, "--rotate", "--json")
        made["owner"] = json.loads(result.stdout)["token"]
    return made


@pytest.fixture(scope="module")
def tokens(platform, season):
    field = season.fields[0]
    return people(platform, field.municipality, field.owner)


@pytest.fixture(scope="module")
def plain(platform):
    return people(platform, "Aobstown")


def client(api: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def run_analytics(platform, field_id: str) -> None:
    result = platform.cli("analytics", "run", "--as-of", AS_OF.isoformat(), "--field", field_id,
                          "--json", check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["estimated"] == 1


def stage(platform, field_id: str) -> list[tuple]:
    return platform.sql("SELECT heading, heading_observed FROM field_stages WHERE field_id = %s "
                        "AND computed_for = %s", (field_id, AS_OF))


@pytest.mark.slow  # a season's backfill and an analytics run: about 90 s
def test_a_heading_recorded_through_the_api_dates_the_next_run(platform, api, season, tokens):
    field = season.fields[0].id
    by = f"aobs-officer-{season.fields[0].municipality.lower()}"
    heading = date(YEAR, 8, 5)  # what the officer saw in the paddy
    with client(api, tokens["officer"]) as officer:
        r = officer.post(f"/api/v1/fields/{field}/observations",
                         json={"kind": "heading", "date": heading.isoformat(), "note": "穂揃い"})
        assert r.status_code == 201, r.text
        record = r.json()
        assert record["added"] and record["recorded_by"] == by
    assert platform.sql("SELECT kind, observed_on, note, recorded_by, source FROM observations "
                        "WHERE field_id = %s", (field,)) == [
        ("heading", heading, "穂揃い", by, "api")]
    run_analytics(platform, field)
    assert stage(platform, field) == [(heading, True)]
    with client(api, tokens["owner"]) as owner:
        detail = owner.get(f"/api/v1/fields/{field}").json()
        assert detail["stage"]["heading"] == {"date": heading.isoformat(), "observed": True}
        listed = owner.get(f"/api/v1/fields/{field}/observations").json()
        assert [i["id"] for i in listed["items"]] == [record["id"]] and listed["next"] is None

    # Removed: gone from the table the analytics read, kept as removed.
    with client(api, tokens["officer"]) as officer:
        r = officer.delete(f"/api/v1/fields/{field}/observations/{record['id']}")
        assert r.status_code == 204, r.text
        assert officer.delete(f"/api/v1/fields/{field}/observations/{record['id']}"
                              ).status_code == 404
    assert platform.sql("SELECT count(*) FROM observations WHERE field_id = %s", (field,)) == [(0,)]
    assert platform.sql("SELECT observed_on, removed_by FROM observation_removals WHERE id = %s",
                        (record["id"],)) == [(heading, by)]


def test_only_officers_of_the_region_record_and_bad_records_store_nothing(platform, api, plain):
    field, tokens = "aobs-plain", plain
    path = f"/api/v1/fields/{field}/observations"
    good = {"kind": "lab_protein", "date": f"{YEAR}-10-02", "value": 6.4}

    def stored() -> list[tuple]:
        return platform.sql("SELECT kind, observed_on, value, note FROM observations WHERE "
                            "field_id = %s ORDER BY id", (field,))

    before = stored()
    for who, status in (("owner", 403), ("planner", 403), ("stranger", 403),
                        ("far", 404), ("none", 404)):
        with client(api, tokens[who]) as c:
            r = c.post(path, json=good)
            assert r.status_code == status, (who, r.text)
    for who, status in (("stranger", 404), ("far", 404), ("planner", 404), ("owner", 200)):
        with client(api, tokens[who]) as c:
            assert c.get(path).status_code == status, who
    with client(api, tokens["officer"]) as officer:
        bad = [good | {"kind": "DROP TABLE"}, good | {"value": 61}, good | {"value": None},
               good | {"note": "a\u0000b"},
               good | {"note": "長" * 2001},
               good | {"date": f"{YEAR}-02-30"}, good | {"date": "2999-01-01"},
               good | {"recorded_by": "someone"}, good | {"source": "import"},
               good | {"field_id": "other"}, {"kind": "heading"}, [good]]
        for body in bad:
            r = officer.post(path, content=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (str(body)[:100], r.text[:300])
        r = officer.post(path, content=b'{"kind": "lab_protein", "date": "2019-10-02", '
                                       b'"value": NaN}', headers={"Content-Type":
                                                                  "application/json"})
        assert r.status_code == 422
        for bad_path in ("/api/v1/fields/%00/observations", "/api/v1/fields/nosuch/observations"):
            assert officer.post(bad_path, json=good).status_code in (400, 404, 422)
        assert officer.get(path, params={"cursor": str(2**64)}).status_code == 422
        assert officer.delete(f"{path}/{2**63}").status_code == 422
        assert stored() == before
        # The same kind and date again replaces the record.
        first = officer.post(path, json=good)
        again = officer.post(path, json=good | {"value": 6.9})
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["added"] is False and again.json()["id"] == first.json()["id"]
    assert stored() == before + [("lab_protein", date(YEAR, 10, 2), 6.9, None)]
