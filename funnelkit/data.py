"""Validate raw tables into the canonical ``deals`` / ``stage_events`` tables, with a quarantine.

:func:`validate` is pure: it takes raw DataFrames (as read by :mod:`funnelkit.io`) and returns a
:class:`Dataset`. A row that cannot be analysed is not dropped silently: it goes to
``Dataset.quarantine`` with the file, the 1-based data row (a CSV's line number minus one), the
column, the value and the reason, so that for each table

    rows in = rows analysed + rows quarantined.

A problem that stops all analysis (a missing column, an empty table) raises :class:`DataError`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from funnelkit.config import FunnelConfig, normalise_name

DEAL_REQUIRED = ["deal_id", "customer", "team", "rep", "created_at", "amount", "status"]
DEAL_OPTIONAL = [
    "pipeline", "closed_at", "lost_reason", "industry", "contact", "need", "win_probability",
    "strategic_value", "follow_up_cost", "payment_days", "competitive_position", "need_fit",
    "decision_maker_engaged", "budget_confirmed", "expected_start", "last_follow_up_at",
]
DEAL_DATES = ["created_at", "closed_at", "expected_start", "last_follow_up_at"]
EVENT_REQUIRED = ["deal_id", "stage", "entered_at"]
STATUSES = ("open", "won", "lost")
UNSPECIFIED_REASON = "unspecified"
QUARANTINE_COLUMNS = ["table", "file", "row", "deal_id", "column", "value", "reason"]


class DataError(ValueError):
    """Input that cannot be analysed at all (missing file or column, empty table)."""


@dataclass(frozen=True)
class Dataset:
    """Validated canonical tables plus what was set aside.

    ``as_of`` is the exclusive time bound of the data: nothing at or after it was accepted.
    ``rows_in`` counts the input rows per table (``deals``, ``stage_events``).
    """

    deals: pd.DataFrame
    events: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: dict[str, int]
    as_of: pd.Timestamp
    source: str = ""
    notes: list[str] = field(default_factory=list)


def empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in QUARANTINE_COLUMNS}).astype({"row": "Int64"})


EXCEL_EPOCH = pd.Timestamp("1899-12-30")  # Excel's day 0 (it counts 1900 as a leap year)


def parse_datetimes(values: pd.Series, dayfirst: bool = False, date_format: str | None = None) -> pd.Series:
    """Parse a column of dates to naive ``datetime64[ns]``; unparseable values become NaT.

    Accepts datetimes as they are; ``date_format`` (strptime) when given; otherwise ISO 8601 first,
    then pandas' mixed-format parser (``dayfirst`` decides ``01/02/2024``). Plain numbers between
    10,000 and 100,000 are Excel serial dates. Time-zone-aware values are converted to UTC, then
    made naive.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        out = values
    else:
        text = values.astype("object").where(values.notna(), None)
        text = text.map(lambda v: v.strip() if isinstance(v, str) else v)
        if date_format:
            out = pd.to_datetime(text, errors="coerce", format=date_format, utc=True)
        else:
            out = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
            retry = out.isna() & text.notna()
            if retry.any():
                out[retry] = pd.to_datetime(text[retry], errors="coerce", format="mixed", dayfirst=dayfirst, utc=True)
        serial = pd.to_numeric(text, errors="coerce")
        is_serial = out.isna() & serial.between(10_000, 100_000)
        if is_serial.any():
            out[is_serial] = (EXCEL_EPOCH + pd.to_timedelta(serial[is_serial], unit="D")).dt.tz_localize("UTC")
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out.astype("datetime64[ns]")


_CURRENCY = r"[¥￥$€£]|CNY|RMB|USD|EUR|元"


def parse_amounts(values: pd.Series) -> pd.Series:
    """Numbers from text such as ``¥1,200,000``, ``1 200 000.50`` or ``CNY 35,000``; else NaN."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    text = values.astype("string").str.replace(_CURRENCY, "", regex=True).str.replace(r"[,\s]", "", regex=True)
    return pd.to_numeric(text, errors="coerce").astype(float)


def _blank(values: pd.Series) -> pd.Series:
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return values.isna()
    return values.isna() | values.astype("string").str.strip().eq("")


def _arrow_strings(values: pd.Series | pd.Index) -> "pa.Array":
    """The values as an Arrow string array (zero-copy for pandas' Arrow-backed strings)."""
    import pyarrow as pa

    if pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values):
        array = pa.array(values)
    else:
        array = pa.array(pd.Series(values).astype("object").where(pd.Series(values).notna(), None).map(
            lambda v: v if v is None else str(v)), type=pa.string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.string()) if array.type != pa.string() else array


def isin(values: pd.Series, pool: pd.Series | pd.Index) -> pd.Series:
    """``values.isin(pool)`` through Arrow's hash lookup (much faster than pandas' for strings)."""
    import pyarrow.compute as pc

    found = pc.is_in(_arrow_strings(values), value_set=pc.unique(_arrow_strings(pool)))
    return pd.Series(found.fill_null(False).to_numpy(zero_copy_only=False), index=values.index)


def positions(keys: pd.Series, pool: pd.Series) -> np.ndarray:
    """Position of each key in ``pool`` (unique), −1 where absent: a vectorised dictionary lookup."""
    import pyarrow.compute as pc

    found = pc.index_in(_arrow_strings(keys), value_set=_arrow_strings(pool))
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def take(column: pd.Series, where: np.ndarray) -> pd.Series:
    """``column`` values at ``where`` positions (from :func:`positions`); missing where −1.

    Text columns come back categorical: picking codes is far cheaper than copying strings.
    """
    values = column.reset_index(drop=True)
    if pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values):
        codes, uniques = pd.factorize(values)
        picked = np.where(where >= 0, codes[np.maximum(where, 0)] if len(codes) else -1, -1)
        return pd.Series(pd.Categorical.from_codes(picked, categories=pd.Index(uniques, dtype="object")))
    out = values.iloc[np.maximum(where, 0)].reset_index(drop=True) if len(values) else \
        pd.Series([pd.NA] * len(where), dtype=values.dtype)
    return out.mask(pd.Series(where < 0))


class _Quarantine:
    """Collects the first reason found for each bad row of one table."""

    def __init__(self, table: str, file: str, n: int):
        self.table, self.file = table, file
        self.reason = pd.Series(pd.NA, index=pd.RangeIndex(n), dtype="object")
        self.column = pd.Series(pd.NA, index=self.reason.index, dtype="object")
        self.value = pd.Series(pd.NA, index=self.reason.index, dtype="object")

    def flag(self, mask: pd.Series, column: str, reason: str, values: pd.Series | None = None) -> None:
        new = mask.to_numpy(dtype=bool) & self.reason.isna().to_numpy()
        if not new.any():
            return
        self.reason[new] = reason
        self.column[new] = column
        if values is not None:
            self.value[new] = values[new].astype("object").astype(str).to_numpy()

    @property
    def bad(self) -> np.ndarray:
        return self.reason.notna().to_numpy()

    def frame(self, deal_ids: pd.Series) -> pd.DataFrame:
        bad = self.bad
        return pd.DataFrame(
            {
                "table": self.table,
                "file": self.file,
                "row": pd.array(np.flatnonzero(bad) + 1, dtype="Int64"),
                "deal_id": deal_ids[bad].astype("object").to_numpy(),
                "column": self.column[bad].to_numpy(),
                "value": self.value[bad].to_numpy(),
                "reason": self.reason[bad].to_numpy(),
            }
        )


def _require_columns(df: pd.DataFrame, required: list[str], file: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"{file}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns)) or 'none'}"
        )
    if df.empty:
        raise DataError(f"{file}: has a header but no data rows")


def validate(
    deals: pd.DataFrame,
    events: pd.DataFrame,
    config: FunnelConfig,
    *,
    as_of: pd.Timestamp | None = None,
    deals_file: str = "deals",
    events_file: str = "stage_events",
    dayfirst: bool = False,
    date_format: str | None = None,
) -> Dataset:
    """Check raw ``deals`` and ``events`` against the data contract (DESIGN.md §2).

    Deal rows are quarantined for: a missing required value, an unparseable date, an unknown
    status or pipeline, a negative or non-numeric amount, a duplicate deal_id (every copy), a
    closed deal without closed_at, closed_at before created_at, created_at at or after ``as_of``.
    Event rows are quarantined for: a missing value, an unparseable date, an unknown stage, a deal
    not in the deals table, a deal that was itself quarantined, entered_at before created_at,
    after closed_at, or at/after ``as_of``. Finally a deal that is won without reaching the final
    stage, that reached the final stage without being won, or that has no valid stage event is
    quarantined together with its events.

    ``as_of`` (exclusive bound) defaults to the start of the day after the latest date seen.
    """
    _require_columns(deals, DEAL_REQUIRED, deals_file)
    _require_columns(events, EVENT_REQUIRED, events_file)
    deals = deals.reset_index(drop=True).copy()
    events = events.reset_index(drop=True).copy()
    rows_in = {"deals": len(deals), "stage_events": len(events)}
    for column in DEAL_OPTIONAL:
        if column not in deals.columns:
            deals[column] = pd.NA

    qd = _Quarantine("deals", deals_file, len(deals))
    raw = deals.copy()
    for column in ["deal_id", "customer", "team", "rep", "status", "pipeline", "lost_reason"]:
        deals[column] = deals[column].astype("string").str.strip()
    deals["status"] = deals["status"].str.lower()
    deals["pipeline"] = deals["pipeline"].fillna(config.default_pipeline).replace("", config.default_pipeline)

    for column in ["deal_id", "customer", "team", "rep", "status"]:  # stripped above: blank is missing or ""
        qd.flag(deals[column].isna() | deals[column].eq(""), column, f"{column} is missing")
    qd.flag(_blank(raw["created_at"]), "created_at", "created_at is missing")
    for column in DEAL_DATES:
        deals[column] = parse_datetimes(raw[column], dayfirst, date_format)
        qd.flag(deals[column].isna() & ~_blank(raw[column]), column, f"{column} is not a date", raw[column])
    qd.flag(~deals["status"].isin(STATUSES), "status", "status is not one of open, won, lost", raw["status"])
    qd.flag(~deals["pipeline"].isin(config.pipelines), "pipeline",
            f"pipeline is not one of {', '.join(config.pipelines)}", raw["pipeline"])

    amount_text = raw["amount"]
    deals["amount"] = parse_amounts(amount_text)
    qd.flag(deals["amount"].isna() & ~_blank(amount_text), "amount", "amount is not a number", amount_text)
    qd.flag(deals["amount"] < 0, "amount", "amount is negative", amount_text)
    for column in ["win_probability", "payment_days"]:
        if pd.api.types.is_numeric_dtype(raw[column]):
            values = raw[column].astype(float)
        elif column == "win_probability":  # "35%" or "35"
            values = parse_amounts(raw[column].astype("string").str.rstrip("%"))
        else:
            values = pd.to_numeric(raw[column], errors="coerce")
        qd.flag(values.isna() & ~_blank(raw[column]), column, f"{column} is not a number", raw[column])
        deals[column] = values
    # Probability as a fraction: a column whose values exceed 1 is in percent.
    if deals["win_probability"].max(skipna=True) > 1:
        deals["win_probability"] = deals["win_probability"] / 100
    qd.flag(~deals["win_probability"].between(0, 1) & deals["win_probability"].notna(), "win_probability",
            "win_probability is not between 0 and 1 (or 0 and 100 %)", raw["win_probability"])
    qd.flag(deals["payment_days"] < 0, "payment_days", "payment_days is negative", raw["payment_days"])

    qd.flag(deals["deal_id"].duplicated(keep=False) & deals["deal_id"].notna(), "deal_id",
            "deal_id is duplicated", raw["deal_id"])
    closed = deals["status"].isin(["won", "lost"])
    qd.flag(closed & deals["closed_at"].isna(), "closed_at", "closed deal has no closed_at")
    # a close *date* (no time) covers its whole day, so a deal created and closed that day is fine
    close_date_only = deals["closed_at"] == deals["closed_at"].dt.normalize()
    closed_before = (deals["closed_at"] < deals["created_at"].dt.normalize()) & close_date_only | \
        (deals["closed_at"] < deals["created_at"]) & ~close_date_only
    qd.flag(closed_before, "closed_at", "closed_at is before created_at", raw["closed_at"])

    if as_of is None:
        latest = pd.concat(
            [deals["created_at"], deals["closed_at"], parse_datetimes(events["entered_at"], dayfirst, date_format)]
        ).max()
        as_of = (latest.normalize() + pd.Timedelta(days=1)) if pd.notna(latest) else pd.Timestamp.now().normalize()
    as_of_text = (f"{as_of - pd.Timedelta(days=1):%Y-%m-%d}" if as_of == as_of.normalize() else f"{as_of:%Y-%m-%d %H:%M}")
    qd.flag(deals["created_at"] >= as_of, "created_at", f"created_at is after the as-of date {as_of_text}", raw["created_at"])
    notes = _normalise_categories(deals, raw, config)
    # Open deals carry no closing date even if the export filled one in.
    deals.loc[deals["status"] == "open", "closed_at"] = pd.NaT
    lost = deals["status"] == "lost"
    deals.loc[lost, "lost_reason"] = deals.loc[lost, "lost_reason"].fillna(UNSPECIFIED_REASON).replace("", UNSPECIFIED_REASON)

    # --- events ---
    qe = _Quarantine("stage_events", events_file, len(events))
    raw_events = events.copy()
    events["deal_id"] = events["deal_id"].astype("string").str.strip()
    for column in EVENT_REQUIRED:
        qe.flag(_blank(raw_events[column]), column, f"{column} is missing")
    events["entered_at"] = parse_datetimes(raw_events["entered_at"], dayfirst, date_format)
    qe.flag(events["entered_at"].isna(), "entered_at", "entered_at is not a date", raw_events["entered_at"])

    good_deals = deals[~qd.bad].reset_index(drop=True)
    at = positions(events["deal_id"], good_deals["deal_id"])
    qe.flag(~isin(events["deal_id"], deals["deal_id"]), "deal_id", "event for a deal not in the deals table", raw_events["deal_id"])
    qe.flag(pd.Series(at < 0), "deal_id", "event for a quarantined deal", raw_events["deal_id"])

    def per_event(column: str) -> pd.Series:
        """The event's deal's ``column`` (dtype kept even when no deal is left)."""
        return take(good_deals[column], at).set_axis(events.index)

    pipeline = per_event("pipeline")
    events["stage"] = _stage_keys(raw_events["stage"], pipeline, config)
    qe.flag(events["stage"].isna(), "stage", "stage is not a stage of the deal's pipeline", raw_events["stage"])
    created, closed_at = per_event("created_at"), per_event("closed_at")
    # A date without a time (midnight) covers that whole day: CRMs export close and create *dates*
    # while stage history carries times.
    created_is_date = created == created.dt.normalize()
    closed_is_date = closed_at == closed_at.dt.normalize()
    event_day = events["entered_at"].dt.normalize()
    before_created = (event_day < created) & created_is_date | (events["entered_at"] < created) & ~created_is_date
    after_closed = (event_day > closed_at) & closed_is_date | (events["entered_at"] > closed_at) & ~closed_is_date
    qe.flag(before_created, "entered_at", "entered_at is before the deal's created_at", raw_events["entered_at"])
    qe.flag(after_closed, "entered_at", "entered_at is after the deal's closed_at", raw_events["entered_at"])
    qe.flag(events["entered_at"] >= as_of, "entered_at", f"entered_at is after the as-of date {as_of_text}", raw_events["entered_at"])

    # --- consistency of each deal with its events ---
    ok_events = events[~qe.bad]
    final = {p: config.stage_keys(p)[-1] for p in config.pipelines}
    is_final = ok_events["stage"].to_numpy() == pipeline[~qe.bad].map(final).astype("object").to_numpy()
    reached_final = isin(deals["deal_id"], ok_events.loc[is_final, "deal_id"])
    has_events = isin(deals["deal_id"], ok_events["deal_id"])
    qd.flag(~has_events, "deal_id", "deal has no valid stage event")
    qd.flag((deals["status"] == "won") & ~reached_final, "status", "won deal never reached the final stage", raw["status"])
    qd.flag((deals["status"] != "won") & reached_final, "status", "deal reached the final stage but is not won", raw["status"])
    bad_ids = deals.loc[qd.bad, "deal_id"].dropna()
    newly_bad = bad_ids[~isin(bad_ids, deals.loc[~qd.bad, "deal_id"])]
    qe.flag(isin(events["deal_id"], newly_bad), "deal_id", "event for a quarantined deal", raw_events["deal_id"])

    quarantine = pd.concat([qd.frame(raw["deal_id"]), qe.frame(raw_events["deal_id"])], ignore_index=True)
    if quarantine.empty:
        quarantine = empty_quarantine()
    deals_ok = deals[~qd.bad].reset_index(drop=True)
    events_ok = events[~qe.bad].sort_values(["deal_id", "entered_at"], kind="stable").reset_index(drop=True)
    if "date_known" in events_ok:
        events_ok = events_ok.assign(date_known=events_ok["date_known"].fillna(True).astype(bool))
    else:
        events_ok = events_ok.assign(date_known=True)
    return Dataset(
        deals=deals_ok,
        events=events_ok[EVENT_REQUIRED + ["date_known"]].astype({"stage": "string"}),
        quarantine=quarantine,
        rows_in=rows_in,
        as_of=as_of,
        source=f"{deals_file}, {events_file}",
        notes=notes,
    )


def _normalise_categories(deals: pd.DataFrame, raw: pd.DataFrame, config: FunnelConfig) -> list[str]:
    """Map categorical columns to their canonical values in place (English or Chinese spellings).

    A value that matches no spelling becomes missing, and a note says how many and which, so
    the row is still analysed but nothing is silently changed.
    """
    notes = []
    for column in config.categories:
        if column not in deals:
            continue
        lookup = config.category_lookup(column)
        if pd.api.types.is_bool_dtype(raw[column]) and set(lookup.values()) <= {True, False}:
            deals[column] = raw[column].astype("boolean")  # already yes/no: nothing to spell out
            continue
        codes, uniques = pd.factorize(raw[column])  # map each distinct spelling once
        spelled = np.array([lookup.get(normalise_name(v)) if str(v).strip() else None for v in uniques] + [None],
                           dtype=object)
        mapped = pd.Series(spelled[codes], index=raw.index, dtype="object")
        unknown = (codes >= 0) & mapped.isna().to_numpy() & ~_blank(raw[column]).to_numpy()
        if unknown.any():
            examples = ", ".join(repr(v) for v in pd.unique(raw[column][unknown])[:3])
            notes.append(f"{column}: {int(unknown.sum())} value(s) not recognised ({examples}); treated as missing")
        deals[column] = mapped.astype("boolean") if set(lookup.values()) <= {True, False} else mapped
    return notes


def _stage_keys(names: pd.Series, pipeline: pd.Series, config: FunnelConfig) -> pd.Series:
    """Map stage names (key or label, any case/spacing) to keys of each row's pipeline; else NA."""
    codes, uniques = pd.factorize(names)
    normalised = [normalise_name(n) for n in uniques]
    out = np.full(len(names), None, dtype=object)
    pipeline_codes, pipelines = pd.factorize(pipeline)
    for p_code, name in enumerate(pipelines):
        lookup = config.stage_lookup(name)
        keys = np.array([lookup.get(n) for n in normalised] + [None], dtype=object)
        rows = pipeline_codes == p_code
        out[rows] = keys[codes[rows]]
    out = pd.Series(out, index=names.index)
    return out.astype("string")


def quality_summary(data: Dataset) -> pd.DataFrame:
    """Rows in, analysed and quarantined per table, then the quarantine count per reason.

    Columns ``table, reason, rows``; the ``rows in`` / ``analysed`` / ``quarantined`` lines come
    first for each table, so ``rows in = analysed + quarantined`` can be read off directly.
    """
    analysed = analysed_rows(data)
    counts = quarantine_counts(data)
    rows = []
    for table, n_in in data.rows_in.items():
        q = counts[counts["table"] == table]
        rows += [
            {"table": table, "reason": "rows in", "rows": n_in},
            {"table": table, "reason": "analysed", "rows": analysed[table]},
            {"table": table, "reason": "quarantined", "rows": int(q["rows"].sum())},
        ]
        for reason, n in zip(q["reason"], q["rows"]):
            rows.append({"table": table, "reason": f"  {reason}", "rows": int(n)})
    return pd.DataFrame(rows)


def analysed_rows(data: Dataset) -> dict[str, int]:
    """Valid rows per table (an engine dataset counts its events where they are)."""
    return getattr(data, "analysed", None) or {"deals": len(data.deals), "stage_events": len(data.events)}


def quarantine_counts(data: Dataset) -> pd.DataFrame:
    """Quarantined rows per ``table`` and ``reason`` (column ``rows``), most frequent first per
    table; an engine dataset brings these counts back with only example rows."""
    counts = getattr(data, "quarantine_counts", None)
    if counts is None:
        counts = data.quarantine.groupby(["table", "reason"], sort=False).size().rename("rows").reset_index()
    return counts.sort_values(["table", "rows"], ascending=[True, False], kind="stable").reset_index(drop=True)
