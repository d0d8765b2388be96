"""Analytics at scale on one engine: the whole pass on N deals, its peak memory, and the
per-event step beside the lean single-pass DuckDB query.

    python benchmarks/bench_analytics.py --engine pandas|duckdb|spark --deals 1000000 [--repeat 3]

The generator writes the raw sample to Parquet in chunks of ``--chunk`` deals (never the whole
dataset in memory; kept under ``--folder`` and reused). The engine then loads and checks it
(pandas: read + validate in this process; duckdb: ``duckdb:///folder``, out of core; spark:
``spark:folder``, a local session), and the analyses run on what comes back. Printed: seconds per
step (median of ``--repeat``), the whole pass, the peak resident memory of this process (the
driver) and of its child processes (Spark's JVM), and the lean query — ``min(entered_at) filter
(where stage_index >= s)`` grouped by deal, Parquet → pandas, no checks — beside ``reach_table``.
``--check`` also runs the pandas reference and compares the tables. ``--stop-above GB`` ends the
run (exit status 3) when the driver's memory passes GB, naming the step: a size an engine cannot
run on a shared machine is reported as such; a step that fails (Spark's JVM out of heap) ends it
with exit status 4, naming the step and the error. Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import funnelkit as fk
from funnelkit.analyses import reps
from funnelkit.events import sql
from funnelkit.analyses.funnel import months_in
from funnelkit.inputs.sample import generate_sample

warnings.simplefilter("ignore", FutureWarning)  # pyspark's note about pandas 3


def write_chunks(folder: Path, n_deals: int, chunk: int) -> tuple[int, int]:
    """The raw sample of ``n_deals`` as Parquet parts (``deals.parquet/``, ``stage_events.parquet/``),
    ``chunk`` deals at a time with their own seed and deal-id prefix. Returns (deals, events)."""
    marker = folder / f"complete-{n_deals}-{chunk}.txt"
    if marker.exists():
        return tuple(int(x) for x in marker.read_text().split())
    for table in ("deals", "stage_events"):
        (folder / f"{table}.parquet").mkdir(parents=True, exist_ok=True)
    n_events = 0
    for k, start in enumerate(range(0, n_deals, chunk)):
        deals, events = generate_sample(n_deals=min(chunk, n_deals - start), seed=k)
        prefix = f"D{k:04d}-"
        deals["deal_id"] = prefix + deals["deal_id"].str.slice(1)
        events["deal_id"] = prefix + events["deal_id"].str.slice(1)
        for table, frame in (("deals", deals), ("stage_events", events)):
            frame.to_parquet(folder / f"{table}.parquet" / f"part-{k:04d}.parquet", index=False,
                             coerce_timestamps="us", allow_truncated_timestamps=True)
        n_events += len(events)
        del deals, events
    marker.write_text(f"{n_deals} {n_events}")
    return n_deals, n_events


STEP = {"label": "generating the data"}  # the step running now, for the memory guard's message


PEAK = {"gb": 0.0}  # the highest step peak so far (the kernel's high-water mark is reset per step)


def _status_gb(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) / 1024**2


def resident_gb() -> float:
    """Resident memory of this process now (VmRSS)."""
    return _status_gb("VmRSS")


def start_step_peak() -> None:
    """Reset the kernel's high-water mark of this process's resident memory (VmHWM), so that
    :func:`step_peak_gb` gives the peak of one step; the peak before is kept in ``PEAK``."""
    PEAK["gb"] = max(PEAK["gb"], _status_gb("VmHWM"))
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not permitted: the step's peak is then the peak so far
        pass


def step_peak_gb() -> float:
    """Peak resident memory since :func:`start_step_peak`."""
    return _status_gb("VmHWM")


def peak_gb() -> float:
    """Peak resident memory of this process so far."""
    PEAK["gb"] = max(PEAK["gb"], _status_gb("VmHWM"))
    return PEAK["gb"]


def guard_memory(limit_gb: float, engine: str, n_deals: int) -> None:
    """Stop the run (exit status 3) when this process's resident memory passes ``limit_gb``,
    saying during which step: on a shared machine a size that does not fit is reported, not
    left to the kernel's out-of-memory killer."""
    def watch() -> None:
        while True:
            rss_gb = resident_gb()
            if rss_gb > limit_gb:
                print(f"\nstopped: {engine} on {n_deals:,} deals passed {limit_gb:g} GB of driver memory "
                      f"({rss_gb:.2f} GB resident) during {STEP['label']}; no whole-pass figure at this size",
                      flush=True)
                os._exit(3)
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()


MEMORY: dict[str, list[tuple[float, float]]] = {}  # step → (peak in the step, resident after it) per run


def timed(label: str, fn, times: dict[str, list[float]], cpu: dict[str, list[float]] | None = None):
    """Run ``fn``, adding its wall seconds to ``times[label]``, its CPU seconds (all threads of
    this process: less sensitive than wall time to other work on a shared machine) to ``cpu`` and
    its peak and final resident memory to ``MEMORY[label]``; print a progress line (so a run
    stopped part way still shows its figures)."""
    STEP["label"] = label
    start_step_peak()
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - an engine that cannot run this size is a figure, not a traceback
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        heap = " (the JVM ran out of heap: Spark's spark.driver.memory, 2g in a local session)" \
            if "Java heap space" in str(exc) else ""
        print(f"\nfailed: {label} after {time.perf_counter() - start:.0f} s, peak so far {peak_gb():.2f} GB: "
              f"{type(exc).__name__}: {first}{heap}; no whole-pass figure at this size", flush=True)
        sys.exit(4)
    times.setdefault(label, []).append(time.perf_counter() - start)
    if cpu is not None:
        cpu.setdefault(label, []).append(time.process_time() - start_cpu)
    MEMORY.setdefault(label, []).append((step_peak_gb(), resident_gb()))
    print(f"  {label}: {times[label][-1]:.2f} s wall, {cpu[label][-1] if cpu else float('nan'):.2f} s CPU, "
          f"memory: peak in the step {MEMORY[label][-1][0]:.2f} GB, resident after it {MEMORY[label][-1][1]:.2f} GB, "
          f"peak so far {peak_gb():.2f} GB", flush=True)
    return result


def duckdb_memory(n_deals: int) -> str:
    """DuckDB's memory_limit: ``FUNNELKIT_BENCH_DUCKDB_MEMORY``, else 2GB, and 512MB from 5M deals
    on (DuckDB runs in the driver: what it holds counts in the driver's peak; beyond its limit it
    spills to disk)."""
    return os.environ.get("FUNNELKIT_BENCH_DUCKDB_MEMORY", "2GB" if n_deals < 5_000_000 else "512MB")


def load(engine: str, folder: Path, config, n_deals: int) -> fk.Dataset:
    if engine == "pandas":
        return fk.load_data(folder, config=config)
    if engine == "duckdb":
        return fk.load_data(f"duckdb:///{folder}?memory_limit={duckdb_memory(n_deals)}", config=config)
    return fk.load_data(f"spark:{folder}", config=config)


def lean_query(folder: Path, stages: list[str]) -> pd.DataFrame:
    import duckdb

    with duckdb.connect() as con:
        source = f"read_parquet('{folder}/stage_events.parquet/*.parquet')"
        return con.sql(sql.lean_reach_sql(source, stages)).to_arrow_table().to_pandas()


def peak_children_gb() -> float:
    """Peak resident memory (VmHWM) of this process's live descendants (Spark's JVM)."""
    me, total = os.getpid(), 0
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
                parents[int(entry.name)] = (int(fields["PPid"]), int(fields.get("VmHWM", "0 kB").split()[0]))
            except (OSError, KeyError, ValueError):
                continue
    for pid, (ppid, hwm) in parents.items():
        while ppid and ppid != me:
            ppid = parents.get(ppid, (0, 0))[0]
        if ppid == me:
            total += hwm
    return total / 1024**2


def check_same(data: fk.Dataset, folder: Path, config, reach: pd.DataFrame, stays: pd.DataFrame) -> None:
    """The engine's tables equal the pandas reference on the same files."""
    ref = fk.load_data(folder, config=config)
    want = fk.reach_table(ref, config).sort_values("deal_id", kind="stable").reset_index(drop=True)
    got = reach.sort_values("deal_id", kind="stable").reset_index(drop=True)

    def values(frame: pd.DataFrame) -> pd.DataFrame:
        # an engine's text columns are categoricals, pandas' strings: compared as Python objects
        text = [c for c in frame if isinstance(frame[c].dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(frame[c])]
        out = frame.astype({c: object for c in text})
        return out.assign(**{c: out[c].where(out[c].notna(), None) for c in text})

    pd.testing.assert_frame_equal(values(got), values(want), check_dtype=False)
    order = ["deal_id", "entered_at", "stage_index"]
    a = stays.sort_values(order).reset_index(drop=True)
    b = fk.stage_stays(ref, config).sort_values(order).reset_index(drop=True)
    for column in ["deal_id", "stage", "stage_index", "entered_at", "exited_at", "outcome", "days"]:
        assert (a[column].astype(object).fillna(-1).to_numpy() == b[column].astype(object).fillna(-1).to_numpy()).all(), column
    assert fk.inputs.data.quarantine_counts(data).equals(fk.inputs.data.quarantine_counts(ref)) or \
        len(fk.inputs.data.quarantine_counts(data)) == len(fk.inputs.data.quarantine_counts(ref)) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["pandas", "duckdb", "spark"], default="duckdb")
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=500_000, help="deals generated and written at a time")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--folder", help="where the Parquet parts are kept (default: a temporary folder)")
    parser.add_argument("--check", action="store_true", help="compare with the pandas reference (needs memory)")
    parser.add_argument("--stop-above", type=float, metavar="GB",
                        help="stop, saying during which step, when the driver's memory passes GB")
    args = parser.parse_args()
    config = fk.load_config()
    card = fk.load_scorecard()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="funnelkit-bench-"))

    if args.stop_above:
        guard_memory(args.stop_above, args.engine, args.deals)
    start = time.perf_counter()
    n_deals, n_events = write_chunks(folder, args.deals, args.chunk)
    print(f"{n_deals:,} deals and {n_events:,} stage events as Parquet parts in {folder} "
          f"({time.perf_counter() - start:.1f} s, not timed below)" +
          (f"; DuckDB memory_limit {duckdb_memory(n_deals)}" if args.engine == "duckdb" else ""))
    stages = config.stage_keys()

    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeat):
        data = timed("load + row checks", lambda: load(args.engine, folder, config, n_deals), times, cpu)
        scope = fk.Scope.build(data, config)
        reach = timed("reach_table", lambda: scope.reach, times, cpu)
        months = months_in(data)
        timed(f"cohort_funnel, {reach['team'].nunique()} teams × {len(months)} months",
              lambda: fk.team_period_grid(scope, months), times, cpu)
        stays = timed("stage_stays", lambda: fk.stage_stays(data, config), times, cpu)
        timed("time_in_stage", lambda: fk.time_in_stage(stays), times, cpu)
        # the deals a report scores: those still open (the follow-up plan), with their current stage
        timed("score_deals, open deals", lambda: fk.score_deals(scope.open_deals, card), times, cpu)
        timed("rep_summary", lambda: reps.rep_summary_of(scope, "2024-Q2"), times, cpu)
        loads.append(os.getloadavg()[0])
    driver_gb = peak_gb()
    children_gb = peak_children_gb()
    STEP["label"] = "the lean query"
    lean, lean_cpu = [], []
    for _ in range(args.repeat):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        lean_reach = lean_query(folder, stages)
        lean.append(time.perf_counter() - begin)
        lean_cpu.append(time.process_time() - begin_cpu)
    assert len(lean_reach) == n_deals

    median = {k: statistics.median(v) for k, v in times.items()}
    median_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    width = max(map(len, median))
    print(f"\nengine: {args.engine}; {n_deals:,} deals; 1-minute load average during the runs "
          f"{min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cores (timings are inflated above {os.cpu_count()})")
    print(f"{'step':<{width}}  wall s  CPU s  (median of {args.repeat})  peak GB  resident GB after (highest of the runs)")
    for label, seconds in median.items():
        print(f"{label:<{width}}  {seconds:6.2f}  {median_cpu[label]:5.2f}  {'':16}{max(m[0] for m in MEMORY[label]):7.2f}"
              f"  {max(m[1] for m in MEMORY[label]):11.2f}")
    analytics = sum(median.values())
    step = median["reach_table"]
    print(f"\nwhole analytics pass ({args.engine}): {analytics:.1f} s wall, {sum(median_cpu.values()):.1f} s CPU "
          f"(all runs: {', '.join(f'{sum(run):.1f}' for run in zip(*times.values()))} s wall)")
    print(f"peak memory (max RSS): driver {driver_gb:.2f} GB" +
          (f", child processes (Spark JVM) {children_gb:.2f} GB" if children_gb else ""))
    print(f"lean DuckDB query (Parquet → pandas reach, no checks): {statistics.median(lean):.2f} s wall, "
          f"{statistics.median(lean_cpu):.2f} s CPU")
    print(f"per-event step, reach_table ÷ lean query: {step:.2f} s ÷ {statistics.median(lean):.2f} s = "
          f"{step / statistics.median(lean):.2f}× wall, {median_cpu['reach_table'] / statistics.median(lean_cpu):.2f}× "
          f"CPU (stage_stays {median['stage_stays']:.2f} s besides)")
    counts = fk.inputs.data.quarantine_counts(data)
    print(f"rows in = analysed + quarantined: {data.rows_in} = {fk.inputs.data.analysed_rows(data)} + "
          f"{int(counts['rows'].sum())} quarantined")
    if args.check:
        check_same(data, folder, config, reach, stays)
        print(f"per-event step on {args.engine} agrees with the pandas reference: yes")


if __name__ == "__main__":
    main()
