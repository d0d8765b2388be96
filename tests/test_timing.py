"""Time in stage against R's survival package (aml data) and hand-worked cases."""
import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.analyses import sales, timing
from conftest import make_data

# R survival's `aml` data: weeks to relapse, status 1 = relapse (event), 0 = censored.
AML = {
    "Maintained": ([9, 13, 13, 18, 23, 28, 31, 34, 45, 48, 161], [1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0]),
    "Nonmaintained": ([5, 5, 8, 8, 12, 16, 23, 27, 30, 33, 43, 45], [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1]),
}
# Published: survfit(Surv(time, status) ~ x, data = aml) → median 31 (Maintained), 23 (Nonmaintained),
# 0.95UCL NA for both; survdiff → Chisq = 3.4 on 1 df, p = 0.0653.
PUBLISHED_MEDIAN = {"Maintained": 31.0, "Nonmaintained": 23.0}


def aml_stays():
    rows = []
    for group, (times, status) in AML.items():
        rows += [{"group": group, "stage": "leads", "days": float(t), "censored": s == 0} for t, s in zip(times, status)]
    return pd.DataFrame(rows)


def test_km_medians_match_r_survival():
    table = timing.time_in_stage(aml_stays(), by="group").set_index("group")
    for group, median in PUBLISHED_MEDIAN.items():
        assert table.loc[group, "median"] == median
    assert np.isnan(table.loc["Maintained", "median_high"])  # upper band never reaches 0.5: "not reached"
    assert table.loc["Maintained", "stays"] == 11 and table.loc["Maintained", "censored"] == 4


def test_km_median_lower_bound_log_log_by_hand():
    """Greenwood log-log band: S(13) = 9/11, var sum 1/110 + 1/90 = 0.020202, se = 0.14213 / 0.20067,
    lower = S ** exp(1.96 * 0.70828) = 0.447 <= 0.5, while at t = 9 the lower band is 0.508."""
    table = timing.time_in_stage(aml_stays(), by="group").set_index("group")
    assert table.loc["Maintained", "median_low"] == 13.0
    assert table.loc["Nonmaintained", "median_low"] == 5.0  # lower band 0.482 at t = 5


def test_km_median_upper_bound_log_log_by_hand():
    """Nonmaintained: at t = 30, S = 0.29167, Greenwood sum 0.22619, upper band
    S ** exp(-1.96 * 0.47559 / 1.23214) = 0.561 > 0.5; at t = 33, S = 0.19444, sum 0.39286,
    upper = 0.461 <= 0.5. (R's default log band never reaches 0.5 here: it prints NA.)"""
    table = timing.time_in_stage(aml_stays(), by="group").set_index("group")
    assert table.loc["Nonmaintained", "median_high"] == 33.0


def test_log_rank_matches_r_survdiff():
    result = timing.compare_time_in_stage(aml_stays(), "leads", "group").iloc[0]
    assert result["chi2"] == pytest.approx(3.3964, abs=1e-4)
    assert result["p_value"] == pytest.approx(0.0653, abs=1e-4)
    assert (result["median_a"], result["median_b"]) == (31.0, 23.0)


def test_not_reached_when_too_many_stays_are_open():
    stays = pd.DataFrame({"stage": "leads", "days": [1.0, 2, 3, 4, 5], "censored": [False, True, True, True, True]})
    row = timing.time_in_stage(stays).iloc[0]
    assert np.isnan(row["median"]) and np.isnan(row["p90"])  # S never drops to 0.5
    assert row["mean_completed"] == 1.0


def test_aml_through_stage_stays(config):
    """Build stage events whose leads stays reproduce the aml times and censoring."""
    as_of = pd.Timestamp("2024-07-01")
    deals, events, team_of = [], [], {}
    for group, (times, status) in AML.items():
        for i, (t, s) in enumerate(zip(times, status)):
            deal_id = f"{group[:3]}{i}"
            start = as_of - pd.Timedelta(weeks=t) if s == 0 else pd.Timestamp("2020-01-01")
            events.append((deal_id, "leads", str(start)))
            if s == 1:
                events.append((deal_id, "prospects", str(start + pd.Timedelta(weeks=t))))
            deals.append({"deal_id": deal_id, "status": "open", "team": group})
    data = make_data(deals, events, config, as_of=str(as_of))
    stays = fk.stage_stays(data, config)
    leads = stays[stays["stage"] == "leads"].assign(days=lambda s: s["days"] / 7)
    table = timing.time_in_stage(leads, by="team").set_index("team")
    assert table["median"].to_dict() == PUBLISHED_MEDIAN
    assert timing.compare_time_in_stage(leads, "leads", "team").iloc[0]["chi2"] == pytest.approx(3.3964, abs=1e-4)


def test_stays_lost_open_and_skip(config):
    data = make_data(
        [{"deal_id": "L", "status": "lost", "closed_at": "2024-03-11", "lost_reason": "预算不足"},
         {"deal_id": "O", "status": "open"}],
        [("L", "leads", "2024-03-01"), ("L", "opportunities", "2024-03-04"),
         ("O", "leads", "2024-03-01"), ("O", "prospects", "2024-03-21")],
        config, as_of="2024-04-01",
    )
    stays = fk.stage_stays(data, config).set_index(["deal_id", "stage"])
    assert stays.loc[("L", "leads"), "outcome"] == "progressed" and stays.loc[("L", "leads"), "days"] == 3
    assert stays.loc[("L", "opportunities"), "outcome"] == "lost" and stays.loc[("L", "opportunities"), "days"] == 7
    assert ("L", "prospects") not in stays.index  # skipped: no stay
    assert stays.loc[("O", "prospects"), "outcome"] == "open" and stays.loc[("O", "prospects"), "censored"]
    assert stays.loc[("O", "prospects"), "days"] == 11  # censored at as_of (2024-04-01 00:00)
    assert pd.isna(stays.loc[("O", "prospects"), "exited_at"])


def test_cumulative_time_adds_up_regressions(config):
    data = make_data(
        [{"deal_id": "A", "status": "open"}],
        [("A", "leads", "2024-03-01"), ("A", "prospects", "2024-03-02"), ("A", "leads", "2024-03-05"),
         ("A", "prospects", "2024-03-07")],
        config, as_of="2024-03-10",
    )
    total = timing.cumulative_time(fk.stage_stays(data, config)).set_index("stage")
    assert total.loc["leads", "days"] == 3 and total.loc["leads", "stays"] == 2
    assert total.loc["prospects", "days"] == 3 + 3 and total.loc["prospects", "open"]


def test_stalled_list_on_a_built_case():
    history = pd.DataFrame({"deal_id": [f"H{i}" for i in range(8)], "team": "T", "rep": "R", "pipeline": "p",
                            "stage": "prospects", "entered_at": pd.Timestamp("2024-01-01"),
                            "days": [1.0, 2, 3, 4, 5, 6, 7, 8], "censored": False})
    current = pd.DataFrame({"deal_id": ["S1", "S2", "S3"], "team": "T", "rep": ["A", "B", "C"], "pipeline": "p",
                            "stage": "prospects", "entered_at": pd.Timestamp("2024-06-01"),
                            "days": [10.0, 6.0, 5.0], "censored": True})
    # KM p75 of 1..8 with no censoring: S(6) = 2/8 = 0.25 → 6 days. S2 at exactly 6 is not over it.
    stalled = timing.stalled_deals(current, history=pd.concat([history, current]), quantile=0.75)
    # S3 at 5 days is under; the open stays only push the threshold up, never down
    assert stalled["deal_id"].tolist() == ["S1"]
    assert stalled.iloc[0]["rep"] == "A"
    stalled = timing.stalled_deals(current, history=history, quantile=0.75)
    assert stalled["deal_id"].tolist() == ["S1"]
    assert stalled.iloc[0]["threshold_days"] == 6 and stalled.iloc[0]["days_over"] == 4
    # median of 1..8 = 4 days (S(4) = 0.5 exactly; the first time S <= 0.5): all three are over
    assert timing.stalled_deals(current, history=history, quantile=0.5)["deal_id"].tolist() == ["S1", "S2", "S3"]


def test_sales_metrics_by_hand(config):
    data = make_data(
        [{"deal_id": "W1", "status": "won", "closed_at": "2024-03-11", "amount": 100.0},
         {"deal_id": "W2", "status": "won", "closed_at": "2024-03-21", "amount": 300.0},
         {"deal_id": "L1", "status": "lost", "closed_at": "2024-03-05", "amount": 600.0, "lost_reason": "x"},
         {"deal_id": "O1", "status": "open", "amount": 1000.0, "win_probability": 30},
         {"deal_id": "O2", "status": "open", "amount": 500.0, "win_probability": 50}],
        [("W1", "leads", "2024-03-01"), ("W1", "customers", "2024-03-11"),
         ("W2", "leads", "2024-03-01"), ("W2", "customers", "2024-03-21"),
         ("L1", "leads", "2024-03-01"), ("O1", "leads", "2024-03-01"), ("O2", "leads", "2024-03-02")],
        config, as_of="2024-04-01",
    )
    m = sales.sales_metrics(data, "2024-03").iloc[0]
    assert m["win_rate"] == pytest.approx(2 / 3)
    assert m["value_win_rate"] == pytest.approx(400 / 1000)
    assert (m["cycle_median"], m["cycle_mean"]) == (15.0, 15.0)
    assert m["weighted_pipeline"] == pytest.approx(1000 * 0.3 + 500 * 0.5)
    assert m["velocity_per_day"] == pytest.approx(2 * (2 / 3) * 200 / 15)
