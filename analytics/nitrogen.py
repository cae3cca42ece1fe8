"""Next season's nitrogen: the fertiliser-plan advice from a field's protein
estimate (and its yield estimate where known).

The prefecture reads the protein map from January to April to design the next
season's fertiliser. The plan follows the published total-N range for the
paddy's drainage (agronomy section 1: dry or semi-wet paddy, 70-80 % basal).
From this season's total N (capped at the range's high end; the middle of the
range when it is not known) it takes N_REDUCTION_KG_PER_10A_PER_0_1_PCT off for
each 0.1 % of protein above the production target, never below the range's
low end; it adds N_INCREASE_KG_PER_10A only where protein is clearly low and
the yield is below the target, never above the high end. Nothing else raises
N: a field already below the range with good protein keeps its N. The basal
share is the middle of the published share; the rest is the top-dressing,
which the growth index at panicle initiation still decides.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from agri.analytics import agronomy as ag
from agri.analytics.protein import ProteinClass, protein_class

logger = logging.getLogger(__name__)

BASAL_FRACTION = sum(ag.BASAL_N_FRACTION) / 2  # middle of the published basal share
PROTEIN_STEP_PCT = 0.1  # the reduction is stated per 0.1 % of protein
MAX_ERROR_CHARS = 300


class NitrogenError(ValueError):
    """The nitrogen advice cannot be given from these inputs; the message says
    what to fix."""


class Paddy(StrEnum):
    DRY = "dry"  # 乾田
    SEMI_WET = "semi-wet"  # 半湿田


class Action(StrEnum):
    REDUCE = "reduce"
    KEEP = "keep"
    INCREASE = "increase"
    NO_ESTIMATE = "no estimate"  # no usable protein estimate: the standard plan
    INVALID = "invalid input"  # only from advise_fields: the field's inputs were refused


TOTAL_N_RANGE = {
    Paddy.DRY: ag.TOTAL_N_DRY_PADDY_KG_PER_10A,
    Paddy.SEMI_WET: ag.TOTAL_N_SEMI_WET_PADDY_KG_PER_10A,
}
PADDY_JA = {Paddy.DRY: "乾田", Paddy.SEMI_WET: "半湿田"}


@dataclass(frozen=True, slots=True)
class NitrogenAdvice:
    """One field's plan for next season, kg N/10a. ``topdress`` is the share
    left for top-dressing at panicle initiation (still decided by the growth
    index then); ``evidence`` holds the numbers the advice rests on."""

    action: Action
    total_n_kg_per_10a: float
    basal_n_kg_per_10a: float
    topdress_n_kg_per_10a: float
    reason_ja: str
    reason_en: str
    evidence: dict[str, Any]


def advise(
    *,
    protein_pct: float | None,
    yield_bales_per_10a: float | None = None,
    paddy: Paddy | str = Paddy.DRY,
    applied_total_n_kg_per_10a: float | None = None,
) -> NitrogenAdvice:
    """The nitrogen advice for one field from this season's protein estimate
    (brown rice, 15 % moisture), its yield estimate in bales (60 kg)/10a and,
    where known, the total N applied this season.

    The plan starts from this season's total N (capped at the range's high
    end) or, unknown, the middle of the range. N is cut only for protein above
    the target and never below the low end by the cut; it is raised only for
    clearly low protein with a yield under the target. A field already below
    the range keeps its N unless it qualifies for the raise. ``action`` says
    what changes against this season (against the starting plan when this
    season's N is unknown).
    """
    paddy = _paddy(paddy)
    protein = _number(protein_pct, "protein_pct")
    yld = _number(yield_bales_per_10a, "yield_bales_per_10a",
                  limit=ag.YIELD_PLAUSIBLE_MAX_BALES_PER_10A)
    applied = _number(applied_total_n_kg_per_10a, "applied_total_n_kg_per_10a",
                      limit=ag.N_PLAUSIBLE_MAX_KG_PER_10A)
    low, high = TOTAL_N_RANGE[paddy]
    if applied is None:
        base, base_from = _step(low + (high - low) / 2), "middle of the standard range"
    else:
        base, base_from = _step(min(applied, high)), "this season's total N"
    reference = base if applied is None else _step(applied)
    cls = protein_class(protein) if protein is not None else None
    evidence: dict[str, Any] = {
        "protein_pct": protein,
        "protein_class": cls.value if cls else None,
        "yield_bales_per_10a": yld,
        "paddy": paddy.value,
        "standard_range_kg_per_10a": [low, high],
        "applied_total_n_kg_per_10a": applied,
        "base_total_n_kg_per_10a": base,
        "base": base_from,
    }
    p_low, p_high = ag.PROTEIN_PLAUSIBLE_PCT
    target, shipping = ag.TARGET_PROTEIN_MAX_PCT, ag.SHIPPING_PROTEIN_MAX_PCT
    y_target = ag.TARGET_YIELD_BALES_PER_10A

    if protein is None or not p_low <= protein <= p_high:
        total = base
        plan_ja, plan_en = _plan(total)
        if protein is None:
            ja = f"タンパク質の推定値がありません。{plan_ja}で計画してください。"
            en = f"No protein estimate for this field: plan {plan_en}."
        else:
            ja = (f"タンパク質の推定値{_pct(protein)}%はありえない値です。画像とモデルを確認し、"
                  f"それまでは{plan_ja}で計画してください。")
            en = (f"The protein estimate {_pct(protein)} % is implausible: check the image and "
                  f"the model; until then plan {plan_en}.")
        return _advice(Action.NO_ESTIMATE, total, ja, en, evidence)

    if cls is not ProteinClass.TARGET:
        steps = (Decimal(repr(protein)) - Decimal(repr(target))) / Decimal(repr(PROTEIN_STEP_PCT))
        cut = _step(float(steps) * ag.N_REDUCTION_KG_PER_10A_PER_0_1_PCT, up=True)
        total = base if base <= low else _step(max(base - cut, low))
        plan_ja, plan_en = _plan(total)
        if cls is ProteinClass.OVER:
            why_ja = f"タンパク質{_pct(protein)}%は出荷基準{shipping:.1f}%を超えました。"
            why_en = f"Protein {_pct(protein)} % exceeds the {shipping:.1f} % shipping standard"
        else:
            why_ja = f"タンパク質{_pct(protein)}%は生産目標{target:.1f}%を上回りました。"
            why_en = f"Protein {_pct(protein)} % is above the {target:.1f} % production target"
        floor_ja, floor_en = "", ""
        if total <= low:
            where_ja, where_en = (("基準の下限です", "the standard range's low end") if total == low
                                  else ("基準の下限を下回っています", "below the standard range"))
            floor_ja = (f"{where_ja}ので、これ以上は減らしません。"
                        "穂肥は幼穂形成期の生育診断に従い、土壌診断で地力窒素を確かめてください。")
            floor_en = (f" That is {where_en}, so no further cut: top-dress only as the growth "
                        "index at panicle initiation allows, and have the soil's nitrogen supply "
                        "tested.")
        if total < reference:
            ja = f"{why_ja}来年は{plan_ja}に減らしてください。{floor_ja}"
            en = f"{why_en}: reduce next season to {plan_en}.{floor_en}"
            return _advice(Action.REDUCE, total, ja, en, evidence)
        ja = f"{why_ja}来年も{plan_ja}としてください。{floor_ja}"
        en = f"{why_en}: keep {plan_en} next season.{floor_en}"
        return _advice(Action.KEEP, total, ja, en, evidence)

    low_protein = protein <= target - ag.N_INCREASE_PROTEIN_MARGIN_PCT
    if low_protein and yld is not None and yld < y_target:
        total = _step(min(base + ag.N_INCREASE_KG_PER_10A, high))
        plan_ja, plan_en = _plan(total)
        why_ja = (f"タンパク質{_pct(protein)}%は低く、収量{yld:.1f}俵/10aは目標{y_target:.0f}俵に"
                  "届きません。")
        why_en = (f"Protein {_pct(protein)} % is low and the yield of {yld:.1f} bales/10a is "
                  f"under the {y_target:.0f}-bale target")
        if total > reference:
            ja = f"{why_ja}来年は{plan_ja}に増やしてください。"
            en = f"{why_en}: raise next season to {plan_en}."
            return _advice(Action.INCREASE, total, ja, en, evidence)
        ja = (f"{why_ja}全窒素は基準の上限{high:.1f}kg/10aまでなので、来年は{plan_ja}とし、"
              "収量は栽植密度や水管理で確保してください。")
        en = (f"{why_en}, but total N stops at the standard range's {high:.1f} kg/10a: plan "
              f"{plan_en} and look to planting density and water for the yield.")
        return _advice(Action.KEEP if total == reference else Action.REDUCE, total, ja, en,
                       evidence)

    total = base
    plan_ja, plan_en = _plan(total)
    why_ja = f"タンパク質{_pct(protein)}%は生産目標{target:.1f}%以下です。"
    why_en = f"Protein {_pct(protein)} % meets the {target:.1f} % target"
    if total < reference:
        ja = (f"{why_ja}今年の全窒素は基準の上限{high:.1f}kg/10aを超えたので、"
              f"来年は{plan_ja}にしてください。")
        en = (f"{why_en}, but this season's total N was above the standard range's "
              f"{high:.1f} kg/10a: plan {plan_en}.")
        return _advice(Action.REDUCE, total, ja, en, evidence)
    ja = f"{why_ja}来年も{plan_ja}を続けてください。"
    en = f"{why_en}: keep {plan_en} next season."
    return _advice(Action.KEEP, total, ja, en, evidence)


def advise_fields(
    estimates: pd.DataFrame,
    *,
    paddy: Paddy | str = Paddy.DRY,
) -> pd.DataFrame:
    """The advice for every field of a table indexed by field with column
    ``protein_pct`` (as :func:`agri.analytics.protein.predict` gives it) and
    optional columns ``yield_bales_per_10a``, ``paddy`` (else ``paddy``) and
    ``applied_total_n_kg_per_10a``. A field whose inputs are refused gets an
    ``invalid input`` row with the error in both reasons; the others are
    unaffected."""
    if not isinstance(estimates, pd.DataFrame) or "protein_pct" not in estimates.columns:
        raise NitrogenError("pass a DataFrame indexed by field with a protein_pct column")
    if estimates.index.has_duplicates:
        dup = list(estimates.index[estimates.index.duplicated()].unique()[:10])
        raise NitrogenError(f"fields {dup} appear more than once: pass one row per field")
    rows = []
    for fid, row in estimates.iterrows():
        try:
            advice = advise(
                protein_pct=row["protein_pct"],
                yield_bales_per_10a=row.get("yield_bales_per_10a"),
                paddy=row.get("paddy", paddy) if _present(row.get("paddy")) else paddy,
                applied_total_n_kg_per_10a=row.get("applied_total_n_kg_per_10a"),
            )
        except NitrogenError as exc:
            message = str(exc)[:MAX_ERROR_CHARS]
            logger.warning("nitrogen advice for field %s refused: %s", fid, message)
            rows.append({"field": fid, "action": Action.INVALID.value,
                         "total_n_kg_per_10a": math.nan, "basal_n_kg_per_10a": math.nan,
                         "topdress_n_kg_per_10a": math.nan, "reason_ja": message,
                         "reason_en": message, "evidence": {}})
            continue
        rows.append({"field": fid, "action": advice.action.value,
                     "total_n_kg_per_10a": advice.total_n_kg_per_10a,
                     "basal_n_kg_per_10a": advice.basal_n_kg_per_10a,
                     "topdress_n_kg_per_10a": advice.topdress_n_kg_per_10a,
                     "reason_ja": advice.reason_ja, "reason_en": advice.reason_en,
                     "evidence": advice.evidence})
    columns = ["action", "total_n_kg_per_10a", "basal_n_kg_per_10a", "topdress_n_kg_per_10a",
               "reason_ja", "reason_en", "evidence"]
    table = pd.DataFrame(rows, columns=["field", *columns]).set_index("field")
    table.index.name = estimates.index.name
    return table


def _advice(action: Action, total: float, ja: str, en: str,
            evidence: dict[str, Any]) -> NitrogenAdvice:
    basal = _basal(total)
    return NitrogenAdvice(action, total, basal, _step(total - basal), ja, en, evidence)


def _plan(total: float) -> tuple[str, str]:
    """The plan in words: total N and its basal part."""
    basal = _basal(total)
    return (f"全窒素{total:.1f}kg/10a(基肥{basal:.1f}kg)",
            f"a total N of {total:.1f} kg/10a (basal {basal:.1f})")


def _basal(total: float) -> float:
    return _step(total * BASAL_FRACTION)


def _step(kg: float, *, up: bool = False) -> float:
    """kg rounded to the plan's step (half up, or up with ``up``), computed in
    decimal so that 0.1-steps do not drift."""
    step = Decimal(repr(ag.N_PLAN_STEP_KG_PER_10A))
    value = Decimal(repr(round(kg, 9)))
    units = (value / step).quantize(Decimal(1), rounding=ROUND_CEILING if up else ROUND_HALF_UP)
    return float(units * step)


def _pct(value: float) -> str:
    """A protein % for a reason: one decimal, two when one would hide which side
    of a limit it is on."""
    return f"{value:.1f}" if round(value, 1) == round(value, 2) else f"{value:.2f}"


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _paddy(value: Any) -> Paddy:
    try:
        return Paddy(value)
    except ValueError:
        raise NitrogenError(
            f"paddy must be one of {[p.value for p in Paddy]}, not {str(value)[:40]!r}") from None


def _number(value: Any, name: str, *, limit: float | None = None) -> float | None:
    """A finite number, None for a missing one; refuses text, booleans, infinities
    and (with ``limit``) values outside 0..limit."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        raise NitrogenError(
            f"{name} must be a number, not {type(value).__name__} {str(value)[:40]!r}")
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise NitrogenError(f"{name} is infinite: pass a measured or estimated value")
    if limit is not None and not 0.0 <= value <= limit:
        raise NitrogenError(f"{name} {value:g} is outside 0-{limit:g}: check the entry")
    return value
