"""The HTML reports in a real browser: Debian's Chromium driven headless by Playwright.

Opens the index and every report of a sample run; checks that every image has loaded, every link
from the index resolves, there are no console errors, and a Chinese report shows Chinese headings.
Saves a screenshot to test-artifacts/. Fails (does not skip) when the browser is missing (the
``browser`` fixture is in conftest.py).
"""
from pathlib import Path

import pytest

from funnelkit.cli import main as cli
from funnelkit.present import load_text

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser")
    matrix = out / "reports.yaml"
    matrix.write_text(f"""data: sample
as_of: 2024-06-30
language: en
output: {out / 'reports'}
entries:
  - notebook: conversion
    teams: [South]
    periods: [2024-06]
  - notebook: conversion
    teams: [North]
    periods: [2024-06]
    parameters: {{language: zh}}
  - notebook: rep_performance
    teams: [North]
    reps: [Zhao Lei]
    periods: [2024-Q2]
""", encoding="utf-8")
    assert cli(["report", "--matrix", str(matrix), "--quiet"]) == 0
    return out / "reports"


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def test_index_links_resolve_and_reports_render(sample_run, browser):
    index, errors = open_page(browser, sample_run / "index.html")
    links = index.eval_on_selector_all("a", "els => els.map(e => e.href)")
    assert len(links) == 3, links
    assert not errors, errors
    for link in links:
        path = Path(link.replace("file://", ""))
        assert path.exists(), f"broken link {link}"
        page, errors = open_page(browser, path)
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
        assert images, f"no chart in {path}"
        assert all(complete and width > 0 for _, complete, width in images), images
        assert not errors, f"{path}: {errors}"
        headings = page.eval_on_selector_all("h2", "els => els.map(e => e.innerText)")
        assert headings[0] in ("Headline", "要点")
        # every headline link points at a section of the page
        anchors = page.eval_on_selector_all(".fk-headline a", "els => els.map(e => e.getAttribute('href'))")
        for anchor in anchors:
            assert page.query_selector(anchor) is not None, f"{path}: no section {anchor}"
        page.close()


def test_chinese_report_has_chinese_headings(sample_run, browser):
    page, errors = open_page(browser, sample_run / "2024-06" / "North" / "conversion.html")
    headings = page.eval_on_selector_all("h1, h2", "els => els.map(e => e.innerText)")
    for expected in ("要点", "批次漏斗", "表1 销售漏斗阶段统计表", "与上期相比的变化", "流失原因", "数据质量"):
        assert expected in headings, headings
    assert "转化分析 — North，2024-06" in headings[0]
    assert page.evaluate("document.documentElement.lang") == "zh-CN"  # browsers pick a Chinese font
    assert not errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "conversion_zh.png"), full_page=True)
    assert (ARTIFACTS / "conversion_zh.png").stat().st_size > 10_000


def test_tables_sort_on_click(sample_run, browser):
    page, errors = open_page(browser, sample_run / "2024-06" / "South" / "conversion.html")
    in_stage = load_text("en").column("t1_count")  # Table 1's count column
    table = next(t for t in page.query_selector_all("table.fk-table")
                 if in_stage in [h.inner_text() for h in t.query_selector_all("thead th")])
    headers = [h.inner_text() for h in table.query_selector_all("thead th")]
    col = headers.index(in_stage)
    column = f"t => Array.from(t.tBodies[0].rows).map(r => r.cells[{col}].innerText)"
    before = table.evaluate(column)
    table.query_selector_all("thead th")[col].click()
    after = table.evaluate(column)
    numbers = [float(x.replace(",", "")) for x in after]
    assert numbers == sorted(numbers) and sorted(before) == sorted(after)
    assert not errors
