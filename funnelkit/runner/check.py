"""``funnelkit check``: the data-quality report of a dataset, without any analysis.

:func:`check_report` returns the report as lines of text: rows read, analysed and quarantined per
table and by reason with example rows, the stages seen against those configured, the date ranges,
and the skips and regressions the stage history implies.
"""
from __future__ import annotations

import pandas as pd

from funnelkit.events.aggregate import reach_table, stage_stays
from funnelkit.config import FunnelConfig, normalise_name
from funnelkit.inputs.data import (note_parts, copy_of, DMY_PATTERN, Dataset, analysed_rows, as_of_label, describe_example, nothing_left,
                                   quarantine_counts, reason_text, top_reasons)


def _event_facts(data: Dataset) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Valid events per (pipeline, stage) (column ``n``), their first and last entry, and the
    number of distinct stages each deal entered — counted where the events are."""
    engine = getattr(data, "engine", None)
    if engine is None:
        events = data.events.assign(pipeline=data.events["deal_id"].map(data.deals.set_index("deal_id")["pipeline"]))
        counts = events.groupby(["pipeline", "stage"], observed=True).size().rename("n").reset_index()
        return counts, events["entered_at"], data.events.groupby("deal_id")["stage"].nunique()
    counts = engine.query("select d.pipeline, e.stage, count(*) as n, min(e.entered_at) as first, "
                          "max(e.entered_at) as last from fk_events e join fk_deal_keys d on d._pos = e._pos "
                          "group by d.pipeline, e.stage")
    per_deal = engine.query("select deal_id, count(distinct stage) as n from fk_events group by deal_id")
    entered = pd.concat([counts["first"], counts["last"]]).astype("datetime64[ns]")
    return counts[["pipeline", "stage", "n"]], entered, per_deal.set_index("deal_id")["n"]


def check_report(data: Dataset, config: FunnelConfig, examples: int = 3) -> list[str]:
    """The data check as printable lines (see the module docstring)."""
    lines = [f"Data check of {data.source}", ""]
    analysed = analysed_rows(data)
    q = data.quarantine
    counts = quarantine_counts(data)
    # rows a reader set aside before validation (a close written as a stage change) are in the file
    # but not in rows_in: said here, so the count matches the file a user opens
    closes = sum(int(parts[1]["rows"].replace(",", "")) for parts in map(note_parts, data.notes)
                 if parts is not None and parts[0] == "close_rows")
    for table, n_in in data.rows_in.items():
        n_q = int(counts.loc[counts["table"] == table, "rows"].sum())
        aside = (f" (and {closes:,} rows of the file that record a close, not a stage entry: see the note below)"
                 if table == "stage_events" and closes else "")
        lines.append(f"{table}: {n_in:,} rows read = {analysed[table]:,} analysed + {n_q:,} quarantined{aside}")
    if len(q):
        lines += ["", "Quarantined rows by reason:"]
        for table, reason, n in counts[["table", "reason", "rows"]].itertuples(index=False):
            group = q[(q["table"] == table) & (q["reason"] == reason)]
            lines.append(f"  {table}: {reason_text(reason, data.as_of)}: {n:,}")
            for row in group.head(examples).itertuples():
                value = "" if pd.isna(row.value) else f" value {row.value!r}"
                named = data.file_column(table, row.column) if isinstance(row.column, str) else None
                column = f"{named} ({row.column})" if named else row.column  # as the export names it
                deal = "" if pd.isna(row.deal_id) else f" (deal {row.deal_id})"  # a total line has no id
                if reason == "exact_duplicate":  # the whole row repeats one: no column or value to name
                    lines.append(f"      {row.file}, row {row.row} repeats row {copy_of(row.value)}{deal}")
                    continue
                lines.append(f"      {row.file}, row {row.row}, column {column}{value}{deal}")
    for note in data.notes:
        lines.append(f"Note: {note}")

    lines += ["", "Stages seen against those configured:"]
    stage_counts, entered, stages_per_deal = _event_facts(data)
    for pipeline, group in stage_counts.groupby("pipeline", sort=True):
        counts = group.set_index("stage")["n"]
        # a drafted key (stage_1) says nothing on its own: its label is the export's stage value
        labels = config.stage_labels(pipeline)
        named = {s: f" ({labels[s]})" if normalise_name(labels.get(s, s)) != normalise_name(s) else "" for s in labels}
        row = ", ".join(f"{s}{named.get(s, '')} {int(counts.get(s, 0)):,}" for s in config.stage_keys(pipeline))
        missing = [s for s in config.stage_keys(pipeline) if s not in counts]
        lines.append(f"  {pipeline}: {row}" + (f"; never seen: {', '.join(missing)}" if missing else ""))

    lines += ["", "Date ranges:"]
    for name, values in (("created_at", data.deals["created_at"]), ("closed_at", data.deals["closed_at"]),
                         ("entered_at", entered)):
        if values.notna().any():
            lines.append(f"  {name}: {values.min():%Y-%m-%d} to {values.max():%Y-%m-%d}")
    lines.append(f"  as-of date: {as_of_label(data.as_of)} (the analysis counts everything up to the end of it; "
                 "later dates are quarantined)")

    if len(data.deals):
        per_pipeline = []
        for pipeline in data.deals["pipeline"].unique():
            reach = reach_table(data, config, pipeline=pipeline)
            entered = reach["deal_id"].map(stages_per_deal).fillna(0)
            per_pipeline.append(((reach["furthest_index"] + 1) - entered > 0).sum())
        stays = stage_stays(data, config)
        regressed = stays.loc[stays["outcome"] == "regressed", "deal_id"].nunique()
        lines += ["", f"Implied by the stage history: {int(sum(per_pipeline)):,} deals skipped at least one stage; "
                      f"{regressed:,} deals moved back to an earlier stage."]
    return lines


# What to change for the common quarantine reasons (first matching prefix wins).
HINTS = [
    ("stage is not a stage", "map the export's stage values under `stages:` in the preset, or list the stages in "
                             "params/funnel.yaml"),
    ("status is not one of", "map the status values under `status_values:` in the preset (with `status_column:` "
                             "naming their column), or derive them with `status_from_stage:` (not in the canonical "
                             "shape)"),
    ("status is missing", "fill the status, or derive it from the stage with `status_from_stage:` in the preset"),
    ("team is missing", "map a team column, join a lookup file (`lookups:`), or set `defaults: {team: ...}`"),
    ("deal has no date", "map a date column to created_at, or give the stages' date columns under `stage_dates:`"),
    ("deal has no valid stage event", "check the stage mapping and the stage dates of the preset"),
    ("event for a quarantined deal", "fix the deal's own reason (listed above); its events come back with it"),
    ("event for a deal not in", "check that both files use the same deal ids (`columns:` in the preset)"),
    ("is outside 1677", "list placeholder dates such as 9999-12-31 under `no_date:` in the preset"),
    ("is not a date", "set `dayfirst:` or `date_formats:` in the preset"),
    ("after the as-of date", "pass a later --as-of, or leave it out to use the latest date in the data"),
    ("deal_id is duplicated", "export one row per deal, or map the right id column to deal_id"),
    ("an exact duplicate", "nothing to do: the first copy is analysed (export each row once to clear this line)"),
    ("closed deal has no closed_at", "map the close date column to closed_at"),
    ("won deal never reached", "map the won stage value to the final stage under `stages:`"),
    ("deal reached the final stage", "derive the status from the stage (`status_from_stage:`) or fix the status"),
    ("another currency", "convert these amounts to funnel.yaml's `currency` in the export, or set `currency:` "
                         "there to the currency most amounts are in"),
    ("amount", "check the amount column; set `decimal:` in the preset for 1.000,50"),
]


def no_such_day(value: object) -> bool:
    """Whether ``value`` is written day/month/year (either order) but is no calendar day in either
    order, e.g. 31/02/2024: no ``dayfirst:`` setting reads it."""
    parts = pd.Series([str(value).strip()]).str.extract(DMY_PATTERN).iloc[0]
    if pd.isna(parts[0]):
        return False
    a, b, year = int(parts[0]), int(parts[2]), int(parts[3])
    year += 2000 if year < 100 else 0
    return all(pd.isna(pd.to_datetime(f"{year:04d}-{m:02d}-{d:02d}", errors="coerce", format="%Y-%m-%d"))
               for d, m in ((a, b), (b, a)))


def hint(reason: str, value: object = None) -> str:
    """What to change in the preset or the data for a quarantine ``reason`` (in English, :func:`reason_text`)
    whose example value is ``value``."""
    if "is not a date" in reason and value is not None and no_such_day(value):
        return f"{str(value).strip()!r} is no calendar day (in either day/month order): correct it in the export"
    return next((h for prefix, h in HINTS if prefix in reason), "see the example rows above")


def verdict(data: Dataset, max_quarantined: float = 0.2) -> tuple[bool, list[str]]:
    """Whether the data can be analysed: some deals left and at most ``max_quarantined`` of the
    rows quarantined (per table). Returns ``(ok, closing lines)``; when not ok, the lines name the
    top reasons with an example row and what to change."""
    analysed = analysed_rows(data)
    shares = {t: (n - analysed[t]) / n for t, n in data.rows_in.items() if n}
    worst = max(shares, key=shares.get) if shares else "deals"
    if len(data.deals) and shares.get(worst, 0) <= max_quarantined:
        return True, [f"OK: {len(data.deals):,} deals can be analysed "
                      f"(quarantined share {shares.get(worst, 0):.1%}, at most {max_quarantined:.0%} allowed)"]
    if not len(data.deals):
        lines = [f"NOT USABLE: nothing can be analysed: {nothing_left(data)}"]
    else:
        lines = [f"NOT USABLE: {shares[worst]:.1%} of the {worst} rows were quarantined, above the "
                 f"{max_quarantined:.0%} allowed (--max-quarantined)"]
    lines.append("Top reasons, with an example row and what to change:")
    reasons = top_reasons(data, 20)
    reasons = sorted(reasons, key=lambda r: r[0] != worst)[:3]  # the table over the threshold first
    for table, reason, rows, example in reasons:
        words = reason_text(reason, data.as_of)
        lines.append(f"  {table}: {words}: {rows:,} rows, e.g. {describe_example(example)}")
        lines.append(f"      → {hint(words, example.get('value'))}")
    return False, lines
