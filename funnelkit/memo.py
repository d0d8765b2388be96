"""Analyses reused across the reports of one warm kernel, with nothing a report changes reaching the next.

A batch of per-rep reports repeats the same team-level work for every rep: the rep roll-up of the
team, the team's sales metrics, the scored open deals and follow-up plan of the team, and (for the
two periods of one rep with the same trailing window) the whole weight-sensitivity analysis.
:func:`reused` wraps such an analysis so that, once :func:`enable` was called (the warm report
kernel does; a library user and ``--cold`` never do), a call with the same arguments returns the
result computed before.

A call is only reused when every argument has a key that stands for its content:

* a :class:`~funnelkit.events.scope.Scope` whose data is a copy handed out by :mod:`funnelkit.datacache`
  and still unchanged (:func:`funnelkit.datacache.pristine_key`), plus its config and filters;
* a DataFrame or Series, by a hash of its values, index, columns and dtypes;
* a pydantic model by its JSON; a result object (a dataclass) by its fields;
  a :class:`~funnelkit.periods.Period`, numbers, strings, ``None`` and lists, tuples and dicts of
  those by value;
* a module-level function (a chart's draw function) by its module and name.

Anything else (a modified dataset, a frame of unhashable cells) makes the call run as usual. Each
caller gets its own copy of a reused result (tables as copy-on-write shallow copies, containers
copied), so a report that changes what it was given cannot change what the next report gets.
At most :data:`MAX_ENTRIES` results, of at most :data:`MAX_BYTES` in all (by
:func:`approx_bytes`), are kept, least recently used first out, so a worker's memory stays flat
over a batch whatever the size of the data.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import sys
import types
from collections import OrderedDict
from typing import Any, Callable, TypeVar

import numpy as np
import pandas as pd

MAX_ENTRIES = 64
# The results of a 20,000-deal batch hold about 1.2 MB in all (64 results); with much larger data
# a team's scored deals alone can hold tens of MB, and the count would not bound the memory.
MAX_BYTES = 128 * 2**20
_store: OrderedDict[tuple, Any] = OrderedDict()
_sizes: dict[tuple, int] = {}  # approx_bytes of each kept result
_state = {"enabled": False, "hits": 0, "misses": 0, "depth": 0}
F = TypeVar("F", bound=Callable[..., Any])


class _NoKey(Exception):
    """An argument whose content has no cheap, reliable key: the call is not reused."""


def enable(on: bool = True) -> None:
    """Reuse results from now on (``on=False``: stop and forget them)."""
    _state["enabled"] = on
    if not on:
        clear()


def enabled() -> bool:
    return bool(_state["enabled"])


def clear() -> None:
    """Forget every kept result."""
    _store.clear()
    _sizes.clear()


def forget_dead_copies() -> int:
    """Drop the dead copies pandas still lists for the kept results' tables (see
    :func:`funnelkit.datacache.drop_dead_references`: each hand-out adds one per table); returns
    how many were dropped."""
    from funnelkit.datacache import drop_dead_references

    return sum(drop_dead_references(value) for value in _store.values())


def stats() -> dict[str, int]:
    """Calls answered from kept results (``hits``), computed (``misses``), results kept (``kept``)
and their :func:`approx_bytes` in all (``bytes``)."""
    return {"hits": _state["hits"], "misses": _state["misses"], "kept": len(_store), "bytes": sum(_sizes.values())}


def approx_bytes(value: Any) -> int:
    """The memory a result holds, roughly: a table's column and index buffers (``nbytes``; an
    object column adds the mean ``sys.getsizeof`` of up to 64 of its items times its length), a
    string's or bytes' length, the sum over a container's items or a dataclass's fields, and
    ``sys.getsizeof`` of anything else. An object reached twice counts once. Cheap (well under a
    millisecond for a table of thousands of rows), unlike pandas' ``memory_usage(deep=True)``."""
    seen: set[int] = set()

    def size(v: Any) -> int:
        if id(v) in seen:
            return 0
        seen.add(id(v))
        if isinstance(v, pd.DataFrame):
            blocks = getattr(getattr(v, "_mgr", None), "blocks", None)
            if blocks is None:  # a pandas without block managers
                return int(v.memory_usage(index=True, deep=False).sum())
            return sum(_array_bytes(b.values) for b in blocks) + _array_bytes(v.index)
        if isinstance(v, pd.Series):
            return _array_bytes(v.array) + _array_bytes(v.index)
        if isinstance(v, (str, bytes)):
            return len(v)
        if isinstance(v, (list, tuple, set, frozenset)):
            return sys.getsizeof(v) + sum(size(x) for x in v)
        if isinstance(v, dict):
            return sys.getsizeof(v) + sum(size(k) + size(x) for k, x in v.items())
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return sys.getsizeof(v) + sum(size(getattr(v, f.name)) for f in dataclasses.fields(v))
        return sys.getsizeof(v)

    return size(value)


def _array_bytes(values: Any) -> int:
    """``nbytes`` of an array or index; for one of Python objects, plus their sizes estimated
    from up to 64 of them, evenly spread."""
    total = int(getattr(values, "nbytes", 0))
    if str(getattr(values, "dtype", "")) == "object":
        items = np.asarray(values, dtype=object).ravel()  # a block of no rows has columns but no items
        if items.size:
            sample = items[:: max(1, items.size // 64)]
            total += int(sum(sys.getsizeof(x) for x in sample) / len(sample) * items.size)
    return total


def _keep(key: tuple, value: Any) -> None:
    """Keep ``value`` under ``key`` and forget the least recently used results beyond
    :data:`MAX_ENTRIES` or :data:`MAX_BYTES`. A result over :data:`MAX_BYTES` on its own is not kept."""
    size = approx_bytes(value)
    if size > MAX_BYTES:
        return
    _store[key], _sizes[key] = value, size
    while len(_store) > MAX_ENTRIES or sum(_sizes.values()) > MAX_BYTES:  # at most 64: cheap
        old, _ = _store.popitem(last=False)
        del _sizes[old]


def frame_digest(frame: pd.DataFrame | pd.Series) -> str:
    """A digest of a table's content: ``pd.util.hash_pandas_object`` of its rows (index
    included) with its column names and dtypes. Raises :class:`TypeError` for unhashable cells."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((type(frame).__name__, frame.shape, list(getattr(frame, "columns", [getattr(frame, "name", None)])),
                        list(getattr(getattr(frame, "columns", None), "names", [])),
                        [str(t) for t in np.atleast_1d(frame.dtypes)], frame.index.names)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def key_of(value: Any) -> Any:
    """A hashable key standing for ``value``'s content; raises :class:`_NoKey` when there is none."""
    from pydantic import BaseModel

    from funnelkit.periods import Period
    from funnelkit.events.scope import Scope

    if value is None or isinstance(value, (str, bool, int, float, np.integer, np.floating)):
        return (type(value).__name__, value)
    if isinstance(value, pd.Timestamp):
        return ("Timestamp", value.value, str(value.tz))
    if isinstance(value, Period):
        return ("Period", value.label, value.start.value, value.end.value, value.months)
    if isinstance(value, Scope):
        from funnelkit.datacache import pristine_key

        data = pristine_key(value.data)
        if data is None:
            raise _NoKey("the scope's data is not an unchanged cached dataset")
        return ("Scope", data, key_of(value.config), key_of(value.as_of), value.team, value.rep, value.pipeline,
                value.language, value.strict)
    if isinstance(value, (pd.DataFrame, pd.Series)):
        try:
            return ("frame", frame_digest(value))
        except TypeError as exc:  # unhashable cells (lists, dicts)
            raise _NoKey(str(exc)) from exc
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # result objects (scored deals, a plan)
        return (type(value).__qualname__,) + tuple((f.name, key_of(getattr(value, f.name)))
                                                    for f in dataclasses.fields(value))
    if isinstance(value, BaseModel):
        return (type(value).__qualname__, value.model_dump_json())
    if isinstance(value, types.FunctionType) and _importable(value):
        return ("function", value.__module__, value.__qualname__)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(key_of(v) for v in value)
    if isinstance(value, dict):
        return ("dict",) + tuple((key_of(k), key_of(v)) for k, v in value.items())
    raise _NoKey(f"no key for a {type(value).__name__}")


def _importable(function: types.FunctionType) -> bool:
    """Whether ``function`` is what an imported module's file holds under its name: not a
    closure, lambda or replaced function, nor one defined in a notebook (``__main__``), where
    the next report may define another under the same name."""
    module = sys.modules.get(function.__module__)
    return (function.__module__ != "__main__" and getattr(module, "__file__", None) is not None
            and getattr(module, function.__qualname__, None) is function)


def handout(value: Any) -> Any:
    """A copy of a result that shares no mutable state with it: tables as shallow copy-on-write
    copies (free until written to), containers and result dataclasses copied field by field."""
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return value.copy(deep=False)
    if isinstance(value, (list, tuple)):
        return type(value)(handout(v) for v in value)
    if isinstance(value, dict):
        return {k: handout(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = copy.copy(value)
        for f in dataclasses.fields(value):
            object.__setattr__(out, f.name, handout(getattr(value, f.name)))  # frozen result classes too
        return out
    if value is None or isinstance(value, (str, bytes, bool, int, float, complex, np.generic, pd.Timestamp)):
        return value
    return copy.deepcopy(value)


def reused(function: F) -> F:
    """Reuse ``function``'s results for calls with the same arguments while :func:`enable`\\ d
    (see the module's docstring). ``function`` must be pure: its result depends on its
    arguments alone, and it changes none of them."""
    name = f"{function.__module__}.{function.__qualname__}"

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Calls made while computing a reused result are not kept on their own: they would
        # crowd out the results the next report asks for (a team roll-up makes one per rep).
        if not _state["enabled"] or _state["depth"]:
            return function(*args, **kwargs)
        try:
            key = (name, key_of(args), key_of(sorted(kwargs.items())))
        except _NoKey:
            return function(*args, **kwargs)
        if key in _store:
            _store.move_to_end(key)
            _state["hits"] += 1
        else:
            _state["misses"] += 1
            _state["depth"] += 1
            try:
                result = function(*args, **kwargs)
            finally:
                _state["depth"] -= 1
            kept = handout(result)  # a copy: the caller may change the result it gets
            _keep(key, kept)
            return handout(kept)
        return handout(_store[key])

    wrapper.uncached = function  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


__all__ = ["approx_bytes", "clear", "enable", "enabled", "forget_dead_copies", "frame_digest", "handout", "key_of", "reused", "stats"]
