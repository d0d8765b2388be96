"""Reuse a loaded dataset within one process: a warm report kernel loads the run's data once.

Loading and validating a dataset costs more than most single reports. :func:`reuse` keeps the last
few datasets a process loaded, keyed by what they were loaded from — the source path with the
size and modification time of each of its files, the as-of date, the preset and the funnel
configuration — so a changed file or setting loads afresh. Every caller gets its own copy
(tables as copy-on-write shallow copies, lists and dicts deep-copied): a report that changes the
tables it was given cannot change what the next report reads. :func:`derive` keeps a dataset
made from a loaded one (its loss reasons in the report language) the same way.

pandas' copy-on-write remembers every copy and view of a table in a list of weak references on the
table's buffers, and only drops the dead ones once a list reaches hundreds. A warm kernel hands out
and slices the same kept tables in every report, so these lists fill up with dead entries (over a
hundred a report, up to 500 per list, each also keeping a page of Python's small-object allocator
in use); :func:`forget_dead_copies`, run between reports, drops them.
"""
from __future__ import annotations

import copy
import dataclasses
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from funnelkit.inputs.data import Dataset

KEEP = 4  # datasets kept per process (a run reads one, plus its loss reasons in a language or two)
_loaded: OrderedDict[tuple, Dataset] = OrderedDict()
# id of a handed-out copy → (its key, a weak reference to it, the buffers it was handed out with)
_handed: dict[int, tuple[tuple, Any, tuple]] = {}


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
    copy_ = handout(_loaded[key])
    _handed[id(copy_)] = (key, weakref.ref(copy_), fingerprint(copy_))
    weakref.finalize(copy_, _handed.pop, id(copy_), None)
    return copy_


def forget_dead_copies() -> int:
    """Drop the dead copies pandas still lists for the kept datasets' tables
    (:func:`drop_dead_references`); returns how many were dropped."""
    return sum(drop_dead_references(data) for data in _loaded.values())


def drop_dead_references(value: Any) -> int:
    """Drop the weak references to copies that are gone from the copy-on-write reference lists
    (pandas' ``BlockValuesRefs``) of every table, series and index in ``value`` (a dataset, a
    table, or containers and dataclasses of those); returns how many were dropped. pandas
    ignores dead entries when it asks whether a buffer is shared, so nothing else changes; it
    would drop them itself only when a list grows past its ``clear_counter`` (500 or more)."""
    seen: set[int] = set()
    lists: list[list] = []

    def walk(v: Any) -> None:
        if id(v) in seen:
            return
        seen.add(id(v))
        if isinstance(v, (pd.DataFrame, pd.Series)):
            for block in getattr(getattr(v, "_mgr", None), "blocks", ()):
                walk(getattr(block, "refs", None))
            walk(v.index)
            if isinstance(v, pd.DataFrame):
                walk(v.columns)
        elif isinstance(v, pd.Index):
            walk(getattr(v, "_references", None))
        elif type(v).__name__ == "BlockValuesRefs":
            refs = getattr(v, "referenced_blocks", None)
            if isinstance(refs, list):
                lists.append(refs)
        elif isinstance(v, (list, tuple, set, frozenset)):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            for f in dataclasses.fields(v):
                walk(getattr(v, f.name))

    walk(value)
    dropped = 0
    for refs in lists:
        alive = [ref for ref in refs if ref() is not None]
        dropped += len(refs) - len(alive)
        refs[:] = alive  # the same list: pandas holds it
    return dropped


def derive(data: Dataset, step: tuple, make: Callable[[Dataset], Dataset]) -> Dataset:
    """``make(data)``: for a copy handed out by :func:`reuse` and still unchanged, made once per
    process under the copy's key plus ``step`` (what ``make`` does and every setting it reads, by
    value) and handed out as a copy like :func:`reuse`, so results computed from it are reused
    too (:mod:`funnelkit.memo`); for any other ``data``, made each time."""
    key = pristine_key(data)
    if key is None:
        return make(data)
    return reuse(key + (("derived",) + step,), lambda: make(data))


def _buffers(values: Any) -> Any:
    """Where a column block's values live: the addresses of its memory buffers (numpy, Arrow or
    pandas masked arrays), or ``None`` for a kind of array not known here."""
    if isinstance(values, np.ndarray):
        return (values.__array_interface__["data"][0], values.shape, values.strides, values.dtype.str)
    if hasattr(values, "_pa_array"):  # Arrow-backed arrays (the string dtype)
        chunks = values._pa_array.chunks
        return tuple((c.offset, len(c), tuple(b.address if b is not None else 0 for b in c.buffers())) for c in chunks)
    if hasattr(values, "_data") and hasattr(values, "_mask"):  # masked arrays (boolean, Int64, Float64)
        return (_buffers(values._data), _buffers(values._mask))
    if hasattr(values, "_ndarray"):  # datetimes, timedeltas, numpy-backed extension arrays
        return (_buffers(values._ndarray), str(values.dtype))
    if hasattr(values, "_codes"):  # categoricals
        return (_buffers(values._codes), id(values.categories))
    return None


def _frame_buffers(frame: pd.DataFrame) -> tuple | None:
    try:
        blocks = tuple((tuple(b.mgr_locs.as_array), _buffers(b.values)) for b in frame._mgr.blocks)
    except AttributeError:  # a pandas without block managers: no fingerprint, no reuse
        return None
    if any(buffers is None for _, buffers in blocks):
        return None
    return (tuple(frame.columns), tuple(frame.index.names), len(frame), _buffers(frame.index.array), blocks)


def fingerprint(data: Dataset) -> tuple | None:
    """The memory buffers behind each table of ``data`` and the values of its other fields.
    With copy-on-write, any change to a table through pandas (a set value, a new or dropped
    column, an in-place sort or drop) moves it to new buffers, so an unchanged fingerprint
    means unchanged tables. ``None`` when a table holds an array kind not known here."""
    parts: list[Any] = []
    for f in dataclasses.fields(data):
        value = getattr(data, f.name)
        if isinstance(value, pd.DataFrame):
            buffers = _frame_buffers(value)
            if buffers is None:
                return None
            parts.append(buffers)
        else:
            parts.append(repr(value))
    return tuple(parts)


def pristine_key(data: Dataset) -> tuple | None:
    """The key ``data`` was loaded under, when it is a copy handed out by :func:`reuse` and
    nothing in it has changed since; else ``None``. Results computed from an unchanged copy
    hold for every copy of the same load (:mod:`funnelkit.memo`)."""
    entry = _handed.get(id(data))
    if entry is None or entry[1]() is not data or entry[2] is None or entry[0] not in _loaded:
        return None
    return entry[0] if fingerprint(data) == entry[2] else None
