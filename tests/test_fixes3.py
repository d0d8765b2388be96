"""fixes3: defects a first-time user hit with the review3 export (tests/data/review3/).

Each test failed before its fix: `init --from` crashing and leaving half a project, report periods
with no data exiting 0, raw ValueError wording, canonical-preset settings ignored, spacing in stage
names, check's date advice, the velocity table for a team with no open deal, singular wording, and
the quarantine reasons' capitals.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

import funnelkit as fk
from funnelkit.config import PROJECT_ENV
from funnelkit.runner import project as project_module
from funnelkit.runner.cli import main as cli

FOLDER = Path(__file__).parent / "data" / "review3"
PROJECT = FOLDER / "project"


# --- 1. init --from


def test_init_from_review3_drafts_the_deals_file_with_distinct_stage_keys(tmp_path, capsys):
    """The deals file is opportunities.csv (one row per 商机编号), not stage_history.csv (the id
    repeats); its draft loads, so the command exits 0."""
    target = tmp_path / "myproject"
    assert cli(["init", str(target), "--from", str(FOLDER)]) == 0
    out = capsys.readouterr().out
    assert "Traceback" not in out
    draft = yaml.safe_load((target / "params" / "presets" / "my_export.yaml").read_text(encoding="utf-8"))
    assert draft["files"]["deals"] == "opportunities.csv"
    funnel = yaml.safe_load((target / "params" / "funnel.yaml").read_text(encoding="utf-8"))
    keys = [s["key"] for s in funnel["pipelines"]["export"]["stages"]]
    assert len(keys) == len(set(keys))
    matrix = yaml.safe_load((target / "params" / "reports.yaml").read_text(encoding="utf-8"))
    assert matrix["preset"] == "my_export" and Path(matrix["data"]) == FOLDER.resolve()


def test_stage_keys_are_distinct_for_chinese_names():
    keys = project_module.stage_keys(["线索", "初步接洽", "Won", "won!"])
    assert keys == {"线索": "stage_1", "初步接洽": "stage_2", "Won": "won", "won!": "won_4"}


def test_init_that_fails_writes_nothing_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    """An unexpected failure while drafting: a sentence naming the export, exit 2, no folder."""
    def broken(source):
        raise TypeError("Cannot cast DatetimeArray to dtype float64")
    monkeypatch.setattr(project_module, "draft_preset", broken)
    target = tmp_path / "myproject"
    assert cli(["init", str(target), "--from", str(FOLDER)]) == 2
    err = capsys.readouterr().err
    assert f"reading the export {FOLDER}" in err and "nothing was written" in err
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone too


def test_init_whose_draft_does_not_load_exits_1_with_the_project_written(tmp_path, capsys):
    """The stage history alone: the draft is written to be fixed, but the command says it failed."""
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(FOLDER / "stage_history.csv", export)
    target = tmp_path / "myproject"
    assert cli(["init", str(target), "--from", str(export)]) == 1
    assert (target / "params" / "presets" / "my_export.yaml").exists()
    assert "a first load with the draft" in capsys.readouterr().out


def test_created_at_from_events_when_no_event_is_valid(config):
    """No created_at column and every stage entry quarantined: each deal is quarantined for having
    no date (before: `Cannot cast DatetimeArray to dtype float64`)."""
    deals = pd.DataFrame({"deal_id": ["D1", "D2"], "team": ["A", "A"], "status": ["open", "open"]})
    events = pd.DataFrame({"deal_id": ["D1"], "stage": ["lead"], "entered_at": ["not a date"]})
    data = fk.validate(deals, events, config, as_of=pd.Timestamp("2024-06-30"))
    assert len(data.deals) == 0 and data.rows_in["deals"] == 2
    assert set(data.quarantine.loc[data.quarantine["table"] == "deals", "row"]) == {1, 2}


# --- 2, 3. report periods


def test_periods_without_data():
    from funnelkit.periods import periods_without_data

    first, bound = pd.Timestamp("2024-01-02 10:00"), pd.Timestamp("2025-01-01")
    assert periods_without_data(["2030-01", "2024-12", "2024", "2023-12", "2023", "2025-Q1"], first, bound) == \
        ["2030-01", "2023-12", "2023", "2025-Q1"]


@pytest.mark.parametrize("period", ["2030-01", "2019-Q1"])
def test_report_for_a_period_without_data_refuses_before_any_notebook(period, tmp_path, capsys):
    out = tmp_path / "reports"
    assert cli(["report", "--project", str(PROJECT), "--period", period, "--output", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"period {period}: no data" in err
    assert "2024-01-02" in err and "as-of date 2024-12-31" in err
    assert not list(out.rglob("*.html"))


def test_report_with_a_malformed_period_says_what_is_expected(tmp_path, capsys):
    assert cli(["report", "--project", str(PROJECT), "--period", "2024-13", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("funnelkit: --period: period '2024-13' is not a period: expected a month YYYY-MM")
    assert "YYYY-Qn" in err and "ValueError" not in err


# --- 5. spacing in stage and status names


def test_stage_and_status_spellings_ignore_case_and_all_spacing(monkeypatch):
    """"初步 接洽" is the stage 初步接洽 (first_contact), "方案-报价" is 方案报价. (A status spelled
    with spaces inside is matched by the preset's status_values: see the canonical preset test.)"""
    monkeypatch.setenv(PROJECT_ENV, str(PROJECT))
    config = fk.load_config()
    deals = pd.DataFrame({"deal_id": ["D1", "D2"], "team": ["A", "A"], "status": ["open", " Won "],
                          "created_at": ["2024-01-02", "2024-01-03"], "closed_at": [None, "2024-03-01"]})
    events = pd.DataFrame({"deal_id": ["D1", "D1", "D2", "D2", "D2"],
                           "stage": ["线 索", "初步 接洽", "LEAD", "方案-报价", " 赢 单 "],
                           "entered_at": ["2024-01-02", "2024-01-05", "2024-01-03", "2024-02-01", "2024-03-01"]})
    data = fk.validate(deals, events, config, as_of=pd.Timestamp("2024-06-30"))
    assert data.quarantine.empty
    assert list(data.events["stage"]) == ["lead", "first_contact", "lead", "proposal", "won"]
    assert list(data.deals["status"]) == ["open", "won"]


# --- 6. check's advice and as-of line


def test_check_says_a_date_does_not_exist_instead_of_advising_dayfirst():
    from funnelkit.runner.check import hint

    words = "closed_at is not a date"
    assert "no calendar day" in hint(words, "31/02/2024") and "dayfirst" not in hint(words, "31/02/2024")
    assert "dayfirst" in hint(words, "12/31/2024")  # a day in month-first order: the setting helps
    assert "dayfirst" in hint(words, "soon")


def test_check_words_the_as_of_date(monkeypatch, capsys):
    monkeypatch.setenv(PROJECT_ENV, str(PROJECT))
    assert cli(["check", str(FOLDER), "--preset", "review3", "--as-of", "2024-12-30"]) in (0, 1)
    out = capsys.readouterr().out
    assert "as-of bound" not in out
    assert "as-of date: 2024-12-30 (the analysis counts everything up to the end of it" in out


# --- 9. one style for quarantine reasons


def test_every_english_quarantine_reason_starts_with_a_capital():
    from funnelkit.inputs.data import QUARANTINE_REASONS
    from funnelkit.presentation.present import load_text, quarantine_words

    text = load_text("en")
    for key in QUARANTINE_REASONS:
        for column in ("deal_id", "team", "closed_at", "amount"):
            words = quarantine_words(f"{key}:{column}", text, pd.Timestamp("2025-01-01"))
            assert words[0].isupper(), (key, words)


# --- 8. singulars


SINGULAR = {"headline_reason": ("n", {"period": "2024-Q4", "reason": "price", "share": 0.5}),
            "opp_headline_overdue": ("overdue", {"overdue_high": 1}),
            "ws_stability": ("fragile_high", {"sd": 0.1, "stable": 0.9}),
            "headline_new_customers": ("n", {"period": "2024-Q4"}),
            "fu_total": ("deals", {})}


@pytest.mark.parametrize("key", sorted(SINGULAR))
def test_one_deal_is_singular_in_english_and_chinese_keeps_its_wording(key):
    from funnelkit.presentation.present import load_text

    count, values = SINGULAR[key]
    en, zh = load_text("en"), load_text("zh")
    one = en.counted(key, count, **values, **{count: 1})
    assert ("1 deal" in one or "1 high-tier deal is" in one) and "1 deals" not in one and "1 high-tier deals" not in one
    assert "2 deals" in en.counted(key, count, **values, **{count: 2}) or "2 high-tier deals" in \
        en.counted(key, count, **values, **{count: 2})
    assert zh.counted(key, count, **values, **{count: 1}) == zh(key, **values, **{count: 1})


def test_weight_scenario_sentence_reads_for_one_deal():
    from funnelkit.presentation.present import load_text

    line = load_text("en")("ws_conclusion", scenario="Amount ×2", out_high=1, into_high=0, movers=1,
                           tau_text="τ 0.9", auc_text="AUC same")
    assert "1 deals" not in line and "moves 1" not in line


# --- 7. velocity of a team whose deals are all closed


def test_velocity_without_open_deals_is_not_available_in_the_table_as_in_the_headline(monkeypatch):
    """West & Co has no open deal: velocity is NaN (was 0), and the time-in-stage table's cell reads
    "not available (needs won deals with amounts and open deals)" (was ¥0)."""
    from funnelkit.analyses.sales import sales_metrics
    from funnelkit.presentation import present

    monkeypatch.setenv(PROJECT_ENV, str(PROJECT))
    config = fk.load_config()
    data = fk.load_data(FOLDER, config=config, preset="review3")
    west = sales_metrics(data, config, "2024", team="West & Co")
    assert int(west["open_deals"].iloc[0]) == 0 and int(west["won"].iloc[0]) > 0
    assert pd.isna(west["velocity_per_day"].iloc[0])
    north = sales_metrics(data, config, "2024", team="North Star")
    assert north["velocity_per_day"].iloc[0] > 0  # with open deals it stays a number
    text = present.load_text("en")
    html_table = present.styled(west[["won", "open_deals", "velocity_per_day"]], text, ints=("won", "open_deals"),
                                money=("velocity_per_day",), currency="CNY",
                                missing=present.missing_words(data)).to_html()
    assert "not available (needs won deals with amounts and open deals)" in html_table
    assert "¥0" not in html_table


# --- 4. canonical preset settings


def _canonical_export(folder: Path) -> None:
    folder.mkdir()
    pd.DataFrame({"编号": ["D1", "D2", "D3"], "团队": ["A", "A", "A"], "结果": ["进行 中", "赢", "输"],
                  "创建": ["2024-01-02", "2024-01-03", "2024-01-04"],
                  "关闭": ["", "2024-03-01", "2024-02-01"]}).to_csv(folder / "deals.csv", index=False)
    pd.DataFrame({"编号": ["D1", "D2", "D2", "D2", "D3"],
                  "阶段": ["Stage A", "Stage A", "Stage B", "Stage C", "Stage A"],
                  "进入时间": ["2024-01-02", "2024-01-03", "2024-02-01", "2024-03-01", "2024-01-04"]}
                 ).to_csv(folder / "stage_events.csv", index=False)


def test_canonical_preset_renames_event_columns_and_maps_stages_and_statuses(tmp_path, config):
    """阶段/进入时间 are the events file's columns; stages: and status_column:/status_values: apply.
    Hand-worked: D1 open at lead; D2 won through lead, qualified, won's pipeline stages; D3 lost."""
    from funnelkit.inputs.presets import Preset

    _canonical_export(tmp_path / "export")
    keys = config.stage_keys(config.default_pipeline)
    preset = Preset.model_validate({
        "shape": "canonical",
        "columns": {"编号": "deal_id", "团队": "team", "创建": "created_at", "关闭": "closed_at",
                    "阶段": "stage", "进入时间": "entered_at"},
        "stages": {"stage a": keys[0], "STAGE B": keys[1], "Stage  C": keys[-1]},
        "status_column": "结果", "status_values": {"进行中": "open", "赢": "won", "输": "lost"}})
    data = fk.load_data(tmp_path / "export", config=config, preset=preset, as_of="2024-06-30")
    assert data.quarantine.empty, data.quarantine
    assert dict(zip(data.deals["deal_id"], data.deals["status"])) == {"D1": "open", "D2": "won", "D3": "lost"}
    assert list(data.events["stage"]) == [keys[0], keys[0], keys[1], keys[-1], keys[0]]


@pytest.mark.parametrize("setting", [{"stage_column": "阶段"}, {"status_from_stage": {"赢": "won"}},
                                     {"stage_dates": {"lead": "创建"}}])  # stages: ~ is a close row (review4)
def test_canonical_preset_refuses_settings_it_cannot_apply(setting, tmp_path, config):
    from funnelkit.inputs.data import DataError
    from funnelkit.inputs.presets import Preset

    _canonical_export(tmp_path / "export")
    preset = Preset.model_validate({"shape": "canonical", "columns": {"编号": "deal_id", "团队": "team",
                                    "创建": "created_at", "关闭": "closed_at", "阶段": "stage",
                                    "进入时间": "entered_at", "结果": "status"}} | setting)
    with pytest.raises(DataError, match=next(iter(setting))):
        fk.load_data(tmp_path / "export", config=config, preset=preset, as_of="2024-06-30")


def test_init_from_review3_drafts_the_canonical_shape_with_its_stage_history(tmp_path):
    """Beside opportunities.csv, stage_history.csv repeats 商机编号 with a stage and a date: the draft
    is the canonical shape, stages in the order deals enter them (赢单 last), statuses mapped."""
    target = tmp_path / "myproject"
    assert cli(["init", str(target), "--from", str(FOLDER)]) == 0
    draft = yaml.safe_load((target / "params" / "presets" / "my_export.yaml").read_text(encoding="utf-8"))
    assert draft["shape"] == "canonical"
    assert draft["files"] == {"deals": "opportunities.csv", "stage_events": "stage_history.csv"}
    assert draft["columns"]["stage"] == "stage" and draft["columns"]["状态"] == "status"
    assert list(draft["stages"])[:4] == ["线索", "初步接洽", "方案报价", "商务谈判"]
    assert list(draft["stages"])[-1] == "赢单"
    assert draft["status_values"] == {"Open": "open", "Won": "won", "Lost": "lost"}
    config = fk.load_config(target / "params" / "funnel.yaml")
    assert config.stage_keys("export") == list(draft["stages"].values())
