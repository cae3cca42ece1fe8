"""The analytics run on a real database: a simulated season's readings written
by the backfill, officers' records imported from CSV, then `agri analytics
run --as-of` stores stage, harvest window, risks and blast classes, and the
API serves them to the field's owner and to nobody else."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta

import httpx
import psycopg
import pytest

from agri.analytics import observations, runner
from agri.settings import Settings
from agri.simulator.publish import run_backfill
from agri.simulator.season import simulate_season
from agri.simulator.sensors import FaultRates, Fleet
from tests.fix_stack import api_server

YEAR = 2024
SEED = 41
FIELDS = 6
AS_OF = date(YEAR, 8, 20)


@pytest.fixture(scope="module")
def season(platform, tmp_path_factory):
    out = tmp_path_factory.mktemp("analytics-season")
    settings = Settings(home=platform.home, database_url=platform.db_url,
                        mqtt_url=platform.admin_url(), max_age_days=10_000.0)
    s = simulate_season(fields=FIELDS, seed=SEED, year=YEAR, out=out, surveys=False)
    fleet = Fleet(s, seed=SEED, rates=FaultRates.none(), prefix="tan")
    run_backfill(settings, fleet, first=date(YEAR, 5, 10), last=AS_OF)
    return s, fleet, out


def token(platform, name: str) -> str:
    result = platform.cli("users", "token", name, "--rotate", "--json")
    return json.loads(result.stdout)["token"]


def new_user(platform, name: str, role: str, *regions: str) -> str:
    args = ["users", "add", "--name", name, "--role", role, "--json"]
    for region in regions:
        args += ["--region", region]
    return json.loads(platform.cli(*args).stdout)["token"]


def truth(out) -> dict[str, dict]:
    with (out / "truth.csv").open(encoding="utf-8") as fh:
        return {row["field"]: row for row in csv.DictReader(fh)}


def test_run_stores_every_kind_of_result_for_the_day(platform, season):
    s, fleet, out = season
    ids = [f.id for f in s.fields]
    with psycopg.connect(platform.db_url) as conn:
        summary = runner.run(conn, as_of=AS_OF, field_ids=ids)
    assert summary.fields == len(ids) == summary.estimated, summary.to_json()
    assert len(ids) >= FIELDS - 2
    rows = platform.sql("SELECT field_id, dvi, stage, heading, heading_observed, maturity "
                        "FROM field_stages WHERE computed_for = %s AND field_id = ANY(%s)",
                        (AS_OF, ids))
    assert len(rows) == len(ids)
    real = truth(out)
    for field_id, dvi, stage, heading, observed, maturity in rows:
        assert not observed
        assert 1.0 < dvi < 2.0 and stage == "ripening"
        true_heading = date.fromisoformat(real[field_id]["heading"])
        assert abs((heading - true_heading).days) <= 7, (field_id, heading, true_heading)
        assert maturity is None or maturity > heading
    windows = platform.sql("SELECT f.municipality, w.opens, w.closes, w.region_order FROM "
                           "field_harvest_windows w JOIN fields f ON f.id = w.field_id "
                           "WHERE w.computed_for = %s AND w.field_id = ANY(%s)", (AS_OF, ids))
    assert len(windows) == len(ids) and all(o < c for _, o, c, _ in windows)
    # Each municipality's fields in harvest order: 1, 2, ... by opening date.
    for town in {m for m, _, _, _ in windows}:
        mine = sorted((order, opens) for m, opens, _, order in windows if m == town)
        assert [o for o, _ in mine] == list(range(1, len(mine) + 1))
        assert [d for _, d in mine] == sorted(d for _, d in mine)
    kinds = platform.sql("SELECT kind, count(*) FROM field_risks WHERE computed_for = %s "
                         "AND field_id = ANY(%s) GROUP BY kind ORDER BY kind", (AS_OF, ids))
    assert kinds == [("blast", len(ids)), ("cold", len(ids)), ("heat", len(ids))]
    nights = platform.sql("SELECT count(*), count(risk) FROM station_blast "
                          "WHERE station_id LIKE 'tan-ws-%%'")
    assert nights[0][0] >= runner.BLAST_DAYS and nights[0][1] > 0

    # The same day again replaces that day's rows instead of adding to them.
    with psycopg.connect(platform.db_url) as conn:
        runner.run(conn, as_of=AS_OF, field_ids=ids)
    again = platform.sql("SELECT count(*) FROM field_stages WHERE computed_for = %s "
                         "AND field_id = ANY(%s)", (AS_OF, ids))
    assert again[0][0] == len(ids)


def test_recorded_heading_is_marked_observed_and_moves_the_window(platform, season, tmp_path):
    s, fleet, out = season
    field = s.fields[0].id
    real = date.fromisoformat(truth(out)[field]["heading"])
    sheet = tmp_path / "records.csv"
    sheet.write_text(f"field,kind,date,value\n{field},heading,{real.isoformat()},\n",
                     encoding="utf-8")
    result = platform.cli("observations", "import", str(sheet), "--json")
    assert json.loads(result.stdout) == {"added": 1, "updated": 0}
    result = platform.cli("analytics", "run", "--as-of", AS_OF.isoformat(), "--json",
                          check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["estimated"] >= len(s.fields)
    stage = platform.sql("SELECT heading, heading_observed FROM field_stages "
                         "WHERE field_id = %s AND computed_for = %s", (field, AS_OF))
    assert stage == [(real, True)]


def test_a_bad_row_imports_nothing_and_names_the_row(platform, season, tmp_path):
    s, _, _ = season
    field = s.fields[1].id
    before = platform.sql("SELECT count(*) FROM observations")[0][0]
    sheet = tmp_path / "bad.csv"
    sheet.write_text(f"field,kind,date,value\n{field},lab_protein,{YEAR}-10-01,6.1\n"
                     f"{field},lab_protein,{YEAR}-10-02,61\n", encoding="utf-8")
    result = platform.cli("observations", "import", str(sheet), check=False)
    assert result.returncode == 2 and "row 3" in result.stderr and "3-12" in result.stderr
    for text in ("field,kind,date,value\nno-such-field,heading,2024-08-01,\n",
                 "field,kind,date,value\nx,heading,2024-02-30,\n",
                 "field,kind,date,value\nx,heading,1800-08-01,\n",
                 "field,kind,when,value\n",
                 "field,kind,date,value\nx\x00,heading,2024-08-01,\n"):
        sheet.write_text(text, encoding="utf-8")
        result = platform.cli("observations", "import", str(sheet), check=False)
        assert result.returncode == 2 and result.stderr.strip(), text
        assert "Traceback" not in result.stderr
    sheet.write_bytes(b"field,kind,date,value\n\xff\xfe,heading,2024-08-01,\n")
    result = platform.cli("observations", "import", str(sheet), check=False)
    assert result.returncode == 2 and "UTF-8" in result.stderr
    assert platform.sql("SELECT count(*) FROM observations")[0][0] == before


def test_parse_rejects_hostile_cells():
    with pytest.raises(observations.ObservationError, match="row 2: value 'nan'"):
        observations.parse("field,kind,date,value\nf1,lab_protein,2024-10-01,nan\n")
    with pytest.raises(observations.ObservationError, match="row 2: lab_protein needs a value"):
        observations.parse("field,kind,date,value\nf1,lab_protein,2024-10-01,\n")
    with pytest.raises(observations.ObservationError, match="kind 'DROP TABLE'"):
        observations.parse("field,kind,date,value\nf1,DROP TABLE,2024-10-01,\n")
    rows = observations.parse("\ufefffield,kind,date,value,note\nf1,note,2024-07-01,,葉色が濃い\n")
    assert rows[0].note == "葉色が濃い" and rows[0].value is None


def test_field_detail_carries_the_results_for_its_owner_only(platform, season):
    s, _, _ = season
    field = s.fields[0]
    with api_server(platform) as base:
        owner = token(platform, field.owner)
        r = httpx.get(f"{base}/api/v1/fields/{field.id}",
                      headers={"Authorization": f"Bearer {owner}"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == field.id
        assert set(body["stage"]) >= {"dvi", "heading", "maturity"}
        assert set(body["stage"]["heading"]) == {"date", "observed"}
        assert body["harvest_window"]["opens"] < body["harvest_window"]["closes"]
        assert {r["kind"] for r in body["risks"]} == {"cold", "heat", "blast"}
        assert body["season"]["year"] == YEAR
        r = httpx.get(f"{base}/api/v1/fields/{field.id}/advice",
                      headers={"Authorization": f"Bearer {owner}"})
        assert r.status_code == 200 and "items" in r.json()
        # Another farmer's valid token, and an officer of another region: the field
        # does not exist for them. The officer of its region sees it.
        stranger = new_user(platform, "tan-stranger", "farmer")
        elsewhere = new_user(platform, "tan-officer-far", "officer", "Nowhere")
        here = new_user(platform, "tan-officer-here", "officer", field.municipality)
        for who in (stranger, elsewhere):
            for path in (f"/api/v1/fields/{field.id}", f"/api/v1/fields/{field.id}/advice"):
                r = httpx.get(base + path, headers={"Authorization": f"Bearer {who}"})
                assert r.status_code == 404, (path, r.text)
        r = httpx.get(f"{base}/api/v1/fields/{field.id}",
                      headers={"Authorization": f"Bearer {here}"})
        assert r.status_code == 200 and r.json()["stage"] == body["stage"]
        for bad in ("%00", "x" * 300, "..%2F..%2Fetc", "%E3%81%82"):
            r = httpx.get(f"{base}/api/v1/fields/{bad}",
                          headers={"Authorization": f"Bearer {owner}"})
            assert r.status_code in (400, 404, 422), (bad, r.status_code)
        r = httpx.get(f"{base}/api/v1/fields/{field.id}?as_of=2024-13-01",
                      headers={"Authorization": f"Bearer {owner}"})
        assert r.status_code == 422


def test_as_of_before_transplanting_estimates_nothing(platform, season):
    s, _, _ = season
    with psycopg.connect(platform.db_url) as conn:
        summary = runner.run(conn, as_of=date(YEAR, 5, 1), field_ids=[f.id for f in s.fields])
    assert summary.fields == 0 and summary.estimated == 0
    assert summary.as_of + timedelta(days=1) == date(YEAR, 5, 2)


def test_earlier_seasons_of_the_same_paddies_calibrate_the_cultivars(platform, season):
    s, _, _ = season
    settings = Settings(home=platform.home, database_url=platform.db_url,
                        mqtt_url=platform.admin_url(), max_age_days=10_000.0)
    records = 0
    for year in (YEAR - 2, YEAR - 1):
        out = platform.home / f"calibration-{year}"
        earlier = simulate_season(fields=FIELDS, seed=SEED, year=year, out=out, surveys=False,
                                  scenes=False)
        assert [f.id for f in earlier.fields] == [f.id for f in s.fields]  # same paddies
        run_backfill(settings, Fleet(earlier, seed=SEED, rates=FaultRates.none(), prefix="tan"),
                     first=date(year, 5, 10), last=date(year, 8, 31))
        result = platform.cli("observations", "import", str(out / "observations.csv"), "--json")
        records += json.loads(result.stdout)["added"]
    ids = [f.id for f in s.fields]
    seasons = platform.sql("SELECT count(DISTINCT year) FROM field_seasons "
                           "WHERE field_id = ANY(%s)", (ids,))
    assert seasons == [(3,)] and records >= len(ids)
    with psycopg.connect(platform.db_url) as conn:
        summary = runner.run(conn, as_of=AS_OF, field_ids=ids)
    fitted = platform.sql("SELECT cultivar, seasons, observations FROM cultivar_calibrations "
                          "WHERE for_year = %s", (YEAR,))
    assert fitted and all(seasons_ == [YEAR - 2, YEAR - 1] for _, seasons_, _ in fitted), fitted
    calibrated = {c for c, _, _ in fitted}
    assert set(summary.calibrated) == calibrated
    flags = platform.sql("SELECT s.cultivar, f.calibrated FROM field_stages f JOIN "
                         "field_seasons s ON s.field_id = f.field_id AND s.year = f.year "
                         "WHERE f.computed_for = %s AND f.field_id = ANY(%s)", (AS_OF, ids))
    assert flags and all(flag == (cultivar in calibrated) for cultivar, flag in flags)


def test_an_image_added_is_processed_into_field_statistics(platform, season, tmp_path):
    s, _, _ = season
    surveyed = simulate_season(fields=FIELDS, seed=SEED, year=YEAR, out=tmp_path / "surveys",
                               surveys=True, scenes=True)
    survey = next(r for r in surveyed.flights if r.get("kind") == "survey")
    image = tmp_path / "surveys" / "flights" / survey["image"]
    added = json.loads(platform.cli("images", "add", str(image), "--json").stdout)
    assert added["source"] == "drone-p4m" and added["status"] == "pending"
    again = json.loads(platform.cli("images", "add", str(image), "--json").stdout)
    assert again["id"] == added["id"] and again["existing"]
    # Hostile files: refused with a reason, nothing registered.
    fake = tmp_path / "fake.tif"
    fake.write_text("not an image")
    two_bands = tmp_path / "two.tif"
    import numpy as np
    import rasterio
    from rasterio.transform import Affine

    with rasterio.open(two_bands, "w", driver="GTiff", width=8, height=8, count=2,
                       dtype="float32", crs="EPSG:6678",
                       transform=Affine(0.5, 0.0, 10.0, 0.0, -0.5, 20.0)) as dst:
        dst.write(np.zeros((2, 8, 8), dtype="float32"))
        dst.update_tags(AGRI_SOURCE="drone-p4m")
    before = platform.sql("SELECT count(*) FROM images")[0][0]
    for bad in (fake, two_bands, tmp_path / "missing.tif"):
        result = platform.cli("images", "add", str(bad), check=False)
        assert result.returncode == 2 and result.stderr.startswith("agri: "), result.stderr
        assert "Traceback" not in result.stderr
    assert platform.sql("SELECT count(*) FROM images")[0][0] == before

    result = platform.cli("analytics", "run", "--as-of", AS_OF.isoformat(), "--json",
                          check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["images"] >= 1
    status = platform.sql("SELECT status, error FROM images WHERE id = %s", (added["id"],))
    assert status == [("done", None)]
    stats = platform.sql("SELECT field_id, ndvi_mean, valid_fraction FROM field_index_stats "
                         "WHERE image_id = %s", (added["id"],))
    assert {f for f, _, _ in stats} == set(survey["fields"])
    assert all(0.0 < v <= 1.0 and -1.0 <= n <= 1.0 for _, n, v in stats)
    field = survey["fields"][0]
    owner = next(f.owner for f in s.fields if f.id == field)
    with api_server(platform) as base:
        r = httpx.get(f"{base}/api/v1/fields/{field}",
                      headers={"Authorization": f"Bearer {token(platform, owner)}"})
        assert r.status_code == 200
        detail = r.json()["index_stats"]
        assert detail["image"] == added["id"] and detail["source"] == "drone-p4m"
        assert set(detail["stats"]) >= {"ndvi_mean", "gndvi_p10", "ndre_p90", "valid_fraction"}

    # Satellite scenes of the same season: each source through its own band map.
    scenes = [json.loads(line) for line in
              (tmp_path / "surveys" / "scenes" / "records.jsonl").read_text().splitlines()]
    by_source = {}
    for scene in scenes:
        by_source.setdefault(scene["source"], scene)
    assert set(by_source) == {"sentinel-2-l2a", "commercial-2m"}
    ids = [json.loads(platform.cli("images", "add", str(tmp_path / "surveys" / "scenes" /
                                                           scene["file"]), "--json").stdout)["id"]
           for scene in by_source.values()]
    result = platform.cli("analytics", "run", "--as-of", AS_OF.isoformat(), "--json",
                          check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    done = platform.sql("SELECT i.source, i.status, count(s.field_id) FROM images i LEFT JOIN "
                        "field_index_stats s ON s.image_id = i.id WHERE i.id = ANY(%s) "
                        "GROUP BY i.source, i.status ORDER BY i.source", (ids,))
    assert [(src, st) for src, st, _ in done] == [("commercial-2m", "done"),
                                                  ("sentinel-2-l2a", "done")], done
    ndre = platform.sql("SELECT i.source, count(s.ndre_mean) FROM images i JOIN "
                        "field_index_stats s ON s.image_id = i.id WHERE i.id = ANY(%s) "
                        "GROUP BY i.source ORDER BY i.source", (ids,))
    assert dict(ndre).get("commercial-2m", 0) == 0  # no red edge in that source
