"""Key figures per team for the executive index of a report run.

For one period P and the as-of date, per team (and for all teams together):

* ``won_value`` = Σ amount of deals won with ``closed_at`` in P; ``won``, ``closed`` (won + lost
  in P) and ``win_rate = won / closed`` (NaN, "no closed deals yet", when ``closed`` is 0);
* ``open_pipeline`` = Σ amount of deals open at as_of; ``crm_forecast`` = Σ amount × CRM
  probability over them (the weighted pipeline);
* ``forecast`` with ``forecast_low`` / ``forecast_high``: the history-based forecast of
  :mod:`funnelkit.analyses.forecast` (stage win rates from the team's closed deals, ``history_closed`` of
  them, ``history_win_rate`` = won ÷ closed among them, 1 when the team never recorded a loss;
  ``forecast_differs``: the CRM forecast is outside its interval);
* ``overdue``: open scored deals whose next follow-up (:func:`funnelkit.analyses.playbook.follow_up_plan`,
  planned for the last day before as_of) is past due; NaN when there are open deals but none is
  scored (the plan is empty, so the count is unknown) or none of the scored ones has a last
  follow-up date, ``overdue_unknown`` saying which (``unscored`` / ``undated``);
* ``leak_stage`` / ``leak_rate``: the biggest leak of P's cohort funnel
  (:func:`funnelkit.analyses.funnel.biggest_leak`: highest ``lost_at / reached``); None when nothing leaked.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from funnelkit.config import FunnelConfig
from funnelkit.inputs.data import Dataset
from funnelkit.analyses.forecast import ForecastSettings, forecast_of, load_forecast_settings
from funnelkit.analyses.funnel import biggest_leak, cohort_funnel_of
from funnelkit.periods import Period, parse_period
from funnelkit.analyses.playbook import Playbook, follow_up_plan, load_playbook
from funnelkit.analyses.sales import known_sum
from funnelkit.events.scope import Scope
from funnelkit.analyses.scorecard import Scorecard, load_scorecard, score_deals

COLUMNS = ["team", "won_value", "won", "closed", "win_rate", "open_deals", "open_pipeline", "crm_forecast", "forecast",
           "forecast_low", "forecast_high", "forecast_differs", "history_closed", "history_win_rate", "overdue", "overdue_unknown", "leak_stage", "leak_rate"]


# the figures that need no stage list: over every pipeline even when the others are for one
DEAL_FIGURES = ["won_value", "won", "closed", "win_rate"]  # the open deals' figures go with the forecast's


def deal_figures(scope: Scope, period: Period, card: Scorecard, playbook: Playbook) -> dict[str, Any]:
    """The key figures of one scope that need no stage list: won value and win rate of the deals
    closed in ``period`` (:data:`DEAL_FIGURES`), the open deals, open pipeline and overdue follow-ups
    at as_of."""
    deals = scope.deals
    closed = deals[deals["status"].isin(["won", "lost"]) & period.contains(deals["closed_at"])]
    won = closed[closed["status"] == "won"]
    open_deals = scope.open_deals
    plan_date = (scope.as_of - pd.Timedelta(microseconds=1)).normalize()
    plan = follow_up_plan(score_deals(open_deals, card), playbook, plan_date,
                          scope.language) if len(open_deals) else pd.DataFrame({"overdue": []})
    # open deals but none scored (no plan), or no deal with a last follow-up date (every one is
    # due on the plan date): how many are overdue is unknown, not 0
    unknown = ("unscored" if len(open_deals) and plan.empty else
               "undated" if len(plan) and plan["last_follow_up_at"].isna().all() else None)
    return {"won_value": known_sum(won["amount"]), "won": len(won), "closed": len(closed),
            "win_rate": len(won) / len(closed) if len(closed) else np.nan,
            "open_deals": len(open_deals), "open_pipeline": known_sum(open_deals["amount"]),
            "overdue": np.nan if unknown else int(plan["overdue"].sum()), "overdue_unknown": unknown}


def scope_figures(scope: Scope, period: Period, card: Scorecard, playbook: Playbook,
                  settings: ForecastSettings) -> dict[str, Any]:
    """The key figures (module docstring) of one scope for ``period``."""
    forecast = forecast_of(scope, settings)
    leak = biggest_leak(cohort_funnel_of(scope, period))
    return deal_figures(scope, period, card, playbook) | {
        "crm_forecast": forecast.crm, "forecast": forecast.history, "forecast_low": forecast.history_low,
        "forecast_high": forecast.history_high, "forecast_differs": forecast.differs, "history_closed": forecast.closed,
        "history_win_rate": forecast.closed_win_rate,
        "leak_stage": None if leak is None else leak["stage"], "leak_rate": np.nan if leak is None else leak["loss_rate"],
    }


def comparable_pipeline(config: FunnelConfig) -> str | None:
    """``None`` (all pipelines together) when every pipeline has the same stages, else the default
    pipeline: funnels of different stage lists cannot be added up."""
    return None if len({tuple(config.stage_keys(p)) for p in config.pipelines}) == 1 else config.default_pipeline


def team_figures(data: Dataset, config: FunnelConfig, period: str | Period, teams: list[str], *,
                 as_of: str | pd.Timestamp | None = None, language: str | None = None, pipeline: str | None = None,
                 card: Scorecard | None = None, playbook: Playbook | None = None,
                 settings: ForecastSettings | None = None, every_pipeline: bool = False) -> pd.DataFrame:
    """One row of key figures per team in ``teams`` (in that order), then one for all teams
    (``team`` None), for ``period`` at ``as_of`` and ``pipeline`` (None: all); columns
    :data:`COLUMNS`. The teams share one scope's per-event tables, so the step runs once.
    ``every_pipeline``: the figures that need no stage list (:data:`DEAL_FIGURES`) cover every
    pipeline even when ``pipeline`` names one (pipelines of different stages: the forecast and the
    leak need one, but a team's won value is not only its won value in that pipeline)."""
    period = parse_period(period)
    card, playbook = card or load_scorecard(), playbook or load_playbook()
    settings = settings or load_forecast_settings()
    whole = Scope.build(data, config, as_of=as_of, language=language, pipeline=pipeline)
    every = Scope.build(data, config, as_of=as_of, language=language) if every_pipeline and pipeline else None

    def figures(team: str | None) -> dict[str, Any]:
        row = scope_figures(whole.narrow(team=team) if team is not None else whole, period, card, playbook, settings)
        if every is not None:
            wide = deal_figures(every.narrow(team=team) if team is not None else every, period, card, playbook)
            row |= {k: wide[k] for k in DEAL_FIGURES}
        return row

    rows = [{"team": team} | figures(team) for team in teams]
    rows.append({"team": None} | figures(None))
    return pd.DataFrame(rows, columns=COLUMNS)


def headline_period(periods: list[str]) -> str:
    """The period the index leads with: the one ending last, the longest of those (a quarter
    before its last month)."""
    parsed = [parse_period(p) for p in periods]
    return max(parsed, key=lambda p: (p.end, p.end - p.start)).label


__all__ = ["COLUMNS", "DEAL_FIGURES", "comparable_pipeline", "deal_figures", "headline_period", "scope_figures",
           "team_figures"]
