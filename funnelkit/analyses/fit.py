"""A scorecard learned from closed deals (won = 1, lost = 0), in the format of ``params/scorecard.yaml``.

Steps, each on the training deals only (so validation sees no test outcome):

1. **Bins.** A numeric field gets up to 5 bins with a monotone win-rate trend (rising or falling,
   whichever fits); a categorical field gets its levels, levels under 5% of the deals pooled into
   "other", then levels of similar win rate grouped (at most 5 groups). The binning is
   ``optbinning.OptimalBinning`` (constraint programming, monotone trend, minimum bin size 5%,
   adjacent bins different at the 5% level).
   Numeric cut points are written as the roundest number that splits the training values the same
   way, so the evidence in the YAML is exactly the bins' counts.
2. **Evidence.** Per bin with ``won_b``, ``lost_b`` deals (0.5 added to each, so an all-won bin has
   a finite value) out of ``W`` won and ``L`` lost::

       WoE_b = ln((won_b / W) / (lost_b / L))          IV = Σ_b (won_b / W − lost_b / L) · WoE_b

   A field with IV < 0.02 does not separate won from lost and is left out.
3. **Points** 1–5: ``1 + 4 · (WoE_b − min WoE) / (max WoE − min WoE)``, rounded, so each field's
   best bin gets 5 and its worst 1.
4. **Weights.** Logistic regression of won on the fields' points with β ≥ 0 and an L2 penalty
   ``l2/2 · Σβ²`` (a deal's missing points are the field's mean), ``w = β / Σβ`` rounded to 5%
   (largest remainders, so the weights still sum to 1). A field whose weight rounds to 0 is left out.
5. **Validation.** A time split when every closed deal has a close date (the latest quarter of the
   deals is held out), else stratified k-fold. Steps 1–4 are refitted on each training part and the
   held-out deals scored with :func:`funnelkit.analyses.scorecard.score_deals`: AUC with a bootstrap
   interval (percentile bootstrap), win rate per tier with Wilson intervals, and the current scorecard's AUC on the deals
   both cards score.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd

from funnelkit.analyses.scorecard import TIERS, Scorecard, score_deals, tier_codes
from funnelkit.analyses.sensitivity import _auc_fast, _fit_logistic, _weights_from_beta, auc, wilson_interval

MIN_IV = 0.02
MIN_SHARE = 0.05  # smallest bin, and levels rarer than this are pooled into "other"
MAX_BINS = 5
MAX_PVALUE = 0.05
MAX_FIELD_AUC = 0.98  # above this a single field is taken to record the outcome
WEIGHT_STEP = 0.05
# Never candidates: identifiers, free text and what is only known once a deal is closed.
NOT_FIELDS = {"deal_id", "customer", "contact", "need", "status", "closed_at", "lost_reason", "stage",
              "won", "outcome"}
# Who owns a deal is not a property of the deal: scoring on it would rank deals by rep and mix the
# scorecard up with rep comparison. Tried only when named in ``fields``.
OWNER_FIELDS = {"team", "rep"}
LEFT_OUT = ("too_few", "one_class", "one_value", "identifier", "one_level", "scattered", "no_split", "outcome", "low_iv",
            "zero_weight", "owner")


class FitError(ValueError):
    """The closed deals cannot give a scorecard (too few, one class only, no field separates them).

    ``reason`` says why as a key — ``too_few`` (``values``: won, lost, min), ``no_field``
    (``fields``: every field tried, each with why it was left out), ``zero_weights``, or
    ``holdout`` (the earlier deals of the time split cannot give one: ``values`` n, the deals
    held out, and ``inner`` the training part's own FitError) — so a report can say why there is
    no card and what data would give one (:func:`unfit_text`); empty for a wrong argument (a field
    not in the data), which is an error to show as such."""

    def __init__(self, message: str, reason: str = "", values: dict[str, Any] | None = None,
                 fields: tuple[FieldFit, ...] = (), inner: FitError | None = None):
        super().__init__(message)
        self.reason, self.values, self.fields, self.inner = reason, dict(values or {}), tuple(fields), inner


@dataclass(frozen=True)
class FieldFit:
    """One candidate field: its bins and evidence, or why it was left out.

    ``bins`` columns: ``bin`` (0 = lowest values / first group), ``label``, ``lower`` (numeric:
    the bin's inclusive lower bound, −inf for the first), ``levels`` (categorical: the levels in the
    bin; the pooled rare levels are under ``other``), ``deals``, ``won``, ``win_rate``, ``woe``, ``points``.
    """

    column: str
    kind: Literal["numeric", "categorical"]
    iv: float
    deals: int  # training deals with a value
    missing: int  # training deals without one
    bins: pd.DataFrame
    other_points: int | None = None  # categorical: points of pooled rare and unseen levels
    left_out: str | None = None  # why the field is not in the card: a key of LEFT_OUT (text.yaml fit_left_<key>)
    left_values: dict[str, Any] = field(default_factory=dict)  # the numbers that sentence needs


@dataclass(frozen=True)
class CardFit:
    """A fitted card: the Scorecard-format dict, every candidate's evidence, raw and rounded weights."""

    card: dict[str, Any]
    fields: list[FieldFit]
    beta: dict[str, float]
    raw_weights: dict[str, float]
    weights: dict[str, float]
    deals: int
    won: int


@dataclass(frozen=True)
class Validation:
    """Held-out evidence for a fitted card (see the module docstring)."""

    method: Literal["time", "kfold"]  # time split on close dates, or stratified k-fold
    split_date: pd.Timestamp | None  # time split: the held-out deals closed on or after this
    folds: int  # k (1 for the time split)
    held_out: int
    scored: int
    auc: float
    auc_low: float
    auc_high: float
    tiers: pd.DataFrame  # tier, deals, won, win_rate, win_rate_low, win_rate_high
    current_auc: float  # current card's AUC on the held-out deals both cards score (NaN: none)
    current_fitted_auc: float  # the fitted card's AUC on those same deals
    current_scored: int
    current_note: str | None  # why the current card was not compared: none_given, cannot_score, one_class
    scores: pd.DataFrame = field(repr=False)  # deal_id, won, score, tier, current_score
    failed_folds: int = 0  # folds whose training part gave no card (their deals are unscored)


# --- fields ---------------------------------------------------------------------------------------

def candidate_fields(deals: pd.DataFrame, fields: list[str] | None = None) -> list[str]:
    """Columns to try: ``fields`` as given (each must exist), or every column that is not an
    identifier, free text, a date or an outcome (:data:`NOT_FIELDS`)."""
    if fields:
        missing = [f for f in fields if f not in deals.columns]
        if missing:
            raise FitError(f"no column {', '.join(map(repr, missing))} in the deals; found {', '.join(map(str, deals.columns))}")
        return list(fields)
    return [c for c in deals.columns if c not in NOT_FIELDS and not pd.api.types.is_datetime64_any_dtype(deals[c])]


def field_kind(values: pd.Series) -> Literal["numeric", "categorical"]:
    """Numeric when the column is numeric (not yes/no) or ≥ 95% of its text values read as numbers."""
    if pd.api.types.is_bool_dtype(values):
        return "categorical"
    if pd.api.types.is_numeric_dtype(values):
        return "numeric"
    present = values.dropna()
    numbers = pd.to_numeric(present.astype("object"), errors="coerce")
    return "numeric" if len(present) and numbers.notna().mean() >= 0.95 and present.nunique() > 2 else "categorical"


def _level_text(values: pd.Series) -> pd.Series:
    """Levels as :func:`funnelkit.analyses.scorecard.dimension_points` matches them: ``str(value)``."""
    text = values.astype("object")
    return text.where(text.isna(), text.map(str, na_action="ignore"))


def _evidence(won: np.ndarray, lost: np.ndarray) -> tuple[np.ndarray, float]:
    """WoE per bin (won-positive, 0.5 added to every count) and the field's IV."""
    g = (won + 0.5) / (won.sum() + 0.5 * len(won))
    b = (lost + 0.5) / (lost.sum() + 0.5 * len(lost))
    woe = np.log(g / b)
    return woe, float(np.sum((g - b) * woe))


def woe_points(woe: np.ndarray) -> np.ndarray:
    """Points 1–5 linear in WoE: the field's lowest-WoE bin 1, its highest 5 (all 3 when equal)."""
    span = woe.max() - woe.min() if len(woe) else 0.0
    if span <= 1e-12:
        return np.full(len(woe), 3, dtype=int)
    return np.rint(1 + 4 * (woe - woe.min()) / span).astype(int)


def _roundest_between(low: float, high: float) -> float:
    """The number with fewest significant digits in ``(low, high]``: a cut that splits values ≤ low
    from values ≥ high exactly as ``high`` does, but reads as people write bands."""
    for digits in range(-12, 13):
        scale = 10.0 ** digits
        candidate = math.floor(high * scale) / scale
        if candidate > low:
            return float(round(candidate, max(digits, 0)))
    return float(high)


def _optbinning(name: str, x: np.ndarray, y: np.ndarray, kind: str) -> Any:
    from optbinning import OptimalBinning  # heavy import: only when fitting

    # adjacent bins must differ at the 5% level (optbinning's z-test), so noise does not get bins
    options = dict(name=name, solver="cp", max_n_bins=MAX_BINS, min_bin_size=MIN_SHARE, max_pvalue=MAX_PVALUE)
    if kind == "numeric":
        binning = OptimalBinning(dtype="numerical", monotonic_trend="auto_asc_desc", **options)
    else:
        binning = OptimalBinning(dtype="categorical", **options)
    binning.fit(x, y)
    return binning


def bin_field(values: pd.Series, won: np.ndarray, column: str | None = None) -> FieldFit:
    """Bins, WoE, IV and points of one field on training deals (``won``: 1 won, 0 lost)."""
    column = column or str(values.name)
    won = np.asarray(won, dtype=int)
    kind = field_kind(values)
    empty = pd.DataFrame(columns=["bin", "label", "lower", "levels", "deals", "won", "win_rate", "woe", "points"])
    if kind == "numeric":
        x = pd.to_numeric(values.astype("object") if not pd.api.types.is_numeric_dtype(values) else values,
                          errors="coerce").to_numpy(dtype=float)
        has = np.isfinite(x)
    else:
        text = _level_text(values)
        has = text.notna().to_numpy() & (text.fillna("").str.strip() != "").to_numpy()
    n, missing = int(has.sum()), int((~has).sum())

    def out(why: str, bins: pd.DataFrame = empty, iv: float = 0.0, other: int | None = None, **values: Any) -> FieldFit:
        return FieldFit(column, kind, iv, n, missing, bins, other, why, {"iv": iv} | values)

    if n < 20 or len(np.unique(won[has])) < 2:
        return out("too_few", n=n) if n < 20 else out("one_class")
    y = won[has]

    # a field that alone sorts won from lost (near) perfectly was most likely filled in at or after
    # the close (a CRM's probability set to 100% / 0%, a "closed reason"): it cannot score open deals
    def records_outcome(values: np.ndarray) -> float | None:
        if kind == "numeric":
            alone = _auc_fast(values, y.astype(bool))
            alone = max(alone, 1 - alone)
        else:  # on the levels after pooling, so many rare levels cannot look perfect by chance
            alone = _auc_fast(pd.Series(y).groupby(values).transform("mean").to_numpy(), y.astype(bool))
        return alone if alone >= MAX_FIELD_AUC else None

    if kind == "numeric" and (alone := records_outcome(x[has])) is not None:
        return out("outcome", auc=alone)
    if kind == "numeric":
        xs = x[has]
        if len(np.unique(xs)) < 2:
            return out("one_value")
        splits = np.asarray(_optbinning(column, xs, y, kind).splits, dtype=float)
        ordered = np.sort(np.unique(xs))
        cuts = []
        for s in splits:  # roundest cut with the same split of the training values
            below = ordered[ordered < s]
            above = ordered[ordered >= s]
            if len(below) and len(above):
                cuts.append(_roundest_between(below[-1], above[0]))
        cuts = sorted(set(cuts))
        index = np.searchsorted(np.asarray(cuts), xs, side="right")
        lower = [-np.inf] + cuts
        labels = [_range_label(lo, hi) for lo, hi in zip(lower, cuts + [np.inf])]
        levels: list[Any] = [None] * len(lower)
    else:
        levels_text = text[has].to_numpy(dtype=object)
        counts = pd.Series(levels_text).value_counts()
        if len(counts) > max(20, 0.5 * n):
            return out("identifier", levels=len(counts), n=n)
        common = counts[counts >= MIN_SHARE * n].index
        pooled = np.where(np.isin(levels_text, common), levels_text, _OTHER)
        if len(np.unique(pooled)) < 2:
            return out("one_level") if len(common) else out("scattered", levels=len(counts), min_share=MIN_SHARE)
        if (alone := records_outcome(pooled)) is not None:
            return out("outcome", auc=alone)
        splits = _optbinning(column, pooled, y, kind).splits
        group_of = {str(level): i for i, group in enumerate(splits) for level in group}
        index = np.array([group_of.get(v, -1) for v in pooled])
        if (index < 0).any():  # optbinning left a level out (too rare for its own bin): pool it with "other"
            index[index < 0] = group_of.get(_OTHER, len(splits))
        levels = [sorted(str(v) for v in group) for group in splits]
        if index.max() >= len(levels):
            levels.append([_OTHER])
        lower = [np.nan] * len(levels)
        labels = [", ".join("other" if v == _OTHER else v for v in group) for group in levels]
    deals = np.bincount(index, minlength=len(lower))
    won_b = np.bincount(index, weights=y, minlength=len(lower)).astype(int)
    keep = deals > 0
    woe, iv = _evidence(won_b[keep], deals[keep] - won_b[keep])
    bins = pd.DataFrame({"bin": np.arange(int(keep.sum())), "label": np.asarray(labels, dtype=object)[keep],
                         "lower": np.asarray(lower, dtype=float)[keep],
                         "levels": pd.Series(levels, dtype=object)[keep].to_list(),
                         "deals": deals[keep], "won": won_b[keep], "win_rate": won_b[keep] / deals[keep],
                         "woe": woe, "points": woe_points(woe)})
    bins["pooled"] = [_OTHER in group if isinstance(group, list) else False for group in bins["levels"]]
    other = None
    if kind == "categorical":
        in_other = np.flatnonzero(bins["pooled"].to_numpy())
        # unseen levels score like the pooled rare ones; with no pooled level, like the worst bin
        other = int(bins["points"].iloc[in_other[0]]) if len(in_other) else int(bins["points"].min())
        bins["levels"] = [[v for v in group if v != _OTHER] for group in bins["levels"]]
    if len(bins) < 2:
        return out("no_split", bins=bins, iv=iv, other=other)
    if iv < MIN_IV:
        return out("low_iv", bins=bins, iv=iv, other=other, min_iv=MIN_IV)
    return FieldFit(column, kind, iv, n, missing, bins, other)


_OTHER = "\x00other"  # pooled rare levels; cannot collide with a level read from a file


def _num(x: float) -> str:
    return f"{x:,.10g}"


def _range_label(low: float, high: float) -> str:
    if np.isinf(low):
        return f"< {_num(high)}"
    if np.isinf(high):
        return f"≥ {_num(low)}"
    return f"{_num(low)} to < {_num(high)}"


# --- weights and the card -------------------------------------------------------------------------

def round_weights(weights: dict[str, float], step: float = WEIGHT_STEP) -> dict[str, float]:
    """Weights rounded to multiples of ``step`` that still sum to 1 (largest remainders)."""
    units = round(1 / step)
    raw = {k: w * units for k, w in weights.items()}
    floor = {k: int(math.floor(v)) for k, v in raw.items()}
    left = units - sum(floor.values())
    for k in sorted(raw, key=lambda k: (-(raw[k] - floor[k]), k))[:left]:
        floor[k] += 1
    return {k: round(v * step, 10) for k, v in floor.items()}


def field_points(values: pd.Series, fit: FieldFit) -> pd.Series:
    """Points of ``values`` under one fitted field (NaN when missing), as the card will score them."""
    return points_of(values, _dimension(fit, 1.0))


def points_of(values: pd.Series, dimension: dict[str, Any]) -> pd.Series:
    from funnelkit.analyses.scorecard import Dimension, dimension_points

    return dimension_points(values, Dimension.model_validate(dimension))[0]


def _slug(column: str, taken: set[str]) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_") or "field"
    if not key[0].isalpha():
        key = f"f_{key}"
    base, i = key, 2
    while key in taken:
        key, i = f"{base}_{i}", i + 1
    taken.add(key)
    return key


def _dimension(fit: FieldFit, weight: float, label: dict[str, str] | None = None) -> dict[str, Any]:
    label = {"en": fit.column, "zh": fit.column} | {k: v for k, v in (label or {}).items() if k in ("en", "zh")}
    dim: dict[str, Any] = {"label": label, "column": fit.column, "weight": weight}
    if fit.kind == "numeric":
        rows = fit.bins.sort_values("lower", ascending=False)
        dim["bands"] = [{"points": int(r.points), "at_least": float(r.lower)} if np.isfinite(r.lower)
                        else {"points": int(r.points)} for r in rows.itertuples()]
    else:
        dim["points"] = {level: int(r.points) for r in fit.bins.itertuples() for level in r.levels}
        dim["other"] = fit.other_points
    return dim


def fit_card(
    deals: pd.DataFrame, won: np.ndarray, fields: list[str] | None = None, l2: float = 1.0,
    tiers: Literal["fixed", "quantile"] = "fixed", missing: Literal["unscored", "renormalise"] = "unscored",
    labels: dict[str, dict[str, str]] | None = None,
) -> CardFit:
    """Fit bins, points and weights on ``deals`` with outcome ``won`` (1/0); see the module docstring.

    ``labels`` gives a column's ``{"en": …, "zh": …}`` label (default: the column name)."""
    won = np.asarray(won, dtype=int)
    if len(won) != len(deals):
        raise ValueError("won must have one value per deal")
    n_won, n_lost = int(won.sum()), int(len(won) - won.sum())
    if n_won < 5 or n_lost < 5:
        raise FitError(f"{n_won} won and {n_lost} lost deals: at least 5 of each are needed to fit a scorecard",
                       "too_few", {"won": n_won, "lost": n_lost, "min": 5})
    fits = [FieldFit(c, "categorical", 0.0, int(deals[c].notna().sum()), int(deals[c].isna().sum()), pd.DataFrame(),
                     left_out="owner")
            if c in OWNER_FIELDS and not fields else bin_field(deals[c].reset_index(drop=True), won, c)
            for c in candidate_fields(deals, fields)]
    used = [f for f in fits if f.left_out is None]
    if not used:
        raise FitError("no field separates won from lost deals (every candidate was left out); "
                       + "; ".join(f"{f.column}: {f.left_out}" for f in fits) + " (see fit_left_* in params/text.yaml)",
                       "no_field", fields=tuple(fits))
    x = np.column_stack([field_points(deals[f.column].reset_index(drop=True), f).to_numpy(dtype=float) for f in used])
    x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    beta = _fit_logistic(x, won.astype(float), l2=l2)[1:]
    if beta.sum() <= 1e-9:
        raise FitError("the logistic regression gives every field a weight of 0", "zero_weights", fields=tuple(fits))
    raw = dict(zip([f.column for f in used], _weights_from_beta(beta)))
    rounded = round_weights(raw)
    final, left = [], []
    for f in fits:
        if f.left_out is None and rounded[f.column] == 0:
            f = FieldFit(f.column, f.kind, f.iv, f.deals, f.missing, f.bins, f.other_points, "zero_weight",
                         {"iv": f.iv, "weight": raw[f.column]})
        (final if f.left_out is None else left).append(f)
    taken: set[str] = set()
    dims = {_slug(f.column, taken): _dimension(f, rounded[f.column], (labels or {}).get(f.column))
            for f in sorted(final, key=lambda f: (-rounded[f.column], f.column))}
    card = {"mode": "fixed" if tiers == "fixed" else "relative", "tiers": {"high": 80, "medium": 60},
            "relative_tiers": {"high": 0.2, "medium": 0.3}, "missing": missing, "dimensions": dims}
    Scorecard.model_validate(card)  # the card must load like params/scorecard.yaml
    return CardFit(card, final + left, dict(zip([f.column for f in used], map(float, beta))), raw,
                   {f.column: rounded[f.column] for f in final}, len(won), n_won)


# --- validation -----------------------------------------------------------------------------------

def closed_outcomes(deals: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The won and lost deals and their outcome (won 1, lost 0)."""
    status = deals["status"].astype("string").str.strip().str.lower()
    closed = deals[status.isin(["won", "lost"]).fillna(False).to_numpy()].reset_index(drop=True)
    return closed, (closed["status"].astype("string").str.strip().str.lower() == "won").to_numpy(dtype=int)


def splits(deals: pd.DataFrame, won: np.ndarray, folds: int = 5, seed: int = 0,
           test_share: float = 0.25) -> tuple[Literal["time", "kfold"], list[tuple[np.ndarray, np.ndarray]]]:
    """Train/test index pairs: the latest ``test_share`` of deals by ``closed_at`` when every deal
    has one, else stratified ``folds``-fold (shuffled with ``seed``)."""
    dates = deals["closed_at"] if "closed_at" in deals else None
    if dates is not None and pd.api.types.is_datetime64_any_dtype(dates) and dates.notna().all():
        order = np.argsort(dates.to_numpy(), kind="stable")
        cut = int(round(len(order) * (1 - test_share)))
        train, test = np.sort(order[:cut]), np.sort(order[cut:])
        return "time", [(train, test)]
    from sklearn.model_selection import StratifiedKFold

    k = int(min(folds, np.bincount(won, minlength=2).min()))
    if k < 2:
        counts = np.bincount(won, minlength=2)
        raise FitError("too few won or lost deals to hold any out", "too_few",
                       {"won": int(counts[1]), "lost": int(counts[0]), "min": 2})
    folds_ = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(won)), won)
    return "kfold", [(tr, te) for tr, te in folds_]


def _bootstrap_auc(scores: np.ndarray, won: np.ndarray, n_boot: int, seed: int, confidence: float) -> tuple[float, float]:
    if len(won) == 0 or won.all() or not won.any():
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    boot = np.array([_auc_fast(scores[i], won[i]) for i in rng.integers(0, len(won), size=(n_boot, len(won)))])
    alpha = (1 - confidence) / 2
    return float(np.nanquantile(boot, alpha)), float(np.nanquantile(boot, 1 - alpha))


def validate_fit(
    deals: pd.DataFrame, won: np.ndarray, current: Scorecard | None = None, fields: list[str] | None = None,
    tiers: Literal["fixed", "quantile"] = "fixed", missing: Literal["unscored", "renormalise"] = "unscored",
    folds: int = 5, seed: int = 0, n_boot: int = 1000, confidence: float = 0.95, l2: float = 1.0,
) -> Validation:
    """Refit on each training part, score its held-out deals; pool them (see the module docstring).

    Quantile tiers take their thresholds from the training deals' scores (top 20% high, next 30%
    medium), so the held-out win rates show what the tiers would have done on new deals.
    """
    won = np.asarray(won, dtype=int)
    method, parts = splits(deals, won, folds, seed)
    split_date = deals["closed_at"].iloc[parts[0][1]].min() if method == "time" else None
    rows, failed = [], 0
    for train, test in parts:
        try:
            fit = fit_card(deals.iloc[train], won[train], fields, l2=l2, tiers=tiers, missing=missing)
        except FitError as exc:
            if len(parts) == 1:
                raise FitError(f"the training part of the time split (before the latest {len(test):,} deals): {exc}",
                               "holdout", {"n": len(test)}, exc.fields, exc) from None
            failed += 1  # this fold's deals stay unscored and are counted as such
            rows.append(pd.DataFrame({"row": test, "won": won[test], "score": np.nan, "tier": None,
                                      "current_score": np.nan}))
            continue
        card = Scorecard.model_validate(fit.card)
        test_scores = score_deals(deals.iloc[test], card)["score"].to_numpy(dtype=float)
        if tiers == "fixed":
            high, medium = card.tiers["high"], card.tiers["medium"]
        else:
            train_scores = score_deals(deals.iloc[train], card)["score"].dropna()
            high = float(train_scores.quantile(1 - card.relative_tiers["high"])) if len(train_scores) else np.inf
            medium = float(train_scores.quantile(1 - card.relative_tiers["high"] - card.relative_tiers["medium"])) \
                if len(train_scores) else np.inf
        tier = np.where(np.isnan(test_scores), None, np.asarray(TIERS, dtype=object)[tier_codes(test_scores, high, medium)])
        now = score_deals(deals.iloc[test], current)["score"].to_numpy(dtype=float) if current else np.full(len(test), np.nan)
        rows.append(pd.DataFrame({"row": test, "won": won[test], "score": test_scores, "tier": tier, "current_score": now}))
    scores = pd.concat(rows, ignore_index=True).sort_values("row", kind="stable").reset_index(drop=True)
    if "deal_id" in deals:
        scores.insert(0, "deal_id", deals["deal_id"].to_numpy()[scores["row"].to_numpy()])
    ok = scores["score"].notna().to_numpy()
    s, y = scores["score"].to_numpy(dtype=float)[ok], scores["won"].to_numpy(dtype=bool)[ok]
    low, high_ = _bootstrap_auc(s, y, n_boot, seed, confidence)
    tier_rows = []
    for t in TIERS:
        here = (scores["tier"] == t).to_numpy()
        k, n = int(scores["won"].to_numpy()[here].sum()), int(here.sum())
        lo, hi = wilson_interval(k, n, confidence)
        tier_rows.append({"tier": t, "deals": n, "won": k, "win_rate": k / n if n else np.nan,
                          "win_rate_low": lo, "win_rate_high": hi})
    both = ok & scores["current_score"].notna().to_numpy()
    yb = scores["won"].to_numpy(dtype=bool)[both]
    note = None
    if current is None:
        note = "none_given"
    elif not both.any():
        note = "cannot_score"
    elif yb.all() or not yb.any():
        note = "one_class"
    comparable = note is None
    return Validation(
        method=method, split_date=split_date, folds=len(parts), held_out=len(scores), scored=int(ok.sum()), auc=auc(s, y), auc_low=low, auc_high=high_,
        tiers=pd.DataFrame(tier_rows),
        current_auc=auc(scores["current_score"].to_numpy(dtype=float)[both], yb) if comparable else np.nan,
        current_fitted_auc=auc(scores["score"].to_numpy(dtype=float)[both], yb) if comparable else np.nan,
        current_scored=int(both.sum()), current_note=note, scores=scores, failed_folds=failed,
    )


# --- the YAML -------------------------------------------------------------------------------------

def _q(value: Any) -> str:
    """A YAML scalar that reads back as exactly ``value``: strings as JSON (a valid YAML
    double-quoted scalar, every control character escaped), numbers as their shortest repr."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(float(value))


def _comment(text: str) -> str:
    """Free text for a ``#`` comment: on one line whatever the data holds."""
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029\x85]", " ", text)


def left_out_text(f: FieldFit, text: Callable[..., str]) -> str:
    """Why ``f`` is not in the card, in ``text``'s language (``fit_left_<reason>`` in params/text.yaml)."""
    return text(f"fit_left_{f.left_out}", **f.left_values)


def unfit_text(error: FitError, text: Callable[..., str]) -> str:
    """Why there is no fitted scorecard and what data would give one, in ``text``'s language
    (``fit_none`` / ``fit_none_holdout`` with the clause ``fit_why_<reason>`` and ``fit_remedy``)."""
    inner = error.inner if error.reason == "holdout" and error.inner is not None else error
    why = text(f"fit_why_{inner.reason}", **inner.values)
    if error.reason == "holdout":
        return text("fit_none_holdout", why=why, remedy=text("fit_remedy"), **error.values)
    return text("fit_none", why=why, remedy=text("fit_remedy"))


def method_text(v: Validation, text: Callable[..., str]) -> str:
    """How the held-out deals were chosen, in ``text``'s language."""
    if v.method == "time":
        return text("fit_method_time", date=f"{v.split_date:%Y-%m-%d}", n=v.held_out)
    return text("fit_method_kfold", k=v.folds)


def current_note_text(v: Validation, text: Callable[..., str]) -> str:
    """Why the current card was not compared (empty when it was)."""
    return text(f"fit_current_{v.current_note}") if v.current_note else ""


def render_yaml(fit: CardFit, validation: Validation | None, text: Callable[..., str], source: str = "") -> str:
    """The card as ``params/scorecard.yaml`` text, its comments carrying the evidence; ``text``
    (:func:`funnelkit.presentation.present.load_text`) words the reasons in the comments."""
    card = fit.card
    lines = [
        "# Opportunity scorecard fitted from closed deals by `funnelkit fit-scorecard`.",
        f"# Source: {_comment(source)}" if source else None,
        f"# Fitted on {fit.deals:,} closed deals: {fit.won:,} won, {fit.deals - fit.won:,} lost "
        f"(win rate {fit.won / fit.deals:.1%}).",
        "# Points per bin: 1 + 4 x (WoE - lowest WoE) / (highest - lowest WoE), rounded; WoE = ln(share of won /",
        "# share of lost) in the bin. Weights: logistic regression (beta >= 0, L2 penalty) on the points,",
        f"# w = beta / sum(beta), rounded to {WEIGHT_STEP:.0%}. Fields with information value (IV) below {MIN_IV} are left out.",
    ]
    if validation is not None:
        v = validation
        lines += [f"# Held-out validation ({_comment(method_text(v, text))}): {v.scored:,} of {v.held_out:,} held-out deals scored;",
                  f"#   AUC {v.auc:.3f} (95% CI {v.auc_low:.3f} to {v.auc_high:.3f})."]
        for r in v.tiers.itertuples():
            rate = (f"win rate {r.win_rate:.1%} ({r.win_rate_low:.1%} to {r.win_rate_high:.1%})" if r.deals
                    else "no held-out deals")
            lines.append(f"#   tier {r.tier}: {r.deals:,} deals, {r.won:,} won, {rate}")
        if v.current_note is None:
            lines.append(f"#   current scorecard on the {v.current_scored:,} held-out deals both score: AUC "
                         f"{v.current_auc:.3f} vs {v.current_fitted_auc:.3f} for this card.")
        else:
            lines.append(f"#   current scorecard: not compared: {_comment(current_note_text(v, text))}.")
    lines += [
        f"mode: {card['mode']}" + ("                 # tiers by score quantile (--tiers quantile)" if card["mode"] == "relative"
                                   else "                    # fixed thresholds"),
        "tiers:", f"  high: {_q(card['tiers']['high'])}", f"  medium: {_q(card['tiers']['medium'])}",
        "relative_tiers:", f"  high: {_q(card['relative_tiers']['high'])}", f"  medium: {_q(card['relative_tiers']['medium'])}",
        f"missing: {card['missing']}             # unscored: a deal missing a field is not scored; "
        "renormalise: scored on the fields it has",
        "", "dimensions:",
    ]
    by_column = {f.column: f for f in fit.fields}
    for key, dim in card["dimensions"].items():
        f = by_column[dim["column"]]
        lines += [f"  # {_comment(f.column)}: IV {f.iv:.3f}, raw weight {fit.raw_weights[f.column]:.1%}; "
                  f"{f.deals:,} deals with a value, {f.missing:,} without",
                  f"  {key}:",
                  f"    label: {{en: {_q(dim['label']['en'])}, zh: {_q(dim['label']['zh'])}}}",
                  f"    column: {_q(dim['column'])}",
                  f"    weight: {_q(dim['weight'])}"]
        evidence = {int(r.bin): r for r in f.bins.itertuples()}
        note = lambda r: (f"  # {r.deals:,} deals, {r.won:,} won, win rate {r.win_rate:.1%}, "  # noqa: E731
                          f"WoE {r.woe:+.2f}")
        if "bands" in dim:
            lines.append("    bands:")
            for r in f.bins.sort_values("lower", ascending=False).itertuples():
                bound = f", at_least: {_q(r.lower)}" if np.isfinite(r.lower) else ""
                lines.append(f"      - {{points: {int(r.points)}{bound}}}" + note(evidence[int(r.bin)])
                             + f" [{_comment(r.label)}]")
        else:
            lines.append("    points:")
            for r in f.bins.sort_values("points", ascending=False).itertuples():
                if len(r.levels) + r.pooled > 1:  # a group: its evidence once, above its levels
                    lines.append(f"      #{note(r)[3:]} together [{_comment(r.label)}]")
                    lines += [f"      {_q(level)}: {int(r.points)}" for level in r.levels]
                else:
                    lines += [f"      {_q(level)}: {int(r.points)}" + note(r) for level in r.levels]
            pooled = [r for r in f.bins.itertuples() if r.pooled]
            why = note(pooled[0]) + " (rare levels pooled)" if pooled else "  # levels not seen in the fit: like the worst bin"
            lines.append(f"    other: {int(dim['other'])}" + why)
    left = [f for f in fit.fields if f.left_out is not None]
    if left:
        lines += ["", "# Left out:"]
        lines += [f"#   {_comment(f.column)}: {_comment(left_out_text(f, text))}" for f in left]
    return "\n".join(line for line in lines if line is not None) + "\n"


def card_comparison(current: Scorecard, fitted: CardFit) -> pd.DataFrame:
    """Per field (column) of either card: ``field``, ``current`` weight, ``fitted`` weight (0 when
    the card does not use it), ``iv`` (NaN for fields the fit did not try), ``left_out`` (reason key)."""
    now: dict[str, float] = {}
    for d in current.dimensions.values():
        now[d.column] = now.get(d.column, 0.0) + d.weight
    tried = {f.column: f for f in fitted.fields}
    fields = list(dict.fromkeys([*fitted.weights, *[c for c, w in now.items() if w > 0]]))
    return pd.DataFrame({
        "field": fields,
        "current": [now.get(c, 0.0) for c in fields],
        "fitted": [fitted.weights.get(c, 0.0) for c in fields],
        "iv": [tried[c].iv if c in tried and len(tried[c].bins) else np.nan for c in fields],
        "left_out": [tried[c].left_out if c in tried else None for c in fields],
    })


def tier_changes(deals: pd.DataFrame, current: Scorecard, fitted: Scorecard) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score ``deals`` under both cards: the transition counts (``tier_current`` × ``tier_fitted``,
    unscored included) and the deals whose tier changes (``deal_id``, tiers, scores, the change and
    its ``direction``: up, down, or one_card when only one card scores the deal), largest change first."""
    before, after = score_deals(deals, current), score_deals(deals, fitted)
    both = pd.DataFrame({
        "deal_id": before["deal_id"].to_numpy() if "deal_id" in before else np.arange(len(before)),
        "tier_current": before["tier"].astype("object").fillna("unscored").to_numpy(),
        "tier_fitted": after["tier"].astype("object").fillna("unscored").to_numpy(),
        "score_current": before["score"].to_numpy(dtype=float), "score_fitted": after["score"].to_numpy(dtype=float),
    })
    for column in ("customer", "rep"):
        if column in before:
            both.insert(1, column, before[column].to_numpy())
    both["change"] = both["score_fitted"] - both["score_current"]
    rank = {t: i for i, t in enumerate(TIERS)}  # unscored has no rank: a move to or from it is "one_card"
    before_rank, after_rank = both["tier_current"].map(rank), both["tier_fitted"].map(rank)
    both["direction"] = np.select([after_rank < before_rank, after_rank > before_rank,
                                   before_rank.isna() != after_rank.isna()], ["up", "down", "one_card"], "same")
    order = [*TIERS, "unscored"]
    transitions = (pd.crosstab(pd.Categorical(both["tier_current"], order), pd.Categorical(both["tier_fitted"], order),
                               dropna=False).rename_axis(index="tier_current", columns="tier_fitted"))
    movers = both[both["tier_current"] != both["tier_fitted"]]
    movers = movers.reindex(movers["change"].abs().sort_values(ascending=False, kind="stable").index)
    return transitions, movers.reset_index(drop=True)


def field_labels(columns: list[str], current: Scorecard, texts: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Label of each column for the card: the current card's label of a dimension on that column,
    else the column header from params/text.yaml (``col_<column>``) in each language of ``texts``."""
    labels = {c: {language: text.column(c) for language, text in texts.items()} for c in columns}
    return labels | {d.column: dict(d.label) for d in current.dimensions.values() if d.column in labels}


__all__ = ["CardFit", "FieldFit", "FitError", "Validation", "bin_field", "candidate_fields", "closed_outcomes",
           "current_note_text", "field_kind", "field_labels", "fit_card", "left_out_text", "method_text", "render_yaml",
           "round_weights", "splits", "unfit_text", "validate_fit", "woe_points", "card_comparison", "tier_changes"]
