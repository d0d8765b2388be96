"""Every notebook on every edge dataset (tests/data/edge/), with Python warnings as errors.

Each dataset folder holds canonical CSVs (written by ``make_edge.py``), a ``case.yaml`` with the
notebook parameters, and maybe a ``params/funnel.yaml`` passed as ``config_path``. The notebooks
run with papermill in the "funnelkit" kernel after a first cell that turns every warning into an
error (removed from the HTML with the other hidden cells); the HTML is exported with
:func:`funnelkit.presentation.pages.notebook_to_html` (as the report run does). The reports run in two worker
processes; the run time is printed (``-s``), never asserted.
"""
from __future__ import annotations

import html as html_lib
import re
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import yaml

from funnelkit.presentation.pages import notebook_to_html
from funnelkit.runner.report import KERNEL_NAME, NOTEBOOKS_DIR

EDGE = Path(__file__).resolve().parent / "data" / "edge"
NOTEBOOKS = ["conversion", "time_in_stage", "opportunities", "weight_sensitivity", "rep_performance"]
CASES = sorted(d.name for d in EDGE.iterdir() if (d / "case.yaml").exists())
WARNINGS_AS_ERRORS = "import warnings\nwarnings.simplefilter(\"error\")"
WARNINGS_RESET = "warnings.resetwarnings()"
FORBIDDEN_WORDS = re.compile(r"\b(nan|NaN|None|inf|Traceback|Warning)\b")
# figures computed from zero cases, in the shapes the reports write numbers
ZERO_CASES = re.compile(r"\b0 of 0\b|\bonly 0 won and 0 lost\b|\bn = 0\b|\(0/0\)|pipeline [¥$]0\b|velocity [¥$]0 per day")


def parameters(case: str, notebook: str) -> dict:
    folder = EDGE / case
    spec = yaml.safe_load((folder / "case.yaml").read_text(encoding="utf-8"))
    params = {"data": str(folder), "as_of": spec["as_of"], "period": spec["period"],
              "language": spec.get("language", "en")}
    if (folder / "params" / "funnel.yaml").exists():
        params["config_path"] = str(folder / "params" / "funnel.yaml")
    if notebook == "rep_performance":
        params |= {"team": spec["team"], "rep": spec["rep"]}
    return params


def run_one(case: str, notebook: str, workdir: str) -> tuple[str, str, str, str, float]:
    """Execute one notebook on one edge dataset; returns (case, notebook, html, error, seconds)."""
    import os

    import nbformat
    import papermill

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    start = time.perf_counter()
    nb = nbformat.read(NOTEBOOKS_DIR / f"{notebook}.ipynb", as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(WARNINGS_AS_ERRORS, metadata={"tags": ["notebook-only"]}))
    # back to the default after the report's cells, so the kernel's own shutdown is not made to fail
    nb.cells.append(nbformat.v4.new_code_cell(WARNINGS_RESET, metadata={"tags": ["notebook-only"]}))
    source = Path(workdir) / f"{case}-{notebook}.in.ipynb"
    nbformat.write(nb, source)
    try:
        done = papermill.execute_notebook(
            str(source), str(source.with_suffix("").with_suffix(".out.ipynb")), parameters=parameters(case, notebook),
            kernel_name=KERNEL_NAME, progress_bar=False, cwd=str(NOTEBOOKS_DIR), execution_timeout=300,
            start_timeout=120)
        page = notebook_to_html(nbformat.from_dict(done), f"{case} / {notebook}", parameters(case, notebook)["language"])
        return case, notebook, page, "", time.perf_counter() - start
    except Exception as exc:  # the test reports it with the case and notebook
        return case, notebook, "", f"{type(exc).__name__}: {exc}"[:3000], time.perf_counter() - start


@pytest.fixture(scope="module")
def edge_reports(tmp_path_factory) -> dict[tuple[str, str], tuple[str, str]]:
    workdir = tmp_path_factory.mktemp("edge")
    began = time.perf_counter()
    jobs = [(case, notebook, str(workdir)) for case in CASES for notebook in NOTEBOOKS]
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run_one, *zip(*jobs)))
    slowest = sorted(results, key=lambda r: -r[4])[:3]
    print(f"\nedge suite: {len(results)} reports in {time.perf_counter() - began:.0f} s on 2 workers; slowest "
          + ", ".join(f"{c}/{n} {s:.0f} s" for c, n, _, _, s in slowest))
    return {(c, n): (page, error) for c, n, page, error, _ in results}


def visible_text(page: str) -> str:
    """The words a reader sees: without styles, scripts, embedded images and tags."""
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r"<img\b[^>]*>", " ", page)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.mark.parametrize("notebook", NOTEBOOKS)
@pytest.mark.parametrize("case", CASES)
def test_edge_report_renders_clean(edge_reports, case, notebook):
    page, error = edge_reports[(case, notebook)]
    assert not error, f"{case}/{notebook} failed: {error}"
    text = visible_text(page)
    assert not FORBIDDEN_WORDS.findall(text), [text[max(m.start() - 80, 0):m.end() + 80]
                                               for m in FORBIDDEN_WORDS.finditer(text)][:5]
    assert not ZERO_CASES.findall(text), ZERO_CASES.findall(text)
    if case == "usd":
        assert "¥" not in page and "CNY" not in text


@pytest.mark.parametrize("case, notebook, sentence", [
    ("no_losses", "time_in_stage", "no lost deals recorded in this data"),
    ("no_losses", "rep_performance", "no lost deals recorded in this data"),
    ("no_scoring", "opportunities", "not available (no probabilities)"),
    ("no_amounts", "opportunities", "not available (no amounts)"),
    ("usd", "rep_performance", "Not ranked: fewer than 30 closed deals in the window"),
    ("usd", "opportunities", "$"),
    ("all_closed", "opportunities", "There is no open deal at the as-of date"),
    ("no_scoring", "weight_sensitivity", "could not be scored: Win probability: no value"),
    ("no_scoring", "weight_sensitivity", "so no AUC is shown"),
    ("empty_period", "conversion", "No deal entered the funnel in this period"),
    ("three_stages", "conversion", "Lead"),
])
def test_edge_reports_say_why(edge_reports, case, notebook, sentence):
    page, error = edge_reports[(case, notebook)]
    assert not error, error
    assert sentence in visible_text(page)
