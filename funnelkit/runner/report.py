"""Run the report matrix: papermill executes each notebook, nbconvert writes self-contained HTML.

Layout of the output folder::

    reports/index.html
    reports/<period>/<team>/<notebook>.html   (+ the executed <notebook>.ipynb beside it)
    reports/<period>/<team>/<rep>/<notebook>.html

Team and rep folders are slugs, unique within a run and at most 80 bytes (a short hash of the
name is added where names collide or were cut). The data is loaded and validated once per run and
cached as Parquet under ``reports/.cache/<run id>/`` (written to a temporary folder and renamed,
removed at the end); a lock file keeps a second run into the same folder waiting until the first
is done. Reports run in worker processes (not threads: papermill changes the working directory);
each worker keeps one kernel ("warm") that runs report after report through a papermill engine,
reset before each report, and reads the cached data once (``--cold``: a kernel per report).
A warm kernel also reuses the analyses one report shares with the next (a team's roll-up in
each of its reps' reports; :mod:`funnelkit.memo`), so the periods of one report run in one
worker, one after the other (:func:`batches`).
Kernels talk over IPC sockets and log to a file, shown only with ``--verbose`` or for a report
that failed. A failing report does not stop the others; it is listed with its error and the path
of its failed notebook, and a warm kernel is restarted after it. Each HTML file is written to a
temporary name and renamed, so a report is there whole or not at all. Workers exit when the run's
process dies.
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from funnelkit import datacache, memo
from funnelkit.config import NOTEBOOKS_DIR, ConfigError, ReportMatrix, load_config, load_report_matrix, notebooks_dir
from funnelkit.inputs.data import Dataset, nothing_left
from funnelkit.events.engine import is_engine_source
from funnelkit.inputs.io import open_dataset, write_dataset
from funnelkit.periods import periods_without_data
from funnelkit.presentation.pages import notebook_to_html, render_index

KERNEL_NAME = "funnelkit"
EXECUTION_TIMEOUT = 600  # seconds per cell
START_TIMEOUT = 120  # seconds for the kernel to start
CACHE_DIR = ".cache"  # each run writes its data under .cache/<run id>/ and removes it when done
LOCK_FILE = ".funnelkit.lock"  # one run at a time per output folder
SLUG_MAX_BYTES = 80  # a folder name per team or rep, far below the usual 255-byte limit
SLUG_HASH_CHARS = 8
MAX_PARAMETER_BYTES = 64 * 1024  # report parameters of one matrix entry, as JSON
# A warm worker (worker process + kernel) that has grown past this after a report gets a new
# kernel: whatever a report left behind that the reset cannot free stops there. A worker holds
# about 0.7 GB with the 20,000-deal benchmark data, flat over a thousand reports.
WORKER_MEMORY_LIMIT = 2 * 2**30
# Signatures of messages seen, kept by both ends of a kernel's connection to refuse a replayed
# message. jupyter_client keeps up to 65,536 (about 11 MB), which a worker reaches after some 900
# reports (it sees ~73 messages a report, the kernel ~13): a warm kernel's session lasts a whole
# batch, so the memory would grow that long. A few thousand still catch a replay; the socket is
# a private IPC file and every message is signed.
DIGEST_HISTORY = 4096


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
        return " / ".join(x for x in (self.period, self.team, self.rep, self.notebook,
                                      self.parameters.get("pipeline")) if x)


@dataclass
class JobResult:
    job: Job
    ok: bool
    seconds: float
    error: str = ""
    html: str = ""
    notebook: str = ""
    log: str = ""  # the kernel's log of a failed report
    worker: int = 0  # pid of the worker process that ran it
    worker_memory: tuple[int, int] = (0, 0)  # (current, peak) resident bytes of the worker process after the report
    kernel_memory: tuple[int, int] = (0, 0)  # (current, peak) resident bytes of its kernel after the report
    # resident bytes of a warm kernel after its reset, before this report: what the reports before
    # left behind (after the report, the kernel still holds that report's variables); 0 when cold
    kernel_reset_memory: int = 0
    finished: float = field(default_factory=time.time)  # when the report was done (epoch seconds)
    cpu: float = 0.0  # CPU seconds of the kernel and the worker for this report (load-independent cost)

    @property
    def memory(self) -> tuple[int, int]:
        """(current, peak) resident bytes of the worker process and its kernel, added up."""
        return (self.worker_memory[0] + self.kernel_memory[0], self.worker_memory[1] + self.kernel_memory[1])


@dataclass
class RunSummary:
    results: list[JobResult] = field(default_factory=list)
    seconds: float = 0.0
    index: Path | None = None

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if not r.ok]

    @property
    def written(self) -> int:
        """HTML files this run actually wrote (distinct paths that exist), not reports that said ok."""
        return len({r.html for r in self.results if r.ok and r.html and Path(r.html).exists()})


def slug(name: str) -> str:
    """A file-system-safe folder name that keeps letters of any script (``Li Na`` → ``Li_Na``)."""
    return re.sub(r"[^\w-]+", "_", name.strip()).strip("_-") or "_"


def unique_slugs(names: list[str]) -> dict[str, str]:
    """Folder names for ``names``, one per name: :func:`slug` cut to :data:`SLUG_MAX_BYTES` of
    UTF-8, plus ``-`` and a short hash of the name where the name was cut, where it has no letters
    left (``..``, ``🚀🚀``), or where two names would share a folder (``x/y`` and ``x y``).
    The suffix depends on the name alone, so a name keeps its folder from run to run."""
    def short(name: str) -> str:
        return slug(name).encode("utf-8")[:SLUG_MAX_BYTES].decode("utf-8", "ignore").strip("_-") or "_"

    def hashed(name: str) -> str:
        return f"{short(name)}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:SLUG_HASH_CHARS]}"

    bases = {name: short(name) for name in set(names)}
    shared = {base for base in bases.values() if sum(b.casefold() == base.casefold() for b in bases.values()) > 1}
    return {name: hashed(name) if base in shared or base != slug(name) or base == "_" else base
            for name, base in bases.items()}


def check_parameter_size(matrix: ReportMatrix, limit: int = MAX_PARAMETER_BYTES) -> None:
    """Raise :class:`ConfigError` when an entry's ``parameters`` would be over ``limit`` bytes as
    JSON. The walk stops as soon as the limit is passed, so a YAML alias bomb (a billion laughs:
    a few lines whose aliases expand to gigabytes) is refused at once instead of being expanded
    by papermill into the notebook."""
    for i, entry in enumerate(matrix.entries):
        size, stack = 0, [entry.parameters]
        while stack and size <= limit:
            value = stack.pop()
            if isinstance(value, dict):
                size += 2 + 2 * len(value)
                stack.extend(value.keys())
                stack.extend(value.values())
            elif isinstance(value, (list, tuple)):
                size += 2 + len(value)
                stack.extend(value)
            elif isinstance(value, str):
                size += 2 + len(value.encode("utf-8"))
            else:
                size += len(json.dumps(value, default=str))
        if size > limit:
            raise ConfigError(f"reports matrix: entries.{i}.parameters: more than {limit // 1024} KB as JSON; "
                              "report parameters are for a few names and numbers (is a YAML alias repeated?)")


def expand_matrix(matrix: ReportMatrix, data: Dataset, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Job]:
    """Turn the matrix into concrete jobs: ``teams: all`` and ``reps: all`` expand from the data.

    A matrix that expands to no report, or names a team the data does not have, is a
    :class:`ConfigError` saying why (e.g. every deal was quarantined, with the top reason).
    """
    teams_in_data = sorted(data.deals["team"].dropna().unique())
    if not teams_in_data:
        raise ConfigError(f"no teams: {nothing_left(data)}")
    names = [team for entry in matrix.entries if entry.teams != "all" for team in entry.teams]
    team_slug = unique_slugs([str(t) for t in teams_in_data] + names)
    reps_in_data = data.deals["rep"].dropna().unique().tolist()
    rep_slug = unique_slugs([str(r) for r in reps_in_data]
                            + [r for entry in matrix.entries if isinstance(entry.reps, list) for r in entry.reps])
    pipe_slug = unique_slugs([e.pipeline for e in matrix.entries if e.pipeline])
    jobs: list[Job] = []
    written: dict[str, int] = {}  # output path → the entry that writes it
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
                    # an entry with its own pipeline or language gets its own file name, beside the others
                    name = ".".join([entry.notebook] + ([pipe_slug[entry.pipeline]] if entry.pipeline else [])
                                    + ([entry.language] if entry.language else []))
                    parts = [period, team_slug[team]] + ([rep_slug[rep]] if rep else []) + [name]
                    if "/".join(parts) in written:  # the later report would overwrite the earlier one
                        raise ConfigError(f"reports matrix: entries.{written['/'.join(parts)]} and entries.{i} both "
                                          f"write {'/'.join(parts)}.html; give them different pipelines, languages, "
                                          "teams or periods")
                    written["/".join(parts)] = i
                    params = {"period": period, "team": team, "rep": rep, "pipeline": entry.pipeline}
                    params |= {"language": entry.language} if entry.language else {}
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


class ReportKernel:
    """One Jupyter kernel owned by a worker process (or by one report, with ``--cold``).

    The kernel talks over IPC sockets in a private temporary folder (no TCP ports to race for, no
    "running over TCP without encryption" warning) and writes its own stdout/stderr to
    ``kernel.log`` there; :attr:`log_since` hands a failed report its part of the log, and
    ``verbose`` lets the log through to the console instead. A warm kernel imports funnelkit once
    and records the state a fresh kernel starts with; :meth:`reset` puts it back before each
    report (see :func:`kernel_reset`)."""

    def __init__(self, verbose: bool = False, cwd: Path = NOTEBOOKS_DIR) -> None:
        self.verbose, self.cwd = verbose, cwd
        self.owner = os.getpid()  # a forked child must not use its parent's kernel
        self.folder = Path(tempfile.mkdtemp(prefix="funnelkit-kernel-"))
        self.log_path = self.folder / "kernel.log"
        self.km: Any = None
        self.kc: Any = None
        self._log: Any = None

    # -- lifetime ----------------------------------------------------------------------------
    def start(self, warm: bool) -> None:
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        ipc = os.name == "posix"  # zmq has no IPC transport on Windows
        self.km = AsyncKernelManager(kernel_name=KERNEL_NAME, transport="ipc" if ipc else "tcp",
                                     connection_file=str(self.folder / "connection.json"),
                                     **({"ip": str(self.folder / "ipc")} if ipc else {}))
        if self._log is None and not self.verbose:
            self._log = open(self.log_path, "ab")
        streams = {} if self.verbose else {"stdout": self._log, "stderr": self._log}
        # No input history: a report reads none, and a warm kernel would keep every cell of every
        # report in it (nbclient's in-memory SQLite grows by a report's cells each time). The
        # kernel's end of the connection keeps no more message signatures than the worker's.
        self.km.session.digest_history_size = DIGEST_HISTORY  # the worker's end (its client shares the session)
        run_sync(self.km.start_kernel)(cwd=str(self.cwd), **streams, extra_arguments=[
            "--HistoryManager.enabled=False", f"--Session.digest_history_size={DIGEST_HISTORY}"])
        self._connect()
        if warm:
            self.run_code(WARM_UP_CODE)

    def _connect(self) -> None:
        from jupyter_core.utils import run_sync

        self.kc = self.km.client()
        self.kc.allow_stdin = False
        self.kc.start_channels()
        try:
            run_sync(self.kc.wait_for_ready)(timeout=START_TIMEOUT)
        except Exception:
            self.kill(keep_folder=True)
            raise

    def restart(self, warm: bool) -> None:
        """A new kernel process after a failure (a raised error, a timeout, a dead kernel)."""
        self.kill(keep_folder=True)
        self.start(warm)

    def shutdown(self) -> None:
        """Ask the kernel to exit, as a user closing a notebook would; kill it only when it does
        not. (jupyter_client's own shutdown interrupts the kernel first, which makes an idle
        kernel log "KeyboardInterrupt caught in kernel".)"""
        from jupyter_core.utils import run_sync

        if self.km is not None and self.kc is not None:
            try:
                self.kc.shutdown()
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and run_sync(self.km.is_alive)():
                    time.sleep(0.02)
            except Exception:  # noqa: BLE001 - the kill below settles any state
                pass
        self.kill()

    def kill(self, keep_folder: bool = False) -> None:
        from jupyter_core.utils import run_sync

        if self.kc is not None:
            self.kc.stop_channels()
            self.kc = None
        if self.km is not None:
            try:
                if run_sync(self.km.is_alive)():
                    run_sync(self.km.shutdown_kernel)(now=True)
                else:
                    run_sync(self.km.cleanup_resources)()
            except Exception:  # noqa: BLE001 - a kernel already gone
                pass
            self.km = None
        if not keep_folder:
            if self._log is not None:
                self._log.close()
                self._log = None
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- use ---------------------------------------------------------------------------------
    def run_code(self, code: str, timeout: float = START_TIMEOUT) -> None:
        """Run ``code`` silently (no history, no execution count); raise when it fails."""
        from jupyter_core.utils import run_sync

        reply = run_sync(self.kc.execute_interactive)(code, silent=True, store_history=False, timeout=timeout,
                                                      output_hook=lambda msg: None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"kernel set-up failed: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")

    def reset(self) -> None:
        self.run_code(RESET_CODE)

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self._log is not None and self.log_path.exists() else 0

    def log_since(self, offset: int, limit: int = 20_000) -> str:
        """What the kernel wrote to its log since ``offset`` (the last ``limit`` characters)."""
        if self._log is None:
            return ""
        self._log.flush()
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")[-limit:].strip()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the kernel process has used so far."""
        import psutil

        try:
            times = psutil.Process(self.km.provisioner.pid).cpu_times()
            return times.user + times.system
        except (psutil.Error, AttributeError):
            return 0.0

    def memory(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(current, peak) resident bytes of this worker process, and of the kernel (peaks from
        Linux's ``VmHWM``; elsewhere the current size; ``(0, 0)`` for a process not there)."""
        pid = getattr(self.km.provisioner, "pid", None) if self.km is not None else None
        return process_memory(os.getpid()), process_memory(pid)


def process_memory(pid: int | None) -> tuple[int, int]:
    """(current, peak) resident bytes of process ``pid`` (peak from Linux's ``VmHWM``, elsewhere
    the current size); ``(0, 0)`` when there is no such process."""
    import psutil

    try:
        rss = psutil.Process(pid).memory_info().rss if pid else 0
        status = Path(f"/proc/{pid}/status")
        high = next((int(line.split()[1]) * 1024 for line in status.read_text().splitlines()
                     if line.startswith("VmHWM:")), rss) if rss and status.exists() else rss
    except (psutil.Error, OSError, ValueError, TypeError):
        return 0, 0
    return rss, high


# Run once in a warm kernel: import what the reports import and record the state of a fresh kernel.
WARM_UP_CODE = "import funnelkit.runner.report\nfunnelkit.runner.report.kernel_warm_up()"
# Run before each report in a warm kernel: an empty namespace and the recorded state. IPython's
# reset with a new session also starts the execution count at 1 again, as in a fresh kernel.
RESET_CODE = "get_ipython().reset(new_session=True)\n__import__('funnelkit.runner.report').runner.report.kernel_reset()"
# What the notebooks import (seaborn only for heatmaps), imported once per warm kernel.
WARM_IMPORTS = ("IPython.display", "funnelkit.analyses.fit", "funnelkit.analyses.forecast", "funnelkit.analyses.opportunities",
                "funnelkit.analyses.playbook", "funnelkit.analyses.recommend", "funnelkit.analyses.rep_periods",
                "funnelkit.analyses.reps", "funnelkit.analyses.review", "funnelkit.analyses.sales", "funnelkit.analyses.scorecard",
                "funnelkit.analyses.screening", "funnelkit.analyses.sensitivity", "funnelkit.analyses.timing",
                "funnelkit.inputs.flat", "funnelkit.presentation.plots", "funnelkit.presentation.present",
                "funnelkit.presentation.present_opportunities", "funnelkit.presentation.story",
                "matplotlib.backends.backend_agg", "seaborn")
_fresh_state: dict[str, Any] = {}  # inside a warm kernel: what kernel_warm_up recorded


def kernel_warm_up() -> None:
    """(Runs inside a warm kernel.) Import what the reports import, record the options and
    settings of a fresh kernel, and move everything imported so far out of the garbage
    collector's way (``gc.freeze``): the namespace reset between reports collects garbage, and
    without the freeze each collection walks every object of pandas, scipy and matplotlib."""
    import gc
    import importlib
    import warnings

    import matplotlib
    import numpy as np

    for name in WARM_IMPORTS:
        importlib.import_module(name)
    _fresh_state.update(
        rc={k: v for k, v in matplotlib.rcParams.items() if k != "backend"},
        warnings=list(warnings.filters), numpy=np.geterr(), cwd=os.getcwd(), path=list(sys.path),
        environ=dict(os.environ),
    )
    memo.enable()
    gc.collect()
    gc.freeze()


def kernel_reset() -> None:
    """(Runs inside a warm kernel, after IPython's namespace reset.) Put back what a report may
    have changed beyond its variables: pandas options, matplotlib settings and open pyplot
    figures, warning filters, numpy error handling, the working directory, ``sys.path`` and the
    environment. Data a report changed cannot leak: each report gets its own copy
    (:mod:`funnelkit.datacache`)."""
    import gc
    import warnings

    import matplotlib
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated options warn when they are reset
        pd.reset_option("all")
        matplotlib.rcParams.update(_fresh_state["rc"])
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    warnings.resetwarnings()  # also forgets which warnings were already shown once
    warnings.filters[:] = _fresh_state["warnings"]
    getattr(warnings, "_filters_mutated", lambda: None)()
    np.seterr(**_fresh_state["numpy"])
    os.chdir(_fresh_state["cwd"])
    sys.path[:] = _fresh_state["path"]
    if dict(os.environ) != _fresh_state["environ"]:
        os.environ.clear()
        os.environ.update(_fresh_state["environ"])
    _forget_cells()
    memo.enable()  # a report may have turned reuse off; the results kept stay (they are handed out as copies)
    gc.collect()  # figures and frames of the last report (the imported modules are frozen: cheap)
    # pandas lists every copy of a kept table, dead ones too, up to hundreds per table
    datacache.forget_dead_copies()
    memo.forget_dead_copies()
    # Arrow's allocator (pandas' string columns) keeps what a report freed for reuse; give it back
    # (under 1 ms), or a warm kernel's memory grows with the batch.
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    trim_heap()


def trim_heap() -> None:
    """Give the pages the C heap holds free back to the operating system (glibc's
    ``malloc_trim``; elsewhere nothing). glibc keeps what a process freed for its next
    allocations, and the holes a report leaves between blocks still in use are seldom the right
    size for the next report's, so a warm worker's or kernel's resident memory would creep up
    over a batch although the objects it holds do not."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    import ctypes

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; musl has none
    except (OSError, AttributeError):
        return None


def _forget_cells() -> None:
    """(Runs inside a warm kernel.) Forget the source of the cells run so far: IPython keeps
    each cell's source queued for its history database even with history off (below), and
    each cell's code in :mod:`linecache` for tracebacks, under a name made from its text, and
    every report's injected parameters cell is new text, so a warm kernel would keep one more
    per report. A traceback is shown while its report runs; the next report needs none of them."""
    import linecache

    from IPython import get_ipython

    shell = get_ipython()
    names = getattr(getattr(shell, "compile", None), "_filename_map", None)
    if names is None:
        return
    for name in names:
        linecache.cache.pop(name, None)
    names.clear()
    # With history off (as here), IPython still queues each cell's source (twice) for its
    # database and never writes the queue out nor empties it, even at a reset: about 13 KB a
    # report with the project's notebooks, kept for the kernel's life.
    history = getattr(shell, "history_manager", None)
    if history is not None and not history.enabled:
        with history.db_input_cache_lock:
            history.db_input_cache.clear()
        with history.db_output_cache_lock:
            history.db_output_cache.clear()


@functools.lru_cache(maxsize=1)
def _register_engine() -> str:
    """papermill's nbclient engine, executing in a :class:`ReportKernel` it is handed
    (``report_kernel=``) instead of starting its own."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines

    class ReportKernelEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kernel: ReportKernel = kwargs.pop("report_kernel")
            kwargs.pop("input_path", None)
            client = PapermillNotebookClient(
                nb_man, km=kernel.km, timeout=execution_timeout, startup_timeout=start_timeout,
                kernel_name=kernel_name, log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file,
                **kwargs,
            )
            client.kc = kernel.kc  # the kernel stays up after the notebook: the engine owns it, not nbclient
            # papermill writes the whole notebook (charts included) as each cell starts and ends;
            # a report is read when done, so write it once, when it ends (however it ends).
            output_path, nb_man.output_path = nb_man.output_path, None
            try:
                return client.execute()
            finally:
                nb_man.output_path = output_path  # papermill's notebook_complete() then saves it

    papermill_engines.register(ENGINE_NAME, ReportKernelEngine)
    return ENGINE_NAME


ENGINE_NAME = "funnelkit-kernel"
_worker_kernel: list[ReportKernel] = []  # in a worker process: its warm kernel, once started


def _warm_kernel(verbose: bool, notebooks_dir: Path = NOTEBOOKS_DIR) -> ReportKernel:
    """This worker's kernel, started on first use and shut down when the worker exits."""
    from multiprocessing import util

    if _worker_kernel and _worker_kernel[0].owner != os.getpid():
        _worker_kernel.clear()
    if not _worker_kernel:
        kernel = ReportKernel(verbose, notebooks_dir)
        try:
            kernel.start(warm=True)
        except BaseException:
            kernel.kill()
            raise
        _worker_kernel.append(kernel)
        util.Finalize(kernel, kernel.shutdown, exitpriority=100)
    return _worker_kernel[0]


def run_job(job: Job, output: Path, base_parameters: dict[str, Any], notebooks_dir: Path = NOTEBOOKS_DIR,
            cold: bool = True, verbose: bool = False) -> JobResult:
    """Execute one notebook with papermill and export its HTML. Never raises: errors are returned.

    ``cold``: in a kernel of its own, started for this report. Otherwise in this worker's warm
    kernel, reset first; after a failure that kernel is restarted, so the next report starts clean.
    A failed report carries the kernel's log of it.
    """
    import nbformat
    import papermill
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    start = time.perf_counter()
    out_nb = output / f"{job.relpath}.ipynb"
    out_html = output / f"{job.relpath}.html"
    kernel: ReportKernel | None = None
    offset, cpu_start, kernel_cpu, reset_memory = 0, time.process_time(), 0.0, 0
    try:
        out_nb.parent.mkdir(parents=True, exist_ok=True)  # inside: a name that cannot make a path fails alone
        if cold:
            kernel = ReportKernel(verbose, notebooks_dir)
            kernel.start(warm=False)
        else:
            running = bool(_worker_kernel) and _worker_kernel[0].owner == os.getpid()
            kernel = _warm_kernel(verbose, notebooks_dir)
            # the first report of a kernel also pays for its start
            offset, kernel_cpu = kernel.log_size(), kernel.cpu_seconds() if running else 0.0
            try:
                kernel.reset()
            except (RuntimeError, TimeoutError):  # the kernel died since the last report
                kernel.restart(warm=True)
                kernel.reset()
            reset_memory = kernel.memory()[1][0]
        nb = papermill.execute_notebook(
            str(notebooks_dir / f"{job.notebook}.ipynb"), str(out_nb),
            parameters=base_parameters | job.parameters, kernel_name=KERNEL_NAME, progress_bar=False,
            cwd=str(notebooks_dir), execution_timeout=EXECUTION_TIMEOUT, start_timeout=START_TIMEOUT,
            engine_name=_register_engine(), report_kernel=kernel,
        )
        kernel_memory, kernel_cpu = kernel.memory()[1], kernel.cpu_seconds() - kernel_cpu
        if cold:
            kernel.shutdown()
        _write_atomic(out_html, notebook_to_html(nbformat.from_dict(nb), page_title(job, nb_language(nb))))
        if not cold:
            trim_heap()  # what the report and its export freed (see trim_heap)
        worker_memory = process_memory(os.getpid())  # after the export, which the worker does
        if not cold and worker_memory[0] + kernel_memory[0] > WORKER_MEMORY_LIMIT:
            _renew(kernel)
        return JobResult(job, True, time.perf_counter() - start, html=str(out_html), notebook=str(out_nb),
                         worker=os.getpid(), worker_memory=worker_memory, kernel_memory=kernel_memory,
                         kernel_reset_memory=reset_memory,
                         cpu=kernel_cpu + time.process_time() - cpu_start)
    except papermill.PapermillExecutionError as exc:
        error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except (CellTimeoutError, DeadKernelError, NoSuchKernel, RuntimeError, OSError, TimeoutError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    log = ""
    if kernel is not None:
        log = kernel.log_since(offset)
        try:
            kernel.kill() if cold else kernel.restart(warm=True)
        except Exception:  # noqa: BLE001 - the next report starts a new kernel
            kernel.kill()
            _worker_kernel.clear()
    return JobResult(job, False, time.perf_counter() - start, error=error, notebook=str(out_nb), log=log,
                     worker=os.getpid())


def nb_language(nb: Any) -> str:
    """The language an executed notebook's report is in: its ``language`` parameter, else
    ``params/funnel.yaml``'s."""
    from funnelkit.presentation.pages import report_language

    return report_language(nb) or load_config().language


def page_title(job: Job, language: str) -> str:
    """The page ``<title>``: period, team, rep and the report's name in its own language
    (``2024-Q2 / North / 转化分析``), not the notebook's file key."""
    from funnelkit.presentation.present import load_text

    text = load_text(language)
    name = text(job.notebook) if job.notebook in text.entries else job.notebook
    return " / ".join(x for x in (job.period, job.team, job.rep, name) if x)


def _renew(kernel: ReportKernel) -> None:
    """A new kernel for this worker's next report (after one that left the worker too big)."""
    try:
        kernel.restart(warm=True)
    except Exception:  # noqa: BLE001 - the next report starts a kernel of its own
        kernel.kill()
        _worker_kernel.clear()


def _run_batch(args: tuple) -> list[JobResult]:
    """Run a batch's reports one after another in this worker (see :func:`batches`)."""
    batch, rest = args[0], args[1:]
    return [run_job(job, *rest) for job in batch]


def batches(jobs: list[Job]) -> list[list[Job]]:
    """The jobs grouped by notebook, team and rep (the periods of one report), in the order of
    their first job. A group runs in one worker, one report after another: reports of one rep
    for periods with the same trailing window compute the same analyses, which a warm kernel
    then computes once (:mod:`funnelkit.memo`)."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.notebook, job.team, job.rep), []).append(job)
    return list(groups.values())


def _worker_init() -> None:
    """Worker initializer: one BLAS/OpenMP thread per kernel, and exit when the parent dies."""
    _one_math_thread_per_kernel()
    _exit_with_parent(os.getppid())


def _one_math_thread_per_kernel() -> None:
    """Kernels inherit one BLAS/OpenMP thread each. With one worker per core,
    more threads only contend (OpenBLAS threads spin while they wait), which made many small
    matrix products — the bootstrap refits — over 20 times slower."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """A daemon thread that ends this worker when its parent is gone (a SIGKILLed ``funnelkit
    report`` would otherwise leave it running). The worker's kernels follow it: jupyter_client
    tells each kernel its parent's pid and ipykernel exits when that parent goes."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(3)

    threading.Thread(target=watch, name="funnelkit-parent-watch", daemon=True).start()


def _write_cache(data: Dataset, out: Path) -> Path:
    """This run's own copy of the data, under ``.cache/<run id>/``: written into a temporary
    folder and renamed, so no reader ever sees a half-written file and no other run's data."""
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
    root = out / CACHE_DIR
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{run_id}.", suffix=".tmp"))
    try:
        write_dataset(data, tmp, fmt="parquet")
        final = root / run_id
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name too long for the file system
        return False


def run_reports(
    matrix_path: str | Path | ReportMatrix | None = None,
    jobs: int | None = None,
    only: str | None = None,
    output: str | Path | None = None,
    progress: bool = True,
    only_paths: list[str] | None = None,
    cold: bool = False,
    verbose: bool = False,
) -> RunSummary:
    """Run every (or every ``only``-matching, or every ``only_paths``) report of the matrix (a path,
    or a :class:`ReportMatrix` with the command line's choices) in ``jobs`` worker processes, with the
    project's notebooks (:func:`funnelkit.config.notebooks_dir`). Each worker runs its reports one
    after another in one warm kernel (``cold``: a new kernel per report). ``verbose`` shows the
    kernels' logs as they run.

    An engine source (``duckdb:///…``, ``spark:…``) is handed to each notebook as it is, so its
    events stay in the engine; any other is loaded once and cached as Parquet.

    One run at a time writes into an output folder: a second run waits for the first's lock
    (and says so on stderr). Each run reads its own cached copy of the data."""
    from filelock import FileLock, Timeout

    began = time.perf_counter()
    matrix = matrix_path if isinstance(matrix_path, ReportMatrix) else load_report_matrix(matrix_path)
    check_parameter_size(matrix)
    notebooks = notebooks_dir()
    config = load_config()
    out = Path(output or matrix.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"funnelkit: another report run is writing to {out}; waiting for it to finish (lock {lock.lock_file})",
              file=sys.stderr, flush=True)
        lock.acquire()
    try:
        return _run_locked(matrix, config, out, jobs, only, only_paths, progress, began, cold, verbose, notebooks)
    finally:
        lock.release()


def _run_locked(matrix: ReportMatrix, config: Any, out: Path, jobs: int | None, only: str | None,
                only_paths: list[str] | None, progress: bool, began: float, cold: bool, verbose: bool,
                notebooks: Path) -> RunSummary:
    from tqdm import tqdm

    data = open_dataset(matrix.data, as_of=matrix.as_of, config=config, preset=matrix.preset)
    as_of = matrix.as_of or (data.as_of - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    refuse_empty_periods(matrix, data, as_of)
    all_jobs = expand_matrix(matrix, data, notebooks)
    check_parameters(all_jobs, notebooks)
    selected = [j for j in all_jobs if not only or fnmatch.fnmatch(j.relpath, only) or fnmatch.fnmatch(j.title, only)]
    if only_paths is not None:
        selected = [j for j in selected if j.relpath in only_paths]
    engine_source = is_engine_source(matrix.data)
    cache = matrix.data if engine_source else _write_cache(data, out)
    base = {"data": str(cache), "as_of": as_of, "language": matrix.language}
    workers = max(1, min(jobs or os.cpu_count() or 1, len(selected) or 1))
    summary = RunSummary()
    bar = tqdm(total=len(selected), desc="reports", unit="report", disable=not progress)
    try:
        with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init) as pool:
            futures = [pool.submit(_run_batch, (batch, out, base, notebooks, cold, verbose))
                       for batch in batches(selected)]
            for future in as_completed(futures):
                done = future.result()
                summary.results.extend(done)
                bar.update(len(done))
    finally:
        bar.close()
        if not engine_source:
            shutil.rmtree(cache, ignore_errors=True)
    summary.results.sort(key=lambda r: r.job.relpath)
    # Reports left out by --only keep their place in the index when an earlier run wrote them.
    earlier = [JobResult(j, True, 0.0, html=str(out / f"{j.relpath}.html")) for j in all_jobs
               if j not in selected and _exists(out / f"{j.relpath}.html")]
    language = matrix.language or config.language
    listed = summary.results + earlier
    summary.index = write_index(listed, out, as_of, language, figures=key_figures(listed, data, config, as_of, language))
    # a reader of another language the run writes reports in gets the index in theirs too
    for other in sorted({r.job.parameters.get("language") for r in listed} - {None, language}):
        write_index(listed, out, as_of, other, figures=key_figures(listed, data, config, as_of, other),
                    name=f"index.{other}.html", run_language=language)
    summary.seconds = time.perf_counter() - began
    return summary


def refuse_empty_periods(matrix: ReportMatrix, data: Dataset, as_of: str) -> None:
    """Raise :class:`ConfigError` before any notebook runs when a period of the matrix holds no data:
    it starts after the as-of date or ends before the data's first date (reports of nothing)."""
    first = data.deals["created_at"].min()
    if pd.isna(first):
        return  # no dated deal: the reports say so themselves
    periods = sorted({p for entry in matrix.entries for p in entry.periods})
    empty = periods_without_data(periods, first, data.as_of)
    if empty:
        raise ConfigError(f"period {', '.join(empty)}: no data — the data runs from {first:%Y-%m-%d} "
                          f"to the as-of date {as_of}; choose a period within that range (e.g. --period "
                          f"{pd.Timestamp(as_of):%Y-%m})")


def key_figures(results: list[JobResult], data: Dataset, config: Any, as_of: str, language: str) -> dict[str, Any]:
    """The executive index's key figures (:func:`funnelkit.analyses.executive.team_figures`) for the run's
    teams in its headline period, worded by :func:`funnelkit.presentation.present_executive.index_figures`;
    computed once, here in the main process. A failure shows as a sentence, not a lost index."""
    from funnelkit.analyses.executive import comparable_pipeline, headline_period, team_figures
    from funnelkit.analyses.forecast import load_forecast_settings
    from funnelkit.presentation.present import load_text
    from funnelkit.presentation.present_executive import index_figures

    text = load_text(language)
    teams = sorted({r.job.team for r in results if r.job.team})
    if not results:
        return {}
    period = headline_period(sorted({r.job.period for r in results}))
    try:
        settings = load_forecast_settings()
        pipeline = comparable_pipeline(config)
        table = team_figures(data, config, period, teams, as_of=as_of, language=language, pipeline=pipeline,
                             settings=settings, every_pipeline=True)
        labels = config.stage_labels(pipeline, language)
        figures = index_figures(table, text, labels, config.currency, period, as_of, settings.confidence)
        if pipeline is not None:  # say which pipeline the figures are for
            figures["note"] += " " + text("index_pipeline_note", pipeline=pipeline)
        return figures
    except Exception as exc:  # noqa: BLE001 - the index must still list the reports
        return {"title": text("index_figures_title", period=period), "note": "",
                "unavailable": text("index_unavailable", error=f"{type(exc).__name__}: {exc}")}


def write_index(results: list[JobResult], output: Path, as_of: str, language: str | None = None,
                figures: dict[str, Any] | None = None, name: str = "index.html",
                run_language: str | None = None) -> Path:
    """``index.html`` (or ``name``) in ``language`` (default: params/funnel.yaml's): the key
    ``figures`` per team and compared (see :func:`key_figures`; none when not given), then a
    period × team grid of links, rep reports under their team, with status (template
    ``funnelkit/presentation/templates/index.html.j2``, every name escaped). A report in another language is
    linked by its name in that language, marked with its ``lang``; a report without a language of
    its own is in ``run_language`` (default ``language``)."""
    from funnelkit.presentation.pages import HTML_LANG
    from funnelkit.presentation.present import load_text
    from funnelkit.presentation.present_executive import index_words

    config = load_config()
    language, pipelines = language or config.language, config.pipelines
    texts = {code: load_text(code) for code in ("en", "zh")}
    text = texts.get(language, texts["en"])
    periods = sorted({r.job.period for r in results})
    teams = sorted({r.job.team or "" for r in results})

    def link(r: JobResult) -> dict[str, Any]:
        own = r.job.parameters.get("language") or run_language or language
        words = texts.get(own, text)
        name = words(r.job.notebook) if r.job.notebook in words.entries else r.job.notebook.replace("_", " ")
        if r.job.parameters.get("pipeline"):  # one report per pipeline: say whose
            pipeline = r.job.parameters["pipeline"]
            name = f"{name} · {pipelines[pipeline].label(own) if pipeline in pipelines else pipeline}"
        entry = {"name": name, "ok": r.ok, "href": f"{r.job.relpath}.html", "error": r.error,
                 "lang": HTML_LANG.get(own, own) if own != language else ""}
        if r.ok:
            entry["written"] = pd.Timestamp(Path(r.html).stat().st_mtime, unit="s").strftime("%Y-%m-%d %H:%M")
            entry["generated"] = text("index_generated", written=entry["written"])
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
    words = index_words(text, as_of, pd.Timestamp.now().strftime("%Y-%m-%d %H:%M"), len(results),
                        sum(not r.ok for r in results))
    page = render_index({"as_of": as_of, "w": words, "figures": figures or None, "teams": teams, "rows": rows},
                        language=text.language, title=words["title"])
    path = output / name
    _write_atomic(path, page)
    return path
