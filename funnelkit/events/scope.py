"""The scoped view: data, config, as-of date, team, rep and pipeline of one report, built once.

A :class:`Scope` computes the per-event step (:func:`funnelkit.events.aggregate.reach_table`,
:func:`funnelkit.events.aggregate.stage_stays`) and the open deals at most once each, for the whole
dataset at its as-of date and pipeline; a scope for one team or rep filters those tables. Scopes
made from it with :meth:`Scope.narrow` / :meth:`Scope.widen` (a team's scope inside a rep report)
share the same computed tables. Analyses take a scope; the public functions that take
``(data, config, …)`` build one and call them, so both ways give the same numbers.

Filters are checked when the scope is built: an unknown team or rep is an error listing the valid
ones with a case-insensitive "did you mean"; the as-of date may be a string (``"2024-05-31"``, the
end of that day) or a timestamp.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from funnelkit.events.aggregate import deals_as_of, open_deals, reach_table, stage_list, stage_stays
from funnelkit.arguments import checked_filters
from funnelkit.config import FunnelConfig
from funnelkit.inputs.data import Dataset


class Filters(TypedDict, total=False):
    """The keyword-only filters every analysis that can filter accepts (``**filters: Unpack[Filters]``)
    and passes to :meth:`Scope.build`."""

    as_of: str | pd.Timestamp | None  # a date string (the end of that day) or an exclusive timestamp bound
    team: str | None
    rep: str | None
    pipeline: str | None
    language: str | None  # of stage labels; default params/funnel.yaml's


class _Computed:
    """Per-event tables shared by a scope and the scopes narrowed or widened from it, keyed by what
    they depend on (as_of, strict, pipeline). Holding them here, not in a module global, keeps
    separate reports independent."""

    def __init__(self) -> None:
        self.tables: dict[tuple, pd.DataFrame] = {}
        self.groups: dict[tuple, dict[Any, np.ndarray]] = {}

    def get(self, key: tuple, make: Any) -> pd.DataFrame:
        if key not in self.tables:
            self.tables[key] = make()
        return self.tables[key]

    def scoped(self, key: tuple, make: Any, team: str | None = None, rep: str | None = None,
               pipeline: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """The table under ``key`` filtered as :func:`funnelkit.events.aggregate.filter_scope` does
        (same rows, order and index), from the rows of each value found once per table and column:
        a report narrows to every team and rep in turn, and comparing a million strings per scope
        cost more than the analyses themselves. ``columns``: only those (all by default)."""
        whole = self.get(key, make)
        rows = None
        for column, value in (("team", team), ("rep", rep), ("pipeline", pipeline)):
            if value is None:
                continue
            if (key, column) not in self.groups:
                # kept as long as the report: four bytes a row where they fit, not eight (80 MB
                # less per table and column at 10M deals)
                small = np.int32 if len(whole) < np.iinfo(np.int32).max else np.intp
                self.groups[(key, column)] = {
                    found: at.astype(small) for found, at in
                    whole.groupby(column, observed=True, sort=False).indices.items()}
            here = self.groups[(key, column)].get(value, np.empty(0, dtype=np.intp))
            rows = here if rows is None else np.intersect1d(rows, here, assume_unique=True)
        whole = whole if columns is None else whole[columns]
        # a new frame either way (copy on write): a caller adding a column leaves the cache alone
        return whole.copy(deep=False) if rows is None else whole.iloc[rows]


@dataclasses.dataclass(frozen=True, eq=False)
class Scope:
    """What one report (or notebook) looks at. Build it with :meth:`build`.

    Fields: ``data``, ``config``, ``as_of`` (exclusive time bound: nothing at or after it is seen),
    ``team``, ``rep``, ``pipeline`` (``None`` = all), ``language`` (of stage labels) and ``strict``
    (the in-order reach rule). Lazily computed, once each: ``deals`` (as they stood at as_of, in
    scope), ``reach`` (one row per deal), ``stays`` (one row per stay), ``open_deals``.
    """

    data: Dataset
    config: FunnelConfig
    as_of: pd.Timestamp
    team: str | None = None
    rep: str | None = None
    pipeline: str | None = None
    language: str = "en"
    strict: bool = False
    computed: _Computed = dataclasses.field(default_factory=_Computed, repr=False)

    @classmethod
    def build(cls, data: Dataset, config: FunnelConfig, *, as_of: str | pd.Timestamp | None = None,
              team: str | None = None, rep: str | None = None, pipeline: str | None = None,
              language: str | None = None, strict: bool = False) -> "Scope":
        """Check the arguments and make the scope. ``as_of`` defaults to the data's; a date string
        means the end of that day. ``language`` defaults to the config's."""
        checked = checked_filters(data, config, as_of=as_of, team=team, rep=rep, pipeline=pipeline,
                                  language=language)
        return cls(data, config, checked.as_of, checked.team, checked.rep, checked.pipeline,
                   checked.language or config.language, strict)

    def narrow(self, **changes: Any) -> "Scope":
        """The same view with other filters (``team=``, ``rep=``, ``pipeline=`` …), sharing the
        computed tables; ``None`` removes a filter (see :meth:`widen`)."""
        fields = {f: getattr(self, f) for f in ("team", "rep", "pipeline", "language", "strict")}
        as_of = changes.pop("as_of", self.as_of)
        wanted = fields | changes
        if set(changes) <= {"team", "rep"} and as_of is self.as_of and \
                self._known(wanted["team"], wanted["rep"]):
            # a team and rep seen together in the deals at as_of pass checked_filters: skip its
            # scan of every deal, once per rep of a report
            return dataclasses.replace(self, team=wanted["team"], rep=wanted["rep"])
        built = Scope.build(self.data, self.config, as_of=as_of, **wanted)
        return dataclasses.replace(built, computed=self.computed)

    def _known(self, team: str | None, rep: str | None) -> bool:
        """Whether ``team`` and ``rep`` (either may be None) occur together in the deals at as_of."""
        def seen() -> dict[str, set]:
            deals = self._deals(columns=["team", "rep"], team=None, rep=None, pipeline=None).dropna().drop_duplicates()
            pairs = set(zip(deals["team"], deals["rep"]))
            return {"pairs": pairs, "teams": {t for t, _ in pairs}, "reps": {r for _, r in pairs}}

        pairs = self.computed.get(("pairs", self.as_of), seen)
        return (team is None or team in pairs["teams"]) and (rep is None or rep in pairs["reps"]) and \
            (team is None or rep is None or (team, rep) in pairs["pairs"])

    def widen(self, *filters: str) -> "Scope":
        """The same view without the named filters, e.g. ``scope.widen("rep")`` for the rep's team."""
        return self.narrow(**{f: None for f in filters})

    @cached_property
    def deals(self) -> pd.DataFrame:
        """Deals in scope as they stood at as_of (created before it; later closes undone)."""
        return self._deals()

    def _deals(self, columns: list[str] | None = None, **filters: str | None) -> pd.DataFrame:
        """The deals at as_of (computed once per scope family) filtered as this scope, or by
        ``filters`` instead, with only ``columns`` (all by default)."""
        chosen = {"team": self.team, "rep": self.rep, "pipeline": self.pipeline} | filters
        return self.computed.scoped(("deals", self.as_of), lambda: deals_as_of(self.data.deals, self.as_of),
                                    columns=columns, **chosen)

    @cached_property
    def stages(self) -> list[str]:
        """Stage keys of the scope's pipeline (or the stages every pipeline in scope shares)."""
        return stage_list(self.config, self._deals(columns=["pipeline"]), self.pipeline)

    @cached_property
    def labels(self) -> dict[str, str]:
        """Stage key → label in the scope's language: of the scope's pipeline, else of the pipeline
        its deals are in (not the default one's: a team may sell in another pipeline only)."""
        if self.pipeline is not None:
            return self.config.stage_labels(self.pipeline, self.language)
        keys = self.stages  # pipelines of different stages in scope are an error saying to choose one
        present = [p for p in pd.unique(self._deals(columns=["pipeline"])["pipeline"]) if p in self.config.pipelines]
        return {k: v for k, v in self.config.stage_labels(present[0] if present else None, self.language).items()
                if k in keys}

    @cached_property
    def reach(self) -> pd.DataFrame:
        """:func:`funnelkit.events.aggregate.reach_table` of the scope's deals, from one table per as_of,
        rule and pipeline."""
        try:
            return self._whole_reach(self.team, self.rep)
        except ValueError:
            # The pipelines in the whole dataset differ in stages but those in scope do not.
            return reach_table(self.data, self.config, as_of=self.as_of, strict=self.strict,
                               pipeline=self.pipeline, team=self.team, rep=self.rep)

    def reach_columns(self, columns: list[str]) -> pd.DataFrame:
        """:attr:`reach` with only ``columns``: a narrowed scope copies only those cells of its rows,
        not every column (a team's reach at 10M deals was most of a gigabyte, once per team)."""
        if "reach" in self.__dict__:  # computed already
            return self.reach[columns]
        kept = self.__dict__.setdefault("_reach_columns", {})  # once per scope and columns, like reach
        if tuple(columns) not in kept:
            try:
                kept[tuple(columns)] = self._whole_reach(self.team, self.rep, columns)
            except ValueError:
                return self.reach[columns]
        return kept[tuple(columns)].copy(deep=False)

    def _whole_reach(self, team: str | None, rep: str | None, columns: list[str] | None = None) -> pd.DataFrame:
        """The reach table of the whole dataset at the scope's as_of, rule and pipeline (computed once
        per scope family), filtered to ``team`` / ``rep``, with only ``columns`` (all by default);
        a ``ValueError`` when the dataset's pipelines differ in stages."""
        key = ("reach", self.as_of, self.strict, self.pipeline)
        return self.computed.scoped(key, lambda: reach_table(self.data, self.config, as_of=self.as_of,
                                                             strict=self.strict, pipeline=self.pipeline),
                                    team, rep, columns=columns)

    @cached_property
    def stays(self) -> pd.DataFrame:
        """:func:`funnelkit.events.aggregate.stage_stays` of the scope's deals, from one table per as_of."""
        return self.computed.scoped(("stays", self.as_of),
                                    lambda: stage_stays(self.data, self.config, as_of=self.as_of),
                                    self.team, self.rep, self.pipeline)

    @cached_property
    def open_deals(self) -> pd.DataFrame:
        """:func:`funnelkit.events.aggregate.open_deals` in scope: open at as_of, with their current stage."""
        return self.computed.scoped(("open", self.as_of),
                                    lambda: open_deals(self.data, self.config, as_of=self.as_of),
                                    self.team, self.rep, self.pipeline).reset_index(drop=True)

    def _repr_html_(self) -> str:
        filters = ", ".join(f"{k} = {v}" for k, v in (("team", self.team), ("rep", self.rep),
                                                        ("pipeline", self.pipeline)) if v) or "all deals"
        return (f"<p><strong>Scope</strong>: {filters}; as of {self.as_of:%Y-%m-%d %H:%M} (exclusive); "
                f"{len(self.deals):,} deals, stages {' → '.join(self.stages)}</p>")


__all__ = ["Filters", "Scope"]
