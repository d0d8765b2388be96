"""Warm report kernels: isolation between reports, failures that stay alone, warm = cold output,
and a quiet console."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from funnelkit.runner import report
from funnelkit.runner.report import Job, run_job

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import warnings
import matplotlib, pandas as pd
import funnelkit as fk
d = fk.open_dataset(data)
print("defined:", "leftover" in dir())
print("precision:", pd.get_option("display.precision"), "max_rows:", pd.get_option("display.max_rows"))
print("dpi:", matplotlib.rcParams["figure.dpi"], "font:", matplotlib.rcParams["font.size"])
print("rows:", len(d.deals), len(d.events), "amount:", round(float(d.deals["amount"].sum()), 2), "notes:", d.notes)
print("warning filters:", len(warnings.filters), "cwd:", __import__("os").getcwd().endswith("notebooks"))
"""

POLLUTE = """
import os, warnings
import matplotlib, pandas as pd
import funnelkit as fk
leftover = 42
pd.set_option("display.precision", 1)
pd.set_option("display.max_rows", 3)
matplotlib.rcParams["figure.dpi"] = 17
matplotlib.rcParams["font.size"] = 31
warnings.filterwarnings("ignore")
d = fk.open_dataset(data)
d.deals["amount"] = 0.0
d.deals.drop(index=d.deals.index[:100], inplace=True)
d.events.loc[:, "stage"] = "leads"
d.notes.append("polluted")
os.chdir("/")
print("polluted")
"""

# What a warm kernel keeps from report to report: the cells IPython keeps for tracebacks (in
# linecache, under ipykernel's names for cells) and queues for its history database, and the
# message signatures each end keeps.
STATE = """
import linecache
from IPython import get_ipython
shell = get_ipython()
print("cells kept:", sum(name in shell.compile._filename_map or "/ipykernel_" in name for name in linecache.cache))
print("digest bound:", shell.kernel.session.digest_history_size)
print("history queued:", len(shell.history_manager.db_input_cache), "enabled:", shell.history_manager.enabled)
"""

# What pandas lists of the copies of the kept dataset's tables (copy-on-write), dead copies included.
COPIES = """
import funnelkit as fk
from funnelkit import datacache
d = fk.open_dataset(data)
for _ in range(20):  # views and copies, as an analysis makes of the tables it is handed
    d.deals[["deal_id", "amount"]].copy(deep=False)
    d.events.head(10)
listed = 0
for kept in datacache._loaded.values():
    for table in (kept.deals, kept.events):
        listed += sum(len(b.refs.referenced_blocks) for b in table._mgr.blocks) + len(table.index._references.referenced_blocks)
print("copies listed:", listed)
"""


def notebook(folder: Path, name: str, code: str) -> None:
    nb = new_notebook(cells=[new_code_cell('data = "sample"', metadata={"tags": ["parameters"]}), new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "funnelkit", "display_name": "Python (funnelkit)", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture()
def notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    notebook(folder, "probe", PROBE)
    notebook(folder, "pollute", POLLUTE)
    notebook(folder, "fail", 'import os\nos.write(2, b"kernel says: about to fail\\n")\nraise ValueError("on purpose")')
    notebook(folder, "slow", "import time\ntime.sleep(60)")
    notebook(folder, "state", STATE)
    notebook(folder, "copies", COPIES)
    yield folder
    for kernel in report._worker_kernel:
        kernel.shutdown()
    report._worker_kernel.clear()


def job(name: str) -> Job:
    return Job(name, "2024-06", "East", None, {}, f"{name}-{id(name)}")


def stream_text(path: str) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")


def run(name: str, out: Path, folder: Path, tag: str):
    return run_job(Job(name, "2024-06", "East", None, {}, f"{tag}/{name}"), out, {"data": "sample"}, folder, cold=False)


def test_a_report_cannot_change_the_next_one(notebooks, tmp_path):
    first = run("probe", tmp_path / "out", notebooks, "a")
    assert first.ok, first.error
    before = stream_text(first.notebook)
    assert "defined: False" in before and "rows: 3000" in before and "notes: []" in before
    polluted = run("pollute", tmp_path / "out", notebooks, "b")
    assert polluted.ok and polluted.worker == first.worker  # the same warm kernel
    after = run("probe", tmp_path / "out", notebooks, "c")
    assert after.ok
    assert stream_text(after.notebook) == before
    nb = nbformat.read(after.notebook, as_version=4)
    assert [c.execution_count for c in nb.cells if c.cell_type == "code"] == [1, 2, 3]  # as in a fresh kernel
    assert nb.metadata.papermill.parameters == {"data": "sample"} and "duration" in nb.metadata.papermill


def test_a_failing_report_fails_alone_and_restarts_the_kernel(notebooks, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert run("probe", out, notebooks, "a").ok
    pid = report._worker_kernel[0].km.provisioner.pid
    failed = run("fail", out, notebooks, "b")
    assert not failed.ok and "ValueError: on purpose" in failed.error
    assert "kernel says: about to fail" in failed.log  # the kernel's own log comes with a failure
    assert report._worker_kernel[0].km.provisioner.pid != pid  # a new kernel process
    assert run("probe", out, notebooks, "c").ok

    monkeypatch.setattr(report, "EXECUTION_TIMEOUT", 3)
    pid = report._worker_kernel[0].km.provisioner.pid
    slow = run("slow", out, notebooks, "d")
    assert not slow.ok and "CellTimeoutError" in slow.error
    assert Path(slow.notebook).exists()  # written once at the end, also when the report ends in a timeout
    assert report._worker_kernel[0].km.provisioner.pid != pid
    after = run("probe", out, notebooks, "e")
    assert after.ok and "defined: False" in stream_text(after.notebook)


def normalised(page: str) -> str:
    """The page without what differs between any two runs: times, and the random ids pandas
    gives each styled table."""
    page = re.sub(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?", "<time>", page)
    return re.sub(r"T_[0-9a-f]{5}", "T_<id>", page)


def test_warm_and_cold_runs_of_the_sample_matrix_give_the_same_html(tmp_path):
    from funnelkit.runner.report import run_reports

    warm = run_reports(output=tmp_path / "warm", progress=False, jobs=2)
    cold = run_reports(output=tmp_path / "cold", progress=False, jobs=2, cold=True)
    assert not warm.failed and not cold.failed, [r.error for r in warm.failed + cold.failed]
    assert len(warm.results) == len(cold.results) == 36
    for w, c in zip(warm.results, cold.results):
        assert w.job == c.job
        assert normalised(Path(w.html).read_text(encoding="utf-8")) == normalised(Path(c.html).read_text(encoding="utf-8")), w.job.relpath
    assert len({r.worker for r in warm.results}) <= 2  # two workers, two kernels, 36 reports


def test_a_clean_run_prints_only_the_progress_bar_and_summary(tmp_path):
    matrix = tmp_path / "m.yaml"
    matrix.write_text(f"data: sample\nas_of: 2024-06-30\nlanguage: en\noutput: {tmp_path / 'out'}\nentries:\n"
                      "  - notebook: conversion\n    teams: [East]\n    periods: [2024-06, 2024-05]\n", encoding="utf-8")
    for cold in ([], ["--cold"]):
        done = subprocess.run([sys.executable, "-m", "funnelkit.runner.cli", "report", "--matrix", str(matrix), "--jobs", "1",
                               *cold], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert re.fullmatch(r"2 of 2 reports written in [\d.]+ s; index: \S+index.html\n", done.stdout), done.stdout
        bar = [line for line in re.split(r"[\r\n]+", done.stderr) if line.strip()]
        assert bar and all(line.startswith("reports:") for line in bar), done.stderr
        for noise in ("IPKernelApp", "WARNING", "KeyboardInterrupt", "Traceback", "without encryption"):
            assert noise not in done.stderr + done.stdout


def test_verbose_shows_the_kernel_log_as_it_runs(notebooks, tmp_path, capfd):
    result = run_job(Job("fail", "2024-06", "East", None, {}, "v/fail"), tmp_path / "out", {"data": "sample"}, notebooks,
                     cold=True, verbose=True)
    assert not result.ok and result.log == ""  # nothing kept back: it went to the console
    assert "kernel says: about to fail" in capfd.readouterr().err


def test_a_worker_grown_past_the_memory_limit_gets_a_new_kernel(notebooks, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert run("probe", out, notebooks, "a").ok
    pid = report._worker_kernel[0].km.provisioner.pid
    monkeypatch.setattr(report, "WORKER_MEMORY_LIMIT", 1)
    grown = run("probe", out, notebooks, "b")
    assert grown.ok and Path(grown.html).exists()  # the report itself is done and kept
    assert report._worker_kernel[0].km.provisioner.pid != pid
    monkeypatch.setattr(report, "WORKER_MEMORY_LIMIT", 2**62)
    after = run("probe", out, notebooks, "c")
    assert after.ok and stream_text(after.notebook) == stream_text(grown.notebook)


def test_a_warm_kernel_keeps_no_more_cells_or_signatures_as_reports_go_by(notebooks, tmp_path):
    """Each report's injected parameters cell is new text: IPython would keep its source (and
    ipykernel the signature of every message) for the kernel's whole life."""
    def state(i: int) -> str:
        result = run_job(Job("state", "2024-06", "East", None, {"data": f"sample-{i}"}, f"s{i}/state"),
                         tmp_path / "out", {}, notebooks, cold=False)
        assert result.ok, result.error
        return stream_text(result.notebook)

    seen = [state(i) for i in range(6)]
    # this report's cells only (its parameters, injected parameters and code cell), however many ran before
    assert seen[1] == seen[5] and "cells kept: 3\n" in seen[5], seen
    # with history off, IPython's queue for its database holds this report's cells only
    assert "history queued: 3 enabled: False\n" in seen[5], seen[5]
    assert f"digest bound: {report.DIGEST_HISTORY}\n" in seen[5]
    assert report._worker_kernel[0].kc.session.digest_history_size == report.DIGEST_HISTORY  # the worker's end


def test_a_warm_kernel_forgets_the_dead_copies_pandas_lists_of_the_kept_tables(notebooks, tmp_path):
    """Each report's copies and views of the kept dataset are gone when it ends, but pandas keeps
    a weak reference to each in the kept tables until a list reaches hundreds: without
    forgetting them between reports, a warm kernel's memory rises report after report."""
    def listed(i: int) -> int:
        result = run_job(Job("copies", "2024-06", "East", None, {}, f"c{i}/copies"), tmp_path / "out", {"data": "sample"},
                         notebooks, cold=False)
        assert result.ok, result.error
        return int(re.search(r"copies listed: (\d+)", stream_text(result.notebook)).group(1))

    seen = [listed(i) for i in range(5)]
    assert seen[1] == seen[4], seen  # this report's copies only, however many reports ran before
    assert seen[4] > 40  # the notebook's own copies are listed while it runs
