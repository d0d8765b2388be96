"""Opportunity screening (机会点筛选): which open deals are opportunity points, and why.

Each criterion is a list of conditions that must all hold, evaluated with three values
(Kleene logic): a criterion is *not met* when any condition is false, *unknown* when none is false
but a field is missing, and *met* otherwise. Unknown is never counted as not met. A deal is an
opportunity point when ``met ≥ min_criteria`` (default 3 of 4).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from funnelkit.config import StrictModel, load_params
from funnelkit.results import TableResult

MET, NOT_MET, UNKNOWN = "met", "not met", "unknown"
STATES = (MET, NOT_MET, UNKNOWN)


class Condition(StrictModel):
    column: str
    equals: Any = None
    one_of: list[Any] | None = None
    within_days: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_test(self) -> "Condition":
        given = [self.equals is not None, self.one_of is not None, self.within_days is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of equals, one_of, within_days")
        return self

    def evaluate(self, deals: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
        """True / False per deal, NA where the field is missing."""
        if self.column not in deals:
            return pd.Series(pd.NA, index=deals.index, dtype="boolean")
        values = deals[self.column]
        if self.within_days is not None:
            dates = pd.to_datetime(values, errors="coerce")
            delta = (dates - as_of.normalize()).dt.days.abs()
            result = pd.Series(delta <= self.within_days, dtype="boolean")
            return result.mask(dates.isna())
        accepted = self.one_of if self.one_of is not None else [self.equals]
        result = pd.Series(values.astype("object").isin(accepted), index=deals.index, dtype="boolean")
        return result.mask(values.isna())


class Criterion(StrictModel):
    label: dict[Literal["en", "zh"], str]
    enabled: bool = True
    all_of: list[Condition] = Field(min_length=1)


class ScreeningRules(StrictModel):
    """``params/screening.yaml``: the criteria and how many must be met."""

    min_criteria: int = Field(default=3, ge=1)
    criteria: dict[str, Criterion] = Field(min_length=1)

    @model_validator(mode="after")
    def _reachable(self) -> "ScreeningRules":
        enabled = sum(c.enabled for c in self.criteria.values())
        if self.min_criteria > enabled:
            raise ValueError(f"min_criteria is {self.min_criteria} but only {enabled} criteria are enabled")
        return self


def load_screening(path: str | Path | None = None) -> ScreeningRules:
    """Load and validate ``params/screening.yaml`` (or ``path``)."""
    return load_params(ScreeningRules, "screening.yaml", path)


@dataclass(frozen=True, eq=False)
class Screening(TableResult):
    """Result of :func:`screen_opportunities`; reads like its ``table`` (one row per open deal)."""

    table: pd.DataFrame
    criteria: dict[str, str]  # enabled criterion key → its label in the language asked for
    min_criteria: int  # criteria a deal must meet to be an opportunity point


def screen_opportunities(
    deals: pd.DataFrame, rules: ScreeningRules, as_of: str | pd.Timestamp, language: str = "en"
) -> Screening:
    """Screen the open deals of ``deals``: per enabled criterion ``met`` / ``not met`` / ``unknown``,
    ``met_count``, ``unknown_count`` and ``is_opportunity`` (met ≥ min_criteria); the one-line
    reason is worded by :func:`funnelkit.presentation.present.screen_reasons`. Identifying columns (deal_id,
    customer, team, rep, stage, amount) are kept; criterion labels are in ``language``.
    """
    as_of = pd.Timestamp(as_of)
    open_ = deals[deals["status"] == "open"] if "status" in deals else deals
    keep = [c for c in ("deal_id", "customer", "team", "rep", "pipeline", "stage", "amount") if c in open_]
    out = open_[keep].copy()
    enabled = {k: c for k, c in rules.criteria.items() if c.enabled}
    for key, criterion in enabled.items():
        results = [cond.evaluate(open_, as_of) for cond in criterion.all_of]
        any_false = np.logical_or.reduce([r.eq(False).fillna(False).to_numpy() for r in results])
        any_missing = np.logical_or.reduce([r.isna().to_numpy() for r in results])
        out[key] = np.select([any_false, any_missing], [NOT_MET, UNKNOWN], MET)
    states = out[list(enabled)]
    out["met_count"] = (states == MET).sum(axis=1)
    out["unknown_count"] = (states == UNKNOWN).sum(axis=1)
    out["is_opportunity"] = out["met_count"] >= rules.min_criteria
    labels = {k: c.label[language] for k, c in enabled.items()}
    return Screening(out.reset_index(drop=True), criteria=labels, min_criteria=rules.min_criteria)


def failing_criteria(screened: Screening) -> pd.DataFrame:
    """Per criterion, how many screened deals meet, miss or do not know it, most-missed first."""
    criteria = screened.criteria
    rows = [{"criterion": key, "label": label, **{s: int((screened[key] == s).sum()) for s in STATES}}
            for key, label in criteria.items()]
    return pd.DataFrame(rows).sort_values(NOT_MET, ascending=False, kind="stable").reset_index(drop=True)


def qualified_by(screened: Screening, by: str, order: list[str] | None = None) -> pd.DataFrame:
    """Open deals and opportunity points per value of column ``by`` (stage, rep, …): columns
    ``<by>, open, qualified``, in ``order`` when given (values not in it are left out), else sorted.
    ``qualified`` is missing (not 0) for a group whose deals have every criterion unknown: nothing
    was checked, so no deal is known to be, or not to be, an opportunity point."""
    checked = ((screened[list(screened.criteria)] != UNKNOWN).any(axis=1) if screened.criteria
               else pd.Series(True, index=screened.index))  # no criteria columns: is_opportunity as given
    counts = screened.assign(checked=checked).groupby(by).agg(
        open=("deal_id", "size"), qualified=("is_opportunity", "sum"), checked=("checked", "sum"))
    if order is not None:
        counts = counts.reindex([v for v in order if v in counts.index])
    counts["qualified"] = counts["qualified"].astype("Int64").mask(counts["checked"] == 0)
    return counts.drop(columns="checked").astype({"open": int}).reset_index()


def screen_by_tier(scored: pd.DataFrame, screened: Screening) -> pd.DataFrame:
    """Deals per scorecard tier (high, medium, low, unscored) that pass and fail the screen:
    columns ``tier, passes, fails``, and ``unknown`` when some deal neither passes nor fails: it
    meets too few criteria now but would pass were its unknown criteria met (a CRM without the
    screening fields leaves every deal so; counting it as failing would be a verdict from no check).
    Deals are matched on ``deal_id``."""
    criteria = list(getattr(screened, "criteria", []) or [])
    could = (screened[criteria].isin([MET, UNKNOWN]).sum(axis=1) >= screened.min_criteria) if criteria \
        else pd.Series(False, index=screened.index)
    outcome = np.where(screened["is_opportunity"], "passes", np.where(could, "unknown", "fails"))
    both = pd.merge(scored[["deal_id", "tier"]], screened[["deal_id"]].assign(outcome=outcome), on="deal_id")
    tier = both["tier"].astype("object").fillna("unscored")
    columns = ["passes", "fails"] + (["unknown"] if (outcome == "unknown").any() else [])
    table = pd.crosstab(tier, both["outcome"]).reindex(index=["high", "medium", "low", "unscored"],
                                                       columns=columns, fill_value=0)
    return table.fillna(0).astype(int).rename_axis("tier").rename_axis(None, axis=1).reset_index()
