"""The HTML reports in a real browser: Debian's Chromium driven headless by Playwright.

On the English and the Chinese sample sets (``rendered_sample`` in conftest.py): every link from
the index resolves; ``<html lang>`` is right; no word of the other language is shown outside data
values; every chart image has loaded; no console error; every table sorts with an arrow on its
header and its total row at the bottom. The sort keys are checked on a page made for it (dates,
periods, money, percent, units, tiers in both languages, missing values, totals). Screenshots of
the index and of each report kind in both languages go to test-artifacts/ (git-ignored).
Fails (does not skip) when the browser is missing (the ``browser`` fixture is in conftest.py).
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd
import pytest

from funnelkit.presentation.pages import assets, content_security_policy
from funnelkit.presentation.present import load_text, styled

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
KINDS = ("conversion", "time_in_stage", "opportunities", "weight_sensitivity", "rep_performance")
# Names of methods and acronyms a Chinese statistics text writes in Latin letters.
PROPER_NAMES = {"Kaplan", "Meier", "Fisher", "Wilson", "Kendall", "Jaccard", "Dirichlet", "AUC", "CRM", "Benjamini",
                "Hochberg", "Greenwood", "IV"}
WORDS = {"en": r"[\u3400-\u9fff\u3000-\u303f\uff01-\uff5e]+", "zh": r"[A-Za-z][A-Za-z'’\-]+"}
# What the reader sees, without elements marked as another language and without commands (<code>).
VISIBLE_TEXT = """lang => { const copy = document.body.cloneNode(true);
  copy.querySelectorAll('code, script, style').forEach(e => e.remove());
  copy.querySelectorAll('[lang]').forEach(e => { if (!e.lang.startsWith(lang)) e.remove(); });
  document.body.appendChild(copy); const text = copy.innerText; copy.remove(); return text; }"""


def data_values(sample) -> list[str]:
    """Names and free text from the data (customers, teams, reps, …). Loss reasons are not among
    them: the vocabulary words them in the report language."""
    values: set[str] = set()
    for frame in (sample.deals, sample.events):
        for column in frame.columns:
            if column != "lost_reason" and (frame[column].dtype == object or str(frame[column].dtype).startswith("string")):
                values |= {str(v) for v in frame[column].dropna().unique() if len(str(v)) > 1}
    return sorted(values, key=len, reverse=True)


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def report_pages(root: Path) -> dict[tuple[str, str], Path]:
    """(kind, language) → report file of the rendered sample."""
    pages = {}
    for path in root.rglob("*.html"):
        if not path.name.startswith("index."):
            kind, _, language = path.stem.partition(".")
            pages[(kind, language or "en")] = path
    return pages


def words_of_the_other_language(text: str, language: str, values: list[str]) -> set[str]:
    for value in values:
        text = text.replace(value, " ")
    return set(re.findall(WORDS[language], text)) - PROPER_NAMES


def test_every_kind_is_rendered_in_both_languages(rendered_sample):
    assert set(report_pages(rendered_sample)) == {(k, lang) for k in KINDS for lang in ("en", "zh")}


@pytest.mark.parametrize("language, file", [("en", "index.html"), ("zh", "index.zh.html")])
def test_index_links_resolve_and_speak_the_index_language(rendered_sample, browser, sample, language, file):
    """The run's index is in its language (en); a run with Chinese reports also writes index.zh.html.
    A link to a report of the other language is named in that language and marked with its lang."""
    index, errors = open_page(browser, rendered_sample / file)
    html_lang = {"en": "en", "zh": "zh-CN"}
    assert index.evaluate("document.documentElement.lang") == html_lang[language]
    links = index.eval_on_selector_all("a", "els => els.map(e => [e.href, e.lang, e.innerText])")
    assert len(links) == 2 * len(KINDS), links
    for href, lang, name in links:
        assert Path(href.replace("file://", "")).exists(), f"broken link {href}"
        own = "zh" if ".zh.html" in href else "en"
        assert lang == ("" if own == language else html_lang[own]), (href, lang)
        assert name.isascii() == (own == "en"), name
    assert not words_of_the_other_language(index.evaluate(VISIBLE_TEXT, html_lang[language]), language,
                                           data_values(sample))
    assert not errors, errors
    ARTIFACTS.mkdir(exist_ok=True)
    index.screenshot(path=str(ARTIFACTS / f"index_{language}.png"), full_page=True)
    index.close()


@pytest.mark.parametrize("language", ["en", "zh"])
def test_reports_speak_one_language_and_load_every_chart(rendered_sample, browser, sample, language):
    values = data_values(sample)
    ARTIFACTS.mkdir(exist_ok=True)
    for kind in KINDS:
        path = report_pages(rendered_sample)[(kind, language)]
        page, errors = open_page(browser, path)
        assert page.evaluate("document.documentElement.lang") == {"en": "en", "zh": "zh-CN"}[language], path
        title = page.title()
        assert not re.search(r"[A-Za-z_]+$", title) if language == "zh" else title.endswith(load_text("en")(kind)), title
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
        assert images, f"no chart in {path}"
        assert all(complete and width > 0 for _, complete, width in images), images
        left = words_of_the_other_language(page.evaluate(VISIBLE_TEXT, language), language, values)
        assert not left, f"{kind} ({language}): words of the other language: {sorted(left)}"
        for anchor in page.eval_on_selector_all(".fk-headline a", "els => els.map(e => e.getAttribute('href'))"):
            assert page.query_selector(anchor) is not None, f"{path}: no section {anchor}"
        assert not errors, f"{path}: {errors}"
        page.screenshot(path=str(ARTIFACTS / f"{kind}_{language}.png"), full_page=True)
        page.close()


def test_chinese_conversion_report_has_chinese_headings(rendered_sample, browser):
    page, errors = open_page(browser, rendered_sample / "2024-Q2" / "North" / "conversion.zh.html")
    headings = page.eval_on_selector_all("h1, h2", "els => els.map(e => e.innerText)")
    for expected in ("要点", "批次漏斗", "表1 销售漏斗阶段统计表", "与上期相比的变化", "流失原因", "数据质量"):
        assert expected in headings, headings
    assert "转化分析 — North，2024-Q2" in headings[0]
    assert not errors


def column_of(table, n: int) -> list[str]:
    return table.evaluate(f"t => Array.from(t.tBodies[0].rows).map(r => r.cells[{n}].innerText)")


@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_table_of_every_report_sorts_with_an_arrow_and_totals_last(rendered_sample, browser, language):
    total = load_text(language)("total")
    for kind in KINDS:
        page, errors = open_page(browser, report_pages(rendered_sample)[(kind, language)])
        for table in page.query_selector_all("table.fk-table"):
            headers = table.query_selector_all("thead th")
            first = column_of(table, 0)
            had_total = bool(first) and first[-1] == total
            for n, th in enumerate(headers):
                before = sorted(column_of(table, n))
                th.click()
                assert th.inner_text().endswith("▲"), th.inner_text()
                th.click()
                assert th.inner_text().endswith("▼")
                assert sorted(column_of(table, n)) == before  # rows moved, none lost
                if had_total:
                    assert column_of(table, 0)[-1] == total
            assert sum("▲" in h.inner_text() or "▼" in h.inner_text() for h in headers) <= 1
        assert not errors, errors
        page.close()


SORT_CASES = pd.DataFrame({
    "stage": ["Prospect", "Opportunity", "Negotiation", "Customer", "Total"],
    "entered_at": ["2024-06-30", "2023-12-01", "2024-01-15", None, None],
    "period": ["2024-Q2", "2023-12", "2024-Q1", "2024-01", None],
    "amount": [1_200_000.0, -50_000.0, 980.0, None, 2_130_980.0],
    "rate": [0.125, 0.9, 0.05, 1.0, 0.3],
    "days": [12.5, 101.0, 3.0, 45.0, None],
    "tier": ["low", "high", "unscored", "medium", None],
})


@pytest.mark.parametrize("language", ["en", "zh"])
def test_sort_keys(browser, language):
    """Numbers by value (money with separators and a sign, percent, days), dates and periods in
    time order, tiers in their order in either language, missing last, the total row pinned."""
    text = load_text(language)
    frame = SORT_CASES.assign(stage=SORT_CASES["stage"].replace({"Total": text("total")}),
                              tier=SORT_CASES["tier"].map(lambda t: text(f"tier_{t}") if isinstance(t, str) else None))
    table = styled(frame, text, pct=("rate",), money=("amount",), days=("days",), currency="CNY").to_html()
    a = assets()
    page = browser.new_page()
    page.set_content(f'<!DOCTYPE html><html lang="{language}"><head><meta http-equiv="Content-Security-Policy" '
                     f'content="{html.escape(content_security_policy((a.css,), (a.js,)))}"><style>{a.css}</style>'
                     f"</head><body>{table}<script>{a.js}</script></body></html>")
    sheet = page.query_selector("table.fk-table")
    headers = sheet.query_selector_all("thead th")

    def sort_by(n: int, times: int = 1) -> list[str]:
        for _ in range(times):
            headers[n].click()
        return column_of(sheet, 0)

    total = text("total")
    assert sort_by(1) == ["Opportunity", "Negotiation", "Prospect", "Customer", total]  # dates; missing last
    assert sort_by(1) == ["Prospect", "Negotiation", "Opportunity", "Customer", total]
    assert sort_by(2) == ["Opportunity", "Customer", "Negotiation", "Prospect", total]  # 2023-12 < 2024-01 < Q1 < Q2
    assert sort_by(3) == ["Opportunity", "Negotiation", "Prospect", "Customer", total]  # −¥50,000 < ¥980 < ¥1,200,000
    assert sort_by(4) == ["Negotiation", "Prospect", "Opportunity", "Customer", total]  # 5.0% < 12.5% < 90.0% < 100.0%
    assert sort_by(5) == ["Negotiation", "Prospect", "Customer", "Opportunity", total]  # 3.0 < 12.5 < 45.0 < 101.0 days
    assert sort_by(6) == ["Opportunity", "Customer", "Prospect", "Negotiation", total]  # high > medium > low > unscored
    assert sort_by(6) == ["Negotiation", "Prospect", "Customer", "Opportunity", total]
    assert headers[6].inner_text().endswith("▼") and not headers[5].inner_text().endswith(("▲", "▼"))
    page.close()
