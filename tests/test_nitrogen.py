"""Next season's nitrogen from the protein map: within the published ranges, at
and around the brand's limits, raised only for low protein with low yield,
and refused or marked for bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agri.analytics import agronomy as ag
from agri.analytics.nitrogen import Action, NitrogenError, advise, advise_fields
from agri.analytics.protein import ProteinModel, predict

DRY_LOW, DRY_HIGH = ag.TOTAL_N_DRY_PADDY_KG_PER_10A  # 6-7 kg N/10a
SEMI_LOW, SEMI_HIGH = ag.TOTAL_N_SEMI_WET_PADDY_KG_PER_10A  # 5-6


@pytest.mark.parametrize(("protein", "applied", "action", "total"), [
    (5.9, 7.0, Action.KEEP, 7.0),
    (6.0, 7.0, Action.KEEP, 7.0),  # on the target: nothing to cut
    (6.01, 7.0, Action.REDUCE, 6.9),  # any excess cuts at least one 0.1 kg step
    (6.1, 7.0, Action.REDUCE, 6.5),  # 0.5 kg per 0.1 % above the target
    (6.2, 7.0, Action.REDUCE, 6.0),
    (6.4, 7.0, Action.REDUCE, 6.0),  # bounded by the range's low end
    (6.41, 7.0, Action.REDUCE, 6.0),
    (7.5, 7.0, Action.REDUCE, 6.0),
    (6.3, 6.0, Action.KEEP, 6.0),  # already at the low end: no further cut
    (6.3, 5.0, Action.KEEP, 5.0),  # below the range: never raised for high protein
    (6.1, 8.0, Action.REDUCE, 6.5),  # above the range: cut from its high end
])
def test_cut_per_protein_point_within_the_dry_paddy_range(protein, applied, action, total):
    advice = advise(protein_pct=protein, applied_total_n_kg_per_10a=applied)
    assert advice.action is action
    assert advice.total_n_kg_per_10a == total
    assert advice.basal_n_kg_per_10a + advice.topdress_n_kg_per_10a == pytest.approx(total)


def test_reasons_name_the_limit_and_the_plan():
    over = advise(protein_pct=6.41, applied_total_n_kg_per_10a=7.0)
    assert over.reason_en == (
        "Protein 6.41 % exceeds the 6.4 % shipping standard: reduce next season to a total N "
        "of 6.0 kg/10a (basal 4.5). That is the standard range's low end, so no further cut: "
        "top-dress only as the growth index at panicle initiation allows, and have the soil's "
        "nitrogen supply tested.")
    assert over.reason_ja.startswith(
        "タンパク質6.41%は出荷基準6.4%を超えました。来年は全窒素6.0kg/10a(基肥4.5kg)に減らしてください。")
    assert over.evidence["protein_class"] == "over"
    acceptable = advise(protein_pct=6.4, applied_total_n_kg_per_10a=7.0)
    assert "above the 6.0 % production target" in acceptable.reason_en
    assert acceptable.evidence["protein_class"] == "acceptable"
    target = advise(protein_pct=6.0)
    assert target.reason_en == ("Protein 6.0 % meets the 6.0 % target: keep a total N of "
                                "6.5 kg/10a (basal 4.9) next season.")
    assert target.evidence == {
        "protein_pct": 6.0, "protein_class": "target", "yield_bales_per_10a": None,
        "paddy": "dry", "standard_range_kg_per_10a": [DRY_LOW, DRY_HIGH],
        "applied_total_n_kg_per_10a": None, "base_total_n_kg_per_10a": 6.5,
        "base": "middle of the standard range"}


def test_without_this_seasons_n_the_plan_starts_in_the_middle():
    assert advise(protein_pct=5.8).total_n_kg_per_10a == (DRY_LOW + DRY_HIGH) / 2
    assert advise(protein_pct=6.05).total_n_kg_per_10a == 6.2  # 0.25 kg cut -> 0.3 step
    assert advise(protein_pct=6.1).total_n_kg_per_10a == DRY_LOW
    semi = advise(protein_pct=6.1, paddy="semi-wet")
    assert semi.total_n_kg_per_10a == SEMI_LOW and semi.evidence["paddy"] == "semi-wet"


@pytest.mark.parametrize(("protein", "yld", "action", "total"), [
    (5.7, 8.9, Action.INCREASE, 7.0),  # clearly low protein, yield under 9 bales
    (5.71, 8.9, Action.KEEP, 6.5),  # not clearly low
    (5.7, 9.0, Action.KEEP, 6.5),  # yield on target
    (5.5, None, Action.KEEP, 6.5),  # yield unknown: no raise
    (5.5, float("nan"), Action.KEEP, 6.5),
])
def test_raise_only_for_low_protein_and_low_yield(protein, yld, action, total):
    advice = advise(protein_pct=protein, yield_bales_per_10a=yld)
    assert advice.action is action
    assert advice.total_n_kg_per_10a == total


def test_raise_never_passes_the_high_end():
    at_top = advise(protein_pct=5.5, yield_bales_per_10a=8.0, applied_total_n_kg_per_10a=7.0)
    assert at_top.action is Action.KEEP and at_top.total_n_kg_per_10a == DRY_HIGH
    assert "stops at the standard range's 7.0 kg/10a" in at_top.reason_en
    above = advise(protein_pct=5.5, yield_bales_per_10a=8.0, applied_total_n_kg_per_10a=8.0)
    assert above.action is Action.REDUCE and above.total_n_kg_per_10a == DRY_HIGH
    semi = advise(protein_pct=5.5, yield_bales_per_10a=8.0, applied_total_n_kg_per_10a=5.8,
                  paddy="semi-wet")
    assert semi.action is Action.INCREASE and semi.total_n_kg_per_10a == SEMI_HIGH


def test_basal_is_the_middle_of_the_published_share():
    share = sum(ag.BASAL_N_FRACTION) / 2
    for total in (5.0, 5.5, 6.0, 6.5, 7.0):
        advice = advise(protein_pct=5.9, applied_total_n_kg_per_10a=total)
        assert advice.basal_n_kg_per_10a == pytest.approx(total * share, abs=0.05)
        assert advice.topdress_n_kg_per_10a <= ag.TOPDRESS_MAX_N_KG_PER_10A


def test_no_estimate_and_implausible_estimate_give_the_standard_plan():
    for missing in (None, float("nan"), np.float64("nan")):
        advice = advise(protein_pct=missing)
        assert advice.action is Action.NO_ESTIMATE and advice.total_n_kg_per_10a == 6.5
    odd = advise(protein_pct=14.0)
    assert odd.action is Action.NO_ESTIMATE
    assert odd.reason_en.startswith("The protein estimate 14.0 % is implausible")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"protein_pct": "6.2"}, "protein_pct must be a number, not str"),
    ({"protein_pct": True}, "protein_pct must be a number, not bool"),
    ({"protein_pct": float("inf")}, "protein_pct is infinite"),
    ({"protein_pct": 6.2, "yield_bales_per_10a": -1.0}, "yield_bales_per_10a -1 is outside"),
    ({"protein_pct": 6.2, "yield_bales_per_10a": 600.0}, "outside 0-20"),
    ({"protein_pct": 6.2, "applied_total_n_kg_per_10a": 70.0}, "check the entry"),
    ({"protein_pct": 6.2, "paddy": "wet"}, "paddy must be one of ['dry', 'semi-wet']"),
])
def test_hostile_input_is_refused(kwargs, message):
    with pytest.raises(NitrogenError) as err:
        advise(**kwargs)
    assert message in str(err.value)


def test_a_table_of_fields_with_one_bad_row():
    estimates = pd.DataFrame({
        "protein_pct": [5.6, 6.2, np.nan, 6.6, 6.1],
        "yield_bales_per_10a": [8.0, 9.5, np.nan, 9.0, -3.0],
        "paddy": ["dry", "semi-wet", None, "dry", "dry"],
        "applied_total_n_kg_per_10a": [6.5, 6.0, np.nan, 7.0, 7.0],
    }, index=pd.Index([11, 12, 13, 14, 15], name="field"))
    got = advise_fields(estimates)
    assert got["action"].tolist() == ["increase", "reduce", "no estimate", "reduce",
                                      "invalid input"]
    assert got["total_n_kg_per_10a"].iloc[:4].tolist() == [7.0, 5.0, 6.5, 6.0]
    assert math.isnan(got.loc[15, "total_n_kg_per_10a"])
    assert "yield_bales_per_10a -3 is outside" in got.loc[15, "reason_en"]
    assert got.loc[12, "evidence"]["paddy"] == "semi-wet"
    assert got.index.name == "field"
    with pytest.raises(NitrogenError, match="protein_pct column"):
        advise_fields(estimates.drop(columns="protein_pct"))
    with pytest.raises(NitrogenError, match="more than once"):
        advise_fields(pd.concat([estimates, estimates.iloc[:1]]))


def test_the_protein_maps_output_feeds_the_advice():
    # A stored model whose estimate is 4 + 10 x GNDVI.
    model = ProteinModel(features=("gndvi_mean",), mean=(0.0,), scale=(1.0,), coef_std=(10.0,),
                         intercept=4.0, alpha=1.0, n_samples=30, cv="leave-one-out",
                         cv_r2=0.5, cv_rmse_pct=0.3, train_r2=0.6, feature_min=(0.1,),
                         feature_max=(0.3,))
    stats = pd.DataFrame({"gndvi_mean": [0.18, 0.23, 0.25], "valid_fraction": [1.0, 1.0, 0.1]},
                         index=["a", "b", "c"])
    got = advise_fields(predict(model, stats))
    assert got["action"].tolist() == ["keep", "reduce", "no estimate"]
