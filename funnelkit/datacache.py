"""Reuse a loaded dataset within one process: a warm report kernel loads the run's data once.

Loading and validating a dataset costs more than most single reports. :func:`reuse` keeps the last
few datasets a process loaded, keyed by what they were loaded from — the source path with the
size and modification time of each of its files, the as-of date, the preset and the funnel
configuration — so a changed file or setting loads afresh. Every caller gets its own copy
(tables as copy-on-write shallow copies, lists and dicts deep-copied): a report that changes the
tables it was given cannot change what the next report reads.
"""
from __future__ import annotations

import copy
import dataclasses
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from funnelkit.data import Dataset

KEEP = 2  # datasets kept per process (a run reads one; a notebook may compare two)
_loaded: OrderedDict[tuple, Dataset] = OrderedDict()


def source_key(source: str | Path) -> tuple:
    """What identifies a source on disk: its resolved path and each file's size and mtime (ns)."""
    if str(source) == "sample":
        return ("sample",)
    path = Path(source).resolve()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return (str(path),) + tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.exists())


def handout(data: Dataset) -> Dataset:
    """A copy of ``data`` that shares no mutable state with it. With pandas copy-on-write a
    shallow table copy costs nothing until it is written to, and then only its writer copies."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(data):
        value = getattr(data, f.name)
        if isinstance(value, pd.DataFrame):
            changes[f.name] = value.copy(deep=False)
        elif isinstance(value, (dict, list, set)):
            changes[f.name] = copy.deepcopy(value)
    return dataclasses.replace(data, **changes)


def reuse(key: tuple, load: Callable[[], Dataset]) -> Dataset:
    """``load()``'s dataset for ``key``, loaded once per process and handed out as a copy."""
    if key in _loaded:
        _loaded.move_to_end(key)
    else:
        _loaded[key] = load()
        while len(_loaded) > KEEP:
            _loaded.popitem(last=False)
    return handout(_loaded[key])
