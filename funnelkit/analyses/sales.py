"""Win rate, sales cycle, sales velocity and weighted pipeline (DESIGN.md §3).

* Win rate = won / (won + lost) of deals closed in the period; the value-weighted win rate is
  won amount / closed amount.
* Sales cycle = ``closed_at − created_at`` in days of deals won in the period (median and mean).
* Sales velocity (amount per day) = open deals × win rate × mean won amount / mean cycle days.
* Weighted pipeline = Σ amount × win_probability over open deals (a probability above 1 is read
  as a percentage). Pipeline sums are NaN, not 0, when no open deal has the amount (and
  probability): "not available", never ¥0.
"""
from __future__ import annotations

from typing import Unpack

import numpy as np
import pandas as pd

from funnelkit.config import FunnelConfig
from funnelkit.inputs.data import Dataset, percent_as_fraction
from funnelkit.memo import reused
from funnelkit.periods import Period, parse_period
from funnelkit.arguments import expect_type
from funnelkit.events.scope import Filters, Scope


def probability(values: pd.Series) -> pd.Series:
    """Win probabilities as fractions: a column whose values exceed 1 is read as percentages
    (a column mixing both is an error, see :func:`funnelkit.inputs.data.percent_as_fraction`)."""
    return percent_as_fraction(pd.to_numeric(values, errors="coerce"), "win_probability")


def losses_recorded(deals: pd.DataFrame) -> bool:
    """Whether the data records any lost deal. Without one a win rate is 100% by construction
    (a leads funnel where not converting means still open) and must be shown with that note."""
    return bool((deals["status"] == "lost").any())


def known_sum(values: pd.Series) -> float:
    """Sum of the known values: 0 over no rows, NaN (not 0) when there are rows but none is known."""
    return float(values.sum(min_count=1)) if len(values) else 0.0


def missing_pipeline_key(amounts: pd.Series) -> str:
    """Why a pipeline value is unknown, as a text key: ``no_amounts`` when no amount is known,
    else ``no_probabilities``."""
    return "no_amounts" if amounts.isna().all() else "no_probabilities"


def _metrics(deals: pd.DataFrame, period: Period) -> dict[str, float]:
    closed = deals[deals["status"].isin(["won", "lost"]) & period.contains(deals["closed_at"])]
    won = closed[closed["status"] == "won"]
    open_ = deals[deals["status"] == "open"]
    n_won, n_closed = len(won), len(closed)
    cycle = (won["closed_at"] - won["created_at"]) / pd.Timedelta(days=1)
    win_rate = n_won / n_closed if n_closed else np.nan
    mean_cycle = float(cycle.mean()) if n_won else np.nan
    mean_won_amount = float(won["amount"].mean()) if n_won else np.nan
    velocity = len(open_) * win_rate * mean_won_amount / mean_cycle if n_won and mean_cycle > 0 else np.nan
    return {
        "deals": len(deals), "closed": n_closed, "won": n_won, "lost": n_closed - n_won, "win_rate": win_rate,
        "value_win_rate": won["amount"].sum() / closed["amount"].sum() if closed["amount"].sum() > 0 else np.nan,
        "cycle_median": float(cycle.median()) if n_won else np.nan, "cycle_mean": mean_cycle,
        "mean_won_amount": mean_won_amount, "open_deals": len(open_),
        "open_pipeline": known_sum(open_["amount"]),
        "weighted_pipeline": known_sum(open_["amount"] * probability(open_["win_probability"])),
        "velocity_per_day": velocity,
    }


def sales_metrics(
    data: Dataset,
    config: FunnelConfig | str | Period,
    period: str | Period | None = None,
    *,
    by: str | None = None,
    **filters: Unpack[Filters],
) -> pd.DataFrame:
    """Win rate, cycle, velocity and pipeline (:func:`sales_metrics_of` on a scope built from the
    arguments). Called like the other analyses, ``(data, config, period, …)``; the older
    ``(data, period, …)`` form uses ``params/funnel.yaml``."""
    if period is None and isinstance(config, (str, Period)):
        from funnelkit.config import load_config

        config, period = load_config(), config
    expect_type(period, (str, Period), "period", "a month like '2024-06', a quarter like '2024-Q2' or a Period")
    scope = Scope.build(data, config, **filters)
    return sales_metrics_of(scope, period, by=by)


@reused
def sales_metrics_of(scope: Scope, period: str | Period, by: str | None = None) -> pd.DataFrame:
    """Win rate, cycle, velocity and pipeline for ``period``, one row per ``by`` group (or one row).

    Open deals and the pipeline are counted at the scope's as_of. Columns: ``[by], deals, closed,
    won, lost, win_rate, value_win_rate, cycle_median, cycle_mean, mean_won_amount, open_deals,
    open_pipeline, weighted_pipeline, velocity_per_day``.
    """
    period = parse_period(period)
    deals = scope.deals
    if by is None:
        return pd.DataFrame([_metrics(deals, period)])
    # only the columns _metrics reads: each group is a copy, and text columns are most of a deal
    read = [by] + [c for c in ("status", "created_at", "closed_at", "amount", "win_probability") if c != by]
    rows = [{by: key} | _metrics(group, period)
            for key, group in deals[read].groupby(by, sort=True, observed=True)]
    return pd.DataFrame(rows)


def pipeline_by_stage(deals: pd.DataFrame, stages: list[str]) -> pd.DataFrame:
    """Open deals, their amount and their probability-weighted amount per current stage, in
    ``stages`` order (stages without open deals left out): columns ``stage, open, open_pipeline``
    (Σ amount) and ``weighted_pipeline`` (Σ amount × win_probability); a sum is NaN, not 0, when no
    deal of the stage has the values (see :func:`known_sum`). ``deals`` holds ``stage, deal_id,
    amount, win_probability`` (open deals from :attr:`funnelkit.events.scope.Scope.open_deals` or scored ones)."""
    weighted = deals["amount"] * probability(deals["win_probability"])
    grouped = deals.assign(weighted=weighted).groupby("stage")
    out = pd.DataFrame({"open": grouped.size(), "open_pipeline": grouped["amount"].agg(known_sum),
                        "weighted_pipeline": grouped["weighted"].agg(known_sum)})
    return out.reindex([s for s in stages if s in out.index]).rename_axis("stage").reset_index()
