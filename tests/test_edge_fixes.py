"""Numbers at the edges (issue 20): each test here failed on the code before its fix."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funnelkit as fk
from funnelkit.analyses import reps
from funnelkit.presentation import present
from funnelkit.analyses import sensitivity as S
from funnelkit.inputs.data import DataError
from funnelkit.analyses.scorecard import Scorecard, load_scorecard, score_deals, tier_codes

from conftest import make_data, make_tables

STAGES = ["leads", "prospects", "opportunities", "negotiation", "customers"]


@pytest.fixture(scope="module")
def card():
    return load_scorecard()


# --- timing ------------------------------------------------------------------------------------

def test_stalled_deals_with_no_open_deals_is_an_empty_table(config):
    data = make_data(
        [{"deal_id": "A", "status": "won", "closed_at": "2024-03-20"},
         {"deal_id": "B", "status": "lost", "closed_at": "2024-03-10", "lost_reason": "price"}],
        [("A", "leads", "2024-03-01"), ("A", "prospects", "2024-03-05"), ("A", "customers", "2024-03-20"),
         ("B", "leads", "2024-03-02")], config)
    stays = fk.stage_stays(data, config)
    stalled = fk.stalled_deals(stays)
    assert stalled.empty
    assert list(stalled.columns) == ["deal_id", "team", "rep", "pipeline", "stage", "entered_at", "days",
                                     "threshold_days", "days_over"]


# --- period table ------------------------------------------------------------------------------

def test_period_table_counts_a_stay_starting_at_the_first_instant_of_the_period(config):
    """A skips straight through leads at 2024-03-01 00:00 (a zero-length stay): it was in leads
    in March, so it counts there, and count ≥ new."""
    data = make_data(
        [{"deal_id": "A", "status": "open"}],
        [("A", "leads", "2024-03-01 00:00"), ("A", "prospects", "2024-03-01 00:00")], config)
    table = fk.period_table(data, config, "2024-03").set_index("stage")
    assert table.loc["leads", "new"] == 1
    assert table.loc["leads", "count"] == 1
    assert (table["count"] >= table["new"]).all()


def test_period_table_conversion_is_the_step_rate_not_a_ratio_of_counts(config):
    """Ten deals sit in negotiation since February. In March two deals leave opportunities: one
    moves on to negotiation, one is lost. count[negotiation] / count[opportunities] = 11 / 2 = 550%;
    the step rate is advanced / (advanced + lost) = 1 / 2."""
    deals, events = [], []
    for i in range(10):
        deals.append({"deal_id": f"N{i}", "status": "open"})
        events += [(f"N{i}", "opportunities", "2024-02-01"), (f"N{i}", "negotiation", "2024-02-10")]
    deals += [{"deal_id": "X", "status": "open"},
              {"deal_id": "Y", "status": "lost", "closed_at": "2024-03-20", "lost_reason": "price"}]
    events += [("X", "opportunities", "2024-02-20"), ("X", "negotiation", "2024-03-10"),
               ("Y", "opportunities", "2024-02-20")]
    data = make_data(deals, events, config)
    table = fk.period_table(data, config, "2024-03").set_index("stage")
    assert table.loc["opportunities", "count"] == 2 and table.loc["negotiation", "count"] == 11
    assert table.loc["negotiation", "conversion"] == pytest.approx(0.5)
    assert table.loc["opportunities", "conversion"] != table.loc["opportunities", "conversion"]  # NaN: no exits


@st.composite
def boundary_logs(draw):
    """Deals whose events fall on midnights (period starts) with zero-length stays, skips and regressions."""
    n = draw(st.integers(1, 20))
    deals, events = [], []
    for i in range(n):
        t = pd.Timestamp("2024-02-15") + pd.Timedelta(days=draw(st.integers(0, 60)))
        path = [draw(st.integers(0, 2))]
        for _ in range(draw(st.integers(0, 5))):
            path.append(min(max(path[-1] + draw(st.sampled_from([1, 1, 2, -1])), 0), 4))
            if path[-1] == 4:
                break
        for k in path:
            events.append((f"D{i}", STAGES[k], str(t)))
            t += pd.Timedelta(days=draw(st.sampled_from([0, 0, 1, 14, 31])))
        status = "won" if path[-1] == 4 else draw(st.sampled_from(["open", "lost"]))
        closed = pd.Timestamp(events[-1][2]) + pd.Timedelta(days=0 if status == "won" else draw(st.integers(0, 20)))
        deals.append({"deal_id": f"D{i}", "status": status, "closed_at": str(closed) if status != "open" else None,
                      "lost_reason": "price" if status == "lost" else None})
    return deals, events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boundary_logs())
def test_period_table_count_at_least_new_and_rates_in_0_1(config, log):
    deals, events = log
    d, e = make_tables(deals, events)
    data = fk.validate(d, e, config, as_of=pd.Timestamp("2024-08-01"))
    for period in ("2024-03", "2024-04", "2024-Q2"):
        table = fk.period_table(data, config, period)
        assert (table["count"] >= table["new"]).all(), table
        rate = table["conversion"].dropna()
        assert ((rate >= 0) & (rate <= 1)).all(), table


def test_period_table_note_says_what_the_rate_is():
    text = present.load_text("en")
    assert "moved on ÷ (moved on + lost or moved back)" in text("table1_note")


# --- reps --------------------------------------------------------------------------------------

def test_reps_with_too_few_closed_deals_are_listed_but_not_ranked(config):
    """4 of 4 and 2 of 2 must not rank above 119 of 178 (the issue's example, smaller)."""
    deals, events = [], []

    def add(rep, won, lost):
        for i in range(won + lost):
            deal_id = f"{rep}-{i}"
            is_won = i < won
            deals.append({"deal_id": deal_id, "rep": rep, "status": "won" if is_won else "lost",
                          "closed_at": "2024-05-20", "lost_reason": None if is_won else "price"})
            events.append((deal_id, "leads", "2024-05-01"))
            if is_won:
                events.append((deal_id, "customers", "2024-05-20"))

    add("Big", 60, 30)
    add("Mid", 20, 20)
    add("Lucky", 4, 0)
    add("Two", 2, 0)
    data = make_data(deals, events, config)
    summary = reps.rep_summary(data, config, "2024-05", window_months=None, min_volume=30).set_index("rep")
    assert summary.loc["Big", "rank"] == 1 and summary.loc["Mid", "rank"] == 2
    assert pd.isna(summary.loc["Lucky", "rank"]) and pd.isna(summary.loc["Two", "rank"])
    assert len(summary) == 4  # still listed
    page = present.rollup_table(summary.reset_index(), present.load_text("en")).to_html()
    assert page.count(">not ranked<") == 2 and "Not ranked: too few closed deals" in page


def test_min_volume_comes_from_params(config, tmp_path):
    """reps.min_volume in params/funnel.yaml decides who is ranked (default 30)."""
    assert config.reps.min_volume == 30
    text = (fk.config.PARAMS_DIR / "funnel.yaml").read_text(encoding="utf-8").replace("min_volume: 30", "min_volume: 4")
    (tmp_path / "funnel.yaml").write_text(text, encoding="utf-8")
    small = fk.load_config(tmp_path / "funnel.yaml")
    deals, events = [], []
    for rep, n in (("Four", 4), ("Three", 3)):
        for i in range(n):
            deals.append({"deal_id": f"{rep}{i}", "rep": rep, "status": "won", "closed_at": "2024-05-20"})
            events += [(f"{rep}{i}", "leads", "2024-05-01"), (f"{rep}{i}", "customers", "2024-05-20")]
    data = make_data(deals, events, small)
    summary = reps.rep_summary(data, small, "2024-05", window_months=None).set_index("rep")
    assert summary.loc["Four", "rank"] == 1 and pd.isna(summary.loc["Three", "rank"])
    (tmp_path / "funnel.yaml").write_text(text.replace("min_volume: 4", "min_volume: 0"), encoding="utf-8")
    with pytest.raises(fk.ConfigError, match="reps.min_volume"):
        fk.load_config(tmp_path / "funnel.yaml")


# --- sales -------------------------------------------------------------------------------------

def test_weighted_pipeline_without_probabilities_is_not_available(config):
    data = make_data([{"deal_id": "A", "status": "open"}, {"deal_id": "B", "status": "open"}],
                     [("A", "leads", "2024-05-01"), ("B", "leads", "2024-05-02")], config)
    row = fk.sales_metrics(data, "2024-05").iloc[0]
    assert np.isnan(row["weighted_pipeline"])
    assert row["open_pipeline"] == 2000
    shown = present.styled(pd.DataFrame([row]), present.load_text("en"), money=("weighted_pipeline",),
                           missing={"weighted_pipeline": "no_probabilities"}).to_html()
    assert "not available (no probabilities)" in shown and "¥0" not in shown


def test_win_rate_without_recorded_losses_carries_a_note(config):
    data = make_data([{"deal_id": "A", "status": "won", "closed_at": "2024-05-20"},
                      {"deal_id": "B", "status": "open"}],
                     [("A", "leads", "2024-05-01"), ("A", "customers", "2024-05-20"), ("B", "leads", "2024-05-02")],
                     config)
    text = present.load_text("en")
    assert not fk.sales.losses_recorded(data.deals)
    notes = present.win_rate_notes(data, text)
    assert notes == ["no lost deals recorded in this data"]


# --- sensitivity -------------------------------------------------------------------------------

def three_dim_card():
    """Weights a 0.5, b 0.1, c 0.4: with a = 4, b = 5, c = 4 the score is 84 − 4w for w = weight of a."""
    dims = {k: {"label": {"en": k, "zh": k}, "column": k, "weight": w, "points": {str(i): i for i in range(1, 6)}}
            for k, w in (("a", 0.5), ("b", 0.1), ("c", 0.4))}
    return Scorecard.model_validate({"dimensions": dims})


def test_sweep_reports_no_tipping_when_the_score_lands_on_a_threshold_at_w_1():
    deals = pd.DataFrame({"deal_id": ["P", "Q"], "a": ["4", "4"], "b": ["5", "3"], "c": ["4", "4"]})
    # P: 84 − 4w → 80 at w = 1, still high.  Q: S_rest = 3.8 → 76 + 4w: reaches 80 (high) exactly at w = 1.
    _, tipping = S.weight_sweep(deals, three_dim_card(), "a")
    tip = tipping.set_index("deal_id")
    assert tip.loc["P", "tier_now"] == "high" and np.isnan(tip.loc["P", "tipping_weight"])
    assert tip.loc["Q", "tier_now"] == "medium" and tip.loc["Q", "tipping_weight"] == pytest.approx(1.0)
    assert tip.loc["Q", "tier_after"] == "high"


def brute_force_tipping(x_k, s_rest, w0, card, grid):
    """Nearest grid weight where the tier differs from the tier at w0 (NaN if none)."""
    tiers = tier_codes(20 * (np.outer(x_k, grid) + np.outer(s_rest, 1 - grid)), card.tiers["high"], card.tiers["medium"])
    now = tier_codes(20 * (w0 * x_k + (1 - w0) * s_rest), card.tiers["high"], card.tiers["medium"])
    differs = tiers != now[:, None]
    distance = np.where(differs, np.abs(grid - w0)[None, :], np.inf)
    best = distance.argmin(axis=1)
    return np.where(np.isfinite(distance.min(axis=1)), grid[best], np.nan)


def test_tipping_weights_agree_with_brute_force_rescoring(card, sample, config):
    deals = fk.open_deals(sample, config)
    step = 1e-4
    grid = np.round(np.arange(0, 1 + step / 2, step), 10)
    spurious = 0
    for dim in [k for k, w in card.weights().items() if w > 0]:
        _, tipping = S.weight_sweep(deals, card, dim)
        others = [k for k, w in card.weights().items() if k != dim and w > 0]
        scored, x = S._scored_points(deals, card, others + [dim])
        w_rest = np.array([card.weights()[k] for k in others])
        s_rest = x[:, :-1] @ w_rest / w_rest.sum()
        brute = brute_force_tipping(x[:, -1], s_rest, card.weights()[dim], card, grid)
        analytic = tipping["tipping_weight"].to_numpy()
        assert (np.isnan(brute) == np.isnan(analytic)).all(), dim
        both = ~np.isnan(brute)
        assert np.abs(brute[both] - analytic[both]).max(initial=0) <= step + 1e-9, dim
        spurious += int(np.isin(analytic, [0.0, 1.0]).sum() - np.isin(brute, [0.0, 1.0]).sum())
    assert spurious == 0


def test_score_deals_rejects_weights_not_summing_to_one(card, sample, config):
    deals = fk.open_deals(sample, config).head(5)
    weights = card.weights() | {"amount": 0.5}
    with pytest.raises(ValueError, match="sum to 1.2"):
        score_deals(deals, card, weights=weights)
    ok = {k: v for k, v in card.weights().items()}
    ok["amount"] += 5e-10
    ok["payment_days"] -= 5e-10
    assert score_deals(deals, card, weights=ok)["score"].notna().any()


def backtest_history(card, won: int, lost: int, unscored: int = 0) -> pd.DataFrame:
    rows = []
    for i in range(won + lost + unscored):
        rows.append({"deal_id": f"H{i}", "status": "won" if i < won or i >= won + lost else "lost",
                     "amount": 100_000.0 * (1 + i % 7), "win_probability": 0.1 * (1 + i % 9),
                     "strategic_value": ["benchmark", "potential", "ordinary"][i % 3],
                     "follow_up_cost": ["low", "medium", "high"][i % 3], "payment_days": 30.0 * (i % 4)})
    frame = pd.DataFrame(rows)
    frame.loc[frame.index >= won + lost, "win_probability"] = np.nan
    return frame


def test_backtest_with_fewer_than_10_won_or_lost_shows_no_auc(card):
    test = S.backtest(backtest_history(card, won=5, lost=30), card, ["competitive_position"], n_boot=50)
    assert test.auc["auc"].isna().all() and test.auc["auc_low"].isna().all()
    assert test.unavailable == "few_closed"
    enough = S.backtest(backtest_history(card, won=12, lost=30), card, n_boot=50)
    assert enough.unavailable is None and enough.auc["auc"].notna().all()


def test_backtest_states_closed_deals_it_could_not_score(card):
    test = S.backtest(backtest_history(card, won=12, lost=30, unscored=17), card, n_boot=50)
    assert int(test.auc["closed"].iloc[0]) == 42
    assert test.unscored == 17
    assert test.unscored_reasons == {"missing:win_probability": 17}
    text = present.load_text("en")
    sentence = present.unscored_sentence(test, text)
    assert sentence.startswith("17 closed deals could not be scored: Win probability: no value (17)")
    assert "缺少成交概率（17）" in present.unscored_sentence(test, present.load_text("zh"))  # worded, punctuated in Chinese


def test_kendall_tau_needs_ten_scored_deals(card, sample, config):
    deals = fk.open_deals(sample, config)
    few = S.compare_scenarios(deals.head(6), card, ["competitive_position"]).summary.iloc[0]
    assert np.isnan(few["kendall_tau_b"])
    many = S.compare_scenarios(deals, card, ["competitive_position"]).summary.iloc[0]
    assert 0 < many["kendall_tau_b"] < 1


def test_suggest_weights_with_few_closed_deals_says_so(card):
    suggestion = S.suggest_weights(backtest_history(card, won=3, lost=4), card, n_boot=20)
    assert suggestion.unavailable == "few_closed"
    assert suggestion.cv["auc"].isna().all()


# --- input checks ------------------------------------------------------------------------------

def test_probability_column_mixing_fractions_and_percents_is_an_error(config):
    d, e = make_tables([{"deal_id": f"D{i}", "status": "open", "win_probability": p}
                        for i, p in enumerate(["0.8", "80", "0.65", "35%", "20"])],
                       [(f"D{i}", "leads", "2024-05-01") for i in range(5)])
    with pytest.raises(DataError, match=r"win_probability.*rows? 1, 3"):
        fk.validate(d, e, config, as_of=pd.Timestamp("2024-07-01"))
    # all percents or all fractions are fine
    for values in (["80", "65", "35%", "20", "5"], ["0.8", "0.65", "0.35", "0.2", "1"]):
        d, e = make_tables([{"deal_id": f"D{i}", "status": "open", "win_probability": p}
                            for i, p in enumerate(values)], [(f"D{i}", "leads", "2024-05-01") for i in range(5)])
        data = fk.validate(d, e, config, as_of=pd.Timestamp("2024-07-01"))
        assert data.deals["win_probability"].between(0, 1).all()


def test_score_deals_on_raw_frames_rejects_impossible_values(card):
    base = {"deal_id": "A", "amount": 100_000.0, "strategic_value": "benchmark", "follow_up_cost": "low"}
    with pytest.raises(ValueError, match="payment_days.*negative.*row 2"):
        score_deals(pd.DataFrame([base | {"win_probability": 0.5, "payment_days": 10},
                                  base | {"win_probability": 0.5, "payment_days": -3}]), card)
    with pytest.raises(ValueError, match="win_probability.*above 100%.*row 1"):
        score_deals(pd.DataFrame([base | {"win_probability": 150, "payment_days": 10},
                                  base | {"win_probability": 50, "payment_days": 10}]), card)
    with pytest.raises(ValueError, match="win_probability.*mixes fractions.*row 1"):
        score_deals(pd.DataFrame([base | {"win_probability": 0.8, "payment_days": 10},
                                  base | {"win_probability": 80, "payment_days": 10}]), card)


def test_sensitivity_on_no_deals_raises_no_warning(card, sample, config):
    """Warnings in the reports are fixed where they start: nothing is computed on empty input."""
    import warnings

    none = fk.open_deals(sample, config).iloc[:0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        comparison = S.compare_scenarios(none, card, ["competitive_position"])
        assert comparison.summary["scored"].tolist() == [0] and np.isnan(comparison.summary["kendall_tau_b"].iloc[0])
        test = S.backtest(none, card, ["competitive_position"], n_boot=20)
        assert test.unavailable == "few_closed" and test.auc["auc"].isna().all()
        assert S.weight_monte_carlo(none, card, n=50).empty
        counts, tipping = S.weight_sweep(none, card, "amount")
        assert tipping.empty and (counts["deals"] == 0).all()
        assert S.suggest_weights(none, card, n_boot=5).unavailable == "few_closed"


def test_heatmap_leaves_out_empty_rows_and_refuses_an_empty_table():
    import warnings

    from funnelkit.presentation import plots
    grid = pd.DataFrame({"a": [1.0, np.nan], "b": [np.nan, np.nan]}, index=["2024-01", "2024-02"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.heatmap(grid, "t", "x", "y")
    with pytest.raises(ValueError, match="no value"):
        plots.heatmap(grid.iloc[1:], "t", "x", "y")


def test_review_with_nothing_to_test_says_so(config):
    data = make_data([{"deal_id": "A", "status": "open"}], [("A", "leads", "2024-05-01")], config)
    from funnelkit.analyses.review import period_review

    review = period_review(data, config, "2024-06")
    lines = present.review_findings(review, present.load_text("en"))
    assert lines[0][0].startswith("No stage had deals deciding in both 2024-05 and this period")
