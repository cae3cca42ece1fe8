"""Protein model: recovers a known relation, reports cross-validated (not
training) error, refuses too few samples, stores as JSON, classes at the
brand's limits, and refuses or leaves out bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from agri.analytics import agronomy as ag
from agri.analytics.protein import (
    PROTEIN_FEATURES,
    ProteinClass,
    ProteinModel,
    ProteinModelError,
    fit,
    predict,
    protein_class,
)


def make_image(rng: np.random.Generator, n: int, *, first: int = 0) -> pd.DataFrame:
    """Per-field statistics of a protein-map image: green and NIR reflectance
    means and the GNDVI they give, all fields fully valid."""
    green = rng.uniform(0.04, 0.09, n)
    nir = rng.uniform(0.30, 0.45, n)
    return pd.DataFrame(
        {
            "gndvi_mean": (nir - green) / (nir + green),
            "green_mean": green,
            "nir_mean": nir,
            "red_mean": rng.uniform(0.03, 0.08, n),
            "valid_fraction": 1.0,
        },
        index=pd.Index([f"f{i}" for i in range(first, first + n)], name="field"),
    )


def true_protein(stats: pd.DataFrame) -> pd.Series:
    return 1.0 + 6.5 * stats["gndvi_mean"]


def lab(stats: pd.DataFrame, rng: np.random.Generator, noise_pct: float) -> list:
    y = true_protein(stats) + rng.normal(0.0, noise_pct, len(stats))
    return list(zip(stats.index, y, strict=True))


def test_recovers_a_known_linear_relation():
    rng = np.random.default_rng(1)
    stats = make_image(rng, 60)
    noise = 0.12
    samples = lab(stats, rng, noise)
    model = fit(stats, samples)
    y = np.array([v for _, v in samples])
    sample_r2 = 1 - noise**2 / y.var()  # what a perfect model would reach, about 0.9
    assert model.n_samples == 60
    assert model.cv == "leave-one-out"
    assert abs(model.cv_r2 - sample_r2) < 0.08
    assert model.cv_rmse_pct == pytest.approx(noise, rel=0.25)
    # New fields of the same season: the model predicts them as well as CV said.
    fresh = make_image(rng, 200, first=1000)
    got = predict(model, fresh)["protein_pct"]
    err = got - true_protein(fresh)
    assert float(np.sqrt((err**2).mean())) < noise
    assert model.features == PROTEIN_FEATURES


def test_cross_validated_r2_is_not_the_training_r2():
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        stats = make_image(rng, 30)
        noise_only = list(zip(stats.index, rng.normal(6.0, 0.3, 30), strict=True))
        model = fit(stats, noise_only)
        # The fit to all samples explains some noise; predicting each sample
        # from the others explains none.
        assert model.cv_r2 < 0.0, seed
        assert model.train_r2 > model.cv_r2


def test_refuses_too_few_samples_with_the_numbers():
    rng = np.random.default_rng(2)
    stats = make_image(rng, 29)
    with pytest.raises(ProteinModelError) as err:
        fit(stats, lab(stats, rng, 0.1))
    assert str(err.value) == (
        "the protein model needs at least 30 lab samples from fields with a usable image "
        "value; there are 29. Enter more lab protein results for fields in this image")


def test_refusal_counts_the_samples_left_out():
    rng = np.random.default_rng(3)
    stats = make_image(rng, 30)
    stats.loc["f1", "valid_fraction"] = 0.2
    samples = [*lab(stats, rng, 0.1), ("nowhere", 6.0)]
    with pytest.raises(ProteinModelError) as err:
        fit(stats, samples)
    assert str(err.value) == (
        "the protein model needs at least 30 lab samples from fields with a usable image "
        "value; there are 29 (2 more left out: field f1: valid_fraction 0.20 below 0.5; "
        "field nowhere: field not in the image statistics). Enter more lab protein results "
        "for fields in this image")


def test_minimum_follows_the_number_of_features():
    rng = np.random.default_rng(4)
    stats = make_image(rng, 20)
    model = fit(stats, lab(stats, rng, 0.1), features=("gndvi_mean", "nir_mean"))
    assert model.n_samples == 20
    with pytest.raises(ProteinModelError, match="min_samples must be at least 4"):
        fit(stats, lab(stats, rng, 0.1), features=("gndvi_mean", "nir_mean"), min_samples=3)


def test_samples_without_a_usable_image_value_are_left_out_and_listed():
    rng = np.random.default_rng(5)
    stats = make_image(rng, 36)
    samples = [*lab(stats, rng, 0.1), ("f999", 6.1)]
    stats["gndvi_mean"] = stats["gndvi_mean"].astype(object)
    stats.loc["f0", "gndvi_mean"] = np.nan
    stats.loc["f1", "gndvi_mean"] = 1.5
    stats.loc["f2", "gndvi_mean"] = "cloud"
    stats.loc["f3", "valid_fraction"] = 0.49
    stats.loc["f4", "nir_mean"] = np.inf
    model = fit(stats, samples)
    reasons = dict(model.excluded)
    assert reasons == {
        "f0": "gndvi_mean is not a finite number",
        "f1": "gndvi_mean 1.5 outside -1 to 1",
        "f2": "gndvi_mean is not a finite number",
        "f3": "valid_fraction 0.49 below 0.5",
        "f4": "nir_mean is not a finite number",
        "f999": "field not in the image statistics",
    }
    assert model.n_samples == 31
    assert set(model.sample_fields) == {f"f{i}" for i in range(5, 36)}


def test_duplicate_lab_values_are_averaged():
    rng = np.random.default_rng(6)
    stats = make_image(rng, 30)
    samples = lab(stats, rng, 0.1)
    once = fit(stats, [("f0", 6.0), *samples[1:]])
    twice = fit(stats, [("f0", 5.5), ("f0", 6.5), *samples[1:]])
    assert twice.averaged == (("f0", 2),)
    assert twice.coef_std == pytest.approx(once.coef_std, abs=1e-12)
    assert twice.n_samples == once.n_samples == 30


def test_samples_as_officers_rows_or_series():
    rng = np.random.default_rng(7)
    stats = make_image(rng, 30)
    pairs = lab(stats, rng, 0.1)
    rows = pd.DataFrame({"field": [f for f, _ in pairs], "kind": "lab_protein",
                         "value": [v for _, v in pairs]})
    series = pd.Series(dict(pairs))
    a, b, c = fit(stats, pairs), fit(stats, rows), fit(stats, series)
    assert a.coef_std == b.coef_std == c.coef_std
    with pytest.raises(ProteinModelError, match="columns 'field' and 'protein_pct'"):
        fit(stats, rows.rename(columns={"value": "protein"}))
    with pytest.raises(ProteinModelError, match="not a mapping"):
        fit(stats, dict(pairs))


@pytest.mark.parametrize(("value", "expected"), [
    (float("nan"), "field f0: nan is not a finite number"),
    (float("inf"), "field f0: inf is not a finite number"),
    ("six", "field f0: 'six' is not a number"),
    (64.0, "field f0: 64.0 % is outside 3.0-12.0 %"),
    (2.99, "field f0: 2.99 % is outside 3.0-12.0 %"),
    (12.01, "field f0: 12.01 % is outside 3.0-12.0 %"),
])
def test_bad_lab_values_refuse_the_fit_with_the_field_named(value, expected):
    rng = np.random.default_rng(8)
    stats = make_image(rng, 40)
    samples = lab(stats, rng, 0.1)
    with pytest.raises(ProteinModelError) as err:
        fit(stats, [("f0", value), *samples[1:]])
    assert str(err.value).startswith(f"1 lab protein value(s) cannot be used: {expected}. ")
    assert "15 % moisture" in str(err.value)


def test_plausible_limits_are_accepted_and_long_lists_are_bounded():
    rng = np.random.default_rng(9)
    stats = make_image(rng, 40)
    samples = lab(stats, rng, 0.1)
    low, high = ag.PROTEIN_PLAUSIBLE_PCT
    model = fit(stats, [("f0", low), ("f1", high), *samples[2:]])
    assert model.n_samples == 40
    with pytest.raises(ProteinModelError) as err:
        fit(stats, [(f, 99.0) for f, _ in samples] + [(None, 6.0)])
    text = str(err.value)
    assert text.startswith("41 lab protein value(s) cannot be used")
    assert "and 31 more" in text and len(text) < 1000


def test_hostile_image_statistics():
    rng = np.random.default_rng(10)
    stats = make_image(rng, 30)
    samples = lab(stats, rng, 0.1)
    with pytest.raises(ProteinModelError, match=r"lack \['green_mean'\]"):
        fit(stats.drop(columns="green_mean"), samples)
    with pytest.raises(ProteinModelError, match="more than once"):
        fit(pd.concat([stats, stats.iloc[:1]]), samples)
    with pytest.raises(ProteinModelError, match="valid_fraction"):
        fit(stats.drop(columns="valid_fraction"), samples)
    with pytest.raises(ProteinModelError, match="DataFrame"):
        fit(stats.to_dict(), samples)
    with pytest.raises(ProteinModelError, match="same protein"):
        fit(stats, [(f, 6.0) for f, _ in samples])


def test_json_round_trip_predicts_identically():
    rng = np.random.default_rng(11)
    stats = make_image(rng, 40)
    stats.loc["f3", "valid_fraction"] = 0.1
    model = fit(stats, [*lab(stats, rng, 0.15), ("gone", 6.0), ("f0", 6.2)])
    text = model.to_json()
    json.loads(text)  # plain JSON, no pickle
    again = ProteinModel.from_json(text)
    assert again == model
    other = make_image(rng, 100, first=500)
    pd.testing.assert_frame_equal(predict(again, other), predict(model, other))
    assert dict(again.excluded)["gone"] == "field not in the image statistics"


def test_int_field_ids_survive_json():
    rng = np.random.default_rng(12)
    stats = make_image(rng, 30)
    stats.index = pd.Index(np.arange(30, dtype=np.int64))
    model = fit(stats, lab(stats, rng, 0.1))
    again = ProteinModel.from_json(model.to_json())
    assert again.sample_fields == tuple(range(30))


@pytest.mark.parametrize("text", [
    "not json", "[]", '{"format": 99}', json.dumps({"format": 1, "features": ["a"]}),
])
def test_unreadable_stored_model_is_refused(text):
    with pytest.raises(ProteinModelError, match="refit"):
        ProteinModel.from_json(text)


def identity_model() -> ProteinModel:
    """A model whose prediction is green_mean itself, to test the classes."""
    return ProteinModel(features=("green_mean",), mean=(0.0,), scale=(1.0,), coef_std=(1.0,),
                        intercept=0.0, alpha=1.0, n_samples=30, cv="leave-one-out", cv_r2=0.5,
                        cv_rmse_pct=0.3, train_r2=0.6, feature_min=(5.0,), feature_max=(7.0,))


def test_protein_classes_at_the_brand_limits():
    assert protein_class(ag.TARGET_PROTEIN_MAX_PCT) is ProteinClass.TARGET
    assert protein_class(6.0) is ProteinClass.TARGET
    assert protein_class(6.0000001) is ProteinClass.ACCEPTABLE
    assert protein_class(6.4) is ProteinClass.ACCEPTABLE
    assert protein_class(6.41) is ProteinClass.OVER
    assert protein_class(float("nan")) is None
    stats = pd.DataFrame({"green_mean": [5.5, 6.0, 6.01, 6.4, 6.41, 7.5],
                          "valid_fraction": 1.0}, index=list("abcdef"))
    got = predict(identity_model(), stats)
    assert list(got["protein_class"]) == ["target", "target", "acceptable", "acceptable",
                                          "over", "over"]
    assert list(got["extrapolated"]) == [False] * 5 + [True]


def test_prediction_is_missing_where_the_image_is_not_usable():
    stats = pd.DataFrame({"green_mean": [6.2, 6.2, np.nan, 6.2],
                          "valid_fraction": [1.0, 0.49, 1.0, np.nan]}, index=[1, 2, 3, 4])
    got = predict(identity_model(), stats)
    assert got.loc[1, "protein_pct"] == 6.2
    assert all(math.isnan(got.loc[i, "protein_pct"]) for i in (2, 3, 4))
    assert list(got["protein_class"]) == ["acceptable", None, None, None]
    assert not got["extrapolated"].any()
    with pytest.raises(ProteinModelError, match="lack"):
        predict(identity_model(), stats.drop(columns="green_mean"))
