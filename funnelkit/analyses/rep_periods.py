"""A rep's (or a team's) figures for the report period itself beside the trailing window.

A rep report titled 2024-Q2 shows both the Q2 figures and those of the ``window_months`` ending
with Q2 (which steady small samples). For each window (``period``, ``trailing``) and each of
``rep`` and ``team``:

* win rate = won ÷ (won + lost) of the deals closed in the window, with its Wilson 95% interval;
* next-step conversion of the cohort that reached the first stage in the window,
  ``reached[s+1] ÷ reached[s]``, with the maturing flag of :func:`funnelkit.analyses.funnel.maturing_steps`
  and the few-decided flag of :func:`funnelkit.analyses.funnel.few_decided_steps`.

With ``rep=None`` only the team's rows are returned (the team overview).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from funnelkit.analyses.funnel import cohort_funnel_of
from funnelkit.periods import Period, parse_period, trailing_window
from funnelkit.results import ResultDisplay
from funnelkit.analyses.sales import sales_metrics_of
from funnelkit.events.scope import Scope
from funnelkit.analyses.sensitivity import wilson_interval


@dataclass(frozen=True, eq=False)
class RepPeriodFigures(ResultDisplay):
    """Result of :func:`rep_period_figures`."""

    win: pd.DataFrame  # window, who, closed, won, win_rate, win_rate_low, win_rate_high
    steps: pd.DataFrame  # window, who, stage, next_stage, reached, advanced, open_at, rate, maturing, few_decided
    period: Period  # the report period
    trailing: Period  # the trailing window ending with it (== period when window_months is 0)
    rep: str | None


def rep_period_figures(scope: Scope, rep: str | None, period: str | Period, window_months: int | None = 12
                       ) -> RepPeriodFigures:
    """Win rate and cohort next-step rates of ``rep`` and of the team (the scope without its rep
    filter) for ``period`` and for the ``window_months`` ending with it (definitions in the
    module docstring). Rows are ordered period before trailing, rep before team."""
    period = parse_period(period)
    trailing = trailing_window(period, window_months)
    team = scope.widen("rep")
    views = ([("rep", team.narrow(rep=rep))] if rep is not None else []) + [("team", team)]
    win_rows, step_rows = [], []
    for window_key, window in (("period", period), ("trailing", trailing)):
        for who, view in views:
            metrics = sales_metrics_of(view, window).iloc[0]
            won, closed = int(metrics["won"]), int(metrics["closed"])
            low, high = wilson_interval(won, closed)
            win_rows.append({"window": window_key, "who": who, "closed": closed, "won": won,
                             "win_rate": won / closed if closed else float("nan"),
                             "win_rate_low": low, "win_rate_high": high})
            table = cohort_funnel_of(view, window).table
            for row, advanced in zip(table.iloc[:-1].itertuples(), table["reached"].iloc[1:]):
                step_rows.append({"window": window_key, "who": who, "stage": row.stage, "next_stage": row.next_stage,
                                  "reached": int(row.reached), "advanced": int(advanced), "open_at": int(row.open_at),
                                  "rate": row.next_step_rate, "maturing": bool(row.maturing),
                                  "few_decided": bool(row.few_decided),
                                  # every deal that reached the stage skipped it: the step's 100% is no rate
                                  "skipped": bool(row.entered == 0 and row.reached > 0)})
    return RepPeriodFigures(pd.DataFrame(win_rows), pd.DataFrame(step_rows), period, trailing, rep)


__all__ = ["RepPeriodFigures", "rep_period_figures"]
