"""Issue 13 A, on the rendered sample reports: one label per step, "maturing" instead of 0.0%,
differences in pp, the named cohort win rate, the rep windows and the Method appendix last."""
from __future__ import annotations

import re

import pytest

import funnelkit as fk
from conftest import visible_text as shown_text
from funnelkit.runner.cli import main as cli


def visible_text(page: str) -> str:
    """What a reader sees (conftest's :func:`visible_text`), with runs of whitespace as one space."""
    return re.sub(r"\s+", " ", shown_text(page))


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = {}
    for language in ("en", "zh"):
        tmp = tmp_path_factory.mktemp(language)
        team_overview = "  - notebook: rep_performance\n    teams: [East]\n    periods: [2024-Q2]\n" if language == "en" else ""
        (tmp / "reports.yaml").write_text(
            f"data: sample\nas_of: 2024-06-30\nlanguage: {language}\noutput: {tmp / 'out'}\nentries:\n"
            "  - notebook: conversion\n    teams: [East]\n    periods: [2024-06]\n"
            "  - notebook: rep_performance\n    teams: [East]\n    reps: [Li Na]\n    periods: [2024-Q2]\n"
            + team_overview, encoding="utf-8")
        assert cli(["report", "--matrix", str(tmp / "reports.yaml"), "--jobs", "2", "--quiet"]) == 0
        for path in (tmp / "out").rglob("*.html"):
            if path.name != "index.html":
                out[(language, str(path.relative_to(tmp / "out").with_suffix("")))] = path.read_text(encoding="utf-8")
    return out


CONVERSION = "2024-06/East/conversion"
REP = "2024-Q2/East/Li_Na/rep_performance"
TEAM = "2024-Q2/East/rep_performance"


def stage_labels(language: str) -> list[str]:
    return list(fk.load_config().stage_labels(None, language).values())


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("report", [CONVERSION, REP])
def test_one_label_per_step(pages, language, report):
    text = visible_text(pages[(language, report)])
    labels = stage_labels(language)
    steps = {f"{a} → {b}" for a, b in zip(labels, labels[1:])}
    for step in steps:
        assert step in text, step
    # every arrow that starts at a stage goes to the next stage: no "Negotiation → next stage" or skipped pairs
    pairs = re.findall(r"(\S+) → ([^\s:：]+)", text)
    for a, b in pairs:
        if a in labels:
            assert f"{a} → {b}" in steps, (a, b)
    assert "of previous" not in text and "占上一阶段" not in text


def test_maturing_steps_read_maturing_not_zero(pages, sample, config):
    funnel = fk.cohort_funnel(sample, config, "2024-06", team="East", as_of="2024-06-30")
    maturing = funnel.table[funnel.table["maturing"]]
    assert len(maturing)  # the June cohort is young: the check below has something to check
    for language, word in (("en", "maturing ({n:,} open)"), ("zh", "尚未定型（{n:,} 个未结束）")):
        text = visible_text(pages[(language, CONVERSION)])
        labels = fk.load_config().stage_labels(None, language)
        for row in maturing.itertuples():
            step = f"{labels[row.stage]} → {labels[row.next_stage]}"
            assert f"{step} {word.format(n=row.open_at)}" in text
            assert f"{step} 0.0%" not in text
    # the cohort is mostly open: the headline names its definition and says maturing
    assert funnel.win_maturing
    en = visible_text(pages[("en", CONVERSION)])
    assert "Cohort win rate (deals that entered the funnel in 2024-06, followed to 2024-06-30): maturing" in en
    assert "are won so far (0.0%)" not in en


@pytest.mark.parametrize("language, unit", [("en", "pp"), ("zh", "百分点")])
def test_differences_in_percentage_points(pages, language, unit):
    text = visible_text(pages[(language, CONVERSION)])
    assert re.search(rf"[+−]\d+\.\d {unit}", text)
    differences = re.findall(r"(?<![\d.])-\d+\.\d%", text)  # "-8.2%" was how differences used to be printed
    assert not differences


@pytest.mark.parametrize("language", ["en", "zh"])
def test_rates_differ_sentence_once(pages, language):
    text = visible_text(pages[(language, CONVERSION)])
    first = {"en": "Why one step has two rates", "zh": "同一转化步骤为何有两个比率"}[language]
    assert text.count(first) == 1


@pytest.mark.parametrize("key", [(lang, r) for lang in ("en", "zh") for r in (CONVERSION, REP)] + [("en", TEAM)])
def test_method_appendix_is_last(pages, key):
    page = pages[key]
    headings = re.findall(r'<h2 id="([^"]+)"', page)
    assert headings[-1] == "method", headings
    method_at = page.index('<h2 id="method"')
    assert "<table" not in page[method_at:] and "<img" not in page[method_at:]
    body = visible_text(page[:method_at])
    for name in ("Kendall", "Jaccard", "Dirichlet", "Wilson", "Benjamini", "Fisher", "chi-square", "Kaplan", "bootstrap"):
        assert name not in body, name


def test_rep_report_shows_the_period_beside_the_window(pages):
    text = visible_text(pages[("en", REP)])
    assert "Li Na, 2024-Q2" in text and "Team, 2024-Q2" in text
    assert "Li Na, 12 months to 2024-Q2 (2023-07 – 2024-06)" in text
    assert "Li Na in 2024-Q2 alone: win rate" in text
    assert "…" not in text  # the old "2023-07…2024-Q2" window label
    zh = visible_text(pages[("zh", REP)])
    assert "截至 2024-Q2 的 12 个月（2023-07 – 2024-06）" in zh


def test_team_overview_without_a_rep(pages):
    text = visible_text(pages[("en", TEAM)])
    assert "No rep chosen: this is the team overview" in text
    assert "Team, 2024-Q2" in text and "Li Na" in text  # every rep of the team is listed
    assert "Coaching summary" not in text


@pytest.mark.parametrize("key", [("en", CONVERSION), ("en", REP), ("en", TEAM), ("zh", REP)])
def test_headline_links_point_at_sections(pages, key):
    page = pages[key]
    ids = set(re.findall(r'id="([^"]+)"', page))
    links = re.findall(r'<a href="#([^"]+)"', page)
    assert links and set(links) <= ids, set(links) - ids


@pytest.mark.parametrize("language", ["en", "zh"])
def test_rep_report_shows_tiers_as_badges(pages, language):
    # the overdue deals carry their tier as in the opportunities report: a coloured badge, not plain text
    page = pages[(language, REP)]
    assert 'class="fk-badge fk-tier-' in page
