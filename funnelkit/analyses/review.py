"""Period review: what changed in each stage's conversion since the previous period, and is it real.

Conversion of stage s in a period (a proportion that can be tested): of the stays in s that *ended*
during the period, the share that ended by moving on to a later stage::

    conversion[s] = progressed[s] / (progressed[s] + regressed[s] + lost[s])    (exits in P)

Stays still open do not count, so a period is not penalised for deals that have not decided yet.
Each stage's 2×2 table (this period vs previous; progressed vs not) is tested with a chi-square test,
or Fisher's exact test when an expected count is under 5; p-values are adjusted across stages for
the false discovery rate (Benjamini–Hochberg, ``scipy.stats.false_discovery_control``). A change is
flagged (``drop`` / ``rise``) when the adjusted p-value is below ``alpha``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Unpack

import numpy as np
import pandas as pd
from scipy import stats

from funnelkit.config import FunnelConfig
from funnelkit.inputs.data import UNSPECIFIED_REASON, Dataset
from funnelkit.memo import reused
from funnelkit.periods import Period, parse_period
from funnelkit.results import ResultDisplay
from funnelkit.events.scope import Filters, Scope


@dataclass(frozen=True, eq=False)
class PeriodReview(ResultDisplay):
    """Result of :func:`period_review`."""

    conversions: pd.DataFrame  # stage, label, next_stage, next_label, exits_*, progressed_*, rate_*, difference, test, p_value, p_adjusted, flag
    loss_reasons: pd.DataFrame  # reason, lost_this, lost_previous, share_this, share_previous, change
    period: str
    previous: str


def _two_by_two(k1: int, n1: int, k0: int, n0: int) -> tuple[str, float]:
    table = np.array([[k1, n1 - k1], [k0, n0 - k0]])
    if n1 == 0 or n0 == 0 or table.sum(axis=0).min() == 0:
        return "none", np.nan
    expected = stats.contingency.expected_freq(table)
    if expected.min() < 5:
        return "fisher", float(stats.fisher_exact(table).pvalue)
    return "chi-square", float(stats.chi2_contingency(table).pvalue)


def period_review(
    data: Dataset,
    config: FunnelConfig,
    period: str | Period,
    previous: str | Period | None = None,
    *,
    alpha: float = 0.05,
    **filters: Unpack[Filters],
) -> PeriodReview:
    """Compare ``period`` with ``previous`` (:func:`period_review_of` on a scope built from the arguments)."""
    scope = Scope.build(data, config, **filters)
    return period_review_of(scope, period, previous, alpha=alpha)


@reused
def period_review_of(scope: Scope, period: str | Period, previous: str | Period | None = None,
                     alpha: float = 0.05) -> PeriodReview:
    """Compare ``period`` with ``previous`` (default: the period just before, of the same length);
    stage labels in the scope's language.

    ``loss_reasons``: per reason, the deals lost in each period, ``share_* = lost_* ÷ all lost in
    that period`` (NaN when that period lost none: unknown, not 0%) and ``change = share_this −
    share_previous`` (NaN when either share is)."""
    period = parse_period(period)
    previous = parse_period(previous) if previous is not None else period.previous()
    reach = scope.reach
    stages: list[str] = scope.stages
    stays = scope.stays
    stays = stays[stays["exited_at"].notna()]
    labels = scope.labels

    rows = []
    for j, stage in enumerate(stages[:-1]):
        here = stays[stays["stage"] == stage]
        row = {"stage": stage, "label": labels[stage], "next_stage": stages[j + 1], "next_label": labels[stages[j + 1]]}
        counts = {}
        for name, p in (("this", period), ("previous", previous)):
            ended = here[p.contains(here["exited_at"])]
            k, n = int((ended["outcome"] == "progressed").sum()), len(ended)
            counts[name] = (k, n)
            row |= {f"exits_{name}": n, f"progressed_{name}": k, f"rate_{name}": k / n if n else np.nan}
        row["difference"] = row["rate_this"] - row["rate_previous"]
        row["test"], row["p_value"] = _two_by_two(*counts["this"], *counts["previous"])
        rows.append(row)
    table = pd.DataFrame(rows)
    tested = table["p_value"].notna()
    table["p_adjusted"] = np.nan
    if tested.any():
        table.loc[tested, "p_adjusted"] = stats.false_discovery_control(table.loc[tested, "p_value"])
    significant = table["p_adjusted"] < alpha
    table["flag"] = np.select([significant & (table["difference"] < 0), significant & (table["difference"] > 0)],
                              ["drop", "rise"], "")

    # as text: an engine's categorical takes no new value and counts categories no lost deal has
    lost = reach[reach["status"] == "lost"].assign(
        reason=lambda r: r["lost_reason"].astype("string").fillna(UNSPECIFIED_REASON))
    this = lost[period.contains(lost["closed_at"])]["reason"].value_counts()
    before = lost[previous.contains(lost["closed_at"])]["reason"].value_counts()
    reasons = pd.DataFrame({"lost_this": this, "lost_previous": before}).fillna(0).astype(int)
    # a share of no losses is unknown, not 0%: a previous period before the data began lost nothing
    # that was recorded, and its "0.0%" made every reason look like a rise of its whole share
    reasons["share_this"] = reasons["lost_this"] / reasons["lost_this"].sum() if reasons["lost_this"].sum() else np.nan
    reasons["share_previous"] = (reasons["lost_previous"] / reasons["lost_previous"].sum()
                                 if reasons["lost_previous"].sum() else np.nan)
    reasons["change"] = reasons["share_this"] - reasons["share_previous"]
    reasons = reasons.sort_values("lost_this", ascending=False).rename_axis("reason").reset_index()
    return PeriodReview(table, reasons, period.label, previous.label)
