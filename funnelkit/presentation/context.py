"""One call sets up a report notebook: configuration, wording, data and the scoped view.

``ctx = fk.report_context("conversion", data=…, period=…, team=…)`` replaces the setup cell every
notebook used to copy: it loads ``params/funnel.yaml`` and ``params/text.yaml``, opens the data,
checks the filters and builds the :class:`~funnelkit.events.scope.Scope` the analyses share, so the
per-event step runs once per report. Part of the presentation layer (it holds the wording).
"""
from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from funnelkit import datacache
from funnelkit.config import FunnelConfig, load_config, params_file
from funnelkit.inputs.data import Dataset
from funnelkit.presentation.loss_reasons import in_language as loss_reasons_in_language
from funnelkit.periods import Period, parse_period, trailing_window
from funnelkit.presentation.present import Text, load_text, tier_labels, title
from funnelkit.events.scope import Scope


@dataclasses.dataclass(frozen=True, eq=False)
class ReportContext:
    """What a report notebook needs: ``scope`` (data, config, as_of, filters, shared tables),
    ``text`` (wording in the report language), ``period`` and the ``notebook`` key."""

    scope: Scope
    text: Text
    period: Period
    notebook: str

    @property
    def config(self) -> FunnelConfig:
        return self.scope.config

    @property
    def data(self) -> Dataset:
        return self.scope.data

    @property
    def as_of(self) -> pd.Timestamp:
        """Exclusive time bound of the report."""
        return self.scope.as_of

    @property
    def plan_date(self) -> pd.Timestamp:
        """The day follow-ups are planned for: the last day before the as-of bound."""
        return (self.as_of - pd.Timedelta(microseconds=1)).normalize()

    @property
    def labels(self) -> dict[str, str]:
        """Stage key → label in the report language."""
        return self.scope.labels

    @cached_property
    def tiers(self) -> dict[str, str]:
        """Tier key → name in the report language."""
        return tier_labels(self.text)

    def window(self, months: int | None) -> Period:
        """The ``months`` months ending with the report period (the period itself for 0 / None)."""
        return trailing_window(self.period, months)

    @property
    def title(self) -> Any:
        """The report's title block (Markdown), for the notebook to show."""
        from IPython.display import Markdown

        return Markdown(title(self.text, self.notebook, self.period.label, self.as_of, self.scope.team, self.scope.rep))


def report_context(
    notebook: str,
    *,
    data: str | Path | Dataset = "sample",
    period: str | Period,
    as_of: str | pd.Timestamp | None = None,
    team: str | None = None,
    rep: str | None = None,
    pipeline: str | None = None,
    language: str | None = None,
    config_path: str | Path | None = None,
) -> ReportContext:
    """Set up a report notebook. ``data`` is ``"sample"``, a dataset folder / DuckDB file (read
    with :func:`funnelkit.inputs.io.open_dataset`) or a loaded :class:`Dataset`; ``as_of`` a date string
    (the end of that day) or a timestamp; ``language`` defaults to ``params/funnel.yaml``'s."""
    from funnelkit.inputs.io import open_dataset

    config = load_config(config_path)
    text = load_text(language or config.language)
    if not isinstance(data, Dataset):
        data = open_dataset(data, as_of=as_of, config=config)
    # made once per warm kernel for the run's data, which then stays a key for reused analyses
    vocabulary = params_file("loss_reasons.yaml")
    data = datacache.derive(data, ("loss_reasons", text.language, str(vocabulary), vocabulary.stat().st_mtime_ns),
                            lambda d: loss_reasons_in_language(d, text.language))
    scope = Scope.build(data, config, as_of=as_of, team=team, rep=rep, pipeline=pipeline, language=text.language)
    return ReportContext(scope, text, parse_period(period), notebook)


__all__ = ["ReportContext", "report_context"]
