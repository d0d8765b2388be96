"""Small-size smoke runs of the benchmarks: they run and agree with the reference (no timing asserted)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_bench_analytics_smoke(tmp_path):
    out = run("benchmarks/bench_analytics.py", "--engine", "duckdb", "--deals", "5000", "--chunk", "2000",
              "--folder", str(tmp_path), "--check")
    assert "per-event step on duckdb agrees with the pandas reference: yes" in out
    assert "whole analytics pass (duckdb):" in out and "peak memory" in out and "lean DuckDB query" in out
    assert "reach_table: " in out and "peak in the step" in out and "resident after it" in out
    assert "rows in = analysed + quarantined: {'deals': 5000," in out


def test_bench_reports_smoke():
    out = run("benchmarks/bench_reports.py", "--limit", "2", "--large-deals", "3000")
    assert "reports/min (0 failed)" in out and "speed-up:" in out
    assert "large matrix: 2 reports" in out and "peak" in out and "MB" in out


def test_bench_fit_smoke():
    out = run("benchmarks/bench_fit.py", "--deals", "1500")
    assert "fitted card held-out AUC" in out and "time split" in out and "k-fold" in out


def test_bench_analytics_stops_above_a_memory_bound(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/bench_analytics.py", "--engine", "pandas", "--deals", "2000",
                             "--chunk", "1000", "--folder", str(tmp_path), "--stop-above", "0.01"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "stopped: pandas on 2,000 deals passed 0.01 GB of driver memory" in result.stdout


def test_a_step_that_fails_is_reported_with_its_step_not_a_traceback(capsys):
    """Spark's local JVM ran out of heap collecting 10M deals: the bench printed a traceback of
    several hundred lines; it now names the step and the error and exits with status 4."""
    import pytest

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_analytics
    finally:
        sys.path.pop(0)

    def collect() -> None:
        raise RuntimeError("An error occurred while calling o268.getResult.\n: java.lang.OutOfMemoryError: Java heap space")

    with pytest.raises(SystemExit) as stopped:
        bench_analytics.timed("load + row checks", collect, {}, {})
    assert stopped.value.code == 4
    out = capsys.readouterr().out
    assert "failed: load + row checks after 0 s" in out and "RuntimeError: An error occurred" in out
    assert "spark.driver.memory" in out and "no whole-pass figure at this size" in out


def test_the_report_bench_tells_a_plateau_from_a_leak():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_reports import at, verdict
    finally:
        sys.path.pop(0)
    assert [at(100, share) for share in (0.0, 0.1, 0.5, 1.0)] == [0, 9, 49, 99]  # report 1, 10, 50, 100
    warm_up = [100.0 + i for i in range(10)]  # stores filling over the first tenth
    one = ["a"] * 100
    plateau = verdict(warm_up + [109.0] * 90, one)
    assert "+0.0 MB (+0.0%)" in plateau and "trend +0.00 MB per 100 reports" in plateau
    assert plateau.endswith(": flat (flat: a rise of at most 2%)")
    leak = verdict(warm_up + [109.0 + 0.05 * i for i in range(1, 91)], one)  # +4.5 MB over 90 reports
    assert "+4.5 MB (+4.1%)" in leak and "KEEPS RISING" in leak
    # memory given back is no leak (the bench called a 6.9 MB fall "KEEPS RISING")
    falling = verdict(warm_up + [109.0 - 0.1 * i for i in range(1, 91)], one)
    assert "-9.0 MB" in falling and "RISING" not in falling and falling.endswith(": flat (flat: a rise of at most 2%)")
    # ten types in turn, each costing 3 MB the first time it runs, then flat: a plateau
    kinds = [f"t{i % 10}" for i in range(100)]
    once = [100.0 + 3 * min(i + 1, 10) for i in range(100)]
    assert "levels off after the first report of each notebook type (+27.0 MB until then), then flat" in verdict(once, kinds)
    # the same types with 0.05 MB more after every report: a leak, whatever the types
    assert "KEEPS RISING" in verdict([m + 0.05 * i for i, m in enumerate(once)], kinds)
