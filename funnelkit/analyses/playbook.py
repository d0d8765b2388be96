"""Follow-up plan: who follows up each open scored deal, how often, what to do, and when it is due.

For an open deal with tier t and current stage s (playbook in ``params/playbook.yaml``):

* owner role, cadence and tier actions come from t; the key actions from s;
* ``next_due = last_follow_up_at + cadence`` (calendar arithmetic: one month after 31 January is
  the last day of February), or the as-of date when there has never been a follow-up;
* ``days_overdue = max(0, as_of date − next_due)`` in whole days; overdue when it is above 0. A deal
  without a last follow-up date is due on the plan date, its days overdue unknown (NaN), not overdue.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from funnelkit.config import StrictModel, load_params
from funnelkit.memo import reused

Bilingual = dict[Literal["en", "zh"], str]


class Cadence(StrictModel):
    days: int | None = Field(default=None, ge=1)
    months: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one(self) -> "Cadence":
        if (self.days is None) == (self.months is None):
            raise ValueError("give the cadence in days or in months")
        return self

    def offset(self) -> pd.DateOffset:
        return pd.DateOffset(days=self.days) if self.days else pd.DateOffset(months=self.months)


class TierPlay(StrictModel):
    owner: Bilingual
    cadence: Cadence
    actions: Bilingual


class Playbook(StrictModel):
    tiers: dict[Literal["high", "medium", "low"], TierPlay]
    stages: dict[str, Bilingual] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _all_tiers(self) -> "Playbook":
        missing = {"high", "medium", "low"} - set(self.tiers)
        if missing:
            raise ValueError(f"tiers: missing {', '.join(sorted(missing))}")
        return self


def load_playbook(path: str | Path | None = None) -> Playbook:
    """Load and validate ``params/playbook.yaml`` (or ``path``)."""
    return load_params(Playbook, "playbook.yaml", path)


@reused
def overdue_known(plan: pd.DataFrame, open_deals: pd.DataFrame, rep: str | None = None) -> bool:
    """Whether ``plan`` (:func:`follow_up_plan`, which holds scored deals only) can say how many
    follow-ups of ``rep`` (None: all) are overdue (:func:`overdue_unknown` says why not)."""
    return overdue_unknown(plan, open_deals, rep) is None


def overdue_unknown(plan: pd.DataFrame, open_deals: pd.DataFrame, rep: str | None = None) -> str | None:
    """Why ``plan`` cannot say how many follow-ups of ``rep`` (None: all) are overdue, so that
    "0 overdue" would be a count of nothing: ``"unscored"`` when there are open deals but none of
    them is scored, ``"undated"`` when none of the scored ones has a last follow-up date (each is
    then due on the plan date, never overdue); None when it can."""
    if rep is not None:
        open_deals, plan = open_deals[open_deals["rep"] == rep], plan[plan["rep"] == rep]
    if open_deals.empty:
        return None
    return "unscored" if plan.empty else "undated" if plan["last_follow_up_at"].isna().all() else None


def follow_up_plan(
    scored: pd.DataFrame, playbook: Playbook, as_of: str | pd.Timestamp, language: str = "en"
) -> pd.DataFrame:
    """The plan for every open, scored deal in ``scored`` (from :func:`score_deals`, with
    ``stage`` and ``last_follow_up_at`` columns), sorted by days overdue (most first), then amount
    (largest first, unknown last), then tier and score, so the deal to call first is on top.

    ``as_of`` is the date the plan is for (a date; a timestamp is truncated to its day).
    Columns: ``deal_id, customer, team, rep, stage, tier, score, amount, owner, cadence_days,
    cadence_months, tier_actions, stage_actions, last_follow_up_at, next_due, days_overdue,
    overdue`` (one of the two cadence columns is set; :func:`funnelkit.presentation.present.cadence` words it).
    """
    today = pd.Timestamp(as_of).normalize()
    open_scored = scored[(scored["status"] == "open") & scored["tier"].notna()].copy()
    last = pd.to_datetime(open_scored.get("last_follow_up_at"), errors="coerce")
    rows = []
    for (idx, deal), last_at in zip(open_scored.iterrows(), last if last is not None else [pd.NaT] * len(open_scored)):
        play = playbook.tiers[deal["tier"]]
        next_due = (last_at.normalize() + play.cadence.offset()) if pd.notna(last_at) else today
        stage = deal.get("stage")
        rows.append({
            "deal_id": deal["deal_id"], "customer": deal.get("customer"), "team": deal.get("team"),
            "rep": deal.get("rep"), "stage": stage, "tier": deal["tier"], "score": deal["score"],
            "amount": deal.get("amount"), "owner": play.owner[language],
            "cadence_days": play.cadence.days, "cadence_months": play.cadence.months,
            "tier_actions": play.actions[language],
            "stage_actions": playbook.stages.get(stage, {}).get(language, "") if stage else "",
            "last_follow_up_at": last_at, "next_due": next_due,
            # no last follow-up date: due now, and how overdue is not known (not 0 days)
            "days_overdue": max(0, (today - next_due).days) if pd.notna(last_at) else np.nan,
        })
    plan = pd.DataFrame(rows, columns=["deal_id", "customer", "team", "rep", "stage", "tier", "score", "amount", "owner",
                                       "cadence_days", "cadence_months", "tier_actions", "stage_actions", "last_follow_up_at", "next_due",
                                       "days_overdue"])
    plan = plan.astype({"last_follow_up_at": "datetime64[ns]", "next_due": "datetime64[ns]"})  # typed when empty too
    plan["overdue"] = plan["days_overdue"] > 0
    plan["tier_order"] = plan["tier"].map({"high": 0, "medium": 1, "low": 2})
    plan = plan.sort_values(["days_overdue", "amount", "tier_order", "score", "deal_id"],
                            ascending=[False, False, True, False, True], na_position="last", kind="stable")
    return plan.drop(columns="tier_order").reset_index(drop=True)
