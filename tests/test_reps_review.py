"""Rep comparison and the period review: intervals, limits, shrinkage, flags, and the planted effects."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import funnelkit as fk
from funnelkit.analyses import reps
from funnelkit.analyses.review import period_review
from funnelkit.inputs.sample import STRONG_REP, WEAK_REP
from funnelkit.analyses.sensitivity import wilson_interval


@pytest.mark.parametrize("k, n", [(0, 10), (3, 3), (40, 60), (17, 141), (55, 140)])
def test_wilson_against_scipy(k, n):
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high))


def test_funnel_limit_by_hand():
    """n = 20, θ0 = 0.3, p = 0.975: F(9) = 0.95204, F(10) = 0.98286, so r = 10,
    α = (0.98286 − 0.975) / (0.98286 − 0.95204) = 0.2550, limit = (10 − 0.2550) / 20 = 0.48725
    (to the five decimals of the hand calculation)."""
    f10, f9 = stats.binom.cdf(10, 20, 0.3), stats.binom.cdf(9, 20, 0.3)
    assert (round(f9, 5), round(f10, 5)) == (0.95204, 0.98286)
    assert reps.binomial_limit(0.975, 20, 0.3) == pytest.approx((10 - (f10 - 0.975) / (f10 - f9)) / 20)
    assert float(reps.binomial_limit(0.975, 20, 0.3)) == pytest.approx(0.48725, abs=2e-5)
    limits = reps.funnel_limits(0.3, [20, 200]).set_index("n")
    assert limits.loc[20, "upper_95"] == pytest.approx(0.48725, abs=2e-5)
    # limits narrow with volume and the 99.8% band is wider than the 95% band
    assert limits.loc[200, "upper_95"] < limits.loc[20, "upper_95"]
    assert (limits["upper_99_8"] >= limits["upper_95"]).all() and (limits["lower_99_8"] <= limits["lower_95"]).all()


def test_flag_needs_volume_and_99_8_limits():
    flags = reps.flag_reps(k=np.array([3, 28, 14, 2]), n=np.array([3, 60, 60, 60]), theta=0.3, min_volume=30)
    # 3/3 is far above 0.3 but too small to flag; 28/60 = 0.47 is outside 95% but inside 99.8%
    assert flags.tolist() == ["within", "within", "within", "below"]
    assert reps.flag_reps(np.array([33]), np.array([60]), 0.3).tolist() == ["above"]


def test_shrinkage_ranks_40_of_60_above_3_of_3():
    rng = np.random.default_rng(0)
    n = np.full(12, 60)
    k = rng.binomial(60, 0.3, size=12)
    k_all, n_all = np.append(k, [3, 40]), np.append(n, [3, 60])
    shrunk = reps.shrunk_rates(k_all, n_all)
    assert shrunk[-1] > shrunk[-2]  # 40/60 above 3/3
    assert 0.25 < shrunk[-2] < 0.6  # 3/3 pulled well toward the team rate
    assert abs(k_all.sum() / n_all.sum() - 0.3) < 0.05


def test_planted_reps_are_flagged_and_no_other(sample, config):
    summary = reps.rep_summary(sample, config, "2024-Q2")
    flagged = dict(zip(summary.loc[summary["flag"] != "within", "rep"], summary.loc[summary["flag"] != "within", "flag"]))
    assert flagged == {STRONG_REP: "above", WEAK_REP: "below"}
    for team in ("East", "North", "South"):
        team_summary = reps.rep_summary(sample, config, "2024-Q2", team=team)
        expected = {"East": {STRONG_REP: "above"}, "North": {WEAK_REP: "below"}, "South": {}}[team]
        got = team_summary[team_summary["flag"] != "within"].set_index("rep")["flag"].to_dict()
        assert got == expected
    assert summary.iloc[0]["rep"] == STRONG_REP and summary.iloc[-1]["rep"] == WEAK_REP


def test_rep_summary_columns_add_up(sample, config):
    stays = fk.stage_stays(sample, config)
    summary = reps.rep_summary(sample, config, "2024-Q2", team="East", stays=stays)
    assert (summary["won"] <= summary["closed"]).all()
    assert (summary["win_rate_low"] <= summary["win_rate"]).all() and (summary["win_rate"] <= summary["win_rate_high"]).all()
    assert {"reached_leads", "rate_prospects", "tis_prospects", "shrunk_win_rate", "velocity_per_day"} <= set(summary)
    assert summary["rank"].tolist() == list(range(1, 6))


def test_review_flags_the_planted_drop(sample, config):
    review = period_review(sample, config, "2024-06", team="South")
    flagged = review.conversions[review.conversions["flag"] != ""]
    assert flagged["stage"].tolist() == ["prospects"] and flagged["flag"].tolist() == ["drop"]
    assert review.previous == "2024-05"


@pytest.mark.parametrize("team, period", [("East", "2024-06"), ("North", "2024-06"), ("South", "2024-05"),
                                          ("East", "2024-04"), (None, "2024-04"), ("South", "2023-11")])
def test_review_flags_nothing_on_unchanged_periods(sample, config, team, period):
    review = period_review(sample, config, period, team=team)
    assert (review.conversions["flag"] == "").all(), review.conversions


def test_review_test_choice_and_adjustment(config):
    """Few exits → Fisher exact; adjusted p-values are Benjamini–Hochberg of the raw ones."""
    from conftest import make_data

    deals, events = [], []
    for i, (month, progressed) in enumerate([("05", True)] * 4 + [("05", False)] + [("06", False)] * 4 + [("06", True)]):
        d = f"D{i}"
        events.append((d, "leads", f"2024-{month}-02"))
        if progressed:
            events.append((d, "prospects", f"2024-{month}-10"))
            deals.append({"deal_id": d, "status": "open"})
        else:
            deals.append({"deal_id": d, "status": "lost", "closed_at": f"2024-{month}-10", "lost_reason": "预算不足"})
    review = period_review(make_data(deals, events, config), config, "2024-06")
    row = review.conversions.iloc[0]
    assert (row["exits_this"], row["progressed_this"], row["exits_previous"], row["progressed_previous"]) == (5, 1, 5, 4)
    assert row["test"] == "fisher"
    assert row["p_value"] == pytest.approx(stats.fisher_exact([[1, 4], [4, 1]]).pvalue)
    assert review.loss_reasons.set_index("reason").loc["预算不足", "lost_this"] == 4
