"""The report runner: unique and capped report paths, isolated and locked runs, workers that die
with their parent, and the cap on report parameters."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

import funnelkit as fk
from funnelkit.runner.cli import main as cli
from funnelkit.config import ConfigError
from funnelkit.runner.report import Job, SLUG_MAX_BYTES, run_job, run_reports, slug, unique_slugs

ROOT = Path(__file__).resolve().parent.parent
LONG_REP = "R" * 300


def write_matrix(path: Path, data: str, out: Path, entries: str) -> str:
    path.write_text(f"data: {data}\nas_of: 2024-06-30\nlanguage: en\noutput: {out}\nentries:\n{entries}",
                    encoding="utf-8")
    return str(path)


def renamed_sample(folder: Path, n_deals: int = 3000) -> Path:
    """The sample with names that collide or cannot be folder names as they are."""
    data = fk.sample_dataset(n_deals=n_deals)
    teams = {"East": "..", "South": "🚀🚀"}
    reps = {"Li Na": "x/y", "Wang Fang": "x y", "Xu Li": LONG_REP}
    deals = data.deals.assign(team=data.deals["team"].replace(teams), rep=data.deals["rep"].replace(reps))
    return fk.write_dataset(replace(data, deals=deals), folder, fmt="parquet")


# ----------------------------------------------------------------------------------- slugs


def test_unique_slugs_separate_names_that_would_share_a_folder():
    names = ["..", "🚀🚀", "x/y", "x y", "Li Na", "华东 团队", LONG_REP, LONG_REP + "2"]
    slugs = unique_slugs(names)
    assert len(set(slugs.values())) == len(names)
    assert slugs["Li Na"] == "Li_Na" and slugs["华东 团队"] == "华东_团队"  # plain names stay readable
    assert re.fullmatch(r"x_y-[0-9a-f]{8}", slugs["x/y"]) and re.fullmatch(r"x_y-[0-9a-f]{8}", slugs["x y"])
    assert re.fullmatch(r"_-[0-9a-f]{8}", slugs[".."]) and re.fullmatch(r"_-[0-9a-f]{8}", slugs["🚀🚀"])
    for name in (LONG_REP, LONG_REP + "2"):
        assert len(slugs[name].encode()) <= SLUG_MAX_BYTES + 9 and slugs[name].startswith("R" * 40)
    assert unique_slugs(list(reversed(names))) == slugs  # the same folder whatever the order
    assert all("/" not in s and s not in (".", "..") for s in slugs.values())
    long_cjk = unique_slugs(["团" * 200])["团" * 200]
    assert len(long_cjk.encode()) <= SLUG_MAX_BYTES + 9 and long_cjk.startswith("团")  # cut on a character
    assert slug("x/y") == "x_y"


def test_a_name_that_cannot_make_a_path_fails_that_report_alone(tmp_path):
    job = Job("conversion", "2024-06", "East", "x" * 300, {"period": "2024-06"}, "2024-06/East/" + "x" * 300 + "/conversion")
    result = run_job(job, tmp_path, {"data": "sample"})
    assert not result.ok and "OSError" in result.error and "too long" in result.error


def test_colliding_and_long_names_get_their_own_reports(tmp_path):
    data = renamed_sample(tmp_path / "data")
    matrix = write_matrix(tmp_path / "m.yaml", str(data), tmp_path / "out",
                          "  - notebook: conversion\n    teams: ['..', '🚀🚀']\n    periods: [2024-06]\n"
                          "  - notebook: rep_performance\n    teams: ['..', '🚀🚀']\n    reps: all\n    periods: [2024-Q2]\n"
                          "")
    summary = run_reports(matrix, jobs=2, progress=False, only_paths=None, only="*conversion*")
    assert not summary.failed, [r.error for r in summary.failed]
    assert summary.written == len(summary.results) == 2
    pages = {r.job.team: Path(r.html) for r in summary.results}
    assert pages[".."] != pages["🚀🚀"] and ".." not in pages[".."].parts
    assert all(p.is_relative_to(tmp_path / "out") for p in pages.values())
    assert "Conversion analysis — .., 2024-06" in pages[".."].read_text(encoding="utf-8")
    assert "Conversion analysis — 🚀🚀, 2024-06" in pages["🚀🚀"].read_text(encoding="utf-8")

    # the reps: x/y and x y apart, the 300-character name capped; an --only that excludes them runs too
    summary = run_reports(matrix, jobs=2, progress=False, only="*/x_y-*")
    assert not summary.failed and summary.written == 2
    assert len({r.html for r in summary.results}) == 2
    assert {r.job.rep for r in summary.results} == {"x/y", "x y"}
    index = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]+)"', index)
    assert len(links) == len(set(links)) == 4  # two team reports and two rep reports, each its own file
    for link in links:
        assert (tmp_path / "out" / link).exists()
    summary = run_reports(matrix, jobs=1, progress=False, only=f"*/{slug(LONG_REP)[:20]}*")
    assert not summary.failed and summary.written == 1
    assert all(len(part.encode()) < 100 for part in Path(summary.results[0].html).parts)


# --------------------------------------------------------------------------- parameter cap


def test_a_billion_laughs_in_report_parameters_is_refused_at_once(tmp_path):
    levels = "\n".join(f"      l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10))
    matrix = write_matrix(tmp_path / "lol.yaml", "sample", tmp_path / "out",
                          "  - notebook: conversion\n    periods: [2024-06]\n    parameters:\n"
                          "      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + levels + "\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"entries\.0\.parameters: more than 64 KB"):
        run_reports(matrix, progress=False)
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "out" / ".cache").exists()  # refused before any data or kernel


def test_report_parameters_under_the_cap_pass(tmp_path):
    from funnelkit.config import load_report_matrix
    from funnelkit.runner.report import check_parameter_size

    matrix = write_matrix(tmp_path / "m.yaml", "sample", tmp_path / "out",
                          "  - notebook: conversion\n    periods: [2024-06]\n    parameters: {pipeline: new_business}\n")
    check_parameter_size(load_report_matrix(matrix))
    with pytest.raises(ConfigError, match="more than 0 KB"):
        check_parameter_size(load_report_matrix(matrix), limit=10)


# ------------------------------------------------------------------- concurrent runs, lock


def test_two_concurrent_runs_into_one_folder_keep_their_own_data(tmp_path):
    out = tmp_path / "out"
    small = fk.write_dataset(fk.sample_dataset(n_deals=1500), tmp_path / "small", fmt="parquet")
    entry = "  - notebook: conversion\n    teams: [East]\n    periods: [{period}]\n"
    matrices = [write_matrix(tmp_path / "a.yaml", "sample", out, entry.format(period="2024-06")),
                write_matrix(tmp_path / "b.yaml", str(small), out, entry.format(period="2024-05"))]
    runs = [subprocess.Popen([sys.executable, "-m", "funnelkit.runner.cli", "report", "--matrix", m, "--quiet", "--jobs", "1"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in matrices]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sum("waiting for it to finish" in err for _, err in outputs) == 1  # the second said it waited
    page_a = (out / "2024-06" / "East" / "conversion.html").read_text(encoding="utf-8")
    page_b = (out / "2024-05" / "East" / "conversion.html").read_text(encoding="utf-8")
    assert re.search(r">\s*3,000\s*<", page_a) and not re.search(r">\s*1,500\s*<", page_a)
    assert re.search(r">\s*1,500\s*<", page_b) and not re.search(r">\s*3,000\s*<", page_b)
    assert not [p for p in (out / ".cache").iterdir()]  # each run removed its own cache


# ----------------------------------------------------------------------- worker lifetime


def test_workers_and_kernels_exit_when_the_run_is_killed(tmp_path):
    matrix = write_matrix(tmp_path / "m.yaml", "sample", tmp_path / "out",
                          "  - notebook: conversion\n    periods: [2024-Q2, 2024-06, 2024-05]\n")
    run = subprocess.Popen([sys.executable, "-m", "funnelkit.runner.cli", "report", "--matrix", matrix, "--quiet", "--jobs", "2"],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(run.pid)
    deadline = time.monotonic() + 240
    tree: list[psutil.Process] = []
    while time.monotonic() < deadline:
        tree = parent.children(recursive=True)
        if any("ipykernel" in " ".join(p.cmdline()) for p in tree if p.is_running()):
            break
        time.sleep(0.2)
    assert tree, "the run started no worker"
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    gone, alive = psutil.wait_procs(tree, timeout=20)
    assert not alive, [p.cmdline() for p in alive]
