"""Open value by stage and tier, and the follow-up list's total (the opportunities report).

* ``value_by_stage_tier``: Σ amount of open scored deals per current stage and tier.
* ``follow_up_total``: the follow-up list's count of deals and Σ amount (of the deals with one).
"""
from __future__ import annotations

import pandas as pd

from funnelkit.analyses.sales import known_sum

TIER_ORDER = ["high", "medium", "low", "unscored"]


def value_by_stage_tier(scored: pd.DataFrame, stages: list[str]) -> pd.DataFrame:
    """Open amount per current stage (rows, in ``stages`` order, stages without deals left out) and
    tier (columns ``high, medium, low, unscored``): ``Σ amount`` of the deals in the cell, 0 for a
    cell without deals, NaN for a cell whose deals have no amount. ``scored`` holds ``stage, tier,
    amount`` (from :func:`funnelkit.analyses.scorecard.score_deals`; a missing tier is "unscored")."""
    deals = scored.assign(tier=scored["tier"].astype("object").fillna("unscored"))
    table = deals.pivot_table(index="stage", columns="tier", values="amount", aggfunc=known_sum, dropna=False)
    table = table.reindex(index=[s for s in stages if s in set(deals["stage"])], columns=TIER_ORDER)
    counts = deals.groupby(["stage", "tier"]).size().unstack("tier").reindex_like(table)
    return table.where(counts.notna(), 0.0).rename_axis(index="stage", columns="tier")


def follow_up_total(plan: pd.DataFrame) -> dict[str, float]:
    """The follow-up list's total row: ``deals`` (rows), ``amount`` (Σ amount, NaN when no row has
    one) and ``overdue`` (rows with days overdue above 0)."""
    return {"deals": len(plan), "amount": known_sum(plan["amount"]) if len(plan) else 0.0,
            "overdue": int((plan["days_overdue"] > 0).sum())}


__all__ = ["TIER_ORDER", "follow_up_total", "value_by_stage_tier"]
