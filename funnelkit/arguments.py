"""Checks at the call: the argument types and the filters (as-of, team, rep, pipeline, language)
every public analysis accepts, so a misuse is a clear error naming what was expected, not a
``KeyError`` from deep inside pandas or an all-zero result.

An unknown team, rep, pipeline or scenario is an error listing the valid values, with a
case-insensitive "did you mean"; the as-of date may be a string (``"2024-05-31"``, the end of that
day) or an exclusive timestamp bound.
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable, NamedTuple

import pandas as pd

from funnelkit.config import FunnelConfig
from funnelkit.inputs.data import Dataset
from funnelkit.periods import as_of_bound


def expect_type(value: Any, types: type | tuple[type, ...], name: str, expected: str) -> None:
    """Raise ``TypeError`` naming the argument, the expected type and what was given."""
    if not isinstance(value, types):
        raise TypeError(f"{name} must be {expected}; got {type(value).__name__}")


def choose(value: str, valid: Iterable[str], what: str, where: str = "") -> str:
    """``value`` if it is one of ``valid``; else a ``ValueError`` listing the valid values, with a
    "did you mean" found case-insensitively (exact match ignoring case first, then close spellings)."""
    options = sorted({str(v) for v in valid})
    if value in options:
        return value
    folded = {o.casefold(): o for o in options}
    close = [folded[value.casefold()]] if value.casefold() in folded else \
        [folded[m] for m in difflib.get_close_matches(value.casefold(), list(folded), n=3, cutoff=0.6)]
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listed = ", ".join(options) if options else "none"
    raise ValueError(f"unknown {what} {value!r}{where}.{hint} Valid: {listed}")


class CheckedFilters(NamedTuple):
    """Filters after :func:`checked_filters`: ``as_of`` is an exclusive timestamp bound."""

    as_of: pd.Timestamp
    team: str | None
    rep: str | None
    pipeline: str | None
    language: str | None


def checked_filters(data: Dataset, config: FunnelConfig, *, as_of: str | pd.Timestamp | None = None,
                    team: str | None = None, rep: str | None = None, pipeline: str | None = None,
                    language: str | None = None) -> CheckedFilters:
    """Check the data, config and filters of an analysis call and return them normalised.

    ``as_of``: ``None`` → the data's as-of bound; a date string → the end of that day; a timestamp is
    taken as the exclusive bound. ``team`` must be a team in the data, ``rep`` a rep in the data (in
    ``team`` when one is given), ``pipeline`` one of the config's, ``language`` ``en`` or ``zh``.
    """
    expect_type(data, Dataset, "data", "a Dataset (fk.sample_dataset(), fk.load_data(...), fk.open_dataset(...))")
    expect_type(config, FunnelConfig, "config", "a FunnelConfig (fk.load_config())")
    expect_type(as_of, (str, pd.Timestamp, type(None)), "as_of", "a date string like '2024-05-31' or a pd.Timestamp")
    for name, value in (("team", team), ("rep", rep), ("pipeline", pipeline), ("language", language)):
        expect_type(value, (str, type(None)), name, "a string or None")
    bound = as_of_bound(as_of, data.as_of) if isinstance(as_of, str) or as_of is None else as_of
    if pipeline is not None:
        choose(pipeline, config.pipelines, "pipeline")
    if language is not None:
        choose(language, ("en", "zh"), "language")
    deals = data.deals
    if team is not None:
        team = choose(team, deals["team"].dropna().unique(), "team")
    if rep is not None:
        pool = deals.loc[deals["team"] == team, "rep"] if team is not None else deals["rep"]
        where = f" in team {team!r}" if team is not None else ""
        rep = choose(rep, pool.dropna().unique(), "rep", where)
    return CheckedFilters(bound, team, rep, pipeline, language)


__all__ = ["CheckedFilters", "checked_filters", "choose", "expect_type"]
