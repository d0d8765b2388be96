"""The opportunities report's pieces: the follow-up list (order, total, workbook columns), tier
shares, open value by stage and tier, tier badges."""
from __future__ import annotations

import re
import numpy as np
import pandas as pd
import pytest

from funnelkit.analyses import opportunities

from funnelkit.presentation import plots
from funnelkit.presentation import present_opportunities as po
from funnelkit.runner.cli import main as cli
from funnelkit.analyses.playbook import follow_up_plan, load_playbook
from funnelkit.presentation.present import load_text
from funnelkit.analyses.scorecard import tier_summary

AS_OF = pd.Timestamp("2024-06-30")


def scored_rows(rows: list[tuple]) -> pd.DataFrame:
    """(deal_id, tier, amount, stage, last follow-up) → the columns follow_up_plan reads."""
    frame = pd.DataFrame(rows, columns=["deal_id", "tier", "amount", "stage", "last_follow_up_at"])
    return frame.assign(status="open", score=50.0, customer="C", team="T", rep="R",
                        last_follow_up_at=pd.to_datetime(frame["last_follow_up_at"]))


# medium = every 3 days, high = every 7 days, low = every month (params/playbook.yaml)
PLAN_ROWS = [("a", "medium", 100.0, "prospects", "2024-06-20"),   # due 06-23: 7 days overdue
             ("b", "high", 900.0, "negotiation", "2024-06-16"),   # due 06-23: 7 days overdue, larger amount
             ("c", "low", 5000.0, "leads", "2024-06-25"),         # due 07-25: not overdue
             ("d", "medium", np.nan, "opportunities", "2024-06-17"),  # due 06-20: 10 days overdue, no amount
             ("e", "medium", 50.0, "opportunities", "2024-06-17")]    # due 06-20: 10 days overdue


def test_follow_up_plan_sorted_by_days_overdue_then_amount():
    plan = follow_up_plan(scored_rows(PLAN_ROWS), load_playbook(), AS_OF)
    assert plan["deal_id"].tolist() == ["e", "d", "b", "a", "c"]  # 10 (amount 50, unknown last), 7 (900, 100), 0
    assert plan["days_overdue"].tolist() == [10, 10, 7, 7, 0]


def test_follow_up_total_counts_all_rows_and_known_amounts():
    plan = follow_up_plan(scored_rows(PLAN_ROWS), load_playbook(), AS_OF)
    assert opportunities.follow_up_total(plan) == {"deals": 5, "amount": 6050.0, "overdue": 4}


def test_follow_up_table_words_and_next_action():
    text = load_text("en")
    plan = follow_up_plan(scored_rows(PLAN_ROWS), load_playbook(), AS_OF)
    table = po.follow_up_table(plan, text, {"negotiation": "Negotiation", "leads": "Leads"})
    assert table.columns.tolist() == po.FOLLOW_UP_COLUMNS
    b = table.set_index("deal_id").loc["b"]
    assert (b["stage"], b["tier"], b["cadence"]) == ("Negotiation", text("tier_high"), text("cadence_days", n=7))
    assert b["next_action"] == load_playbook().stages["negotiation"]["en"]
    # leads has no stage action in the playbook: the tier's action, not an empty cell
    assert table.set_index("deal_id").loc["c", "next_action"] == load_playbook().tiers["low"].actions["en"]


def test_follow_up_list_has_total_row_and_badges_and_escapes():
    text = load_text("en")
    rows = PLAN_ROWS + [("<script>x</script>", "high", 10.0, "leads", "2024-06-29")]
    table = po.follow_up_table(follow_up_plan(scored_rows(rows), load_playbook(), AS_OF), text, {})
    page, note = po.follow_up_styled(table, text, "CNY", limit=3)
    html = page.to_html()
    assert note is not None and "3 of 6" in note.data  # cut rows are said, not dropped silently
    assert text("fu_total", deals=6) in html and "¥6,060" in html  # the total is over all 6 rows
    assert re.search(rf'class="[^"]*fk-total[^"]*" >{text("fu_total", deals=6)}<', html)  # kept last when sorted
    assert '<span class="fk-badge fk-tier-medium">Medium</span>' in html
    assert "<script>x" not in html


def test_plan_workbook_has_the_lists_columns(tmp_path):
    out = tmp_path / "plan.xlsx"
    assert cli(["score", "sample", "--out", str(out)]) == 0
    text = load_text("en")
    workbook = pd.read_excel(out, sheet_name="All")
    shown = [text.column(c) for c in po.FOLLOW_UP_COLUMNS]
    assert workbook.columns.tolist() == shown
    days = workbook[text.column("days_overdue")]
    assert days.is_monotonic_decreasing  # the list's order
    ties = workbook[days == days.max()][text.column("amount")].dropna()
    assert ties.is_monotonic_decreasing


def test_tier_summary_shares_of_deals_and_value():
    scored = pd.DataFrame({"tier": ["high", "medium", "medium", "low", None],
                           "amount": [600.0, 100.0, 100.0, 200.0, np.nan]})
    t = tier_summary(scored).set_index("tier")
    assert t["deals"].tolist() == [1, 2, 1, 1]
    assert t["deal_share"].tolist() == pytest.approx([0.2, 0.4, 0.2, 0.2])
    # value: 600 / 1000, 200 / 1000, 200 / 1000; the unscored deal has no amount
    assert t["value_share"].tolist() == pytest.approx([0.6, 0.2, 0.2, 0.0])
    assert np.isnan(t.loc["unscored", "amount"])


def test_tier_table_labels_both_shares():
    text = load_text("zh")
    html = po.tier_table(tier_summary(pd.DataFrame({"tier": ["high"], "amount": [1.0]})), text, "CNY").to_html()
    assert text.column("deal_share") in html and text.column("value_share") in html
    assert 'fk-tier-high">高<' in html


def test_value_by_stage_tier():
    scored = pd.DataFrame({"stage": ["leads", "leads", "negotiation", "negotiation", "prospects"],
                           "tier": ["high", "high", "low", None, "medium"],
                           "amount": [100.0, 50.0, 30.0, np.nan, 20.0]})
    t = opportunities.value_by_stage_tier(scored, ["leads", "prospects", "opportunities", "negotiation"])
    assert t.index.tolist() == ["leads", "prospects", "negotiation"]
    assert t.columns.tolist() == ["high", "medium", "low", "unscored"]
    assert t.loc["leads"].tolist() == [150.0, 0.0, 0.0, 0.0]
    assert t.loc["negotiation", "low"] == 30.0
    assert np.isnan(t.loc["negotiation", "unscored"])  # a deal without amount: unknown, not 0
    fig = plots.stacked_value_bars(t.fillna(0), "Open value", {"x": "Stage", "y": "¥ millions"},
                                   {"high": "High", "medium": "Medium", "low": "Low", "unscored": "Unscored"})
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Stage" and ax.get_ylabel() == "¥ millions"
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # legend right of the plot
    assert [t.get_text() for t in ax.texts] == ["0.0", "0.0", "0.0"]  # totals in millions on each bar
