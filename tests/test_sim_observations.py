"""The officers' records of a simulated season: heading dates give or take a day, lab
protein of a random sample dated on the harvest day, in the import format."""

from __future__ import annotations

import csv
from datetime import timedelta

import numpy as np
import pytest

from agri.analytics.observations import parse
from agri.simulator import observations as obs
from agri.simulator.season import simulate_season

YEAR = 2025


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    return simulate_season(fields=80, seed=9, year=YEAR, out=tmp_path_factory.mktemp("s"),
                           surveys=False, scenes=False, lab_samples=30)


def test_file_is_what_the_import_reads(season) -> None:
    path = season.out / "observations.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["field", "kind", "date", "value"]
    parsed = parse(path.read_text(encoding="utf-8"))  # the platform's own reader
    assert len(parsed) == len(rows) - 1 == len(season.records)
    assert {(p.field_id, p.kind, p.observed_on) for p in parsed} == {
        (r.field, r.kind, r.day) for r in season.records}


def test_heading_recorded_give_or_take_a_day(season) -> None:
    truth = {t.field: t for t in season.truth}
    heading = [r for r in season.records if r.kind == "heading"]
    assert {r.field for r in heading} == set(truth)  # all fields by default
    errors = np.array([(r.day - truth[r.field].heading).days for r in heading])
    assert set(errors) == {-1, 0, 1}
    assert 0.3 <= (errors == 0).mean() <= 0.7
    assert all(r.value is None for r in heading)


def test_lab_protein_of_a_random_sample(season) -> None:
    truth = {t.field: t for t in season.truth}
    lab = [r for r in season.records if r.kind == "lab_protein"]
    assert len(lab) == 30 == len({r.field for r in lab})
    errors = np.array([r.value - truth[r.field].protein_pct for r in lab])
    assert 0.04 <= errors.std() <= 0.2 and abs(errors.mean()) < 0.08
    for r in lab:
        opens = truth[r.field].harvest_opens
        assert opens <= r.day <= opens + timedelta(days=obs.HARVEST_DELAY_DAYS[1])


def test_share_until_and_bad_arguments(season) -> None:
    rng = np.random.default_rng(1)
    half = obs.officer_records(season.truth, rng, heading_share=0.5, lab_samples=5)
    n = sum(r.kind == "heading" for r in half)
    assert 0.3 * len(season.truth) <= n <= 0.7 * len(season.truth)
    first_heading = min(t.heading for t in season.truth)
    early = obs.officer_records(season.truth, np.random.default_rng(1),
                                until=first_heading + timedelta(days=3))
    assert early and all(r.day <= first_heading + timedelta(days=3) for r in early)
    assert {r.kind for r in early} == {"heading"}
    with pytest.raises(ValueError, match="share"):
        obs.officer_records(season.truth, rng, heading_share=1.5)
    with pytest.raises(ValueError, match="lab samples"):
        obs.officer_records(season.truth, rng, lab_samples=-1)
    everything = obs.officer_records(season.truth, rng, lab_samples=10_000)
    assert sum(r.kind == "lab_protein" for r in everything) == sum(
        t.harvest_opens is not None for t in season.truth)
