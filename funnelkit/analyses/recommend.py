"""Which scorecard weighting to use, decided from the backtest (a rule, worded by the presentation layer).

Rule (on :class:`funnelkit.analyses.sensitivity.Backtest`'s ``auc`` table, one row per scenario):

* ``unknown`` — no AUC could be computed (too few won or lost closed deals): no recommendation;
* ``adopt`` scenario X — X separates won from lost better than the baseline beyond noise (the
  interval of its AUC minus the baseline's lies above 0); among several, the largest difference;
* ``keep`` the baseline — otherwise; the figures quoted are those of the alternative with the
  largest AUC difference (the best case against keeping), or none when there is no alternative.

``caution`` is set when the backtest had fewer won or lost deals than advised (``too_few``), so the
sentence can say the evidence is thin.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from funnelkit.results import ResultDisplay


@dataclass(frozen=True, eq=False)
class Recommendation(ResultDisplay):
    """Result of :func:`recommend_weights`."""

    action: Literal["adopt", "keep", "unknown"]
    scenario: str  # the weighting recommended ("baseline" for keep / unknown)
    compared: str | None  # the alternative whose figures are quoted (None: no alternative)
    auc_difference: float  # compared AUC − baseline AUC (NaN: none)
    low: float  # interval of the difference
    high: float
    caution: bool  # fewer won or lost deals than advised


def recommend_weights(test: Any, baseline: str = "baseline") -> Recommendation:
    """The weighting to use by the rule in the module docstring, from a
    :class:`funnelkit.analyses.sensitivity.Backtest` (``auc`` columns ``scenario, auc, diff_vs_baseline,
    diff_low, diff_high``)."""
    auc: pd.DataFrame = test.auc
    nan = float("nan")
    if getattr(test, "unavailable", None) or auc["auc"].isna().all():
        return Recommendation("unknown", baseline, None, nan, nan, nan, bool(getattr(test, "too_few", False)))
    others = auc[(auc["scenario"] != baseline) & auc["diff_vs_baseline"].notna()]
    caution = bool(getattr(test, "too_few", False))
    if others.empty:
        return Recommendation("keep", baseline, None, nan, nan, nan, caution)
    better = others[others["diff_low"] > 0]
    if len(better):
        best = better.loc[better["diff_vs_baseline"].idxmax()]
        return Recommendation("adopt", str(best["scenario"]), str(best["scenario"]), float(best["diff_vs_baseline"]),
                              float(best["diff_low"]), float(best["diff_high"]), caution)
    best = others.loc[others["diff_vs_baseline"].idxmax()]
    return Recommendation("keep", baseline, str(best["scenario"]), float(best["diff_vs_baseline"]),
                          float(np.asarray(best["diff_low"], dtype=float)), float(best["diff_high"]), caution)


__all__ = ["Recommendation", "recommend_weights"]
