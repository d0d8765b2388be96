"""Scorecard, follow-up plan and the score CLI against hand-worked values."""
import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.presentation import present
from funnelkit.runner.cli import main as cli
from funnelkit.config import ConfigError
from funnelkit.analyses.playbook import follow_up_plan, load_playbook
from funnelkit.analyses.scorecard import load_scorecard, score_deals


@pytest.fixture(scope="module")
def card():
    return load_scorecard()


def one_deal(**overrides):
    base = {"deal_id": "A", "status": "open", "amount": 200_000.0, "win_probability": 0.5,
            "strategic_value": "potential", "follow_up_cost": "medium", "payment_days": 45.0,
            "competitive_position": "parity"}
    return pd.DataFrame([base | overrides])


@pytest.mark.parametrize(
    "column, value, points",
    [
        ("amount", 1_000_000, 5), ("amount", 999_999.99, 4), ("amount", 500_000, 4), ("amount", 499_999, 3),
        ("amount", 100_000, 3), ("amount", 99_999, 2), ("amount", 50_000, 2), ("amount", 49_999.99, 1),
        ("amount", 0, 1),
        ("win_probability", 0.8, 5), ("win_probability", 0.799, 4), ("win_probability", 0.6, 4),
        ("win_probability", 0.599, 3), ("win_probability", 0.4, 3), ("win_probability", 0.399, 2),
        ("win_probability", 0.2, 2), ("win_probability", 0.199, 1), ("win_probability", 0.0, 1),
        ("strategic_value", "benchmark", 5), ("strategic_value", "potential", 3), ("strategic_value", "ordinary", 1),
        ("follow_up_cost", "low", 5), ("follow_up_cost", "medium", 3), ("follow_up_cost", "high", 1),
        ("payment_days", 30, 5), ("payment_days", 31, 3), ("payment_days", 60, 3), ("payment_days", 61, 1),
        ("payment_days", 0, 5),
    ],
)
def test_every_band_boundary(card, column, value, points):
    scored = score_deals(one_deal(**{column: value}), card)
    assert scored[f"points_{column}"].iloc[0] == points


def test_probability_given_in_percent_is_detected(card):
    deals = pd.concat([one_deal(win_probability=80), one_deal(deal_id="B", win_probability=59.9)])
    assert score_deals(deals, card)["points_win_probability"].tolist() == [5, 3]


def test_score_is_twenty_times_weighted_points(card):
    # points 3, 3, 3, 3, 3 → 20 × 3 = 60 → medium
    row = score_deals(one_deal(), card).iloc[0]
    assert row["score"] == pytest.approx(60.0) and row["tier"] == "medium"
    # 5, 5, 5, 1, 1 → 20 × (0.3·5 + 0.25·5 + 0.2·5 + 0.15·1 + 0.1·1) = 80 → exactly high
    row = score_deals(one_deal(amount=2e6, win_probability=0.9, strategic_value="benchmark",
                               follow_up_cost="high", payment_days=90), card).iloc[0]
    assert row["score"] == 80.0 and row["tier"] == "high"
    assert row["contribution_amount"] == pytest.approx(30.0)
    assert row["top_drivers"] == "amount:30; win_probability:25"
    assert present.drivers_words(row["top_drivers"], present.load_text("en")) == "Amount 30 · Win probability 25"
    assert present.drivers_words(row["top_drivers"], present.load_text("zh")) == "预计金额 30 · 成交概率 25"


def test_79_99_is_medium(card):
    # weights 0.9995 / 0.0005 on points 4 and 3: 20 × (3.998 + 0.0015) = 79.99
    weights = {k: 0.0 for k in card.dimensions} | {"amount": 0.9995, "win_probability": 0.0005}
    row = score_deals(one_deal(amount=500_000, win_probability=0.5), card, weights=weights).iloc[0]
    assert row["score"] == pytest.approx(79.99) and row["tier"] == "medium"
    weights = {k: 0.0 for k in card.dimensions} | {"amount": 1.0}
    assert score_deals(one_deal(amount=1e6), card, weights=weights).iloc[0]["tier"] == "high"


def test_missing_input_is_unscored_not_scored_as_one(card):
    row = score_deals(one_deal(strategic_value=None, payment_days=np.nan), card).iloc[0]
    assert np.isnan(row["score"]) and pd.isna(row["tier"])
    assert row["unscored_reason"] == "missing:strategic_value; missing:payment_days"
    # a dimension with weight 0 in the baseline is not needed
    assert score_deals(one_deal(competitive_position=None), card).iloc[0]["score"] == pytest.approx(60)


def test_scenario_adding_competitive_position(card):
    weights = card.weights("competitive_position")
    assert weights["competitive_position"] == 0.30
    assert weights["amount"] == pytest.approx(0.30 * 0.7) and weights["payment_days"] == pytest.approx(0.10 * 0.7)
    assert sum(weights.values()) == pytest.approx(1.0)
    # baseline 60 (all 3s); with advantage (5) at 30%: 20 × (0.7·3 + 0.3·5) = 72
    row = score_deals(one_deal(competitive_position="advantage"), card, scenario="competitive_position").iloc[0]
    assert row["score"] == pytest.approx(72.0)
    assert score_deals(one_deal(competitive_position=None), card, scenario="competitive_position")["score"].isna().all()


def write_card(tmp_path, scenario_yaml: str, baseline_weight: float = 0.5):
    path = tmp_path / "scorecard.yaml"
    path.write_text(f"""
dimensions:
  amount:
    label: {{en: Amount, zh: 金额}}
    column: amount
    weight: {baseline_weight}
    bands: [{{points: 5, at_least: 100}}, {{points: 1}}]
  cost:
    label: {{en: Cost, zh: 成本}}
    column: follow_up_cost
    weight: 0.5
    points: {{low: 5, high: 1}}
scenarios:
{scenario_yaml}
""", encoding="utf-8")
    return path


def test_bad_weights_are_errors_naming_the_scenario(tmp_path):
    with pytest.raises(ConfigError, match=r"scenario 'heavy': weights sum to 1\.2, not 1"):
        load_scorecard(write_card(tmp_path, "  heavy: {weights: {amount: 0.7, cost: 0.5}}"))
    card = load_scorecard(write_card(tmp_path, "  heavy: {weights: {amount: 0.7, cost: 0.5}, normalize: true}"))
    assert card.weights("heavy")["amount"] == pytest.approx(0.7 / 1.2)
    with pytest.raises(ConfigError, match="baseline weights sum to 0.9"):
        load_scorecard(write_card(tmp_path, "  ok: {weights: {amount: 0.5, cost: 0.5}}", baseline_weight=0.4))
    with pytest.raises(ConfigError, match="unknown dimension"):
        load_scorecard(write_card(tmp_path, "  odd: {set: {colour: 0.2}}"))


def test_relative_mode_tiers_by_quantile(card):
    deals = pd.concat([one_deal(deal_id=str(i), amount=a) for i, a in
                       enumerate([10_000, 60_000, 200_000, 600_000, 2_000_000] * 2)], ignore_index=True)
    scored = score_deals(deals, card, mode="relative")
    # scores 6·points + 42 = 48, 54, 60, 66, 72, twice each. Top 20%: the two 72s are high. The top
    # 50% cut falls inside the tie at 60 (5th of 10); ties share a tier, so both 60s join medium.
    assert scored.groupby("amount")["tier"].first().to_dict() == {
        10_000: "low", 60_000: "low", 200_000: "medium", 600_000: "medium", 2_000_000: "high"}


def plan_for(last, tier_amount, as_of):
    # score_deals keeps the stage and the last follow-up, which the plan needs
    scored = score_deals(one_deal(amount=tier_amount, stage="negotiation",
                                  last_follow_up_at=pd.Timestamp(last) if last else pd.NaT), load_scorecard())
    return follow_up_plan(scored, load_playbook(), as_of).iloc[0]


def test_follow_up_dates_across_month_ends():
    # medium: every 3 days — 30 Jan + 3 days = 2 Feb (leap year)
    row = plan_for("2024-01-30 16:00", 200_000, "2024-02-05")
    assert row["tier"] == "medium" and row["next_due"] == pd.Timestamp("2024-02-02") and row["days_overdue"] == 3
    assert row["owner"] == "Account rep"
    assert "Three offers" in row["stage_actions"]
    # low: every calendar month — 31 Jan + 1 month = 29 Feb 2024
    row = plan_for("2024-01-31", 10_000, "2024-02-29")
    assert row["tier"] == "low" and row["next_due"] == pd.Timestamp("2024-02-29") and row["days_overdue"] == 0
    row = plan_for("2023-12-31", 10_000, "2024-02-01")
    assert row["next_due"] == pd.Timestamp("2024-01-31") and row["days_overdue"] == 1
    # never followed up: due on the as-of date
    row = plan_for(None, 10_000, "2024-03-01")
    assert row["next_due"] == pd.Timestamp("2024-03-01") and not row["overdue"]


def test_score_cli_on_sample(tmp_path, capsys):
    out = tmp_path / "plan.xlsx"
    assert cli(["score", "sample", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "191 open deals at 2024-06-30" in printed and "unscored" in printed
    sheets = pd.read_excel(out, sheet_name=None)
    assert "All" in sheets and "Li Na" in sheets and len(sheets) == 16
    assert sum(len(s) for name, s in sheets.items() if name != "All") == len(sheets["All"])
    assert cli(["score", "sample", "--scenario", "no_such"]) == 2
    assert cli(["score", "sample", "--screened-only", "--out", str(tmp_path / "plan.csv")]) == 0
    assert "screened opportunity points" in capsys.readouterr().out
