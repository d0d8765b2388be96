"""CRM export presets (``params/presets/*.yaml``): turn a CRM's shape into the canonical tables.

Shapes:

* ``canonical`` — funnelkit's own ``deals`` and ``stage_events`` files;
* ``salesforce`` — an ``Opportunity`` export and ``OpportunityHistory`` (one row per change; rows
  that repeat the current stage, e.g. an amount change, are not stage entries; a "Closed Lost" row
  marks the close);
* ``hubspot`` — one row per deal with a ``Date entered "<stage> (<pipeline>)"`` column per stage;
* ``snapshot`` — one row per deal with its stage now and a few dates. Earlier stages count as
  reached with their date unknown (``date_known = False``): they count in the funnel and are left
  out of timing.

Every preset gives the column mapping, the stage-name mapping and how dates are written; what a
shape reshapes is reported in ``Dataset.notes`` so nothing disappears without a line in the report.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from funnelkit.config import PARAMS_DIR, FunnelConfig, StrictModel, normalise_name, validate_file
from funnelkit.data import DataError, Dataset, parse_datetimes, require_columns, validate
from funnelkit.io import find_table, read_table


class Preset(StrictModel):
    """A CRM export preset."""

    shape: Literal["canonical", "salesforce", "hubspot", "snapshot"]
    files: dict[str, str] = Field(default_factory=lambda: {"deals": "deals", "stage_events": "stage_events"})
    sheets: dict[str, str] = Field(default_factory=dict)  # table → Excel sheet name
    encoding: str | None = None  # CSV encoding; None: detect UTF-8 / UTF-8 BOM / GB18030
    dayfirst: bool = False
    date_format: str | None = None  # strptime format for ambiguous dates, e.g. "%d/%m/%Y %H:%M"
    columns: dict[str, str] = Field(default_factory=dict)  # source → canonical (deals)
    defaults: dict[str, str] = Field(default_factory=dict)  # canonical column → value when the export has none
    history_columns: dict[str, str] = Field(default_factory=dict)  # salesforce history → deal_id, stage, entered_at
    closed_flags: dict[Literal["closed", "won"], str] = Field(default_factory=dict)
    stages: dict[str, str | None] = Field(default_factory=dict)  # source stage → key; None: a close marker
    stage_column: str | None = None
    date_entered_prefix: str = "Date entered"
    status_from_stage: dict[str, Literal["open", "won", "lost"]] = Field(default_factory=dict)
    status_column: str | None = None
    status_values: dict[str, Literal["open", "won", "lost"]] = Field(default_factory=dict)
    stage_dates: dict[str, str] = Field(default_factory=dict)  # stage key → date column (snapshot)


def load_preset(name: str | Path) -> Preset:
    """A preset by name (``salesforce``, …, from ``params/presets``) or by YAML path."""
    path = Path(name)
    if not path.suffix:
        path = PARAMS_DIR / "presets" / f"{name}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in (PARAMS_DIR / "presets").glob("*.yaml"))
            raise DataError(f"no preset {name!r}; known presets: {', '.join(known)}")
    return validate_file(Preset, path)


def _read(folder: Path, preset: Preset, table: str) -> tuple[pd.DataFrame, str]:
    path = find_table(folder, preset.files[table])
    return read_table(path, sheet=preset.sheets.get(table), encoding=preset.encoding), str(path)


def _map_stage(names: pd.Series, preset: Preset) -> tuple[pd.Series, pd.Series]:
    """Source stage names → keys by the preset (case and spacing ignored), and a mask of the names
    the preset marks as a close (``~``). Unmapped names are kept for validation to match against
    the configured labels, or to quarantine."""
    lookup = {normalise_name(k): v for k, v in preset.stages.items()}
    norm = names.astype("string").map(normalise_name, na_action="ignore")
    closes = norm.isin([k for k, v in lookup.items() if v is None]).fillna(False).astype(bool)
    mapped = norm.map(lambda n: lookup.get(n) if n in lookup else None)
    return mapped.where(norm.isin(list(lookup)).fillna(False).astype(bool), names.astype("object")), closes


def _deals(raw: pd.DataFrame, preset: Preset, file: str) -> pd.DataFrame:
    require_columns(raw, list(preset.columns), file, need_rows=False)
    deals = raw.rename(columns=preset.columns)
    for column, value in preset.defaults.items():
        if column not in deals:
            deals[column] = value
    return deals


def read_salesforce(folder: Path, preset: Preset) -> tuple[pd.DataFrame, pd.DataFrame, list[str], dict[str, str]]:
    raw, deals_file = _read(folder, preset, "deals")
    history, history_file = _read(folder, preset, "history")
    flags = preset.closed_flags
    require_columns(raw, [flags["closed"], flags["won"]], deals_file, need_rows=False)
    require_columns(history, list(preset.history_columns), history_file, need_rows=False)
    deals = _deals(raw, preset, deals_file)
    truthy = lambda s: s.astype("string").str.strip().str.lower().isin(["true", "1", "yes"])  # noqa: E731
    closed, won = truthy(raw[flags["closed"]]), truthy(raw[flags["won"]])
    deals["status"] = np.where(won, "won", np.where(closed, "lost", "open"))
    events = history.rename(columns=preset.history_columns)[["deal_id", "stage", "entered_at"]].copy()
    events["stage"], closes = _map_stage(events["stage"], preset)
    events["entered_at"] = parse_datetimes(events["entered_at"], preset.dayfirst, preset.date_format)
    order = events.sort_values(["deal_id", "entered_at"], kind="stable").index
    events, closes = events.loc[order], closes.loc[order]
    repeat = events["deal_id"].eq(events["deal_id"].shift()) & events["stage"].eq(events["stage"].shift())
    # CloseDate is a date; the history row that closed the deal carries the time
    close_time = events[closes].groupby("deal_id")["entered_at"].max()
    closed_at = parse_datetimes(deals["closed_at"], preset.dayfirst, preset.date_format)
    deals["closed_at"] = closed_at.where(deals["status"] != "lost", deals["deal_id"].map(close_time).fillna(closed_at))
    notes = [f"{history_file}: {len(history):,} rows → {int((~closes & ~repeat).sum()):,} stage entries; "
             f"{int(repeat.sum()):,} rows repeat the current stage (amount or probability changes) and "
             f"{int(closes.sum()):,} mark a close without a stage"]
    return deals, events[~closes & ~repeat], notes, {"deals": deals_file, "stage_events": history_file}


def read_hubspot(folder: Path, preset: Preset) -> tuple[pd.DataFrame, pd.DataFrame, list[str], dict[str, str]]:
    raw, file = _read(folder, preset, "deals")
    require_columns(raw, [preset.stage_column], file, need_rows=False)
    deals = _deals(raw, preset, file)
    current = raw[preset.stage_column].astype("string").str.strip()
    status_lookup = {normalise_name(k): v for k, v in preset.status_from_stage.items()}
    deals["status"] = current.map(lambda s: status_lookup.get(normalise_name(s), "open") if pd.notna(s) else pd.NA)
    pattern = re.compile(rf'^{re.escape(preset.date_entered_prefix)}\s*["“]?(.+?)(?:\s*\(([^)]*)\))?["”]?\s*$')
    stage_columns = {c: pattern.match(str(c)).group(1) for c in raw.columns if pattern.match(str(c))}
    if not stage_columns:
        raise DataError(f"{file}: no '{preset.date_entered_prefix} \"<stage> (<pipeline>)\"' columns")
    long = raw[list(stage_columns)].assign(deal_id=deals["deal_id"]).melt(
        id_vars="deal_id", var_name="column", value_name="entered_at")
    long = long[long["entered_at"].notna() & long["entered_at"].astype("string").str.strip().ne("")]
    long["stage"], closes = _map_stage(long["column"].map(stage_columns), preset)
    notes = [f"{file}: {len(stage_columns)} 'date entered' columns → {int((~closes).sum()):,} stage entries "
             f"({int(closes.sum()):,} close dates are not stage entries)"]
    return deals, long.loc[~closes, ["deal_id", "stage", "entered_at"]], notes, {"deals": file, "stage_events": f"{file} (date entered columns)"}


def read_snapshot(folder: Path, preset: Preset, config: FunnelConfig) -> tuple[pd.DataFrame, pd.DataFrame, list[str], dict[str, str]]:
    raw, file = _read(folder, preset, "deals")
    require_columns(raw, [preset.stage_column, preset.status_column, *preset.stage_dates.values()], file, need_rows=False)
    deals = _deals(raw, preset, file)
    lookup = {normalise_name(k): v for k, v in preset.status_values.items()}
    deals["status"] = raw[preset.status_column].map(lambda s: lookup.get(normalise_name(s), s) if pd.notna(s) else s)
    pipeline = deals["pipeline"] if "pipeline" in deals else pd.Series(config.default_pipeline, index=deals.index)
    rows = []
    unknown = 0
    for i, (deal_id, stage_name, pipe) in enumerate(zip(deals["deal_id"], raw[preset.stage_column], pipeline)):
        source, deal = raw.iloc[i], deals.iloc[i]
        name = pipe if pipe in config.pipelines else config.default_pipeline
        keys = config.stage_keys(name)
        key = config.stage_lookup(name).get(normalise_name(stage_name))
        if key is None:  # keep the unknown name: validation quarantines it with the row
            first = preset.stage_dates.get(keys[0])
            rows.append((deal_id, stage_name, source[first] if first else None, True))
            continue
        last_known = None
        for stage in keys[: keys.index(key) + 1]:
            column = preset.stage_dates.get(stage)
            value = source[column] if column else None
            known = value is not None and pd.notna(value) and str(value).strip() != ""
            if known:
                last_known = value
            elif stage == key and deal["status"] == "won" and pd.notna(deal.get("closed_at")):
                value, known = deal["closed_at"], True  # a win enters the final stage on its close date
            else:
                unknown += 1
            rows.append((deal_id, stage, value if known else last_known, known))
    events = pd.DataFrame(rows, columns=["deal_id", "stage", "entered_at", "date_known"])
    notes = [f"{file}: snapshot export — {unknown:,} stages reached with the date unknown: counted in the funnel, "
             "left out of time in stage"]
    return deals, events, notes, {"deals": file, "stage_events": f"{file} (stages implied by the current stage)"}


def load_with_preset(folder: str | Path, preset: Preset | str, config: FunnelConfig,
                     as_of: pd.Timestamp | None = None) -> Dataset:
    """Read a CRM export folder with ``preset`` and validate it into a :class:`Dataset`."""
    folder = Path(folder)
    preset = load_preset(preset) if isinstance(preset, str) else preset
    if not folder.is_dir():
        raise DataError(f"{folder}: expected a folder holding the CRM export files")
    if preset.shape == "salesforce":
        deals, events, notes, files = read_salesforce(folder, preset)
    elif preset.shape == "hubspot":
        deals, events, notes, files = read_hubspot(folder, preset)
    elif preset.shape == "snapshot":
        deals, events, notes, files = read_snapshot(folder, preset, config)
    else:
        deals_raw, deals_file = _read(folder, preset, "deals")
        events_raw, events_file = _read(folder, preset, "stage_events")
        deals, events, notes = _deals(deals_raw, preset, deals_file), events_raw, []
        files = {"deals": deals_file, "stage_events": events_file}
    data = validate(deals, events, config, as_of=as_of, deals_file=files["deals"], events_file=files["stage_events"],
                    dayfirst=preset.dayfirst, date_format=preset.date_format)
    return Dataset(data.deals, data.events, data.quarantine, data.rows_in, data.as_of, data.source, notes + data.notes)
