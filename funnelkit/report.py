"""Run the report matrix: papermill executes each notebook, nbconvert writes self-contained HTML.

Layout of the output folder::

    reports/index.html
    reports/<period>/<team>/<notebook>.html   (+ the executed <notebook>.ipynb beside it)
    reports/<period>/<team>/<rep>/<notebook>.html

The data is loaded and validated once per run and cached as Parquet under ``reports/.cache``;
every notebook reads that cache. Reports run in worker processes (not threads: papermill changes
the working directory). A failing report does not stop the others; it is listed with its error and
the path of its failed notebook. Each HTML file is written to a temporary name and renamed, so a
report is there whole or not at all.
"""
from __future__ import annotations

import fnmatch
import functools
import html
import os
import re
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from funnelkit.config import ConfigError, ReportMatrix, load_config, load_report_matrix
from funnelkit.data import Dataset
from funnelkit.engine import is_engine_source
from funnelkit.io import open_dataset, write_dataset

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL_NAME = "funnelkit"
EXECUTION_TIMEOUT = 600  # seconds per cell
START_TIMEOUT = 120  # seconds for the kernel to start
CACHE_DIR = ".cache"
REPORT_CSS = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","Microsoft YaHei","PingFang SC",system-ui,sans-serif;
max-width:1100px;margin:2em auto;padding:0 1em;color:#1f2933;line-height:1.5}
h1{font-size:1.6em;border-bottom:2px solid #2a6f97;padding-bottom:.3em}h2{font-size:1.25em;margin-top:1.8em;color:#2a6f97}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}th,td{border:1px solid #d9e2ec;padding:.3em .6em}
th{background:#f0f4f8;text-align:left}img{max-width:100%;height:auto}
.jp-InputArea,.jp-InputPrompt,.jp-OutputPrompt,.anchor-link{display:none}pre{white-space:pre-wrap}
.fk-headline{background:#f0f7fb;border-left:4px solid #2a6f97;padding:.2em 1em;margin:1em 0}
.fk-headline a{font-size:.85em;color:#2a6f97}.fk-note{color:#52606d;font-size:.92em}
table.fk-table th{cursor:pointer}
"""
# Click a column header to sort a table (numbers by value, text alphabetically); inline, no network.
SORT_SCRIPT = r"""
document.querySelectorAll("table.fk-table").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.title = "sort";
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var key = function (r) {
        var t = (r.cells[col] ? r.cells[col].innerText : "").trim();
        var n = parseFloat(t.replace(/[^0-9.\-]/g, ""));
        return isNaN(n) ? t : n;
      };
      var dir = th.dataset.dir === "asc" ? -1 : 1;
      th.dataset.dir = dir === 1 ? "asc" : "desc";
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        return (typeof x === typeof y ? (x > y) - (x < y) : String(x).localeCompare(String(y))) * dir;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


@dataclass(frozen=True)
class Job:
    """One report: a notebook for a period, team and optionally a rep."""

    notebook: str
    period: str
    team: str | None
    rep: str | None
    parameters: dict[str, Any]
    relpath: str  # output path without extension, relative to the output folder

    @property
    def title(self) -> str:
        return " / ".join(x for x in (self.period, self.team, self.rep, self.notebook) if x)


@dataclass
class JobResult:
    job: Job
    ok: bool
    seconds: float
    error: str = ""
    html: str = ""
    notebook: str = ""


@dataclass
class RunSummary:
    results: list[JobResult] = field(default_factory=list)
    seconds: float = 0.0
    index: Path | None = None

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if not r.ok]


def slug(name: str) -> str:
    """A file-system-safe folder name that keeps letters of any script (``Li Na`` → ``Li_Na``)."""
    return re.sub(r"[^\w-]+", "_", name.strip()).strip("_-") or "_"


def expand_matrix(matrix: ReportMatrix, data: Dataset, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Job]:
    """Turn the matrix into concrete jobs: ``teams: all`` and ``reps: all`` expand from the data."""
    teams_in_data = sorted(data.deals["team"].dropna().unique())
    jobs: list[Job] = []
    for i, entry in enumerate(matrix.entries):
        if not (notebooks_dir / f"{entry.notebook}.ipynb").exists():
            raise ConfigError(f"reports matrix: entries.{i}.notebook: no notebook {entry.notebook}.ipynb in {notebooks_dir}")
        teams = teams_in_data if entry.teams == "all" else entry.teams
        for period in entry.periods:
            for team in teams:
                team_deals = data.deals[data.deals["team"] == team]
                if entry.reps is None:
                    reps: list[str | None] = [None]
                elif entry.reps == "all":
                    reps = sorted(team_deals["rep"].dropna().unique())
                else:
                    reps = [r for r in entry.reps if (team_deals["rep"] == r).any()]
                for rep in reps:
                    parts = [period, slug(team)] + ([slug(rep)] if rep else []) + [entry.notebook]
                    params = {"period": period, "team": team, "rep": rep, "pipeline": entry.pipeline}
                    params |= entry.parameters
                    jobs.append(Job(entry.notebook, period, team, rep, params, "/".join(parts)))
    return jobs


def check_parameters(jobs: list[Job], notebooks_dir: Path = NOTEBOOKS_DIR) -> None:
    """Raise when a job passes a name its notebook's ``parameters`` cell does not define
    (papermill itself would only warn)."""
    import papermill

    known: dict[str, set[str]] = {}
    for job in jobs:
        if job.notebook not in known:
            known[job.notebook] = set(papermill.inspect_notebook(str(notebooks_dir / f"{job.notebook}.ipynb")))
        unknown = set(job.parameters) - known[job.notebook]
        if unknown:
            raise ConfigError(f"reports matrix: notebook {job.notebook} has no parameter(s) {', '.join(sorted(unknown))}")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@functools.lru_cache(maxsize=1)
def _html_exporter() -> Any:
    """nbconvert's exporter without code, prompts or parameter cells; built once per process
    (loading its templates costs more than exporting one report)."""
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_cell_tags = {"parameters", "injected-parameters", "notebook-only"}
    c.HTMLExporter.exclude_input = True
    c.HTMLExporter.exclude_input_prompt = True
    c.HTMLExporter.exclude_output_prompt = True
    exporter = HTMLExporter(config=c, template_name="basic")
    exporter.register_preprocessor("nbconvert.preprocessors.TagRemovePreprocessor", enabled=True)
    return exporter


def notebook_to_html(nb: Any, title: str) -> str:
    """A self-contained HTML page of an executed notebook without code, prompts or parameters.

    Uses nbconvert's ``basic`` template (no scripts from a CDN) inside a page with inline CSS, so
    the file opens offline and makes no request.
    """
    body, _ = _html_exporter().from_notebook_node(nb)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{REPORT_CSS}</style></head>\n"
        f"<body>\n{body}\n<script>{SORT_SCRIPT}</script>\n</body></html>\n"
    )


def run_job(job: Job, output: Path, base_parameters: dict[str, Any], notebooks_dir: Path = NOTEBOOKS_DIR) -> JobResult:
    """Execute one notebook with papermill and export its HTML. Never raises: errors are returned."""
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from jupyter_client.kernelspec import NoSuchKernel

    start = time.perf_counter()
    out_nb = output / f"{job.relpath}.ipynb"
    out_html = output / f"{job.relpath}.html"
    out_nb.parent.mkdir(parents=True, exist_ok=True)
    try:
        nb = papermill.execute_notebook(
            str(notebooks_dir / f"{job.notebook}.ipynb"), str(out_nb),
            parameters=base_parameters | job.parameters, kernel_name=KERNEL_NAME, progress_bar=False,
            cwd=str(notebooks_dir), execution_timeout=EXECUTION_TIMEOUT, start_timeout=START_TIMEOUT,
        )
        _write_atomic(out_html, notebook_to_html(nbformat.from_dict(nb), job.title))
        return JobResult(job, True, time.perf_counter() - start, html=str(out_html), notebook=str(out_nb))
    except papermill.PapermillExecutionError as exc:
        error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except (CellTimeoutError, DeadKernelError, NoSuchKernel, RuntimeError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return JobResult(job, False, time.perf_counter() - start, error=error, notebook=str(out_nb))


def _run_job_star(args: tuple) -> JobResult:
    return run_job(*args)


def _one_math_thread_per_kernel() -> None:
    """Worker initializer: kernels inherit one BLAS/OpenMP thread each. With one worker per core,
    more threads only contend (OpenBLAS threads spin while they wait), which made many small
    matrix products — the bootstrap refits — over 20 times slower."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def run_reports(
    matrix_path: str | Path | None = None,
    jobs: int | None = None,
    only: str | None = None,
    output: str | Path | None = None,
    progress: bool = True,
    only_paths: list[str] | None = None,
    data_source: str | None = None,
) -> RunSummary:
    """Run every (or every ``only``-matching, or every ``only_paths``) report of the matrix in
    ``jobs`` worker processes. ``data_source`` replaces the matrix's ``data``. An engine source
    (``duckdb:///…``, ``spark:…``) is handed to each notebook as it is, so its events stay in the
    engine; any other is loaded once and cached as Parquet."""
    from tqdm import tqdm

    began = time.perf_counter()
    matrix = load_report_matrix(matrix_path)
    config = load_config()
    out = Path(output or matrix.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    source = data_source or matrix.data
    data = open_dataset(source, as_of=matrix.as_of, config=config, preset=matrix.preset)
    if is_engine_source(source):
        cache = source
    else:
        cache = str(write_dataset(data, out / CACHE_DIR / "data", fmt="parquet"))
    as_of = matrix.as_of or (data.as_of - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    base = {"data": cache, "as_of": as_of, "language": matrix.language}

    all_jobs = expand_matrix(matrix, data)
    check_parameters(all_jobs)
    selected = [j for j in all_jobs if not only or fnmatch.fnmatch(j.relpath, only) or fnmatch.fnmatch(j.title, only)]
    if only_paths is not None:
        selected = [j for j in selected if j.relpath in only_paths]
    workers = max(1, min(jobs or os.cpu_count() or 1, len(selected) or 1))
    summary = RunSummary()
    bar = tqdm(total=len(selected), desc="reports", unit="report", disable=not progress)
    with ProcessPoolExecutor(max_workers=workers, initializer=_one_math_thread_per_kernel) as pool:
        futures = [pool.submit(_run_job_star, (job, out, base)) for job in selected]
        for future in as_completed(futures):
            summary.results.append(future.result())
            bar.update(1)
    bar.close()
    summary.results.sort(key=lambda r: r.job.relpath)
    # Reports left out by --only keep their place in the index when an earlier run wrote them.
    earlier = [JobResult(j, True, 0.0, html=str(out / f"{j.relpath}.html")) for j in all_jobs
               if j not in selected and (out / f"{j.relpath}.html").exists()]
    summary.index = write_index(summary.results + earlier, out, as_of)
    summary.seconds = time.perf_counter() - began
    return summary


def write_index(results: list[JobResult], output: Path, as_of: str) -> Path:
    """``index.html``: a period × team grid of links, rep reports under their team, with status."""
    generated = pd.Timestamp.now().strftime("%Y-%m-%d %H:%M")
    periods = sorted({r.job.period for r in results})
    teams = sorted({r.job.team or "" for r in results})

    def link(r: JobResult) -> str:
        name = html.escape(r.job.notebook.replace("_", " "))
        if r.ok:
            written = pd.Timestamp(Path(r.html).stat().st_mtime, unit="s").strftime("%Y-%m-%d %H:%M")
            return (f'<a href="{html.escape(r.job.relpath)}.html">{name}</a> '
                    f'<span class="ok" title="generated {written}">ok · {written}</span>')
        return f'{name} <span class="failed" title="{html.escape(r.error)}">failed</span>'

    rows = []
    for period in periods:
        cells = []
        for team in teams:
            here = [r for r in results if r.job.period == period and (r.job.team or "") == team]
            team_links = [link(r) for r in here if r.job.rep is None]
            reps = sorted({r.job.rep for r in here if r.job.rep})
            rep_items = "".join(
                f"<li>{html.escape(rep)}: " + ", ".join(link(r) for r in here if r.job.rep == rep) + "</li>" for rep in reps
            )
            cells.append(
                "<td>" + "<br>".join(team_links) + (f"<ul class=\"reps\">{rep_items}</ul>" if rep_items else "") + "</td>"
            )
        rows.append(f"<tr><th>{html.escape(period)}</th>{''.join(cells)}</tr>")
    n_failed = sum(not r.ok for r in results)
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>funnelkit reports</title>"
        f"<style>{REPORT_CSS} .ok{{color:#2f855a;font-size:.8em}} .failed{{color:#c53030;font-weight:bold}}"
        " ul.reps{margin:.3em 0;padding-left:1.2em;font-size:.9em}</style></head><body>\n"
        "<h1>funnelkit reports</h1>\n"
        f"<p>Data as of {html.escape(as_of)}. Generated {generated}. {len(results)} reports, {n_failed} failed.</p>\n"
        "<table><tr><th>Period</th>" + "".join(f"<th>{html.escape(t)}</th>" for t in teams) + "</tr>\n"
        + "\n".join(rows) + "\n</table>\n</body></html>\n"
    )
    path = output / "index.html"
    _write_atomic(path, page)
    return path
