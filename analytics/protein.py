"""Protein map: brown-rice protein per field from an image about 25 days before
harvest, fitted each season on the lab samples officers enter.

Aomori maps protein from the green and near-infrared bands (red bands track the
growth stage and predict protein poorly). The model is a ridge regression on
standardised features (by default GNDVI and the green and NIR reflectance
means), its penalty chosen by generalised cross-validation on the samples.
Published fits are modest (R2 0.4-0.6), so the model reports its error measured
by leave-one-out cross-validation: each sample is predicted by a model fitted
without it (penalty choice included), and R2 and RMSE come from those
predictions, not from the fit to all samples.

Inputs are plain tables: the per-field zonal statistics of the protein-map
image (columns ``{quantity}_{stat}`` and ``valid_fraction``, indexed by field
id) and the lab samples (field id, protein % of brown rice at 15 % moisture).
Lab values are checked and a bad one refuses the fit with the fields named;
samples whose field has no usable image value are left out and listed in the
model with the reason.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from agri.analytics import agronomy as ag

logger = logging.getLogger(__name__)

PROTEIN_FEATURES = ("gndvi_mean", "green_mean", "nir_mean")
# Ten samples per feature: the usual rule of thumb for a linear model that is to
# predict new fields rather than describe its samples (Harrell, Regression
# Modeling Strategies, 10-20 per parameter). With three features that is 30:
# fewer lab samples than the prefecture's 50 check fields, and enough that the
# leave-one-out R2 is not mostly noise: simulated with a true R2 of 0.5 (200
# draws, this model), its standard deviation is 0.26 at 20 samples (one draw
# in twenty under zero), 0.17 at 30 and 0.14 at 40.
SAMPLES_PER_FEATURE = 10
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
CV_SCHEME = "leave-one-out"
JSON_FORMAT = 1
INDEX_RANGE = (-1.0, 1.0)  # normalised-difference indices (NDVI, GNDVI, NDRE)
MAX_LISTED = 10  # bad entries named in one error message


class ProteinClass(StrEnum):
    """The brand's protein map classes."""

    TARGET = "target"  # <= TARGET_PROTEIN_MAX_PCT: the production target
    ACCEPTABLE = "acceptable"  # up to SHIPPING_PROTEIN_MAX_PCT
    OVER = "over"  # above the shipping standard: not sold under the brand


class ProteinModelError(ValueError):
    """The protein model cannot be fitted or used with these inputs; the message
    says what to fix."""


def protein_class(protein_pct: float) -> ProteinClass | None:
    """The map class of a protein % (None for NaN): a limit itself belongs to
    the class below it (6.0 is on target, 6.4 still acceptable)."""
    if not math.isfinite(protein_pct):
        return None
    if protein_pct <= ag.TARGET_PROTEIN_MAX_PCT:
        return ProteinClass.TARGET
    if protein_pct <= ag.SHIPPING_PROTEIN_MAX_PCT:
        return ProteinClass.ACCEPTABLE
    return ProteinClass.OVER


@dataclass(frozen=True, slots=True)
class ProteinModel:
    """A season's fitted protein model.

    Prediction is ``intercept + sum(coef_std * (x - mean) / scale)``; the
    same model in raw units is ``coefficients`` (protein % per unit of each
    feature) and ``raw_intercept``. ``excluded`` lists the lab samples left
    out, as (field, reason); ``averaged`` the fields with several lab values,
    as (field, count), whose mean was used.
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef_std: tuple[float, ...]
    intercept: float
    alpha: float
    n_samples: int
    cv: str
    cv_r2: float
    cv_rmse_pct: float
    train_r2: float
    feature_min: tuple[float, ...]
    feature_max: tuple[float, ...]
    excluded: tuple[tuple[Any, str], ...] = ()
    averaged: tuple[tuple[Any, int], ...] = ()
    sample_fields: tuple[Any, ...] = ()

    @property
    def coefficients(self) -> dict[str, float]:
        """Protein % per unit of each feature (raw, unstandardised)."""
        return {f: c / s for f, c, s in zip(self.features, self.coef_std, self.scale, strict=True)}

    @property
    def raw_intercept(self) -> float:
        return self.intercept - sum(
            c * m / s for c, m, s in zip(self.coef_std, self.mean, self.scale, strict=True))

    def to_json(self) -> str:
        """The model as a JSON text for a database row (floats round-trip exactly)."""
        body = {
            "format": JSON_FORMAT,
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef_std": list(self.coef_std),
            "intercept": self.intercept,
            "alpha": self.alpha,
            "n_samples": self.n_samples,
            "cv": self.cv,
            "cv_r2": self.cv_r2,
            "cv_rmse_pct": self.cv_rmse_pct,
            "train_r2": self.train_r2,
            "feature_min": list(self.feature_min),
            "feature_max": list(self.feature_max),
            "excluded": [[_plain(f), r] for f, r in self.excluded],
            "averaged": [[_plain(f), n] for f, n in self.averaged],
            "sample_fields": [_plain(f) for f in self.sample_fields],
        }
        return json.dumps(body, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ProteinModel:
        """A model stored by :meth:`to_json`."""
        try:
            body = json.loads(text)
            if body.get("format") != JSON_FORMAT:
                raise ProteinModelError(
                    f"stored protein model has format {body.get('format')!r}, this version "
                    f"reads {JSON_FORMAT}: refit the model from the season's lab samples")
            n = len(body["features"])
            vectors = {k: tuple(float(v) for v in body[k])
                       for k in ("mean", "scale", "coef_std", "feature_min", "feature_max")}
            if any(len(v) != n for v in vectors.values()) or n == 0:
                raise ProteinModelError("stored protein model is inconsistent: refit it")
            return cls(
                features=tuple(str(f) for f in body["features"]),
                intercept=float(body["intercept"]),
                alpha=float(body["alpha"]),
                n_samples=int(body["n_samples"]),
                cv=str(body["cv"]),
                cv_r2=float(body["cv_r2"]),
                cv_rmse_pct=float(body["cv_rmse_pct"]),
                train_r2=float(body["train_r2"]),
                excluded=tuple((f, str(r)) for f, r in body["excluded"]),
                averaged=tuple((f, int(c)) for f, c in body["averaged"]),
                sample_fields=tuple(body["sample_fields"]),
                **vectors,
            )
        except ProteinModelError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ProteinModelError(
                f"stored protein model is not readable ({type(exc).__name__}: "
                f"{str(exc)[:200]}): refit it from the season's lab samples") from None


def fit(
    stats: pd.DataFrame,
    samples: pd.DataFrame | pd.Series | Iterable[tuple[Any, float]],
    *,
    features: Sequence[str] = PROTEIN_FEATURES,
    min_samples: int | None = None,
    min_valid_fraction: float = ag.MAP_MIN_VALID_FRACTION,
) -> ProteinModel:
    """Fit the season's protein model on lab samples joined with the image's
    per-field statistics.

    ``samples``: a DataFrame with columns ``field`` and ``protein_pct`` (or
    ``value``, as officers' observation rows carry it), a Series indexed by
    field, or (field, protein %) pairs. Several values for one field are
    averaged (the image has one value per field; counting it twice would
    weigh that field double). ``min_samples`` defaults to
    ``SAMPLES_PER_FEATURE`` per feature.
    """
    features = tuple(features)
    needed = SAMPLES_PER_FEATURE * len(features) if min_samples is None else int(min_samples)
    if not features:
        raise ProteinModelError("pass at least one feature column for the protein model")
    if needed < len(features) + 2:
        raise ProteinModelError(
            f"min_samples must be at least {len(features) + 2} for {len(features)} features "
            "(the fit and its cross-validation need more samples than features)")
    lab, averaged = _lab_values(samples)
    table = _feature_table(stats, features)
    valid = _valid_fraction(stats)

    excluded: list[tuple[Any, str]] = []
    used: list[Any] = []
    for fid in lab.index:
        reason = _unusable(fid, table, valid, min_valid_fraction)
        if reason:
            excluded.append((fid, reason))
        else:
            used.append(fid)
    for fid, reason in excluded:
        logger.info("protein sample of field %s left out: %s", fid, reason)

    if len(used) < needed:
        left_out = f" ({len(excluded)} more left out: {_listing(excluded)})" if excluded else ""
        raise ProteinModelError(
            f"the protein model needs at least {needed} lab samples from fields with a usable "
            f"image value; there are {len(used)}{left_out}. Enter more lab protein results "
            "for fields in this image")
    x = table.loc[used].to_numpy(dtype=float)
    y = lab.loc[used].to_numpy(dtype=float)
    if np.ptp(y) == 0.0:
        raise ProteinModelError(
            f"all {len(y)} lab samples have the same protein ({y[0]} %): the model cannot "
            "learn from them; check that the values were entered per field")

    pipe = Pipeline([("scale", StandardScaler()), ("ridge", RidgeCV(alphas=RIDGE_ALPHAS))])
    y_cv = cross_val_predict(pipe, x, y, cv=LeaveOneOut())
    pipe.fit(x, y)
    scaler, ridge = pipe.named_steps["scale"], pipe.named_steps["ridge"]
    model = ProteinModel(
        features=features,
        mean=tuple(float(v) for v in scaler.mean_),
        scale=tuple(float(v) for v in scaler.scale_),
        coef_std=tuple(float(v) for v in ridge.coef_),
        intercept=float(ridge.intercept_),
        alpha=float(ridge.alpha_),
        n_samples=len(y),
        cv=CV_SCHEME,
        cv_r2=float(r2_score(y, y_cv)),
        cv_rmse_pct=float(np.sqrt(np.mean((y - y_cv) ** 2))),
        train_r2=float(r2_score(y, pipe.predict(x))),
        feature_min=tuple(float(v) for v in x.min(axis=0)),
        feature_max=tuple(float(v) for v in x.max(axis=0)),
        excluded=tuple(excluded),
        averaged=tuple(averaged),
        sample_fields=tuple(used),
    )
    logger.info("protein model on %d samples: %s R2 %.2f, RMSE %.2f %% (training R2 %.2f)",
                model.n_samples, model.cv, model.cv_r2, model.cv_rmse_pct, model.train_r2)
    return model


def predict(
    model: ProteinModel,
    stats: pd.DataFrame,
    *,
    min_valid_fraction: float = ag.MAP_MIN_VALID_FRACTION,
) -> pd.DataFrame:
    """Per-field protein % and map class from an image's statistics.

    Columns: ``protein_pct`` (NaN where the field's valid fraction is too low
    or a feature is missing or invalid), ``protein_class`` (a ProteinClass
    value, None without an estimate) and ``extrapolated`` (a feature lies
    outside the range of the lab samples: the estimate is less certain).
    """
    table = _feature_table(stats, model.features)
    valid = _valid_fraction(stats)
    x = table.to_numpy(dtype=float)
    ok = np.isfinite(x).all(axis=1) & (valid.to_numpy() >= min_valid_fraction)
    for j, name in enumerate(model.features):
        if _is_index(name):
            with np.errstate(invalid="ignore"):
                ok &= (x[:, j] >= INDEX_RANGE[0]) & (x[:, j] <= INDEX_RANGE[1])
    z = (x - np.asarray(model.mean)) / np.asarray(model.scale)
    pct = np.where(ok, z @ np.asarray(model.coef_std) + model.intercept, np.nan)
    with np.errstate(invalid="ignore"):
        outside = ((x < np.asarray(model.feature_min)) | (x > np.asarray(model.feature_max)))
    classes = [None if c is None else c.value for c in map(protein_class, pct)]
    return pd.DataFrame(
        {
            "protein_pct": pct,
            "protein_class": pd.Series(classes, index=table.index, dtype=object),
            "extrapolated": ok & outside.any(axis=1),
        },
        index=table.index,
    )


# --- input checks ---------------------------------------------------------------


def _lab_values(samples: Any) -> tuple[pd.Series, list[tuple[Any, int]]]:
    """Lab protein by field (averaged over duplicates), after checking every
    value; raises with the bad entries named."""
    if isinstance(samples, pd.DataFrame):
        column = next((c for c in ("protein_pct", "value") if c in samples.columns), None)
        if "field" not in samples.columns or column is None:
            raise ProteinModelError(
                "lab samples need columns 'field' and 'protein_pct' (or 'value'); got "
                f"{[str(c) for c in samples.columns][:MAX_LISTED]}")
        pairs = list(zip(samples["field"], samples[column], strict=True))
    elif isinstance(samples, pd.Series):
        pairs = list(samples.items())
    elif isinstance(samples, Mapping):
        raise ProteinModelError(
            "pass lab samples as (field, protein %) pairs, a Series or a DataFrame, not a "
            "mapping (a mapping cannot hold two results for one field)")
    else:
        try:
            pairs = [tuple(p) for p in samples]
        except TypeError:
            raise ProteinModelError(
                "lab samples must be (field, protein %) pairs, a Series or a DataFrame") from None
        if any(len(p) != 2 for p in pairs):
            raise ProteinModelError("each lab sample must be one (field, protein %) pair")

    low, high = ag.PROTEIN_PLAUSIBLE_PCT
    bad: list[str] = []
    fields: list[Any] = []
    values: list[float] = []
    for fid, raw in pairs:
        if fid is None or (isinstance(fid, float) and math.isnan(fid)):
            bad.append(f"a sample without a field ({raw!r})")
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            bad.append(f"field {fid}: {str(raw)[:40]!r} is not a number")
            continue
        if not math.isfinite(value):
            bad.append(f"field {fid}: {value} is not a finite number")
        elif not low <= value <= high:
            bad.append(f"field {fid}: {value} % is outside {low}-{high} %")
        else:
            fields.append(_plain(fid))
            values.append(value)
    if bad:
        more = f" and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        raise ProteinModelError(
            f"{len(bad)} lab protein value(s) cannot be used: {'; '.join(bad[:MAX_LISTED])}"
            f"{more}. Correct them (protein % of brown rice at "
            f"{ag.PROTEIN_MOISTURE_BASIS_PCT:g} % moisture) and fit again")
    lab = pd.Series(values, index=pd.Index(fields, dtype=object), dtype=float)
    counts = lab.groupby(level=0, sort=False).size()
    averaged = [(f, int(n)) for f, n in counts.items() if n > 1]
    for f, n in averaged:
        logger.info("field %s has %d lab protein values: their mean is used", f, n)
    return lab.groupby(level=0, sort=False).mean(), averaged


def _feature_table(stats: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    if not isinstance(stats, pd.DataFrame):
        raise ProteinModelError("image statistics must be a DataFrame indexed by field id")
    if stats.index.has_duplicates:
        dup = stats.index[stats.index.duplicated()].unique()[:MAX_LISTED]
        raise ProteinModelError(
            f"image statistics list field(s) {list(dup)} more than once: pass one row per field")
    missing = [f for f in features if f not in stats.columns]
    if missing:
        raise ProteinModelError(
            f"image statistics lack {missing}; the protein model needs {list(features)} "
            "(green and NIR bands): use an image whose source has them")
    return stats.loc[:, list(features)].apply(pd.to_numeric, errors="coerce").astype(float)


def _valid_fraction(stats: pd.DataFrame) -> pd.Series:
    if "valid_fraction" not in stats.columns:
        raise ProteinModelError("image statistics lack the valid_fraction column")
    return pd.to_numeric(stats["valid_fraction"], errors="coerce").astype(float).fillna(0.0)


def _unusable(fid: Any, table: pd.DataFrame, valid: pd.Series, min_valid: float) -> str:
    """Why a field's image value cannot be used ('' when it can)."""
    if fid not in table.index:
        return "field not in the image statistics"
    if not valid.loc[fid] >= min_valid:
        return f"valid_fraction {valid.loc[fid]:.2f} below {min_valid:g}"
    row = table.loc[fid]
    for name, value in row.items():
        if not math.isfinite(value):
            return f"{name} is not a finite number"
        if _is_index(str(name)) and not INDEX_RANGE[0] <= value <= INDEX_RANGE[1]:
            return f"{name} {value:g} outside {INDEX_RANGE[0]:g} to {INDEX_RANGE[1]:g}"
    return ""


def _is_index(name: str) -> bool:
    return name.split("_", 1)[0] in ("ndvi", "gndvi", "ndre")


def _listing(items: Sequence[tuple[Any, str]]) -> str:
    shown = "; ".join(f"field {f}: {r}" for f, r in items[:MAX_LISTED])
    return shown + (f"; and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _plain(value: Any) -> Any:
    """A field id as a plain Python value (numpy integers become int)."""
    return value.item() if isinstance(value, np.generic) else value
