"""Fair rep comparison: funnel, win rate with intervals, funnel-plot limits and shrunk rates.

* Win rate with a Wilson 95% interval (won / closed, closed in the window).
* Funnel plot: exact binomial control limits around the team rate θ0 for a volume n. For
  probability p: ``r = binom.ppf(p, n, θ0)``, ``α = (F(r) − p) / (F(r) − F(r−1))``,
  ``limit = (r − α) / n`` (the interpolated quantile of the binomial proportion), at p = 0.025 /
  0.975 (95%) and 0.001 / 0.999 (99.8%).
* A rep is flagged ``above`` or ``below`` only with at least ``min_volume`` closed deals *and* a
  rate outside the 99.8% limits; otherwise ``within``.
* Empirical Bayes: a beta-binomial prior Beta(a, b) is fitted across the team's reps by maximum
  likelihood (``scipy.stats.betabinom``); the shrunk rate ``(a + k) / (a + b + n)`` ranks reps,
  so 3 wins out of 3 does not outrank 40 out of 60 on luck.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Unpack

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from funnelkit.events.aggregate import deals_as_of
from funnelkit.config import FunnelConfig
from funnelkit.inputs.data import Dataset
from funnelkit.analyses.funnel import cohort_funnel_of
from funnelkit.memo import reused
from funnelkit.periods import Period, parse_period
from funnelkit.periods import trailing_window as rep_window
from funnelkit.results import TableResult
from funnelkit.analyses.sales import sales_metrics_of
from funnelkit.events.scope import Filters, Scope
from funnelkit.analyses.sensitivity import wilson_interval

LIMITS = {"95": (0.025, 0.975), "99.8": (0.001, 0.999)}


def binomial_limit(p: float, n: np.ndarray | int, theta: float) -> np.ndarray:
    """Exact (interpolated) binomial limit of a proportion at probability ``p`` for volume ``n``."""
    n = np.asarray(n, dtype=float)
    r = stats.binom.ppf(p, n, theta)
    f_r = stats.binom.cdf(r, n, theta)
    f_below = stats.binom.cdf(r - 1, n, theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(f_r > f_below, (f_r - p) / (f_r - f_below), 0.0)
        return np.where(n > 0, (r - alpha) / n, np.nan)


def funnel_limits(theta: float, volumes: np.ndarray | list[int]) -> pd.DataFrame:
    """Control limits around the rate ``theta`` for each volume: ``n, lower_95, upper_95,
    lower_99_8, upper_99_8`` (clipped to [0, 1])."""
    n = np.asarray(volumes, dtype=float)
    out = pd.DataFrame({"n": n})
    for name, (lo, hi) in LIMITS.items():
        key = name.replace(".", "_")
        out[f"lower_{key}"] = np.clip(binomial_limit(lo, n, theta), 0, 1)
        out[f"upper_{key}"] = np.clip(binomial_limit(hi, n, theta), 0, 1)
    return out


def flag_reps(k: np.ndarray, n: np.ndarray, theta: float, min_volume: int = 30) -> np.ndarray:
    """``above`` / ``below`` outside the 99.8% limits with at least ``min_volume``; else ``within``."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    limits = funnel_limits(theta, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(n > 0, k / n, np.nan)
    enough = n >= min_volume
    return np.select([enough & (rate > limits["upper_99_8"]), enough & (rate < limits["lower_99_8"])],
                     ["above", "below"], "within")


def fit_beta_binomial(k: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood Beta(a, b) prior of rates from successes ``k`` out of ``n`` per group.

    When the groups vary no more than binomial noise, the fit runs to a + b → ∞ (no spread);
    a + b is capped at 10⁶, which shrinks every rate to the pooled one.
    """
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    keep = n > 0
    k, n = k[keep], n[keep]
    pooled = k.sum() / n.sum() if n.sum() else 0.5
    pooled = min(max(pooled, 1e-6), 1 - 1e-6)

    def nll(params: np.ndarray) -> float:
        mean, log_size = special.expit(params[0]), params[1]
        size = np.exp(log_size)
        return -stats.betabinom.logpmf(k, n, mean * size, (1 - mean) * size).sum()

    start = np.array([np.log(pooled / (1 - pooled)), np.log(10.0)])
    result = optimize.minimize(nll, start, method="L-BFGS-B", bounds=[(-20, 20), (np.log(1e-3), np.log(1e6))])
    mean, size = float(special.expit(result.x[0])), float(np.exp(result.x[1]))
    return mean * size, (1 - mean) * size


def shrunk_rates(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Empirical-Bayes (beta-binomial) shrunk rates ``(a + k) / (a + b + n)``."""
    a, b = fit_beta_binomial(k, n)
    return (a + np.asarray(k, dtype=float)) / (a + b + np.asarray(n, dtype=float))


@dataclass(frozen=True, eq=False)
class RepSummary(TableResult):
    """Result of :func:`rep_summary`; reads like its ``table`` (one row per rep)."""

    table: pd.DataFrame
    team_rate: float  # θ0: won / closed of all reps in the window (NaN when none closed)
    window: str  # label of the comparison window
    min_volume: int  # closed deals a rep needs before being ranked or flagged
    stages: list[str]
    currency: str | None = None  # of the money columns (None: the configured one)


class RepArguments(Filters, total=False):
    """:func:`rep_summary`'s keyword arguments: the filters, then :func:`rep_summary_of`'s options."""

    window_months: int | None
    min_volume: int | None  # None: params' reps.min_volume
    stays: pd.DataFrame | None
    plan: pd.DataFrame | None


def rep_summary(data: Dataset, config: FunnelConfig, period: str | Period, **arguments: Unpack[RepArguments]
                ) -> RepSummary:
    """One row per rep of the team (:func:`rep_summary_of` on a scope built from the filters)."""
    filters = {k: v for k, v in arguments.items() if k in Filters.__annotations__}
    options = {k: v for k, v in arguments.items() if k not in filters}
    return rep_summary_of(Scope.build(data, config, **filters), period, **options)


def rep_summary_of(
    scope: Scope,
    period: str | Period,
    window_months: int | None = 12,
    min_volume: int | None = None,
    stays: pd.DataFrame | None = None,
    plan: pd.DataFrame | None = None,
) -> RepSummary:
    """One row per rep of the scope's team (or of all teams); a rep filter on the scope is ignored.

    Rates are measured over ``window_months`` ending with ``period`` (the period alone when
    ``None``), so small samples are not overread. Columns: ``rep, team, deals`` and ``reached_<stage>``
    / ``rate_<stage>`` (cohort funnel of deals entering in the window; rate = next-step rate),
    ``closed, won, win_rate, win_rate_low, win_rate_high, value_win_rate, cycle_median,
    velocity_per_day, open_pipeline, weighted_pipeline``, ``tis_<stage>`` (KM median days in stage, when
    ``stays`` is given), ``overdue`` (when a follow-up ``plan`` is given; NaN when unknown, ``overdue_unknown`` saying why:
    ``unscored`` or ``undated``), ``shrunk_win_rate``,
    ``rank`` (by the shrunk rate, among reps with at least ``min_volume`` closed deals; NA = too few
    closed deals to rank, the rep is still listed) and ``flag`` (above / below / within the team's
    99.8% funnel limits). ``min_volume`` defaults to ``config.reps.min_volume`` (params). The result
    also holds the team win rate θ0 (``team_rate``), the window, ``min_volume`` and the currency.
    """
    scope = scope.widen("rep") if scope.rep is not None else scope
    return _team_summary(scope, parse_period(period), window_months, min_volume, stays, plan)


@reused  # one team's roll-up, the same for each rep's report of the team
def _team_summary(scope: Scope, period: Period, window_months: int | None, min_volume: int | None,
                  stays: pd.DataFrame | None, plan: pd.DataFrame | None) -> RepSummary:
    min_volume = scope.config.reps.min_volume if min_volume is None else min_volume
    window = rep_window(period, window_months)
    as_of = scope.as_of
    stages: list[str] = scope.stages
    metrics = sales_metrics_of(scope, window, by="rep")
    teams = deals_as_of(scope.data.deals, as_of).groupby("rep")["team"].first()
    rows = []
    for rep in metrics["rep"]:
        funnel = cohort_funnel_of(scope.narrow(rep=rep), window)
        row = {"rep": rep, "team": teams.get(rep), "deals": int(funnel["reached"].iloc[0])}
        for s, reached, rate in zip(stages, funnel["reached"], funnel["next_step_rate"]):
            row[f"reached_{s}"] = int(reached)
            row[f"rate_{s}"] = rate
        rows.append(row)
    out = pd.DataFrame(rows).merge(metrics, on="rep", suffixes=("", "_all"))
    intervals = [wilson_interval(int(k), int(n)) for k, n in zip(out["won"], out["closed"])]
    out["win_rate_low"] = [i[0] for i in intervals]
    out["win_rate_high"] = [i[1] for i in intervals]
    if stays is not None:
        from funnelkit.analyses.timing import time_in_stage

        medians = time_in_stage(stays[stays["rep"].isin(out["rep"])], by="rep")
        wide = medians.pivot(index="rep", columns="stage", values="median").add_prefix("tis_")
        out = out.merge(wide, left_on="rep", right_index=True, how="left")
    if plan is not None:
        out["overdue"] = out["rep"].map(plan[plan["overdue"]].groupby("rep").size()).fillna(0).astype(float)
        # a rep with open deals of which none is scored has no plan: unknown, not 0 overdue
        unscored = out["rep"].isin(scope.open_deals["rep"]) & ~out["rep"].isin(plan["rep"])
        # nor when none of a rep's planned deals has a last follow-up date: each is due now, never overdue
        dated = plan.loc[plan["last_follow_up_at"].notna(), "rep"]
        undated = out["rep"].isin(plan["rep"]) & ~out["rep"].isin(dated)
        out["overdue"] = out["overdue"].mask(unscored | undated)
        out["overdue_unknown"] = np.where(unscored, "unscored", np.where(undated, "undated", None))
    theta = out["won"].sum() / out["closed"].sum() if out["closed"].sum() else np.nan
    out["shrunk_win_rate"] = shrunk_rates(out["won"], out["closed"]) if out["closed"].sum() else np.nan
    out["shrunk_win_rate"] = out["shrunk_win_rate"].where(out["closed"] > 0)  # the prior alone is no rate
    # Shrinkage alone still lets a lucky 4 of 4 outrank a steady 119 of 178: rank only with volume.
    rankable = out["closed"] >= min_volume
    out["rank"] = out["shrunk_win_rate"].where(rankable).rank(ascending=False, method="min").astype("Int64")
    out["flag"] = flag_reps(out["won"], out["closed"], theta, min_volume) if pd.notna(theta) else "within"
    keep = [c for c in out.columns if not c.endswith("_all") and c != "deals_all"]
    out = out[keep].drop(columns=["lost"], errors="ignore").sort_values(["rank", "closed", "rep"], ascending=[True, False, True],
                                                                 na_position="last").reset_index(drop=True)
    return RepSummary(out, team_rate=float(theta), window=window.label, min_volume=min_volume, stages=stages,
                      currency=scope.config.currency)


def rep_vs_team(scope: Scope, rep: str, window: Period) -> pd.DataFrame:
    """Next-step rates of ``rep``'s cohort funnel beside the team's (the scope without its rep
    filter), for the cohort that reached the first stage in ``window``.

    Columns ``stage, next_stage, rep_rate, team_rate, rep_open, rep_maturing, team_open,
    team_maturing`` (open deals at the stage and :func:`funnelkit.analyses.funnel.maturing_steps`),
    ``rep_few, team_few`` (:func:`funnelkit.analyses.funnel.few_decided_steps`), ``rep_skipped,
    team_skipped`` (every deal that reached the stage skipped it: its 100% is no rate) for every
    stage but the final one (which has no next step).
    """
    team = scope.widen("rep")
    mine = cohort_funnel_of(team.narrow(rep=rep), window)
    theirs = cohort_funnel_of(team, window)
    return pd.DataFrame({"stage": theirs["stage"], "next_stage": theirs["next_stage"],
                         "rep_rate": mine["next_step_rate"].to_numpy(), "team_rate": theirs["next_step_rate"].to_numpy(),
                         "rep_open": mine["open_at"].to_numpy(), "rep_maturing": mine["maturing"].to_numpy(),
                         "team_open": theirs["open_at"].to_numpy(), "team_maturing": theirs["maturing"].to_numpy(),
                         "rep_few": mine["few_decided"].to_numpy(), "team_few": theirs["few_decided"].to_numpy(),
                         "rep_skipped": ((mine["entered"] == 0) & (mine["reached"] > 0)).to_numpy(),
                         "team_skipped": ((theirs["entered"] == 0) & (theirs["reached"] > 0)).to_numpy(),
                         }).iloc[:-1].reset_index(drop=True)


def readable_rates(rates: pd.DataFrame) -> pd.DataFrame:
    """:func:`rep_vs_team` with ``rep_rate`` / ``team_rate`` NaN where that rate is not yet a rate
    (maturing, resting on too few decided deals, or out of a stage every deal skipped), so no
    chart, headline or coaching point compares it."""
    def withheld(who: str) -> pd.Series:
        flags = [rates[c].astype(bool) for c in (f"{who}_maturing", f"{who}_few", f"{who}_skipped") if c in rates]
        return pd.concat(flags, axis=1).any(axis=1) if flags else pd.Series(False, index=rates.index)

    return rates.assign(rep_rate=rates["rep_rate"].where(~withheld("rep")),
                        team_rate=rates["team_rate"].where(~withheld("team")))


def rep_vs_team_time(stays: pd.DataFrame, rep: str, stages: list[str]) -> pd.DataFrame:
    """Kaplan–Meier median days in each of ``stages`` for ``rep``'s stays beside all ``stays``
    (the team's): columns ``stage, rep_value, team_value`` (NaN: no stays, or not reached)."""
    from funnelkit.analyses.timing import time_in_stage

    def medians(frame: pd.DataFrame) -> pd.Series:
        table = time_in_stage(frame)
        return table.set_index("stage")["median"] if len(table) else pd.Series(dtype=float)

    rep_median, team_median = medians(stays[stays["rep"] == rep]), medians(stays)
    return pd.DataFrame({"stage": stages, "rep_value": rep_median.reindex(stages).to_numpy(dtype=float),
                         "team_value": team_median.reindex(stages).to_numpy(dtype=float)})


def funnel_plot_limits(summary: RepSummary, smallest: int = 5) -> pd.DataFrame:
    """:func:`funnel_limits` around the team rate for volumes from ``smallest`` to 20% beyond the
    busiest rep (at least 10), the range a funnel plot of ``summary`` spans."""
    largest = int(summary["closed"].max() * 1.2) if len(summary) else 0
    return funnel_limits(summary.team_rate, np.arange(smallest, max(largest, 10)))


def coaching_points(summary: RepSummary, rep: str, rates: pd.DataFrame, times: pd.DataFrame, overdue: int,
                    gap_points: float = 5.0, slow_ratio: float = 1.25) -> list[tuple[str, dict]]:
    """The coaching points for ``rep`` as ``(key, numbers)`` pairs, worded by the presentation layer:

    * ``strong`` (``stage``): the rep is flagged above the team's limits; the stage where their
      next-step rate is furthest above the team's, to share;
    * ``weak`` (``stage``, ``gap`` in percentage points): the stage where the rep's next-step rate
      is furthest below the team's, when at least ``gap_points`` below;
    * ``slow`` (``stage``, ``rep_days``, ``team_days``): the stage with the largest ratio of the
      rep's median days to the team's, when at least ``slow_ratio``;
    * ``followup`` (``n``): overdue follow-ups;
    * ``ok``: none of the above.

    ``rates`` is :func:`rep_vs_team`, ``times`` :func:`rep_vs_team_time`.
    """
    points: list[tuple[str, dict]] = []
    shown = readable_rates(rates)
    gap = (shown["rep_rate"] - shown["team_rate"]).to_numpy(dtype=float)
    row = summary[summary["rep"] == rep]
    known = ~np.isnan(gap)
    if len(row) and row.iloc[0]["flag"] == "above" and known.any():
        points.append(("strong", {"stage": rates["stage"].iloc[int(np.nanargmax(gap))]}))
    if known.any():
        worst = int(np.nanargmin(gap))
        # rates are ratios of counts: round so a gap of exactly 5 points is not 4.999… points
        if round(-gap[worst] * 100, 9) >= gap_points:
            points.append(("weak", {"stage": rates["stage"].iloc[worst], "gap": -gap[worst] * 100}))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.array(times["rep_value"] / times["team_value"], dtype=float)
    ratio[~np.isfinite(ratio)] = np.nan
    if (~np.isnan(ratio)).any() and round(float(np.nanmax(ratio)), 9) >= slow_ratio:
        slow = times.iloc[int(np.nanargmax(ratio))]
        points.append(("slow", {"stage": slow["stage"], "rep_days": float(slow["rep_value"]),
                                "team_days": float(slow["team_value"])}))
    if overdue:
        points.append(("followup", {"n": int(overdue)}))
    return points or [("ok", {})]
