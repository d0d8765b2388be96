"""Weight sensitivity: scenario comparison, sweeps and tipping weights, Monte Carlo, backtest, fitting."""
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import special

from funnelkit.presentation import present
from funnelkit.analyses import sensitivity as S
from funnelkit.analyses.scorecard import Scenario, Scorecard, load_scorecard


@pytest.fixture(scope="module")
def card():
    return load_scorecard()


@pytest.fixture(scope="module")
def open_deals(sample, config):
    import funnelkit as fk

    return fk.open_deals(sample, config)


def test_scenario_equal_to_baseline_moves_nothing(card, open_deals):
    same = card.model_copy(update={"scenarios": {"same": Scenario(weights=card.weights())}})
    summary = S.compare_scenarios(open_deals, same, ["same"]).summary.iloc[0]
    assert summary["movers"] == 0 and summary["kendall_tau_b"] == pytest.approx(1.0)
    assert summary["high_jaccard"] == 1.0


def test_scenario_comparison_accounts_for_every_deal(card, open_deals):
    result = S.compare_scenarios(open_deals, card, ["competitive_position"])
    summary = result.summary.iloc[0]
    assert result.transitions["deals"].sum() == summary["scored"]
    off_diagonal = result.transitions.query("baseline_tier != scenario_tier")["deals"].sum()
    assert off_diagonal == summary["movers"] == len(result.movers)
    assert 0 < summary["kendall_tau_b"] < 1


def two_dim_card(w_a=0.4):
    return Scorecard.model_validate({
        "dimensions": {
            "a": {"label": {"en": "A", "zh": "甲"}, "column": "a", "weight": w_a, "points": {str(i): i for i in range(1, 6)}},
            "b": {"label": {"en": "B", "zh": "乙"}, "column": "b", "weight": 1 - w_a, "points": {str(i): i for i in range(1, 6)}},
        }
    })


def test_sweep_weights_rescale_the_others_by_hand():
    # a set to 0.6; b and c share the remaining 0.4 in their baseline proportion 5 : 2
    swept = S.sweep_weights({"a": 0.3, "b": 0.5, "c": 0.2}, "a", 0.6)
    assert swept == pytest.approx({"a": 0.6, "b": 0.4 * 5 / 7, "c": 0.4 * 2 / 7})
    assert S.sweep_weights({"a": 0.3, "b": 0.5, "c": 0.2}, "c", 0.0) == pytest.approx({"a": 0.375, "b": 0.625, "c": 0.0})


def test_sweep_counts_equal_scoring_with_the_swept_weights(card, open_deals):
    """The sweep's closed-form scores give the tiers that scoring each deal with the swept weights gives."""
    from funnelkit.analyses.scorecard import score_deals

    grid = [0.0, 0.15, 0.3, 0.55, 1.0]
    counts, _ = S.weight_sweep(open_deals, card, "amount", grid=grid)
    scored_at_all = score_deals(open_deals, card)["score"].notna()  # deals the sweep can score
    for w in grid:
        direct = score_deals(open_deals[scored_at_all.to_numpy()], card, weights=S.sweep_weights(card.weights(), "amount", w))
        want = direct["tier"].value_counts().reindex(["high", "medium", "low"], fill_value=0)
        got = counts[counts["weight"] == w].set_index("tier")["deals"].reindex(["high", "medium", "low"])
        assert got.tolist() == want.tolist(), w


def test_tipping_weights_by_hand():
    """Weights a = 0.4, b = 0.6. Score(w_a = w) = 20·(w·x_a + (1−w)·x_b).
    (4, 2): 40 + 40w = 56 (low) now; reaches 60 at w = 0.5 → medium (80 only at w = 1).
    (1, 5): 100 − 80w = 68 (medium); 80 at w = 0.25 (high below), 60 at w = 0.5 (low above); 0.5 is nearer.
    (3, 3): 60 whatever the weight: no tipping point."""
    deals = pd.DataFrame({"deal_id": ["P", "Q", "R"], "a": ["4", "1", "3"], "b": ["2", "5", "3"]})
    counts, tipping = S.weight_sweep(deals, two_dim_card(), "a", grid=[0, 0.25, 0.5, 1])
    tip = tipping.set_index("deal_id")
    assert tip.loc["P", "tier_now"] == "low" and tip.loc["P", "tipping_weight"] == pytest.approx(0.5)
    assert tip.loc["P", "tier_after"] == "medium"
    assert tip.loc["Q", "tier_now"] == "medium" and tip.loc["Q", "tipping_weight"] == pytest.approx(0.5)
    assert tip.loc["Q", "tier_after"] == "low"
    assert np.isnan(tip.loc["R", "tipping_weight"]) and pd.isna(tip.loc["R", "tier_after"])
    at = counts.pivot(index="weight", columns="tier", values="deals")
    # w = 0: P 40 low, Q 100 high, R 60 medium; w = 1: P 80 high, Q 20 low, R 60 medium
    assert at.loc[0.0].to_dict() == {"high": 1, "medium": 1, "low": 1}
    assert at.loc[0.25].to_dict() == {"high": 1, "medium": 1, "low": 1}  # Q at exactly 80 is high
    assert at.loc[0.5].to_dict() == {"high": 0, "medium": 3, "low": 0}  # P at 60, Q at 60


def test_auc_equals_pairwise_count():
    scores = np.array([10, 20, 20, 30, 40, 15, 25])
    won = np.array([0, 1, 0, 1, 1, 0, 0], dtype=bool)
    pairs = [(p, n) for p, n in itertools.product(scores[won], scores[~won])]
    direct = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert S.auc(scores, won) == pytest.approx(direct)
    assert S._auc_fast(scores, won) == pytest.approx(direct)
    assert direct == pytest.approx((2.5 + 4 + 4) / 12)  # won 20 ties one 20 and beats 10, 15


def test_wilson_matches_scipy():
    from scipy.stats import binomtest

    ci = binomtest(7, 20).proportion_ci(method="wilson")
    assert S.wilson_interval(7, 20) == pytest.approx((ci.low, ci.high))


def test_monte_carlo_is_reproducible_and_centred(card, open_deals):
    a = S.weight_monte_carlo(open_deals, card, n=500, seed=7)
    b = S.weight_monte_carlo(open_deals, card, n=500, seed=7)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert not a.table.equals(S.weight_monte_carlo(open_deals, card, n=500, seed=8).table)
    assert np.allclose(a[["p_high", "p_medium", "p_low"]].sum(axis=1), 1.0)
    assert a.sd["amount"] == pytest.approx(0.05)  # sd derived for the largest weight
    assert S.concentration_for_sd({"a": 0.3, "b": 0.7}, 0.05) == pytest.approx(0.7 * 0.3 / 0.0025 - 1)


def test_backtest_on_sample(card, sample):
    result = S.backtest(sample.deals, card, ["competitive_position"], n_boot=200)
    base = result.auc.set_index("scenario").loc["baseline"]
    assert 0.5 < base["auc"] < 1 and base["auc_low"] < base["auc"] < base["auc_high"]
    assert not result.too_few
    high = result.tiers.query("scenario == 'baseline' and tier == 'high'").iloc[0]
    assert high["lift"] > 1
    small = S.backtest(sample.deals.head(100), card, n_boot=50)
    assert small.too_few and small.min_class == 40
    assert "too uncertain" in present.backtest_warning(small, present.load_text("en"))
    assert "不确定性太大" in present.backtest_warning(small, present.load_text("zh"))


def test_suggest_weights_recovers_planted_weights():
    rng = np.random.default_rng(42)
    n, true = 2000, np.array([0.5, 0.3, 0.2])
    points = rng.integers(1, 6, size=(n, 3))
    won = rng.random(n) < special.expit(-9 + 3 * points @ true)
    dims = {k: {"label": {"en": k, "zh": k}, "column": k, "weight": w, "points": {str(i): i for i in range(1, 6)}}
            for k, w in zip("xyz", [0.4, 0.4, 0.2])}
    card = Scorecard.model_validate({"dimensions": dims})
    deals = pd.DataFrame({"deal_id": range(n), "status": np.where(won, "won", "lost"),
                          **{k: points[:, i].astype(str) for i, k in enumerate("xyz")}})
    result = S.suggest_weights(deals, card, n_boot=30, seed=1)
    error = np.abs(result.weights["suggested"].to_numpy() - true)
    assert error.max() < 0.1, result.weights
    assert result.weights["suggested"].sum() == pytest.approx(1.0)
    assert (result.weights["low"] <= result.weights["suggested"] + 1e-9).all()
