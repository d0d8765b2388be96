"""Analytics at scale: the whole pass on N deals, peak memory, and the per-event step against DuckDB.

    python benchmarks/bench_analytics.py --deals 1000000 [--repeat 3]

Prints the time of each step (median of --repeat runs), the total, the peak resident memory, and
the per-event step (events → per-deal reach and per-stay tables) in pandas ÷ the same step as
DuckDB SQL, after checking that both give the same numbers. Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import funnelkit as fk
from funnelkit import reps, sql
from funnelkit.funnel import months_in
from funnelkit.sample import SAMPLE_END, generate_sample


def timed(label: str, fn, times: dict[str, list[float]]):
    start = time.perf_counter()
    result = fn()
    times.setdefault(label, []).append(time.perf_counter() - start)
    return result


def check_same(data: fk.Dataset, config, reach: pd.DataFrame, stays: pd.DataFrame, folder: Path) -> None:
    """The SQL reference must give the pandas numbers: reach per stage, furthest stage, stays."""
    stages = config.stage_keys()
    ref = sql.run_duckdb_parquet(str(folder), sql.reach_sql(stages, data.as_of))
    ours = reach.sort_values("deal_id").reset_index(drop=True)
    assert ref["deal_id"].tolist() == ours["deal_id"].astype(str).tolist(), "reach: deals differ"
    assert (ref["furthest_index"].to_numpy() == ours["furthest_index"].to_numpy()).all(), "reach: furthest differs"
    for stage in stages:
        a = pd.to_datetime(ref[f"reached_{stage}"]).astype("datetime64[ns]").to_numpy()
        b = ours[f"reached_{stage}"].to_numpy()
        assert ((a == b) | (np.isnat(a) & np.isnat(b))).all(), f"reach: {stage} differs"
    ref_stays = sql.run_duckdb_parquet(str(folder), sql.stays_sql(stages, data.as_of))
    ours_stays = stays.sort_values(["deal_id", "entered_at", "stage_index"]).reset_index(drop=True)
    assert len(ref_stays) == len(ours_stays), "stays: counts differ"
    assert ref_stays["outcome"].tolist() == ours_stays["outcome"].tolist(), "stays: outcomes differ"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    config = fk.load_config()
    card = fk.load_scorecard()

    start = time.perf_counter()
    deals, events = generate_sample(n_deals=args.deals, seed=0)
    data = fk.validate(deals, events, config, as_of=SAMPLE_END)
    del deals, events
    folder = Path(tempfile.mkdtemp(prefix="funnelkit-bench-"))
    fk.write_dataset(data, folder, fmt="parquet")
    print(f"generated {len(data.deals):,} deals and {len(data.events):,} stage events "
          f"in {time.perf_counter() - start:.1f} s (not timed below)")
    del data

    times: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        loaded = timed("load Parquet + validate", lambda: fk.load_data(folder, config=config), times)
        scope = fk.Scope.build(loaded, config)
        reach = timed("reach_table", lambda: scope.reach, times)
        months = months_in(loaded)
        timed(f"cohort_funnel, {reach['team'].nunique()} teams × {len(months)} months",
              lambda: fk.team_period_grid(scope, months), times)
        stays = timed("stage_stays", lambda: fk.stage_stays(loaded, config), times)
        timed("time_in_stage", lambda: fk.time_in_stage(stays), times)
        timed("score_deals", lambda: fk.score_deals(loaded.deals, card), times)
        timed("rep_summary", lambda: reps.rep_summary_of(scope, "2024-Q2"), times)
        stages = config.stage_keys()
        timed("reference: reach in DuckDB", lambda: sql.run_duckdb_parquet(str(folder), sql.reach_sql(stages, loaded.as_of)), times)
        timed("reference: stays in DuckDB", lambda: sql.run_duckdb_parquet(str(folder), sql.stays_sql(stages, loaded.as_of)), times)
    check_same(loaded, config, reach, stays, folder)

    median = {k: statistics.median(v) for k, v in times.items()}
    width = max(map(len, median))
    print(f"\n{'step':<{width}}  seconds (median of {args.repeat})")
    for label, seconds in median.items():
        print(f"{label:<{width}}  {seconds:7.2f}")
    analytics = sum(v for k, v in median.items() if not k.startswith("reference"))
    ours = median["reach_table"] + median["stage_stays"]
    reference = median["reference: reach in DuckDB"] + median["reference: stays in DuckDB"]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"\nwhole analytics pass: {analytics:.1f} s (target < 20 s)")
    print(f"peak memory (max RSS): {peak_gb:.2f} GB (target < 4 GB)")
    print(f"per-event step, pandas ÷ DuckDB: {ours:.2f} s ÷ {reference:.2f} s = {ours / reference:.2f}× (target ≤ 2×)")
    print("per-event step agrees with the DuckDB reference: yes")


if __name__ == "__main__":
    main()
