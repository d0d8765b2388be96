"""Presentation of the opportunities report and of the forecast, in the report language.

* The follow-up list (:func:`follow_up_table`) is the one table both the report and the plan
  workbook show: the report styles it (tier badges, a total row), ``funnelkit score --out`` writes
  it with the same headers (:func:`follow_up_export`).
* Tier names are shown as badges: ``<span class="fk-badge fk-tier-<key>">name</span>``, coloured by
  ``report.css`` (classes, not inline styles: the page's Content-Security-Policy allows only its
  own stylesheet).
* The forecast section: both forecasts with the history-based interval, the caveat when they
  differ, and the calibration tables by stage and by probability band.
"""
from __future__ import annotations

import html
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from funnelkit.analyses.forecast import Forecast
from funnelkit.analyses.opportunities import follow_up_total
from funnelkit.presentation.present import Text, cadence, fmt_money, fmt_pct, md_escape, shown_rows, styled, tier_labels

FOLLOW_UP_COLUMNS = ["deal_id", "customer", "rep", "stage", "tier", "amount", "owner", "cadence", "next_action",
                     "next_due", "days_overdue"]


def follow_up_table(plan: pd.DataFrame, text: Text, labels: dict[str, str]) -> pd.DataFrame:
    """The follow-up list from :func:`funnelkit.analyses.playbook.follow_up_plan`, in its order (most days
    overdue first, then the largest amount), worded in the report language: columns
    :data:`FOLLOW_UP_COLUMNS` (``next_action`` = the playbook's actions for the deal's current
    stage, or its tier's actions where the playbook has none for the stage, e.g. leads;
    ``coverage`` appended when the plan has it). Tier and stage show their names."""
    tiers = tier_labels(text)
    table = plan.assign(stage=plan["stage"].map(lambda s: labels.get(s, s)),
                        tier=plan["tier"].map(lambda t: tiers.get(t, t)),
                        cadence=cadence(plan, text),
                        next_action=plan["stage_actions"].where(plan["stage_actions"].fillna("") != "", plan["tier_actions"]),
                        next_due=plan["next_due"].dt.strftime("%Y-%m-%d"))
    columns = FOLLOW_UP_COLUMNS + (["coverage"] if "coverage" in plan else [])
    return table[columns].reset_index(drop=True)


def follow_up_export(table: pd.DataFrame, text: Text) -> pd.DataFrame:
    """:func:`follow_up_table` with the headers the report shows, for the plan workbook."""
    return table.rename(columns={c: text.column(c) for c in table.columns})


def badge(name: Any, key: str) -> str:
    """``<span class="fk-badge fk-tier-high">High</span>``; the name is escaped."""
    return f'<span class="fk-badge fk-tier-{html.escape(key, quote=True)}">{html.escape(str(name))}</span>'


def with_badges(style: Styler, text: Text, column: str = "tier") -> Styler:
    """``style`` with the tier names in ``column`` shown as badges (other cells of it, such as a
    total row's empty cell, stay as they are)."""
    keys = {name: key for key, name in tier_labels(text).items()}
    header = text.column(column)
    if header not in style.data:
        return style
    return style.format(lambda v: badge(v, keys[v]) if v in keys else html.escape("" if pd.isna(v) else str(v)),
                        subset=[header], escape=None)


def follow_up_styled(table: pd.DataFrame, text: Text, currency: str, limit: int = 60,
                     rest_key: str | None = "rows_in_plan_file", rep_report: bool = False) -> tuple[Styler, Any]:
    """The follow-up list for the report: at most ``limit`` rows (the note saying how many of how
    many are shown, else ``None``), then a total row over ALL rows (deals, Σ amount), tiers as badges.
    In a rep's report (``rep_report``: its title names the rep) the rep column is left out: the same
    name on every row pushed the English plan of Chinese customers past a 1280-pixel page."""
    if rep_report and "rep" in table:
        table = table.drop(columns="rep")
    total = follow_up_total(table)
    shown, note = shown_rows(table, limit, text, rest_key)
    total_row = {c: "" for c in table.columns} | {"deal_id": text.counted("fu_total", "deals", deals=total["deals"]),
                                                 "amount": total["amount"], "days_overdue": float("nan")}
    shown = pd.concat([shown, pd.DataFrame([total_row])], ignore_index=True)
    shown["amount"] = pd.to_numeric(shown["amount"], errors="coerce")
    shown["days_overdue"] = pd.to_numeric(shown["days_overdue"], errors="coerce")
    style = styled(shown, text, ints=("days_overdue",), money=("amount",), currency=currency)
    # the total row's cells carry fk-total (kept last when a reader sorts the table), numbers keep fk-num
    last = shown.tail(1).rename(columns={c: text.column(c) for c in shown.columns})
    numeric = {text.column(c) for c in ("amount", "days_overdue")}
    style = style.set_td_classes(pd.DataFrame([["fk-total fk-num" if c in numeric else "fk-total" for c in last.columns]],
                                              index=last.index, columns=last.columns))
    return with_badges(style, text), note


def tier_table(summary: pd.DataFrame, text: Text, currency: str, missing: dict[str, str] | None = None) -> Styler:
    """The tier table (:func:`funnelkit.analyses.scorecard.tier_summary`): tier badges, deals and their
    share, amount and its share, each share labelled by what it counts."""
    shown = summary.assign(tier=summary["tier"].map(tier_labels(text)))
    style = styled(shown[["tier", "deals", "deal_share", "amount", "value_share"]], text, ints=("deals",),
                   pct=("deal_share", "value_share"), money=("amount",), currency=currency, missing=missing)
    return with_badges(style, text)


def rate_with_interval(rate: pd.Series, low: pd.Series, high: pd.Series, text: Text) -> pd.Series:
    """``'29.4% (27.2%–31.6%)'`` per row; "no closed deals yet" where the rate is unknown."""
    return pd.Series([text("fc_no_closed") if pd.isna(r) else text("with_interval", value=fmt_pct(r), low=fmt_pct(lo),
                                                                    high=fmt_pct(hi))
                      for r, lo, hi in zip(rate, low, high)], index=rate.index, dtype=object)


def stage_actions(stages: dict[str, dict[str, str]], labels: dict[str, str], text: Text) -> tuple[Styler, str]:
    """The key actions of ``params/playbook.yaml`` per stage of this funnel (``labels``: stage key
    → label, in funnel order, the final stage left out: nothing is left to do there). A stage the
    playbook leaves out says so; playbook stages this funnel does not have are not rows but named
    in the returned Markdown sentence, the file and keys as code (empty when there are none)."""
    open_stages = list(labels)[:-1]
    rows = pd.DataFrame({"stage": [labels[s] for s in open_stages],
                         "stage_actions": [stages[s][text.language] if s in stages else text("no_stage_action")
                                           for s in open_stages]})
    unknown = [s for s in stages if s not in labels]
    if not unknown:
        return styled(rows, text), ""
    # keys and the file name are configuration, not words of the report language: code spans
    code = lambda value: "`" + str(value).replace("`", "") + "`"  # noqa: E731
    sentence = md_escape(text("playbook_unknown_stages", file="\x00file\x00", stages="\x00stages\x00"))
    note = sentence.replace("\x00file\x00", code("params/playbook.yaml")).replace(
        "\x00stages\x00", text("list_sep").join(code(s) for s in unknown))
    return styled(rows, text), note


def forecast_summary(f: Forecast, text: Text, currency: str) -> Styler:
    """Both forecasts side by side: expected won value, the history-based interval, and what each
    rests on (a history-based figure without closed deals says so instead of showing 0)."""
    from funnelkit.analyses.sales import missing_pipeline_key

    history_known = pd.notna(f.history)
    crm = fmt_money(f.crm, currency) if pd.notna(f.crm) else text(missing_pipeline_key(f.by_stage["open_amount"]))
    rows = [{"forecast_measure": text("fc_row_crm"), "forecast_value": crm,
             "forecast_interval": "",
             "forecast_basis": (text("fc_basis_crm", deals=int(f.by_stage["open"].sum()), p=f.crm_probability)
                                if pd.notna(f.crm_probability) else
                                text("fc_basis_crm_none", deals=int(f.by_stage["open"].sum())))},
            {"forecast_measure": text("fc_row_history"),
             "forecast_value": (fmt_money(f.history, currency) if history_known else
                                text("no_amounts") if f.closed else text("fc_not_available")),
             "forecast_interval": (f"{fmt_money(f.history_low, currency)} – {fmt_money(f.history_high, currency)}"
                                   if history_known else ""),
             "forecast_basis": (text("fc_basis_history", closed=f.closed, rate=f.closed_win_rate) if f.closed
                                else text("fc_no_closed"))}]
    return styled(pd.DataFrame(rows), text)


def forecast_sentences(f: Forecast, text: Text, currency: str) -> list[str]:
    """The caveat when the CRM forecast is outside the history interval, worded by which side the
    CRM is on (or the agreement line); when the history holds no lost deal, a warning that the
    history-based forecast counts every open deal as won instead; and the open deals the history
    cannot weight; nothing to compare without history."""
    lines = []
    if f.closed and f.closed_win_rate >= 1:
        # Nothing lost on record: the history weighs every open deal as won, so it can check nothing.
        lines.append(text("fc_no_losses", closed=f.closed))
    elif f.differs:
        key = ("fc_caveat_under" if f.crm_probability < f.closed_win_rate else
               "fc_caveat" if pd.notna(f.ratio) else "fc_caveat_no_ratio")  # no ratio to a history forecast of 0
        lines.append(text(key, crm_p=f.crm_probability, hist=f.closed_win_rate, ratio=f.ratio, conf=f.confidence))
    elif pd.notna(f.history_common_low):
        lines.append(text("fc_agree", conf=f.confidence))
    if f.unknown_deals:
        lines.append(text("fc_unknown", deals=f.unknown_deals, amount=fmt_money(f.unknown_amount, currency)))
    return lines


def calibration_stage_table(f: Forecast, text: Text, labels: dict[str, str], currency: str) -> Styler:
    """Per current stage: open deals and value, mean CRM probability, the closed deals that reached
    the stage and their win rate with its interval, and both forecasts."""
    t = f.by_stage
    shown = pd.DataFrame({
        "stage": t["stage"].map(lambda s: labels.get(s, s)), "open": t["open"], "open_amount": t["open_amount"],
        "crm_probability": t["crm_probability"], "closed_from_stage": t["closed"],
        "history_rate": rate_with_interval(t["rate"], t["low"], t["high"], text),
        "crm_forecast": t["crm_forecast"], "history_forecast": t["history_forecast"]})
    return styled(shown, text, ints=("open", "closed_from_stage"), pct=("crm_probability",),
                  money=("open_amount", "crm_forecast", "history_forecast"), currency=currency,
                  missing={"history_forecast": "fc_no_closed", "crm_forecast": "no_probabilities"})


def calibration_band_table(table: pd.DataFrame, text: Text) -> Styler:
    """Per CRM-probability band (:func:`funnelkit.analyses.forecast.calibration_by_band`): closed deals, won,
    mean CRM probability, actual win rate with interval ("no closed deals yet" for an empty band),
    and the open deals now in the band."""
    shown = pd.DataFrame({
        "band": table["band"], "closed": table["closed"], "won": table["won"],
        "crm_probability": table["crm_probability"],
        "actual_win_rate": rate_with_interval(table["win_rate"], table["low"], table["high"], text),
        "open_now": table["open"]})
    return styled(shown, text, ints=("closed", "won", "open_now"), pct=("crm_probability",),
                  missing={"crm_probability": "fc_no_closed"})


def value_chart_words(text: Text, currency: str) -> dict[str, str]:
    """Axis titles of :func:`funnelkit.presentation.plots.stacked_value_bars` for the open-value chart."""
    from funnelkit.presentation.present import CURRENCY_SYMBOLS

    return {"x": text("value_chart_x"), "y": text("value_chart_y", currency=CURRENCY_SYMBOLS.get(currency, currency))}


__all__ = ["FOLLOW_UP_COLUMNS", "badge", "caveat", "calibration_band_table", "calibration_stage_table", "follow_up_export",
           "follow_up_styled", "follow_up_table", "forecast_sentences", "forecast_summary", "rate_with_interval",
           "tier_table", "value_chart_words", "with_badges"]


def caveat(lines: list[str]) -> Any:
    """Sentences shown as a highlighted caveat block (escaped), or an empty block when none."""
    from IPython.display import HTML

    return HTML("".join(f'<p class="fk-caveat">{html.escape(line)}</p>' for line in lines))
