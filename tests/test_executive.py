"""Key figures of the executive index (funnelkit.analyses.executive) against hand-worked values."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnelkit.analyses import executive
from funnelkit.analyses.forecast import ForecastSettings
from funnelkit.presentation.present import load_text
from funnelkit.presentation.present_executive import index_figures
from tests.conftest import make_data

STAGES = ["leads", "prospects", "opportunities", "negotiation", "customers"]


def deal(deal_id, team, status, amount, closed_at=None, p=0.5, last=None):
    return {"deal_id": deal_id, "team": team, "status": status, "amount": amount, "closed_at": closed_at,
            "win_probability": p, "strategic_value": "benchmark", "follow_up_cost": "low", "payment_days": 20,
            "last_follow_up_at": last, "lost_reason": "price" if status == "lost" else None}


@pytest.fixture(scope="module")
def figures(config):
    deals = [deal("A1", "A", "won", 1000.0, "2024-05-10"),      # won in Q2
             deal("A2", "A", "lost", 500.0, "2024-05-20"),      # lost in Q2 at prospects
             deal("A3", "A", "won", 300.0, "2024-02-01"),       # won before Q2: history, not Q2's figures
             deal("A4", "A", "open", 2000.0, p=0.9, last="2024-06-01"),  # open at prospects, overdue
             deal("B1", "B", "open", 400.0, p=0.2, last="2024-06-29")]   # B: nothing closed yet
    events = [("A1", "leads", "2024-04-01"), ("A1", "prospects", "2024-04-10"), ("A1", "customers", "2024-05-10"),
              ("A2", "leads", "2024-04-02"), ("A2", "prospects", "2024-04-12"),
              ("A3", "leads", "2024-01-02"), ("A3", "customers", "2024-02-01"),
              ("A4", "leads", "2024-04-03"), ("A4", "prospects", "2024-04-20"),
              ("B1", "leads", "2024-06-01")]
    data = make_data(deals, events, config)
    return executive.team_figures(data, config, "2024-Q2", ["A", "B"], as_of="2024-06-30",
                                  settings=ForecastSettings()).set_index("team", drop=False)


def test_team_figures_by_hand(figures):
    a = figures.loc["A"]
    assert (a["won_value"], a["won"], a["closed"], a["win_rate"]) == (1000.0, 1, 2, 0.5)
    assert (a["open_deals"], a["open_pipeline"], a["crm_forecast"]) == (1, 2000.0, 1800.0)
    # A4 is in prospects; closed deals that reached prospects: A1 (won), A2 (lost), A3 (skipped to won) → 2 of 3
    assert a["forecast"] == pytest.approx(2000 * 2 / 3)
    assert a["forecast_low"] < a["forecast"] < a["forecast_high"]
    assert a["overdue"] == 1  # last follow-up 1 June; every cadence is due before 30 June
    # Q2 cohort A1, A2, A4: lost at prospects 1 of 3 reached → the biggest leak
    assert a["leak_stage"] == "prospects" and a["leak_rate"] == pytest.approx(1 / 3)


def test_team_without_closed_deals_has_no_rate_not_zero(figures):
    b = figures.loc["B"]
    assert b["closed"] == 0 and np.isnan(b["win_rate"]) and np.isnan(b["forecast"])
    assert pd.isna(b["leak_stage"]) and b["won_value"] == 0
    text = load_text("en")
    shown = index_figures(figures.reset_index(drop=True), text, {}, "CNY", "2024-Q2", "2024-06-30", 0.95)
    card_b = dict(shown["cards"][1]["figures"])
    assert card_b[text("fig_win_rate")] == text("fc_no_closed")  # "no closed deals yet", not 0%
    assert card_b[text("fig_forecast")] == text("fc_not_available")
    assert card_b[text("fig_leak")] == text("fig_no_leak")


def test_all_teams_row_adds_up(figures):
    total = figures.iloc[-1]
    assert pd.isna(total["team"])
    teams = figures.iloc[:-1]
    for column in ("won_value", "won", "closed", "open_deals", "open_pipeline", "crm_forecast", "overdue"):
        assert total[column] == pytest.approx(teams[column].sum()), column


def test_index_figures_words_and_caveat(figures):
    text = load_text("zh")
    shown = index_figures(figures.reset_index(drop=True), text, {"prospects": "意向客户"}, "CNY", "2024-Q2",
                          "2024-06-30", 0.95)
    assert [c["team"] for c in shown["cards"]] == ["A", "B"]
    assert shown["rows"][-1]["team"] == text("all_teams") and shown["rows"][-1]["total"]
    card_a = dict(shown["cards"][0]["figures"])
    assert card_a[text("fig_win_rate")] == "50.0%（2 个中 1 个）"
    assert card_a[text("fig_leak")] == "意向客户（在此流失 33.3%）"
    assert card_a[text("fig_won_value")] == "¥1,000"
    # A: CRM 1,800 against history 1,333 (interval from 3 closed deals, wide) → within: no caveat for A
    assert ("A" in shown["caveat"]) == bool(figures.loc["A", "forecast_differs"])


def test_headline_period():
    assert executive.headline_period(["2024-06", "2024-Q2", "2024-05"]) == "2024-Q2"
    assert executive.headline_period(["2024-Q1", "2024-05"]) == "2024-05"


def test_pipelines_with_different_stages_are_not_added_up(config):
    assert executive.comparable_pipeline(config) is None  # the sample's pipelines share their stages
    other = config.model_copy(deep=True)
    first = next(iter(other.pipelines))
    other.pipelines[first] = other.pipelines[first].model_copy(update={"stages": other.pipelines[first].stages[1:]})
    assert executive.comparable_pipeline(other) == other.default_pipeline
