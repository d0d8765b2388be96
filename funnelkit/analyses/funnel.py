"""Conversion analysis: the cohort funnel, the period table (seed template's Table 1) and losses.

Definitions (DESIGN.md §3):

* Cohort = deals that reached the first stage within the period P.
* ``reached[s]`` = cohort deals that reached s by as_of (any-stage rule unless ``strict``);
  ``lost_at[s]`` / ``open_at[s]`` = cohort deals lost / still open whose furthest stage is s.
* Identity, exact at every non-final stage:
  ``reached[s] = reached[s+1] + lost_at[s] + open_at[s] + skipped_at[s]``
  (``skipped_at`` is 0 unless ``strict``; at the final stage ``reached`` = won).
* ``next_step_rate[s] = reached[s+1] / reached[s]``; ``cumulative_rate[s] = reached[s] / reached[first]``.
* A step is *maturing* while most of the deals that reached s are still open there:
  ``open_at[s] / reached[s] > MATURING_OPEN_SHARE`` (0.5). Its rate is a floor that will rise, so
  reports show "maturing (N open)" instead of it. The cohort's win rate is maturing likewise when
  most of the cohort is still open.
* A step rests on *few decided* deals when fewer than ``MIN_DECIDED`` (10) of the deals that
  reached s have moved on or been lost there: ``decided[s] = reached[s+1] + lost_at[s] < 10``.
  Reports show its counts ("6 of 10 moved on, 4 open") instead of a percentage: with 4 open and 0
  lost, "60.0%" would read as a fact when every decided deal moved on. Likewise the cohort's win
  rate when fewer than 10 of its deals are won or lost.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Unpack

import numpy as np
import pandas as pd

from funnelkit.events.aggregate import deals_as_of, reach_table, stage_list
from funnelkit.config import FunnelConfig
from funnelkit.inputs.data import UNSPECIFIED_REASON, Dataset
from funnelkit.memo import reused
from funnelkit.periods import Period, parse_period
from funnelkit.results import TableResult
from funnelkit.events.scope import Filters, Scope

# More than this share of a step's deals still open → its rate is not yet a rate (see maturing_steps).
MATURING_OPEN_SHARE = 0.5
# Fewer decided deals (moved on or lost) than this → a step's rate is shown as its counts (see few_decided_steps).
MIN_DECIDED = 10


def _ratio(numerator: pd.Series | np.ndarray, denominator: pd.Series | np.ndarray) -> np.ndarray:
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


@dataclass(frozen=True, eq=False)
class CohortFunnel(TableResult):
    """Result of :func:`cohort_funnel`; reads like its ``table``."""

    table: pd.DataFrame  # stage, label, next_stage, next_label, reached, lost_at, open_at, skipped_at, next_step_rate, maturing, decided, few_decided, cumulative_rate, pct_of_previous
    period: str  # the cohort's period label
    as_of: pd.Timestamp  # exclusive time bound the cohort is seen at
    cohort_size: int  # deals that reached the first stage in the period
    median_age_days: float  # median days from reaching the first stage to as_of (NaN: empty cohort)
    open_deals: int  # cohort deals still open at as_of

    @property
    def win_maturing(self) -> bool:
        """Whether the cohort's win rate (won ÷ cohort) is still maturing: most of the cohort is open."""
        return bool(self.cohort_size) and self.open_deals > MATURING_OPEN_SHARE * self.cohort_size

    @property
    def decided(self) -> int:
        """Cohort deals won or lost by as_of (the deals the cohort win rate has been decided on)."""
        return int(self.table["reached"].iloc[-1] + self.table["lost_at"].sum()) if len(self.table) else 0

    @property
    def win_few_decided(self) -> bool:
        """Whether the cohort's win rate rests on fewer than :data:`MIN_DECIDED` won or lost deals
        (so reports give its counts, not a percentage)."""
        return bool(self.cohort_size) and self.decided < MIN_DECIDED


def cohort_funnel(
    data: Dataset,
    config: FunnelConfig,
    period: str | Period,
    *,
    strict: bool = False,
    **filters: Unpack[Filters],
) -> CohortFunnel:
    """The cohort funnel of deals that reached the first stage in ``period``, seen at ``as_of``
    (:func:`cohort_funnel_of` on a :class:`~funnelkit.events.scope.Scope` built from the arguments)."""
    scope = Scope.build(data, config, strict=strict, **filters)
    return cohort_funnel_of(scope, period)


@reused
def cohort_funnel_of(scope: Scope, period: str | Period) -> CohortFunnel:
    """The cohort funnel of the scope's deals that reached the first stage in ``period``.

    Columns: ``stage, label, next_stage, next_label, reached, lost_at, open_at, skipped_at, entered``
    (cohort deals that entered the stage itself rather than skipping it: when none did, the step out of
    it is 100% by the any-stage rule and says nothing), ``next_step_rate, maturing`` (:func:`maturing_steps`), ``decided, few_decided`` (:func:`few_decided_steps`),
    ``cumulative_rate, pct_of_previous``
    (``reached[s] / reached[s-1]``), labels in the scope's language (the final stage has no next
    stage: ``next_stage`` is None and ``maturing`` False); the result also holds the period, as_of, cohort size, open deals and the cohort's
    median age in days at as_of.
    """
    period = parse_period(period)
    stages: list[str] = scope.stages
    reach = scope.reach_columns([f"reached_{s}" for s in stages] + ["furthest_index", "skipped_out", "status"])
    as_of = scope.as_of
    first_at = reach[f"reached_{stages[0]}"]
    in_cohort = period.contains(first_at).to_numpy(dtype=bool)
    # only the three columns it counts, not a copy of every column of the cohort's rows
    n = len(stages)
    idx = reach["furthest_index"].to_numpy()[in_cohort]
    skipped = reach["skipped_out"].to_numpy(dtype=bool)[in_cohort]
    status = reach["status"][in_cohort]
    lost, open_ = ((status == s).to_numpy(dtype=bool, na_value=False) for s in ("lost", "open"))
    reached = np.array([(idx >= j).sum() for j in range(n)])
    lost_at = np.array([((idx == j) & lost & ~skipped).sum() for j in range(n)])
    open_at = np.array([((idx == j) & open_ & ~skipped).sum() for j in range(n)])
    skipped_at = np.array([((idx == j) & skipped).sum() for j in range(n)])
    # entered s: its furthest stage is s, or it reached s before the next stage (a deal that skipped s
    # "reaches" it when it enters a later one: at the same time as the next stage)
    times = [reach[f"reached_{s}"].to_numpy()[in_cohort] for s in stages]
    entered = np.array([((idx == j) | ((idx > j) & (times[j] < times[j + 1]) if j + 1 < n else idx == j)).sum()
                        for j in range(n)])
    # A won deal that broke the strict chain is "skipped"; otherwise it sits at the final stage.
    labels = scope.labels
    out = pd.DataFrame(
        {
            "stage": stages,
            "label": [labels.get(s, s) for s in stages],
            "reached": reached,
            "lost_at": lost_at,
            "open_at": open_at,
            "skipped_at": skipped_at,
            "entered": entered,
        }
    )
    out.insert(2, "next_stage", stages[1:] + [None])
    out.insert(3, "next_label", [labels.get(s, s) for s in stages[1:]] + [None])
    out["next_step_rate"] = _ratio(np.append(reached[1:].astype(float), np.nan), reached)
    out["maturing"] = maturing_steps(reached, open_at)
    out["decided"] = decided_counts(reached, lost_at)
    # a maturing step reads "maturing (N open)" first: flagged few-decided too, the note under the
    # table explained a "too few decided" mark no row carried
    out["few_decided"] = few_decided_steps(reached, lost_at) & ~out["maturing"].to_numpy(dtype=bool)
    out["cumulative_rate"] = _ratio(reached, np.full(n, reached[0]))
    out["pct_of_previous"] = _ratio(reached, np.insert(reached[:-1].astype(float), 0, np.nan))
    ages = (as_of - first_at[in_cohort]) / pd.Timedelta(days=1)
    return CohortFunnel(
        out, period=period.label, as_of=as_of, cohort_size=int(reached[0]),
        median_age_days=float(ages.median()) if len(ages) else float("nan"),
        open_deals=int(open_at.sum()),
    )


def maturing_steps(reached: np.ndarray | pd.Series, open_at: np.ndarray | pd.Series,
                   share: float = MATURING_OPEN_SHARE) -> np.ndarray:
    """Per stage s, whether the step s → s+1 is still maturing: ``open_at[s] > share × reached[s]``
    (most deals that reached s have not yet moved on or been lost). The final stage has no step and
    is never maturing. E.g. reached 2, open 2 → maturing (its 0% would only mean "not decided yet");
    reached 23, open 8 → not maturing."""
    reached = np.asarray(reached, dtype=float)
    open_at = np.asarray(open_at, dtype=float)
    out = (reached > 0) & (open_at > share * reached)
    if len(out):
        out[-1] = False
    return out


def few_decided_steps(reached: np.ndarray | pd.Series, lost_at: np.ndarray | pd.Series,
                      minimum: int = MIN_DECIDED) -> np.ndarray:
    """Per stage s, whether the step s → s+1 rests on too few decided deals to read as a rate:
    ``decided[s] = reached[s+1] + lost_at[s]`` (moved on or lost there) is below ``minimum``, while
    at least one deal reached s. The final stage has no step and is never flagged. E.g. reached 10,
    moved on 6, lost 0, open 4 → decided 6 → True (its 60% is a floor drawn from six deals that all
    moved on); reached 23, moved on 12, lost 3 → decided 15 → False."""
    out = (np.asarray(reached) > 0) & (decided_counts(reached, lost_at) < minimum)
    if len(out):
        out[-1] = False
    return out


def decided_counts(reached: np.ndarray | pd.Series, lost_at: np.ndarray | pd.Series) -> np.ndarray:
    """Per stage s, the deals decided at the step s → s+1: ``reached[s+1] + lost_at[s]`` (0 at the
    final stage, which has no step)."""
    reached = np.asarray(reached, dtype=int)
    lost_at = np.asarray(lost_at, dtype=int)
    return np.append(reached[1:] + lost_at[:-1], 0) if len(reached) else reached


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


def _top_reasons(reasons: pd.Series, k: int = 3) -> tuple[tuple[str, int], ...]:
    counts = reasons.astype("string").fillna(UNSPECIFIED_REASON).value_counts()  # text: see loss_reasons_of
    return tuple((str(r), int(n)) for r, n in counts.head(k).items())


@dataclass(frozen=True, eq=False)
class PeriodTable(TableResult):
    """Result of :func:`period_table`; reads like its ``table``."""

    table: pd.DataFrame  # stage, label, count, new, lost, conversion, exits, advanced, main_loss_reasons, few_decided
    period: str
    as_of: pd.Timestamp


def period_table(
    data: Dataset,
    config: FunnelConfig,
    period: str | Period,
    **filters: Unpack[Filters],
) -> PeriodTable:
    """The seed template's Table 1 for ``period`` (:func:`period_table_of` on a scope built from
    the arguments)."""
    scope = Scope.build(data, config, **filters)
    return period_table_of(scope, period)


@reused
def period_table_of(scope: Scope, period: str | Period) -> PeriodTable:
    """The seed template's Table 1 (销售漏斗阶段统计表) for ``period``.

    Per stage s:

    * ``count`` — deals in s at any time during P (a stay ``[entered, exited)`` overlapping P; a
      deal still open stays until as_of; for the final stage, deals that entered it during P);
    * ``new`` — deals that entered s during P;
    * ``lost`` — deals lost during P whose furthest stage is the stage before s (row s shows the
      leak between s−1 and s, as the template lays it out), with ``main_loss_reasons``: the three
      most frequent reasons as ``(reason, deals)`` pairs, most frequent first;
    * ``conversion`` — the step's rate in P: of the stays in s−1 that ended during P, the share
      that moved on, ``advanced / (advanced + not advanced)`` where not advanced = lost or moved
      back (in [0, 1]; NaN when no stay in s−1 ended in P). Also ``exits`` (the denominator) and
      ``advanced``. A ratio of stage counts is not used: it exceeds 1 once deals pile up in a later
      stage. When every deal is decided in P it equals ``count[s] / count[s−1]`` (the seed's
      100 / 60 / 30 / 15 / 5 → 60%, 50%, 50%, 33.3%). ``few_decided``: fewer than
      :data:`MIN_DECIDED` exits (but some), so reports show the counts instead of the rate.

    A stay ``[entered, exited)`` counts in P when it overlaps P, and also when it starts in P and
    has zero length (a deal that passed through s at the first instant of P was in s during P), so
    ``count ≥ new`` always.
    """
    period = parse_period(period)
    as_of = scope.as_of
    reach = scope.reach
    stages: list[str] = scope.stages
    stays = scope.stays
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
    labels = scope.labels
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
    out["few_decided"] = (out["exits"] > 0) & (out["exits"] < MIN_DECIDED)
    return PeriodTable(out, period=period.label, as_of=as_of)


def loss_reasons(
    data: Dataset,
    config: FunnelConfig,
    period: str | Period | None = None,
    **filters: Unpack[Filters],
) -> pd.DataFrame:
    """Lost deals by stage and reason (:func:`loss_reasons_of` on a scope built from the arguments)."""
    scope = Scope.build(data, config, **filters)
    return loss_reasons_of(scope, period)


@reused
def loss_reasons_of(scope: Scope, period: str | Period | None = None) -> pd.DataFrame:
    """Lost deals by the stage they were lost at and their reason (blank → ``unspecified``).

    Counts deals closed as lost during ``period`` (all time when ``None``). Columns ``stage,
    label, reason, deals, amount, share_of_stage``, sorted by stage order then count.
    """
    reach = scope.reach
    lost = reach[reach["status"] == "lost"]
    if period is not None:
        lost = lost[parse_period(period).contains(lost["closed_at"])]
    # as text: an engine's categorical takes no new value and counts categories no lost deal has
    lost = lost.assign(reason=lost["lost_reason"].astype("string").fillna(UNSPECIFIED_REASON))
    table = (
        lost.groupby(["furthest_index", "furthest_stage", "reason"], observed=True)
        .agg(deals=("deal_id", "size"), amount=("amount", "sum"))
        .reset_index()
        .rename(columns={"furthest_stage": "stage"})
        .astype({"stage": "string"})  # text in the result, as the reason (the reach holds a categorical)
    )
    table["share_of_stage"] = table["deals"] / table.groupby("stage")["deals"].transform("sum")
    labels = scope.labels
    table.insert(2, "label", table["stage"].map(labels))
    table = table.sort_values(["furthest_index", "deals"], ascending=[True, False])
    return table.drop(columns="furthest_index").reset_index(drop=True)


def team_period_grid(scope: Scope, periods: list[str]) -> pd.DataFrame:
    """Cohort funnels for every team × period of the scope, stacked (tidy), from its one reach table.

    Columns: ``team, period`` plus the :func:`cohort_funnel` columns.
    """
    frames = []
    for team in sorted(scope.reach["team"].dropna().unique()):
        team_scope = scope.narrow(team=team)
        for period in periods:
            funnel = cohort_funnel_of(team_scope, period)
            frames.append(funnel.assign(team=team, period=parse_period(period).label))
    out = pd.concat(frames, ignore_index=True)
    return out[["team", "period"] + [c for c in out.columns if c not in ("team", "period")]]


def months_in(data: Dataset) -> list[str]:
    """Every calendar month from the first deal's creation to the as-of date, as ``YYYY-MM``."""
    start = data.deals["created_at"].min()
    end = data.as_of - pd.Timedelta(microseconds=1)
    return [p.strftime("%Y-%m") for p in pd.period_range(start, end, freq="M")]


__all__ = [
    "CohortFunnel", "MATURING_OPEN_SHARE", "MIN_DECIDED", "PeriodTable", "biggest_leak", "cohort_funnel", "cohort_funnel_of",
    "deals_as_of", "decided_counts", "few_decided_steps", "loss_reasons",
    "loss_reasons_of", "maturing_steps", "months_in", "period_table", "period_table_of", "reach_table", "stage_list", "team_period_grid",
]
