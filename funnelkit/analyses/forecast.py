"""History-based forecast of open deals, beside the CRM-probability (weighted pipeline) one, and how
well the CRM probabilities match what actually happened (calibration).

Definitions (all at the scope's as-of date):

* Historical win rate from stage s: of the *closed* deals that reached s (any-stage rule, see
  :func:`funnelkit.events.aggregate.reach_table`), the share won: ``p_s = won_s / (won_s + lost_s)``, with
  a Wilson score interval ``[L_s, U_s]`` at the configured confidence.
* History-based forecast = ``Σ amount_i × p_{stage_i}`` over open deals, where ``stage_i`` is the
  deal's current stage. It is an expected won value, like the CRM one
  (``Σ amount_i × win_probability_i``).
* Its interval is ``[Σ amount_i × L_{stage_i}, Σ amount_i × U_{stage_i}]``: the stage bounds added
  up, not combined as independent errors. Stage cohorts overlap (a deal that reached negotiation is
  in every earlier stage's cohort), so their errors move together and adding the bounds is the
  honest choice. The interval covers the uncertainty of the historical rates, not which deals will
  close.
* The two forecasts *differ* when the CRM forecast lies outside the history interval, both taken
  over the same deals (open, with an amount, a current stage whose rate is known and a CRM
  probability).
* Calibration by probability band: closed deals grouped by their recorded CRM probability
  (bands from ``params/forecast.yaml``); per band the mean probability against the actual win rate
  with its Wilson interval. The probability is the one in the data: a CRM that sets it to 100% on
  winning makes this table look perfect, so export the probability before closing where you can.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from funnelkit.config import StrictModel, load_params
from funnelkit.results import ResultDisplay
from funnelkit.analyses.sales import known_sum, probability
from funnelkit.events.scope import Scope
from funnelkit.analyses.sensitivity import wilson_interval


class ForecastSettings(StrictModel):
    """``params/forecast.yaml``: probability band edges (fractions from 0 to 1) and the confidence
    of the intervals."""

    bands: list[float] = Field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], min_length=2)
    confidence: float = Field(default=0.95, gt=0, lt=1)

    @field_validator("bands")
    @classmethod
    def _edges(cls, edges: list[float]) -> list[float]:
        if edges[0] != 0 or edges[-1] != 1:
            raise ValueError("band edges must start at 0 and end at 1")
        if any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError("band edges must increase")
        return edges


def load_forecast_settings(path: str | None = None) -> ForecastSettings:
    """Load and validate ``params/forecast.yaml`` (or ``path``)."""
    return load_params(ForecastSettings, "forecast.yaml", path)


def stage_win_rates(reach: pd.DataFrame, stages: list[str], confidence: float = 0.95) -> pd.DataFrame:
    """Historical win rate from each stage, from closed deals: for stage s, ``closed`` = deals in
    ``reach`` (:attr:`funnelkit.events.scope.Scope.reach`) with status won or lost and a ``reached_<s>``
    time, ``won`` = those won, ``rate = won / closed`` with its Wilson interval ``low``–``high``
    (all NaN when no closed deal reached s: unknown, not 0). Columns ``stage, closed, won, rate,
    low, high``, in ``stages`` order."""
    closed = reach[reach["status"].isin(["won", "lost"])]
    won = closed["status"] == "won"
    rows = []
    for stage in stages:
        reached = closed[f"reached_{stage}"].notna()
        n, k = int(reached.sum()), int((reached & won).sum())
        low, high = wilson_interval(k, n, confidence)
        rows.append({"stage": stage, "closed": n, "won": k, "rate": k / n if n else np.nan, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["stage", "closed", "won", "rate", "low", "high"])


@dataclass(frozen=True, eq=False)
class Forecast(ResultDisplay):
    """Result of :func:`history_forecast`.

    ``by_stage``: per current stage (``stages`` order, stages with open deals), ``open`` deals,
    ``open_amount``, ``crm_probability`` (mean CRM probability of those deals), the stage's history
    (``closed``, ``won``, ``rate``, ``low``, ``high``), ``crm_forecast`` and ``history_forecast``
    (with ``history_low`` / ``history_high``). Totals over all open deals: ``crm``, ``history``,
    ``history_low``, ``history_high``; ``crm_probability`` (mean over open deals) and
    ``closed_win_rate`` (won ÷ closed among all closed deals in the history). ``unknown_deals`` /
    ``unknown_amount``: open deals the history cannot weight (no current stage, or no closed deal
    reached it). The comparison over the same deals: ``crm_common``, ``history_common_low``,
    ``history_common_high``; ``differs`` is True when ``crm_common`` is outside that interval.
    """

    by_stage: pd.DataFrame
    crm: float
    history: float
    history_low: float
    history_high: float
    crm_probability: float
    closed_win_rate: float
    closed: int
    unknown_deals: int
    unknown_amount: float
    crm_common: float
    history_common: float
    history_common_low: float
    history_common_high: float
    confidence: float

    @property
    def differs(self) -> bool:
        """The CRM forecast lies outside the history-based interval (over the deals both weight)."""
        return bool(pd.notna(self.crm_common) and pd.notna(self.history_common_low)
                    and not self.history_common_low <= self.crm_common <= self.history_common_high)

    @property
    def ratio(self) -> float:
        """CRM forecast ÷ history-based forecast over the same deals (NaN when the latter is 0)."""
        return self.crm_common / self.history_common if self.history_common else np.nan


def history_forecast(open_deals: pd.DataFrame, rates: pd.DataFrame, stages: list[str],
                     confidence: float = 0.95) -> Forecast:
    """The history-based forecast of ``open_deals`` (``deal_id, stage, amount, win_probability``;
    :attr:`funnelkit.events.scope.Scope.open_deals`) with the stage rates of :func:`stage_win_rates`,
    beside the CRM-probability forecast; definitions and the interval in the module docstring."""
    by_rate = rates.set_index("stage")
    deals = open_deals.assign(
        crm_p=probability(open_deals["win_probability"]) if len(open_deals) else pd.Series(dtype=float),
        rate=open_deals["stage"].map(by_rate["rate"]), low=open_deals["stage"].map(by_rate["low"]),
        high=open_deals["stage"].map(by_rate["high"]))
    amount = deals["amount"]
    deals = deals.assign(crm_w=amount * deals["crm_p"], hist_w=amount * deals["rate"],
                         hist_lo=amount * deals["low"], hist_hi=amount * deals["high"])
    grouped = deals.groupby("stage")
    by_stage = pd.DataFrame({
        "open": grouped.size(), "open_amount": grouped["amount"].agg(known_sum),
        "crm_probability": grouped["crm_p"].mean(),
        "crm_forecast": grouped["crm_w"].agg(known_sum), "history_forecast": grouped["hist_w"].agg(known_sum),
        "history_low": grouped["hist_lo"].agg(known_sum), "history_high": grouped["hist_hi"].agg(known_sum),
    })
    by_stage = by_stage.reindex([s for s in stages if s in by_stage.index]).rename_axis("stage").reset_index()
    by_stage = by_stage.merge(rates, on="stage", how="left")
    by_stage = by_stage[["stage", "open", "open_amount", "crm_probability", "closed", "won", "rate", "low", "high",
                         "crm_forecast", "history_forecast", "history_low", "history_high"]]

    unknown = deals["rate"].isna()
    common = deals[deals["rate"].notna() & deals["crm_p"].notna() & amount.notna()]
    all_closed = rates["closed"].iloc[0] if len(rates) else 0  # every closed deal reached the first stage
    all_won = rates["won"].iloc[0] if len(rates) else 0
    return Forecast(
        by_stage=by_stage, crm=known_sum(deals["crm_w"]), history=known_sum(deals["hist_w"]),
        history_low=known_sum(deals["hist_lo"]), history_high=known_sum(deals["hist_hi"]),
        crm_probability=float(deals["crm_p"].mean()) if deals["crm_p"].notna().any() else np.nan,
        closed_win_rate=all_won / all_closed if all_closed else np.nan, closed=int(all_closed),
        unknown_deals=int(unknown.sum()), unknown_amount=float(amount[unknown].sum()),
        crm_common=known_sum(common["crm_w"]) if len(common) else np.nan,
        history_common=known_sum(common["hist_w"]) if len(common) else np.nan,
        history_common_low=known_sum(common["hist_lo"]) if len(common) else np.nan,
        history_common_high=known_sum(common["hist_hi"]) if len(common) else np.nan,
        confidence=confidence,
    )


def forecast_of(scope: Scope, settings: ForecastSettings | None = None, history: Scope | None = None) -> Forecast:
    """:func:`history_forecast` of ``scope``'s open deals, with stage rates from the closed deals of
    ``history`` (default: ``scope`` itself; a rep report passes the team's scope, whose history is
    larger)."""
    settings = settings or load_forecast_settings()
    source = history or scope
    rates = stage_win_rates(source.reach, source.stages, settings.confidence)
    return history_forecast(scope.open_deals, rates, scope.stages, settings.confidence)


def band_labels(edges: list[float]) -> list[str]:
    """``[0, .2, .4] → ['0–20%', '20–40%']`` (a band holds its lower edge; the last holds 100%)."""
    return [f"{a * 100:g}–{b * 100:g}%" for a, b in zip(edges, edges[1:])]


def calibration_by_band(deals: pd.DataFrame, edges: list[float], confidence: float = 0.95) -> pd.DataFrame:
    """CRM probability against the actual win rate per probability band, from closed deals.

    ``deals`` has ``status`` and ``win_probability`` (:attr:`funnelkit.events.scope.Scope.deals`); a deal
    is in band ``[edges[j], edges[j+1])`` (the last band includes 1). Per band: ``closed`` deals,
    ``won``, ``crm_probability`` (their mean probability), ``win_rate = won / closed`` with its
    Wilson interval ``low``–``high`` (NaN, not 0, for a band without closed deals), and ``open``
    deals now in the band. Closed deals without a probability are left out
    (:func:`missing_probabilities` counts them)."""
    p = probability(deals["win_probability"]) if len(deals) else pd.Series(dtype=float)
    band = pd.cut(p, bins=edges, right=False, labels=False, include_lowest=True)
    band = band.where(~(p == edges[-1]), len(edges) - 2)  # 100% belongs to the last band
    closed = deals["status"].isin(["won", "lost"])
    won = deals["status"] == "won"
    rows = []
    for j, label in enumerate(band_labels(edges)):
        here = band == j
        n, k = int((here & closed).sum()), int((here & closed & won).sum())
        low, high = wilson_interval(k, n, confidence)
        rows.append({"band": label, "closed": n, "won": k,
                     "crm_probability": float(p[here & closed].mean()) if n else np.nan,
                     "win_rate": k / n if n else np.nan, "low": low, "high": high,
                     "open": int((here & (deals["status"] == "open")).sum())})
    return pd.DataFrame(rows, columns=["band", "closed", "won", "crm_probability", "win_rate", "low", "high", "open"])


def missing_probabilities(deals: pd.DataFrame) -> int:
    """Closed deals without a CRM probability (left out of :func:`calibration_by_band`)."""
    closed = deals["status"].isin(["won", "lost"])
    return int((closed & pd.to_numeric(deals["win_probability"], errors="coerce").isna()).sum())


__all__ = ["Forecast", "ForecastSettings", "band_labels", "calibration_by_band", "forecast_of", "history_forecast",
           "load_forecast_settings", "missing_probabilities", "stage_win_rates"]
