"""Report batch speed: ``funnelkit report`` against the naive way, in the same run.

    python benchmarks/bench_reports.py [--matrix params/reports.yaml] [--limit N] [--jobs J] [--repeat R]

The naive way runs, for each report in sequence, the ``papermill`` command and then
``jupyter nbconvert --to html --no-input``, each notebook reading the data from CSV. funnelkit
runs the reports in worker processes through the papermill API, exports HTML in the same process,
and reads the data from a Parquet cache written once. Prints reports per minute and the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import funnelkit as fk
from funnelkit.report import KERNEL_NAME, NOTEBOOKS_DIR, expand_matrix, run_reports

BIN = Path(sys.executable).parent


def naive(jobs, data_folder: Path, as_of: str, language: str | None, out: Path) -> float:
    start = time.perf_counter()
    for job in jobs:
        target = out / f"{job.relpath}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        params = job.parameters | {"data": str(data_folder), "as_of": as_of, "language": language}
        command = [str(BIN / "papermill"), str(NOTEBOOKS_DIR / f"{job.notebook}.ipynb"), str(target),
                   "-k", KERNEL_NAME, "--cwd", str(NOTEBOOKS_DIR), "--no-progress-bar", "-y", json.dumps(params)]
        subprocess.run(command, check=True, capture_output=True)
        subprocess.run([str(BIN / "jupyter"), "nbconvert", "--to", "html", "--no-input", str(target)],
                       check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", help="report matrix (default params/reports.yaml)")
    parser.add_argument("--limit", type=int, help="only the first N reports (a quick smoke run)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=1, help="runs of each way; the median is printed")
    args = parser.parse_args()

    matrix = fk.load_report_matrix(args.matrix)
    config = fk.load_config()
    data = fk.open_dataset(matrix.data, as_of=matrix.as_of, config=config, preset=matrix.preset)
    jobs = expand_matrix(matrix, data)[: args.limit]
    work = Path(tempfile.mkdtemp(prefix="funnelkit-bench-reports-"))
    csv_folder = fk.write_dataset(data, work / "csv", fmt="csv")
    as_of = matrix.as_of or f"{data.as_of:%Y-%m-%d}"
    only_paths = [j.relpath for j in jobs] if args.limit else None  # the same reports both ways
    print(f"{len(jobs)} reports, {args.jobs} workers, {os.cpu_count()} cores")

    ours_runs, naive_runs, failed = [], [], 0
    for run in range(args.repeat):
        start = time.perf_counter()
        summary = run_reports(args.matrix, jobs=args.jobs, output=work / f"funnelkit{run}", progress=False,
                              only_paths=only_paths)
        ours_runs.append(time.perf_counter() - start)
        failed += len(summary.failed)
        naive_runs.append(naive(jobs, csv_folder, as_of, matrix.language, work / f"naive{run}"))
    ours, slow = statistics.median(ours_runs), statistics.median(naive_runs)
    print(f"runs: funnelkit {', '.join(f'{t:.1f}' for t in ours_runs)} s; naive {', '.join(f'{t:.1f}' for t in naive_runs)} s")
    print(f"funnelkit report: {ours:6.1f} s = {len(jobs) / ours * 60:5.1f} reports/min ({failed} failed)")
    print(f"naive papermill + nbconvert: {slow:6.1f} s = {len(jobs) / slow * 60:5.1f} reports/min")
    print(f"speed-up: {slow / ours:.2f}× (target ≥ 4×), medians of {args.repeat} run(s)")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
