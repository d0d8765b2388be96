"""Issue 17: a user's own export reaches a report through a preset and the commands only.

Three fixture shapes live in tests/data/exports/, each with a project folder (its own stages,
currency, preset and report matrix). Their conversion rates are checked against counts worked out
by hand from the files (listed in each test), through the API and in the HTML report.
"""
import html
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

import funnelkit as fk
from funnelkit.runner.cli import main as cli
from funnelkit.config import PROJECT_ENV

EXPORTS = Path(__file__).parent / "data" / "exports"


def load_fixture(name: str, preset: str, monkeypatch) -> tuple[fk.Dataset, fk.config.FunnelConfig]:
    project = EXPORTS / name / "project"
    monkeypatch.setenv(PROJECT_ENV, str(project))
    config = fk.load_config()
    return fk.load_data(EXPORTS / name, config=config, preset=preset), config


def rates(data, config, period, team=None) -> dict[str, int]:
    funnel = fk.cohort_funnel(data, config, period, team=team)
    return dict(zip(funnel["stage"], funnel["reached"]))


def test_snapshot_with_agents_lookup(monkeypatch, config):
    """sales_pipeline.csv: 12 deals. S01, S11 are Prospecting with no date at all (quarantined: no
    date); S12's agent Dan Wu is not in sales_teams.csv (quarantined: team missing). The other 9
    engaged in 2017: won S03 S05 S07 S09, lost S04 S08 (at Engaging), open S02 S06 S10.
    Teams by manager: Dustin Brinkmann (Anna Lee, Boris Kim) S02 S03 S04 S05 S09 S10 → 3 won of 6;
    Melvin Marxen (Cara Diaz) S06 S07 S08 → 1 won of 3."""
    data, own = load_fixture("snapshot_agents", "crm", monkeypatch)
    assert own.stage_keys() == ["prospecting", "engaging", "won"] and own.currency == "USD"
    assert data.rows_in["deals"] == 12 and len(data.deals) == 9
    reasons = data.quarantine[data.quarantine["table"] == "deals"].set_index("deal_id")["reason"].to_dict()
    assert reasons == {"S01": "no_date",
                       "S11": "no_date", "S12": "missing:team"}
    assert rates(data, own, "2017") == {"prospecting": 9, "engaging": 9, "won": 4}
    assert rates(data, own, "2017", "Dustin Brinkmann") == {"prospecting": 6, "engaging": 6, "won": 3}
    assert rates(data, own, "2017", "Melvin Marxen") == {"prospecting": 3, "engaging": 3, "won": 1}
    funnel = fk.cohort_funnel(data, own, "2017")
    assert funnel.set_index("stage").loc["engaging", ["lost_at", "open_at"]].tolist() == [2, 3]
    deals = data.deals.set_index("deal_id")
    assert pd.isna(deals.loc["S09", "customer"])  # a blank account name is kept, not a reason to drop the deal
    assert deals.loc["S03", "created_at"] == pd.Timestamp("2017-01-10")  # from the first stage date
    # the earliest stage's date is unknown: counted in the funnel, left out of timing
    assert not data.events.query("stage == 'prospecting'")["date_known"].any()


def test_two_file_marketing_funnel(monkeypatch):
    """leads.csv: 10 qualified leads, first contact dd-mm-yyyy (L01–L06 in January, L07–L10 in
    February 2018); closed_deals.csv: L02, L05, L09 won (dd-mm-yyyy HH:MM), and L99, a lead not in
    leads.csv (named in a note, not used). Others are open.
    2018-Q1: 3 won of 10; January: 2 of 6; February: 1 of 4."""
    data, own = load_fixture("marketing_two_files", "leads", monkeypatch)
    assert data.quarantine.empty and len(data.deals) == 10
    assert any("closed_deals.csv: 1 of 4 rows name a deal not in" in n and "'L99'" in n for n in data.notes)
    status = data.deals.set_index("deal_id")["status"]
    assert sorted(status[status == "won"].index) == ["L02", "L05", "L09"] and (status != "lost").all()
    assert rates(data, own, "2018-Q1") == {"qualified": 10, "won": 3}
    assert rates(data, own, "2018-01") == {"qualified": 6, "won": 2}
    assert rates(data, own, "2018-02") == {"qualified": 4, "won": 1}
    deals = data.deals.set_index("deal_id")
    assert deals.loc["L04", "created_at"] == pd.Timestamp("2018-01-15")
    assert deals.loc["L02", "closed_at"] == pd.Timestamp("2018-02-15 10:30") and deals.loc["L02", "rep"] == "sr1"


def test_semicolon_win_loss_without_dates(monkeypatch):
    """winloss.csv (;-separated): North W01–W06 with W01 W02 W04 W05 won (4 of 6); South W07–W10
    with W07 won (1 of 4); 5 of 10 overall. No dates: the preset sets the as-of date 2019-12-31."""
    data, own = load_fixture("winloss_semicolon", "winloss", monkeypatch)
    assert data.quarantine.empty and len(data.deals) == 10
    assert data.as_of == pd.Timestamp("2020-01-01")  # the end of the preset's as-of day
    assert rates(data, own, "2019") == {"opportunity": 10, "won": 5}
    assert rates(data, own, "2019", "North") == {"opportunity": 6, "won": 4}
    assert rates(data, own, "2019", "South") == {"opportunity": 4, "won": 1}
    deals = data.deals.set_index("deal_id")
    assert deals.loc["W01", "need_fit"] == "high" and bool(deals.loc["W03", "budget_confirmed"]) is False


def page_text(path: Path) -> str:
    text = re.sub(r"<style.*?</style>|<script.*?</script>|<img[^>]*>", "", path.read_text(encoding="utf-8"), flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)))


@pytest.mark.parametrize("name, period, teams, symbol", [
    # cohorts of a few decided deals read as their counts (fixes4): 3 won of 6 with 2 open → 1 lost
    ("snapshot_agents", "2017", {"Dustin_Brinkmann": "too few decided for a rate — of 6 deals, 3 won, 1 lost and 2 are still open",
                                 "Melvin_Marxen": "too few decided for a rate — of 3 deals, 1 won, 1 lost and 1 is still open"}, "$"),
    # a leads export without losses: 7 of its 10 deals are still open, so the cohort win rate is maturing
    ("marketing_two_files", "2018-Q1",
     {"Marketing": "maturing — 7 of 10 are still open (median age 57 days) and 3 won so far"}, None),
    ("winloss_semicolon", "2019", {"North": "too few decided for a rate — of 6 deals, 4 won and 2 lost;",
                                   "South": "too few decided for a rate — of 4 deals, 1 won and 3 lost;"}, None),
])
def test_fixture_reaches_a_report_through_commands_only(tmp_path, name, period, teams, symbol):
    project = EXPORTS / name / "project"
    out = tmp_path / "reports"
    assert cli(["check", str(EXPORTS / name), "--project", str(project), "--max-quarantined", "30",
                "--preset", yaml.safe_load((project / "params" / "reports.yaml").read_text())["preset"]]) == 0
    assert cli(["report", "--project", str(project), "--output", str(out), "--quiet", "--jobs", "2"]) == 0
    for team, headline in teams.items():
        text = page_text(out / period / team / "conversion.html")
        assert headline in text, text[:2000]
        assert "¥" not in text  # the configured currency, not the default
        if symbol:
            assert symbol in text


def test_check_exits_non_zero_above_the_quarantine_threshold(capsys):
    """25% of the snapshot fixture's deals are quarantined: above the default 20%."""
    args = ["check", str(EXPORTS / "snapshot_agents"), "--project", str(EXPORTS / "snapshot_agents" / "project"),
            "--preset", "crm"]
    assert cli(args) == 1
    last = capsys.readouterr().out.strip().splitlines()[-8:]
    assert last[0] == "NOT USABLE: 25.0% of the deals rows were quarantined, above the 20% allowed (--max-quarantined)"
    assert "deals: deal has no date: no created_at and no dated stage entry: 2 rows, e.g." in last[2]
    assert "sales_pipeline.csv, row 1, column created_at" in last[2]
    assert last[3].strip().startswith("→ map a date column to created_at")
    assert cli(args + ["--max-quarantined", "30"]) == 0


def test_nothing_to_analyse_is_an_error_saying_why(tmp_path, capsys):
    """With the default five stages, none of the export's stage values is known: every deal is set
    aside, so check fails and report refuses with the top reason (no cache path in the message)."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "deals.csv").write_text("deal_id,team,status\nA,East,open\nB,East,open\n")
    (folder / "stage_events.csv").write_text("deal_id,stage,entered_at\nA,Discovery,2024-03-01\nB,Discovery,2024-03-02\n")
    assert cli(["check", str(folder), "--as-of", "2024-06-30"]) == 1
    assert "NOT USABLE: nothing can be analysed: 2 of 2 deals were quarantined" in capsys.readouterr().out
    assert cli(["report", "--data", str(folder), "--as-of", "2024-06-30", "--output", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("funnelkit: no teams: 2 of 2 deals were quarantined; top reason: deal has no valid stage event")
    assert ".cache" not in err


def test_a_named_team_missing_from_the_data_is_an_error(tmp_path, capsys):
    matrix = tmp_path / "reports.yaml"
    matrix.write_text("data: sample\nas_of: 2024-06-30\nentries:\n  - {notebook: conversion, teams: [Atlantis], "
                      "periods: [2024-06]}\n")
    assert cli(["report", "--matrix", str(matrix), "--output", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "entries.0.teams: 'Atlantis' not in the data; its teams are" in err and ".cache" not in err


def test_report_options_override_the_matrix(tmp_path):
    matrix = fk.config.matrix_with(fk.load_report_matrix(), data=str(EXPORTS / "winloss_semicolon"),
                                   preset="winloss", as_of="2019-12-31", language="zh", periods=["2019"])
    assert (matrix.data, matrix.preset, matrix.as_of, matrix.language) == (
        str(EXPORTS / "winloss_semicolon"), "winloss", "2019-12-31", "zh")
    assert {p for e in matrix.entries for p in e.periods} == {"2019"}
    assert fk.parse_period("2017").end == pd.Timestamp("2018-01-01")


def test_init_writes_a_project_that_every_command_finds(tmp_path, monkeypatch, capsys):
    project = tmp_path / "proj"
    assert cli(["init", str(project)]) == 0
    assert {p.name for p in (project / "params").iterdir()} >= {"funnel.yaml", "reports.yaml", "scorecard.yaml",
                                                                 "presets", "text.yaml"}
    assert sorted(p.name for p in (project / "notebooks").glob("*.ipynb")) == sorted(
        p.name for p in fk.config.NOTEBOOKS_DIR.glob("*.ipynb"))
    assert yaml.safe_load((project / "params" / "reports.yaml").read_text())["data"] == "data"
    assert cli(["init", str(project)]) == 2  # never overwrites a project
    # the project's own settings win: from --project, and from the current folder
    funnel = project / "params" / "funnel.yaml"
    funnel.write_text(funnel.read_text(encoding="utf-8").replace("currency: CNY", "currency: USD"), encoding="utf-8")
    monkeypatch.chdir(project)
    monkeypatch.delenv(PROJECT_ENV, raising=False)
    assert fk.load_config().currency == "USD"
    assert fk.config.notebooks_dir() == project / "notebooks"
    monkeypatch.chdir(tmp_path)
    assert fk.load_config().currency == "CNY"
    monkeypatch.setenv(PROJECT_ENV, str(project))
    assert fk.load_config().currency == "USD"


def test_init_from_an_export_drafts_a_preset(tmp_path, monkeypatch, capsys):
    """The draft for the snapshot fixture recognises its columns, stage values (with their order
    from the stage dates), the lookup file, and is good enough for check to run on it."""
    project = tmp_path / "proj"
    assert cli(["init", str(project), "--from", str(EXPORTS / "snapshot_agents"), "--preset-name", "mine"]) == 0
    draft_text = (project / "params" / "presets" / "mine.yaml").read_text(encoding="utf-8")
    assert "# guess" in draft_text
    draft = yaml.safe_load(draft_text)
    assert draft["columns"]["opportunity_id"] == "deal_id" and draft["columns"]["sales_agent"] == "rep"
    assert draft["columns"]["close_date"] == "closed_at" and draft["columns"]["close_value"] == "amount"
    assert draft["stage_column"] == "deal_stage"
    assert draft["stages"] == {"Prospecting": "prospecting", "Engaging": "engaging", "Won": "won", "Lost": None}
    assert draft["status_from_stage"] == {"Won": "won", "Lost": "lost"}
    assert draft["stage_dates"] == {"engaging": "engage_date"}
    assert draft["lookups"][0]["file"] == "sales_teams.csv" and draft["lookups"][0]["columns"]["manager"] == "team"
    monkeypatch.setenv(PROJECT_ENV, str(project))
    assert fk.load_config().stage_keys() == ["prospecting", "engaging", "won"]
    matrix = fk.load_report_matrix()
    assert matrix.preset == "mine" and Path(matrix.data) == (EXPORTS / "snapshot_agents").resolve()
    data = fk.load_data(matrix.data, preset="mine")
    assert rates(data, fk.load_config(), "2017") == {"prospecting": 9, "engaging": 9, "won": 4}


def test_init_from_detects_separator_and_day_first_dates(tmp_path):
    from funnelkit.runner.project import draft_preset

    text, stages, _ = draft_preset(EXPORTS / "winloss_semicolon" / "winloss.csv")
    draft = yaml.safe_load(text)
    assert draft["separator"] == ";" and draft["stage_column"] == "Status"
    assert draft["stages"] == {"Won": "won", "Lost": None} and stages == ["Opportunity", "Won"]
    assert "SET THIS" in text  # no dates: it asks for the as-of date
    text, _, _ = draft_preset(EXPORTS / "marketing_two_files" / "leads.csv")
    assert yaml.safe_load(text)["dayfirst"] is True and yaml.safe_load(text)["columns"]["mql_id"] == "deal_id"


def test_a_project_found_from_the_current_folder_reaches_the_kernels(tmp_path, monkeypatch):
    """Kernels run inside notebooks/, where no params/ is: the command passes the project on."""
    import os

    project = tmp_path / "proj"
    assert cli(["init", str(project)]) == 0
    monkeypatch.chdir(project)
    monkeypatch.delenv(PROJECT_ENV, raising=False)
    seen = {}
    monkeypatch.setattr("funnelkit.runner.cli._report", lambda args: seen.setdefault("env", os.environ.get(PROJECT_ENV)) and 0)
    cli(["report"])
    assert seen["env"] == str(project.resolve())
