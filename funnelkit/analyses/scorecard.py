"""Opportunity scorecard (商机评分卡): points per dimension, weighted score, tier and drivers.

For deal i with points ``x_ik`` (1–5) on dimension k and weights ``w_k`` (Σ w_k = 1)::

    contribution_ik = 20 × w_k × x_ik          score_i = Σ_k contribution_ik   (0–100)

Fixed tiers (default): ``score ≥ 80`` high, ``≥ 60`` medium, else low (thresholds in params).
Relative tiers: the top 20% of scored deals are high, the next 30% medium (shares in params).
A deal missing an input of a weighted dimension is **unscored** with the reason; it is never scored
as if the missing input were worth 1 point.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from funnelkit.arguments import choose, expect_type
from funnelkit.config import StrictModel, load_params
from funnelkit.inputs.data import _rows_text, percent_as_fraction
from funnelkit.memo import reused
from funnelkit.results import TableResult

TIERS = ("high", "medium", "low")
_SUM_TOL = 1e-9
NON_NEGATIVE = {"amount", "payment_days", "win_probability"}  # data contract: ≥ 0


class Band(StrictModel):
    """Points for a numeric value; exactly one bound, except a final catch-all band."""

    points: int = Field(ge=1, le=5)
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None

    def bounds(self) -> dict[str, float]:
        return {k: v for k, v in (("at_least", self.at_least), ("above", self.above),
                                  ("at_most", self.at_most), ("below", self.below)) if v is not None}

    def matches(self, values: np.ndarray) -> np.ndarray:
        ops = {"at_least": np.greater_equal, "above": np.greater, "at_most": np.less_equal, "below": np.less}
        bounds = self.bounds()
        if not bounds:
            return ~np.isnan(values)
        (kind, limit), = bounds.items()
        return ops[kind](values, limit)


class Dimension(StrictModel):
    label: dict[Literal["en", "zh"], str]
    column: str
    weight: float = Field(ge=0, le=1)
    bands: list[Band] | None = None
    points: dict[str, int] | None = None
    other: int | None = Field(default=None, ge=1, le=5)  # categorical: points of a value not listed
    percent_or_fraction: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> "Dimension":
        if (self.bands is None) == (self.points is None):
            raise ValueError("give either numeric `bands` or categorical `points`, not both or neither")
        if self.bands is not None:
            for i, band in enumerate(self.bands):
                n = len(band.bounds())
                if n > 1 or (n == 0 and i != len(self.bands) - 1):
                    raise ValueError(f"band {i}: state one of at_least, above, at_most, below "
                                     "(only the last band may state none)")
        if self.points is not None and not all(1 <= p <= 5 for p in self.points.values()):
            raise ValueError("categorical points must be between 1 and 5")
        if self.other is not None and self.points is None:
            raise ValueError("`other` (points of an unlisted value) applies to categorical `points` only")
        return self


class Scenario(StrictModel):
    description: dict[Literal["en", "zh"], str] | None = None
    set: dict[str, float] | None = None  # fix these weights, rescale the others in proportion
    weights: dict[str, float] | None = None  # every weight
    normalize: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> "Scenario":
        if (self.set is None) == (self.weights is None):
            raise ValueError("give either `set` (some weights, others rescaled) or `weights` (all), not both")
        return self


class Scorecard(StrictModel):
    """``params/scorecard.yaml``: dimensions with bands and weights, tiers, scenarios."""

    mode: Literal["fixed", "relative"] = "fixed"
    tiers: dict[Literal["high", "medium"], float] = {"high": 80, "medium": 60}
    relative_tiers: dict[Literal["high", "medium"], float] = {"high": 0.2, "medium": 0.3}
    dimensions: dict[str, Dimension] = Field(min_length=1)
    # a deal missing a weighted field: "unscored" (with the reason), or "renormalise": scored on the
    # fields it has, their weights rescaled to sum to 1, and marked partial with its coverage
    missing: Literal["unscored", "renormalise"] = "unscored"
    scenarios: dict[str, Scenario] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _weights_valid(self) -> "Scorecard":
        total = sum(d.weight for d in self.dimensions.values())
        if abs(total - 1) > _SUM_TOL:
            raise ValueError(f"baseline weights sum to {total:g}, not 1")
        for name in self.scenarios:
            self.weights(name)  # raises ValueError naming the scenario
        if self.tiers["high"] < self.tiers["medium"]:
            raise ValueError("tiers: high must not be below medium")
        return self

    def weights(self, scenario: str | None = None) -> dict[str, float]:
        """Weights of the baseline or of ``scenario``, as dimension → weight summing to 1."""
        base = {k: d.weight for k, d in self.dimensions.items()}
        if scenario is None:
            return base
        if scenario not in self.scenarios:

            choose(scenario, self.scenarios, "scenario")  # raises, listing the scenarios
        spec = self.scenarios[scenario]
        given = spec.set if spec.set is not None else spec.weights
        unknown = set(given) - set(base)
        if unknown:
            raise ValueError(f"scenario {scenario!r}: unknown dimension(s) {', '.join(sorted(unknown))}")
        if spec.set is not None:
            return _fix_and_rescale(base, spec.set, f"scenario {scenario!r}")
        weights = {k: float(given.get(k, 0.0)) for k in base}
        total = sum(weights.values())
        if abs(total - 1) > _SUM_TOL:
            if not spec.normalize or total <= 0:
                raise ValueError(f"scenario {scenario!r}: weights sum to {total:g}, not 1 (set normalize: true to rescale)")
            weights = {k: w / total for k, w in weights.items()}
        return weights


    def weights_for(self, given: dict[str, float]) -> dict[str, float]:
        """Weights from a dict the caller gives (``score_deals(weights=…)``).

        Every key must be a dimension key (an unknown one is an error listing the dimensions,
        with "did you mean"). A dict that names every dimension is used as it is and must sum
        to 1. A *partial* dict fixes the weights it names and rescales the others in proportion
        so the total stays 1 — what a scenario's ``set`` does: ``{"competitive_position": 0.3}``
        gives competitive position 30% and the baseline's other weights × 0.7.
        """

        expect_type(given, dict, "weights", "a dict of dimension → weight")
        given = {choose(k, self.dimensions, "scorecard dimension"): float(w) for k, w in given.items()}
        base = self.weights()
        if set(given) == set(base):
            total = sum(given.values())
            if abs(total - 1) > _SUM_TOL:
                raise ValueError(f"weights sum to {total:g}, not 1")
            return given
        return _fix_and_rescale(base, given, "weights")


def _fix_and_rescale(base: dict[str, float], fixed: dict[str, float], what: str) -> dict[str, float]:
    """``base`` with the weights in ``fixed`` set and the others rescaled in proportion to sum to 1:
    ``w_k = base_k × (1 − Σ fixed) / Σ_{j not fixed} base_j``."""
    fixed_total = sum(fixed.values())
    rest_total = sum(w for k, w in base.items() if k not in fixed)
    if fixed_total > 1 + _SUM_TOL or (rest_total == 0 and abs(fixed_total - 1) > _SUM_TOL):
        raise ValueError(f"{what}: fixed weights sum to {fixed_total:g}; cannot rescale the rest to 1")
    scale = (1 - fixed_total) / rest_total if rest_total else 0.0
    return {k: fixed.get(k, base[k] * scale) for k in base}


def load_scorecard(path: str | Path | None = None) -> Scorecard:
    """Load and validate ``params/scorecard.yaml`` (or ``path``)."""
    return load_params(Scorecard, "scorecard.yaml", path)


UNSCORED_REASONS = ("missing", "not_listed", "no_band")  # no value; a value the card does not list; outside every band


def unscored_reason(key: str, column: str) -> str:
    """Why a deal got no points on ``column``, as ``"<key>:<column>"`` (``missing:win_probability``):
    a reason key of :data:`UNSCORED_REASONS` and the column, which reports word in their language
    (:func:`funnelkit.presentation.present.unscored_words`)."""
    return f"{key}:{column}"


def dimension_points(values: pd.Series, dim: Dimension) -> tuple[pd.Series, pd.Series]:
    """Points (1–5, NaN when unknown) of one dimension, and why a value got none
    (:func:`unscored_reason`)."""
    why = pd.Series(pd.NA, index=values.index, dtype="object")
    if dim.points is not None:
        # each distinct value looked up once, by its code (no Python object per row)
        codes, uniques = pd.factorize(values)
        unlisted = np.nan if dim.other is None else dim.other
        lookup = np.array([dim.points.get(str(v), unlisted) for v in uniques] + [np.nan], dtype=float)
        points = pd.Series(lookup[codes], index=values.index)  # code −1 (missing) reads the last: NaN
        missing = codes < 0
        why[missing] = unscored_reason("missing", dim.column)
        why[~missing & np.isnan(points.to_numpy())] = unscored_reason("not_listed", dim.column)
        return points, why
    numbers = pd.to_numeric(values, errors="coerce")
    # Frames that did not come through validation (an analyst's own) are checked here.
    if dim.column in NON_NEGATIVE and (numbers < 0).any():
        raise ValueError(f"{dim.column} is negative in {_rows_text((numbers < 0).to_numpy(), values.reset_index(drop=True))}")
    if dim.percent_or_fraction:
        numbers = percent_as_fraction(numbers, dim.column)
        if (numbers > 1).any():
            raise ValueError(f"{dim.column} is above 100% in "
                             f"{_rows_text((numbers > 1).to_numpy(), values.reset_index(drop=True))}")
    x = numbers.to_numpy(dtype=float)
    conditions = [band.matches(x) for band in dim.bands]
    points = pd.Series(np.select(conditions, [b.points for b in dim.bands], default=np.nan), index=values.index)
    points[np.isnan(x)] = np.nan
    why[values.isna()] = unscored_reason("missing", dim.column)
    why[values.notna() & points.isna()] = unscored_reason("no_band", dim.column)
    return points, why


def points_table(deals: pd.DataFrame, scorecard: Scorecard) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Points (deals × dimensions, NaN when unknown) and, per cell, why there are none."""
    points, why = {}, {}
    for key, dim in scorecard.dimensions.items():
        column = deals[dim.column] if dim.column in deals else pd.Series(np.nan, index=deals.index)
        points[key], why[key] = dimension_points(column, dim)
    return pd.DataFrame(points, index=deals.index), pd.DataFrame(why, index=deals.index)


def tier_codes(scores: np.ndarray, high: float, medium: float) -> np.ndarray:
    """0 (high) where ``score ≥ high``, 1 (medium) where ``≥ medium``, else 2 (low), for arrays of any
    shape; scores are rounded to 9 decimals so 20 × Σ w·x lands exactly on a threshold."""
    scores = np.round(scores, 9)
    return np.where(scores >= high, 0, np.where(scores >= medium, 1, 2))


def assign_tiers(score: pd.Series, scorecard: Scorecard, mode: str | None = None) -> pd.Series:
    """Tier of each score (NaN score → NA). Fixed: thresholds; relative: top shares of the scored."""
    mode = mode or scorecard.mode
    if mode == "fixed":
        high, medium = scorecard.tiers["high"], scorecard.tiers["medium"]
    else:
        scored = score.dropna()
        share_high = scorecard.relative_tiers["high"]
        share_medium = share_high + scorecard.relative_tiers["medium"]
        high = scored.quantile(1 - share_high) if len(scored) else np.inf
        medium = scored.quantile(1 - share_medium) if len(scored) else np.inf
    tier = np.asarray(TIERS, dtype=object)[tier_codes(score.to_numpy(dtype=float), high, medium)]
    return pd.Series(tier, index=score.index).where(score.notna(), pd.NA)


@dataclass(frozen=True, eq=False)
class ScoredDeals(TableResult):
    """Result of :func:`score_deals`; reads like its ``table`` (one row per deal)."""

    table: pd.DataFrame
    weights: dict[str, float]  # dimension → weight used (sums to 1)
    scenario: str | None  # None: the baseline or explicit weights
    mode: str  # fixed or relative tiers


KEPT_COLUMNS = ("deal_id", "customer", "team", "rep", "pipeline", "stage", "status", "amount", "win_probability",
                "last_follow_up_at")


@reused
def score_deals(
    deals: pd.DataFrame,
    scorecard: Scorecard,
    scenario: str | None = None,
    weights: dict[str, float] | None = None,
    mode: str | None = None,
    drivers: int = 2,
) -> pd.DataFrame:
    """Score each deal: ``points_<dim>``, ``contribution_<dim>``, ``score``, ``tier``,
    ``unscored_reason`` and ``top_drivers`` (the ``drivers`` largest weighted contributions, as
    ``"amount:30; win_probability:25"``; both are keys, worded by the presentation layer).

    Weights come from ``weights`` if given (:meth:`Scorecard.weights_for`: a dict naming every
    dimension must sum to 1 within 1e-9, as in the YAML; a partial dict rescales the other
    weights), else from ``scenario`` (baseline when ``None``). Raw frames are checked: a negative
    amount, payment_days or probability, a probability above 100%, or a probability column mixing
    fractions and percents is a ``ValueError`` naming the column and rows.
    Dimensions with weight 0 are not needed: a deal missing only those is still scored.
    With ``missing: renormalise`` a deal is scored on the weighted dimensions it has, each weight
    divided by their sum (``score = 20 Σ_known w_k x_k / Σ_known w_k``), ``partial`` is true and
    ``coverage`` says how many it has (``"3/5"``); it is unscored only when it has none.
    The columns callers need next (:data:`KEPT_COLUMNS`: identity, stage, status, amount, win
    probability, last follow-up) are kept.
    """

    expect_type(deals, pd.DataFrame, "deals", "a table of deals (scope.open_deals or fk.open_deals(data, config))")
    expect_type(scenario, (str, type(None)), "scenario", "a scenario name or None")
    weights = scorecard.weights_for(weights) if weights is not None else scorecard.weights(scenario)
    keep = [c for c in KEPT_COLUMNS if c in deals]
    out = deals[keep].copy()
    points, why = points_table(deals, scorecard)
    used = [k for k, w in weights.items() if w > 0]
    has = points[used].notna()
    if scorecard.missing == "renormalise":
        # weights rescaled over the dimensions each deal has: w_k / Σ_{j known} w_j
        known_weight = has.mul(pd.Series(weights)[used]).sum(axis=1)
        scale = (1 / known_weight.where(known_weight > 0)).to_numpy()[:, None]
    else:
        scale = 1.0
    contributions = 20 * points * pd.Series(weights) * scale
    for key in scorecard.dimensions:
        out[f"points_{key}"] = points[key]
        out[f"contribution_{key}"] = contributions[key]
    reasons = _join_reasons(why[used]).replace("", pd.NA)  # "missing:a; missing:b" (keys, worded in present)
    if scorecard.missing == "renormalise":  # unscored only when no weighted dimension is known
        reasons = reasons.where(~has.any(axis=1))
    out["unscored_reason"] = reasons
    out["coverage"] = has.sum(axis=1).astype(str) + f"/{len(used)}"
    out["partial"] = has.any(axis=1) & ~has.all(axis=1)
    out["score"] = contributions[used].sum(axis=1).where(out["unscored_reason"].isna()).round(9)
    out["tier"] = assign_tiers(out["score"], scorecard, mode)
    out["top_drivers"] = _top_drivers(contributions[used], drivers).where(out["score"].notna())
    return ScoredDeals(out, weights=weights, scenario=scenario, mode=mode or scorecard.mode)


def _join_reasons(why: pd.DataFrame) -> pd.Series:
    """Per row, the non-missing reasons joined with ``"; "`` (empty string when none)."""
    joined = pd.Series("", index=why.index, dtype="object")
    for column in why:
        part = why[column].astype("object")
        has = part.notna().to_numpy()
        sep = np.where(joined.to_numpy() != "", "; ", "")
        joined = pd.Series(np.where(has, joined.to_numpy() + sep + part.fillna("").to_numpy(), joined.to_numpy()),
                           index=why.index, dtype="object")
    return joined


def _top_drivers(contributions: pd.DataFrame, k: int) -> pd.Series:
    """``"<dimension>:<contribution>; …"`` of the ``k`` largest weighted contributions, in whole
    points (keys, worded for readers by :func:`funnelkit.presentation.present.drivers_words`)."""
    if contributions.empty:
        return pd.Series(pd.NA, index=contributions.index, dtype="object")
    keys = np.asarray(list(contributions.columns), dtype=object)
    values = contributions.to_numpy(dtype=float)
    order = np.argsort(-np.nan_to_num(values, nan=-1), axis=1, kind="stable")[:, :k]
    rows = np.arange(len(values))[:, None]
    top = np.round(np.nan_to_num(values[rows, order])).astype(int)
    # a dimension the deal lacks (scored on part of the card) is no driver: 0, left out of the text,
    # never "Win probability 0"
    top = np.where(np.isnan(values[rows, order]), -1, top)
    # integer points make few distinct (dimensions, values) combinations: format each once
    parts = np.hstack([order, top + 1])  # contributions are 0–100, so 102 values per column suffice
    key = np.zeros(len(parts), dtype=np.int64)
    for column in parts.T:
        key = key * 128 + column
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    text = np.array(["; ".join(f"{keys[d]}:{v - 1}" for d, v in zip(parts[i, :k], parts[i, k:]) if v > 0)
                     for i in first], dtype=object)
    return pd.Series(text[inverse.ravel()], index=contributions.index, dtype="object")


def tier_summary(scored: pd.DataFrame) -> pd.DataFrame:
    """Deals and pipeline value per tier (unscored last): ``tier, deals, deal_share, amount,
    value_share``. ``deal_share = deals / all deals``; ``value_share = amount / Σ amount`` over the
    deals with a known amount (NaN when no deal has one). A tier without deals has amount NaN
    (no amount, rather than 0) and value share 0."""
    tier = scored["tier"].astype("object").fillna("unscored")
    table = (scored.assign(tier=tier).groupby("tier")
             .agg(deals=("tier", "size"), amount=("amount", lambda a: a.sum(min_count=1)))
             .reindex(list(TIERS) + ["unscored"], fill_value=0).reset_index())
    table["deal_share"] = table["deals"] / max(int(table["deals"].sum()), 1)
    table["amount"] = table["amount"].where(table["deals"] > 0)  # no deal: no amount, rather than 0
    total = table["amount"].sum(min_count=1)
    table["value_share"] = table["amount"].fillna(0) / total if pd.notna(total) and total > 0 else np.nan
    return table[["tier", "deals", "deal_share", "amount", "value_share"]]


def unscored_summary(deals: pd.DataFrame, scored: pd.DataFrame, scorecard: Scorecard) -> pd.DataFrame:
    """Unscored deals grouped by reason: ``reason, deals, fields`` (the columns that, filled in or
    given a listed value, would score them) and ``absent`` (those of them the data has no column
    for, or no value in any deal), most deals first. Empty when every deal is scored."""
    weights = getattr(scored, "weights", None) or scorecard.weights()
    unscored = scored["unscored_reason"].notna().to_numpy()
    _, why = points_table(deals[unscored], scorecard)
    used = [k for k, w in weights.items() if w > 0]
    columns = np.array([scorecard.dimensions[k].column for k in used], dtype=object)
    lacking = why[used].notna().to_numpy()
    fields = ["; ".join(columns[row]) for row in lacking] if len(lacking) else []
    table = pd.DataFrame({"reason": scored.loc[unscored, "unscored_reason"].astype("object").to_numpy(), "fields": fields})
    out = (table.groupby(["reason", "fields"], sort=False).size().rename("deals").reset_index()
           .sort_values("deals", ascending=False, kind="stable").reset_index(drop=True))
    # a loaded export has every canonical column, blank where the export has none: empty counts as absent
    empty = {c for c in deals.columns if deals[c].isna().all()} if len(deals) else set()
    out["absent"] = ["; ".join(c for c in f.split("; ") if c and (c not in deals.columns or c in empty))
                     for f in out["fields"]]
    return out[["reason", "deals", "fields", "absent"]]


__all__ = ["ScoredDeals", "Scorecard", "assign_tiers", "load_scorecard", "points_table", "score_deals", "tier_codes", "tier_summary",
           "unscored_summary"]
