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


# --- engines5: the numpy Kaplan–Meier and time_in_stage without a copy per group ----------------

def _scipy_quantiles(days, censored, confidence=0.95, method="log-log"):
    """The reference: scipy.stats.ecdf and its confidence band, first times at or below 1 − q."""
    from scipy import stats
    import warnings

    out = {k: np.nan for name in timing.QUANTILES for k in (name, f"{name}_low", f"{name}_high")}
    days, censored = np.asarray(days, float), np.asarray(censored, bool)
    if len(days) == 0 or censored.all():
        return out
    sf = stats.ecdf(stats.CensoredData.right_censored(days, censored)).sf
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        band = sf.confidence_interval(confidence_level=confidence, method=method)
        curves = {"": sf.probabilities, "_low": band.low.evaluate(sf.quantiles),
                  "_high": band.high.evaluate(sf.quantiles)}
    for name, q in timing.QUANTILES.items():
        for suffix, curve in curves.items():
            hit = np.flatnonzero(np.nan_to_num(curve, nan=np.inf) <= 1 - q + 1e-12)
            out[name + suffix] = float(sf.quantiles[hit[0]]) if hit.size else np.nan
    return out


def _groupby_time_in_stage(stays, by=None, confidence=0.95, method="log-log"):
    """time_in_stage as the group-by over copies of each group computed it before engines5."""
    keys = ["stage"] + ([by] if isinstance(by, str) else list(by or []))
    rows = []
    for key, group in stays[keys + ["days", "censored"]].groupby(keys, sort=True, observed=True):
        done = group.loc[~group["censored"], "days"]
        row = dict(zip(keys, key))
        row |= {"stays": len(group), "censored": int(group["censored"].sum()), "events": len(done)}
        row |= _scipy_quantiles(group["days"], group["censored"], confidence, method)
        row["mean_completed"] = float(done.mean()) if len(done) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _hand_stays():
    # leads: ties between ends and open stays at 2 days; prospects: one stay; opportunities: all open;
    # proposals: nothing open (scipy's uncensored branch), with ties
    rows = [("leads", "East", 2.0, False), ("leads", "East", 2.0, True), ("leads", "West", 2.0, False),
            ("leads", "East", 5.0, False), ("leads", "West", 1.5, True), ("leads", "West", 7.0, False),
            ("prospects", "East", 3.0, False),
            ("opportunities", "West", 4.0, True), ("opportunities", "West", 9.0, True),
            ("proposals", "East", 1.0, False), ("proposals", "East", 1.0, False), ("proposals", "West", 4.0, False)]
    return pd.DataFrame(rows, columns=["stage", "team", "days", "censored"])


def test_numpy_time_in_stage_hand_worked():
    table = timing.time_in_stage(_hand_stays()).set_index("stage")
    # leads: 6 at risk; at 1.5 one open leaves (S 1); at 2: 5 at risk, 2 end → S = 3/5; at 5: 2 at risk
    # (one open left at 2), 1 ends → S = 0.3; at 7: the last ends → S = 0
    assert table.loc["leads", ["stays", "censored", "events"]].tolist() == [6, 2, 4]
    assert table.loc["leads", "median"] == 5.0 and table.loc["leads", "p90"] == 7.0
    assert table.loc["leads", "mean_completed"] == pytest.approx((2 + 2 + 5 + 7) / 4)
    assert table.loc["prospects", "median"] == 3.0 and table.loc["prospects", "stays"] == 1
    assert np.isnan(table.loc["opportunities", ["median", "p75", "p90", "mean_completed"]].astype(float)).all()
    # proposals: S = 1/3 after 1 (two of three end), 0 after 4
    assert table.loc["proposals", "median"] == 1.0 and table.loc["proposals", "p75"] == 4.0
    assert list(table.index) == ["leads", "opportunities", "proposals", "prospects"]  # groupby's sorted order


@pytest.mark.parametrize("method", ["log-log", "linear"])
def test_numpy_time_in_stage_equals_the_groupby_on_scipy(method):
    rng = np.random.default_rng(5)
    n = 4000
    stays = pd.DataFrame({
        "stage": pd.Categorical(rng.choice(["leads", "prospects", "proposals", "won"], n),
                                categories=["leads", "proposals", "prospects", "won"]),
        "team": rng.choice(["East", "West", "North"], n),
        "days": np.round(rng.exponential(20, n), 1),  # rounded: many ties
        "censored": rng.random(n) < 0.3,
    })
    stays.loc[stays["stage"] == "won", "censored"] = False  # a stage with nothing open
    stays.loc[(stays["stage"] == "prospects") & (stays["team"] == "North"), "censored"] = True  # all open
    hand = _hand_stays()
    for frame, by in ((stays, None), (stays, "team"), (hand, None), (hand, "team"), (hand.iloc[:1], None)):
        got = timing.time_in_stage.uncached(frame, by=by, method=method)
        pd.testing.assert_frame_equal(got, _groupby_time_in_stage(frame, by=by, method=method))


def test_numpy_time_in_stage_leaves_out_missing_keys_and_empty_stays():
    stays = _hand_stays().assign(team=lambda s: s["team"].where(s.index % 4 != 0))  # some teams missing
    pd.testing.assert_frame_equal(timing.time_in_stage.uncached(stays, by="team"), _groupby_time_in_stage(stays, "team"))
    assert timing.time_in_stage.uncached(stays.iloc[:0]).empty


@pytest.mark.filterwarnings("ignore:The confidence interval is undefined")
def test_km_curve_equals_scipy():
    from scipy import stats

    rng = np.random.default_rng(7)
    days, censored = np.round(rng.exponential(5, 500), 0), rng.random(500) < 0.4
    curve = timing.km_curve(pd.Series(days), pd.Series(~censored)).iloc[1:]
    sf = stats.ecdf(stats.CensoredData.right_censored(days, censored)).sf
    np.testing.assert_array_equal(curve["days"], sf.quantiles)
    np.testing.assert_array_equal(curve["survival"], sf.probabilities)
    band = sf.confidence_interval(method="log-log")
    np.testing.assert_array_equal(curve["low"], band.low.evaluate(sf.quantiles))
    np.testing.assert_array_equal(curve["high"], band.high.evaluate(sf.quantiles))


def test_numpy_time_in_stage_groups_an_int8_stage_index_as_any_integer():
    """An engine's stays hold stage_index as int8 (grouped by a lookup table, not a hash): the
    same table as with int64, stages in index order, including a negative code and a gap."""
    stays = _hand_stays().assign(stage_index=lambda s: s["stage"].map(
        {"leads": 0, "prospects": 1, "opportunities": 3, "proposals": -1}))
    want = timing.time_in_stage.uncached(stays.astype({"stage_index": "int64"}))
    got = timing.time_in_stage.uncached(stays.astype({"stage_index": "int8"}))
    pd.testing.assert_frame_equal(got, want)
    assert got["stage"].tolist() == ["proposals", "leads", "prospects", "opportunities"]
