"""Issue 13 A: one conversion story. Hand-worked checks of the maturing rule, the pp formatter, the
step labels, window labels, the rep's period-vs-trailing figures and the weights recommendation."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import make_data

import funnelkit as fk
from funnelkit.presentation import present, story
from funnelkit.analyses.funnel import maturing_steps
from funnelkit.periods import parse_period, trailing_window
from funnelkit.analyses.recommend import recommend_weights
from funnelkit.analyses.rep_periods import rep_period_figures

EN, ZH = present.load_text("en"), present.load_text("zh")


def test_maturing_rule_by_hand():
    # step s matures while open_at[s] > half of reached[s]; exactly half is a rate; the final stage has no step
    reached = [10, 6, 2, 2, 1]
    open_at = [1, 4, 1, 2, 1]
    assert maturing_steps(reached, open_at).tolist() == [False, True, False, True, False]
    assert maturing_steps([0, 0], [0, 0]).tolist() == [False, False]  # nobody reached it: no rate, not maturing


@pytest.fixture(scope="module")
def march(config):
    """Team T. R1: A leads → prospects (open in prospects), B leads (lost in March);
    R2: C leads → prospects → opportunities (open), D leads → prospects (lost in March).
    R1 won E in February (entered in January)."""
    return make_data(
        [{"deal_id": "A", "status": "open", "rep": "R1"},
         {"deal_id": "B", "status": "lost", "rep": "R1", "closed_at": "2024-03-10", "lost_reason": "price"},
         {"deal_id": "C", "status": "open", "rep": "R2"},
         {"deal_id": "D", "status": "lost", "rep": "R2", "closed_at": "2024-03-12", "lost_reason": "price"},
         {"deal_id": "E", "status": "won", "rep": "R1", "closed_at": "2024-02-20"}],
        [("A", "leads", "2024-03-01"), ("A", "prospects", "2024-03-05"), ("B", "leads", "2024-03-02"),
         ("C", "leads", "2024-03-03"), ("C", "prospects", "2024-03-06"), ("C", "opportunities", "2024-03-09"),
         ("D", "leads", "2024-03-04"), ("D", "prospects", "2024-03-07"),
         ("E", "leads", "2024-01-05"), ("E", "prospects", "2024-01-10"), ("E", "opportunities", "2024-01-20"),
         ("E", "negotiation", "2024-02-01"), ("E", "customers", "2024-02-20")],
        config, as_of="2024-04-01")


def test_cohort_funnel_flags_maturing_steps_and_win_rate(march, config):
    funnel = fk.cohort_funnel(march, config, "2024-03", team="T", rep="R1")
    # R1's March cohort: A, B reached leads; A reached prospects and is open there (1 of 1) → maturing.
    assert funnel["reached"].tolist() == [2, 1, 0, 0, 0]
    assert funnel["maturing"].tolist() == [False, True, False, False, False]
    assert funnel["next_stage"].tolist()[:2] == ["prospects", "opportunities"]
    assert funnel.open_deals == 1 and not funnel.win_maturing  # 1 open of 2 is not most of the cohort
    team = fk.cohort_funnel(march, config, "2024-03", team="T")
    # A, B, C, D: open A, C (2 of 4): the win rate is a rate, 0 of 4
    assert team.open_deals == 2 and not team.win_maturing
    assert fk.cohort_funnel(march, config, "2024-03", team="T", rep="R2").win_maturing is False  # C open, D lost
    jan = fk.cohort_funnel(march, config, "2024-01", team="T")
    assert jan.cohort_size == 1 and not jan.win_maturing and jan["maturing"].sum() == 0


def test_pp_formatter():
    assert present.fmt_pp(-0.082) == "−8.2 pp"
    assert present.fmt_pp(0.053) == "+5.3 pp"
    assert present.fmt_pp(0.0) == "0.0 pp"
    assert present.fmt_pp(-0.0004) == "0.0 pp"  # rounds to zero: no sign
    assert present.fmt_pp(np.nan) == "–"
    assert present.fmt_pp(0.6 - 0.5, ZH("unit_pp")) == "+10.0 百分点"


def test_pp_formatter_is_used_for_differences_in_tables(march, config):
    review = fk.period_review(march, config, "2024-03", team="T")
    html = present.styled(story.review_table(review, EN), EN, pct=("rate_this", "rate_previous"),
                          pp=("difference",)).to_html()
    # leads → prospects: March exits A, B, C, D: 3 moved on of 4 (75%); February: none → no difference
    assert "Leads → Prospects" in html and "75.0%" in html
    broken = present.styled(story.review_table(review, EN), EN, pct=("rate_this", "rate_previous", "difference"))
    assert " pp" not in broken.to_html()  # the check above can fail: a difference styled as % has no pp


def test_step_labels_and_rates():
    assert story.step_label(EN, "Prospects", "Opportunities") == "Prospects → Opportunities"
    assert story.step_label(ZH, "意向客户", "商机客户") == "意向客户 → 商机客户"
    assert story.step_rate(EN, 0.0, maturing=True, open_n=2) == "maturing (2 open)"
    assert story.step_rate(ZH, 0.0, maturing=True, open_n=2) == "尚未定型（2 个未结束）"
    assert story.step_rate(EN, 0.25) == "25.0%"
    assert story.step_rate(EN, np.nan) == "no deal reached it yet"


def test_cohort_table_shows_maturing_not_zero(march, config):
    funnel = fk.cohort_funnel(march, config, "2024-03", team="T", rep="R1")
    funnel = type(funnel)(funnel.table.assign(label=lambda t: t["stage"].str.title(),
                                              next_label=lambda t: t["next_stage"].str.title()),
                          funnel.period, funnel.as_of, funnel.cohort_size, funnel.median_age_days, funnel.open_deals)
    shown = story.cohort_table(funnel, EN)
    assert shown["step"].tolist()[:2] == ["Leads → Prospects", "Prospects → Opportunities"]
    # Leads → Prospects: A moved on, B lost: 2 decided, under 10 → its counts, not "50.0%" (fixes4)
    few = "1 of 2 moved on (too few decided)"
    assert shown["cohort_step_rate"].tolist()[:3] == [few, "maturing (1 open)", "no deal reached it yet"]
    chart = story.funnel_chart_frame(funnel, EN)
    assert chart["step_text"].tolist()[:3] == ["", f"Leads → Prospects: {few}", "Prospects → Opportunities: maturing (1 open)"]
    # the same step with enough decided deals is a rate
    enough = type(funnel)(funnel.table.assign(few_decided=False), funnel.period, funnel.as_of, funnel.cohort_size,
                          funnel.median_age_days, funnel.open_deals)
    assert story.cohort_table(enough, EN)["cohort_step_rate"].iloc[0] == "50.0%"
    assert story.funnel_chart_frame(enough, EN)["step_text"].iloc[1] == "Leads → Prospects: 50.0%"


def test_table1_keeps_the_template_columns_and_labels_each_step(march, config):
    table = fk.period_table(march, config, "2024-03", team="T")
    shown = story.table1(table, EN)
    assert shown.columns.tolist() == ["stage", "t1_count", "t1_period", "t1_new", "t1_lost", "t1_conversion",
                                      "t1_main_loss_reasons"]
    assert shown["t1_period"].unique().tolist() == ["2024-03"]
    # exits from leads in March: A, C, D moved on, B lost → 75%; from prospects: C moved on, D lost → 50%;
    # 4 and 2 exits, under 10: the counts stand instead of the rates (fixes4)
    assert table["conversion"].tolist()[1:3] == [0.75, 0.5]
    assert shown["t1_conversion"].tolist()[:3] == ["", "Leads → Prospects: 3 of 4 moved on (too few decided)",
                                                   "Prospects → Opportunities: 1 of 2 moved on (too few decided)"]
    assert shown["t1_conversion"].iloc[4].endswith(EN("t1_no_exits"))  # nothing left negotiation in March
    for language in (EN, ZH):
        headers = [language.column(c) for c in shown.columns]
        assert len(set(headers)) == len(headers) and not any(h.startswith("t1_") for h in headers)


def test_cohort_headline_names_its_definition_and_table1(march, config):
    scope = fk.Scope.build(march, config, team="T")
    assert story.cohort_headline(fk.cohort_funnel_of(scope, "2024-02"), None, EN)[0] == EN("empty_cohort")
    funnel, table = fk.cohort_funnel_of(scope, "2024-Q1"), fk.period_table_of(scope, "2024-Q1")
    line, anchor = story.cohort_headline(funnel, table, EN)
    # Q1 cohort A, B, C, D, E: E won, B and D lost, A and C open; Table 1's customers in Q1: E.
    # 3 decided, under 10: the counts, not "20.0%" (fixes4)
    assert anchor == "funnel" and funnel.decided == 3 and funnel.win_few_decided
    assert line == ("Cohort win rate (deals that entered the funnel in 2024-Q1, followed to 2024-03-31): "
                    "too few decided for a rate — of 5 deals, 1 won, 2 lost and 2 are still open "
                    f"(median age {funnel.median_age_days:.0f} days); a rate needs 10 won or lost deals "
                    "(a later as-of date or a longer period). "
                    "Table 1 counts the 1 deal won during 2024-Q1, whenever it entered.")


def test_cohort_headline_says_maturing_when_most_are_open(config):
    data = make_data([{"deal_id": d, "status": "open"} for d in "ABC"] + [{"deal_id": "Z", "status": "lost",
                                                                          "closed_at": "2024-06-20"}],
                     [(d, "leads", "2024-06-0" + str(i + 1)) for i, d in enumerate("ABCZ")], config)
    funnel = fk.cohort_funnel(data, config, "2024-06")
    assert funnel.win_maturing  # 3 of 4 open
    line, _ = story.cohort_headline(funnel, None, EN)
    assert "maturing — 3 of 4 are still open" in line and "0.0%" not in line
    zh, _ = story.cohort_headline(funnel, None, ZH)
    assert "尚未定型" in zh


def test_window_labels_in_one_format():
    q2 = parse_period("2024-Q2")
    assert story.window_label(EN, q2, trailing_window(q2, 12)) == "12 months to 2024-Q2 (2023-07 – 2024-06)"
    assert story.window_label(ZH, q2, trailing_window(q2, 12)) == "截至 2024-Q2 的 12 个月（2023-07 – 2024-06）"
    assert story.window_label(EN, q2, trailing_window(q2, 0)) == "2024-Q2"
    june = parse_period("2024-06")
    assert story.window_label(EN, june, trailing_window(june, 3)) == "3 months to 2024-06 (2024-04 – 2024-06)"


def test_rep_period_figures_by_hand(march, config):
    scope = fk.Scope.build(march, config, team="T", rep="R1")
    figures = rep_period_figures(scope, "R1", "2024-03", window_months=3)
    win = figures.win.set_index(["window", "who"])
    # March: R1 closed B (lost) → 0 of 1; team closed B, D → 0 of 2.
    # Jan–Mar: R1 closed B, E (won Feb) → 1 of 2; team B, D, E → 1 of 3.
    assert (win.loc[("period", "rep"), "won"], win.loc[("period", "rep"), "closed"]) == (0, 1)
    assert (win.loc[("period", "team"), "won"], win.loc[("period", "team"), "closed"]) == (0, 2)
    assert win.loc[("trailing", "rep"), "win_rate"] == pytest.approx(1 / 2)
    assert win.loc[("trailing", "team"), "win_rate"] == pytest.approx(1 / 3)
    steps = figures.steps.set_index(["window", "who", "stage"])
    # March cohort of R1: leads 2 → prospects 1 (50%); prospects 1, open 1 → maturing
    assert steps.loc[("period", "rep", "leads"), "rate"] == pytest.approx(0.5)
    assert bool(steps.loc[("period", "rep", "prospects"), "maturing"])
    # Jan–Mar cohort of R1 adds E (won): leads 3 → prospects 2 → opportunities 1 → 1 → 1
    assert steps.loc[("trailing", "rep", "leads"), "reached"] == 3
    assert steps.loc[("trailing", "rep", "prospects"), "rate"] == pytest.approx(0.5)
    assert not steps.loc[("trailing", "rep", "prospects"), "maturing"]  # 1 open of 2 is not most
    assert figures.win[["window", "who"]].values.tolist() == [["period", "rep"], ["period", "team"],
                                                              ["trailing", "rep"], ["trailing", "team"]]


def test_team_overview_figures_with_rep_none(march, config):
    figures = rep_period_figures(fk.Scope.build(march, config, team="T"), None, "2024-03", window_months=3)
    assert figures.win["who"].unique().tolist() == ["team"]
    shown = story.rep_period_table(figures, {"leads": "Leads", "prospects": "Prospects", "opportunities": "Opportunities",
                                             "negotiation": "Negotiation", "customers": "Customers"}, EN)
    assert shown.columns.tolist() == ["measure", "Team, 2024-03", "Team, 3 months to 2024-03 (2024-01 – 2024-03)"]
    assert shown["measure"].tolist()[2:] == ["Leads → Prospects", "Prospects → Opportunities",
                                             "Opportunities → Negotiation", "Negotiation → Customers"]
    # team won 0 of 2 in March, 1 of 3 over Jan–Mar; the counts stand beside each rate
    assert shown.iloc[0, 1:].tolist() == ["0.0% (0 of 2)", "33.3% (1 of 3)"]
    # Leads → Prospects over Jan–Mar: A, B, C, D, E reached Leads, all but B reached Prospects:
    # 5 decided, under 10 → its counts (fixes4)
    assert shown.iloc[2, 2] == "4 of 5 moved on (too few decided)"
    zh = story.rep_period_table(figures, {}, ZH)
    assert zh.iloc[0, 1:].tolist() == ["0.0%（2 个中 0 个）", "33.3%（3 个中 1 个）"]


def backtest(rows, unavailable=None, too_few=False):
    auc = pd.DataFrame(rows, columns=["scenario", "auc", "diff_vs_baseline", "diff_low", "diff_high"])
    return SimpleNamespace(auc=auc, unavailable=unavailable, too_few=too_few)


def test_recommendation_rule_by_hand():
    base = ("baseline", 0.70, np.nan, np.nan, np.nan)
    # a: better beyond noise (+0.03, 0.01 to 0.05); b: larger but uncertain (+0.04, −0.01 to 0.09) → adopt a
    r = recommend_weights(backtest([base, ("a", 0.73, 0.03, 0.01, 0.05), ("b", 0.74, 0.04, -0.01, 0.09)]))
    assert (r.action, r.scenario, r.auc_difference) == ("adopt", "a", 0.03)
    # two beyond noise: the larger difference wins
    r = recommend_weights(backtest([base, ("a", 0.73, 0.03, 0.01, 0.05), ("c", 0.76, 0.06, 0.02, 0.10)]))
    assert (r.action, r.scenario) == ("adopt", "c")
    # none beyond noise: keep, quoting the best alternative
    r = recommend_weights(backtest([base, ("a", 0.71, 0.01, -0.02, 0.04), ("d", 0.65, -0.05, -0.08, -0.02)]))
    assert (r.action, r.scenario, r.compared, r.low, r.high) == ("keep", "baseline", "a", -0.02, 0.04)
    assert story.recommendation_sentence(r, {"a": "Scenario A"}, EN) == (
        "Keep the baseline weights: no alternative separates won from lost better "
        "(best: Scenario A, AUC difference +0.01, interval −0.02 to +0.04).")
    assert "保留基准权重" in story.recommendation_sentence(r, {"a": "情景A"}, ZH)
    # only the baseline: keep with nothing to compare; no AUC at all: unknown
    assert recommend_weights(backtest([base])).action == "keep"
    r = recommend_weights(backtest([("baseline", np.nan, np.nan, np.nan, np.nan)], unavailable="few_closed"))
    assert r.action == "unknown"
    assert story.recommendation_sentence(r, {}, EN).startswith("No recommendation yet")
    thin = recommend_weights(backtest([base, ("a", 0.71, 0.01, -0.02, 0.04)], too_few=True))
    assert story.recommendation_sentence(thin, {}, EN).endswith(EN("recommend_caution"))


def test_method_keys_exist_in_both_languages_and_body_has_no_method_names():
    for report, keys in story.METHODS.items():
        for key in keys + ("method_title",):
            assert EN(key) and ZH(key), (report, key)
    names = ("Kendall", "Jaccard", "Dirichlet", "Wilson", "Benjamini", "Fisher", "chi-square", "χ²", "log-rank",
             "Kaplan", "bootstrap", "Mann", "logistic regression", "beta-binomial")
    body = {k: v["en"] + " " + v["zh"] for k, v in EN.entries.items() if not k.startswith("method_")}
    offending = {k for k, v in body.items() for n in names if n.lower() in v.lower()}
    assert not offending, sorted(offending)


def test_step_bars_leave_maturing_rates_out():
    rates = pd.DataFrame({"stage": ["leads", "prospects"], "next_stage": ["prospects", "opportunities"],
                          "rep_rate": [0.5, 0.0], "team_rate": [0.6, 0.2], "rep_open": [0, 3],
                          "rep_maturing": [False, True], "team_open": [1, 1], "team_maturing": [False, False]})
    labels = {"leads": "Leads", "prospects": "Prospects", "opportunities": "Opportunities"}
    bars = story.step_bars(rates, labels, EN, "R1")
    assert bars.index.tolist() == ["Leads →\nProspects", "Prospects →\nOpportunities"]
    assert bars["Rep"].tolist()[0] == 0.5 and np.isnan(bars["Rep"].tolist()[1])  # maturing: no bar, not 0%
    assert bars["Team"].tolist() == [0.6, 0.2]
    assert story.step_bars(rates, labels, EN, None).columns.tolist() == ["Team"]
