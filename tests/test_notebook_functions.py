"""What the notebooks show is computed by package functions: each checked against hand-worked values."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import make_data

import funnelkit as fk
from funnelkit.analyses import reps, sales, screening, sensitivity, timing
from funnelkit.presentation import present
from funnelkit.periods import parse_period, trailing_window
from funnelkit.analyses.reps import RepSummary
from funnelkit.analyses.screening import Screening


@pytest.fixture(scope="module")
def two_reps(config):
    """Team T, March 2024. R1: A leads → prospects (open), B leads (lost).
    R2: C leads → prospects → opportunities (open), D leads → prospects (lost)."""
    return make_data(
        [{"deal_id": "A", "status": "open", "rep": "R1"},
         {"deal_id": "B", "status": "lost", "rep": "R1", "closed_at": "2024-03-10", "lost_reason": "price"},
         {"deal_id": "C", "status": "open", "rep": "R2"},
         {"deal_id": "D", "status": "lost", "rep": "R2", "closed_at": "2024-03-12", "lost_reason": "price"}],
        [("A", "leads", "2024-03-01"), ("A", "prospects", "2024-03-05"), ("B", "leads", "2024-03-02"),
         ("C", "leads", "2024-03-03"), ("C", "prospects", "2024-03-06"), ("C", "opportunities", "2024-03-09"),
         ("D", "leads", "2024-03-04"), ("D", "prospects", "2024-03-07")],
        config, as_of="2024-04-01")


def test_rep_vs_team_next_step_rates_by_hand(two_reps, config):
    scope = fk.Scope.build(two_reps, config, team="T", rep="R1")
    table = reps.rep_vs_team(scope, "R1", parse_period("2024-03"))
    assert table["stage"].tolist() == ["leads", "prospects", "opportunities", "negotiation"]
    # R1: 2 leads, 1 prospect, 0 further → 1/2, 0/1, –, –; team: 4, 3, 1, 0 → 3/4, 1/3, 0/1, –
    np.testing.assert_allclose(table["rep_rate"], [0.5, 0.0, np.nan, np.nan])
    np.testing.assert_allclose(table["team_rate"], [0.75, 1 / 3, 0.0, np.nan])


def stays_frame(rows):
    return pd.DataFrame(rows, columns=["rep", "stage", "days", "censored", "entered_at"])


def test_rep_vs_team_time_medians_by_hand():
    stays = stays_frame([("R1", "prospects", d, False, pd.Timestamp("2024-01-10")) for d in (2, 4, 6)]
                        + [("R2", "prospects", d, False, pd.Timestamp("2024-02-10")) for d in (10, 12)])
    table = reps.rep_vs_team_time(stays, "R1", ["leads", "prospects"])
    # R1: 2, 4, 6 → median 4; team: 2, 4, 6, 10, 12 → median 6; no leads stays → NaN
    assert table["stage"].tolist() == ["leads", "prospects"]
    np.testing.assert_allclose(table["rep_value"], [np.nan, 4.0])
    np.testing.assert_allclose(table["team_value"], [np.nan, 6.0])


def summary_of(flag="within"):
    return RepSummary(pd.DataFrame({"rep": ["R1"], "flag": [flag]}), team_rate=0.5, window="w", min_volume=30,
                      stages=["a", "b", "c"])


def rates(rep, team):
    return pd.DataFrame({"stage": ["a", "b"], "rep_rate": rep, "team_rate": team})


def times(rep, team):
    return pd.DataFrame({"stage": ["a", "b"], "rep_value": rep, "team_value": team})


def test_coaching_thresholds_at_their_boundaries():
    even = times([10.0, 10.0], [10.0, 10.0])
    # exactly 5 points below the team at b: coached; 4.9 points: not
    assert reps.coaching_points(summary_of(), "R1", rates([0.5, 0.45], [0.5, 0.5]), even, 0) == [
        ("weak", {"stage": "b", "gap": pytest.approx(5.0)})]
    assert reps.coaching_points(summary_of(), "R1", rates([0.5, 0.451], [0.5, 0.5]), even, 0) == [("ok", {})]
    # median exactly 1.25 × the team's: slow; 1.24 ×: not
    assert reps.coaching_points(summary_of(), "R1", rates([0.5, 0.5], [0.5, 0.5]), times([12.5, 5.0], [10.0, 10.0]),
                                0) == [("slow", {"stage": "a", "rep_days": 12.5, "team_days": 10.0})]
    assert reps.coaching_points(summary_of(), "R1", rates([0.5, 0.5], [0.5, 0.5]), times([12.4, 5.0], [10.0, 10.0]),
                                0) == [("ok", {})]
    # above the limits: share the stage furthest above the team; overdue follow-ups counted
    points = reps.coaching_points(summary_of("above"), "R1", rates([0.9, 0.6], [0.5, 0.5]), even, 3)
    assert points == [("strong", {"stage": "a"}), ("followup", {"n": 3})]


def test_coaching_words_come_from_text_in_the_report_language():
    points = [("weak", {"stage": "b", "gap": 5.0}), ("slow", {"stage": "a", "rep_days": 12.5, "team_days": 10.0})]
    zh = present.coaching(points, {"a": "潜在客户", "b": "意向客户", "c": "商机客户"}, present.load_text("zh"))
    # one label per step, the gap in percentage points (百分点) with its sign
    assert zh[0] == "辅导重点在意向客户 → 商机客户：转化率与团队相差 −5.0 百分点。"
    assert "潜在客户" in zh[1] and "12.5" in zh[1]


def test_pipeline_by_stage_by_hand():
    deals = pd.DataFrame({"deal_id": ["a", "b", "c"], "stage": ["prospects", "prospects", "negotiation"],
                          "amount": [100.0, 200.0, 1000.0], "win_probability": [0.5, 0.25, 0.8]})
    table = sales.pipeline_by_stage(deals, ["leads", "prospects", "negotiation"])
    assert table.to_dict("list") == {"stage": ["prospects", "negotiation"], "open": [2, 1],
                                     "open_pipeline": [300.0, 1000.0], "weighted_pipeline": [100.0, 800.0]}
    percent = sales.pipeline_by_stage(deals.assign(win_probability=[50, 25, 80]), ["prospects", "negotiation"])
    assert percent["weighted_pipeline"].tolist() == [100.0, 800.0]


def screened_of(rows):
    table = pd.DataFrame(rows, columns=["deal_id", "stage", "rep", "is_opportunity"])
    return Screening(table, criteria={}, min_criteria=3)


def test_qualified_by_and_screen_by_tier_by_hand():
    screened = screened_of([("a", "prospects", "R1", True), ("b", "prospects", "R2", False),
                            ("c", "leads", "R1", True), ("d", "negotiation", "R1", False)])
    by_stage = screening.qualified_by(screened, "stage", ["leads", "prospects", "opportunities", "negotiation"])
    assert by_stage.to_dict("list") == {"stage": ["leads", "prospects", "negotiation"], "open": [1, 2, 1],
                                        "qualified": [1, 1, 0]}
    by_rep = screening.qualified_by(screened, "rep")
    assert by_rep.to_dict("list") == {"rep": ["R1", "R2"], "open": [3, 1], "qualified": [2, 0]}
    scored = pd.DataFrame({"deal_id": ["a", "b", "c", "d"], "tier": ["high", "high", None, "low"]})
    grid = screening.screen_by_tier(scored, screened)
    assert grid.to_dict("list") == {"tier": ["high", "medium", "low", "unscored"], "passes": [1, 0, 0, 1],
                                    "fails": [1, 0, 1, 0]}


def test_trailing_window_arithmetic():
    q2 = parse_period("2024-Q2")
    window = trailing_window(q2, 12)
    assert (window.start, window.end, window.label) == (pd.Timestamp("2023-07-01"), pd.Timestamp("2024-07-01"),
                                                         "2023-07…2024-Q2")
    assert trailing_window(parse_period("2024-03"), 2).start == pd.Timestamp("2024-02-01")
    assert trailing_window(parse_period("2024-03"), 1).start == pd.Timestamp("2024-03-01")
    assert trailing_window(q2, 0) is q2 and trailing_window(q2, None) is q2


def test_stays_entered_in_a_window_and_cohort_medians():
    stays = stays_frame([("R1", "prospects", 2, False, pd.Timestamp("2024-01-10")),
                         ("R1", "prospects", 4, False, pd.Timestamp("2024-01-20")),
                         ("R1", "prospects", 6, False, pd.Timestamp("2024-02-05")),
                         ("R1", "leads", 9, True, pd.Timestamp("2024-03-05"))])
    assert len(timing.entered_in(stays, parse_period("2024-01"))) == 2
    grid = timing.cohort_medians(stays, ["leads", "prospects"])
    # January: 2 and 4 → S(2) = 0.5, the median is the first time S ≤ 0.5 = 2; February: 6; March: censored only
    assert grid.loc["2024-01", "prospects"] == 2.0 and grid.loc["2024-02", "prospects"] == 6.0
    assert np.isnan(grid.loc["2024-03", "leads"])
    curves = timing.stage_curves(stays, ["leads", "prospects", "negotiation"])
    assert curves.loc[curves["stage"] == "prospects", "survival"].tolist() == pytest.approx([1, 2 / 3, 1 / 3, 0])
    assert set(curves["stage"]) == {"leads", "prospects"}


def test_transition_grid_and_stability_by_tier_by_hand():
    transitions = pd.DataFrame({"scenario": "s", "baseline_tier": ["high", "high", "low"],
                                "scenario_tier": ["high", "medium", "low"], "deals": [4, 1, 7]})
    comparison = sensitivity.ScenarioComparison(pd.DataFrame(), transitions, pd.DataFrame(), pd.DataFrame())
    grid = sensitivity.transition_grid(comparison, "s")
    assert grid.to_numpy().tolist() == [[4, 1, 0], [0, 0, 0], [0, 0, 7]]
    stability = sensitivity.WeightStability(
        pd.DataFrame({"deal_id": ["a", "b", "c"], "tier": ["high", "high", "low"], "stable": [True, False, True]}),
        concentration=10.0, draws=1, seed=0, sd={})
    table = sensitivity.stability_by_tier(stability)
    assert table["tier"].tolist() == ["high", "medium", "low"] and table["deals"].tolist() == [2, 0, 1]
    np.testing.assert_allclose(table["stable_share"], [0.5, np.nan, 1.0])


def test_closed_in_window():
    deals = pd.DataFrame({"deal_id": list("abcd"), "status": ["won", "lost", "won", "open"],
                          "closed_at": pd.to_datetime(["2024-03-31 23:00", "2024-04-01 00:00", "2024-02-29 00:00", None])})
    assert sensitivity.closed_in(deals, parse_period("2024-03"))["deal_id"].tolist() == ["a"]


@pytest.mark.parametrize("low, high, significant", [(0.01, 0.05, True), (-0.05, -0.01, True), (-0.01, 0.05, False),
                                                    (0.0, 0.05, False), (np.nan, np.nan, False)])
def test_significance_rule(low, high, significant):
    assert sensitivity.differs_beyond_noise(low, high) is significant


def test_cadence_and_suggestion_words_in_the_report_language():
    plan = pd.DataFrame({"cadence_days": [7, np.nan], "cadence_months": [np.nan, 1]})
    assert present.cadence(plan, present.load_text("zh")).tolist() == ["每 7 天", "每月"]
    assert present.cadence(plan, present.load_text("en")).tolist() == ["every 7 days", "every month"]


def test_review_labels_stages_in_the_language_asked_for(sample, config):
    zh = fk.period_review(sample, config, "2024-06", team="South", language="zh").conversions
    assert zh[["label", "next_label"]].iloc[0].tolist() == ["潜在客户", "意向客户"]
    assert zh[["stage", "next_stage"]].iloc[0].tolist() == ["leads", "prospects"]
    en = fk.period_review(sample, config, "2024-06", team="South").conversions
    assert en["label"].iloc[0] == "Leads"
