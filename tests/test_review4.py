"""review4: defects a sales-operations analyst hit taking a HubSpot-style export to reports.

tests/data/review4/ (written by make_review4.py): `deals.tsv` (tab-separated, UTF-8 with a BOM,
Windows line endings, US dates `MM/DD/YYYY hh:mm AM/PM`, amounts in "$1,234.50" and some in
"€", a Currency column) and `deal_stage_history.xlsx` (one row per stage CHANGE: "From stage",
"To stage", "Changed at", below a title line and a blank line). Each test failed before its fix.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

import funnelkit as fk
from funnelkit.config import PROJECT_ENV
from funnelkit.inputs.data import parse_datetimes
from funnelkit.inputs.io import read_table
from funnelkit.runner.cli import main as cli

FOLDER = Path(__file__).parent / "data" / "review4"


# --- 1. US 12-hour times


def test_us_twelve_hour_times_are_read_month_first():
    """`init` detected these columns as month-first, but the loader read no 12-hour time: every
    deal was quarantined as "not a date". 12 AM is midnight, 12 PM noon; 13:05 PM is no time."""
    values = pd.Series(["03/04/2024 09:15 AM", "03/04/2024 12:30 AM", "03/04/2024 12:30 PM",
                        "03/14/2024 01:05 pm", "03/04/2024 3:05:09 p.m.", "03/04/2024 13:05 PM"])
    parsed = parse_datetimes(values)
    assert parsed.tolist()[:5] == [pd.Timestamp("2024-03-04 09:15"), pd.Timestamp("2024-03-04 00:30"),
                                   pd.Timestamp("2024-03-04 12:30"), pd.Timestamp("2024-03-14 13:05"),
                                   pd.Timestamp("2024-03-04 15:05:09")]
    assert pd.isna(parsed.iloc[5])


# --- 2. a second currency


def _deals_in(amounts: list[str], codes: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    deals = pd.DataFrame({"deal_id": [f"D{i}" for i in range(len(amounts))], "team": "East", "status": "open",
                          "created_at": "2024-03-01 09:00", "amount": amounts})
    if codes is not None:
        deals["currency"] = codes
    events = pd.DataFrame({"deal_id": deals["deal_id"], "stage": "leads", "entered_at": "2024-03-01 09:00"})
    return deals, events


def test_amounts_in_another_currency_are_quarantined_not_summed(config):
    """review4's export writes 32 of 288 amounts in euros ("€12,500.00"): they were stripped of the
    sign and summed with the dollars, so every won value, pipeline and forecast was in no currency.
    A mark that cannot be the configured currency, or a currency column naming another, sets the
    deal aside; "$" is one of several dollars, so it stays with USD; a blank code is the configured one."""
    usd = config.model_copy(update={"currency": "USD"})
    deals, events = _deals_in(["$1,234.50", "€500.00", "1,200", "EUR 70", "900", "¥800", "", "USD 5"],
                              ["USD", "EUR", "EUR", "", "", "USD", "", "usd"])
    data = fk.validate(deals, events, usd, as_of=pd.Timestamp("2024-06-30"))
    q = data.quarantine[data.quarantine["table"] == "deals"].set_index("deal_id")
    assert q["reason"].to_dict() == {"D1": "other_currency:amount", "D2": "other_currency:amount",
                                     "D3": "other_currency:amount", "D5": "other_currency:amount"}
    assert q.loc["D2", "value"] == "1,200 EUR"  # the amount with the code that set it aside
    amounts = data.deals.set_index("deal_id")["amount"]
    assert amounts.drop("D6").to_dict() == {"D0": 1234.5, "D4": 900.0, "D7": 5.0} and pd.isna(amounts["D6"])
    assert data.rows_in["deals"] == len(data.deals) + len(q)
    # yuan in a CNY project: ¥, 元 and CNY are the configured currency, $ is not
    deals, events = _deals_in(["¥1,000", "2,000元", "CNY 3", "$4"])
    data = fk.validate(deals, events, config, as_of=pd.Timestamp("2024-06-30"))
    assert data.quarantine.groupby("deal_id")["reason"].first().to_dict() == {"D3": "other_currency:amount"}


# --- 3. the export as it comes: a title line, a log of stage changes, init's draft


def test_a_title_line_and_a_blank_line_above_the_header_are_skipped(tmp_path):
    """The history workbook starts with "Deal stage history - exported …" and a blank line: its
    columns were read as that title and "Unnamed: 1…" (and init said the file shared no column with
    the deals). A CSV written the same way stopped with a tokenizing error. Row 1 stays the first line
    under the header."""
    history = read_table(FOLDER / "deal_stage_history.xlsx")
    assert list(history.columns) == ["Record ID", "From stage", "To stage", "Changed at", "Changed by"]
    assert len(history) == 974 and str(history.iloc[0]["Record ID"]) == "1001"
    csv_file = tmp_path / "deals.csv"
    csv_file.write_text("Deals report\n\nid,stage,amount\nD1,Lead,100\nD2,Won,200\n", encoding="utf-8")
    assert read_table(csv_file).to_dict("list") == {"id": ["D1", "D2"], "stage": ["Lead", "Won"], "amount": ["100", "200"]}
    plain = tmp_path / "plain.csv"
    plain.write_text("id,stage,note\nD1,Lead,\nD2,,\n", encoding="utf-8")  # a sparse row is no title
    assert list(read_table(plain).columns) == ["id", "stage", "note"] and len(read_table(plain)) == 2


@pytest.fixture(scope="module")
def drafted(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("review4") / "myproject"
    assert cli(["init", str(target), "--from", str(FOLDER)]) == 0
    return target


def test_init_drafts_the_stage_change_log_with_closes_currency_and_a_real_team(drafted, capsys):
    """"To stage" / "Changed at" were not recognised (the draft was a snapshot with the stages in
    alphabetical order, every deal quarantined for its pipeline 'Sales Pipeline', currency CNY for
    dollar amounts, and a Chinese set for team North, which this export does not have)."""
    draft = yaml.safe_load((drafted / "params" / "presets" / "my_export.yaml").read_text(encoding="utf-8"))
    assert draft["shape"] == "canonical"
    assert draft["files"] == {"deals": "deals.tsv", "stage_events": "deal_stage_history.xlsx"}
    assert draft["columns"]["To stage"] == "stage" and draft["columns"]["Changed at"] == "entered_at"
    assert draft["columns"]["Currency"] == "currency" and "Pipeline" not in draft["columns"]
    assert draft["columns"]["Deal probability"] == "win_probability"
    assert list(draft["stages"]) == ["Appointment Scheduled", "Qualified To Buy", "Presentation Scheduled",
                                     "Decision Maker Bought-In", "Contract Sent", "Closed Won", "Closed Lost"]
    assert draft["stages"]["Closed Lost"] is None and draft["status_column"] == "Deal Stage"
    assert draft["status_values"]["Closed Won"] == "won" and draft["status_values"]["Closed Lost"] == "lost"
    assert draft["dayfirst"] is False
    funnel = yaml.safe_load((drafted / "params" / "funnel.yaml").read_text(encoding="utf-8"))
    assert funnel["currency"] == "USD"
    matrix = yaml.safe_load((drafted / "params" / "reports.yaml").read_text(encoding="utf-8"))
    assert {tuple(e["teams"]) for e in matrix["entries"] if e.get("language") == "zh"} == {("Enterprise",)}
    assert all(e["periods"] == ["2024"] for e in matrix["entries"])


def test_the_draft_loads_closes_as_no_stage_rows_and_keeps_file_rows(drafted, monkeypatch):
    """288 deals: 32 in euros are set aside (and their 101 stage rows); 974 history rows, of which
    119 are "To stage: Closed Lost" (one per lost deal) → 855 stage rows in. A quarantined row keeps
    its row in the file although close rows above it were left out (deal 1005's first change is
    file row 15 of the history: 1001 ×4, 1002 ×2, 1003 ×4, 1004 ×4 with its close at row 14)."""
    monkeypatch.setenv(PROJECT_ENV, str(drafted))
    config = fk.load_config()
    data = fk.load_data(FOLDER, config=config, preset="my_export")
    assert data.rows_in == {"deals": 288, "stage_events": 855}
    assert (len(data.deals), len(data.events)) == (256, 754)
    assert any("119 rows mark a close ('Closed Lost'" in note for note in data.notes)
    history = read_table(FOLDER / "deal_stage_history.xlsx")
    q = data.quarantine[data.quarantine["table"] == "stage_events"]
    for row, deal in zip(q["row"], q["deal_id"]):  # each quarantined row is that deal's row in the file
        assert str(history.iloc[row - 1]["Record ID"]) == deal
    assert (q["deal_id"] == "1005").any() and q.loc[q["deal_id"] == "1005", "row"].min() == 15
    deals = pd.read_csv(FOLDER / "deals.tsv", sep="\t", dtype=str, encoding="utf-8-sig")
    assert (deals["Deal Stage"] == "Closed Lost").sum() == 119  # one close row per lost deal
    lost_kept = deals.loc[deals["Deal Stage"].eq("Closed Lost") & deals["Currency"].ne("EUR"), "Record ID"]
    assert set(data.deals.loc[data.deals["status"] == "lost", "deal_id"]) == set(lost_kept)


def test_init_whose_draft_analyses_nothing_sets_no_period_from_today(tmp_path, capsys):
    """With every deal quarantined the as-of date is today's, and init set the report periods to
    this year ("report periods set to 2026" for a 2024 export); now it leaves them and says so."""
    export = tmp_path / "export"
    export.mkdir()
    (export / "deals.csv").write_text("Deal ID,Stage,Created\nD1,Lead,someday\nD2,Won,never\n", encoding="utf-8")
    target = tmp_path / "myproject"
    assert cli(["init", str(target), "--from", str(export)]) == 1
    out = capsys.readouterr().out
    assert "0 of 2 deals analysed; report periods left as they were" in out
    matrix = (target / "params" / "reports.yaml").read_text(encoding="utf-8")
    assert str(pd.Timestamp.today().year) not in matrix and "periods: [2024-Q2, 2024-06]" in matrix


# --- 4. what a sales director read: a team with every deal open, unscored deals


@pytest.fixture
def own(drafted, monkeypatch) -> tuple[fk.Dataset, fk.config.FunnelConfig]:
    """The export loaded with init's draft, the project set for this test only (a module-wide
    setting would hand later tests, and session fixtures built then, the project's config)."""
    monkeypatch.setenv(PROJECT_ENV, str(drafted))
    config = fk.load_config()
    return fk.load_data(FOLDER, config=config, preset="my_export"), config


def test_a_team_with_every_deal_open_is_not_told_its_win_rates_are_100(own):
    """New Markets (24 deals analysed, all open): the conversion and rep reports said "New Markets has no
    lost deal on record, so its win rates are 100%" where no win rate was shown at all."""
    from funnelkit.presentation.present import load_text, win_rate_notes

    data, _ = own
    new_markets = data.deals[data.deals["team"] == "New Markets"]
    assert len(new_markets) == 24 and set(new_markets["status"]) == {"open"}
    for language in ("en", "zh"):
        text = load_text(language)
        assert win_rate_notes(data, text, team="New Markets") == [text("no_closed_in_team", team="New Markets")]
    assert "100%" not in win_rate_notes(data, load_text("en"), team="New Markets")[0]
    assert win_rate_notes(data, load_text("en"), team="Enterprise") == []  # wins and losses on record


def test_no_criterion_is_named_missed_most_often_by_zero_deals(own):
    """The export has none of the screening fields: the headline said "the criterion missed most
    often is Need fit (0 deals)"."""
    from funnelkit.analyses.screening import failing_criteria
    from funnelkit.presentation.present import load_text, opportunity_findings

    data, config = own
    scope = fk.Scope.build(data, config, team="Enterprise", as_of="2024-12-31")
    screened = fk.screen_opportunities(scope.open_deals, fk.load_screening(), as_of=scope.as_of)
    assert failing_criteria(screened)["not met"].max() == 0 and len(screened) == 67  # 76 less 9 in euros
    both = fk.score_deals(scope.open_deals, fk.load_scorecard())
    both = both.merge(screened[["deal_id", "is_opportunity"]], on="deal_id")
    text = load_text("en")
    first = opportunity_findings(screened, both, both.iloc[0:0], text, "baseline", "USD")[0][0]
    assert "missed most often" not in first and "(0 deals)" not in first
    # review5: with every criterion unknown, "0 of 67 … are opportunity points" was itself a 0 for unknown
    assert first.startswith("Opportunity points not known") and "67 open deals" in first and "0 of 67" not in first


def test_overdue_follow_ups_are_unknown_not_0_when_no_open_deal_is_scored(own):
    """No open deal is scored (no scorecard fields), so there is no follow-up plan: the index said
    "Overdue follow-ups 0" for every team."""
    from funnelkit.analyses.executive import team_figures
    from funnelkit.presentation.present import load_text
    from funnelkit.presentation.present_executive import index_figures

    data, config = own
    table = team_figures(data, config, "2024", ["Enterprise", "Mid-Market", "New Markets"], as_of="2024-12-31")
    assert table["overdue"].isna().all() and (table["open_deals"] > 0).all()
    shown = index_figures(table, load_text("en"), {}, "USD", "2024", "2024-12-31", 0.95)
    column = shown["headers"].index("Overdue follow-ups")
    assert {row["cells"][column - 1] for row in shown["rows"]} == {"not available: no open deal is scored"}
    crm = shown["headers"].index("CRM-probability forecast")  # the draft maps "Deal probability", but
    closed_only = table.assign(crm_forecast=float("nan"))  # without it the cell said "–"
    shown = index_figures(closed_only, load_text("en"), {}, "USD", "2024", "2024-12-31", 0.95)
    assert {row["cells"][crm - 1] for row in shown["rows"]} == {"not available (no probabilities)"}


def test_a_rep_with_one_closed_deal_reads_1_closed_deal(own):
    """Kai Müller has one deal, lost: the headline read "on 1 closed deals vs team …"."""
    from funnelkit.presentation.present import load_text, rep_findings

    data, config = own
    scope = fk.Scope.build(data, config, team="Enterprise", as_of="2024-12-31")
    summary = fk.rep_summary_of(scope, "2024")
    assert summary.set_index("rep").loc["Kai Müller", "closed"] == 1
    text = load_text("en")
    first = rep_findings(summary, "Kai Müller", pd.DataFrame({"rep_rate": [], "team_rate": []}), 0, 0, {}, text)[0][0]
    assert "on 1 closed deal vs team" in first and "1 closed deals" not in first
    one = text.counted("rep_headline_period", "closed", rep="Kai Müller", period="2024", rate="0.0%", closed=1,
                       team_rate="21.2%")
    assert one == "Kai Müller in 2024 alone: win rate 0.0% on 1 closed deal (team 21.2%)."
    zh = load_text("zh")
    assert zh.counted("rep_headline_period", "closed", rep="K", period="2024", rate="0%", closed=1, team_rate="1%") \
        == zh("rep_headline_period", rep="K", period="2024", rate="0%", closed=1, team_rate="1%")


def test_a_rep_report_does_not_count_0_overdue_follow_ups_of_unscored_deals(own):
    """The rep reports said "0 stalled and 0 overdue deals to act on" and listed 0 overdue per rep,
    though no open deal is scored, so there is no follow-up plan to be overdue against."""
    from funnelkit.analyses.playbook import follow_up_plan, load_playbook, overdue_known
    from funnelkit.presentation.present import load_text, rep_findings, rollup_table

    data, config = own
    scope = fk.Scope.build(data, config, team="Enterprise", as_of="2024-12-31")
    plan = follow_up_plan(fk.score_deals(scope.open_deals, fk.load_scorecard()), load_playbook(), "2024-12-30")
    assert plan.empty and len(scope.open_deals) == 67
    assert not overdue_known(plan, scope.open_deals, "Mei Chen")
    assert overdue_known(plan, scope.open_deals, "Kai Müller")  # no open deal: 0 overdue is a count
    summary = fk.rep_summary_of(scope, "2024", plan=plan)
    by_rep = summary.set_index("rep")["overdue"]
    assert by_rep["Kai Müller"] == 0 and by_rep.drop("Kai Müller").isna().all()
    text = load_text("en")
    assert ">not scored<" in rollup_table(summary, text).to_html()
    last = rep_findings(summary, "Mei Chen", pd.DataFrame({"rep_rate": [], "team_rate": []}), 0, None, {}, text)[-1][0]
    assert last == "0 stalled deals to act on; overdue follow-ups not known: no open deal is scored."


def test_a_project_made_by_an_older_funnelkit_gets_new_wording_keys(tmp_path, monkeypatch):
    """`init` copies params/text.yaml into the project; a key added later (here review4's
    overdue_unscored_cell) made every rep report of that project fail with KeyError. The project's
    own wording still wins for the keys it has."""
    from funnelkit.presentation.present import load_text

    project = tmp_path / "old"
    (project / "params").mkdir(parents=True)
    from funnelkit.config import PARAMS_DIR

    packaged = yaml.safe_load((PARAMS_DIR / "text.yaml").read_text(encoding="utf-8"))
    old = {"fig_won_value": {"en": "Booked revenue", "zh": "赢单金额"}}
    (project / "params" / "text.yaml").write_text(yaml.safe_dump(old, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv(PROJECT_ENV, str(project))
    text = load_text("en")
    assert text("fig_won_value") == "Booked revenue"
    assert text("overdue_unscored_cell") == "not scored"
    assert set(text.entries) == set(packaged)


def test_long_step_names_under_the_rep_funnel_bars_do_not_overlap():
    """HubSpot's stage names made the five step labels of "Funnel against the team" run into each
    other ("…Scheduled →Qualified To Buy →Presentation Scheduled…")."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from funnelkit.presentation import plots

    steps = ["Appointment Scheduled → Qualified To Buy", "Qualified To Buy → Presentation Scheduled",
             "Presentation Scheduled → Decision Maker Bought-In", "Decision Maker Bought-In → Contract Sent",
             "Contract Sent → Closed Won"]
    for labels in (steps, ["已约见 → 合格商机", "合格商机 → 已安排演示", "已安排演示 → 决策人认可", "决策人认可 → 已发合同",
                           "已发合同 → 赢单"]):
        table = pd.DataFrame({"Rep": [0.8, 0.78, 0.41, 0.25, 0.67], "Team": [0.83, 0.75, 0.55, 0.47, 0.71]}, index=labels)
        fig = plots.compare_bars(table, "Funnel against the team", "%")
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        boxes = [t.get_window_extent(renderer) for t in fig.axes[0].get_xticklabels()]
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), [(b.x0, b.x1) for b in boxes]
        shown = [t.get_text().replace("\n", " ") for t in fig.axes[0].get_xticklabels()]
        assert [s.replace(" ", "") for s in shown] == [s.replace(" ", "") for s in labels]  # wrapped, not cut


def test_score_prints_no_nan_for_a_tier_without_deals(drafted, monkeypatch, capsys):
    """`funnelkit score` on the export (no deal scored) printed "nan" as the amount of each empty tier."""
    monkeypatch.setenv(PROJECT_ENV, str(drafted))
    cli(["score", str(FOLDER), "--preset", "my_export"])
    out = capsys.readouterr().out
    assert "nan" not in out.lower()
    high = next(line for line in out.splitlines() if line.startswith("high"))
    assert high.split() == ["high", "0", "0.0%", "–", "0.0%"]


def test_salesforce_history_rows_keep_their_file_row_in_the_quarantine(tmp_path, config):
    """The Salesforce reader sorts OpportunityHistory and leaves out closes and repeated stages, and
    the quarantine then numbered rows by position in what was left: an example row named another
    line of the file than the one at fault."""
    from funnelkit.inputs.crm_shapes import write_salesforce

    write_salesforce(fk.sample_dataset(seed=4, n_deals=120), tmp_path / "sf")
    folder = tmp_path / "sf"
    path = folder / "OpportunityHistory.csv"
    history = pd.read_csv(path, dtype=str, keep_default_na=False)
    target = len(history) - 5  # a row late in the file, after many closes
    history.loc[target, "StageName"] = "Bogus Stage"
    history.to_csv(path, index=False)
    data = fk.load_data(folder, config=config, preset="salesforce")
    bad = data.quarantine[(data.quarantine["table"] == "stage_events") & (data.quarantine["value"] == "Bogus Stage")]
    assert list(bad["row"]) == [target + 1]  # 1-based data row of the file


def test_a_year_report_names_its_one_window_once():
    """For a year the 12-month window is the year itself: the rep report said "Windows: 2024 (the
    report period) and 2024" and "the first columns are 2024 alone; the others cover 2024"."""
    from funnelkit.periods import parse_period, trailing_window as rep_window
    from funnelkit.presentation.present import load_text
    from funnelkit.presentation.story import windows_words

    text = load_text("en")
    year = parse_period("2024")
    note, line = windows_words(text, year, rep_window(year, 12))
    assert (note, line) == ("rep_windows_note_same", "Window: 2024, the report period.")
    assert "2024 alone" not in text(note, period="2024", trailing="2024")
    month = parse_period("2024-06")
    note, line = windows_words(text, month, rep_window(month, 12))
    assert note == "rep_windows_note" and line.startswith("Windows: 2024-06 (the report period) and 12 months to 2024-06")


def test_key_figures_of_the_export_match_a_count_by_hand(own):
    """Won value and win rate per team worked out from deals.tsv alone (dollar deals closed in
    2024, "$1,234.50" read as 1234.5): the index's figures for the same teams."""
    from funnelkit.analyses.executive import team_figures

    data, config = own
    raw = pd.read_csv(FOLDER / "deals.tsv", sep="\t", dtype=str, encoding="utf-8-sig", keep_default_na=False)
    raw = raw[raw["Currency"] != "EUR"]
    closed = raw[raw["Deal Stage"].isin(["Closed Won", "Closed Lost"])]
    assert closed["Close Date"].str[6:10].eq("2024").all()
    table = team_figures(data, config, "2024", ["Enterprise", "Mid-Market", "New Markets"], as_of="2024-12-31")
    for team, row in table.set_index("team", drop=False).iloc[:3].iterrows():
        mine = closed[closed["Team"] == team]
        won = mine[mine["Deal Stage"] == "Closed Won"]
        value = won["Amount"].str.replace(r"[$,]", "", regex=True).replace("", "nan").astype(float).sum()
        assert (row["won"], row["closed"]) == (len(won), len(mine))
        if len(won):  # New Markets has none
            assert row["won_value"] == pytest.approx(value)
    assert tuple(table.set_index("team", drop=False).loc["Enterprise", ["won", "closed"]]) == (17, 80)
