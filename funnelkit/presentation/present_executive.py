"""The executive index's wording: key-figure cards per team and the cross-team table, from
:func:`funnelkit.analyses.executive.team_figures`, in the report language. Values are plain text; the
index template autoescapes them."""
from __future__ import annotations

from typing import Any

import pandas as pd

from funnelkit.presentation.present import Text, fmt_int, fmt_money, rate_of


def _figures(row: pd.Series, text: Text, labels: dict[str, str], currency: str) -> dict[str, str]:
    money = lambda x: fmt_money(x, currency)  # noqa: E731
    win_rate = rate_of(text, row["win_rate"], row["won"], row["closed"], "fc_no_closed")
    forecast = (text("fig_no_open_deals") if row["open_deals"] == 0 else  # not "¥0 (¥0 – ¥0)"
                text("fc_not_available") if row["history_closed"] == 0 else
                text("no_amounts") if pd.isna(row["forecast"]) else
                text("fig_forecast_value", value=money(row["forecast"]), low=money(row["forecast_low"]),
                     high=money(row["forecast_high"])))
    leak = (text("fig_no_leak") if row["leak_stage"] is None or pd.isna(row["leak_stage"]) else
            text("fig_leak_value", stage=labels.get(row["leak_stage"], row["leak_stage"]), rate=row["leak_rate"]))
    # the weighted pipeline is unknown (not "–") without open deals, amounts or CRM probabilities
    # a team with every deal closed has nothing to forecast or follow up: not "¥0" and "0" beside
    # the history forecast's "no open deals"
    crm = (text("fig_no_open_deals") if row["open_deals"] == 0 else money(row["crm_forecast"])
           if pd.notna(row["crm_forecast"]) else text("no_amounts") if pd.isna(row["open_pipeline"])
           else text("no_probabilities"))
    overdue = (text("fig_no_open_deals") if row["open_deals"] == 0 else fmt_int(row["overdue"])
               if pd.notna(row["overdue"]) else text("fig_overdue_undated")
               if row.get("overdue_unknown") == "undated" else text("fig_overdue_unscored"))
    return {"won_value": money(row["won_value"]), "win_rate": win_rate, "open_pipeline": money(row["open_pipeline"]),
            "forecast": forecast, "crm_forecast": crm, "overdue": overdue,
            "leak": leak}


CARD_FIGURES = ["won_value", "win_rate", "open_pipeline", "forecast", "overdue", "leak"]
TABLE_FIGURES = ["won_value", "win_rate", "open_pipeline", "forecast", "crm_forecast", "overdue", "leak"]


def index_figures(table: pd.DataFrame, text: Text, labels: dict[str, str], currency: str, period: str,
                  as_of: str, confidence: float) -> dict[str, Any]:
    """What the index template shows above the report grid: ``title``, ``note``, ``cards`` (per
    team: ``team`` and ``figures`` as (label, value) pairs), the comparison ``headers`` and
    ``rows`` (teams, then all teams), a ``caveat`` naming the teams whose CRM forecast is outside
    the history-based interval and those with no lost deal on record, whose history-based forecast
    counts every open deal as won (empty when neither), and ``total_note``: the all-teams forecast
    weighs by the pooled win rates, so it is not the sum of the teams' forecasts."""
    names = {k: text(f"fig_{k}") for k in TABLE_FIGURES}
    cards, rows = [], []
    for _, row in table.iterrows():
        team = text("all_teams") if row["team"] is None or pd.isna(row["team"]) else str(row["team"])
        shown = _figures(row, text, labels, currency)
        if row["team"] is not None and pd.notna(row["team"]):
            cards.append({"team": team, "figures": [(names[k], shown[k]) for k in CARD_FIGURES]})
        rows.append({"team": team, "total": row["team"] is None or pd.isna(row["team"]),
                     "cells": [shown[k] for k in TABLE_FIGURES]})
    teams = table[table["team"].notna()]
    # With no lost deal on record the history weighs every open deal as won: an upper bound, never the plan.
    no_losses = teams["history_closed"].gt(0) & teams["history_win_rate"].ge(1)
    differ = [str(t) for t in teams.loc[teams["forecast_differs"].astype(bool) & ~no_losses, "team"]]
    unlost = [str(t) for t in teams.loc[no_losses, "team"]]
    caveats = ([text("index_caveat", teams=text("list_sep").join(differ))] if differ else []) + \
              ([text("index_no_losses", teams=text("list_sep").join(unlost))] if unlost else [])
    return {"title": text("index_figures_title", period=period),
            "note": text("index_figures_note", period=period, as_of=as_of, conf=confidence),
            "compare_title": text("index_compare_title"), "cards": cards,
            "headers": [text.column("team")] + [names[k] for k in TABLE_FIGURES], "rows": rows,
            "caveat": " ".join(caveats), "total_note": text("index_all_teams_forecast"), "unavailable": ""}


def index_words(text: Text, as_of: str, generated: str, n_reports: int, n_failed: int) -> dict[str, str]:
    """The index page's fixed wording in the report language."""
    return {"title": text("index_title"),
            "subtitle": text("index_subtitle", as_of=as_of, generated=generated, n_reports=n_reports,
                             n_failed=n_failed),
            "reports": text("index_reports_title"), "period": text("index_period"), "failed": text("index_failed")}


__all__ = ["CARD_FIGURES", "TABLE_FIGURES", "index_figures", "index_words"]
