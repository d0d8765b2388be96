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

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from funnelkit.aggregate import deals_as_of, filter_scope, reach_table
from funnelkit.config import FunnelConfig
from funnelkit.data import Dataset
from funnelkit.funnel import cohort_funnel
from funnelkit.periods import Period, parse_period
from funnelkit.sales import sales_metrics
from funnelkit.sensitivity import wilson_interval

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


def rep_window(period: Period, window_months: int | None) -> Period:
    """The comparison window: the period itself, or the ``window_months`` months ending with it."""
    if not window_months:
        return period
    start = period.end - pd.DateOffset(months=window_months)
    return Period(f"{start:%Y-%m}…{period.label}", start, period.end, window_months)


def rep_summary(
    data: Dataset,
    config: FunnelConfig,
    period: str | Period,
    as_of: pd.Timestamp | None = None,
    team: str | None = None,
    pipeline: str | None = None,
    window_months: int | None = 12,
    min_volume: int | None = None,
    stays: pd.DataFrame | None = None,
    plan: pd.DataFrame | None = None,
    reach: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per rep (of ``team``, or of all teams).

    Rates are measured over ``window_months`` ending with ``period`` (the period alone when
    ``None``), so small samples are not overread. Columns: ``rep, team, deals`` and ``reached_<stage>``
    / ``rate_<stage>`` (cohort funnel of deals entering in the window; rate = next-step rate),
    ``closed, won, win_rate, win_rate_low, win_rate_high, value_win_rate, cycle_median,
    velocity_per_day, open_pipeline, weighted_pipeline``, ``tis_<stage>`` (KM median days in stage, when
    ``stays`` is given), ``overdue`` (when a follow-up ``plan`` is given), ``shrunk_win_rate``,
    ``rank`` (by the shrunk rate, among reps with at least ``min_volume`` closed deals; NA = too few
    closed deals to rank, the rep is still listed) and ``flag`` (above / below / within the team's
    99.8% funnel limits). ``min_volume`` defaults to ``config.reps.min_volume`` (params).
    ``attrs['team_rate']`` holds the team win rate θ0. ``reach`` may pass a :func:`reach_table`
    computed at the same ``as_of`` to reuse it.
    """
    period = parse_period(period)
    min_volume = config.reps.min_volume if min_volume is None else min_volume
    window = rep_window(period, window_months)
    as_of = as_of if as_of is not None else data.as_of
    if reach is None:
        reach = reach_table(data, config, as_of=as_of, pipeline=pipeline, team=team)
    else:
        reach = filter_scope(reach, team=team, pipeline=pipeline)
    stages: list[str] = reach.attrs["stages"]
    metrics = sales_metrics(data, window, as_of=as_of, by="rep", team=team, pipeline=pipeline)
    teams = deals_as_of(data.deals, as_of).groupby("rep")["team"].first()
    rows = []
    for rep in metrics["rep"]:
        rep_reach = reach[reach["rep"] == rep]
        funnel = cohort_funnel(rep_reach, config, window)
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
        from funnelkit.timing import time_in_stage

        medians = time_in_stage(stays[stays["rep"].isin(out["rep"])], by="rep")
        wide = medians.pivot(index="rep", columns="stage", values="median").add_prefix("tis_")
        out = out.merge(wide, left_on="rep", right_index=True, how="left")
    if plan is not None:
        out["overdue"] = out["rep"].map(plan[plan["overdue"]].groupby("rep").size()).fillna(0).astype(int)
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
    out.attrs.update(team_rate=float(theta), window=window.label, min_volume=min_volume, stages=stages,
                     currency=config.currency)
    return out
