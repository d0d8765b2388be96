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
import os
import re
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from funnelkit.config import NOTEBOOKS_DIR, ConfigError, ReportMatrix, load_config, load_report_matrix, notebooks_dir
from funnelkit.data import Dataset, nothing_left
from funnelkit.engine import is_engine_source
from funnelkit.io import open_dataset, write_dataset
from funnelkit.pages import notebook_to_html, render_index

KERNEL_NAME = "funnelkit"
EXECUTION_TIMEOUT = 600  # seconds per cell
START_TIMEOUT = 120  # seconds for the kernel to start
CACHE_DIR = ".cache"


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
    """Turn the matrix into concrete jobs: ``teams: all`` and ``reps: all`` expand from the data.

    A matrix that expands to no report, or names a team the data does not have, is a
    :class:`ConfigError` saying why (e.g. every deal was quarantined, with the top reason).
    """
    teams_in_data = sorted(data.deals["team"].dropna().unique())
    if not teams_in_data:
        raise ConfigError(f"no teams: {nothing_left(data)}")
    jobs: list[Job] = []
    for i, entry in enumerate(matrix.entries):
        if not (notebooks_dir / f"{entry.notebook}.ipynb").exists():
            raise ConfigError(f"reports matrix: entries.{i}.notebook: no notebook {entry.notebook}.ipynb in {notebooks_dir}")
        absent = [t for t in ([] if entry.teams == "all" else entry.teams) if t not in teams_in_data]
        if absent:
            raise ConfigError(f"reports matrix: entries.{i}.teams: {', '.join(map(repr, absent))} not in the data; "
                              f"its teams are {', '.join(map(repr, teams_in_data[:20]))}")
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
    if not jobs:
        raise ConfigError("the report matrix expands to no report: no rep of the listed teams has analysed deals "
                          f"({len(data.deals):,} deals analysed)")
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
    matrix_path: str | Path | ReportMatrix | None = None,
    jobs: int | None = None,
    only: str | None = None,
    output: str | Path | None = None,
    progress: bool = True,
    only_paths: list[str] | None = None,
) -> RunSummary:
    """Run every (or every ``only``-matching, or every ``only_paths``) report of the matrix (a path,
    or a :class:`ReportMatrix` with the command line's choices) in ``jobs`` worker processes, with the
    project's notebooks (:func:`funnelkit.config.notebooks_dir`). An engine source (``duckdb:///…``,
    ``spark:…``) is handed to each notebook as it is, so its events stay in the engine; any other is
    loaded once and cached as Parquet."""
    from tqdm import tqdm

    began = time.perf_counter()
    matrix = matrix_path if isinstance(matrix_path, ReportMatrix) else load_report_matrix(matrix_path)
    notebooks = notebooks_dir()
    config = load_config()
    out = Path(output or matrix.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    source = matrix.data
    data = open_dataset(source, as_of=matrix.as_of, config=config, preset=matrix.preset)
    if is_engine_source(source):
        cache = source
    else:
        cache = str(write_dataset(data, out / CACHE_DIR / "data", fmt="parquet"))
    as_of = matrix.as_of or (data.as_of - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    base = {"data": cache, "as_of": as_of, "language": matrix.language}

    all_jobs = expand_matrix(matrix, data, notebooks)
    check_parameters(all_jobs, notebooks)
    selected = [j for j in all_jobs if not only or fnmatch.fnmatch(j.relpath, only) or fnmatch.fnmatch(j.title, only)]
    if only_paths is not None:
        selected = [j for j in selected if j.relpath in only_paths]
    workers = max(1, min(jobs or os.cpu_count() or 1, len(selected) or 1))
    summary = RunSummary()
    bar = tqdm(total=len(selected), desc="reports", unit="report", disable=not progress)
    with ProcessPoolExecutor(max_workers=workers, initializer=_one_math_thread_per_kernel) as pool:
        futures = [pool.submit(_run_job_star, (job, out, base, notebooks)) for job in selected]
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
    """``index.html``: a period × team grid of links, rep reports under their team, with status
    (template ``funnelkit/templates/index.html.j2``, every name escaped)."""
    periods = sorted({r.job.period for r in results})
    teams = sorted({r.job.team or "" for r in results})

    def link(r: JobResult) -> dict[str, Any]:
        entry = {"name": r.job.notebook.replace("_", " "), "ok": r.ok, "href": f"{r.job.relpath}.html", "error": r.error}
        if r.ok:
            entry["written"] = pd.Timestamp(Path(r.html).stat().st_mtime, unit="s").strftime("%Y-%m-%d %H:%M")
        return entry

    rows = []
    for period in periods:
        cells = []
        for team in teams:
            here = [r for r in results if r.job.period == period and (r.job.team or "") == team]
            reps = sorted({r.job.rep for r in here if r.job.rep})
            cells.append({"team": [link(r) for r in here if r.job.rep is None],
                          "reps": [{"name": rep, "reports": [link(r) for r in here if r.job.rep == rep]} for rep in reps]})
        rows.append({"period": period, "cells": cells})
    page = render_index({"as_of": as_of, "generated": pd.Timestamp.now().strftime("%Y-%m-%d %H:%M"),
                         "n_reports": len(results), "n_failed": sum(not r.ok for r in results),
                         "teams": teams, "rows": rows})
    path = output / "index.html"
    _write_atomic(path, page)
    return path
