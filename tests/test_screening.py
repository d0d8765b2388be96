"""Opportunity screening: each criterion met / not met / unknown, K of 4, the urgency window, Chinese."""
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.presentation import present
from funnelkit.analyses.screening import MET, NOT_MET, UNKNOWN, failing_criteria, load_screening, screen_opportunities

AS_OF = pd.Timestamp("2024-06-30")


def deal(**overrides):
    base = {"deal_id": "A", "status": "open", "need_fit": "high", "decision_maker_engaged": True,
            "budget_confirmed": True, "expected_start": pd.Timestamp("2024-08-01"), "competitive_position": "advantage"}
    return pd.DataFrame([base | overrides])


def screen(df, rules=None, language="en"):
    return screen_opportunities(df, rules or load_screening(), AS_OF, language)


@pytest.mark.parametrize(
    "criterion, overrides, state",
    [
        ("need_fit", {}, MET), ("need_fit", {"need_fit": "medium"}, NOT_MET), ("need_fit", {"need_fit": None}, UNKNOWN),
        ("decision_chain", {}, MET), ("decision_chain", {"decision_maker_engaged": False}, NOT_MET),
        ("decision_chain", {"decision_maker_engaged": None}, UNKNOWN),
        ("budget_urgency", {}, MET), ("budget_urgency", {"budget_confirmed": False}, NOT_MET),
        ("budget_urgency", {"budget_confirmed": None}, UNKNOWN),
        ("budget_urgency", {"expected_start": None}, UNKNOWN),
        # a known "no" decides even when the other field is missing
        ("budget_urgency", {"budget_confirmed": False, "expected_start": None}, NOT_MET),
        ("budget_urgency", {"expected_start": pd.Timestamp("2024-12-31")}, NOT_MET),
        ("competitive_barrier", {}, MET), ("competitive_barrier", {"competitive_position": "parity"}, NOT_MET),
        ("competitive_barrier", {"competitive_position": None}, UNKNOWN),
    ],
)
def test_each_criterion(criterion, overrides, state):
    assert screen(deal(**overrides)).iloc[0][criterion] == state


@pytest.mark.parametrize(
    "start, state",
    [("2024-09-28", MET), ("2024-09-29", NOT_MET), ("2024-04-01", MET), ("2024-03-31", NOT_MET), ("2024-06-30", MET)],
)
def test_urgency_window_either_side_of_as_of(start, state):
    # within 90 days of 30 June 2024: 2 April … 28 September (inclusive), before or after as_of
    start = pd.Timestamp(start)
    expected = MET if abs((start - AS_OF).days) <= 90 else NOT_MET
    assert expected == state
    assert screen(deal(expected_start=start)).iloc[0]["budget_urgency"] == state


def test_k_of_4_at_the_boundary():
    three = screen(deal(competitive_position="parity")).iloc[0]
    assert three["met_count"] == 3 and three["is_opportunity"]
    two = screen(deal(competitive_position="parity", need_fit="low")).iloc[0]
    assert two["met_count"] == 2 and not two["is_opportunity"]
    # two met and two unknown: not an opportunity point yet, and unknown is not counted as a miss
    unsure = screen(deal(competitive_position=None, need_fit=None)).iloc[0]
    assert (unsure["met_count"], unsure["unknown_count"], unsure["is_opportunity"]) == (2, 2, False)
    result = screen(deal(competitive_position=None, need_fit=None))
    assert present.screen_reasons(result, present.load_text("en")).iloc[0] == \
        "Not yet (2/4); meets: Decision chain, Budget and urgency; unknown: Need fit, Competitive barrier"


def test_rules_can_be_switched_off_and_changed(tmp_path):
    path = tmp_path / "screening.yaml"
    path.write_text("""
min_criteria: 1
criteria:
  need_fit:
    label: {en: Need fit, zh: 需求匹配度}
    all_of: [{column: need_fit, one_of: [high, medium]}]
  competitive_barrier:
    label: {en: Competitive barrier, zh: 竞争壁垒}
    enabled: false
    all_of: [{column: competitive_position, equals: advantage}]
""", encoding="utf-8")
    rules = load_screening(path)
    row = screen(deal(need_fit="medium", competitive_position="parity"), rules).iloc[0]
    assert row["need_fit"] == MET and "competitive_barrier" not in row and row["is_opportunity"]
    path.write_text(path.read_text().replace("min_criteria: 1", "min_criteria: 2"), encoding="utf-8")
    with pytest.raises(fk.ConfigError, match="min_criteria is 2 but only 1 criteria are enabled"):
        load_screening(path)


def test_chinese_values_are_accepted_by_the_loader(config):
    from conftest import make_tables

    d, e = make_tables(
        [{"deal_id": "Z", "status": "open", "need_fit": "高", "decision_maker_engaged": "是", "budget_confirmed": "否",
          "expected_start": "2024-07-15", "competitive_position": "优势", "strategic_value": "行业标杆",
          "follow_up_cost": " 低 "}],
        [("Z", "潜在客户", "2024-06-01")],
    )
    data = fk.validate(d, e, config, as_of=pd.Timestamp("2024-07-01"))
    row = data.deals.iloc[0]
    assert (row["need_fit"], row["decision_maker_engaged"], row["budget_confirmed"]) == ("high", True, False)
    assert (row["competitive_position"], row["strategic_value"], row["follow_up_cost"]) == ("advantage", "benchmark", "low")
    screened = screen(data.deals, language="zh")
    result = screened.iloc[0]
    assert result["budget_urgency"] == NOT_MET and result["is_opportunity"]
    assert present.screen_reasons(screened, present.load_text("zh")).iloc[0] == \
        "机会点（3/4）；满足：需求匹配度、决策链清晰度、竞争壁垒；未满足：预算与紧迫性"


def test_unrecognised_value_is_missing_and_noted(config):
    from conftest import make_tables

    d, e = make_tables([{"deal_id": "Z", "status": "open", "need_fit": "very"}], [("Z", "leads", "2024-06-01")])
    data = fk.validate(d, e, config, as_of=pd.Timestamp("2024-07-01"))
    assert pd.isna(data.deals.iloc[0]["need_fit"])
    assert data.notes == ["need_fit: 1 value(s) not recognised ('very'); treated as missing"]


def test_sample_screen_counts(sample, config):
    screened = screen(fk.open_deals(sample, config))
    table = failing_criteria(screened)
    assert len(screened) == 191
    assert table[[MET, NOT_MET, UNKNOWN]].sum(axis=1).eq(191).all()
    assert screened["is_opportunity"].sum() == (screened["met_count"] >= 3).sum() > 0
