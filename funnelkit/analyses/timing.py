"""Time in stage: Kaplan–Meier summaries of stays, group comparisons and stalled deals.

Stays come from :func:`funnelkit.events.aggregate.stage_stays`. The Kaplan–Meier event is *leaving the
stage* (progress, regression or loss); a stay still open at as_of is right-censored there, so open
deals count for as long as they have been seen instead of being dropped (which would bias times
down) or treated as finished.

* Survival ``S(t)`` = share of stays still in the stage after t days, by ``scipy.stats.ecdf`` on
  ``scipy.stats.CensoredData``.
* Quantile q (median q = 0.5, p75, p90) = the first time with ``S(t) <= 1 − q``. (R's survival
  package takes the midpoint when S sits exactly at 0.5 over an interval; we take the first time.)
* Its confidence interval (Brookmeyer–Crowley, as R and lifelines report it) runs from the first
  time the *lower* band of S reaches ``1 − q`` to the first time the *upper* band does. Bands are
  pointwise log-log (Greenwood) by default.
* A quantile (or a bound) that the curve or band never reaches is ``NaN`` = **not reached**:
  too many stays are still open to say.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy import special, stats

from funnelkit.memo import reused
from funnelkit.periods import Period

QUANTILES = {"median": 0.5, "p75": 0.75, "p90": 0.9}
_TOL = 1e-12  # S(t) is a product of fractions; compare with a little slack


def _censored(days: pd.Series, censored: pd.Series) -> stats.CensoredData:
    # right_censored takes the *censored* flag, not the event flag.
    return stats.CensoredData.right_censored(days.to_numpy(dtype=float), censored.to_numpy(dtype=bool))


def _km_steps(days: np.ndarray, censored: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Kaplan–Meier estimate at each distinct time t of ``days`` (``censored``: True where the
    stay is still open): ``t``, ``S(t)``, ``n`` (stays at risk just before t) and ``d`` (stays
    that ended at t), with ``S(t) = prod over t' <= t of (n − d) / n``.

    The arithmetic of ``scipy.stats.ecdf`` step for step (so the same floats; with nothing
    censored it takes scipy's other branch, ``S = 1 − ended so far / all``), without its Python
    list of one flag per stay: tens of millions of stays at 10M deals. Ties need no order: n
    counts from a distinct time's first row, d up to its last."""
    order = np.argsort(days)
    times = days[order]
    size = times.size
    distinct = np.diff(times, prepend=-np.inf, append=np.inf) > 0
    first, last = np.flatnonzero(distinct[:-1]), np.flatnonzero(distinct[1:])
    del distinct
    if not censored.any():
        ended = last + 1  # stays ended up to and including each distinct time
        counts = np.diff(ended, prepend=0)
        return times[first], 1 - ended / size, np.concatenate(([size], size - ended[:-1])), counts
    ended = np.cumsum(~censored[order], dtype=np.int64)[last]
    at_risk = size - first
    ended_here = np.diff(ended, prepend=0)
    return times[first], np.cumprod((at_risk - ended_here) / at_risk), at_risk, ended_here


def _km_band(sf: np.ndarray, at_risk: np.ndarray, ended: np.ndarray, confidence: float,
             method: str) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise confidence band of S (Greenwood's variance), as ``scipy.stats``'
    ``confidence_interval``: ``log-log`` (exp(−exp(log(−log S) ± z·se)), se² = Σ d/(n(n−d)) /
    log(S)²) or ``linear`` (S ± z·se, se² = S²·Σ d/(n(n−d))), clipped to [0, 1]; NaN where the
    formula is undefined (S = 0 or 1 for log-log)."""
    z = special.ndtri(1 / 2 + np.asarray(confidence)[()] / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.cumsum(ended / (at_risk * (at_risk - ended)))
        if method.lower() == "log-log":
            se = np.sqrt(1 / np.log(sf) ** 2 * greenwood)
            points = np.log(-np.log(sf))
            low, high = np.exp(-np.exp(points + z * se)), np.exp(-np.exp(points - z * se))
        elif method.lower() == "linear":
            se = np.sqrt(sf ** 2 * greenwood)
            low, high = sf - z * se, sf + z * se
        else:
            raise ValueError(f"method must be 'log-log' or 'linear'; got {method!r}")
    return np.clip(low, 0, 1), np.clip(high, 0, 1)


def _km(days: pd.Series, censored: pd.Series, confidence: float, method: str) -> pd.DataFrame:
    """The KM step curve at each distinct time: ``days, survival, low, high``."""
    t, sf, at_risk, ended = _km_steps(days.to_numpy(dtype=float), censored.to_numpy(dtype=bool))
    low, high = _km_band(sf, at_risk, ended, confidence, method)
    return pd.DataFrame({"days": t, "survival": sf, "low": low, "high": high})


def _quantiles(days: np.ndarray, censored: np.ndarray, confidence: float, method: str,
               quantiles: dict[str, float]) -> dict[str, float]:
    """:func:`km_quantiles` on arrays."""
    out = {k: np.nan for name in quantiles for k in (name, f"{name}_low", f"{name}_high")}
    if len(days) == 0 or bool(censored.all()):
        return out
    times, sf, at_risk, ended = _km_steps(days, censored)
    low, high = _km_band(sf, at_risk, ended, confidence, method)

    def first_time(curve: np.ndarray, level: float) -> float:
        hit = np.flatnonzero(np.nan_to_num(curve, nan=np.inf) <= level + _TOL)
        return float(times[hit[0]]) if hit.size else np.nan

    for name, q in quantiles.items():
        level = 1 - q
        out[name] = first_time(sf, level)
        out[f"{name}_low"] = first_time(low, level)
        out[f"{name}_high"] = first_time(high, level)
    return out


def km_quantiles(
    days: pd.Series, censored: pd.Series, confidence: float = 0.95, method: str = "log-log",
    quantiles: dict[str, float] = QUANTILES,
) -> dict[str, float]:
    """Kaplan–Meier quantiles of ``days`` (default median, p75, p90) with their confidence bounds.

    Returns keys ``median, median_low, median_high, p75, …``; ``NaN`` means not reached.
    """
    return _quantiles(np.asarray(days, dtype=float), np.asarray(censored, dtype=bool), confidence, method, quantiles)


def km_curve(durations: pd.Series, event_observed: pd.Series | None = None, *, confidence: float = 0.95,
             method: str = "log-log") -> pd.DataFrame:
    """The Kaplan–Meier step curve: ``days, survival, low, high`` starting at (0, 1).

    Arguments as lifelines' ``KaplanMeierFitter.fit(durations, event_observed)``:
    ``event_observed`` is True where the stay ended (the event happened) and False where it is
    right-censored; ``None`` means every stay ended. (A stays table's ``censored`` column is the
    opposite: pass ``~stays["censored"]``.)
    """
    durations = pd.Series(durations, dtype=float)
    observed = pd.Series(True, index=durations.index) if event_observed is None else \
        pd.Series(event_observed, index=durations.index).astype(bool)
    days, censored = durations, ~observed
    start = pd.DataFrame({"days": [0.0], "survival": [1.0], "low": [1.0], "high": [1.0]})
    if len(days) == 0 or bool(censored.all()):
        return start
    return pd.concat([start, _km(days, censored, confidence, method)], ignore_index=True)


@reused
def stage_curves(stays: pd.DataFrame, stages: list[str]) -> pd.DataFrame:
    """:func:`km_curve` of each of ``stages`` that has stays, stacked: ``stage, days, survival, low, high``."""
    curves = [km_curve(group["days"], ~group["censored"]).assign(stage=stage)
              for stage in stages if len(group := stays[stays["stage"] == stage])]
    columns = ["stage", "days", "survival", "low", "high"]
    return pd.concat(curves, ignore_index=True)[columns] if curves else pd.DataFrame(columns=columns)


def entered_in(stays: pd.DataFrame, window: Period) -> pd.DataFrame:
    """The stays that started within ``window`` (a :class:`~funnelkit.periods.Period`)."""
    return stays[window.contains(stays["entered_at"])]


def check_stays(stays: object, function: str) -> None:
    """A clear ``TypeError`` when ``stays`` is not a stays table (e.g. a Dataset passed by mistake)."""
    if not isinstance(stays, pd.DataFrame) or "days" not in stays or "censored" not in stays:
        raise TypeError(f"{function} takes the stays table (a DataFrame from fk.stage_stays(data, config) or "
                        f"scope.stays); got {type(stays).__name__}")


def with_cohort(stays: pd.DataFrame) -> pd.DataFrame:
    """Add ``cohort``: the month the stay started (``YYYY-MM``)."""
    return stays.assign(cohort=stays["entered_at"].dt.strftime("%Y-%m"))


def _groups(stays: pd.DataFrame, by: str | list[str] | None) -> tuple[pd.DataFrame, list[str]]:
    keys = [by] if isinstance(by, str) else list(by or [])
    if "cohort" in keys and "cohort" not in stays:
        stays = with_cohort(stays)
    return stays, ["stage_index", "stage"] + keys if "stage_index" in stays else ["stage"] + keys


@reused
def time_in_stage(
    stays: pd.DataFrame, by: str | list[str] | None = None, confidence: float = 0.95, method: str = "log-log"
) -> pd.DataFrame:
    """Per stage (and per ``by`` group: team, rep, pipeline, ``cohort`` = entry month, …):

    * ``stays``, ``censored`` (still open at as_of) and ``events`` (left the stage);
    * Kaplan–Meier ``median``, ``p75``, ``p90`` in days, each with ``_low`` / ``_high`` bounds
      of its ``confidence`` interval (NaN = not reached);
    * ``mean_completed``: the plain mean of completed stays only, shown beside the KM figures
      because it ignores open deals and so understates how long deals sit.
    """
    check_stays(stays, "time_in_stage")
    stays, keys = _groups(stays, by)
    rows = []
    days, censored = stays["days"].to_numpy(dtype=float), stays["censored"].to_numpy(dtype=bool)
    # one sort of small group codes and, per group, its rows' positions: no copy of the stays
    # per group (at 10M deals, 22M stays: the group-by's copies were the pass's peak)
    for key, rows_of in _group_rows([stays[k] for k in keys]):
        group_days, group_censored = days[rows_of], censored[rows_of]
        done = group_days[~group_censored]  # in the stays' order: the mean's sum adds as pandas' does
        row = dict(zip(keys, key))
        row |= {"stays": len(rows_of), "censored": int(group_censored.sum()), "events": len(done)}
        row |= _quantiles(group_days, group_censored, confidence, method, QUANTILES)
        row["mean_completed"] = float(done.sum() / len(done)) if len(done) else np.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.drop(columns="stage_index") if "stage_index" in out else out


def _group_rows(columns: list[pd.Series]) -> Iterator[tuple[tuple, np.ndarray]]:
    """The groups of ``columns`` as ``groupby(columns, sort=True, observed=True)`` makes them —
    sorted (a categorical by its categories' order), only combinations present, rows with a
    missing key left out — each as (its key values, its row positions in the original order)."""
    codes, values = [], []
    for column in columns:
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes.append(column.cat.codes.to_numpy())  # a byte or two a row, already in category order
            values.append(column.cat.categories.tolist())
        elif column.dtype == np.int8 and len(column):  # a stage index: a lookup, not a hash
            present = np.flatnonzero(np.bincount(column.to_numpy().astype(np.int16) + 128, minlength=256))
            lookup = np.full(256, -1, dtype=np.int16)
            lookup[present] = np.arange(len(present))
            codes.append(lookup[column.to_numpy().astype(np.int16) + 128])
            values.append((present - 128).tolist())
        else:
            found, uniques = pd.factorize(column, sort=True)
            codes.append(found)
            values.append(uniques.tolist())
    sizes = [max(len(v), 1) for v in values]
    combos = int(np.prod(sizes, dtype=np.int64))
    code_type = np.int16 if combos < 2**15 else np.int64  # 16 bits or less: numpy's stable sort is a radix sort
    group = np.zeros(len(columns[0]) if columns else 0, dtype=code_type)
    missing = np.zeros(len(group), dtype=bool)
    for found, size in zip(codes, sizes):
        group *= size
        group += found.astype(code_type, copy=False)
        missing |= found < 0
    if missing.any():
        group[missing] = -1
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group[~missing] if missing.any() else group, minlength=combos)
    start = int(missing.sum())  # the rows with a missing key sort first (code −1)
    for combo in np.flatnonzero(counts):
        at, key = int(combo), []
        for size, names in zip(reversed(sizes), reversed(values)):
            at, index = divmod(at, size)
            key.append(names[index])
        yield tuple(reversed(key)), order[start:start + counts[combo]]
        start += counts[combo]


@reused
def cohort_medians(stays: pd.DataFrame, stages: list[str]) -> pd.DataFrame:
    """Kaplan–Meier median days in stage by entry month: one row per cohort (``YYYY-MM``), one
    column per stage of ``stages`` that has stays (NaN: not reached); empty when there are no stays."""
    table = time_in_stage(stays, by="cohort")
    if table.empty:
        return pd.DataFrame()
    grid = table.pivot(index="cohort", columns="stage", values="median")
    return grid[[s for s in stages if s in grid.columns]]


def compare_time_in_stage(stays: pd.DataFrame, stage: str, by: str) -> pd.DataFrame:
    """Log-rank tests of time in ``stage`` between the groups of column ``by``.

    Two groups give one test; more give every pair, with p-values adjusted for the false discovery
    rate (Benjamini–Hochberg, ``scipy.stats.false_discovery_control``). ``chi2`` is the usual
    log-rank statistic (scipy's z statistic squared). Columns: ``group_a, group_b, stays_a,
    stays_b, median_a, median_b, chi2, p_value, p_adjusted``.
    """
    stays, _ = _groups(stays, by)
    here = stays[stays["stage"] == stage]
    groups = {k: g for k, g in here.groupby(by, sort=True, observed=True) if len(g)}
    rows = []
    for a, b in itertools.combinations(groups, 2):
        ga, gb = groups[a], groups[b]
        if ga["censored"].all() and gb["censored"].all():
            continue
        result = stats.logrank(_censored(ga["days"], ga["censored"]), _censored(gb["days"], gb["censored"]))
        rows.append({
            "group_a": a, "group_b": b, "stays_a": len(ga), "stays_b": len(gb),
            "median_a": km_quantiles(ga["days"], ga["censored"])["median"],
            "median_b": km_quantiles(gb["days"], gb["censored"])["median"],
            "chi2": float(result.statistic) ** 2, "p_value": float(result.pvalue),
        })
    out = pd.DataFrame(rows, columns=["group_a", "group_b", "stays_a", "stays_b", "median_a", "median_b", "chi2", "p_value"])
    out["p_adjusted"] = stats.false_discovery_control(out["p_value"]) if len(out) > 1 else out["p_value"]
    return out


@reused
def stalled_deals(stays: pd.DataFrame, history: pd.DataFrame | None = None, quantile: float = 0.75) -> pd.DataFrame:
    """Open deals whose current stay exceeds the stage's historical ``quantile`` (KM, default p75).

    ``history`` gives the stays the thresholds are estimated from (default: ``stays``). Columns:
    ``deal_id, team, rep, pipeline, stage, entered_at, days, threshold_days, days_over``, longest
    overrun first. A stage whose quantile is not reached flags nobody.
    """
    check_stays(stays, "stalled_deals")
    history = stays if history is None else history
    thresholds = {}
    for stage, group in history.groupby("stage", observed=True):
        thresholds[stage] = km_quantiles(group["days"], group["censored"], quantiles={"q": quantile})["q"]
    current = stays[stays["censored"]].copy()
    # through object: mapping an Arrow string column with no thresholds would keep it a string
    current["threshold_days"] = current["stage"].astype(object).map(thresholds).astype(float)
    current["days_over"] = current["days"] - current["threshold_days"]
    stalled = current[current["days_over"] > 0]
    columns = ["deal_id", "team", "rep", "pipeline", "stage", "entered_at", "days", "threshold_days", "days_over"]
    return stalled.sort_values("days_over", ascending=False)[columns].reset_index(drop=True)


def cumulative_time(stays: pd.DataFrame) -> pd.DataFrame:
    """Total days each deal spent in each stage over all its stays (regressions add up).

    Columns ``deal_id, stage, days, stays, open`` (``open``: the deal is in that stage now).
    """
    return (
        stays.groupby(["deal_id", "stage"], observed=True)
        .agg(days=("days", "sum"), stays=("days", "size"), open=("censored", "any"))
        .reset_index()
    )
