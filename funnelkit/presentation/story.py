"""Presentation of the conversion story: one label per step, maturing rates, named definitions,
window labels, the Method appendix and the weights recommendation, in the report language.

Every word comes from ``params/text.yaml``; the analyses give keys, numbers and flags
(:func:`funnelkit.analyses.funnel.maturing_steps`, :func:`funnelkit.analyses.rep_periods.rep_period_figures`,
:func:`funnelkit.analyses.recommend.recommend_weights`).
"""
from __future__ import annotations

import html
from typing import Any

import pandas as pd

from funnelkit.periods import Period
from funnelkit.presentation.present import Finding, Text, fmt_pct, fmt_pp, rate_of

# Each report's Method appendix: the text keys of its paragraphs, in order.
METHODS: dict[str, tuple[str, ...]] = {
    "conversion": ("method_cohort", "method_maturing", "method_few_decided", "method_period", "method_review",
                   "method_rollup"),
    "time_in_stage": ("method_km", "method_km_ci", "method_stalled", "method_velocity"),
    "opportunities": ("method_screening", "method_scorecard", "method_playbook"),
    "weight_sensitivity": ("method_kendall", "method_jaccard", "method_sweep", "method_dirichlet", "method_backtest",
                           "method_suggest", "method_recommend"),
    "rep_performance": ("method_windows", "method_cohort", "method_maturing", "method_few_decided", "method_rollup",
                        "method_km"),
    "fitted_scorecard": ("method_fit", "method_fit_validation", "method_backtest"),
}


def as_of_day(as_of: pd.Timestamp) -> str:
    """The last day the data covers (the exclusive bound minus an instant), ``YYYY-MM-DD``."""
    return (as_of - pd.Timedelta(microseconds=1)).strftime("%Y-%m-%d")


def step_label(text: Text, source: str, target: str) -> str:
    """The one label of a step, ``"Prospects → Opportunities"`` (``step_label`` in text.yaml)."""
    return text("step_label", source=source, target=target)


def step_rate(text: Text, rate: float, maturing: bool = False, open_n: int = 0, *,
              few: tuple[int, int] | None = None, skipped: int | None = None) -> str:
    """A step's rate: ``"52.8%"``, or ``"maturing (8 open)"`` when the step is maturing, so a
    cohort whose deals are still deciding does not read as 0%; "no deal reached it yet" when no
    deal reached the step's first stage (no rate, not 0%). ``few = (moved on, reached)`` when the
    step rests on too few decided deals (:func:`funnelkit.analyses.funnel.few_decided_steps`): its
    counts, :func:`few_decided_rate`, instead of a percentage. ``skipped`` (the deals that reached the
    step's first stage) when none of them entered it: each skipped it, so the step's 100% is no rate."""
    if skipped:
        return text("step_skipped", n=int(skipped))
    if maturing:
        return text("maturing", n=int(open_n))
    if few is not None:
        return few_decided_rate(text, few[0], few[1], open_n)
    return text("step_none") if pd.isna(rate) else fmt_pct(rate)


def few_decided_rate(text: Text, advanced: int, reached: int, open_n: int = 0) -> str:
    """A step rate withheld for too few decided deals, as its counts: ``"6 of 10 moved on, 4 open
    (too few decided)"`` (``"5 of 6 moved on (too few decided)"`` with none open)."""
    return text("few_decided_open" if open_n else "few_decided", advanced=int(advanced), reached=int(reached),
                open=int(open_n))


def few_decided_note(text: Text, flags: Any) -> list[str]:
    """The note under a table or chart with a step shown as counts (any of ``flags`` true): why
    there is no rate and what data would give one; empty otherwise."""
    from funnelkit.analyses.funnel import MIN_DECIDED

    return [text("few_decided_note", min=MIN_DECIDED)] if bool(pd.Series(flags, dtype=bool).any()) else []


def cohort_table(funnel: Any, text: Text) -> pd.DataFrame:
    """The cohort funnel's table for display: ``stage, reached, lost_at, open_at, step,
    cohort_step_rate`` (text: the rate or "maturing (N open)"), ``cumulative_rate``."""
    t = funnel.table if hasattr(funnel, "table") else funnel
    steps = [step_label(text, r.label, r.next_label) if isinstance(r.next_label, str) else "" for r in t.itertuples()]
    rates = [step_rate(text, r.next_step_rate, r.maturing, r.open_at, few=_few(r), skipped=_skipped(r))
             if isinstance(r.next_label, str) else "–" for r in t.itertuples()]
    return pd.DataFrame({"stage": t["label"], "reached": t["reached"], "lost_at": t["lost_at"], "open_at": t["open_at"],
                         "step": steps, "cohort_step_rate": rates, "cumulative_rate": t["cumulative_rate"]})


def _skipped(row: Any) -> int | None:
    """The deals that reached a cohort funnel row's stage when every one of them skipped it, else None."""
    get = row.get if isinstance(row, pd.Series) else lambda k, d=None: getattr(row, k, d)
    entered, reached = get("entered", None), get("reached", 0)
    return int(reached) if entered is not None and entered == 0 and reached > 0 else None


def _few(row: Any) -> tuple[int, int] | None:
    """``(moved on, reached)`` of a cohort funnel row whose step rests on few decided deals, else None."""
    get = row.get if isinstance(row, pd.Series) else lambda k, d=None: getattr(row, k, d)
    if not get("few_decided", False):
        return None
    return int(get("decided") - get("lost_at")), int(get("reached"))


def funnel_chart_frame(funnel: Any, text: Text) -> pd.DataFrame:
    """The cohort funnel with ``step_text`` per bar for :func:`funnelkit.presentation.plots.funnel_chart`: the
    bar of stage s carries the step into it, ``"Leads → Prospects 52.8%"`` or its maturing text."""
    t = (funnel.table if hasattr(funnel, "table") else funnel).reset_index(drop=True)
    texts = [""]
    for j in range(1, len(t)):
        before = t.iloc[j - 1]
        texts.append(text("step_rate", step=step_label(text, before["label"], t.iloc[j]["label"]),
                          rate=step_rate(text, before["next_step_rate"], before["maturing"], before["open_at"],
                                         few=_few(before), skipped=_skipped(before))))
    return t.assign(step_text=texts)


def table1(period_table: Any, text: Text) -> pd.DataFrame:
    """The seed template's Table 1 for display, its columns and row order kept (stage, count,
    period, new, lost, conversion, main loss reasons) under headers that say what each number is;
    the conversion cell names its step: ``"Leads → Prospects: 59.8%"``; the main loss reasons read
    ``"price (4); no budget (2)"`` (``"价格（4）；预算不足（2）"`` on a Chinese page)."""
    t = period_table.table if hasattr(period_table, "table") else period_table
    labels = t["label"].tolist()

    def rate(j: int) -> str:
        r = t.iloc[j]
        if pd.isna(r["conversion"]):
            return text("t1_no_exits")
        # as in the cohort funnel: a rate of a handful of exits reads as its counts
        return few_decided_rate(text, r["advanced"], r["exits"]) if r["few_decided"] else fmt_pct(r["conversion"])

    conversion = [""] + [text("step_rate", step=step_label(text, labels[j - 1], labels[j]), rate=rate(j))
                         for j in range(1, len(t))]
    return pd.DataFrame({"stage": t["label"], "t1_count": t["count"], "t1_period": period_table.period,
                         "t1_new": t["new"], "t1_lost": t["lost"], "t1_conversion": conversion,
                         "t1_main_loss_reasons": [text("clause_sep").join(text("reason_count", reason=r, n=n) for r, n in pairs)
                                                  for pairs in t["main_loss_reasons"]]})


def review_table(review: Any, text: Text) -> pd.DataFrame:
    """"What changed" for display: ``step, exits_this, rate_this, exits_previous, rate_previous,
    difference`` (a difference of rates: shown in percentage points) and ``beyond_chance`` (dropped /
    rose where the change is beyond chance; the test and its adjusted p-value are in the Method)."""
    c = review.conversions
    flags = {"drop": text("dropped"), "rise": text("rose"), "": ""}
    return pd.DataFrame({"step": [step_label(text, a, b) for a, b in zip(c["label"], c["next_label"])],
                         "exits_this": c["exits_this"], "rate_this": c["rate_this"],
                         "exits_previous": c["exits_previous"], "rate_previous": c["rate_previous"],
                         "difference": c["difference"], "beyond_chance": c["flag"].map(flags)})


def review_findings(review: Any, text: Text) -> list[Finding]:
    """One sentence per flagged step of a :class:`funnelkit.analyses.review.PeriodReview` (step label,
    before, after, difference in pp), or a no-change line, or, when no test could run, why: no
    step decided in both periods, or every step that did moved on at the same rate in both."""
    c = review.conversions
    if (c["test"] == "none").all():
        # deals did decide in both periods, every one the same way (nothing lost): no change, not "no data"
        both = (c["exits_this"] > 0) & (c["exits_previous"] > 0)
        if both.any() and (c.loc[both, "difference"] == 0).all():
            return [(text("review_no_variation", previous=review.previous), "changes")]
        return [(text("review_untestable", previous=review.previous), "changes")]
    flagged = c[c["flag"] != ""]
    if flagged.empty:
        return [(text("review_none", previous=review.previous), "changes")]
    return [(text("review_step_flag", step=step_label(text, r["label"], r["next_label"]),
                  direction=text("dropped" if r["flag"] == "drop" else "rose"), before=r["rate_previous"],
                  previous=review.previous, after=r["rate_this"], diff=fmt_pp(r["difference"], text("unit_pp"))),
             "changes") for _, r in flagged.iterrows()]


def cohort_headline(funnel: Any, period_table: Any, text: Text) -> Finding:
    """The headline's win-rate sentence under one named definition: the cohort win rate (deals
    that entered the funnel in the period, followed to the as-of date), "maturing" while most of
    the cohort is open, its counts ("too few decided") while fewer than 10 of its deals are won or lost; it also names Table 1's count of deals that became customers in the period
    (whenever they entered), so the two figures do not read as a contradiction. An empty cohort
    has no win rate: the sentence says so and why."""
    from funnelkit.analyses.funnel import MIN_DECIDED

    if not funnel.cohort_size:
        return text("empty_cohort"), "funnel"
    won = int(funnel["reached"].iloc[-1])
    values = dict(period=funnel.period, as_of=as_of_day(funnel.as_of), cohort=funnel.cohort_size, won=won,
                  win=won / funnel.cohort_size, open=funnel.open_deals, age=funnel.median_age_days)
    key = ("headline_cohort_maturing" if funnel.win_maturing else
           ("headline_cohort_few" if funnel.open_deals else "headline_cohort_few_closed") if funnel.win_few_decided
           else "headline_cohort_rate")
    sentence = text.counted(key, "open", **values, lost=funnel.decided - won, min=MIN_DECIDED)
    if period_table is not None:
        t = period_table.table if hasattr(period_table, "table") else period_table
        sentence += " " + text.counted("headline_new_customers", "n", period=funnel.period, n=int(t["new"].iloc[-1]))
    return sentence, "funnel"


def rates_differ(text: Text, period: str, as_of: pd.Timestamp) -> str:
    """The one sentence saying why a step's cohort rate and its period rate differ."""
    return text("rates_differ", period=period, as_of=as_of_day(as_of))


def window_label(text: Text, period: Period, trailing: Period) -> str:
    """A window's label in the one format of the reports: ``"2024-Q2"`` for the period itself,
    ``"12 months to 2024-Q2 (2023-07 – 2024-06)"`` for a trailing window."""
    if trailing.start == period.start and trailing.end == period.end:
        return period.label
    last = trailing.end - pd.DateOffset(months=1)
    return text("window_trailing", months=trailing.months, period=period.label, start=f"{trailing.start:%Y-%m}",
                end=f"{last:%Y-%m}")


def windows_words(text: Text, period: Period, trailing: Period) -> tuple[str, str]:
    """The text key of the windows section's note and the headline's windows line. When the
    trailing window is the report period itself (a year, with 12-month windows) both say there is
    one window, not "Windows: 2024 (the report period) and 2024"."""
    if trailing.start == period.start and trailing.end == period.end:
        return "rep_windows_note_same", text("rep_windows_line_same", period=period.label)
    return "rep_windows_note", text("rep_windows_line", period=period.label,
                                    trailing=window_label(text, period, trailing))


def rep_period_table(figures: Any, labels: dict[str, str], text: Text) -> pd.DataFrame:
    """The rep's (and team's) figures for the period beside the trailing window, one row per
    measure (win rate, closed deals, each step's cohort conversion), one column per window × who,
    headed with :func:`window_label`. Rates are text with their counts, ``"20.0% (1 of 5)"``, so a
    rate of a handful of deals reads as one; a maturing step reads "maturing (N open)", a window
    with no closed deal "no closed deals yet"."""
    windows = {"period": figures.period.label, "trailing": window_label(text, figures.period, figures.trailing)}
    whos = {"rep": figures.rep or "", "team": text("col_team_value")}
    columns = [(w, who) for w in windows for who in (("rep", "team") if figures.rep is not None else ("team",))]
    names = {c: text("window_who", who=whos[c[1]], window=windows[c[0]]) for c in columns}
    win = figures.win.set_index(["window", "who"])
    rows = [{"measure": text("measure_win_rate"),
             **{names[c]: rate_of(text, win.loc[c, "win_rate"], win.loc[c, "won"], win.loc[c, "closed"], "fc_no_closed")
                for c in columns}},
            {"measure": text("measure_closed"), **{names[c]: f"{int(win.loc[c, 'closed']):,}" for c in columns}}]
    steps = figures.steps
    for (stage, next_stage), group in steps.groupby(["stage", "next_stage"], sort=False):
        g = group.set_index(["window", "who"])
        row = {"measure": step_label(text, labels.get(stage, stage), labels.get(next_stage, next_stage))}
        for c in columns:
            r = g.loc[c]
            skipped = int(r["reached"]) if r.get("skipped", False) else None
            row[names[c]] = (step_rate(text, r["rate"], r["maturing"], r["open_at"],
                                       few=(r["advanced"], r["reached"]) if r["few_decided"] else None, skipped=skipped)
                             if r["maturing"] or r["few_decided"] or skipped else
                             rate_of(text, r["rate"], r["advanced"], r["reached"], "step_none"))
        rows.append(row)
    return pd.DataFrame(rows)


def method_section(text: Text, report: str) -> list[Any]:
    """The Method appendix closing a report: its heading and the paragraphs of :data:`METHODS`
    for ``report`` — where the statistical names and methods live, out of the body text."""
    from IPython.display import HTML

    paragraphs = "".join(f"<p>{html.escape(text(key))}</p>" for key in METHODS[report])
    return [HTML(f'<div class="fk-method"><h2 id="method">{html.escape(text("method_title"))}</h2>{paragraphs}</div>')]


def signed(x: float, decimals: int = 2) -> str:
    """A signed difference with a typographic minus: ``0.012 → '+0.01'``, ``-0.02 → '−0.02'``,
    ``0 → '0.00'``; missing → ``'–'``."""
    if pd.isna(x):
        return "–"
    rounded = round(float(x), decimals)
    sign = "+" if rounded > 0 else "−" if rounded < 0 else ""
    return f"{sign}{abs(rounded):.{decimals}f}"


def recommendation_sentence(recommendation: Any, names: dict[str, str], text: Text) -> str:
    """The weight-sensitivity report's closing recommendation (:func:`funnelkit.analyses.recommend.recommend_weights`)
    in the report language, with the AUC difference and its interval."""
    r = recommendation
    values = dict(scenario=names.get(r.scenario, r.scenario),
                  compared=names.get(r.compared, r.compared) if r.compared else "",
                  diff=signed(r.auc_difference), low=signed(r.low), high=signed(r.high))
    key = {"adopt": "recommend_adopt", "unknown": "recommend_unknown"}.get(r.action)
    if key is None:
        key = "recommend_keep" if r.compared else "recommend_keep_only"
    sentence = text(key, **values)
    return sentence + (" " + text("recommend_caution") if r.caution and r.action != "unknown" else "")


def step_bars(rates: pd.DataFrame, labels: dict[str, str], text: Text, rep: str | None) -> pd.DataFrame:
    """The rep's and the team's cohort step rates for :func:`funnelkit.presentation.plots.compare_bars`, one
    row per step labelled by :func:`step_label` (on two lines); a maturing rate, or one of too few decided
    deals, is left out (no bar), as its table reads "maturing (N open)" or the counts. ``rates`` is :func:`funnelkit.analyses.reps.rep_vs_team`; with
    ``rep=None`` (team overview) only the team's column."""
    # the step label broken after its arrow, so neighbouring tick labels do not run into each other
    index = [step_label(text, labels.get(a, a), labels.get(b, b)).replace(" → ", " →\n", 1)
             for a, b in zip(rates["stage"], rates["next_stage"])]
    from funnelkit.analyses.reps import readable_rates

    shown = readable_rates(rates)
    bars = pd.DataFrame({text("col_rep_value"): shown["rep_rate"].to_numpy(),
                         text("col_team_value"): shown["team_rate"].to_numpy()}, index=index)
    return bars if rep is not None else bars[[text("col_team_value")]]


def missing_bar_notes(rates: pd.DataFrame, labels: dict[str, str], text: Text, rep: str | None) -> list[str]:
    """The notes under :func:`step_bars`' chart naming each step whose rep (or team) bar is left out,
    why, and what data would give it: fewer than :data:`funnelkit.analyses.funnel.MIN_DECIDED` deals
    decided there (moved on or lost), or maturing (most of its deals still open). Without them a
    team bar stood alone beside a missing rep bar with nothing said. Empty when every bar is shown."""
    from funnelkit.analyses.funnel import MIN_DECIDED

    steps = pd.Series([step_label(text, labels.get(a, a), labels.get(b, b))
                       for a, b in zip(rates["stage"], rates["next_stage"])], index=rates.index, dtype=object)
    notes = []
    for who in ("rep", "team") if rep is not None else ("team",):
        maturing = rates[f"{who}_maturing"].astype(bool)
        skipped = rates[f"{who}_skipped"].astype(bool) if f"{who}_skipped" in rates else maturing & False
        maturing = maturing & ~skipped
        few = rates[f"{who}_few"].astype(bool) & ~maturing & ~skipped
        for key, flags in (("chart_no_bar_few", few), ("chart_no_bar_maturing", maturing),
                           ("chart_no_bar_skipped", skipped)):
            if flags.any():
                notes.append(text(key, bar=text(f"col_{who}_value"), steps=text("list_sep").join(steps[flags]),
                                  min=MIN_DECIDED))
    return notes


def rep_headline(figures: Any, summary: Any, rates: pd.DataFrame, stalled: int, overdue: int | str | None,
                 labels: dict[str, str], text: Text) -> list[Finding]:
    """Headline of a rep report: the trailing-window findings of :func:`funnelkit.presentation.present.rep_findings`
    with the rep's own figures for the report period beside them; for the team overview
    (``figures.rep`` None) the team's win rate in the period and the window, the reps outside the
    limits and the deals to act on."""
    from funnelkit.presentation.present import rep_findings, rep_flag_findings, work_line

    win = figures.win.set_index(["window", "who"])
    period, trailing = figures.period.label, window_label(text, figures.period, figures.trailing)
    if figures.rep is None:
        team_p, team_t = win.loc[("period", "team")], win.loc[("trailing", "team")]
        # the rep report lists the reps under its funnel plot (the conversion report's "reps" section)
        return ([(text("team_overview_line"), "funnel-plot"),
                 (text("rep_headline_team", rate=fmt_pct(team_t["win_rate"]), closed=int(team_t["closed"]),
                       window=trailing, period=period, period_rate=fmt_pct(team_p["win_rate"]),
                       period_closed=int(team_p["closed"])), "windows")]
                + [(line, "funnel-plot") for line, _ in rep_flag_findings(summary, text)]
                + [(work_line(text, stalled, overdue), "rep-deals")])
    lines = rep_findings(summary, figures.rep, rates, stalled, overdue, labels, text)
    mine, team = win.loc[("period", "rep")], win.loc[("period", "team")]
    lines.insert(1, (text.counted("rep_headline_period", "closed", rep=figures.rep, period=period, rate=fmt_pct(mine["win_rate"]),
                          closed=int(mine["closed"]), team_rate=fmt_pct(team["win_rate"])), "windows"))
    return lines


__all__ = ["rep_headline", "step_bars", "METHODS", "as_of_day", "cohort_headline", "cohort_table", "few_decided_note",
           "few_decided_rate", "funnel_chart_frame", "method_section",
           "rates_differ", "rep_period_table", "review_findings", "review_table", "recommendation_sentence",
           "step_label", "step_rate", "table1", "window_label"]
