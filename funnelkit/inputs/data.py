"""Validate raw tables into the canonical ``deals`` / ``stage_events`` tables, with a quarantine.

:func:`validate` is pure: it takes raw DataFrames (as read by :mod:`funnelkit.inputs.io`) and returns a
:class:`Dataset`. A row that cannot be analysed is not dropped silently: it goes to
``Dataset.quarantine`` with the file, the 1-based data row (a CSV's line number minus one), the
column, the value and the reason, so that for each table

    rows in = rows analysed + rows quarantined.

A problem that stops all analysis (a missing column, an empty table) raises :class:`DataError`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from funnelkit.config import FunnelConfig, normalise_name

DEAL_REQUIRED = ["deal_id", "status"]
DEAL_OPTIONAL = [
    "customer", "team", "rep", "created_at", "amount", "pipeline", "closed_at", "lost_reason", "industry", "contact", "need", "win_probability",
    "strategic_value", "follow_up_cost", "payment_days", "competitive_position", "need_fit",
    "decision_maker_engaged", "budget_confirmed", "expected_start", "last_follow_up_at",
]
DEAL_FIELDS = DEAL_OPTIONAL  # every deal column besides the required ones
NO_TEAM = "All"  # the team of every deal when the export has no team column
# Why a row was quarantined: a reason key, with the column for the keys that name one
# (``missing:team``, see :func:`reason`). Reports word the key in their language (text.yaml
# ``quarantine_<key>``, :func:`funnelkit.presentation.present.quarantine_words`); the command line in English
# (:func:`reason_text`, from these templates).
QUARANTINE_REASONS = {
    "missing": "{column} is missing",
    "out_of_range": "{column} is outside 1677–2262 (list placeholder dates such as 9999-12-31 under `no_date` in the preset)",
    "not_a_date": "{column} is not a date",
    "no_date": "deal has no date: no created_at and no dated stage entry",
    "unknown_status": "status is not one of open, won, lost",
    "unknown_pipeline": "pipeline is not one of {pipelines}",
    "not_a_number": "{column} is not a number",
    "not_finite": "{column} is not a finite number",
    "negative": "{column} is negative",
    "other_currency": "{column} is in another currency than funnel.yaml's `currency`",
    "probability_range": "win_probability is not between 0 and 1 (or 0 and 100 %)",
    "duplicated": "{column} is duplicated",
    "exact_duplicate": "an exact duplicate of an earlier row (every field equal): that row is analysed, this copy is not",
    "total_line": "a total line (合计, Total …), not a deal",
    "closed_no_date": "closed deal has no closed_at",
    "closed_before_created": "closed_at is before created_at",
    "after_as_of": "{column} is after the as-of date {as_of}",
    "unknown_deal": "event for a deal not in the deals table",
    "quarantined_deal": "event for a quarantined deal",
    "unknown_stage": "stage is not a stage of the deal's pipeline",
    "before_created": "entered_at is before the deal's created_at",
    "after_closed": "entered_at is after the deal's closed_at",
    "no_event": "deal has no valid stage event",
    "won_not_final": "won deal never reached the final stage",
    "final_not_won": "deal reached the final stage but is not won",
}


# words a spreadsheet export writes in a total line at the bottom (normalised: lower case, no spaces)
TOTAL_WORDS = ("合计", "总计", "小计", "總計", "合計", "total", "grandtotal", "subtotal", "sum", "totals")


def total_lines(raw: pd.DataFrame, no_id: pd.Series) -> tuple[pd.Series, str]:
    """Rows without a deal id that a spreadsheet added as a total line (a cell reading 合计, 总计,
    Total …), and the column where the word was first found (``deal_id`` when none was)."""
    hit = pd.Series(False, index=raw.index)
    column = "deal_id"
    candidates = no_id.fillna(False).to_numpy(dtype=bool)
    if not candidates.any():
        return hit, column
    for name in raw.columns:
        if not (pd.api.types.is_object_dtype(raw[name]) or pd.api.types.is_string_dtype(raw[name])):
            continue
        words = raw.loc[candidates, name].astype("string").str.replace(r"[\s:：]+", "", regex=True).str.casefold()
        found = words.isin(TOTAL_WORDS).fillna(False)
        if found.any() and not hit.any():
            column = str(name)
        hit.loc[found[found].index] = True
    return hit, column


# Notes on how the data was read, shown at the end of the data-quality section: English here (the
# command line); reports word a note in their language from text.yaml ``data_note_<key>`` with the
# same fields, found again in the English text by :func:`note_parts`.
DATA_NOTES = {
    "no_team": "{file}: no team column: every deal is in team {team} (map a column to team, or set "
               "`defaults: {{team: ...}}` in the preset)",
    "no_created_at": "{file}: no created_at column: a deal is created when it first enters a stage",
    "no_columns": "{file}: no {columns} column: figures that need them are left out",
    "close_rows": "{file}: {rows} rows mark a close ({values}, `~` under `stages:`), not a stage entry: the deals' "
                  "status and close date record it",
    "other_rows": "{file}: {rows} rows change another field than {kept} in column {column} ({values}): not stage "
                  "changes, not read",
    "unrecognised": "{column}: {rows} value(s) not recognised ({examples}); treated as missing",
    "lookup_unmatched": "{file}: no row for {rows} deals' {lookup_column} (e.g. {example}); their looked-up fields are missing",
    "outcome_orphans": "{file}: {rows} of {total} rows name a deal not in {deals_file} (e.g. {example}); they are not used",
    "history_rows": "{file}: {rows} rows → {entries} stage entries; {repeats} rows repeat the current stage "
                    "(amount or probability changes) and {closes} mark a close without a stage",
    "date_entered": "{file}: {stage_columns} 'date entered' columns → {entries} stage entries ({closes} close dates are not "
                    "stage entries)",
    "snapshot": "{file}: snapshot export — {stages} stages reached with the date unknown: counted in the funnel, "
                "left out of time in stage",
}


def data_note(key: str, **fields: object) -> str:
    """A note of :data:`DATA_NOTES` in English, its fields filled in."""
    return DATA_NOTES[key].format(**fields)


def _note_pattern(template: str) -> re.Pattern[str]:
    import string

    parts = [re.escape(literal) + (f"(?P<{name}>.*?)" if name else "")
             for literal, name, _spec, _conv in string.Formatter().parse(template)]
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


def note_parts(note: str) -> tuple[str, dict[str, str]] | None:
    """``(key, fields)`` of a note made by :func:`data_note`, or None for any other text."""
    for key, template in DATA_NOTES.items():
        found = _note_pattern(template).match(str(note))
        if found:
            return key, found.groupdict()
    return None


# the value shown for an exact duplicate: the earlier row it repeats (in its file's numbering)
COPY_OF = "row {row}"


def copy_of(value: object) -> int | None:
    """The earlier row an exact duplicate repeats, from its quarantine value (:data:`COPY_OF`)."""
    found = re.fullmatch(re.escape(COPY_OF).replace(re.escape("{row}"), r"(\d+)"), str(value))
    return int(found.group(1)) if found else None


def exact_copies(raw: pd.DataFrame, ids: pd.Series, rows: np.ndarray | None = None, by_id: bool = True) -> pd.Series:
    """Per row of ``raw``, the row (1-based, or ``rows``' number) of the first earlier row equal to
    it in every field as written, for rows with a deal id (``ids``, trimmed; missing or "" is none);
    missing for a row that repeats no earlier row. Missing values are equal to each other, as SQL's
    ``partition by`` groups them (the engines' :func:`funnelkit.events.sql.deal_checks_sql`). ``by_id``:
    look first only at rows whose id repeats (deals; not events, whose ids nearly all repeat)."""
    out = pd.Series(pd.NA, index=raw.index, dtype="Int64")
    has_id = (ids.notna() & ids.ne("")).fillna(False).to_numpy(dtype=bool)
    # only rows whose id repeats can repeat a whole row; the grouping over every column then runs
    # over the few rows that do (at 1M deals' 2.4M events it took 6 s of CPU over every row)
    candidates = has_id & ids.duplicated(keep=False).to_numpy(dtype=bool) if by_id else has_id
    if candidates.all():
        candidates = raw.duplicated(keep=False).to_numpy(dtype=bool)
    elif candidates.any():  # then among those, rows equal to another in every column (one hashing pass)
        candidates[candidates] = raw.loc[candidates].duplicated(keep=False).to_numpy(dtype=bool)
    if not candidates.any():
        return out
    sub = raw.loc[candidates].astype("object")
    group = sub.groupby([sub.iloc[:, i] for i in range(sub.shape[1])], dropna=False, sort=False).ngroup().to_numpy()
    where = np.flatnonzero(candidates)
    first = pd.Series(where).groupby(group).transform("min").to_numpy()
    copy = first < where
    numbers = first + 1 if rows is None else rows[first]
    out.iloc[where[copy]] = numbers[copy]
    return out


def reason(key: str, column: str | None = None) -> str:
    """A quarantine reason: ``key`` of :data:`QUARANTINE_REASONS`, with ``:column`` for the keys
    whose wording names the column (``missing:team``), so each column's reason is counted apart."""
    if key not in QUARANTINE_REASONS:
        raise KeyError(f"unknown quarantine reason {key!r}")
    return f"{key}:{column}" if column else key


def reason_parts(text: str) -> tuple[str, str | None]:
    """``(key, column)`` of a quarantine reason made by :func:`reason`."""
    key, _, column = str(text).partition(":")
    return key, column or None


def as_of_label(as_of: pd.Timestamp) -> str:
    """The as-of date as readers know it: the last day included (the bound is exclusive)."""
    return f"{as_of - pd.Timedelta(days=1):%Y-%m-%d}" if as_of == as_of.normalize() else f"{as_of:%Y-%m-%d %H:%M}"


def reason_text(text: str, as_of: pd.Timestamp | None = None, pipelines: list[str] | None = None) -> str:
    """A quarantine reason in English, for the command line and error messages (reports word it
    in their language); text that is not a reason key is returned as it is."""
    key, column = reason_parts(text)
    if key not in QUARANTINE_REASONS:
        return str(text)
    return QUARANTINE_REASONS[key].format(column=column or "", as_of=as_of_label(as_of) if as_of is not None else "the as-of date",
                                          pipelines=", ".join(pipelines) if pipelines else "the configured pipelines")
AS_OF_HORIZON = pd.Timedelta(days=365)  # an inferred as-of date may be at most this far past today
DEAL_DATES = ["created_at", "closed_at", "expected_start", "last_follow_up_at"]
EVENT_REQUIRED = ["deal_id", "stage", "entered_at"]
STATUSES = ("open", "won", "lost")
UNSPECIFIED_REASON = "unspecified"
QUARANTINE_COLUMNS = ["table", "file", "row", "deal_id", "column", "value", "reason"]
FILE_ROW = "_file_row"  # an events column a reader may add: the row's 1-based row in its file


class DataError(ValueError):
    """Input that cannot be analysed at all (missing file or column, empty table)."""


@dataclass(frozen=True)
class Dataset:
    """Validated canonical tables plus what was set aside.

    ``as_of`` is the exclusive time bound of the data: nothing at or after it was accepted.
    ``rows_in`` counts the input rows per table (``deals``, ``stage_events``). ``columns`` names,
    per table, the export's column of each canonical field a preset or mapping renamed
    (``{"deals": {"closed_at": "Close Date"}}``), so messages name the column as the file has it.
    """

    deals: pd.DataFrame
    events: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: dict[str, int]
    as_of: pd.Timestamp
    source: str = ""
    notes: list[str] = field(default_factory=list)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)

    def file_column(self, table: str, column: str) -> str | None:
        """The export's name of canonical ``column`` of ``table`` where it was renamed, else None."""
        named = self.columns.get(table, {}).get(column)
        return named if named is not None and named != column else None

    def __repr__(self) -> str:
        return (f"Dataset({len(self.deals):,} deals, {len(self.events):,} stage events, "
                f"{len(self.quarantine):,} rows quarantined, as of {self.as_of:%Y-%m-%d %H:%M} (exclusive); {self.source})")

    def _repr_html_(self) -> str:
        """A short summary for Jupyter instead of every table: counts, teams, as-of and quality."""
        import html

        teams = ", ".join(map(str, sorted(self.deals["team"].dropna().unique()))) if "team" in self.deals else ""
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in (
            ("deals", f"{len(self.deals):,}"), ("stage events", f"{len(self.events):,}"),
            ("quarantined rows", f"{len(self.quarantine):,}"), ("as of (exclusive)", f"{self.as_of:%Y-%m-%d %H:%M}"),
            ("teams", teams), ("source", self.source)))
        return f"<div><strong>Dataset</strong><table>{rows}</table></div>"


def empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in QUARANTINE_COLUMNS}).astype({"row": "Int64"})


EXCEL_EPOCH = pd.Timestamp("1899-12-30")  # Excel's day 0 (it counts 1900 as a leap year)
# day and month order is only a question for d-m-y / m-d-y text: 05-03-2024, 5/3/24 10:15
DMY_PATTERN = r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?=$|[ T])(.*)$"
_AWARE = r"(?:Z|[+-]\d{2}:?\d{2})$"
_SERIAL = r"^\d{5}(?:\.\d+)?$"
MIN_DATE, MAX_DATE = pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D")  # what datetime64[ns] holds
MAX_SHOWN = 80  # characters of a cell shown in any message


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` as text for a message, cut to ``limit`` characters (a file of NUL bytes or a 1 MB
    cell must not make a 1 MB message); control characters are shown escaped."""
    text = str(value)
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text):,} characters)"
    return text.encode("unicode_escape").decode("ascii") if any(ord(c) < 32 for c in text) else text


@dataclass(frozen=True)
class Parsing:
    """How an export writes its values (from the preset; plain data).

    ``dayfirst`` settles ``05-03-2024`` for every date column (``None``: decide each column from
    its values); ``date_formats`` gives a strptime format per canonical column (``"*"`` for all);
    ``timezone`` is the zone of times written without one (``None``: the machine's local zone);
    aware times are converted into it. ``no_date`` lists placeholder dates (``9999-12-31``) that
    mean "no date". ``decimal`` is the decimal mark of amounts (``.`` or ``,``).
    """

    dayfirst: bool | None = None
    date_formats: Mapping[str, str] = field(default_factory=dict)
    timezone: str | None = None
    no_date: tuple[str, ...] = ()
    decimal: str = "."

    def format_for(self, column: str) -> str | None:
        return self.date_formats.get(column) or self.date_formats.get("*")


def local_zone() -> Any:
    """The machine's local time zone: ``$TZ`` or ``/etc/localtime`` (so summer time is followed),
    else today's fixed offset."""
    import datetime as dt
    import os
    from zoneinfo import ZoneInfo

    try:
        if os.environ.get("TZ"):
            return ZoneInfo(os.environ["TZ"].lstrip(":"))
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f)
    except (OSError, ValueError, KeyError):
        return dt.datetime.now().astimezone().tzinfo


def _zone(timezone: str | None) -> Any:
    if not timezone:
        return local_zone()
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataError(f"timezone {shown(timezone)!r} is not a time zone name like Asia/Shanghai or UTC") from None


def _naive_in(parsed: pd.Series, zone: Any) -> pd.Series:
    """Aware times converted to ``zone`` and made naive; naive times are already in ``zone``."""
    if getattr(parsed.dt, "tz", None) is not None:
        return parsed.dt.tz_convert(zone).dt.tz_localize(None)
    return parsed


def _iso(text: pd.Series, zone: Any) -> pd.Series:
    """ISO 8601 text → naive times in ``zone`` (NaT where not ISO)."""
    if text.empty:
        return pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
    try:
        out = pd.to_datetime(text, errors="coerce", format="ISO8601")
    except ValueError:  # naive and aware times mixed, or several offsets: one zone settles them
        aware = text.str.contains(_AWARE, regex=True, na=False)
        out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
        if aware.any():
            out[aware] = _naive_in(pd.to_datetime(text[aware], errors="coerce", format="ISO8601", utc=True), zone)
        if (~aware).any():
            out[~aware] = _naive_in(pd.to_datetime(text[~aware], errors="coerce", format="ISO8601", utc=True), "UTC")
        return out
    return _naive_in(out, zone).astype("datetime64[us]")


def day_month_order(parts: pd.DataFrame, where: str) -> bool:
    """Day first (``True``) or month first, decided once for the whole column from its values."""
    first, second = parts[0].astype(int), parts[2].astype(int)
    # 31/31/2024 is no date either way: it is quarantined, not evidence
    day_first, month_first = (first > 12) & (second <= 12), (second > 12) & (first <= 12)
    key = "set `dayfirst: true` or `dayfirst: false` (or `date_formats`) in the preset"
    rows = lambda mask: " and ".join(f"row {i + 1} {shown(v)!r}" for i, v in parts.loc[mask, "text"].head(2).items())  # noqa: E731
    if day_first.any() and month_first.any():
        raise DataError(f"{where}: the dates contradict each other: {rows(day_first)} put the day first, "
                        f"{rows(month_first)} the month; {key}")
    if day_first.any() or month_first.any():
        return bool(day_first.any())
    differ = first != second
    if differ.any():
        examples = parts.loc[differ, "text"].head(2)
        raise DataError(f"{where}: cannot tell day from month: every date has both numbers at most 12 "
                        f"({' and '.join(f'row {i + 1} {shown(v)!r}' for i, v in examples.items())}); {key}")
    return True  # 01/01, 02/02 …: either order reads the same


# 2024年3月5日, 2024年03月05日 14:07, 2024年3月5日 14时07分(30秒): Chinese CRMs and Excel on Chinese Windows
CHINESE_DATE = r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日\s*(?:(\d{1,2})\s*[:时]\s*(\d{1,2})\s*分?(?:\s*[:：]?\s*(\d{1,2})\s*秒?)?)?$"


def chinese_dates(text: pd.Series) -> pd.Series:
    """``2024年3月5日`` → ``2024-03-05``, ``2024年3月5日 14时07分`` → ``2024-03-05 14:07:00``: the
    year, month and day are named, so there is no order to decide. Other values are left as they are."""
    parts = text.str.extract(CHINESE_DATE)
    found = parts[0].notna()
    if not found.any():
        return text
    p = parts[found]
    iso = p[0] + "-" + p[1].str.zfill(2) + "-" + p[2].str.zfill(2)
    timed = p[3].notna()
    iso = iso.where(~timed, iso + " " + p[3].str.zfill(2) + ":" + p[4].str.zfill(2) + ":" + p[5].fillna("0").str.zfill(2))
    return text.where(~found, iso)


_TWELVE_HOUR = r"^(\s*)(\d{1,2})(:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*([AaPp])\.?\s*[Mm]\.?$"


def twenty_four_hour(times: pd.Series) -> pd.Series:
    """The time after a date on a 24-hour clock: `` 03:05 PM`` → `` 15:05``, `` 12:30 AM`` →
    `` 00:30``, `` 12:30 PM`` → `` 12:30`` (US CRMs write ``MM/DD/YYYY hh:mm AM/PM``). An hour
    outside 1–12 before AM/PM is left as written, so the date is quarantined as not a date."""
    parts = times.str.extract(_TWELVE_HOUR)
    hour = pd.to_numeric(parts[1], errors="coerce")
    ok = hour.between(1, 12)
    if not ok.any():
        return times
    pm = parts[3].str.lower().eq("p")
    converted = (hour % 12 + pm.astype(int) * 12).astype("Int64").astype("string").str.zfill(2)
    return times.where(~ok, parts[0] + converted + parts[2])


def parse_dates(values: pd.Series, parsing: Parsing | None = None, column: str = "", where: str = "",
                ) -> tuple[pd.Series, pd.Series]:
    """Parse one column of dates: (naive ``datetime64[ns]`` in the configured zone, out-of-range mask).

    The order of day and month in ``05-03-2024`` is decided once per column — by ``parsing.dayfirst``
    or the column's format, else by its unambiguous values (a day above 12) — never value by value;
    a column that contradicts itself or stays ambiguous is a :class:`DataError` naming ``where`` and
    two example rows. ISO 8601 stays as it is; plain numbers 10,000–100,000 are Excel serial days.
    Aware times are converted to ``parsing.timezone`` (else the local zone); naive times are taken
    to be in it already. Dates outside 1677–2262 (what pandas holds) come back NaT and flagged
    ``True`` in the mask, unless listed in ``parsing.no_date`` (then simply NaT, "no date").
    Unparseable values are NaT with the mask ``False``.
    """
    parsing = parsing or Parsing()
    zone = _zone(parsing.timezone)
    fmt = parsing.format_for(column)
    if pd.api.types.is_datetime64_any_dtype(values):
        out = _naive_in(values, zone).astype("datetime64[us]")
    else:
        obj = values.astype("object").where(values.notna(), None)
        is_text = obj.map(lambda v: isinstance(v, str))
        text = obj[is_text].str.strip()
        text = text[text.ne("")]
        out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
        numeric = pd.to_numeric(obj.where(~is_text), errors="coerce")  # Excel cells: numbers, datetimes
        others = obj[~is_text & obj.notna() & numeric.isna()]
        if len(others):  # datetimes from Excel or a reader: naive ones are wall-clock times already
            try:
                parsed = pd.to_datetime(others, errors="coerce")
            except (ValueError, TypeError):  # aware and naive mixed
                parsed = pd.to_datetime(others.map(lambda v: pd.Timestamp(v).tz_convert(zone).tz_localize(None)
                                                   if getattr(v, "tzinfo", None) else v), errors="coerce")
            out[others.index] = _naive_in(parsed, zone)
        serial = pd.concat([numeric.dropna(), pd.to_numeric(text[text.str.match(_SERIAL)], errors="coerce")])
        serial = serial[serial.between(10_000, 100_000)]
        if len(serial):
            out[serial.index] = EXCEL_EPOCH + pd.to_timedelta(serial, unit="D")
        text = text.drop(serial.index, errors="ignore")
        if fmt:
            parsed = pd.to_datetime(text, errors="coerce", format=fmt, utc=bool(re.search(r"%z|%Z", fmt)))
            out[text.index] = _naive_in(parsed, zone)
        elif len(text):
            text = chinese_dates(text)
            out[text.index] = _iso(text, zone)
            rest = text[out[text.index].isna()]
            parts = rest.str.extract(DMY_PATTERN)
            dmy = parts[0].notna()
            if dmy.any():
                parts = parts[dmy].assign(text=rest[dmy])
                dayfirst = parsing.dayfirst if parsing.dayfirst is not None else day_month_order(parts, where or column)
                day, month = (parts[0], parts[2]) if dayfirst else (parts[2], parts[0])
                year = parts[3].where(parts[3].str.len() == 4,
                                      parts[3].map(lambda y: f"{20 if int(y) < 69 else 19}{y}", na_action="ignore"))
                iso = year + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + twenty_four_hour(parts[4].str.replace(r"^T", " ", regex=True))
                out[iso.index] = _iso(iso, zone)
            other = rest[~dmy]
            if len(other):  # month names and other unambiguous spellings
                parsed = pd.to_datetime(other, errors="coerce", format="mixed", utc=True)
                aware = other.str.contains(_AWARE, regex=True, na=False)
                out[other.index] = _naive_in(parsed, zone).where(aware, _naive_in(parsed, "UTC"))
    if parsing.no_date:
        out = out.mask(out.dt.normalize().isin([pd.Timestamp(d) for d in parsing.no_date]))
    outside = out.notna() & ((out < MIN_DATE) | (out > MAX_DATE))
    return out.mask(outside).astype("datetime64[ns]"), outside


def parse_datetimes(values: pd.Series, dayfirst: bool | None = None, date_format: str | None = None,
                    timezone: str | None = "UTC") -> pd.Series:
    """Parse a column of dates to naive ``datetime64[ns]`` (see :func:`parse_dates`); unparseable
    and out-of-range values become NaT. ``timezone`` defaults to UTC here, so the function alone
    does not depend on the machine."""
    parsing = Parsing(dayfirst=dayfirst, date_formats={"*": date_format} if date_format else {}, timezone=timezone)
    return parse_dates(values, parsing)[0]


_CURRENCY = r"[¥￥$€£]|CNY|RMB|USD|EUR|元"
_CHINESE_UNITS = {"万": 1e4, "亿": 1e8}  # amounts written in ten thousands (万) or hundred millions (亿)
# The currencies each mark written in an amount may stand for: a mark that cannot be the configured
# currency puts the amount in another one (``$`` is several dollars, ``¥`` yuan or yen).
CURRENCY_MARKS = {"¥": ("CNY", "JPY"), "￥": ("CNY", "JPY"), "元": ("CNY",), "CNY": ("CNY",), "RMB": ("CNY",),
                  "$": ("USD", "CAD", "AUD", "NZD", "HKD", "SGD", "MXN", "TWD"), "USD": ("USD",),
                  "€": ("EUR",), "EUR": ("EUR",), "£": ("GBP",)}


def foreign_marks(currency: str) -> str | None:
    """A regular expression matching the currency marks (symbols and codes) that cannot stand for
    ``currency``, or None. It has no backslash (symbols go in a character class, where ``$`` is
    literal), so SQL dialects that treat ``\\`` in string literals differently read it alike."""
    marks = [mark for mark, codes in CURRENCY_MARKS.items() if currency.upper() not in codes]
    symbols = "".join(m for m in marks if len(m) == 1)
    parts = ([f"[{symbols}]"] if symbols else []) + [m for m in marks if len(m) > 1]
    return "|".join(parts) or None


def in_other_currency(amounts: pd.Series, currency: str, codes: pd.Series | None = None) -> pd.Series:
    """True where an amount is not in ``currency``: its text carries a mark that cannot stand for it
    (``€1,200`` when the currency is USD), or its row's currency code (``codes``, a currency column
    of the export; blank means the configured one) names another. Summing such amounts with the
    others would give a figure in no currency."""
    marks = None if pd.api.types.is_numeric_dtype(amounts) else foreign_marks(currency)  # a number carries no mark
    other = amounts.astype("string").str.contains(marks, regex=True).fillna(False).astype(bool) if marks \
        else pd.Series(False, index=amounts.index)
    if codes is not None:
        code = codes.astype("string").str.strip().str.upper()
        other |= (code.notna() & code.ne("") & code.ne(currency.upper())).fillna(False).astype(bool)
    return other & ~_blank(amounts)


def _number_pattern(mark: str) -> str:
    group = r"[,\s'’]" if mark == "." else r"[.\s'’]"
    return rf"^[+-]?(?:\d{{1,3}}(?:{group}\d{{3}})+|\d+)?(?:{re.escape(mark)}\d+)?(?:[eE][+-]?\d+)?$"


def parse_amounts(values: pd.Series, decimal: str = ".", where: str = "") -> pd.Series:
    """Numbers from text such as ``¥1,200,000``, ``1 200 000.50`` or ``CNY 35,000``; else NaN.

    ``decimal`` is the export's decimal mark: with ``,`` the text ``1.000,50`` and ``1 000,50``
    read 1000.5. A value that reads as a number only with the other mark (``1.000,50`` when the
    mark is ``.``) is a :class:`DataError` naming ``where``, the row and the preset key, because
    reading it either way without being told would give a wrong number silently. ``inf`` and
    ``1e309`` come back infinite: validation quarantines them.
    """
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    text = values.astype("string").str.replace(_CURRENCY, "", regex=True).str.strip().str.replace("\u00a0", " ") \
        .str.replace("\u202f", " ")
    unit = text.str.extract(r"^(.*?\d)\s*([万亿])$")  # 12.5万 = 125,000; 1.2亿 = 120,000,000
    scaled = unit[1].notna()
    if scaled.any():
        scaled_amounts = parse_amounts(unit.loc[scaled, 0], decimal, where) * unit.loc[scaled, 1].map(_CHINESE_UNITS)
        rest = parse_amounts(values[~scaled.to_numpy()], decimal, where) if (~scaled).any() else scaled_amounts.iloc[:0]
        # 32.3 × 10,000 is 322999.99999999994 in binary: a 万 amount is a whole number of ten-thousandths
        return pd.concat([rest, scaled_amounts.round(4)]).reindex(values.index).astype(float)
    plain = text.str.fullmatch(r"[+-]?\d+").fillna(False).astype(bool) if decimal != "." else text.notna()
    out = pd.to_numeric(text.where(plain), errors="coerce").astype(float)
    rest = text[out.isna() & text.notna() & text.ne("")]
    if rest.empty:
        return out
    valid = rest.str.match(_number_pattern(decimal)).fillna(False).astype(bool)
    other = "," if decimal == "." else "."
    contradicts = ~valid & rest.str.match(_number_pattern(other)).fillna(False).astype(bool)
    if contradicts.any():
        examples = " and ".join(f"row {i + 1} {shown(values[i])!r}" for i in contradicts[contradicts].index[:2])
        raise DataError(f"{where or 'amount'}: {examples} read as numbers only with {other!r} as the decimal mark, "
                        f"but the decimal mark is {decimal!r}; set `decimal: {other!r}` in the preset if the export "
                        "writes numbers that way")
    group = r"[,\s'’]" if decimal == "." else r"[.\s'’]"
    cleaned = rest.where(~valid, rest.str.replace(group, "", regex=True).str.replace(decimal, ".", regex=False))
    out[rest.index] = pd.to_numeric(cleaned, errors="coerce").astype(float)
    return out


def _rows_text(mask: np.ndarray, values: pd.Series, limit: int = 5) -> str:
    """``"rows 1, 3 (0.8, 0.65)"``: 1-based positions and values of the first ``limit`` hits."""
    where = np.flatnonzero(mask)
    rows = ", ".join(str(i + 1) for i in where[:limit]) + (f" and {len(where) - limit} more" if len(where) > limit else "")
    examples = ", ".join(shown(v) for v in values.iloc[where[:limit]])
    return f"row{'s' if len(where) > 1 else ''} {rows} ({examples})"


def percent_as_fraction(values: pd.Series, column: str | None = None, percent: pd.Series | None = None,
                        file: str = "", raw: pd.Series | None = None) -> pd.Series:
    """Probabilities as fractions, the one percent-to-fraction rule. A column is either in
    fractions (0–1) or in percents (a value above 1, or one marked ``percent`` — written with
    ``%`` — makes it percent): it is divided by 100 as a whole.

    A column that mixes the two (``0.8``, ``80``, ``0.65``) cannot be read either way: a
    :class:`DataError` names the column (``column``, else the series' name) and the rows (1-based
    data rows, values as written in ``raw`` when given) of each kind.
    """
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    marked = np.zeros(len(numbers), bool) if percent is None else percent.fillna(False).to_numpy(dtype=bool)
    x = numbers.to_numpy()
    is_percent = marked | (x > 1)
    is_fraction = ~marked & (x > 0) & (x < 1)
    if is_percent.any() and is_fraction.any():
        name = column or (str(values.name) if values.name is not None else "probability")
        written = (raw if raw is not None else values).reset_index(drop=True)
        raise DataError(f"{file + ': ' if file else ''}{shown(name, 40)} mixes fractions and percents: "
                        f"{_rows_text(is_fraction, written)} look like fractions while "
                        f"{_rows_text(is_percent, written)} are percents; write every value one way (0.8 or 80%)")
    return numbers / 100 if is_percent.any() else numbers


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
        # in the smallest integer type: the picked codes are one per row taken (22M stays at 10M deals)
        codes = codes.astype(np.int8 if len(uniques) < 2**7 else np.int16 if len(uniques) < 2**15 else np.int32)
        picked = np.where(where >= 0, codes[np.maximum(where, 0)] if len(codes) else -1, -1).astype(codes.dtype)
        return pd.Series(pd.Categorical.from_codes(picked, categories=pd.Index(uniques, dtype="object")))
    out = values.iloc[np.maximum(where, 0)].reset_index(drop=True) if len(values) else \
        pd.Series([pd.NA] * len(where), dtype=values.dtype)
    return out.mask(pd.Series(where < 0))


class _Quarantine:
    """Collects the first reason found for each bad row of one table."""

    def __init__(self, table: str, file: str, n: int, rows: np.ndarray | None = None):
        # rows: each row's 1-based row in its file, when a reader left some file rows out
        self.table, self.file, self.rows = table, file, rows
        self.reason = pd.Series(pd.NA, index=pd.RangeIndex(n), dtype="object")
        self.column = pd.Series(pd.NA, index=self.reason.index, dtype="object")
        self.value = pd.Series(pd.NA, index=self.reason.index, dtype="object")

    def flag(self, mask: pd.Series, column: str, reason: str, values: pd.Series | None = None) -> None:
        # a comparison with a missing value is unknown (NA): not a reason on its own
        new = pd.Series(mask).fillna(False).to_numpy(dtype=bool) & self.reason.isna().to_numpy()
        if not new.any():
            return
        self.reason[new] = reason
        self.column[new] = column
        if values is not None:
            self.value[new] = [shown(v) for v in values[new].astype("object").to_numpy()]

    @property
    def bad(self) -> np.ndarray:
        return self.reason.notna().to_numpy()

    def frame(self, deal_ids: pd.Series) -> pd.DataFrame:
        bad = self.bad
        return pd.DataFrame(
            {
                "table": self.table,
                "file": self.file,
                "row": pd.array(np.flatnonzero(bad) + 1 if self.rows is None else self.rows[bad], dtype="Int64"),
                "deal_id": deal_ids[bad].astype("object").to_numpy(),
                "column": self.column[bad].to_numpy(),
                "value": self.value[bad].to_numpy(),
                "reason": self.reason[bad].to_numpy(),
            }
        )


def require_columns(df: pd.DataFrame, required: list[str], file: str, need_rows: bool = True, what: str = "") -> None:
    """:class:`DataError` naming the file, the missing columns (and ``what`` asked for them) and the
    columns found; with ``need_rows``, also when the table has a header but no data rows."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        hint = f" ({what})" if what else ""
        raise DataError(f"{file}: missing column(s) {', '.join(shown(c, 40) for c in missing)}{hint}; "
                        f"found {column_list(df.columns)}")
    if need_rows and df.empty:
        raise DataError(f"{file}: has a header but no data rows")


def column_list(columns: pd.Index, limit: int = 20) -> str:
    """Column names for a message: each cut to a readable length, at most ``limit`` of them."""
    names = [shown(c, 40) for c in list(columns)[:limit]]
    more = f" and {len(columns) - limit:,} more" if len(columns) > limit else ""
    return (", ".join(names) + more) or "none"


def _placeholder(raw: pd.Series, parsed: pd.Series, parsing: Parsing) -> pd.Series:
    """Values the preset lists as "no date" (NaT on purpose, not an unparseable date)."""
    if not parsing.no_date:
        return pd.Series(False, index=raw.index)
    text = raw.astype("string").str.strip()
    listed = text.isin(list(parsing.no_date)) | text.str[:10].isin(list(parsing.no_date))
    return listed.fillna(False).astype(bool)


def _inferred_as_of(dates: dict[tuple[str, str], pd.Series]) -> pd.Timestamp:
    """The day after the latest date seen; an error if that date is more than a year past today."""
    latest, where = pd.NaT, None
    for key, values in dates.items():
        if values.notna().any() and (pd.isna(latest) or values.max() > latest):
            latest, where = values.max(), (key, values.idxmax())
    if pd.isna(latest):
        return pd.Timestamp.now().normalize()
    if latest > pd.Timestamp.now() + AS_OF_HORIZON:
        (file, column), row = where
        raise DataError(f"{file}: row {row + 1}, column {column}: {latest:%Y-%m-%d} is more than a year past today, "
                        "so it cannot set the as-of date; pass --as-of (or `as_of:` in the preset or report matrix)")
    return latest.normalize() + pd.Timedelta(days=1)


def validate(
    deals: pd.DataFrame,
    events: pd.DataFrame,
    config: FunnelConfig,
    *,
    as_of: pd.Timestamp | None = None,
    deals_file: str = "deals",
    events_file: str = "stage_events",
    dayfirst: bool | None = None,
    date_format: str | None = None,
    parsing: Parsing | None = None,
) -> Dataset:
    """Check raw ``deals`` and ``events`` against the data contract (DESIGN.md §2).

    Required: ``deal_id`` and ``status`` in deals, ``deal_id, stage, entered_at`` in events. Other
    fields are optional: without a ``created_at`` column a deal is created at its first stage entry;
    without a ``team`` column every deal is in team "All"; ``customer``, ``rep``, ``amount`` and the
    scoring fields stay missing (a note lists them; analyses that need them say so).

    Deal rows are quarantined for: a missing deal_id, status or team, an unparseable or
    out-of-range date, an unknown status or pipeline, a negative, non-numeric or infinite amount, a
    row equal in every field to an earlier row with the same deal_id (an exact duplicate: the
    first is analysed, each later copy quarantined), a deal_id repeated with different fields
    (every row of it), a closed deal without closed_at, closed_at before created_at,
    created_at at or after ``as_of``. Event rows are quarantined for: an exact duplicate of an
    earlier event row (the first is kept), a missing value, an
    unparseable or out-of-range date, an unknown stage, a deal not in the deals table, a deal that
    was itself quarantined, entered_at before created_at, after closed_at, or at/after ``as_of``.
    Finally a deal that is won without reaching the final stage, that reached the final stage
    without being won, or that has no valid stage event is quarantined together with its events.

    ``parsing`` says how dates and numbers are written (:class:`Parsing`; ``dayfirst`` and
    ``date_format`` are shortcuts for it). ``as_of`` (exclusive bound) defaults to the start of the
    day after the latest date seen; a latest date more than a year past today is an error (pass
    an as-of date), since one mistyped year would otherwise move the whole analysis.
    """
    if parsing is None:
        parsing = Parsing(dayfirst=dayfirst, date_formats={"*": date_format} if date_format else {},
                          timezone=config.timezone)
    require_columns(deals, DEAL_REQUIRED, deals_file)
    require_columns(events, EVENT_REQUIRED, events_file)
    deals = deals.reset_index(drop=True).copy()
    events = events.reset_index(drop=True).copy()
    rows_in = {"deals": len(deals), "stage_events": len(events)}
    absent = [c for c in DEAL_FIELDS if c not in deals.columns]
    notes = []
    for column in DEAL_FIELDS:
        if column not in deals.columns:
            deals[column] = pd.NA
    if "team" in absent:
        deals["team"] = NO_TEAM
        notes.append(data_note("no_team", file=deals_file, team=repr(NO_TEAM)))

    qd = _Quarantine("deals", deals_file, len(deals))
    raw = deals.copy()
    for column in ["deal_id", "customer", "team", "rep", "status", "pipeline", "lost_reason"]:
        deals[column] = deals[column].astype("string").str.strip()
    # matched as stages and categories are (normalise_name), each distinct spelling once
    spellings = deals["status"].dropna().unique()
    deals["status"] = deals["status"].map({v: normalise_name(v) for v in spellings}).astype("string")
    deals["pipeline"] = deals["pipeline"].fillna(config.default_pipeline).replace("", config.default_pipeline)

    # an export that repeats a line: one deal, its later copies quarantined (first, so no other
    # reason counts a copy twice, and the duplicated-id rule below sees each deal once)
    deal_copies = exact_copies(raw, deals["deal_id"])
    qd.flag(deal_copies.notna(), "deal_id", reason("exact_duplicate"),
            deal_copies.map(lambda r: COPY_OF.format(row=r), na_action="ignore"))
    total, total_column = total_lines(raw, deals["deal_id"].isna() | deals["deal_id"].eq(""))
    qd.flag(total, total_column, reason("total_line"), raw[total_column] if total_column in raw else None)
    for column in ["deal_id", "team", "status"]:  # stripped above: blank is missing or ""
        qd.flag(deals[column].isna() | deals[column].eq(""), column, reason("missing", column))

    # --- event dates first: they give created_at where the export has none, and the as-of date
    # a reader that left rows out (a close written as a stage change) gives each row's file row
    file_rows = events.pop(FILE_ROW).to_numpy(dtype=np.int64) if FILE_ROW in events.columns else None
    qe = _Quarantine("stage_events", events_file, len(events), file_rows)
    raw_events = events.copy()
    events["deal_id"] = events["deal_id"].astype("string").str.strip()
    event_copies = exact_copies(raw_events, events["deal_id"], file_rows, by_id=False)
    qe.flag(event_copies.notna(), "deal_id", reason("exact_duplicate"),
            event_copies.map(lambda r: COPY_OF.format(row=r), na_action="ignore"))
    for column in EVENT_REQUIRED:
        qe.flag(_blank(raw_events[column]), column, reason("missing", column))
    events["entered_at"], outside = parse_dates(raw_events["entered_at"], parsing, "entered_at",
                                                f"{events_file}, column entered_at")
    qe.flag(outside, "entered_at", reason("out_of_range", "entered_at"), raw_events["entered_at"])
    qe.flag(events["entered_at"].isna() & ~_blank(raw_events["entered_at"]) & ~_placeholder(raw_events["entered_at"], events["entered_at"], parsing),
            "entered_at", reason("not_a_date", "entered_at"), raw_events["entered_at"])

    if "created_at" in absent:
        first = events[~qe.bad].groupby("deal_id")["entered_at"].min()
        # reindex, not map: map fails on an empty datetime Series (no valid stage entry)
        raw["created_at"] = first.reindex(deals["deal_id"]).set_axis(deals.index)
        notes.append(data_note("no_created_at", file=deals_file))
    else:
        qd.flag(_blank(raw["created_at"]), "created_at", reason("missing", "created_at"))
    for column in DEAL_DATES:
        deals[column], outside = parse_dates(raw[column], parsing, column, f"{deals_file}, column {column}")
        qd.flag(outside, column, reason("out_of_range", column), raw[column])
        qd.flag(deals[column].isna() & ~_blank(raw[column]) & ~_placeholder(raw[column], deals[column], parsing),
                column, reason("not_a_date", column), raw[column])
    if "created_at" in absent:
        qd.flag(deals["created_at"].isna(), "created_at", reason("no_date"))
    qd.flag(~deals["status"].isin(STATUSES), "status", reason("unknown_status"), raw["status"])
    qd.flag(~deals["pipeline"].isin(config.pipelines), "pipeline",
            reason("unknown_pipeline"), raw["pipeline"])

    amount_text = raw["amount"]
    deals["amount"] = parse_amounts(amount_text, parsing.decimal, f"{deals_file}, column amount")
    codes = raw["currency"] if "currency" in raw.columns else None  # an export's currency column
    other = in_other_currency(amount_text, config.currency, codes)
    shown_other = amount_text
    if codes is not None:  # the code beside the amount, unless the amount already names it ("632.500 CHF")
        code_text, text = codes.astype("string").fillna("").str.strip(), amount_text.astype("string").fillna("")
        named = pd.Series([c in t for c, t in zip(code_text, text)], index=text.index, dtype=bool)
        shown_other = text.where(named | code_text.eq(""), text + " " + code_text)
    if codes is not None:  # the row names another currency: "632.500 CHF" is in francs, not "not a number"
        qd.flag(other, "amount", reason("other_currency", "amount"), shown_other)
    qd.flag(deals["amount"].isna() & ~_blank(amount_text), "amount", reason("not_a_number", "amount"), amount_text)
    qd.flag(np.isinf(deals["amount"]), "amount", reason("not_finite", "amount"), amount_text)
    qd.flag(deals["amount"] < 0, "amount", reason("negative", "amount"), amount_text)
    qd.flag(other, "amount", reason("other_currency", "amount"), shown_other)
    for column in ["win_probability", "payment_days"]:
        if pd.api.types.is_numeric_dtype(raw[column]):
            values = raw[column].astype(float)
        elif column == "win_probability":  # "35%" or "35"
            values = parse_amounts(raw[column].astype("string").str.rstrip("%"), parsing.decimal,
                                   f"{deals_file}, column {column}")
        else:
            values = pd.to_numeric(raw[column], errors="coerce")
        qd.flag(values.isna() & ~_blank(raw[column]), column, reason("not_a_number", column), raw[column])
        qd.flag(np.isinf(values), column, reason("not_finite", column), raw[column])
        deals[column] = values.where(np.isfinite(values))
    # Probability as a fraction: a column whose values exceed 1 (or carry "%") is in percent.
    percent_sign = raw["win_probability"].astype("string").str.strip().str.endswith("%")
    deals["win_probability"] = percent_as_fraction(deals["win_probability"], "win_probability", percent_sign,
                                                   deals_file, raw["win_probability"])
    qd.flag(~deals["win_probability"].between(0, 1) & deals["win_probability"].notna(), "win_probability",
            reason("probability_range"), raw["win_probability"])
    qd.flag(deals["payment_days"] < 0, "payment_days", reason("negative", "payment_days"), raw["payment_days"])

    kept = deal_copies.isna()
    repeated = pd.Series(False, index=deals.index)
    repeated[kept] = deals.loc[kept, "deal_id"].duplicated(keep=False) & deals.loc[kept, "deal_id"].notna()
    qd.flag(repeated, "deal_id", reason("duplicated", "deal_id"), raw["deal_id"])
    closed = deals["status"].isin(["won", "lost"])
    qd.flag(closed & deals["closed_at"].isna(), "closed_at", reason("closed_no_date"))
    # a close *date* (no time) covers its whole day, so a deal created and closed that day is fine
    close_date_only = deals["closed_at"] == deals["closed_at"].dt.normalize()
    closed_before = (deals["closed_at"] < deals["created_at"].dt.normalize()) & close_date_only | \
        (deals["closed_at"] < deals["created_at"]) & ~close_date_only
    qd.flag(closed_before, "closed_at", reason("closed_before_created"), raw["closed_at"])

    if as_of is None:
        as_of = _inferred_as_of({(deals_file, "created_at"): deals["created_at"], (deals_file, "closed_at"): deals["closed_at"],
                                 (events_file, "entered_at"): events["entered_at"]})
    qd.flag(deals["created_at"] >= as_of, "created_at", reason("after_as_of", "created_at"), raw["created_at"])
    notes += _normalise_categories(deals, raw, config)
    missing = [c for c in absent if c in ("customer", "rep", "amount")]
    if missing:
        notes.append(data_note("no_columns", file=deals_file, columns=", ".join(missing)))
    # Open deals carry no closing date even if the export filled one in.
    deals.loc[deals["status"] == "open", "closed_at"] = pd.NaT
    lost = deals["status"] == "lost"
    deals.loc[lost, "lost_reason"] = deals.loc[lost, "lost_reason"].fillna(UNSPECIFIED_REASON).replace("", UNSPECIFIED_REASON)

    good_deals = deals[~qd.bad].reset_index(drop=True)
    at = positions(events["deal_id"], good_deals["deal_id"])
    qe.flag(~isin(events["deal_id"], deals["deal_id"]), "deal_id", reason("unknown_deal"), raw_events["deal_id"])
    qe.flag(pd.Series(at < 0), "deal_id", reason("quarantined_deal"), raw_events["deal_id"])

    def per_event(column: str) -> pd.Series:
        """The event's deal's ``column`` (dtype kept even when no deal is left)."""
        return take(good_deals[column], at).set_axis(events.index)

    pipeline = per_event("pipeline")
    events["stage"] = _stage_keys(raw_events["stage"], pipeline, config)
    qe.flag(events["stage"].isna(), "stage", reason("unknown_stage"), raw_events["stage"])
    created, closed_at = per_event("created_at"), per_event("closed_at")
    # A date without a time (midnight) covers that whole day: CRMs export close and create *dates*
    # while stage history carries times.
    created_is_date = created == created.dt.normalize()
    closed_is_date = closed_at == closed_at.dt.normalize()
    event_day = events["entered_at"].dt.normalize()
    before_created = (event_day < created) & created_is_date | (events["entered_at"] < created) & ~created_is_date
    after_closed = (event_day > closed_at) & closed_is_date | (events["entered_at"] > closed_at) & ~closed_is_date
    qe.flag(before_created, "entered_at", reason("before_created"), raw_events["entered_at"])
    qe.flag(after_closed, "entered_at", reason("after_closed"), raw_events["entered_at"])
    qe.flag(events["entered_at"] >= as_of, "entered_at", reason("after_as_of", "entered_at"), raw_events["entered_at"])

    # --- consistency of each deal with its events ---
    ok_events = events[~qe.bad]
    final = {p: config.stage_keys(p)[-1] for p in config.pipelines}
    is_final = ok_events["stage"].to_numpy() == pipeline[~qe.bad].map(final).astype("object").to_numpy()
    reached_final = isin(deals["deal_id"], ok_events.loc[is_final, "deal_id"])
    has_events = isin(deals["deal_id"], ok_events["deal_id"])
    qd.flag(~has_events, "deal_id", reason("no_event"))
    qd.flag((deals["status"] == "won") & ~reached_final, "status", reason("won_not_final"), raw["status"])
    qd.flag((deals["status"] != "won") & reached_final, "status", reason("final_not_won"), raw["status"])
    bad_ids = deals.loc[qd.bad, "deal_id"].dropna()
    newly_bad = bad_ids[~isin(bad_ids, deals.loc[~qd.bad, "deal_id"])]
    qe.flag(isin(events["deal_id"], newly_bad), "deal_id", reason("quarantined_deal"), raw_events["deal_id"])

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
        # unrecognised: a spelling that is not blank and maps to nothing (decided per spelling)
        unrecognised = np.array([s is None and bool(str(v).strip()) for v, s in zip(uniques, spelled)] + [False])
        unknown = unrecognised[codes]
        if unknown.any():
            examples = ", ".join(repr(v) for v in pd.unique(raw[column][unknown])[:3])
            notes.append(data_note("unrecognised", column=column, rows=f"{int(unknown.sum()):,}", examples=examples))
        if set(lookup.values()) <= {True, False}:
            deals[column] = pd.Series(spelled[codes], index=raw.index, dtype="object").astype("boolean")
        elif isinstance(raw[column].dtype, pd.CategoricalDtype):
            # an engine's categorical stays one (canonical values, sorted), recoded per spelling
            canonical = sorted({v for v in spelled if v is not None})
            recode = np.array([canonical.index(v) if v is not None else -1 for v in spelled])
            deals[column] = pd.Categorical.from_codes(recode[codes], categories=canonical)
        else:
            deals[column] = pd.Series(spelled[codes], index=raw.index, dtype="object")
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


def top_reasons(data: Dataset, n: int = 3) -> list[tuple[str, str, int, dict]]:
    """The ``n`` most frequent quarantine reasons: ``(table, reason, rows, first example row)``."""
    q = data.quarantine
    if q.empty:
        return []
    counts = q.groupby(["table", "reason"], sort=False).size().sort_values(ascending=False, kind="stable")
    out = []
    for (table, reason), rows in counts.head(n).items():
        example = q[(q["table"] == table) & (q["reason"] == reason)].iloc[0].to_dict()
        out.append((table, reason, int(rows), example))
    return out


def describe_example(example: dict) -> str:
    """``file, row N, column C, value 'v'`` for a quarantined row (value cut to a readable length)."""
    value = example.get("value")
    if example.get("reason") == "exact_duplicate":
        return f"{example['file']}, row {example['row']}, a copy of row {copy_of(value)}"
    shown_value = "" if value is None or pd.isna(value) else f", value {shown(value, 60)!r}"
    return f"{example['file']}, row {example['row']}, column {example['column']}{shown_value}"


def nothing_left(data: Dataset) -> str:
    """Why no deal is left to analyse, e.g. "8,800 of 8,800 deals were quarantined; top reason …"."""
    n_in = data.rows_in.get("deals", 0)
    if n_in == 0:
        return "the data has no deals"
    text = f"{n_in - len(data.deals):,} of {n_in:,} deals were quarantined"
    reasons = [r for r in top_reasons(data, 5) if r[0] == "deals"] or top_reasons(data, 1)
    if reasons:
        table, why, rows, example = reasons[0]
        text += f"; top reason: {reason_text(why, data.as_of)} ({rows:,} {table} rows, e.g. {describe_example(example)})"
    return text


def missing_fields(data: Dataset, fields: tuple[str, ...] | list[str]) -> list[str]:
    """The deal fields among ``fields`` with no value in any analysed deal (absent from the export
    or never filled): a report section needing them says so instead of showing 0, ``nan`` or an
    empty table."""
    return [f for f in fields if f not in data.deals or not data.deals[f].notna().any()]
