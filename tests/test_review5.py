"""review5: defects a sales-operations analyst hit taking a Chinese CRM export to reports.

tests/data/review5/ (written by make_review5.py): `商机列表.csv` (GBK, Chinese headers such as
销售阶段, 所属部门, 预计成交金额（元）, 创建时间, 结单日期, 赢单/输单; dates `2024/3/5 14:07` and
`2024年3月5日`; amounts `￥1,234,500.00` and `12.5万`; three rows exported twice; a 合计 line) and
`阶段变更记录.xlsx` (a notes sheet 说明 first, then the log: 商机编号, 变更前阶段, 变更后阶段, 变更时间).
Each test failed before its fix. The numbers are worked by hand from the files with the csv module
and openpyxl, not with funnelkit.
"""
from __future__ import annotations

import csv
import io
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from openpyxl import load_workbook

import funnelkit as fk
from funnelkit.config import load_config
from funnelkit.inputs.data import parse_amounts, parse_datetimes
from funnelkit.runner.project import draft_preset, init_project

from conftest import drafted_project, load_with_draft

FOLDER = Path(__file__).parent / "data" / "review5"
DEALS, LOG = FOLDER / "商机列表.csv", FOLDER / "阶段变更记录.xlsx"


def _rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(DEALS.read_bytes().decode("gbk"))))


def _unique_deals() -> dict[str, dict[str, str]]:
    """Deals by id, by hand: a row repeated exactly is one deal (its copies are quarantined); an id
    on rows that differ is quarantined, every row."""
    distinct = list({tuple(r.items()): r for r in _rows() if r["商机编号"]}.values())
    count = Counter(r["商机编号"] for r in distinct)
    return {r["商机编号"]: r for r in distinct if count[r["商机编号"]] == 1}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return drafted_project(tmp_path_factory, FOLDER, "r5")


@pytest.fixture(scope="module")
def loaded(project: Path) -> fk.Dataset:
    return load_with_draft(FOLDER, project)


# --- 1. the draft preset recognises a Chinese CRM's headers and the workbook's data sheet


def test_draft_maps_chinese_headers_and_finds_the_log_behind_a_notes_sheet():
    """The draft recognised only 商机编号, 客户名称 and 负责人: no stage, status, team, dates or amount,
    and it read the workbook's first sheet (说明, notes), so the stage-change log was "not used". A first
    load analysed 0 of 300 deals."""
    draft = yaml.safe_load(draft_preset(FOLDER)[0])
    assert draft["columns"] == {"商机编号": "deal_id", "客户名称": "customer", "负责人": "rep", "所属部门": "team",
                                "创建时间": "created_at", "结单日期": "closed_at", "预计成交金额（元）": "amount",
                                "输单原因": "lost_reason", "变更后阶段": "stage", "变更时间": "entered_at"}
    assert draft["shape"] == "canonical"
    assert "# date column 结单日期: chinese" in draft_preset(FOLDER)[0]
    assert draft["sheets"] == {"stage_events": "阶段变更记录"}
    # 赢单/输单 is blank for open deals: the status comes from the stage now, every value mapped
    assert draft["status_column"] == "销售阶段"
    assert draft["status_values"] == {"初步接洽": "open", "需求确认": "open", "方案报价": "open", "商务谈判": "open",
                                      "赢单": "won", "输单": "lost"}
    assert list(draft["stages"]) == ["初步接洽", "需求确认", "方案报价", "商务谈判", "赢单", "输单"]
    assert draft["stages"]["输单"] is None


def test_draft_matrix_names_a_rep_of_the_export(project: Path):
    """The Chinese entry of reports.yaml kept the sample's rep "Zhao Lei": its report failed, no such rep."""
    matrix = yaml.safe_load((project / "params" / "reports.yaml").read_text(encoding="utf-8"))
    zh = [e for e in matrix["entries"] if e.get("reps") not in (None, "all")]
    assert zh and all(e["reps"] == ["张伟"] and e["teams"] == ["华东销售部"] for e in zh)


# --- 2. dates and amounts as Chinese exports write them


def test_chinese_dates_are_read():
    """结单日期 `2024年6月15日` was "not a date": 149 closed deals were quarantined."""
    parsed = parse_datetimes(pd.Series(["2024年6月15日", "2024年03月05日 14:07", "2024年3月5日 14时07分30秒",
                                        "2024/3/5 14:07", "2024年13月5日", "6月15日"]))
    assert parsed.tolist()[:4] == [pd.Timestamp("2024-06-15"), pd.Timestamp("2024-03-05 14:07"),
                                   pd.Timestamp("2024-03-05 14:07:30"), pd.Timestamp("2024-03-05 14:07")]
    assert parsed.iloc[4:].isna().all()  # no month 13; no year: not guessed


def test_amounts_in_wan_are_read_as_ten_thousands():
    """`32.75万` was "not a number": 50 deals were quarantined. 万 is 10,000, 亿 100,000,000."""
    amounts = parse_amounts(pd.Series(["32.75万", "￥1,234,500.00", "12.3万元", "1.2亿", "万", "", "1,000万"]))
    assert amounts.tolist()[:4] == [327_500.0, 1_234_500.0, 123_000.0, 120_000_000.0]
    assert amounts.iloc[4:6].isna().all()
    assert amounts.iloc[6] == 10_000_000.0


# --- 3. the whole export: rows in = analysed + quarantined, and the numbers by hand


def test_rows_in_equal_analysed_plus_quarantined_and_the_total_line_is_named(loaded: fk.Dataset, project: Path):
    """The 合计 line was quarantined as "deal_id is missing"; it is a total line, and says so."""
    rows = _rows()
    assert loaded.rows_in["deals"] == len(rows) == 300
    q = loaded.quarantine
    assert len(loaded.deals) + (q["table"] == "deals").sum() == loaded.rows_in["deals"]
    log = list(load_workbook(LOG)["阶段变更记录"].iter_rows(min_row=2, values_only=True))
    closes = sum(row[2] == "输单" for row in log)  # `输单: ~`: a close written as a change, left out with a note
    assert loaded.rows_in["stage_events"] == len(log) - closes
    assert len(loaded.events) + (q["table"] == "stage_events").sum() == loaded.rows_in["stage_events"]
    total = q[q["reason"] == "total_line"]
    assert total[["row", "column", "value"]].values.tolist() == [[300, "商机名称", "合计"]]
    assert len(loaded.deals) == len(_unique_deals()) == 296
    # three rows the export repeats exactly (fixes6: each is one deal, not three quarantined ids)
    copies = q[q["reason"] == "exact_duplicate"]
    assert copies[["row", "value"]].values.tolist() == [[12, "row 11"], [79, "row 78"], [152, "row 151"]]
    assert [_rows()[r - 1] for r in (12, 79, 152)] == [_rows()[r - 1] for r in (11, 78, 151)]
    # `funnelkit check` names the line without a deal it does not have (it printed "(deal nan)")
    from funnelkit.runner.check import check_report

    shown = [line for line in check_report(loaded, load_config(project / "params" / "funnel.yaml")) if "row 300," in line]
    assert len(shown) == 1 and shown[0].endswith("column 商机名称 value '合计'"), shown


def test_department_win_rate_and_stage_conversion_by_hand(loaded: fk.Dataset, project: Path):
    """大客户部 (every deal closed): won ÷ closed; the 2024 cohort's step 初步接洽 → 需求确认."""
    config = load_config(project / "params" / "funnel.yaml")
    deals = _unique_deals()
    big = [d for d in deals.values() if d["所属部门"] == "大客户部"]
    won = sum(d["赢单/输单"] == "赢单" for d in big)
    lost = sum(d["赢单/输单"] == "输单" for d in big)
    assert won + lost == len(big) > 0
    metrics = fk.sales_metrics(loaded, config, "2024", by="team").set_index("team")
    assert metrics.loc["大客户部", ["won", "lost"]].tolist() == [won, lost]
    assert metrics.loc["大客户部", "win_rate"] == pytest.approx(won / (won + lost))
    sheet = load_workbook(LOG)["阶段变更记录"]
    entered: dict[str, set[str]] = {}
    for deal_id, _before, after, _at in sheet.iter_rows(min_row=2, values_only=True):
        entered.setdefault(deal_id, set()).add(after)
    first = sum("初步接洽" in entered[d] for d in deals)
    second = sum("需求确认" in entered[d] for d in deals)
    funnel = fk.cohort_funnel(loaded, config, "2024").table.set_index("stage")
    assert funnel.loc["stage_1", "reached"] == first == 296
    assert funnel.loc["stage_2", "reached"] == second
    assert funnel.loc["stage_1", "next_step_rate"] == pytest.approx(second / first)


# --- 4. what the reports showed: 0 where unknown, English in a Chinese report


def test_loss_reason_shares_of_a_period_without_losses_are_unknown(loaded: fk.Dataset, project: Path):
    """The export starts in 2024: the review against 2023 showed every reason's previous share as
    0.0% and a change of "+30.3 pp", as if budget cuts had risen from nothing."""
    config = load_config(project / "params" / "funnel.yaml")
    review = fk.period_review(loaded, config, "2024", team="华东销售部")
    reasons = review.loss_reasons
    assert reasons["lost_previous"].eq(0).all() and reasons["lost_this"].sum() > 0
    assert reasons["share_previous"].isna().all() and reasons["change"].isna().all()
    assert reasons["share_this"].sum() == pytest.approx(1.0)


def test_a_screen_with_every_criterion_unknown_says_so_not_zero(loaded: fk.Dataset, project: Path):
    """The export has none of the screening fields: the headline said "0 of 54 open deals are
    opportunity points" and the tables by stage and rep showed 0 qualified, from no criterion checked."""
    from funnelkit.analyses import screening
    from funnelkit.presentation import present

    config = load_config(project / "params" / "funnel.yaml")
    scope = fk.Scope.build(loaded, config, team="华东销售部")
    screened = fk.screen_opportunities(scope.open_deals, fk.load_screening(), loaded.as_of)
    by_rep = screening.qualified_by(screened, "rep")
    assert by_rep["qualified"].isna().all() and by_rep["open"].sum() == len(screened) > 0
    for language, words in (("en", "not known"), ("zh", "未知")):
        text = present.load_text(language)
        lines = present.opportunity_findings(screened, screened.assign(tier=None, score=float("nan"), amount=0.0),
                                             pd.DataFrame(), text, "baseline", "CNY")
        assert words in lines[0][0] and " 0 " not in lines[0][0]


def test_data_notes_are_worded_in_the_report_language(loaded: fk.Dataset):
    """The zh report's data-quality section ended in English, with the analyst's absolute path:
    "/work/…/阶段变更记录.xlsx: 108 rows mark a close ('输单', `~` under `stages:`) …"."""
    from funnelkit.presentation import present

    closes = next(n for n in loaded.notes if "阶段变更记录.xlsx" in n)
    absolute = closes.replace("tests/data/review5/", str(FOLDER) + "/", 1) if not closes.startswith("/") else closes
    zh = present.note_words(absolute, present.load_text("zh"))
    assert zh.startswith("阶段变更记录.xlsx：108 行把结单（'输单'）记为阶段变更")
    assert "rows" not in zh and str(FOLDER) not in zh
    assert present.note_words("some other note", present.load_text("zh")) == "some other note"


def test_index_figures_of_a_team_with_every_deal_closed(loaded: fk.Dataset, project: Path):
    """大客户部 has no open deal: the index showed its CRM forecast as "¥0" and overdue follow-ups
    as "0" beside "no open deals" for the history forecast."""
    from funnelkit.analyses.executive import team_figures
    from funnelkit.presentation import present
    from funnelkit.presentation.present_executive import index_figures

    config = load_config(project / "params" / "funnel.yaml")
    table = team_figures(loaded, config, "2024", ["华东销售部", "大客户部"])
    assert table.set_index("team").loc["大客户部", "open_deals"] == 0
    text = present.load_text("zh")
    shown = index_figures(table, text, {}, "CNY", "2024", "2024-12-01", 0.95)
    big = next(r for r in shown["rows"] if r["team"] == "大客户部")["cells"]
    crm, overdue = big[4], big[5]
    assert crm == overdue == text("fig_no_open_deals")
    east = next(r for r in shown["rows"] if r["team"] == "华东销售部")["cells"]
    assert east[4] == text("no_probabilities")  # open deals, no CRM probability: unknown, as before


def test_check_names_drafted_stage_keys_by_their_labels(project: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch):
    """`check` listed the stages seen as "stage_1 293, stage_2 212 …": the drafted keys of a
    Chinese export say nothing without the stage names they stand for. And "stage_events: 759 rows
    read" for a log of 867 rows: the 108 closes written as changes were only in a note further down."""
    from funnelkit.runner.cli import main as cli

    monkeypatch.chdir(project)
    code = cli(["check", str(FOLDER), "--preset", "my_export"])
    out = capsys.readouterr().out
    assert code == 0
    assert "stage_1 (Stage 1: 初步接洽) 296, stage_2 (Stage 2: 需求确认) " in out
    assert "deals: 300 rows read = 296 analysed + 4 quarantined\n" in out
    assert "商机列表.csv, row 12 repeats row 11 (deal SJ20240011)\n" in out
    # the log's 867 rows: 759 read as stage entries, 108 closes written as changes (said, not silent)
    assert "stage_events: 759 rows read = 759 analysed + 0 quarantined (and 108 rows of the file that record a close" in out


def test_closed_deals_unscored_for_two_sets_of_fields_read_as_two_groups(loaded: fk.Dataset, project: Path):
    """The weight-sensitivity headline read "缺少成交概率；缺少战略价值；缺少跟进成本；缺少回款周期（44）、缺少预计金额；
    缺少成交概率…（5）": the fields of one group were split by semicolons, the groups by a comma."""
    from funnelkit.presentation import present

    test = type("Backtest", (), {"unscored": 49, "unscored_reasons": {
        "missing:win_probability; missing:payment_days": 44, "missing:amount; missing:win_probability": 5}})()
    zh = present.unscored_sentence(test, present.load_text("zh"))
    assert "缺少成交概率、缺少回款周期（44）；缺少预计金额、缺少成交概率（5）" in zh
    en = present.unscored_sentence(test, present.load_text("en"))
    assert "(44); " in en and en.count("; ") == 1


def test_time_in_stage_headline_of_a_team_with_every_deal_closed(loaded: fk.Dataset, project: Path):
    """大客户部 has no open deal; its headline said "No open deal has sat in its stage longer than
    75% of past stays there lasted", as if some open deals had been checked."""
    from funnelkit.presentation import present

    config = load_config(project / "params" / "funnel.yaml")
    overall = fk.sales_metrics(loaded, config, "2024", team="大客户部").iloc[0]
    assert overall["open_deals"] == 0
    for language in ("en", "zh"):
        text = present.load_text(language)
        lines = present.time_in_stage_findings(pd.DataFrame({"stage": [], "median": [], "p75": []}), pd.DataFrame(),
                                               overall, {}, text, "2024", 0.75, "CNY")
        assert [line for line, anchor in lines if anchor == "stalled"] == [text("tis_headline_no_open")]
    east = fk.sales_metrics(loaded, config, "2024", team="华东销售部").iloc[0]
    lines = present.time_in_stage_findings(pd.DataFrame({"stage": [], "median": [], "p75": []}), pd.DataFrame(),
                                           east, {}, present.load_text("en"), "2024", 0.75, "CNY")
    assert "longer than 75%" in lines[0][0]


def test_common_chinese_spellings_of_loss_reasons_are_translated():
    """The English reports showed 价格太高 and 选择了竞争对手 untranslated beside "Project postponed":
    the vocabulary knew 价格过高 and 竞争对手介入 only. `also:` lists other spellings of a reason."""
    from funnelkit.presentation.loss_reasons import LossReasons, load_loss_reasons

    vocabulary = load_loss_reasons()
    assert vocabulary.label("价格太高", "en") == "Price too high"
    assert vocabulary.label(" 选择了竞争对手 ", "en") == "Competitor stepped in"
    assert vocabulary.label("价格太高", "zh") == "价格过高"
    assert vocabulary.label("预算取消", "en") == "预算取消"  # not the same as 预算不足: shown as typed
    with pytest.raises(ValueError, match="names both"):
        LossReasons(reasons={"a": {"en": "A", "zh": "甲", "also": ["乙"]}, "b": {"en": "B", "zh": "乙"}})


@pytest.mark.parametrize("key", sorted(__import__("funnelkit.inputs.data", fromlist=["DATA_NOTES"]).DATA_NOTES))
def test_every_data_note_is_worded_in_chinese(key: str):
    """Each note a reader writes (made by ``data_note``) is found again by ``note_parts`` and worded
    in Chinese with its figures kept: the history, HubSpot, snapshot, lookup, outcome and
    unrecognised-value notes stayed English in zh reports."""
    import string

    from funnelkit.inputs.data import DATA_NOTES, data_note, note_parts
    from funnelkit.presentation import present

    names = [name for _lit, name, _spec, _conv in string.Formatter().parse(DATA_NOTES[key]) if name]
    fields = {name: f"V{i}x" for i, name in enumerate(names)}
    note = data_note(key, **fields)
    assert note_parts(note) == (key, fields)
    zh = present.note_words(note, present.load_text("zh"))
    assert zh != note and not any(word in zh for word in (" rows ", " deals", "stage entries", "not used"))
    for name, value in fields.items():
        if name != "columns":  # column names are shown as their labels
            assert value in zh, (name, zh)
