"""Hostile data (issue 18, output side): every value from the data is written as text.

``tests/data/hostile`` (written by its ``generate.py``) is the sample data with attack payloads in
every text field, as CSV and as Excel. The reports built from it are opened in Chromium and must
raise no dialog, run no script but the page's own, hold no ``javascript:`` URL or event-handler
attribute and break no Content-Security-Policy rule; the follow-up plan and the quarantine file
must hold no formula.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.presentation.present import load_text
from funnelkit.presentation import pages, plots, present
from funnelkit.runner.cli import main as cli
from funnelkit.presentation.safe_output import csv_safe, sheet_names, write_xlsx

HOSTILE = Path(__file__).resolve().parent / "data" / "hostile"
_spec = importlib.util.spec_from_file_location("hostile_generate", HOSTILE / "generate.py")
hostile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hostile)
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", ""))
        return True
    except ValueError:
        return False


def formula_text(cells: list[str]) -> list[str]:
    """Cells a spreadsheet would run as a formula: text starting with = + - @ tab or CR (numbers
    such as -2 are numbers, and an apostrophe-prefixed cell is text)."""
    return [c for c in cells if c.startswith(DANGEROUS) and not _is_number(c)]


def read_csv_cells(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return [cell for row in csv.reader(f) for cell in row]


# --- the data itself -------------------------------------------------------------------------

def test_excel_copy_and_workbook_writer_keep_payloads_as_text(config, tmp_path):
    from_csv = fk.load_data(HOSTILE / "csv", config=config)
    from_xlsx = fk.load_data(HOSTILE / "xlsx", config=config)
    pd.testing.assert_frame_equal(from_csv.deals, from_xlsx.deals, check_dtype=False)
    assert len(from_csv.quarantine) == len(from_xlsx.quarantine) == 9
    assert set(from_csv.deals["team"]) == set(hostile.TEAM_NAMES.values())
    # what write_xlsx writes reads back as the same text (a formula cell would read as empty)
    path = write_xlsx({"deals": from_csv.deals}, tmp_path / "deals.xlsx")
    back = pd.read_excel(path, dtype=object)
    assert back["customer"].tolist() == from_csv.deals["customer"].tolist()
    assert set(hostile.PAYLOADS[:4]) <= set(back["customer"])


# --- spreadsheets and CSV --------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["csv", "xlsx"])
def test_plan_workbook_has_no_formula_cell_and_valid_sheet_names(tmp_path, variant):
    path = tmp_path / "plan.xlsx"
    assert cli(["score", str(HOSTILE / variant), "--as-of", "2024-06-30", "--out", str(path)]) == 0
    wb = openpyxl.load_workbook(path)
    cells = [c for ws in wb for row in ws.iter_rows() for c in row]
    assert [f"{c.parent.title}!{c.coordinate}" for c in cells if c.data_type == "f"] == []
    payload_cells = [c for c in cells if c.value == hostile.FORMULA]
    assert payload_cells and all(c.data_type == "s" and c.quotePrefix for c in payload_cells)
    assert {"+1", "-2", "@SUM(A1)"} <= {c.value for c in cells}  # shown as typed
    names = wb.sheetnames
    assert len({n.casefold() for n in names}) == len(names)
    for name in names:
        assert 0 < len(name) <= 31 and not re.search(r"[\[\]:*?/\\]", name), name
        assert name.casefold() != "history" and not name.startswith("'") and not name.endswith("'"), name
    plan_reps = pd.read_excel(path, sheet_name="All")[load_text().column("rep")].nunique()  # headers as in the report
    assert len(names) == 1 + plan_reps, names  # one sheet per rep, none merged


@pytest.mark.parametrize("variant", ["csv", "xlsx"])
def test_plan_csv_has_no_formula_text(tmp_path, variant):
    path = tmp_path / "plan.csv"
    assert cli(["score", str(HOSTILE / variant), "--as-of", "2024-06-30", "--out", str(path)]) == 0
    cells = read_csv_cells(path)
    assert formula_text(cells) == []
    assert "'" + hostile.FORMULA in cells and "'@SUM(A1)" in cells and "'-2" in cells


def test_quarantine_csv_has_no_formula_text(tmp_path):
    path = tmp_path / "quarantine.csv"
    assert cli(["check", str(HOSTILE / "csv"), "--quarantine-out", str(path)]) == 0
    cells = read_csv_cells(path)
    assert formula_text(cells) == []
    assert "'=1+1" in cells  # the quarantined amount, as text


def test_csv_safe_prefixes_text_not_numbers():
    df = pd.DataFrame({"text": ["=1+1", "+1", "-2", "@x", "\tx", "\rx", "ok", "a=b", None],
                       "number": [-2, 1, 0, -1.5, 3, 4, 5, 6, 7]})
    df["category"] = df["text"].astype("category")
    out = csv_safe(df)
    assert out["text"].tolist()[:8] == ["'=1+1", "'+1", "'-2", "'@x", "'\tx", "'\rx", "ok", "a=b"]
    assert out["category"].tolist()[:8] == out["text"].tolist()[:8]
    assert pd.isna(out["text"].iloc[8])
    assert out["number"].tolist() == df["number"].tolist()


def test_workbook_writer_takes_control_characters_and_zoned_times(tmp_path):
    df = pd.DataFrame({"name": ["a\x00b", "=x"],
                       "at": pd.to_datetime(["2024-06-30 09:00", "2024-06-30 23:30"]).tz_localize("Asia/Shanghai")})
    path = write_xlsx({"plan": df}, tmp_path / "plan.xlsx")
    back = pd.read_excel(path)
    assert back["name"].tolist() == ["a\ufffdb", "=x"]
    assert back["at"].tolist() == [pd.Timestamp("2024-06-30 09:00"), pd.Timestamp("2024-06-30 23:30")]


def test_sheet_names_are_valid_and_unique():
    values = ["History", "history", "a/b", "a:b", "'quoted'", "x" * 40, "x" * 40, "", "All", "[x]*?\\"]
    assert sheet_names(values, taken=["All"]) == [
        "History_", "history_~2", "a_b", "a_b~2", "quoted", "x" * 31, "x" * 29 + "~2", "_", "All~2", "_x____"]


# --- HTML pieces -----------------------------------------------------------------------------

def test_table_cells_and_headers_are_escaped_once():
    text = present.load_text("en")
    df = pd.DataFrame({"rep": [hostile.SCRIPT.format(1), hostile.LINK, "a & b"], "deals": [1, 2, 3],
                       hostile.IMG.format("h"): ["x", "y", "z"]})
    page = present.styled(df, text, ints=("deals",)).to_html()
    assert "<script" not in page and "<img" not in page and "<style" not in page
    assert "&lt;script&gt;alert(&#34;1&#34;)&lt;/script&gt;" in page or "&lt;script&gt;alert(\"1\")&lt;/script&gt;" in page
    assert "a &amp; b" in page and "&amp;amp;" not in page
    assert 'class="data row0 col1 fk-num"' in page  # numbers right-aligned by report.css, not a <style>


def test_titles_and_bullets_are_literal_text():
    from nbconvert.filters.markdown import markdown2html

    text = present.load_text("en")
    page = markdown2html(present.title(text, "conversion", "2024-06", pd.Timestamp("2024-07-01"),
                                       hostile.SCRIPT.format("t"), hostile.LINK))
    page += markdown2html(present.bullets([hostile.LINK + " " + hostile.IMG.format("b") + " **x** $y$"]))
    assert "<script" not in page and "<img" not in page and "<strong>" not in page
    assert [h for h in re.findall(r'<a [^>]*href="([^"]*)"', page) if not h.startswith("#")] == []
    assert "[click](javascript:alert(1))" in page  # shown as typed


def test_chart_text_is_shown_as_written():
    losses = pd.DataFrame({"reason": ["$\\notacommand$", "$x$ and $y$", "平均 $5"], "deals": [3, 2, 1]})
    fig = plots.loss_pareto(losses, "Losses $\\alpha$")
    present.figure_html(fig)  # mathtext would fail on \notacommand
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["$\\notacommand$", "$x$ and $y$", "平均 $5"]


def test_index_escapes_names_and_has_a_policy(tmp_path):
    from funnelkit.runner.report import Job, JobResult, write_index

    team, rep = hostile.SCRIPT.format("team"), hostile.IMG.format("rep")
    (tmp_path / "r.html").write_text("x")
    results = [JobResult(Job("conversion", "2024-06", team, None, {}, "2024-06/t/conversion"), True, 1.0,
                         html=str(tmp_path / "r.html")),
               JobResult(Job("rep_performance", "2024-06", team, rep, {}, "2024-06/t/r/rep_performance"), False, 1.0,
                         error=hostile.SCRIPT.format("error"))]
    page = write_index(results, tmp_path, hostile.IMG.format("as_of")).read_text()
    assert page.count("<script") == 1 and f"<script>{pages.assets().js}</script>" in page  # only the sort script
    assert "<img" not in page
    assert page.count("&lt;script&gt;") == 2 and page.count("&lt;img") == 2
    assert "Content-Security-Policy" in page and "default-src &#39;none&#39;" in page
    assert pages.csp_hash(pages.assets().js).replace("'", "&#39;") in page


# --- whole reports in a browser --------------------------------------------------------------

def _matrix(out: Path, data: Path) -> Path:
    team, rep = json.dumps(hostile.HOSTILE_TEAM), json.dumps(hostile.HOSTILE_REP)
    entries = "".join(f"  - notebook: {nb}\n    teams: [{team}]\n    periods: [2024-Q2]\n"
                      for nb in ("conversion", "time_in_stage", "opportunities", "weight_sensitivity"))
    entries += f"  - notebook: rep_performance\n    teams: [{team}]\n    reps: [{rep}]\n    periods: [2024-Q2]\n"
    path = out / "reports.yaml"
    path.write_text(f"data: {json.dumps(str(data))}\nas_of: 2024-06-30\nlanguage: en\n"
                    f"output: {json.dumps(str(out / 'reports'))}\nentries:\n{entries}", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile")
    assert cli(["report", "--matrix", str(_matrix(out, HOSTILE / "csv")), "--jobs", "2", "--quiet"]) == 0
    return out / "reports"


INSPECT = """() => ({
  scripts: Array.from(document.scripts).map(s => s.textContent),
  handlers: Array.from(document.querySelectorAll('*')).flatMap(
      e => Array.from(e.attributes).filter(a => a.name.toLowerCase().startsWith('on')).map(a => e.tagName + ' ' + a.name)),
  urls: Array.from(document.querySelectorAll('[href],[src],[action],[formaction]')).flatMap(
      e => ['href', 'src', 'action', 'formaction'].map(n => e.getAttribute(n) || ''))
      .filter(u => /^\\s*(javascript|vbscript|data:text)/i.test(u)),
  links: Array.from(document.links).map(a => a.protocol).filter(p => p !== 'file:'),
  csp: document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.content || '',
  h1: document.querySelector('h1')?.innerText || '',
  lang: document.documentElement.lang,
  violations: window.__csp || [],
})"""


def open_hostile(browser, path: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if r.url != path.as_uri() else None)
    page.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation', "
                         "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, problems


def test_hostile_reports_run_no_foreign_code(hostile_run, browser):
    index = hostile_run / "index.html"
    html_files = sorted(hostile_run.rglob("*.html"))
    assert len(html_files) == 6, html_files  # 5 reports and the index
    own_js = pages.assets().js
    for path in html_files:
        page, problems = open_hostile(browser, path)
        found = page.evaluate(INSPECT)
        page.wait_for_timeout(200)  # let any deferred handler fire
        problems += [f"CSP violation: {v}" for v in page.evaluate("window.__csp")]
        assert problems == [], f"{path}: {problems}"
        assert found["scripts"] == [own_js], path
        assert found["handlers"] == [] and found["urls"] == [] and found["links"] == [], (path, found)
        assert "default-src 'none'" in found["csp"] and "unsafe-inline" not in found["csp"], path
        if path != index:
            assert hostile.HOSTILE_TEAM in found["h1"], found["h1"]  # escaped once: shown as typed
            assert found["lang"] == "en"
            if path.stem == "conversion":
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "hostile_conversion.png"), full_page=True)
        page.close()


def test_policy_hashes_and_template_files_ship_with_the_package():
    # SHA-256 of the empty string, base64: the published test vector
    assert pages.csp_hash("") == "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
    policy = pages.content_security_policy(("a",), ())
    assert policy.startswith("default-src 'none'; style-src 'sha256-") and "script-src 'none'" in policy
    import tomllib

    root = Path(__file__).resolve().parent.parent
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["funnelkit.presentation"]
    package = root / "funnelkit" / "presentation"
    shipped = {p for g in globs for p in package.glob(g)}
    files = {p for p in pages.TEMPLATES.rglob("*") if p.is_file()}
    assert files and files <= shipped, sorted(files - shipped)
