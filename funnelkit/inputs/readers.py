"""Readers: one per export shape, each turning raw tables into canonical-named ``deals`` and
``stage_events`` by a preset's mapping. Pure functions (no file access): :func:`funnelkit.inputs.io.load_data`
reads the files a reader asks for and validates what it returns.

Shapes (``READERS``, a registry as papermill keeps its IO handlers; adding a shape is adding one
function with :func:`reader`):

* ``canonical`` — funnelkit's own ``deals`` and ``stage_events`` tables (columns may be renamed);
* ``salesforce`` — an ``Opportunity`` export and ``OpportunityHistory`` (one row per change; rows
  that repeat the current stage, e.g. an amount change, are not stage entries; a "Closed Lost" row
  marks the close);
* ``hubspot`` — one row per deal with a ``Date entered "<stage> (<pipeline>)"`` column per stage;
* ``snapshot`` — one row per deal with its stage now (or only dates, or only a status) and a few
  date columns. Earlier stages count as reached; where their date is unknown they take the date of
  the next known stage (the any-stage rule) with ``date_known = False``: they count in the funnel
  and are left out of timing.

Before the shape's reader, every shape gets the same generic steps on the raw deals table: lookup
files joined on a key, and an outcomes file keyed by the deal id (a deal missing from it is open).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from funnelkit.config import FunnelConfig, normalise_name
from funnelkit.inputs.data import FILE_ROW, DataError, data_note, parse_dates, require_columns, shown
from funnelkit.inputs.presets import Preset


@dataclass(frozen=True)
class Shaped:
    """What a reader returns: canonical-named raw tables, notes on the reshaping, source names."""

    deals: pd.DataFrame
    events: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reader:
    """A shape's reader and the tables (keys of ``Preset.files``) it needs."""

    tables: tuple[str, ...]
    read: Callable[[dict[str, pd.DataFrame], Preset, FunnelConfig, dict[str, str]], Shaped]


READERS: dict[str, Reader] = {}


def reader(shape: str, tables: tuple[str, ...]) -> Callable:
    """Register ``function`` as the reader of ``shape``, needing ``tables``."""
    def register(function: Callable) -> Callable:
        READERS[shape] = Reader(tables, function)
        return function
    return register


def join_extras(deals: pd.DataFrame, extras: dict[str, pd.DataFrame], preset: Preset,
                files: dict[str, str]) -> tuple[pd.DataFrame, list[str]]:
    """The raw deals with the preset's lookup files and outcomes file joined on (still source names).

    A lookup key found more than once in its file is an error (the join would copy deals).
    Outcomes set ``status`` (``outcomes.status`` for every deal in the file, or its status column);
    a deal missing from the outcomes file is open. Returns the deals and notes on rows of the extra
    files that matched no deal (so none is dropped without a word).
    """
    notes: list[str] = []
    for lookup in preset.lookups:
        table, name = extras[f"lookup:{lookup.file}"], files[f"lookup:{lookup.file}"]
        right_key = lookup.lookup_key or lookup.key
        require_columns(deals, [lookup.key], files["deals"], need_rows=False, what=f"the key of lookup {lookup.file}")
        require_columns(table, [right_key, *lookup.columns], name, need_rows=False)
        keys = table[right_key].astype("string").str.strip()
        if keys.duplicated().any():
            dup = keys[keys.duplicated()].iloc[0]
            raise DataError(f"{name}: key {shown(dup)!r} appears more than once in column {right_key}; "
                            "a lookup file needs one row per key")
        values = table[list(lookup.columns)].rename(columns=lookup.columns).set_axis(keys.to_numpy())
        found = deals[lookup.key].astype("string").str.strip()
        for column in values.columns:
            deals = deals.assign(**{column: found.map(values[column]).to_numpy()})
        unmatched = found[found.notna() & ~found.isin(keys)]
        if len(unmatched):
            notes.append(data_note("lookup_unmatched", file=name, rows=f"{len(unmatched):,}", lookup_column=lookup.key,
                                   example=repr(shown(unmatched.iloc[0]))))
    outcomes = preset.outcomes
    if outcomes is not None:
        table, name = extras["outcomes"], files["outcomes"]
        id_column = next((s for s, c in preset.columns.items() if c == "deal_id"), "deal_id")
        require_columns(table, [outcomes.key, *outcomes.columns] + ([outcomes.status_column] if outcomes.status_column else []), name,
                        need_rows=False)
        keys = table[outcomes.key].astype("string").str.strip()
        if keys.duplicated().any():
            raise DataError(f"{name}: deal {shown(keys[keys.duplicated()].iloc[0])!r} appears more than once in "
                            f"column {outcomes.key}; an outcomes file needs one row per deal")
        found = deals[id_column].astype("string").str.strip()
        picked = table.set_axis(keys.to_numpy())
        orphans = keys[keys.notna() & ~keys.isin(found)]
        if len(orphans):
            notes.append(data_note("outcome_orphans", file=name, rows=f"{len(orphans):,}", total=f"{len(keys):,}",
                                   deals_file=files["deals"], example=repr(shown(orphans.iloc[0]))))
        matched = found.isin(keys).fillna(False).to_numpy(dtype=bool)
        for source, target in outcomes.columns.items():
            deals = deals.assign(**{target: found.map(picked[source]).to_numpy()})
        if outcomes.status_column:
            lookup = {normalise_name(k): v for k, v in outcomes.status_values.items()}
            status = found.map(picked[outcomes.status_column]).map(
                lambda s: lookup.get(normalise_name(s), s) if pd.notna(s) else s)
            deals = deals.assign(status=np.where(matched, status.astype("object"), "open"))
        else:
            deals = deals.assign(status=np.where(matched, outcomes.status or "won", "open"))
    return deals, notes


def rename_deals(raw: pd.DataFrame, preset: Preset, file: str) -> pd.DataFrame:
    """Source columns → canonical ones, and the preset's constants for fields the export lacks."""
    require_columns(raw, list(preset.columns), file, need_rows=False, what="named in the preset's columns")
    deals = raw.rename(columns=preset.columns)
    for column, value in preset.defaults.items():
        if column not in deals:
            deals[column] = value
    return deals


def map_stage(names: pd.Series, preset: Preset) -> tuple[pd.Series, pd.Series]:
    """Source stage names → keys by the preset (case and spacing ignored), and a mask of the names
    the preset marks as a close (``~``). Unmapped names are kept for validation to match against
    the configured labels, or to quarantine."""
    lookup = {normalise_name(k): v for k, v in preset.stages.items()}
    norm = names.astype("object").map(normalise_name, na_action="ignore")
    closes = norm.isin([k for k, v in lookup.items() if v is None]).to_numpy(dtype=bool)
    known = norm.isin(list(lookup)).to_numpy(dtype=bool)
    mapped = np.where(known, norm.map(lambda n: lookup.get(n)).to_numpy(dtype=object), names.to_numpy(dtype=object))
    return pd.Series(mapped, index=names.index, dtype="object"), pd.Series(closes, index=names.index)


def status_from_stage(values: pd.Series, preset: Preset) -> pd.Series:
    """Status from stage values by ``status_from_stage`` (any other stage: open; blank stays blank)."""
    lookup = {normalise_name(k): v for k, v in preset.status_from_stage.items()}
    return values.map(lambda s: lookup.get(normalise_name(s), "open") if pd.notna(s) and str(s).strip() else pd.NA)


# Settings of other shapes that the canonical reader has nothing to apply to: refused, never ignored.
CANONICAL_UNSUPPORTED = ("stage_column", "stage_dates", "status_from_stage", "history_columns", "closed_flags",
                         "date_entered_prefix")
EVENT_FIELDS = ("stage", "entered_at")  # canonical fields that live in the stage events file only


def file_columns(preset: Preset, mapping: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Per table, canonical field → the export's column the preset (or ``mapping``, applied first,
    to both files) renames to it: the deals file's ``columns`` (and ``status_column``), the events
    file's ``stage``/``entered_at`` (canonical shape) or ``history_columns`` (salesforce). A field
    read from one column per stage (hubspot's and snapshot's dates) has no one name, so none."""
    deals = {v: k for k, v in preset.columns.items() if preset.shape != "canonical" or v not in EVENT_FIELDS}
    if preset.status_column:
        deals["status"] = preset.status_column
    if preset.shape == "canonical":
        events = {v: k for k, v in preset.columns.items() if v in (*EVENT_FIELDS, "deal_id")}
    else:
        # one file's rows give the others' events: their deal id is that file's
        events = ({v: k for k, v in preset.history_columns.items()} if preset.shape == "salesforce"
                  else {"deal_id": deals["deal_id"]} if "deal_id" in deals else {})
    first = {v: k for k, v in (mapping or {}).items()}  # mapping renamed the export's columns before the preset
    return {table: {field: first.get(name, name) for field, name in named.items()}
            | {field: name for field, name in first.items() if field not in named}
            for table, named in (("deals", deals), ("stage_events", events))}


@reader("canonical", ("deals", "stage_events"))
def read_canonical(tables: dict[str, pd.DataFrame], preset: Preset, config: FunnelConfig, files: dict[str, str]) -> Shaped:
    """funnelkit's own ``deals`` and ``stage_events`` tables. ``columns`` renames either file's
    columns (a column mapped to ``stage`` or ``entered_at`` is the events file's; ``deal_id`` is
    renamed in both); ``stages`` maps the events' stage values to keys (case and spacing ignored;
    ``~`` marks a close written as a stage change, whose rows are left out with a note and the other
    rows keep their file row numbers);
    ``status_column`` names the deals' status column and ``status_values`` maps its values. Settings
    of the other shapes are refused with :class:`DataError`."""
    given = sorted(name for name in CANONICAL_UNSUPPORTED if name in preset.model_fields_set and getattr(preset, name))
    if given:
        raise DataError(f"preset: {', '.join(given)}: not used by the canonical shape (one file of deals, one of "
                        "stage entries); remove it, or choose the shape it belongs to (see the README's presets)")
    raw_deals, raw_events = tables["deals"], tables["stage_events"]
    to_events = {k: v for k, v in preset.columns.items() if v in EVENT_FIELDS}
    require_columns(raw_events, list(to_events), files["stage_events"], need_rows=False,
                    what="mapped to stage or entered_at in the preset's columns")
    events = raw_events.rename(columns={k: v for k, v in preset.columns.items()
                                        if v in (*EVENT_FIELDS, "deal_id") and k in raw_events.columns})
    deal_columns = {k: v for k, v in preset.columns.items() if v not in EVENT_FIELDS}
    if preset.status_column:
        require_columns(raw_deals, [preset.status_column], files["deals"], need_rows=False,
                        what="the preset's status_column")
        deal_columns[preset.status_column] = "status"
    deals = rename_deals(raw_deals, preset.model_copy(update={"columns": deal_columns}), files["deals"])
    if preset.status_values and "status" in deals:
        lookup = {normalise_name(k): v for k, v in preset.status_values.items()}
        deals["status"] = deals["status"].map(lambda s: lookup.get(normalise_name(s), s) if pd.notna(s) else s)
    notes = []
    other = np.zeros(len(events), dtype=bool)
    if preset.event_rows:  # a log of every field change: only the named fields' rows are stage changes
        require_columns(raw_events, list(preset.event_rows), files["stage_events"], need_rows=False,
                        what="named in the preset's event_rows")
        for column, values in preset.event_rows.items():
            wanted = {normalise_name(v) for v in values}
            other |= ~raw_events[column].map(normalise_name, na_action="ignore").isin(wanted).to_numpy(dtype=bool)
        if other.any():
            column = next(iter(preset.event_rows))
            counts = raw_events.loc[other, column].astype("string").fillna("(blank)").value_counts()
            notes.append(data_note("other_rows", file=files["stage_events"], rows=f"{int(other.sum()):,}",
                                   column=column, kept=", ".join(v for vs in preset.event_rows.values() for v in vs),
                                   values=", ".join(f"{shown(v)} {n:,}" for v, n in counts.items())))
    closes = np.zeros(len(events), dtype=bool)
    if preset.stages and "stage" in events:
        events["stage"], close_mask = map_stage(events["stage"], preset)
        closes = close_mask.to_numpy() & ~other
        if closes.any():  # a log of stage changes writes the close as one ("To stage: Closed Lost")
            named = ", ".join(repr(str(v)) for v in pd.unique(raw_events.loc[closes, to_stage(preset)]))
            notes.append(data_note("close_rows", file=files["stage_events"], rows=f"{int(closes.sum()):,}", values=named))
    if closes.any() or other.any():  # the rows read keep their row numbers in the file
        events = events.assign(**{FILE_ROW: np.arange(1, len(events) + 1)})[~(closes | other)]
    return Shaped(deals, events, notes, {"deals": files["deals"], "stage_events": files["stage_events"]})


def to_stage(preset: Preset) -> str:
    """The events file's column that the preset maps to ``stage`` (``stage`` when none is)."""
    return next((k for k, v in preset.columns.items() if v == "stage"), "stage")


@reader("salesforce", ("deals", "history"))
def read_salesforce(tables: dict[str, pd.DataFrame], preset: Preset, config: FunnelConfig, files: dict[str, str]) -> Shaped:
    raw, history = tables["deals"], tables["history"]
    deals_file, history_file = files["deals"], files["history"]
    flags = preset.closed_flags
    require_columns(raw, [flags["closed"], flags["won"]], deals_file, need_rows=False, what="the preset's closed_flags")
    require_columns(history, list(preset.history_columns), history_file, need_rows=False,
                    what="the preset's history_columns")
    deals = rename_deals(raw, preset, deals_file)
    truthy = lambda s: s.astype("string").str.strip().str.lower().isin(["true", "1", "yes"])  # noqa: E731
    closed, won = truthy(raw[flags["closed"]]), truthy(raw[flags["won"]])
    deals["status"] = np.where(won, "won", np.where(closed, "lost", "open"))
    events = history.rename(columns=preset.history_columns)[["deal_id", "stage", "entered_at"]].copy()
    events[FILE_ROW] = np.arange(1, len(events) + 1)  # rows are sorted and closes left out below
    events["stage"], closes = map_stage(events["stage"], preset)
    parsing = preset.parsing(config.timezone)
    events["entered_at"] = parse_dates(events["entered_at"], parsing, "entered_at", f"{history_file}, column entered_at")[0]
    order = events.sort_values(["deal_id", "entered_at"], kind="stable").index
    events, closes = events.loc[order], closes.loc[order]
    repeat = events["deal_id"].eq(events["deal_id"].shift()) & events["stage"].eq(events["stage"].shift())
    # CloseDate is a date; the history row that closed the deal carries the time
    close_time = events[closes].groupby("deal_id")["entered_at"].max()
    closed_at = parse_dates(deals["closed_at"], parsing, "closed_at", f"{deals_file}, column closed_at")[0]
    deals["closed_at"] = closed_at.where(deals["status"] != "lost", deals["deal_id"].map(close_time).fillna(closed_at))
    notes = [data_note("history_rows", file=history_file, rows=f"{len(history):,}",
                       entries=f"{int((~closes & ~repeat).sum()):,}", repeats=f"{int(repeat.sum()):,}",
                       closes=f"{int(closes.sum()):,}")]
    return Shaped(deals, events[~closes & ~repeat], notes, {"deals": deals_file, "stage_events": history_file})


@reader("hubspot", ("deals",))
def read_hubspot(tables: dict[str, pd.DataFrame], preset: Preset, config: FunnelConfig, files: dict[str, str]) -> Shaped:
    raw, file = tables["deals"], files["deals"]
    require_columns(raw, [preset.stage_column], file, need_rows=False, what="the preset's stage_column")
    deals = rename_deals(raw, preset, file)
    if "status" not in deals:
        deals["status"] = status_from_stage(raw[preset.stage_column].astype("string").str.strip(), preset)
    pattern = re.compile(rf'^{re.escape(preset.date_entered_prefix)}\s*["“]?(.+?)(?:\s*\(([^)]*)\))?["”]?\s*$')
    stage_columns = {c: pattern.match(str(c)).group(1) for c in raw.columns if pattern.match(str(c))}
    if not stage_columns:
        raise DataError(f"{file}: no '{preset.date_entered_prefix} \"<stage> (<pipeline>)\"' columns")
    # each entry keeps its deal's row in the file: the long table's own row numbers are no row of the file
    long = raw[list(stage_columns)].assign(deal_id=deals["deal_id"], **{FILE_ROW: np.arange(1, len(raw) + 1)}).melt(
        id_vars=["deal_id", FILE_ROW], var_name="column", value_name="entered_at")
    long = long[long["entered_at"].notna() & long["entered_at"].astype("string").str.strip().ne("")]
    long["stage"], closes = map_stage(long["column"].map(stage_columns), preset)
    notes = [data_note("date_entered", file=file, stage_columns=len(stage_columns), entries=f"{int((~closes).sum()):,}",
                       closes=f"{int(closes.sum()):,}")]
    return Shaped(deals, long.loc[~closes, ["deal_id", "stage", "entered_at", FILE_ROW]], notes,
                  {"deals": file, "stage_events": f"{file} (date entered columns)"})


@reader("snapshot", ("deals",))
def read_snapshot(tables: dict[str, pd.DataFrame], preset: Preset, config: FunnelConfig, files: dict[str, str]) -> Shaped:
    """One row per deal: its stage now (``stage_column``, mapped by ``stages``), and/or a status
    (``status_column``, from the stage by ``status_from_stage``, or from the outcomes file), and the
    date columns of some stages (``stage_dates``; the first stage falls back to ``created_at``).

    The current stage is the mapped stage value; for a close marker (``Lost: ~``) or without a stage
    column, the furthest stage with a date. Every stage up to it counts as reached.
    """
    raw, file = tables["deals"], files["deals"]
    date_columns = [c for c in preset.stage_dates.values() if c not in raw.columns]
    require_columns(raw, [c for c in (preset.stage_column, preset.status_column) if c] + date_columns, file,
                    need_rows=False, what="named in the preset")
    deals = rename_deals(raw, preset, file)
    if preset.status_column:
        lookup = {normalise_name(k): v for k, v in preset.status_values.items()}
        deals["status"] = raw[preset.status_column].map(lambda s: lookup.get(normalise_name(s), s) if pd.notna(s) else s)
    elif "status" not in deals and preset.stage_column:
        deals["status"] = status_from_stage(raw[preset.stage_column], preset)
    elif "status" not in deals:
        deals["status"] = "open"
    pipelines = deals["pipeline"].where(deals["pipeline"].isin(list(config.pipelines)), config.default_pipeline) \
        if "pipeline" in deals else pd.Series(config.default_pipeline, index=deals.index)
    rows, unknown = [], 0
    for name in pd.unique(pipelines):
        part = np.flatnonzero((pipelines == name).to_numpy())
        keys = config.stage_keys(name)
        # raw date per stage; the first stage falls back to created_at
        dates = pd.DataFrame(index=part, columns=keys, dtype="object")
        for i, key in enumerate(keys):
            column = preset.stage_dates.get(key)
            if column is None and i == 0 and "created_at" in deals:
                dates[key] = deals["created_at"].iloc[part].to_numpy()
            elif column is not None:
                dates[key] = raw[column].iloc[part].to_numpy()
        dates = dates.apply(lambda c: c.where(c.map(lambda v: pd.notna(v) and str(v).strip() != "")))
        known = dates.notna()
        furthest = np.where(known.to_numpy().any(axis=1), known.to_numpy()[:, ::-1].argmax(axis=1), len(keys))
        furthest = len(keys) - 1 - furthest  # index of the last dated stage; -1 when none
        current = np.full(len(part), -2)  # -2: unknown stage name (validation quarantines it)
        names = pd.Series([None] * len(part), dtype="object")
        closes = pd.Series(False, index=names.index)
        if preset.stage_column:
            names = raw[preset.stage_column].iloc[part].reset_index(drop=True)
            mapped, closes = map_stage(names, preset)
            by_label = config.stage_lookup(name)
            key_of = mapped.map(lambda v: v if v in keys else by_label.get(normalise_name(v)) if pd.notna(v) else None)
            current = key_of.map({k: i for i, k in enumerate(keys)}).fillna(-2).astype(int).to_numpy()
            current = np.where(closes.to_numpy() | names.isna().to_numpy(), np.maximum(furthest, 0), current)
        else:
            current = np.maximum(furthest, 0)
        status = deals["status"].iloc[part].to_numpy()
        # a win reaches the final stage; without a stage value saying so, it is the status that does
        marked = np.isin(current, [-2]) if preset.stage_column else np.zeros(len(part), bool)
        current = np.where((status == "won") & ~marked & (current < len(keys) - 1) &
                           (np.ones(len(part), bool) if not preset.stage_column else closes.to_numpy()),
                           len(keys) - 1, current)
        closed_at = deals["closed_at"].iloc[part].to_numpy() if "closed_at" in deals else np.full(len(part), None)
        filled = dates.bfill(axis=1).ffill(axis=1)  # unknown: the next known stage's date (any-stage rule)
        for j, key in enumerate(keys):
            reached = current >= j
            value = filled[key].to_numpy()
            is_known = known[key].to_numpy()
            # a win enters the final stage on its close date when the stage has no date of its own
            won_here = (j == current) & (status == "won") & ~is_known & pd.notna(closed_at)
            value = np.where(won_here, closed_at, value)
            is_known = is_known | won_here
            unknown += int((reached & ~is_known).sum())
            for i in np.flatnonzero(reached):
                rows.append((deals["deal_id"].iat[part[i]], key, value[i], bool(is_known[i])))
        for i in np.flatnonzero(current == -2):  # keep the unknown name: validation quarantines it
            rows.append((deals["deal_id"].iat[part[i]], names.iat[i], filled.iloc[i].dropna().iloc[0]
                         if filled.iloc[i].notna().any() else None, True))
    events = pd.DataFrame(rows, columns=["deal_id", "stage", "entered_at", "date_known"])
    notes = [data_note("snapshot", file=file, stages=f"{unknown:,}")]
    return Shaped(deals, events, notes, {"deals": file, "stage_events": f"{file} (stages implied by the current stage)"})
