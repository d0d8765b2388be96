"""``funnelkit check``: the data-quality report of a dataset, without any analysis.

:func:`check_report` returns the report as lines of text: rows read, analysed and quarantined per
table and by reason with example rows, the stages seen against those configured, the date ranges,
and the skips and regressions the stage history implies.
"""
from __future__ import annotations

import pandas as pd

from funnelkit.aggregate import reach_table, stage_stays
from funnelkit.config import FunnelConfig
from funnelkit.data import Dataset


def check_report(data: Dataset, config: FunnelConfig, examples: int = 3) -> list[str]:
    """The data check as printable lines (see the module docstring)."""
    lines = [f"Data check of {data.source}", ""]
    analysed = {"deals": len(data.deals), "stage_events": len(data.events)}
    q = data.quarantine
    for table, n_in in data.rows_in.items():
        n_q = int((q["table"] == table).sum())
        lines.append(f"{table}: {n_in:,} rows read = {analysed[table]:,} analysed + {n_q:,} quarantined")
    if len(q):
        lines += ["", "Quarantined rows by reason:"]
        for (table, reason), group in q.groupby(["table", "reason"], sort=False):
            lines.append(f"  {table}: {reason}: {len(group):,}")
            for row in group.head(examples).itertuples():
                value = "" if pd.isna(row.value) else f" value {row.value!r}"
                lines.append(f"      {row.file}, row {row.row}, column {row.column}{value} (deal {row.deal_id})")
    for note in data.notes:
        lines.append(f"Note: {note}")

    lines += ["", "Stages seen against those configured:"]
    seen = data.events.groupby(data.events["deal_id"].map(data.deals.set_index("deal_id")["pipeline"]))["stage"]
    for pipeline, stages in seen:
        counts = stages.value_counts()
        row = ", ".join(f"{s} {int(counts.get(s, 0)):,}" for s in config.stage_keys(pipeline))
        missing = [s for s in config.stage_keys(pipeline) if s not in counts]
        lines.append(f"  {pipeline}: {row}" + (f"; never seen: {', '.join(missing)}" if missing else ""))

    lines += ["", "Date ranges:"]
    for name, values in (("created_at", data.deals["created_at"]), ("closed_at", data.deals["closed_at"]),
                         ("entered_at", data.events["entered_at"])):
        if values.notna().any():
            lines.append(f"  {name}: {values.min():%Y-%m-%d} to {values.max():%Y-%m-%d}")
    lines.append(f"  as-of bound: {data.as_of:%Y-%m-%d %H:%M}")

    if len(data.deals):
        per_pipeline = []
        for pipeline in data.deals["pipeline"].unique():
            reach = reach_table(data, config, pipeline=pipeline)
            entered = data.events[data.events["deal_id"].isin(reach["deal_id"])].groupby("deal_id")["stage"].nunique()
            per_pipeline.append(((reach["furthest_index"] + 1) - reach["deal_id"].map(entered).fillna(0) > 0).sum())
        stays = stage_stays(data, config)
        regressed = stays.loc[stays["outcome"] == "regressed", "deal_id"].nunique()
        lines += ["", f"Implied by the stage history: {int(sum(per_pipeline)):,} deals skipped at least one stage; "
                      f"{regressed:,} deals moved back to an earlier stage."]
    return lines
