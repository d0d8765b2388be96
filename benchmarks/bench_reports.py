"""Report batch speed: ``funnelkit report`` against the naive way, and a large matrix, in one run.

    python benchmarks/bench_reports.py [--matrix params/reports.yaml] [--limit N] [--jobs J] [--repeat R]
                                       [--cold] [--large-reps 100] [--large-deals 20000] [--no-large]
                                       [--large-periods 2024-Q2,2024-06] [--no-sample]

1. The sample matrix. The naive way runs, for each report in sequence, the ``papermill`` command
   and then ``jupyter nbconvert --to html --no-input``, each notebook reading the data from CSV.
   funnelkit runs the reports in worker processes, each with one warm kernel that runs report
   after report, exports HTML in the worker, and reads the data from a per-run Parquet cache
   loaded once per kernel. ``--cold`` also times ``funnelkit report --cold`` (a kernel per report).
2. A large matrix: the sample data with ``--large-deals`` deals spread over ``--large-reps`` reps
   in three teams, and every notebook for every team and every rep for two periods
   (``--large-periods``: more periods, a longer batch; with ``--jobs 1`` one worker runs it all).

Prints wall time, reports per minute, the speed-up, the CPU seconds per report (kernels and
workers: what the reports cost whatever else the machine is doing), the load average (other
processes on a shared machine slow every wall-clock figure), and the resident memory of each
worker process and of its kernel, apart and together: after its first report, 10%, 25%, 50% and
75% of the way through its batch, after its last, and the peak, with a verdict (:func:`verdict`):
flat, levels off after the first report of each notebook type (a one-off cost per type), or keeps
rising, judged from the point where every notebook type has run once; and the kernel's memory
after each reset (what earlier reports left behind, without the last one's variables).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import funnelkit as fk
from funnelkit.runner.report import KERNEL_NAME, NOTEBOOKS_DIR, RunSummary, expand_matrix, run_reports

BIN = Path(sys.executable).parent
NOTEBOOKS = ["conversion", "time_in_stage", "opportunities", "weight_sensitivity", "rep_performance"]


def naive(jobs, data_folder: Path, as_of: str, language: str | None, out: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the commands and the kernels they started) of the naive loop."""
    start, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    for job in jobs:
        target = out / f"{job.relpath}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        params = job.parameters | {"data": str(data_folder), "as_of": as_of, "language": language}
        command = [str(BIN / "papermill"), str(NOTEBOOKS_DIR / f"{job.notebook}.ipynb"), str(target),
                   "-k", KERNEL_NAME, "--cwd", str(NOTEBOOKS_DIR), "--no-progress-bar", "-y", json.dumps(params)]
        subprocess.run(command, check=True, capture_output=True)
        subprocess.run([str(BIN / "jupyter"), "nbconvert", "--to", "html", "--no-input", str(target)],
                       check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - start, after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def kind_of(result) -> str:
    """A report's notebook type: the notebook, for a team or for a rep."""
    return f"{result.job.notebook} ({'rep' if result.job.rep else 'team'})"


def describe(name: str, summary: RunSummary, seconds: float, workers: int) -> None:
    n = len(summary.results)
    cpu = sum(r.cpu for r in summary.results)
    print(f"{name}: {n} reports in {seconds:.1f} s = {seconds / max(n, 1):.3f} s/report = {n / seconds * 60:.1f} reports/min "
          f"({len(summary.failed)} failed); CPU {cpu / max(n, 1):.2f} s/report "
          f"(= {cpu / max(n, 1) / workers:.3f} s/report on {workers} idle cores); {load()}")
    by_kind: dict[str, list] = defaultdict(list)
    for r in summary.results:
        by_kind[kind_of(r)].append(r)
    for kind, results in sorted(by_kind.items()):
        print(f"  {kind}: {len(results)} reports, CPU {sum(r.cpu for r in results) / len(results):.2f} s/report, "
              f"wall {sum(r.seconds for r in results) / len(results):.2f} s/report in a worker")
    by_worker: dict[int, list] = defaultdict(list)
    for r in sorted(summary.results, key=lambda r: r.finished):
        if r.worker and r.worker_memory[0]:
            by_worker[r.worker].append(r)
    for pid, results in sorted(by_worker.items()):
        print(f"  worker {pid}: {len(results)} reports; resident memory (MB) after report "
              + " / ".join(f"{label}" for label, _ in MARKS) + ", peak:")
        parts = {"worker process": [r.worker_memory for r in results], "its kernel": [r.kernel_memory for r in results]}
        kinds = [kind_of(r) for r in results]
        parts["both"] = [(w[0] + k[0], w[1] + k[1]) for w, k in zip(parts["worker process"], parts["its kernel"])]
        # after the report the kernel still holds that report's variables (more for some notebooks
        # than others); after the next reset, only what the reports before left behind
        if len(results) > 1 and all(r.kernel_reset_memory for r in results[1:]):
            parts["its kernel after each reset"] = [(r.kernel_reset_memory, r.kernel_reset_memory) for r in results[1:]]
        for part, memory in parts.items():
            mb = [m[0] / 2**20 for m in memory]
            peak = f", peak {max(m[1] for m in memory) / 2**20:.0f}" if "reset" not in part else " (report 2 on)"
            # a mark after a reset follows the report before it; any other, its own report
            print(f"    {part}: " + " / ".join(f"{mb[at(len(mb), share)]:.0f}" for _, share in MARKS)
                  + f"{peak}; {verdict(mb, kinds[:-1] if 'reset' in part else kinds)}")


# After report 1, a tenth in, a quarter, half, three quarters, and the last.
MARKS = (("1", 0.0), ("10%", 0.1), ("25%", 0.25), ("50%", 0.5), ("75%", 0.75), ("last", 1.0))
FLAT = 2.0  # percent: growth after the warm-up within this is "flat"


def at(n: int, share: float) -> int:
    """The index of the report ``share`` of the way through ``n`` reports."""
    return min(n - 1, max(0, round(share * n) - 1))


def verdict(mb: list[float], kinds: list[str]) -> str:
    """Whether memory stays flat, told apart from a one-off cost per notebook type.

    ``kinds[i]`` is the notebook type (notebook, team or rep report) of the last report run
    before mark ``mb[i]``. A report of a type not run before in the kernel may leave a one-off
    cost (modules, fonts, formats it alone uses); memory that levels off once every type has run
    is a plateau, memory that still rises is a leak. So the verdict is judged from the mark where
    every type has run once (and not before the end of warm-up, the first tenth, when the
    bounded stores are full): the growth from there to the last report, in MB and %, and the
    least-squares trend in MB per 100 reports; flat within :data:`FLAT` %. It also gives the
    growth within runs of one type after warm-up (the mean change from one report to the next of
    the same type, per 100 reports), which does not depend on where the types start, and must stay within
    :data:`FLAT` % over the whole batch as well; and the growth at the first report of each type,
    in all. With too few reports after every type has run, the within-type growth alone decides."""
    seen: set[str] = set()
    settled = 0
    for i, kind in enumerate(kinds):
        if kind not in seen:
            seen.add(kind)
            settled = i
    warm = at(len(mb), 0.1)
    settled = max(settled, warm)
    same = [b - a for a, b, k0, k1 in zip(mb[warm:], mb[warm + 1:], kinds[warm:], kinds[warm + 1:]) if k0 == k1]
    first_seen: set[str] = {kinds[0]} if kinds else set()
    new_type = 0.0
    for a, b, k in zip(mb, mb[1:], kinds[1:]):
        if k not in first_seen:
            first_seen.add(k)
            new_type += b - a
    within = statistics.fmean(same) * 100 if same else 0.0
    words = (f"within runs of one notebook type after warm-up {within:+.2f} MB per 100 reports; at the first report of each of "
             f"{len(seen)} types {new_type:+.1f} MB in all")
    after = mb[settled:]
    if len(after) < 20:
        drift = within / 100 * len(mb)
        flat = drift <= FLAT / 100 * mb[warm]  # a fall is no leak
        return (f"only {len(after)} reports after every notebook type had run, too few to judge from there; {words}: "
                + (f"flat within a type (a rise of at most {FLAT:g}%)" if flat
                   else f"KEEPS RISING within a type ({drift:+.1f} MB over the batch)"))
    growth = mb[-1] - mb[settled]
    tenth = max(len(after) // 10, 1)
    first, last = statistics.fmean(after[:tenth]), statistics.fmean(after[-tenth:])
    slope = statistics.linear_regression(range(len(after)), after).slope * 100
    # a short stretch after the last new type cannot hide a rise: the within-type growth over the
    # whole batch must be within FLAT % too
    # a rise of at most FLAT % is flat; a fall is no leak (memory given back)
    steady = within / 100 * len(mb) <= FLAT / 100 * mb[warm]
    flat = growth <= FLAT / 100 * mb[settled] and last - first <= FLAT / 100 * first
    before = mb[settled] - mb[0]
    if not flat:
        judged = "KEEPS RISING after every notebook type has run"
    elif not steady:
        judged = f"KEEPS RISING within runs of one notebook type ({within / 100 * len(mb):+.1f} MB over the batch)"
    elif new_type > FLAT / 100 * mb[0]:  # not the warm-up's rise: the first runs of each type cost it
        judged = f"levels off after the first report of each notebook type ({before:+.1f} MB until then), then flat"
    else:
        judged = "flat"
    return (f"from report {settled + 1} (every notebook type run once) {growth:+.1f} MB ({growth / mb[settled]:+.1%}) to the "
            f"last, trend {slope:+.2f} MB per 100 reports, mean of the last tenth {last - first:+.1f} MB over the first's; "
            f"{words}: {judged} (flat: a rise of at most {FLAT:g}%)")


def large_dataset(folder: Path, reps: int, deals: int) -> Path:
    """The sample's deals and events with each team's deals spread over ``reps`` reps in all."""
    data = fk.sample_dataset(n_deals=deals)
    teams = sorted(data.deals["team"].unique())
    per_team = {team: reps // len(teams) + (i < reps % len(teams)) for i, team in enumerate(teams)}
    rep = [f"{team} rep {zlib.crc32(str(d).encode()) % per_team[team] + 1:03d}"
           for team, d in zip(data.deals["team"], data.deals["deal_id"])]
    return fk.write_dataset(replace(data, deals=data.deals.assign(rep=rep)), folder, fmt="parquet")


def large_matrix(path: Path, data: Path, out: Path, periods: str = "2024-Q2,2024-06") -> Path:
    listed = ", ".join(periods.split(","))
    entries = "".join(f"  - notebook: {nb}\n    periods: [{listed}]\n"
                      f"  - notebook: {nb}\n    reps: all\n    periods: [{listed}]\n" for nb in NOTEBOOKS)
    path.write_text(f"data: {data}\nas_of: 2024-06-30\nlanguage: en\noutput: {out}\nentries:\n{entries}", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", help="report matrix (default params/reports.yaml)")
    parser.add_argument("--limit", type=int, help="only the first N reports (a quick smoke run)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=1, help="runs of each way; the median is printed")
    parser.add_argument("--cold", action="store_true", help="also time funnelkit report --cold")
    parser.add_argument("--large-reps", type=int, default=100, help="reps in the large matrix (default 100)")
    parser.add_argument("--large-deals", type=int, default=20000, help="deals in the large matrix's data (default 20000)")
    parser.add_argument("--no-large", action="store_true", help="skip the large matrix")
    parser.add_argument("--large-periods", default="2024-Q2,2024-06",
                        help="the large matrix's periods, comma-separated (more periods: a longer batch per worker)")
    parser.add_argument("--large-sample", type=int,
                        help="run only N reports of the large matrix, evenly spread over it (a loaded machine)")
    parser.add_argument("--no-sample", action="store_true", help="skip the sample matrix and the naive loop")
    args = parser.parse_args()

    matrix = fk.load_report_matrix(args.matrix)
    config = fk.load_config()
    data = fk.open_dataset(matrix.data, as_of=matrix.as_of, config=config, preset=matrix.preset)
    jobs = expand_matrix(matrix, data)[: args.limit]
    work = Path(tempfile.mkdtemp(prefix="funnelkit-bench-reports-"))
    csv_folder = fk.write_dataset(data, work / "csv", fmt="csv")
    as_of = matrix.as_of or f"{data.as_of:%Y-%m-%d}"
    only_paths = [j.relpath for j in jobs] if args.limit else None  # the same reports both ways
    print(f"sample matrix: {len(jobs)} reports, {args.jobs} workers, {os.cpu_count()} cores; {load()}")

    ours_runs, cold_runs, naive_runs, naive_cpu, ours_cpu, failed = [], [], [], [], [], 0
    for run in range(0 if args.no_sample else args.repeat):
        start = time.perf_counter()
        summary = run_reports(args.matrix, jobs=args.jobs, output=work / f"funnelkit{run}", progress=False,
                              only_paths=only_paths)
        ours_runs.append(time.perf_counter() - start)
        failed += len(summary.failed)
        ours_cpu.append(sum(r.cpu for r in summary.results) / max(len(summary.results), 1))
        describe(f"  warm run {run + 1}", summary, ours_runs[-1], args.jobs)
        if args.cold:
            start = time.perf_counter()
            cold = run_reports(args.matrix, jobs=args.jobs, output=work / f"cold{run}", progress=False,
                               only_paths=only_paths, cold=True)
            cold_runs.append(time.perf_counter() - start)
            failed += len(cold.failed)
            describe(f"  cold run {run + 1}", cold, cold_runs[-1], args.jobs)
        wall, cpu = naive(jobs, csv_folder, as_of, matrix.language, work / f"naive{run}")
        naive_runs.append(wall)
        naive_cpu.append(cpu / len(jobs))
        print(f"  naive run {run + 1}: {wall:.1f} s; CPU {cpu / len(jobs):.2f} s/report "
              f"(at least, counting only processes that were waited for); {load()}")
    if ours_runs:
        ours, slow = statistics.median(ours_runs), statistics.median(naive_runs)
        print(f"funnelkit report: {ours:6.1f} s = {len(jobs) / ours * 60:5.1f} reports/min ({failed} failed)")
        if cold_runs:
            print(f"funnelkit report --cold: {statistics.median(cold_runs):6.1f} s")
        print(f"naive papermill + nbconvert: {slow:6.1f} s = {len(jobs) / slow * 60:5.1f} reports/min")
        print(f"speed-up: {slow / ours:.2f}× (target ≥ 10×), medians of {args.repeat} run(s)")
        # The naive loop runs one report at a time; funnelkit spreads them over the workers.
        idle = statistics.median(naive_cpu) / (statistics.median(ours_cpu) / min(args.jobs, os.cpu_count() or 1))
        print(f"speed-up on an idle machine, from CPU seconds per report: {idle:.1f}× "
              f"(naive {statistics.median(naive_cpu):.2f} s on one core; funnelkit {statistics.median(ours_cpu):.2f} s "
              f"over {min(args.jobs, os.cpu_count() or 1)} cores)")

    if not args.no_large:
        folder = large_dataset(work / "large-data", args.large_reps, args.large_deals)
        path = large_matrix(work / "large.yaml", folder, work / "large-out", args.large_periods)
        big = fk.load_data(folder)
        large_jobs = expand_matrix(fk.load_report_matrix(path), big)
        chosen = large_jobs[: args.limit]
        if args.large_sample:
            stride = max(len(large_jobs) / args.large_sample, 1)
            chosen = [large_jobs[int(i * stride)] for i in range(min(args.large_sample, len(large_jobs)))]
        print(f"large matrix: {big.deals['rep'].nunique()} reps in {big.deals['team'].nunique()} teams, "
              f"{len(big.deals):,} deals, {len(large_jobs)} reports, running {len(chosen)}; {load()}")
        only = [j.relpath for j in chosen] if len(chosen) < len(large_jobs) else None
        start = time.perf_counter()
        summary = run_reports(path, jobs=args.jobs, progress=False, only_paths=only)
        seconds = time.perf_counter() - start
        failed += len(summary.failed)
        describe("large matrix", summary, seconds, args.jobs)
        print(f"large matrix: {seconds / max(len(summary.results), 1):.3f} s per report (target ≤ 0.5 s on 2 cores)")
    if failed:
        for r in summary.failed:
            print(f"FAILED {r.job.title}: {r.error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
