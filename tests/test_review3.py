"""review3: a CRM export unlike the sample, read as a sales director would read its reports.

tests/data/review3/ (written by make_review3.py): `;`-separated files with Chinese headers,
day-first dates with `/`, amounts such as "¥877,000.00", blank cells, bad rows, hostile customer
names, a team that never lost a deal (华南 South) and one whose deals are all closed (West & Co);
its project folder has the five stages, the preset and the report matrix. The tests check the
quarantine by hand, the wording and punctuation a Chinese page needs, the forecast warnings for a
team without losses, and, in Chromium, that the index's timestamps and periods do not wrap.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.analyses.executive import team_figures
from funnelkit.analyses.forecast import forecast_of, load_forecast_settings
from funnelkit.config import PROJECT_ENV
from funnelkit.presentation import story
from funnelkit.presentation.pages import render_index
from funnelkit.presentation.present import load_text, quality_section, rep_flag_findings
from funnelkit.presentation.present_executive import index_figures, index_words
from funnelkit.presentation.present_opportunities import forecast_sentences

from conftest import visible_text

FOLDER = Path(__file__).parent / "data" / "review3"
PROJECT = FOLDER / "project"
AS_OF = "2024-12-31"


@pytest.fixture
def own(monkeypatch) -> tuple[fk.Dataset, fk.config.FunnelConfig]:
    monkeypatch.setenv(PROJECT_ENV, str(PROJECT))
    config = fk.load_config()
    return fk.load_data(FOLDER, config=config, preset="review3"), config


def test_every_bad_row_is_quarantined_with_its_reason(own):
    """380 deal rows: 373 good + BAD-AMOUNT ('abc'), BAD-NEGATIVE ('-¥5,000.00'), BAD-DATE
    ('31/02/2024'), BAD-STATUS (blank) and a second CN-0002 (both copies go) → 374 analysed.
    1,160 event rows: CN-0002's 4 events and the duplicate's 1 … (5, with its deal), an unknown
    stage ('未知阶段'), a deal not in the deals file (GHOST-1), a day 45 of month 13 → 1,152."""
    data, config = own
    assert data.rows_in == {"deals": 380, "stage_events": 1160}
    assert (len(data.deals), len(data.events)) == (374, 1152)
    q = data.quarantine
    deals = q[q["table"] == "deals"].groupby("deal_id")["reason"].first().to_dict()
    assert deals == {"BAD-AMOUNT": "not_a_number:amount", "BAD-NEGATIVE": "negative:amount",
                     "BAD-DATE": "not_a_date:created_at", "BAD-STATUS": "missing:status",
                     "CN-0002": "duplicated:deal_id"}
    events = q[q["table"] == "stage_events"]["reason"].value_counts().to_dict()
    assert events == {"quarantined_deal": 5, "unknown_stage": 1, "unknown_deal": 1, "not_a_date:entered_at": 1}
    amounts = data.deals.set_index("deal_id")["amount"]
    assert amounts["CN-0001"] == 877000.0  # "¥877,000.00"
    assert data.deals.set_index("deal_id").loc["CN-0001", "created_at"] == pd.Timestamp("2024-05-02 17:15")
    by_team = data.deals.groupby("team")["status"].value_counts().unstack(fill_value=0)
    assert by_team.loc["华南 South", "lost"] == 0 and by_team.loc["West & Co", "open"] == 0


def test_quality_examples_show_every_reason_and_file_names(own):
    """Ten examples for nine reasons: each reason's first row comes before a second row of any
    reason, so the unknown stage and the unknown deal are not hidden behind CN-0002's events; files
    are named as exported, without the analyst's folders."""
    data, _ = own
    text = load_text("en")
    examples = quality_section(data, text)[2].data
    assert len(examples) == 10
    assert examples.iloc[:9]["Reason"].nunique() == 9
    assert {"GHOST-1", "BAD-STATUS", "CN-0004"} <= set(examples["Deal"])
    assert set(examples["File"]) == {"opportunities.csv", "stage_history.csv"}


def test_rep_flag_sentence_in_chinese_punctuation(config, sample):
    """The sample's North team has a rep below the 99.8% limits (Zhao Lei): on a Chinese page the
    item uses full-width brackets, colon and commas; in English, plain ones and no "n = "."""
    summary = fk.rep_summary(sample, config, "2024-Q2", team="North")
    flagged = summary[summary["flag"] != "within"]
    assert len(flagged)
    zh = rep_flag_findings(summary, load_text("zh"))[0][0]
    for r in flagged.itertuples():
        side = "低于" if r.flag == "below" else "高于"
        assert f"{r.rep}（{side}团队：已关闭 {int(r.closed):,} 个商机，赢单率 {r.win_rate:.1%}）" in zh
    assert not re.search(r"[(),]", zh.replace(", ", "").replace("Zhao Lei", "")), zh
    en = rep_flag_findings(summary, load_text("en"))[0][0]
    assert f"{flagged.iloc[0]['rep']} ({flagged.iloc[0]['flag']} the team: win rate" in en and "n = " not in en


def test_table1_loss_reasons_follow_the_report_language(own):
    """Table 1's main loss reasons are (reason, deals) pairs; a Chinese page writes them
    "选择了竞争对手（4）；价格太高（2）", an English one "… (4); … (2)"."""
    data, config = own
    table = fk.period_table(data, config, "2024-Q4", team="North Star", as_of=AS_OF)
    pairs = table["main_loss_reasons"]
    assert all(isinstance(n, int) for row in pairs for _, n in row)
    assert sum(n for _, n in pairs.iloc[2]) <= table["lost"].iloc[2]
    zh = story.table1(table, load_text("zh"))["t1_main_loss_reasons"]
    en = story.table1(table, load_text("en"))["t1_main_loss_reasons"]
    for row, z, e in zip(pairs, zh, en):
        assert z == "；".join(f"{r}（{n}）" for r, n in row)
        assert e == "; ".join(f"{r} ({n})" for r, n in row)
    assert zh.str.contains("（").any()


def test_no_losses_forecast_is_an_upper_bound_not_a_plan(own):
    """华南 South never lost a deal: its history-based forecast counts every open deal as won
    (¥28,679,000 = its whole open pipeline). The page must not tell the reader to plan on it, or say
    "only 100.0% were won"; it says the figure is an upper bound. North Star, with losses, keeps
    the comparison."""
    data, config = own
    settings = load_forecast_settings()
    scope = fk.Scope.build(data, config, team="华南 South", as_of=AS_OF)
    south = forecast_of(scope, settings)
    assert south.closed_win_rate == 1 and south.history == pytest.approx(scope.open_deals["amount"].sum())
    for language in ("en", "zh"):
        text = load_text(language)
        lines = forecast_sentences(south, text, "CNY")
        assert text("fc_no_losses", closed=south.closed) in lines
        assert not any("only 100.0%" in line or "只有 100.0%" in line for line in lines)
    north = forecast_of(fk.Scope.build(data, config, team="North Star", as_of=AS_OF), settings)
    assert north.closed_win_rate < 1
    assert load_text("en")("fc_no_losses", closed=north.closed) not in forecast_sentences(north, load_text("en"), "CNY")


def test_crm_below_history_is_worded_as_below(own):
    """When the CRM probabilities are lower than the history's win rate the caveat says "below",
    never "but only"."""
    data, config = own
    for team in ("North Star", "West & Co", None):
        f = forecast_of(fk.Scope.build(data, config, team=team, as_of=AS_OF), load_forecast_settings())
        if f.differs and f.closed_win_rate < 1 and f.crm_probability < f.closed_win_rate:
            line = forecast_sentences(f, load_text("en"), "CNY")[0]
            assert "below the" in line and "but only" not in line


def test_index_names_teams_without_losses_and_explains_the_total(own):
    data, config = own
    teams = ["North Star", "West & Co", "华南 South"]
    table = team_figures(data, config, "2024-Q4", teams, as_of=AS_OF)
    assert table.set_index("team").loc["华南 South", "history_win_rate"] == 1
    total, rows = table.iloc[-1], table.iloc[:-1]
    assert total["forecast"] != pytest.approx(rows["forecast"].sum())  # pooled rates, hence the note
    for language in ("en", "zh"):
        text = load_text(language)
        shown = index_figures(table, text, {}, "CNY", "2024-Q4", AS_OF, 0.95)
        assert text("index_no_losses", teams="华南 South") in shown["caveat"]
        assert text("index_caveat", teams="华南 South") not in shown["caveat"]
        assert shown["total_note"] == text("index_all_teams_forecast")
        west = dict(shown["cards"][1]["figures"])  # West & Co: every deal closed
        assert west[text("fig_forecast")] == text("fig_no_open_deals")


def _index_page(language: str, teams: list[str]) -> str:
    text = load_text(language)
    link = {"ok": True, "href": "x.html", "lang": None, "name": text("conversion"),
            "generated": "2026-11-29 22:42:10", "written": "2026-11-29 22:42"}
    rows = [{"period": period, "cells": [{"team": [link, link], "reps": [{"name": "Liu Yang", "reports": [link, link]}]}
                                         for _ in teams]}
            for period in ("2024-11", "2024-Q4")]
    return render_index({"w": index_words(text, AS_OF, "2026-11-29 22:43", 8, 0), "figures": None,
                         "teams": teams, "rows": rows}, language)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_index_timestamps_and_periods_do_not_wrap(browser, tmp_path, language):
    """Six teams in an 800-pixel window make narrow columns: every "✓ 2026-11-29 22:42" and every
    period stays on one line (one client rectangle each)."""
    page_file = tmp_path / f"index.{language}.html"
    page_file.write_text(_index_page(language, [f"华南 South {i}" for i in range(6)]), encoding="utf-8")
    page = browser.new_page(viewport={"width": 800, "height": 900})
    page.goto(page_file.as_uri())
    lines = page.evaluate("""() => [...document.querySelectorAll('span.ok, th > .fk-nowrap')]
        .map(e => [e.textContent, e.getClientRects().length])""")
    page.close()
    assert len(lines) == 6 * 2 * 4 + 2
    assert all(n == 1 for _, n in lines), [t for t, n in lines if n != 1]


@pytest.fixture(scope="module")
def rendered_own(tmp_path_factory) -> Path:
    """North Star's conversion report and 华南 South's opportunities report, in English and Chinese,
    and North Star's opportunities report, run by `funnelkit report` from the project folder (its
    stages, preset and currency)."""
    from funnelkit.runner.cli import main as cli

    out = tmp_path_factory.mktemp("review3")
    entries = "".join(f"  - {{notebook: {nb}, teams: ['{team}'], periods: [2024-Q4]{lang}}}\n"
                      for nb, team in (("conversion", "North Star"), ("opportunities", "华南 South"))
                      for lang in ("", ", language: zh"))
    entries += ("  - {notebook: opportunities, teams: ['North Star'], periods: [2024-Q4]}\n"
                "  - {notebook: conversion, teams: ['华南 South'], periods: [2024-Q4], language: zh}\n")
    matrix = out / "reports.yaml"
    matrix.write_text(f"data: {FOLDER}\npreset: review3\nas_of: {AS_OF}\nlanguage: en\noutput: {out / 'reports'}\n"
                      f"entries:\n{entries}", encoding="utf-8")
    assert cli(["report", "--project", str(PROJECT), "--matrix", str(matrix), "--jobs", "2", "--quiet"]) == 0
    return out / "reports"


def test_reports_from_the_own_export(rendered_own):
    """The cohort note names this funnel's first step, not the sample's; Table 1 says "won", not
    "became customers"; hostile customer names are text; no absolute path is shown; the
    no-losses warning replaces "plan on the history-based forecast" for 华南 South."""
    plan = (rendered_own / "2024-Q4" / "North_Star" / "opportunities.html").read_text(encoding="utf-8")
    # CN-0138, open in North Star, is listed under its name as typed, as text
    assert "<b>Bold</b> 有限公司" in visible_text(plan)
    assert "<b>Bold" not in plan and html.escape("<b>Bold</b>", quote=False) in plan
    conversion = (rendered_own / "2024-Q4" / "North_Star" / "conversion.html").read_text(encoding="utf-8")
    conversion_zh = (rendered_own / "2024-Q4" / "North_Star" / "conversion.zh.html").read_text(encoding="utf-8")
    shown, shown_zh = visible_text(conversion), visible_text(conversion_zh)
    assert "(“Lead → First contact”)" in shown and "Leads → Prospects" not in shown
    assert "（“线索 → 初步接洽”）" in shown_zh and "潜在客户" not in shown_zh
    assert "became customers" not in shown and "deals won during 2024-Q4" in shown
    assert str(FOLDER) not in shown and "opportunities.csv" in shown
    for name in ("opportunities.html", "opportunities.zh.html"):
        page = (rendered_own / "2024-Q4" / "华南_South" / name).read_text(encoding="utf-8")
        text = visible_text(page)
        assert "plan on the history-based forecast" not in text and "请以按历史赢单率的预测为准" not in text
        assert ("只是上限" if ".zh." in name else "an upper bound, not a plan") in text


def test_long_text_keeps_a_readable_width_and_cadence_reads_naturally():
    """A long text column (a next action) gets ``fk-text`` (a minimum width in report.css), so the
    one-line columns beside it cannot squeeze it to a word per line; one month reads "every month"."""
    from funnelkit.presentation.pages import assets
    from funnelkit.presentation.present import cadence, styled

    text = load_text("en")
    frame = pd.DataFrame({"deal_id": ["CN-0259"], "amount": [847000.0],
                          "next_action": ["Lead personally; bring in technical and product teams for a tailored solution"]})
    page = styled(frame, text, money=("amount",), currency="CNY").to_html()
    assert re.search(r'class="data row0 col2 fk-text"', page) and re.search(r'col0 fk-nowrap"', page)
    assert "td.fk-text{min-width:" in assets().css
    plan = pd.DataFrame({"cadence_days": [None, None, 7], "cadence_months": [1, 3, None]})
    assert cadence(plan, text).tolist() == ["every month", "every 3 months", "every 7 days"]
    assert cadence(plan, load_text("zh")).tolist() == ["每月", "每 3 个月", "每 7 天"]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_funnel_plot_of_a_team_that_never_lost(language):
    """华南 South's reps won every closed deal: their names, drawn above the points at 100%, stay
    inside the axes (not over the title), the axis still ends its ticks at 100, and every word of
    the legend is in the report language (the limit lines were English on Chinese pages)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from funnelkit.presentation import plots
    from funnelkit.presentation.present import funnel_plot_words

    text = load_text(language)
    words = funnel_plot_words(text)
    assert set(words) == {"x", "y", "team", "l95", "l998"}
    if language == "zh":
        assert not any(re.search("[A-Za-z]", w) for w in words.values())
    reps = pd.DataFrame({"rep": ["Liu Yang", "陈静"], "closed": [8, 17], "win_rate": [1.0, 1.0],
                         "flag": ["within", "within"]})
    limits = pd.DataFrame({"n": [1, 20], "upper_95": [1.0, 1.0], "lower_95": [0.0, 0.83],
                           "upper_99_8": [1.0, 1.0], "lower_99_8": [0.0, 0.7]})
    fig = plots.funnel_plot(reps, limits, 1.0, text("funnel_plot_title"), highlight="陈静", words=words)
    ax = fig.axes[0]
    renderer = FigureCanvasAgg(fig).get_renderer()
    title, frame = ax.title.get_window_extent(renderer), ax.get_window_extent(renderer)
    for label in ax.texts:
        box = label.get_window_extent(renderer)
        assert not box.overlaps(title) and box.y1 <= frame.y1, label.get_text()
    assert max(t for t in ax.get_yticks()) == 100
    assert all(float(t).is_integer() for t in ax.get_xticks())  # whole deals, not 2.5
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [words["l95"], words["l998"], words["team"]]


def test_unranked_reps_read_not_ranked_with_the_reason_under_the_table(own):
    """华南 South's reps have 17 and 8 closed deals, under the 30 needed: the rank cell is short
    ("未排名"), so the roll-up keeps all its columns on the page, and the caption gives the reason
    with the threshold, before the weighted-pipeline caveat."""
    from funnelkit.presentation.present import rollup_table

    data, config = own
    summary = fk.rep_summary(data, config, "2024-Q4", team="华南 South", as_of=AS_OF)
    assert summary["rank"].isna().all() and summary.min_volume == 30
    text = load_text("zh")
    page = rollup_table(summary, text).to_html()
    assert page.count(">未排名<") == 2 and "不参与排名" not in page
    assert f"<caption>{text('rollup_not_ranked', min_volume=30)}{text('rollup_pipeline_caveat')}</caption>" in page


def test_what_changed_when_every_deal_moved_on_in_both_periods(own, rendered_own):
    """华南 South lost nothing: 15 / 12 / 7 / 2 exits this quarter and 18 / 16 / 13 / 11 last, all
    moving on (100% and 100%). No test can run, but not for want of deals deciding in both periods,
    as the page said: it says nothing changed. Its loss-reason comparison, with no row, is left out
    instead of showing headers only."""
    data, config = own
    review = fk.period_review(data, config, "2024-Q4", team="华南 South", as_of=AS_OF)
    c = review.conversions
    assert c["exits_this"].tolist() == [15, 12, 7, 2] and c["exits_previous"].tolist() == [18, 16, 13, 11]
    for language in ("en", "zh"):
        text = load_text(language)
        assert story.review_findings(review, text) == [(text("review_no_variation", previous="2024-Q3"), "changes")]
    north = fk.period_review(data, config, "2024-Q4", team="North Star", as_of=AS_OF)
    assert story.review_findings(north, load_text("en"))[0][0] != load_text("en")("review_no_variation", previous="2024-Q3")
    page = (rendered_own / "2024-Q4" / "华南_South" / "conversion.zh.html").read_text(encoding="utf-8")
    shown = visible_text(page)
    assert load_text("zh")("review_no_variation", previous="2024-Q3") in shown
    assert load_text("zh").column("lost_this") not in shown
    assert load_text("zh")("no_losses_in_team", team="华南 South") in shown


def test_intervals_are_punctuated_in_the_report_language(own):
    """Every "value (low–high)" of a report uses full-width brackets on a Chinese page: days in
    stage, a rep's win rate, a stage's historical win rate (they were ASCII among Chinese text)."""
    from funnelkit.presentation.present import interval, with_ci
    from funnelkit.presentation.present_opportunities import rate_with_interval

    table = pd.DataFrame({"median": [22.0, 35.0], "median_low": [18.2, 29.1], "median_high": [25.0, float("nan")],
                          "rate": [0.4, 1.0], "rate_low": [0.263, 0.816], "rate_high": [0.554, 1.0]})
    zh, en = load_text("zh"), load_text("en")
    assert with_ci(table, "median", zh).tolist() == ["22.0 天（18.2–25.0）", f"35.0 天（29.1–{zh('not_reached')}）"]
    assert with_ci(table, "median", en).tolist()[0] == "22.0 days (18.2–25.0)"
    assert interval(table, "rate", "rate_low", "rate_high", "{:.1%}", zh).tolist()[0] == "40.0%（26.3%–55.4%）"
    assert interval(table, "rate", "rate_low", "rate_high", "{:.1%}").tolist()[0] == "40.0% (26.3%–55.4%)"
    assert rate_with_interval(table["rate"], table["rate_low"], table["rate_high"], zh).tolist()[1] == "100.0%（81.6%–100.0%）"


def test_stage_actions_follow_this_funnels_stages(own):
    """The packaged playbook keys its stage actions by the sample's stages (prospects,
    opportunities, negotiation): the table lists this funnel's open stages by label, says where
    no action is set, and names the playbook's other stages in a sentence instead of showing
    "prospects" and "opportunities" as rows."""
    from funnelkit.analyses.playbook import load_playbook
    from funnelkit.presentation.present_opportunities import stage_actions

    _, config = own
    for language in ("en", "zh"):
        text = load_text(language)
        labels = config.stage_labels(None, language)
        table, note = stage_actions(load_playbook().stages, labels, text)
        rows = table.data
        assert rows.iloc[:, 0].tolist() == list(labels.values())[:-1]
        actions = dict(zip(rows.iloc[:, 0], rows.iloc[:, 1]))
        assert actions[labels["negotiation"]] == load_playbook().stages["negotiation"][language]
        assert actions[labels["lead"]] == text("no_stage_action")
        # Markdown: the sentence escaped, the file and the keys as code spans
        assert "`params/playbook.yaml`" in note and text("list_sep").join(["`prospects`", "`opportunities`"]) in note
    page = stage_actions(load_playbook().stages, config.stage_labels(None, "zh"), load_text("zh"))[0].to_html()
    assert not re.search("[A-Za-z]", visible_text(page))  # no file name in a Chinese cell


def test_stalled_wording_says_what_p75_means():
    """Headlines and notes say "longer than 75% of past stays there lasted" (a director does not
    read "p75"); the rep report's stalled and overdue tables get a note saying what each lists."""
    for language in ("en", "zh"):
        text = load_text(language)
        lines = [text("tis_headline_no_stalled", q=75), text("stalled_note", q=75), text("rep_deals_note", q=75),
                 text("tis_headline_stalled", n=3, q=75, deal="CN-0176", rep="Zhao Lei", days=359, stage="Lead")]
        assert all("p75" not in line and "75%" in line for line in lines)
    assert load_text("en").column("threshold_days") == "Usual limit"


def test_a_team_without_losses_gets_the_note(own):
    """The data records losses, but 华南 South has none: its win rates carry a note for the team;
    North Star's do not."""
    from funnelkit.presentation.present import win_rate_notes

    data, _ = own
    for language in ("en", "zh"):
        text = load_text(language)
        assert win_rate_notes(data, text, team="华南 South") == [text("no_losses_in_team", team="华南 South")]
        assert win_rate_notes(data, text, team="North Star") == [] == win_rate_notes(data, text)


def test_top_drivers_are_points_of_the_score(own):
    """The note says "Amount 24" means 24 of the score's 0–100 points: each driver shown is that
    dimension's contribution, and the contributions add up to the score."""
    from funnelkit.presentation.present import drivers_words

    data, config = own
    scored = fk.score_deals(fk.open_deals(data, config, as_of=AS_OF), fk.load_scorecard())
    row = scored[scored["score"].notna()].iloc[0]
    contributions = {c.removeprefix("contribution_"): row[c] for c in scored.columns if c.startswith("contribution_")}
    assert sum(v for v in contributions.values() if pd.notna(v)) == pytest.approx(row["score"])
    for part in drivers_words(row["top_drivers"], load_text("en")).split(" · "):
        label, points = part.rsplit(" ", 1)
        key = next(k for k, d in fk.load_scorecard().dimensions.items() if d.label["en"] == label)
        assert float(points) == pytest.approx(contributions[key], abs=0.5)
    assert '"Amount 24" = 24 of the score' in load_text("en")("side_note") and "贡献 24 分" in load_text("zh")("side_note")


def test_chinese_cells_wrap_by_their_printed_width():
    """A cell is kept on one line when it is short as printed: 16 Chinese characters are as wide as
    32 Latin ones, so Table 1's "选择了竞争对手（4）；价格太高（2）" may wrap (it pushed the table
    off the page on Chinese reports), while "Lead → Proposal: 95.8%" stays on one line."""
    from funnelkit.presentation.present import SHORT_CELL, display_width, styled

    reasons = "选择了竞争对手（4）；价格太高（2）"
    assert len(reasons) <= SHORT_CELL < display_width(reasons) == 2 * len(reasons) - 2  # the digits are narrow
    page = styled(pd.DataFrame({"step": ["Lead → Proposal: 95.8%"], "reasons": [reasons]}), load_text("zh")).to_html()
    assert "col0 fk-nowrap" in page and "col1 fk-text" in page
