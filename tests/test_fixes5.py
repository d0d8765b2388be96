"""fixes5: leftovers seen in the fifth session's reports and commands, each with a test that failed
before its fix (hand-worked values; Chromium where it is about what a reader sees)."""
from __future__ import annotations

import zlib
from pathlib import Path

import pandas as pd
import pytest
from conftest import report_page, table_fit

import funnelkit as fk
from funnelkit.presentation.present import load_text

EN, ZH = load_text("en"), load_text("zh")


# --- 1. the rep roll-up table fits the page in Chinese


def test_header_and_interval_widths_by_hand():
    """A header of at most 10 display columns stays on one line ("加权管道" = 8, "Closed" = 6); a longer
    one counts its widest word ("Win rate adjusted for sample size" → "adjusted" = 8), a Chinese one
    half its width as on two lines ("按样本量校正的赢单率", 10 characters = 20 columns → 10). An interval
    keeps its bracket whole and, in Chinese, gets a break opportunity before it (none after "%")."""
    from funnelkit.presentation.present import _header_width, _header_html, _keep_brackets_whole

    assert _header_width("加权管道") == 8 and _header_width("Closed") == 6
    assert _header_width("Win rate adjusted for sample size") == 8
    assert _header_width("按样本量校正的赢单率") == 10 and _header_width("每日销售速度") == 6
    assert "fk-nowrap" in _header_html("周期中位数") and "fk-nowrap" not in _header_html("按样本量校正的赢单率")
    assert _keep_brackets_whole("24.1%（17.9%–31.7%）") == '24.1%<wbr><span class="fk-nowrap">（17.9%–31.7%）</span>'
    assert _keep_brackets_whole("24.1% (17.9%–31.7%)") == '24.1% <span class="fk-nowrap">(17.9%–31.7%)</span>'
    assert _keep_brackets_whole("Lead (bring in the team)") == "Lead (bring in the team)"  # words may wrap


@pytest.mark.parametrize("language", ["en", "zh"])
def test_rep_rollup_fits_a_1280_pixel_window(browser, tmp_path, language):
    """North's roll-up (2024-Q2, five reps, twelve columns) ran 62 px past the page in Chinese: its
    intervals "24.1%（17.9%–31.7%）" had no break opportunity and its headers could not break. In a
    1280-pixel window the table's right edge is inside the page, with no scroll bar."""
    from funnelkit.analyses import playbook, scorecard
    from funnelkit.presentation import present

    ctx = fk.report_context("rep_performance", data="sample", period="2024-Q2", as_of="2024-06-30", team="North",
                            rep="Zhao Lei", language=language)
    team_scope = ctx.scope.widen("rep")
    scored = scorecard.score_deals(team_scope.open_deals, scorecard.load_scorecard())
    plan = playbook.follow_up_plan(scored, playbook.load_playbook(), ctx.plan_date, language)
    summary = fk.rep_summary_of(team_scope, "2024-Q2", window_months=12, plan=plan)
    page_file = tmp_path / f"rollup.{language}.html"
    page_file.write_text(report_page(present.rollup_table(summary, ctx.text).to_html(), language), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(page_file.as_uri())
    sizes = page.evaluate("""() => { const t = document.querySelector('table');
        return [Math.ceil(t.getBoundingClientRect().right), Math.floor(document.body.getBoundingClientRect().right),
                t.scrollWidth, t.clientWidth, document.documentElement.scrollWidth, t.rows[0].cells.length] }""")
    page.screenshot(path=str(tmp_path / f"rollup.{language}.png"))
    page.close()
    right, page_right, table_scroll, table_client, page_scroll, columns = sizes
    assert columns == 12 and right <= page_right and table_scroll <= table_client and page_scroll <= 1280, sizes


def test_interval_cells_render_without_warnings():
    """The markup goes into the escaped cell of a wrapping column, and finding the brackets warns
    of nothing (pandas' "match groups" warning was printed into the rep report)."""
    import warnings

    from funnelkit.presentation.present import styled

    frame = pd.DataFrame({"rep": ["<b>Wu</b>"] * 2, "win_rate": ["24.1%（17.9%–31.7%）", "–"],
                          "note": ["选择了竞争对手（4）；价格太高（2）" * 3, "x"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = styled(frame, ZH).to_html()
    assert '选择了竞争对手<wbr><span class="fk-nowrap">（4）</span>；' in page and "&lt;b&gt;Wu" in page


# --- 2. a step without its rep bar says why


def _rates(**flags) -> pd.DataFrame:
    base = {"stage": ["leads", "prospects", "opportunities"], "next_stage": ["prospects", "opportunities", "negotiation"],
            "rep_rate": [0.4, 0.3, 0.5], "team_rate": [0.5, 0.6, 0.7]}
    return pd.DataFrame(base | {k: [False] * 3 for k in ("rep_maturing", "rep_few", "team_maturing", "team_few")} | flags)


def test_missing_bar_notes_by_hand():
    """Rep too few decided at the 2nd step, rep maturing at the 3rd (also "few": maturing is said
    once), team complete: two notes naming the steps, none for the team; nothing flagged: none."""
    from funnelkit.presentation import story

    labels = fk.load_config().stage_labels("new_business", "en")
    rates = _rates(rep_few=[False, True, True], rep_maturing=[False, False, True])
    assert story.missing_bar_notes(rates, labels, EN, "Li Na") == [
        EN("chart_no_bar_few", bar="Rep", steps="Prospects → Opportunities", min=10),
        EN("chart_no_bar_maturing", bar="Rep", steps="Opportunities → Negotiation", min=10)]
    assert story.missing_bar_notes(_rates(), labels, EN, "Li Na") == []
    both = _rates(rep_few=[True, True, False], team_few=[False, False, True])
    labels = fk.load_config().stage_labels("new_business", "zh")
    assert story.missing_bar_notes(both, labels, ZH, "Li Na") == [
        ZH("chart_no_bar_few", bar="代表", steps="潜在客户 → 意向客户、意向客户 → 商机客户", min=10),
        ZH("chart_no_bar_few", bar="团队", steps="商机客户 → 谈判阶段", min=10)]
    # the team overview has only the team's bars: the rep's flags (the team's own) are not read twice
    assert story.missing_bar_notes(_rates(rep_few=[True] * 3), labels, EN, None) == []


def test_zhao_lei_negotiation_step_has_no_rep_bar_and_says_why():
    """North's Zhao Lei, 12 months to 2024-Q2: 7 deals reached Negotiation, 3 moved on and 4 were
    lost: 7 decided < 10, so no rep bar (3 ÷ 7 = 42.9% is not shown) while the team's 88 ÷ 123 is."""
    from funnelkit.analyses import reps
    from funnelkit.presentation import story

    ctx = fk.report_context("rep_performance", data="sample", period="2024-Q2", as_of="2024-06-30", team="North",
                            rep="Zhao Lei", language="zh")
    rates = reps.rep_vs_team(ctx.scope, "Zhao Lei", ctx.window(12))
    row = rates.set_index("stage").loc["negotiation"]
    assert row["rep_rate"] == pytest.approx(3 / 7) and row["rep_few"] and row["team_rate"] == pytest.approx(88 / 123)
    bars = story.step_bars(rates, ctx.labels, ctx.text, "Zhao Lei")
    assert pd.isna(bars["代表"].iloc[-1]) and bars["团队"].iloc[-1] == pytest.approx(88 / 123)
    assert story.missing_bar_notes(rates, ctx.labels, ctx.text, "Zhao Lei") == [
        ZH("chart_no_bar_few", bar="代表", steps="谈判阶段 → 成交客户", min=10)]


# --- 3. `funnelkit score` that scores nothing fails and writes no plan


def test_score_with_nothing_to_score_exits_non_zero(tmp_path, capsys):
    """No open deal at the as-of date (the sample starts in 2023), or open deals none of which can be
    scored (the export has no strategic_value column): a message on stderr naming why, no
    plan file, exit 1. With deals to score the plan is written and the exit is 0."""
    from funnelkit.runner.cli import main as cli

    plan = tmp_path / "plan.csv"
    assert cli(["score", "sample", "--as-of", "2022-12-31", "--out", str(plan)]) == 1
    err = capsys.readouterr().err
    assert "nothing scored: no open deals at 2022-12-31 in sample" in err and str(plan) in err and not plan.exists()
    folder = tmp_path / "export"
    assert cli(["sample", "--out", str(folder), "--deals", "300", "--seed", "1"]) == 0
    deals = pd.read_csv(folder / "deals.csv")
    deals.drop(columns="strategic_value").to_csv(folder / "deals.csv", index=False)
    capsys.readouterr()
    assert cli(["score", str(folder), "--out", str(plan)]) == 1
    out, err = capsys.readouterr()
    open_n = int(out.split(" open deals")[0].split()[-1].replace(",", ""))
    assert open_n > 0 and f"none of the {open_n:,} open deals could be scored" in err and not plan.exists()
    deals.to_csv(folder / "deals.csv", index=False)
    assert cli(["score", str(folder), "--out", str(plan)]) == 0 and plan.exists()


# --- 4. a closed stdout is no traceback


def test_closed_stdout_gives_no_traceback(tmp_path):
    """`funnelkit init DIR | head -0`: the reader closes the pipe before the command prints. The
    command still writes the project, exits 1 (as Python does on EPIPE) and prints no traceback
    and no "Exception ignored" (it printed a BrokenPipeError traceback)."""
    import subprocess
    import sys

    entry = "import sys; from funnelkit.runner.cli import main; sys.exit(main())"  # the console script
    proc = subprocess.Popen([sys.executable, "-c", entry, "init", str(tmp_path / "p")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # before the child has printed anything: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert (tmp_path / "p" / "params" / "funnel.yaml").exists()


# --- 5 and 6. the data-quality examples name the file's column and the file's row


@pytest.fixture
def hubspot_export(tmp_path) -> tuple[Path, int, str]:
    """A HubSpot-style sample export with two bad cells: the third deal with a "Qualified To Buy"
    entry gets an impossible entry date (month 13), the sixth deal's Close Date reads "not a date".
    Returns the folder, the first one's row in the file (1-based, as the other readers count) and its id."""
    from funnelkit.runner.cli import main as cli

    folder = tmp_path / "hubspot"
    assert cli(["sample", "--out", str(folder), "--shape", "hubspot", "--deals", "40", "--seed", "3"]) == 0
    path = folder / "hubspot-deals.csv"
    deals = pd.read_csv(path, dtype=str, keep_default_na=False)
    qualified = next(c for c in deals.columns if c.startswith("Date entered") and "Qualified To Buy" in c)
    i = deals.index[deals[qualified] != ""][2]
    deals.loc[i, qualified] = "31/13/2024 10:00"
    deals.loc[5, "Close Date"] = "not a date"
    deals.to_csv(path, index=False)
    return folder, int(i) + 1, deals.loc[i, "Record ID"]


def test_hubspot_stage_entry_is_quarantined_at_its_file_row(hubspot_export):
    """The entry dates are reshaped into one row per (deal, stage); a bad one was numbered by that
    long table (row 40 or more: every deal's first-stage column comes first). It is the deal's row."""
    folder, row, deal = hubspot_export
    q = fk.load_data(folder, preset="hubspot").quarantine
    bad = q[q["reason"] == "not_a_date:entered_at"]
    assert bad[["row", "deal_id", "value"]].values.tolist() == [[row, deal, "31/13/2024 10:00"]]
    assert q.loc[q["reason"] == "not_a_date:closed_at", "row"].tolist() == [6]


def test_quality_examples_name_the_export_column(hubspot_export, tmp_path):
    """The preset maps "Close Date" → closed_at: the report's examples and `funnelkit check` say
    "Close Date (closed_at)" (the report's "Closed on" named no column of the file); a column the
    preset does not rename keeps its label ("Entered"); a cached copy (the report run's parquet)
    keeps the names."""
    from funnelkit.presentation import present
    from funnelkit.runner.check import check_report

    folder, _, _ = hubspot_export
    data = fk.load_data(folder, preset="hubspot")
    assert data.columns["deals"]["closed_at"] == "Close Date" and data.file_column("deals", "closed_at") == "Close Date"
    assert data.file_column("stage_events", "entered_at") is None

    def shown_columns(dataset, text):
        table = present.quality_section(dataset, text)[2].data
        return list(zip(table[text.column("row")], table[text.column("column")]))

    en = shown_columns(data, EN)
    assert (6, "Close Date (closed_at)") in en and (6, "Record ID (deal_id)") in en  # the deal's entries: its id column
    assert EN.column("entered_at") in dict(en).values()
    assert (6, "Close Date（closed_at）") in shown_columns(data, ZH)
    assert any("row 6, column Close Date (closed_at) value 'not a date'" in line
               for line in check_report(data, fk.load_config()))
    copy = fk.load_data(fk.write_dataset(data, tmp_path / "copy"))
    assert shown_columns(copy, EN) == en


# --- 7. English punctuation in a Latin font


@pytest.mark.parametrize("language", ["en", "zh"])
def test_english_apostrophe_is_not_drawn_full_width(browser, tmp_path, language):
    """report.css listed the Chinese font first, so the English "Rep’s" drew its ’ from it, a full
    em wide. In an English page ’ (and the other marks both scripts share) now comes from a Latin
    font, narrower than half the font size, under the reports' Content-Security-Policy; letters
    keep their font (a wider Latin font for all text pushed the follow-up plan off the page) and
    Chinese still renders; a Chinese page keeps its full-width marks."""
    page_file = tmp_path / f"quote.{language}.html"
    page_file.write_text(report_page('<p id="p"><span id="q">’</span><span id="a">a</span>'
                               '<span id="zh">销售</span></p>', language), encoding="utf-8")
    page = browser.new_page(viewport={"width": 800, "height": 400})
    page.goto(page_file.as_uri())
    # the policy refuses inline style attributes: sizes in ems of the paragraph's font size
    widths = page.evaluate("""() => { const em = parseFloat(getComputedStyle(document.getElementById('p')).fontSize);
        return ['q', 'a', 'zh'].map(id => document.getElementById(id).getBoundingClientRect().width / em) }""")
    family = page.evaluate("() => getComputedStyle(document.body).fontFamily")
    page.close()
    quote, letter, chinese = widths
    assert chinese == pytest.approx(2, abs=0.1), widths  # two CJK glyphs, 1 em each: a Chinese font is found
    if language == "en":
        assert quote < 0.5 and letter < 0.75 and family.startswith("fk-latin-marks"), (widths, family)
    else:
        assert quote == pytest.approx(1, abs=0.05) and family.startswith('"Noto Sans CJK SC"'), (widths, family)


# --- 8. labels start with a capital


def test_tier_and_baseline_labels_are_capitalised_in_english():
    """"baseline weights" headed the sensitivity tables' first row and "high"/"medium"/"low" labelled
    the charts' bars and legends, lowercase beside "Raise competitive position to 30%, …". They are
    labels, never placed inside a sentence, so they start with a capital; Chinese is unchanged."""
    from funnelkit.presentation import plots
    from funnelkit.presentation.present import tier_labels

    assert tier_labels(EN) == {"high": "High", "medium": "Medium", "low": "Low", "unscored": "Unscored"}
    assert EN("baseline") == "Baseline weights" and ZH("baseline") == "基准权重"
    assert tier_labels(ZH) == {"high": "高", "medium": "中", "low": "低", "unscored": "未评分"}
    # the opportunities report's value chart: its legend names the tiers as the report context gives them
    ctx = fk.report_context("opportunities", data="sample", period="2024-Q2", as_of="2024-06-30", team="North")
    value = pd.DataFrame({"high": [2e6, 1e6], "medium": [1e6, 0.0], "low": [0.5e6, 0.5e6]}, index=["Leads", "Prospects"])
    fig = plots.stacked_value_bars(value, "Open value", {"x": "Stage", "y": "¥ m"}, ctx.tiers)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["High", "Medium", "Low"]


def test_text_column_with_a_blank_cell_is_styled():
    """A text column with a missing value (a customer or next step left blank in the CRM): the
    search for bracketed figures met NaN and the opportunities report failed with "expected string
    or bytes-like object, got 'float'" (42 of the 1,030 reports of the large bench matrix). The
    blank shows as the dash, the bracket in the other cell is still kept whole."""
    from funnelkit.presentation.present import styled

    long = "选择了竞争对手（4）；价格太高（2）" * 3  # wide enough that the table must wrap
    for dtype in ("string", "object", "str"):
        frame = pd.DataFrame({"rep": ["Wu", "Li"], "note": pd.Series([long, None], dtype=dtype)})
        page = styled(frame, ZH).to_html()
        assert '选择了竞争对手<wbr><span class="fk-nowrap">（4）</span>；' in page, dtype
        assert '<td id="{}_row1_col1" class="data row1 col1 fk-text" >–</td>'.format(page.split('"')[1]) in page, dtype


@pytest.mark.parametrize("rep", [None, "East rep 007"])
def test_a_reps_follow_up_plan_fits_a_1280_pixel_window(browser, tmp_path, rep):
    """East rep 007's English plan (the large bench's data: the sample's deals over 100 reps, Chinese
    customer names) ran past the page: the rep's own name on every row was one column too many. A
    rep's report has no rep column in its plan; a team's keeps it."""
    from funnelkit.analyses import playbook, scorecard
    from funnelkit.presentation import present_opportunities as po

    data = fk.sample_dataset(n_deals=20000)
    east = data.deals["team"] == "East"
    data.deals.loc[east, "rep"] = [f"East rep {zlib.crc32(str(d).encode()) % 33 + 1:03d}"
                                   for d in data.deals.loc[east, "deal_id"]]
    ctx = fk.report_context("opportunities", data=data, period="2024-Q2", as_of="2024-06-30", team="East",
                            rep=rep, language="en")
    scored = scorecard.score_deals(ctx.scope.open_deals, scorecard.load_scorecard())
    plan = playbook.follow_up_plan(scored, playbook.load_playbook(), ctx.plan_date, "en")
    listed, _ = po.follow_up_styled(po.follow_up_table(plan, ctx.text, ctx.labels), ctx.text, "CNY", limit=60,
                                    rep_report=rep is not None)
    assert (EN.column("rep") in listed.data.columns or "rep" in listed.data.columns) == (rep is None)
    if rep is None:
        return  # a team's plan: the rep column stays (its width is the wrap estimate's business)
    sizes = table_fit(browser, tmp_path / "plan.html", listed.to_html())
    table_scroll, table_client, page_scroll, rows = sizes
    assert rows > 5 and table_scroll <= table_client and page_scroll <= 1280, sizes
