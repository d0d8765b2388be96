"""What a warm report kernel keeps from report to report: one kernel, notebook types in turn.

    python benchmarks/kernel_memory.py [--reps 6] [--deals 3000] [--periods 2024-Q2,2024-06] [--n 400]
                                       [--trace FRAMES --snap 30,50] [--out FOLDER]

Runs ``--n`` reports of the large matrix (:mod:`bench_reports`, with ``--reps`` reps and
``--deals`` deals) in this process's warm kernel, taking the ten notebook types (each notebook, for
a team and for a rep) in turn, so that every type repeats every ten reports: memory that still
rises after the first round is not a one-off cost per type. After each report the kernel is reset
as before the next report and measured from inside: resident memory, the C heap in use (glibc's
``mallinfo2``), Python's small-object allocator, anonymous mappings, Arrow's pool, the number of
objects the garbage collector tracks by type, and the entries of module-level caches
(``functools`` caches, dicts and lists). With ``--trace``, :mod:`tracemalloc` runs in the kernel
from the first report on and ``--snap`` takes snapshots after those reports (compare two with
``tracemalloc.Snapshot.load(...).compare_to``). One JSON line per report goes to
``FOLDER/log.jsonl``; a line every 10 reports to the console.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import funnelkit as fk
from funnelkit.runner import report
from funnelkit.runner.report import Job, _write_cache, expand_matrix, run_job

sys.path.insert(0, str(Path(__file__).parent))
from bench_reports import large_dataset, large_matrix  # noqa: E402

# Runs in the kernel after its reset; writes its measures to @OUT@/probe.json.
PROBE = r'''
import gc as _gc, sys as _sys, json as _json, collections as _c, ctypes as _ct, os as _os
def _probe():
    _gc.collect()
    objs = _gc.get_objects()  # not the objects frozen at warm-up (gc.freeze): what came after
    rec = {"objects": len(objs), "modules": len(_sys.modules), "blocks": _sys.getallocatedblocks(),
           "counts": dict(_c.Counter(type(o).__module__ + "." + type(o).__qualname__ for o in objs).most_common(400))}
    status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
    rec.update({k: int(status[k].split()[0]) / 1024 for k in ("VmRSS", "RssAnon", "RssFile")})
    class M(_ct.Structure):
        _fields_ = [(f, _ct.c_size_t) for f in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
    try:
        f = _ct.CDLL(None).mallinfo2; f.restype = M; mi = f()
        rec["malloc_in_use_mb"] = mi.uordblks / 2**20
    except (OSError, AttributeError):
        pass
    brk = anon = 0; name = None
    for line in open("/proc/self/smaps"):
        p = line.split()
        if "-" in p[0] and not p[0].endswith(":"):
            name = p[5] if len(p) > 5 else ""
        elif p[0] == "Rss:":
            brk += int(p[1]) if name == "[heap]" else 0
            anon += int(p[1]) if name == "" else 0
    rec["brk_heap_mb"], rec["anon_mmap_mb"] = brk / 1024, anon / 1024
    if "pyarrow" in _sys.modules:
        rec["arrow_mb"] = _sys.modules["pyarrow"].default_memory_pool().bytes_allocated() / 2**20
    r, w = _os.pipe(); saved = _os.dup(2); _os.dup2(w, 2)
    try:
        _sys._debugmallocstats()
    finally:
        _os.dup2(saved, 2); _os.close(w); _os.close(saved)
    for l in _os.read(r, 1 << 20).decode().splitlines():
        if l.startswith("# bytes in allocated blocks"):
            rec["pymalloc_in_use_mb"] = int(l.split("=")[-1].replace(",", "")) / 2**20
    _os.close(r)
    caches = {}
    for mname, mod in list(_sys.modules.items()):
        for k, v in list(getattr(mod, "__dict__", {}).items()):
            owned = [(k, v)] + ([(k + "." + a, b) for a, b in vars(v).items()]
                                if isinstance(v, type) and getattr(v, "__module__", None) == mname else [])
            for owner, obj in owned:
                if type(obj).__name__ == "_lru_cache_wrapper":
                    caches[mname + "." + owner] = obj.cache_info().currsize
                elif isinstance(obj, (dict, list, set)) and not owner.startswith("__") and len(obj) > 50:
                    caches[mname + "." + owner] = len(obj)
    rec["caches"] = caches
    import tracemalloc as _t
    if _t.is_tracing():
        rec["traced_mb"] = _t.get_traced_memory()[0] / 2**20
        if @SNAP@:
            _t.take_snapshot().dump("@OUT@/snap@N@.pickle")
    open("@OUT@/probe.json", "w").write(_json.dumps(rec))
_probe(); del _probe
'''


def in_turn(jobs: list[Job], n: int) -> list[Job]:
    """``n`` jobs taking the notebook types in turn, each type's jobs in order (and again)."""
    kinds: dict[tuple, list[Job]] = {}
    for job in jobs:
        kinds.setdefault((job.notebook, job.rep is None), []).append(job)
    lists = list(kinds.values())
    return [lists[i % len(lists)][(i // len(lists)) % len(lists[i % len(lists)])] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--deals", type=int, default=3000)
    parser.add_argument("--periods", default="2024-Q2,2024-06")
    parser.add_argument("--n", type=int, default=400, help="reports to run")
    parser.add_argument("--trace", type=int, default=0, help="tracemalloc frames per traceback (0: off; slow)")
    parser.add_argument("--snap", default="", help="tracemalloc snapshots after these reports, comma-separated")
    parser.add_argument("--out", default="kernel-memory", help="folder for log.jsonl and snapshots")
    args = parser.parse_args()

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="funnelkit-kernel-memory-"))
    folder = large_dataset(work / "data", args.reps, args.deals)
    jobs = expand_matrix(fk.load_report_matrix(large_matrix(work / "m.yaml", folder, work / "out", args.periods)),
                         fk.load_data(folder))
    base = {"data": str(_write_cache(fk.load_data(folder), work / "out")), "as_of": "2024-06-30", "language": "en"}
    snaps = {int(x) for x in args.snap.split(",") if x}
    print(f"{len(jobs)} reports in the matrix, running {args.n} in one warm kernel", flush=True)
    with open(out / "log.jsonl", "w", encoding="utf-8") as log:
        for n, job in enumerate(in_turn(jobs, args.n), 1):
            job = Job(job.notebook, job.period, job.team, job.rep, job.parameters, f"r{n % 50}/{job.relpath}")
            result = run_job(job, work / "out", base, cold=False)
            if not result.ok:
                sys.exit(f"report {n} ({job.title}) failed: {result.error}")
            kernel = report._worker_kernel[0]
            if n == 1 and args.trace:
                kernel.run_code(f"import tracemalloc; tracemalloc.start({args.trace})")
            kernel.reset()
            kernel.run_code(PROBE.replace("@OUT@", str(out)).replace("@N@", str(n)).replace("@SNAP@", str(n in snaps)),
                            timeout=600)
            line = {"n": n, "kind": f"{job.notebook} ({'team' if job.rep is None else 'rep'})", "cpu": result.cpu,
                    "reset_rss_mb": kernel.memory()[1][0] / 2**20} | json.loads((out / "probe.json").read_text())
            log.write(json.dumps(line) + "\n")
            log.flush()
            if n % 10 == 0:
                print(f"{n}: kernel after reset {line['reset_rss_mb']:.1f} MB, C heap in use "
                      f"{line.get('malloc_in_use_mb', 0):.1f} MB, small objects {line.get('pymalloc_in_use_mb', 0):.1f} MB, "
                      f"{line['objects']} objects", flush=True)


if __name__ == "__main__":
    main()
