"""Opportunity screening (机会点筛选): which open deals are opportunity points, and why.

Each criterion is a list of conditions that must all hold, evaluated with three values
(Kleene logic): a criterion is *not met* when any condition is false, *unknown* when none is false
but a field is missing, and *met* otherwise. Unknown is never counted as not met. A deal is an
opportunity point when ``met ≥ min_criteria`` (default 3 of 4).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from funnelkit.config import load_params

MET, NOT_MET, UNKNOWN = "met", "not met", "unknown"
_WORDS = {
    "en": {MET: "meets", NOT_MET: "misses", UNKNOWN: "unknown", "yes": "Opportunity point", "no": "Not yet",
           "sep": "; ", "list": ", "},
    "zh": {MET: "满足", NOT_MET: "未满足", UNKNOWN: "未知", "yes": "机会点", "no": "暂不是", "sep": "；", "list": "、"},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
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


class Criterion(_Strict):
    label: dict[Literal["en", "zh"], str]
    enabled: bool = True
    all_of: list[Condition] = Field(min_length=1)


class ScreeningRules(_Strict):
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


def screen_opportunities(
    deals: pd.DataFrame, rules: ScreeningRules, as_of: str | pd.Timestamp, language: str = "en"
) -> pd.DataFrame:
    """Screen the open deals of ``deals``: per enabled criterion ``met`` / ``not met`` / ``unknown``,
    ``met_count``, ``unknown_count``, ``is_opportunity`` (met ≥ min_criteria) and a one-line
    ``reason`` in ``language``. Identifying columns (deal_id, customer, team, rep, stage, amount)
    are kept.
    """
    as_of = pd.Timestamp(as_of)
    open_ = deals[deals["status"] == "open"] if "status" in deals else deals
    keep = [c for c in ("deal_id", "customer", "team", "rep", "pipeline", "stage", "amount") if c in open_]
    out = open_[keep].copy()
    words = _WORDS[language]
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

    def reason(row: pd.Series) -> str:
        head = f"{words['yes'] if row['is_opportunity'] else words['no']} ({row['met_count']}/{len(enabled)})"
        parts = [head]
        for state in (MET, NOT_MET, UNKNOWN):
            names = [labels[k] for k in enabled if row[k] == state]
            if names:
                parts.append(f"{words[state]}: {words['list'].join(names)}")
        return words["sep"].join(parts)

    out["reason"] = out.apply(reason, axis=1) if len(out) else pd.Series(dtype=str)
    out.attrs.update(criteria=labels, min_criteria=rules.min_criteria)
    return out.reset_index(drop=True)


def failing_criteria(screened: pd.DataFrame) -> pd.DataFrame:
    """Per criterion, how many screened deals meet, miss or do not know it, most-missed first."""
    criteria = screened.attrs["criteria"]
    rows = [{"criterion": key, "label": label, **{s: int((screened[key] == s).sum()) for s in (MET, NOT_MET, UNKNOWN)}}
            for key, label in criteria.items()]
    return pd.DataFrame(rows).sort_values(NOT_MET, ascending=False, kind="stable").reset_index(drop=True)
