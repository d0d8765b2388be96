"""Conversion analysis: the cohort funnel, the period table (seed template's Table 1) and losses.

Definitions (DESIGN.md §3):

* Cohort = deals that reached the first stage within the period P.
* ``reached[s]`` = cohort deals that reached s by as_of (any-stage rule unless ``strict``);
  ``lost_at[s]`` / ``open_at[s]`` = cohort deals lost / still open whose furthest stage is s.
* Identity, exact at every non-final stage:
  ``reached[s] = reached[s+1] + lost_at[s] + open_at[s] + skipped_at[s]``
  (``skipped_at`` is 0 unless ``strict``; at the final stage ``reached`` = won).
* ``next_step_rate[s] = reached[s+1] / reached[s]``; ``cumulative_rate[s] = reached[s] / reached[first]``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from funnelkit.aggregate import deals_as_of, filter_scope, reach_table, stage_list, stage_stays
from funnelkit.config import FunnelConfig
from funnelkit.data import UNSPECIFIED_REASON, Dataset
from funnelkit.periods import Period, parse_period


def _ratio(numerator: pd.Series | np.ndarray, denominator: pd.Series | np.ndarray) -> np.ndarray:
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def cohort_funnel(
    data: Dataset | pd.DataFrame,
    config: FunnelConfig,
    period: str | Period,
    as_of: pd.Timestamp | None = None,
    team: str | None = None,
    rep: str | None = None,
    pipeline: str | None = None,
    strict: bool = False,
) -> pd.DataFrame:
    """The cohort funnel of deals that reached the first stage in ``period``, seen at ``as_of``.

    ``data`` is a :class:`Dataset` or a frame from :func:`reach_table` (to reuse one reach table
    for many funnels; ``as_of`` and ``strict`` then come from the table).

    Columns: ``stage, label, reached, lost_at, open_at, skipped_at, next_step_rate,
    cumulative_rate, pct_of_previous`` (``reached[s] / reached[s-1]``). ``attrs`` holds the
    period, as_of, cohort size and the cohort's median age in days at as_of.
    """
    period = parse_period(period)
    if isinstance(data, Dataset):
        reach = reach_table(data, config, as_of=as_of, strict=strict, pipeline=pipeline, team=team, rep=rep)
    else:
        reach = filter_scope(data, team, rep, pipeline)
    stages: list[str] = reach.attrs["stages"]
    as_of = reach.attrs["as_of"]
    first_at = reach[f"reached_{stages[0]}"]
    cohort = reach[period.contains(first_at)]

    n = len(stages)
    idx = cohort["furthest_index"].to_numpy()
    skipped = cohort["skipped_out"].to_numpy()
    status = cohort["status"].to_numpy()
    reached = np.array([(idx >= j).sum() for j in range(n)])
    lost_at = np.array([((idx == j) & (status == "lost") & ~skipped).sum() for j in range(n)])
    open_at = np.array([((idx == j) & (status == "open") & ~skipped).sum() for j in range(n)])
    skipped_at = np.array([((idx == j) & skipped).sum() for j in range(n)])
    # A won deal that broke the strict chain is "skipped"; otherwise it sits at the final stage.
    labels = config.stage_labels(pipeline if pipeline else None)
    out = pd.DataFrame(
        {
            "stage": stages,
            "label": [labels.get(s, s) for s in stages],
            "reached": reached,
            "lost_at": lost_at,
            "open_at": open_at,
            "skipped_at": skipped_at,
        }
    )
    out["next_step_rate"] = _ratio(np.append(reached[1:].astype(float), np.nan), reached)
    out["cumulative_rate"] = _ratio(reached, np.full(n, reached[0]))
    out["pct_of_previous"] = _ratio(reached, np.insert(reached[:-1].astype(float), 0, np.nan))
    ages = (as_of - first_at[period.contains(first_at)]) / pd.Timedelta(days=1)
    out.attrs.update(
        period=period.label, as_of=as_of, cohort_size=int(reached[0]),
        median_age_days=float(ages.median()) if len(ages) else float("nan"),
        open_deals=int(open_at.sum()),
    )
    return out


def biggest_leak(funnel: pd.DataFrame) -> pd.Series | None:
    """The stage with the highest loss rate ``lost_at[s] / reached[s]`` among non-final stages.

    Loss rate rather than next-step rate, so a young cohort's open deals do not count as leaks.
    Returns the funnel row with an added ``loss_rate``; ``None`` for an empty cohort.
    """
    body = funnel.iloc[:-1].assign(loss_rate=lambda f: _ratio(f["lost_at"], f["reached"]))
    body = body[body["reached"] > 0]
    if body.empty or body["lost_at"].sum() == 0:
        return None
    return body.loc[body["loss_rate"].idxmax()]


def _top_reasons(reasons: pd.Series, k: int = 3) -> str:
    counts = reasons.fillna(UNSPECIFIED_REASON).value_counts()
    return "; ".join(f"{r} ({n})" for r, n in counts.head(k).items())


def period_table(
    data: Dataset,
    config: FunnelConfig,
    period: str | Period,
    as_of: pd.Timestamp | None = None,
    team: str | None = None,
    rep: str | None = None,
    pipeline: str | None = None,
) -> pd.DataFrame:
    """The seed template's Table 1 (销售漏斗阶段统计表) for ``period``.

    Per stage s:

    * ``count`` — deals in s at any time during P (a stay ``[entered, exited)`` overlapping P; a
      deal still open stays until as_of; for the final stage, deals that entered it during P);
    * ``new`` — deals that entered s during P;
    * ``lost`` — deals lost during P whose furthest stage is the stage before s (row s shows the
      leak between s−1 and s, as the template lays it out), with ``main_loss_reasons``;
    * ``conversion`` — the step's rate in P: of the stays in s−1 that ended during P, the share
      that moved on, ``advanced / (advanced + not advanced)`` where not advanced = lost or moved
      back (in [0, 1]; NaN when no stay in s−1 ended in P). Also ``exits`` (the denominator) and
      ``advanced``. A ratio of stage counts is not used: it exceeds 1 once deals pile up in a later
      stage. When every deal is decided in P it equals ``count[s] / count[s−1]`` (the seed's
      100 / 60 / 30 / 15 / 5 → 60%, 50%, 50%, 33.3%).

    A stay ``[entered, exited)`` counts in P when it overlaps P, and also when it starts in P and
    has zero length (a deal that passed through s at the first instant of P was in s during P), so
    ``count ≥ new`` always.
    """
    period = parse_period(period)
    as_of = as_of if as_of is not None else data.as_of
    reach = reach_table(data, config, as_of=as_of, pipeline=pipeline, team=team, rep=rep)
    stages: list[str] = reach.attrs["stages"]
    ids = set(reach["deal_id"])
    stays = stage_stays(data, config, as_of=as_of)
    stays = stays[stays["deal_id"].isin(ids)]
    end = stays["exited_at"].fillna(as_of)
    entered_in_period = period.contains(stays["entered_at"])
    in_period = ((stays["entered_at"] < period.end) & (end > period.start)) | entered_in_period
    count = stays[in_period].groupby("stage")["deal_id"].nunique()
    new = stays[entered_in_period].groupby("stage")["deal_id"].nunique()
    ended = stays[period.contains(stays["exited_at"])]
    exits = ended.groupby("stage")["deal_id"].size()
    advanced = ended[ended["outcome"] == "progressed"].groupby("stage")["deal_id"].size()
    final_at = reach[f"reached_{stages[-1]}"]
    final_in_period = int((period.contains(final_at) & (reach["status"] == "won")).sum())

    lost = reach[(reach["status"] == "lost") & period.contains(reach["closed_at"])]
    labels = config.stage_labels(pipeline)
    rows = []
    for j, stage in enumerate(stages):
        is_final = j == len(stages) - 1
        lost_here = lost[lost["furthest_index"] == j - 1] if j > 0 else lost.iloc[:0]
        previous = stages[j - 1] if j > 0 else None
        rows.append(
            {
                "stage": stage,
                "label": labels.get(stage, stage),
                "count": final_in_period if is_final else int(count.get(stage, 0)),
                "new": final_in_period if is_final else int(new.get(stage, 0)),
                "lost": len(lost_here),
                "exits": int(exits.get(previous, 0)),
                "advanced": int(advanced.get(previous, 0)),
                "main_loss_reasons": _top_reasons(lost_here["lost_reason"]),
            }
        )
    out = pd.DataFrame(rows)
    out.insert(5, "conversion", _ratio(out["advanced"], out["exits"]))
    out.attrs.update(period=period.label, as_of=as_of)
    return out


def loss_reasons(
    data: Dataset,
    config: FunnelConfig,
    period: str | Period | None = None,
    as_of: pd.Timestamp | None = None,
    team: str | None = None,
    rep: str | None = None,
    pipeline: str | None = None,
) -> pd.DataFrame:
    """Lost deals by the stage they were lost at and their reason (blank → ``unspecified``).

    Counts deals closed as lost during ``period`` (all time when ``None``). Columns ``stage,
    label, reason, deals, amount, share_of_stage``, sorted by stage order then count.
    """
    reach = reach_table(data, config, as_of=as_of, pipeline=pipeline, team=team, rep=rep)
    stages: list[str] = reach.attrs["stages"]
    lost = reach[reach["status"] == "lost"]
    if period is not None:
        lost = lost[parse_period(period).contains(lost["closed_at"])]
    lost = lost.assign(reason=lost["lost_reason"].fillna(UNSPECIFIED_REASON))
    table = (
        lost.groupby(["furthest_index", "furthest_stage", "reason"], observed=True)
        .agg(deals=("deal_id", "size"), amount=("amount", "sum"))
        .reset_index()
        .rename(columns={"furthest_stage": "stage"})
    )
    table["share_of_stage"] = table["deals"] / table.groupby("stage")["deals"].transform("sum")
    labels = config.stage_labels(pipeline)
    table.insert(2, "label", table["stage"].map(labels))
    table = table.sort_values(["furthest_index", "deals"], ascending=[True, False])
    return table.drop(columns="furthest_index").reset_index(drop=True)


def team_period_grid(reach: pd.DataFrame, config: FunnelConfig, periods: list[str]) -> pd.DataFrame:
    """Cohort funnels for every team × period from one reach table, stacked (tidy).

    Columns: ``team, period`` plus the :func:`cohort_funnel` columns.
    """
    frames = []
    for team in sorted(reach["team"].unique()):
        team_reach = filter_scope(reach, team=team)
        for period in periods:
            funnel = cohort_funnel(team_reach, config, period)
            frames.append(funnel.assign(team=team, period=parse_period(period).label))
    out = pd.concat(frames, ignore_index=True)
    return out[["team", "period"] + [c for c in out.columns if c not in ("team", "period")]]


def months_in(data: Dataset) -> list[str]:
    """Every calendar month from the first deal's creation to the as-of date, as ``YYYY-MM``."""
    start = data.deals["created_at"].min()
    end = data.as_of - pd.Timedelta(microseconds=1)
    return [p.strftime("%Y-%m") for p in pd.period_range(start, end, freq="M")]


__all__ = [
    "biggest_leak", "cohort_funnel", "deals_as_of", "loss_reasons", "months_in", "period_table",
    "reach_table", "stage_list", "team_period_grid",
]
