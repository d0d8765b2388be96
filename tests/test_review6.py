"""review6: defects a German sales-operations analyst hit taking a Pipedrive-style export to reports.

tests/data/review6/ (written by make_review6.py): `Deals.csv` (`;`-separated, UTF-8 with a BOM,
German headers: Deal-ID, Organisation, Phase, Pipeline, Besitzer, Team, Wert, Währung, Erstellt am,
Abschlussdatum, Status Offen/Gewonnen/Verloren, Verlustgrund; dates `05.03.2024 14:07`; amounts
`1.234.500,00 €` and `12.500 EUR`; two deals in CHF; two pipelines) and `Deal-Änderungen.csv`
(Pipedrive's deal-updates log: one row per field change, Feld = Phase, Status, Wert, Besitzer or
Erwartetes Abschlussdatum). Each test failed before its fix. The numbers are worked by hand from the
files with the csv module, not with funnelkit.
"""
from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest
import yaml

import funnelkit as fk
from funnelkit.config import load_config
from funnelkit.inputs.data import DataError
from funnelkit.inputs.presets import Preset
from funnelkit.runner.project import draft_preset, init_project

from conftest import drafted_project, load_with_draft

FOLDER = Path(__file__).parent / "data" / "review6"
DEALS, LOG = FOLDER / "Deals.csv", FOLDER / "Deal-Änderungen.csv"
PIPELINES = {"Neukunden": ["Qualifiziert", "Kontakt hergestellt", "Angebot erstellt", "Verhandlung", "Gewonnen"],
             "Bestandskunden": ["Bedarf", "Angebot", "Verhandlung", "Gewonnen"]}


def _read(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline=""), delimiter=";"))


def _valid_deals() -> dict[str, dict[str, str]]:
    """The deals by hand: every deal but the two billed in francs (Währung CHF)."""
    return {r["Deal-ID"]: r for r in _read(DEALS) if r["Währung"] in ("EUR", "")}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return drafted_project(tmp_path_factory, FOLDER, "r6")


@pytest.fixture(scope="module")
def loaded(project: Path) -> fk.Dataset:
    return load_with_draft(FOLDER, project)


# --- 1. the draft preset reads a German Pipedrive export


def test_draft_maps_german_headers_the_decimal_comma_and_the_deal_updates_log():
    """The draft recognised only Deal-ID, Team and Pipeline, took Status for the stage, said "the export
    has no dates", left the log "not used" and a first load analysed 0 of 298 deals."""
    text, stages, _notes = draft_preset(FOLDER)
    draft = yaml.safe_load(text)
    assert draft["shape"] == "canonical"
    assert draft["files"] == {"deals": "Deals.csv", "stage_events": "Deal-Änderungen.csv"}
    assert draft["columns"] == {"Deal-ID": "deal_id", "Organisation": "customer", "Besitzer": "rep", "Team": "team",
                                "Erstellt am": "created_at", "Abschlussdatum": "closed_at", "Wert": "amount",
                                "Verlustgrund": "lost_reason", "Pipeline": "pipeline", "Währung": "currency",
                                "Status": "status", "Neuer Wert": "stage", "Geändert am": "entered_at"}
    assert draft["event_rows"] == {"Feld": ["Phase", "Status"]}  # not Wert, Besitzer, Erwartetes Abschlussdatum
    assert draft["decimal"] == "," and draft["separator"] == ";" and draft["dayfirst"] is True
    assert draft["status_values"] == {"Offen": "open", "Gewonnen": "won", "Verloren": "lost"}
    assert draft["stages"]["Verloren"] is None and draft["stages"]["Gewonnen"] == "gewonnen"
    assert stages[-1] == "Gewonnen"


def test_draft_funnel_has_one_pipeline_per_pipeline_of_the_export(project: Path):
    """One pipeline 'export' held both pipelines' stages, and the Pipeline column's values
    (Neukunden, Bestandskunden) were no pipeline of funnel.yaml: every deal would be quarantined."""
    config = load_config(project / "params" / "funnel.yaml")
    assert config.currency == "EUR"
    labels = {name: [s.en for s in config.stages(name)] for name in config.pipelines}
    assert labels == PIPELINES
    assert "&id" not in (project / "params" / "funnel.yaml").read_text(encoding="utf-8")  # no YAML anchors to edit


# --- 2. the whole export: rows in = analysed + quarantined, and the numbers by hand


def test_rows_in_equal_analysed_plus_quarantined(loaded: fk.Dataset):
    deals, log = _read(DEALS), _read(LOG)
    q = loaded.quarantine
    assert loaded.rows_in["deals"] == len(deals) == 298
    assert len(loaded.deals) == len(_valid_deals()) == 296
    assert len(loaded.deals) + (q["table"] == "deals").sum() == loaded.rows_in["deals"]
    # the other fields' rows and the close rows (Status → Verloren) are left out with a note each
    other = sum(r["Feld"] not in ("Phase", "Status") for r in log)
    closes = sum(r["Feld"] == "Status" and r["Neuer Wert"] == "Verloren" for r in log)
    assert loaded.rows_in["stage_events"] == len(log) - other - closes
    assert len(loaded.events) + (q["table"] == "stage_events").sum() == loaded.rows_in["stage_events"]
    note = next(n for n in loaded.notes if "another field" in n)
    assert f"{other} rows" in note and "Wert 123" in note and "Besitzer 8" in note


def test_an_amount_billed_in_francs_is_quarantined_as_another_currency(loaded: fk.Dataset):
    """`632.500 CHF` (Währung CHF) was quarantined as "amount is not a number"."""
    q = loaded.quarantine[loaded.quarantine["table"] == "deals"]
    assert q["reason"].tolist() == ["other_currency:amount"] * 2
    assert q["value"].tolist() == [r["Wert"] for r in _read(DEALS) if r["Währung"] == "CHF"]  # code not repeated


def test_team_win_rate_by_hand(loaded: fk.Dataset, project: Path):
    """Vertrieb Nord's win rate for 2024: won / (won + lost) of its deals closed in 2024."""
    config = load_config(project / "params" / "funnel.yaml")
    status = Counter(r["Status"] for r in _valid_deals().values() if r["Team"] == "Vertrieb Nord")
    metrics = fk.sales_metrics(loaded, config, "2024", team="Vertrieb Nord")
    assert (metrics["won"].iat[0], metrics["lost"].iat[0]) == (status["Gewonnen"], status["Verloren"])
    assert metrics["win_rate"].iat[0] == pytest.approx(status["Gewonnen"] / (status["Gewonnen"] + status["Verloren"]))


def _reached_by_hand(pipeline: str) -> Counter:
    """Deals of ``pipeline`` that reached each stage (their furthest stage or any later one)."""
    deals = _valid_deals()
    order = PIPELINES[pipeline]
    furthest: dict[str, int] = defaultdict(int)
    for row in _read(LOG):
        deal = deals.get(row["Deal-ID"])
        if deal is None or deal["Pipeline"] != pipeline:
            continue
        if row["Feld"] == "Phase" or (row["Feld"] == "Status" and row["Neuer Wert"] == "Gewonnen"):
            furthest[row["Deal-ID"]] = max(furthest[row["Deal-ID"]], order.index(row["Neuer Wert"]))
    return Counter({stage: sum(f >= i for f in furthest.values()) for i, stage in enumerate(order)})


@pytest.mark.parametrize("pipeline, step", [("Neukunden", ("Kontakt hergestellt", "Angebot erstellt")),
                                            ("Bestandskunden", ("Bedarf", "Angebot"))])
def test_one_step_conversion_in_each_pipeline_by_hand(loaded: fk.Dataset, project: Path, pipeline: str,
                                                      step: tuple[str, str]):
    config = load_config(project / "params" / "funnel.yaml")
    funnel = fk.cohort_funnel(loaded, config, "2024", pipeline=pipeline).table.set_index("label")
    reached = _reached_by_hand(pipeline)
    assert funnel["reached"].to_dict() == {s: reached[s] for s in PIPELINES[pipeline]}
    assert funnel.loc[step[0], "next_step_rate"] == pytest.approx(reached[step[1]] / reached[step[0]])


# --- 3. event_rows, the preset key the deal-updates log needs


def test_event_rows_belongs_to_the_canonical_shape_only():
    with pytest.raises(ValueError, match="event_rows"):
        Preset(shape="snapshot", event_rows={"Feld": ["Phase"]})
    assert Preset(shape="canonical", event_rows={"Feld": "Phase"}).event_rows == {"Feld": ["Phase"]}


def test_event_rows_naming_a_missing_column_is_an_error_naming_the_file(project: Path):
    preset = yaml.safe_load((project / "params" / "presets" / "my_export.yaml").read_text(encoding="utf-8"))
    preset["event_rows"] = {"Field": ["Stage"]}
    with pytest.raises(DataError, match=r"Deal-Änderungen\.csv.*Field"):
        fk.load_data(FOLDER, config=load_config(project / "params" / "funnel.yaml"), preset=Preset(**preset))


# --- 4. two pipelines with different stages: one report per pipeline


def test_draft_matrix_has_one_entry_per_pipeline_and_their_reports_do_not_collide(project: Path, loaded: fk.Dataset):
    """Every team report failed: "pipelines Bestandskunden, Neukunden have different stages; choose one
    with pipeline=" (a Python hint), time in stage with a pandas reshape error. The draft now gives each
    entry once per pipeline, and a pipeline's report has a file of its own."""
    from funnelkit.config import load_report_matrix
    from funnelkit.runner.report import expand_matrix

    matrix = load_report_matrix(project / "params" / "reports.yaml")
    assert Counter(e.pipeline for e in matrix.entries) == {"Neukunden": 10, "Bestandskunden": 10}
    jobs = expand_matrix(matrix, loaded)
    paths = [j.relpath for j in jobs]
    assert len(paths) == len(set(paths))
    assert "2024/Vertrieb_Nord/conversion.Neukunden" in paths
    assert "2024/Vertrieb_Süd/conversion.Bestandskunden.zh" in paths
    assert len({(j.title, j.parameters.get("language")) for j in jobs}) == len(jobs)  # a failure names the pipeline


def test_two_entries_writing_one_report_are_an_error(project: Path, loaded: fk.Dataset):
    """Without pipelines in the file names, the second pipeline's report silently overwrote the first."""
    from funnelkit.config import ConfigError, load_report_matrix
    from funnelkit.runner.report import expand_matrix

    matrix = load_report_matrix(project / "params" / "reports.yaml")
    twice = matrix.model_copy(update={"entries": [matrix.entries[0], matrix.entries[0]]})
    with pytest.raises(ConfigError, match=r"entries\.0 and entries\.1 both write 2024/.*conversion\.Neukunden\.html"):
        expand_matrix(twice, loaded)


def test_a_scope_over_two_pipelines_says_which_setting_chooses_one(project: Path, loaded: fk.Dataset):
    """Time in stage took the default pipeline's labels for a team selling in both, mixed the two
    pipelines' stays of one key (Verhandlung is stage 4 of one and 3 of the other) and failed in pandas."""
    config = load_config(project / "params" / "funnel.yaml")
    scope = fk.Scope.build(loaded, config, team="Vertrieb Nord")
    with pytest.raises(ValueError, match=r"`pipeline:` on the entry"):
        scope.labels
    assert list(fk.Scope.build(loaded, config, team="Vertrieb Nord", pipeline="Bestandskunden").labels.values()) \
        == PIPELINES["Bestandskunden"]


# --- 5. overdue follow-ups when the export has no follow-up dates


@pytest.fixture(scope="module")
def with_bedarfsanalyse(project: Path, tmp_path_factory: pytest.TempPathFactory):
    """The config and data after the user's one edit to the draft: Bedarfsanalyse, a Neukunden stage
    no deal entered (so the export cannot show it), added as the third stage."""
    funnel_yaml = yaml.safe_load((project / "params" / "funnel.yaml").read_text(encoding="utf-8"))
    funnel_yaml["pipelines"]["Neukunden"]["stages"].insert(2, {"key": "bedarfsanalyse", "en": "Bedarfsanalyse",
                                                               "zh": "需求分析"})
    path = tmp_path_factory.mktemp("r6-edited") / "funnel.yaml"
    path.write_text(yaml.safe_dump(funnel_yaml, allow_unicode=True), encoding="utf-8")
    config = load_config(path)
    return config, fk.load_data(FOLDER, config=config, preset=project / "params" / "presets" / "my_export.yaml")


@pytest.fixture(scope="module")
def renormalised(project: Path):
    """The scorecard as the user set it: `missing: renormalise` (the export has only the amount)."""
    card = fk.load_scorecard()
    return card.model_copy(update={"missing": "renormalise"})


def test_overdue_is_unknown_not_0_without_follow_up_dates(project: Path, loaded: fk.Dataset, renormalised):
    """The index showed "Overdue follow-ups 0" for every team, the opportunities headline "0 deals are
    overdue", `funnelkit score` "0 overdue": the export has no last follow-up date, so every deal is due
    on the plan date and none can be overdue — a count of nothing."""
    from funnelkit.analyses import executive, playbook
    from funnelkit.presentation.present import load_text
    from funnelkit.presentation.present_executive import index_figures

    config = load_config(project / "params" / "funnel.yaml")
    table = executive.team_figures(loaded, config, "2024", ["Vertrieb Nord"], pipeline="Neukunden", card=renormalised)
    assert table["overdue"].isna().all() and (table["overdue_unknown"] == "undated").all()
    assert table["open_deals"].gt(0).all()
    text = load_text("en")
    shown = index_figures(table, text, config.stage_labels("Neukunden"), "EUR", "2024", "2024-12-15", 0.95)
    # short: a card with the whole reason grew too wide for two cards side by side
    assert dict(shown["cards"][0]["figures"])[text("fig_overdue")] == "not known (no follow-up dates)"
    scope = fk.Scope.build(loaded, config, pipeline="Neukunden")
    plan = fk.follow_up_plan(fk.score_deals(scope.open_deals, renormalised), fk.load_playbook(), "2024-12-15")
    assert len(plan) and not playbook.overdue_known(plan, scope.open_deals)
    # each deal's "Days overdue" was 0 in the plan's table and workbook: unknown, shown blank / "–"
    assert plan["days_overdue"].isna().all() and not plan["overdue"].any()


def test_score_says_overdue_unknown(project: Path, renormalised, tmp_path: Path, capsys, monkeypatch):
    from funnelkit.runner.cli import main

    card = project / "params" / "scorecard.yaml"
    (tmp_path / "card.yaml").write_text(card.read_text(encoding="utf-8").replace(
        "missing: unscored", "missing: renormalise", 1), encoding="utf-8")
    monkeypatch.chdir(project)
    assert main(["score", str(FOLDER), "--preset", "my_export", "--scorecard", str(tmp_path / "card.yaml"),
                 "--out", str(tmp_path / "plan.xlsx")]) == 0
    out = capsys.readouterr().out
    assert "overdue unknown: no deal has a last follow-up date" in out and "0 overdue" not in out


def test_rep_headline_and_roll_up_say_overdue_unknown_without_follow_up_dates(project: Path, loaded: fk.Dataset,
                                                                               renormalised):
    """A rep report's headline said "… and 0 overdue deals to act on" and the roll-up 0 per rep."""
    from funnelkit.analyses import playbook
    from funnelkit.presentation.present import load_text, rollup_table, work_line

    config = load_config(project / "params" / "funnel.yaml")
    scope = fk.Scope.build(loaded, config, team="Vertrieb Süd", pipeline="Neukunden")
    plan = fk.follow_up_plan(fk.score_deals(scope.open_deals, renormalised), fk.load_playbook(), "2024-12-15")
    assert playbook.overdue_unknown(plan, scope.open_deals, "Sabine Groß") == "undated"
    text = load_text("en")
    assert work_line(text, 2, "undated") == ("2 stalled deals to act on; overdue follow-ups not known: "
                                             "no open deal has a last follow-up date.")
    summary = fk.rep_summary_of(scope, "2024", plan=plan)
    has_open = summary["rep"].isin(scope.open_deals["rep"])
    assert summary.loc[has_open, "overdue"].isna().all()
    assert set(summary.loc[has_open, "overdue_unknown"]) == {"undated"}
    # Jürgen Weiß left in June: his open deals went to Sabine Groß, so he has none, and 0 overdue is a count
    assert summary.loc[~has_open, "rep"].tolist() == ["Jürgen Weiß"]
    assert summary.loc[~has_open, "overdue"].tolist() == [0]
    page = rollup_table(summary, text).to_html()
    assert ">unknown<" in page and "Overdue follow-ups unknown: no open deal has a last follow-up date" in page


# --- 6. a stage in the pipeline that no deal ever entered


def test_a_stage_no_deal_entered_has_no_100_percent_step(project: Path, tmp_path: Path):
    """The user added Neukunden's stage Bedarfsanalyse, which no deal ever entered (deals go from
    Kontakt hergestellt to Angebot erstellt). By the any-stage rule the 40 deals past it "reached" it,
    so the cohort funnel showed "Bedarfsanalyse → Angebot erstellt: 100.0%" in its table and chart, a
    rate of no deal at all, beside Table 1's 0 deals in the stage."""
    from funnelkit.presentation import story
    from funnelkit.presentation.present import load_text

    funnel_yaml = yaml.safe_load((project / "params" / "funnel.yaml").read_text(encoding="utf-8"))
    stages = funnel_yaml["pipelines"]["Neukunden"]["stages"]
    stages.insert(2, {"key": "bedarfsanalyse", "en": "Bedarfsanalyse", "zh": "需求分析"})
    (tmp_path / "funnel.yaml").write_text(yaml.safe_dump(funnel_yaml, allow_unicode=True), encoding="utf-8")
    config = load_config(tmp_path / "funnel.yaml")
    data = fk.load_data(FOLDER, config=config, preset=project / "params" / "presets" / "my_export.yaml")
    table = fk.cohort_funnel(data, config, "2024", pipeline="Neukunden").table.set_index("stage")
    reached = _reached_by_hand("Neukunden")
    assert table.loc["bedarfsanalyse", "entered"] == 0
    assert table.loc["bedarfsanalyse", "reached"] == reached["Angebot erstellt"]
    assert table.loc["qualifiziert", "entered"] == reached["Qualifiziert"]
    for language, words in (("en", "no deal entered it: all"), ("zh", "没有商机进入该阶段")):
        text = load_text(language)
        shown = story.cohort_table(fk.cohort_funnel(data, config, "2024", pipeline="Neukunden", language=language),
                                   text).set_index("stage")
        label = "Bedarfsanalyse" if language == "en" else "需求分析"
        assert shown.loc[label, "cohort_step_rate"].startswith(words)
        assert "100.0%" not in shown.loc[label, "cohort_step_rate"]
        chart = story.funnel_chart_frame(fk.cohort_funnel(data, config, "2024", pipeline="Neukunden",
                                                          language=language), text)
        assert words in chart["step_text"].iloc[3]


# --- 7. the opportunities headline when the CRM has none of the screening fields


def test_high_scoring_deals_do_not_fail_a_screen_nothing_was_checked_on(project: Path, loaded: fk.Dataset,
                                                                         renormalised):
    """The headline said "27 high-scoring deals fail the screen … check them by hand" while every
    criterion of every deal was unknown (the export has none of the screening fields)."""
    from funnelkit.analyses import screening
    from funnelkit.presentation.present import load_text, opportunity_findings, screen_reasons

    config = load_config(project / "params" / "funnel.yaml")
    deals = fk.Scope.build(loaded, config, team="Vertrieb Süd", pipeline="Neukunden").open_deals
    text = load_text("en")
    screened = screening.screen_opportunities(deals, screening.load_screening(), "2024-12-15", "en")
    scored = fk.score_deals(deals, renormalised)
    plan = fk.follow_up_plan(scored, fk.load_playbook(), "2024-12-15")
    reasons = screened.assign(screen_reason=screen_reasons(screened, text))
    both = scored.merge(reasons[["deal_id", "is_opportunity", "met_count", "screen_reason"]], on="deal_id")
    assert (both["tier"] == "high").sum() > 0 and not both["is_opportunity"].any()
    lines = [line for line, _ in opportunity_findings(screened, both, plan, text, "Baseline", "EUR")]
    assert not any("fail the screen" in line for line in lines)
    assert any(line.startswith("Opportunity points not known") for line in lines)


def test_screen_by_tier_and_top_drivers_without_the_fields(project: Path, loaded: fk.Dataset, renormalised):
    """The side-by-side table counted all 27 high-tier deals under "Fails the screen" though no
    criterion was known, and each deal scored on its amount alone listed "Win probability 0" as its
    second driver: a dimension it does not have."""
    from funnelkit.analyses import screening

    config = load_config(project / "params" / "funnel.yaml")
    deals = fk.Scope.build(loaded, config, team="Vertrieb Süd", pipeline="Neukunden").open_deals
    screened = screening.screen_opportunities(deals, screening.load_screening(), "2024-12-15", "en")
    scored = fk.score_deals(deals, renormalised)
    grid = screening.screen_by_tier(scored, screened).set_index("tier")
    assert grid["passes"].sum() == 0 and grid["fails"].sum() == 0
    assert grid["unknown"].to_dict() == scored["tier"].fillna("unscored").value_counts().reindex(
        grid.index, fill_value=0).to_dict()
    drivers = scored["top_drivers"].dropna()
    assert len(drivers) and drivers.str.fullmatch(r"amount:\d+").all()


def test_the_stalled_headline_names_a_numeric_deal_id_as_a_deal():
    """"the longest is 1108 (Hans-Jürgen …, 322 days …)": Pipedrive's ids are numbers, read as a count."""
    from funnelkit.presentation.present import load_text

    assert "the longest is deal 1108 (" in load_text("en")("tis_headline_stalled", n=17, q=75, deal="1108",
                                                           rep="A", days=322, stage="Kontakt hergestellt")
    assert "最久的是商机 1108（" in load_text("zh")("tis_headline_stalled", n=17, q=75, deal="1108", rep="A",
                                                    days=322, stage="Kontakt hergestellt")


def test_rep_reports_show_no_100_percent_out_of_a_stage_no_deal_entered(with_bedarfsanalyse):
    """The rep report's window table read "需求分析 → Angebot erstellt 100.0% (14 个中 14 个)" and its
    chart drew 100% bars for rep and team: a step out of a stage every deal skipped."""
    from funnelkit.analyses import reps
    from funnelkit.analyses.rep_periods import rep_period_figures
    from funnelkit.presentation import story
    from funnelkit.presentation.present import load_text

    config, data = with_bedarfsanalyse
    scope = fk.Scope.build(data, config, team="Vertrieb Süd", pipeline="Neukunden", language="zh")
    text = load_text("zh")
    table = story.rep_period_table(rep_period_figures(scope, "Sabine Groß", "2024", 12), scope.labels, text)
    row = table.set_index("measure").loc["需求分析 → Angebot erstellt"]
    assert all(cell.startswith("没有商机进入该阶段") for cell in row)
    rates = reps.rep_vs_team(scope, "Sabine Groß", fk.parse_period("2024"))
    skipped = rates["stage"] == "bedarfsanalyse"
    assert rates.loc[skipped, ["rep_skipped", "team_skipped"]].to_numpy().all()
    assert reps.readable_rates(rates).loc[skipped, ["rep_rate", "team_rate"]].isna().to_numpy().all()
    notes = story.missing_bar_notes(rates, scope.labels, text, "Sabine Groß")
    assert any("需求分析 → Angebot erstellt" in n and "跳过" in n for n in notes)


def test_score_names_the_fields_the_export_lacks_and_the_currency(project: Path, capsys, monkeypatch):
    """`funnelkit score` listed "would be scored with: win_probability; …" but never said the export has
    none of them (a loaded export carries every canonical column, blank), and its amount column gave
    no currency."""
    from funnelkit.runner.cli import main

    monkeypatch.chdir(project)
    assert main(["score", str(FOLDER), "--preset", "my_export"]) == 1  # nothing scored on the packaged card
    out = capsys.readouterr().out
    assert "amount (EUR)" in out
    assert "(no win_probability; strategic_value; follow_up_cost; payment_days in the data: map an export column" \
        in out


def test_no_too_few_decided_note_when_every_such_step_reads_maturing(project: Path, loaded: fk.Dataset):
    """Key Accounts' cohort funnel showed two maturing steps and no "too few decided" one, yet the note
    under it explained the "too few decided" mark: Verhandlung → Gewonnen (7 decided) was flagged both."""
    from funnelkit.presentation import story
    from funnelkit.presentation.present import load_text

    config = load_config(project / "params" / "funnel.yaml")
    funnel = fk.cohort_funnel(loaded, config, "2024", team="Key Accounts", pipeline="Bestandskunden")
    table = funnel.table.set_index("label")
    assert table.loc["Verhandlung", "maturing"] and table.loc["Verhandlung", "decided"] < 10
    assert not table["few_decided"].any()
    assert story.few_decided_note(load_text("en"), funnel["few_decided"]) == []


def test_init_says_the_packaged_amount_bands_are_set_for_yuan(tmp_path: Path):
    """With the amounts in EUR, the packaged card's amount bands (≥ 1,000,000 scores 5, set for CNY)
    rated 56% of the open deals high on their amount alone, and nothing said the bands were the sample's."""
    lines, loaded = init_project(tmp_path / "proj", FOLDER)
    assert loaded
    note = next(line for line in lines if "amount bands" in line)
    assert "EUR" in note and "CNY" in note and "fit-scorecard" in note
    assert any("296 of 298 deals analysed" in line for line in lines)


def test_weight_sensitivity_says_why_without_complete_cards(project: Path, tmp_path: Path):
    """With `missing: renormalise` the open deals are scored on their amount alone: the tier-change
    section said "No open deal has every scorecard field, so none is scored" beside a headline of
    scored comparisons, and the backtest "1 closed deals could not be scored"."""
    import nbformat
    from funnelkit.presentation.present import load_text

    nb = nbformat.read(Path(fk.__file__).parent.parent / "notebooks" / "weight_sensitivity.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert 'why_complete = why or (None if len(stability) else "no_complete")' in code
    assert code.count("if why_complete:") == 2  # the sweep and the random weights; the comparison takes partial cards
    assert load_text("en").counted("unscored_closed", "n", n=1, reasons="x") == "1 closed deal could not be scored: x."
    assert "renormalise" in load_text("zh")("no_complete")


def test_suggested_weights_count_the_deals_the_fit_could_use(project: Path, loaded: fk.Dataset, renormalised):
    """"Weights can be suggested from at least 10 won and 10 lost scored deals; this window has 15 won
    and 22 lost, so none are suggested": the counts were the backtest's (scored on part of the card),
    the fit needs every weighted field."""
    from funnelkit.analyses import sensitivity

    config = load_config(project / "params" / "funnel.yaml")
    scope = fk.Scope.build(loaded, config, team="Vertrieb Nord", pipeline="Neukunden")
    history = sensitivity.closed_in(scope.deals, fk.parse_period("2024"))
    suggestion = sensitivity.suggest_weights(history, renormalised)
    assert suggestion.unavailable == "few_closed" and (suggestion.won, suggestion.lost) == (0, 0)
    test = sensitivity.backtest(history, renormalised, [])
    assert int(test.auc["won"].iloc[0]) >= 10  # what the page used to quote


def test_the_funnel_plot_shows_the_upper_limits(project: Path, loaded: fk.Dataset):
    """Vertrieb Nord's reps (7–12 closed deals, 33–50% won) gave an axis up to 60%: the upper 95% and
    99.8% limits (near 80% at 7 deals) were cut off, only the lower ones drawn."""
    from funnelkit.analyses import reps
    from funnelkit.presentation import plots

    config = load_config(project / "params" / "funnel.yaml")
    scope = fk.Scope.build(loaded, config, team="Vertrieb Nord", pipeline="Neukunden")
    summary = fk.rep_summary_of(scope, "2024")
    limits = reps.funnel_plot_limits(summary)
    fig = plots.funnel_plot(summary.table, limits, summary.team_rate, "t")
    top = fig.axes[0].get_ylim()[1]
    at_smallest = limits.loc[limits["n"] >= summary.table["closed"].min(), "upper_95"].max()
    assert 100 * at_smallest > 100 * summary.table["win_rate"].max() + 10  # the case: limits well above the dots
    assert top >= 100 * at_smallest


def test_index_won_value_and_win_rate_cover_every_pipeline(project: Path, loaded: fk.Dataset, renormalised):
    """The index showed Key Accounts' won value as €795,000 and its win rate as 2 of 2: its Neukunden
    deals only (the pipelines' stages differ, so the figures were for the default pipeline), though the
    team won 9 deals, most in Bestandskunden."""
    from funnelkit.analyses import executive

    config = load_config(project / "params" / "funnel.yaml")
    table = executive.team_figures(loaded, config, "2024", ["Key Accounts"], pipeline="Neukunden",
                                   card=renormalised, every_pipeline=True).set_index("team", drop=False)
    deals = [r for r in _valid_deals().values() if r["Team"] == "Key Accounts"]
    won = [r for r in deals if r["Status"] == "Gewonnen"]
    value = sum(float(r["Wert"].replace(" €", "").replace(" EUR", "").replace(".", "").replace(",", "."))
                for r in won if r["Wert"])
    row = table.iloc[0]
    assert (row["won"], row["closed"]) == (len(won), len(won)) and row["won"] == 9
    assert row["won_value"] == pytest.approx(value)
    narrow = executive.team_figures(loaded, config, "2024", ["Key Accounts"], pipeline="Neukunden",
                                    card=renormalised).iloc[0]
    assert narrow["won"] < row["won"]  # the forecast's own figures stay with its pipeline
    assert narrow["forecast"] == row["forecast"] and narrow["open_pipeline"] == row["open_pipeline"]


def test_time_in_stage_names_a_stage_no_deal_entered(with_bedarfsanalyse):
    """Bedarfsanalyse was left out of the time-in-stage table and chart without a word."""
    from funnelkit.analyses import timing
    from funnelkit.presentation.present import load_text, no_stays_note

    config, data = with_bedarfsanalyse
    scope = fk.Scope.build(data, config, team="Vertrieb Nord", pipeline="Neukunden")
    summary = timing.time_in_stage(scope.stays)
    assert "bedarfsanalyse" not in set(summary["stage"])
    note = no_stays_note(summary, scope.labels, load_text("en"))
    assert len(note) == 1 and note[0].startswith("Not in the table or the chart: Bedarfsanalyse.")
    assert no_stays_note(timing.time_in_stage(fk.Scope.build(data, config, pipeline="Bestandskunden").stays),
                         fk.Scope.build(data, config, pipeline="Bestandskunden").labels, load_text("en")) == []


def test_weight_sensitivity_headline_says_no_weighting_can_move_one_field_scores(project: Path, loaded: fk.Dataset,
                                                                                 renormalised):
    """Every scenario read "deals changing tier: 0; ranking agreement 1.00" — as if the weights did not
    matter — while each open deal was scored on its amount alone, which no weighting can move."""
    from funnelkit.analyses import sensitivity
    from funnelkit.presentation.present import load_text, sensitivity_findings

    config = load_config(project / "params" / "funnel.yaml")
    scope = fk.Scope.build(loaded, config, team="Vertrieb Nord", pipeline="Neukunden")
    deals = scope.open_deals
    names = sensitivity.scenario_names(renormalised)
    comparison = sensitivity.compare_scenarios(deals, renormalised, names)
    assert (comparison.summary["movers"] == 0).all() and comparison.summary["scored"].gt(0).all()
    assert sensitivity.one_field_only(deals, renormalised) == ["amount"]
    test = sensitivity.backtest(sensitivity.closed_in(scope.deals, fk.parse_period("2024")), renormalised, names)
    stability = sensitivity.weight_monte_carlo(deals, renormalised)
    text = load_text("en")
    lines = [line for line, _ in sensitivity_findings(comparison, test, stability, {n: n for n in names}, text, 0.05,
                                                      renormalised, one_field=["amount"])]
    assert lines[0].startswith("Every open deal is scored on one field alone (Amount;")
    assert not any("ranking agreement" in line for line in lines)
    assert sensitivity.one_field_only(deals, fk.load_scorecard()) == []  # unscored card: no partial scores
