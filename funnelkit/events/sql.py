"""The SQL texts of the per-event step and of the row checks, written once in DuckDB's dialect.

:mod:`funnelkit.events.engine` runs them on DuckDB as written and on Spark (or, untested, a warehouse)
after :func:`transpile` (SQLGlot) has turned them into that engine's dialect; there are no
hand-written copies per dialect. The texts are templated only by things of the configuration (how
many stages, which columns a raw table has), never by data values: values enter as literals
built by :func:`string` and :func:`timestamp`, so SQLGlot quotes them for each dialect.

Tables the per-event step reads (the row checks write them):

* ``fk_deal_keys(deal_id, _pos, pipeline, team, rep, created_at, lost_at)`` — one row per valid
  deal, narrow (the wide ``fk_deals`` is fetched into Python once and dropped, DuckDB): ``_pos`` the deal's row (0-based) in the deals held in Python (:func:`deal_keys_sql`);
* ``fk_events(deal_id, _pos, stage, stage_index, final_index, entered_at, date_known, lost_at)`` —
  one row per valid stage event, ``_pos`` its deal's, ``stage_index`` its stage's position in the
  deal's pipeline (0-based), ``final_index`` that pipeline's last position and ``lost_at`` the
  deal's closed_at if it is lost (carried here so the stays need no join back to the deals).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from funnelkit.inputs.data import COPY_OF, foreign_marks, reason

BASE_DIALECT = "duckdb"


def transpile(text: str, dialect: str) -> str:
    """``text`` (DuckDB SQL) in ``dialect`` (any SQLGlot dialect: spark, databricks, snowflake …)."""
    if dialect == BASE_DIALECT:
        return text
    import sqlglot

    return sqlglot.transpile(text, read=BASE_DIALECT, write=dialect)[0]


def string(value: object) -> str:
    """A SQL string literal of ``value`` (quotes escaped; SQLGlot re-quotes it per dialect)."""
    return "'" + str(value).replace("'", "''") + "'"


def timestamp(value: pd.Timestamp) -> str:
    """A SQL timestamp literal (no time zone) of ``value``."""
    return f"TIMESTAMP '{pd.Timestamp(value):%Y-%m-%d %H:%M:%S.%f}'"


def scope_filter(alias: str, team: str | None, rep: str | None, pipeline: str | None) -> str:
    """``and``-clauses keeping one team, rep and/or pipeline (``None`` keeps all)."""
    return "".join(f" and {alias}.{column} = {string(value)}"
                   for column, value in (("team", team), ("rep", rep), ("pipeline", pipeline)) if value is not None)


def reach_sql(n_stages: int, as_of: pd.Timestamp, strict: bool = False, scope: str = "") -> str:
    """The reach columns of :func:`funnelkit.events.aggregate.reach_table` in their final shape: one
    row per deal of ``fk_deal_keys`` created before ``as_of`` and in ``scope`` (events or not), in
    ``_pos`` order (the order of the deals held in Python), with

    * ``reached_<i>`` — for the any-stage rule the earliest entry into stage i or any later one,
      ``min(entered_at) filter (where stage_index >= i)``; for ``strict`` the first entry into
      stage i itself when the deal entered every stage before it (the in-order chain), else null;
    * ``furthest_index`` — the last stage reached by the rule (−1 when none; the reached stages
      form a prefix under either rule, so it is their count − 1);
    * ``skipped_out`` — the deal went further than its in-order chain (never, by the any-stage rule).

    One grouped pass over the events by the deal's integer position, then a join onto the deals:
    Python converts the result once and adds the deal columns it already holds.
    """
    at = timestamp(as_of)
    if strict:
        firsts = [f"min(e.entered_at) filter (where e.stage_index = {i}) as first_{i}" for i in range(n_stages)]
        # reached_i: the first entry into i when every stage before it was entered (a prefix chain)
        reached = [f"case when {' and '.join(f'r.first_{j} is not null' for j in range(i)) or 'true'} "
                   f"then r.first_{i} end as reached_{i}" for i in range(n_stages)]
        count = " + ".join(f"case when {' and '.join(f'r.first_{j} is not null' for j in range(i + 1))} then 1 else 0 end"
                           for i in range(n_stages)) or "0"
    else:
        firsts = [f"min(e.entered_at) filter (where e.stage_index >= {i}) as first_{i}" for i in range(n_stages)]
        reached = [f"r.first_{i} as reached_{i}" for i in range(n_stages)]
        count = "coalesce(r.furthest_any, -1) + 1"
    # Without a scope no join in the grouped pass: a valid event is never before its deal's creation.
    deals = " join fk_deal_keys d on d._pos = e._pos" if scope else ""
    created = f" and d.created_at < {at}{scope}" if scope else ""
    skipped = "false" if not strict else f"coalesce(r.furthest_any, -1) > {count} - 1"
    return f"""
with r as (
    select e._pos, {", ".join(firsts)}, max(e.stage_index) as furthest_any
    from fk_events e{deals}
    where e.entered_at < {at}{created}
    group by e._pos
)
select d._pos, {", ".join(reached)}, cast({count} - 1 as bigint) as furthest_index,
    {skipped} as skipped_out
from fk_deal_keys d left join r on r._pos = d._pos
where d.created_at < {at}{scope}
order by d._pos
"""


# outcome of a stay as a small integer code (see :func:`stays_sql`), named in Python
OUTCOMES = ("progressed", "regressed", "lost", "open")


def stays_sql(as_of: pd.Timestamp) -> str:
    """Per stay in a non-final stage (see :func:`funnelkit.events.aggregate.stage_stays`): the
    deal's position ``_pos``, stage index, entry, exit (the next event, or closed_at of a deal lost
    before ``as_of``) and ``outcome`` (an index into :data:`OUTCOMES`), ordered by deal, entry and
    stage. Repeated entries into the same stage in a row are one stay; a stay starting or ending
    at an entry of unknown date is left out. Only integers and timestamps come back: the stage
    names and the deal columns are filled in from the deals already in Python."""
    at = timestamp(as_of)
    # No join before the windows: a valid event is never before its deal's creation, so events
    # before as_of are of deals created before it (the caller drops positions it does not hold).
    return f"""
with ordered as (
    select _pos, stage_index, final_index, entered_at, date_known, lost_at,
        lag(stage_index) over (partition by _pos order by entered_at, stage_index) as prev_index
    from fk_events where entered_at < {at}
), stays as (
    select *,
        lead(entered_at) over w as next_at, lead(stage_index) over w as next_index,
        lead(date_known) over w as next_known
    from ordered where prev_index is null or prev_index <> stage_index
    window w as (partition by _pos order by entered_at, stage_index)
)
select cast(s._pos as integer) as _pos, cast(s.stage_index as tinyint) as stage_index, s.entered_at,
    case when s.next_at is not null then s.next_at
         when s.lost_at < {at} then s.lost_at end as exited_at,
    cast(case when s.next_at is not null and s.next_index > s.stage_index then 0
         when s.next_at is not null then 1
         when s.lost_at < {at} then 2
         else 3 end as tinyint) as outcome
from stays s
where s.stage_index <> s.final_index and s.date_known and coalesce(s.next_known, true)
order by s._pos, s.entered_at, s.stage_index
"""


def current_stage_sql(as_of: pd.Timestamp) -> str:
    """Per deal: the stage index (in its pipeline) of its latest event before ``as_of`` (ties: the
    later stage); the name is filled in from the deals in Python (no text per deal comes back)."""
    at = timestamp(as_of)
    return f"""
select cast(_pos as integer) as _pos, cast(stage_index as tinyint) as stage_index from (
    select _pos, stage_index,
        row_number() over (partition by _pos order by entered_at desc, stage_index desc) as k
    from fk_events where entered_at < {at}
) t where k = 1
"""


def lean_reach_sql(events: str, stages: list[str]) -> str:
    """The floor to compare the per-event step with: one grouped pass over raw events
    (``events`` a table expression), stage index by ``case``, no checks and no joins."""
    index = "case stage " + " ".join(f"when {string(s)} then {i}" for i, s in enumerate(stages)) + " end"
    columns = ", ".join(f"min(entered_at) filter (where {index} >= {i}) as reached_{i}" for i in range(len(stages)))
    return f"select deal_id, {columns} from {events} group by deal_id"


# --- row checks -------------------------------------------------------------------------------

def _text(column: str) -> str:
    return f"nullif(trim(cast({column} as varchar)), '')"


# Day-month-year with one separator (RE2 has no back-references: the two separators are compared
# after extraction); groups: day or month, separator, month or day, separator, year, time.
DMY = "^([0-9]{1,2})([-/.])([0-9]{1,2})([-/.])([0-9]{4}|[0-9]{2})([ T].*)?$"
# pandas' datetime64[ns] holds 1677-09-22 … 2262-04-11: the pandas path quarantines dates outside
MIN_DATE, MAX_DATE = pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D")
LARGEST_DOUBLE = "1.7976931348623157e308"  # |x| <= this: finite (false for ±inf and NaN in DuckDB and Spark)


@dataclass(frozen=True)
class DateReading:
    """How one raw date column is read in an engine (the preset's :class:`funnelkit.inputs.data.Parsing`
    for that column): ISO 8601 always; ``dayfirst`` True/False also reads ``dd-mm-yyyy`` /
    ``mm-dd-yyyy`` (``None``: ISO only); ``fmt`` a strptime format instead (DuckDB only);
    ``no_date`` placeholder dates that mean "no date"."""

    dayfirst: bool | None = None
    fmt: str | None = None
    no_date: tuple[str, ...] = ()


# A time on a 12-hour clock at the end of a date (" 03:05 PM", "T9:00 am", " 11:59 p.m."), as
# funnelkit.inputs.data.twenty_four_hour reads it; no backslashes (Spark's string literals take them
# as escapes). Groups: what precedes the hour, hour, the rest of the time, a or p.
TWELVE_HOUR = "^(.*[ T] *)([0-9]{1,2})(:[0-9]{2}(?::[0-9]{2}(?:[.][0-9]+)?)?) *([AaPp])[.]? *[Mm][.]?$"


def twenty_four_hour(text: str) -> str:
    """``text`` (a date, or the time after one) with a 12-hour time on a 24-hour clock:
    ``… 03:05 PM`` → ``… 15:05``, ``… 12:30 AM`` → ``… 00:30``, as pandas reads them. DuckDB read
    "2024-03-08 03:05 PM" as 03:05 (it ignores AM/PM) and its engines knew no 12-hour time after a
    day-month date; an hour outside 1–12 before AM/PM becomes no date (quarantined, as in pandas).
    Text not ending in "m" or "." is returned before any regular expression is run."""
    def part(group: int) -> str:
        return f"regexp_extract({text}, {string(TWELVE_HOUR)}, {group})"

    hour = f"try_cast({part(2)} as int)"
    pm = f"(case when lower({part(4)}) = 'p' then 12 else 0 end)"
    return (f"(case when coalesce(right({text}, 1) not in ('m', 'M', '.'), true) then {text} "
            f"when {hour} between 1 and 12 then {part(1)} || lpad(cast({hour} % 12 + {pm} as varchar), 2, '0') || "
            f"{part(3)} when {part(2)} = '' then {text} else 'not a time' end)")


def dmy_part(text: str, group: int) -> str:
    """Group ``group`` of :data:`DMY` in ``text`` ('' when it does not match)."""
    return f"regexp_extract({text}, {string(DMY)}, {group})"


# 2024年3月5日, 2024年3月5日 14时07分, 2024年3月5日 14:07:30 (funnelkit.inputs.data.CHINESE_DATE); spaces
# written as characters, not \s (Spark's string literals take a backslash as an escape)
_GAP = "[ \t\u3000]*"
CHINESE_DATE = (f"^([0-9]{{4}}){_GAP}年{_GAP}([0-9]{{1,2}}){_GAP}月{_GAP}([0-9]{{1,2}}){_GAP}日{_GAP}"
                f"(?:([0-9]{{1,2}}){_GAP}[:时]{_GAP}([0-9]{{1,2}}){_GAP}分?(?:{_GAP}[:：]?{_GAP}([0-9]{{1,2}}){_GAP}秒?)?)?$")


def chinese_date(text: str) -> str:
    """``text`` written 年月日 as ISO text (``2024年3月5日 14时07分`` → ``2024-03-05 14:07:00``), as
    :func:`funnelkit.inputs.data.chinese_dates` reads it; null for other text (the caller tests for 年)."""
    def part(group: int) -> str:
        return f"regexp_extract({text}, {string(CHINESE_DATE)}, {group})"

    time = (f"case when {part(4)} <> '' then ' ' || lpad({part(4)}, 2, '0') || ':' || lpad({part(5)}, 2, '0') || ':' || "
            f"lpad(case when {part(6)} = '' then '0' else {part(6)} end, 2, '0') else '' end")
    return (f"case when regexp_matches({text}, {string(CHINESE_DATE)}) then {part(1)} || '-' || lpad({part(2)}, 2, '0') "
            f"|| '-' || lpad({part(3)}, 2, '0') || {time} end")


def _date(column: str, kind: str, reading: DateReading = DateReading()) -> str:
    """A raw column as a timestamp: typed values as they are, text by ISO 8601 (then day-first or
    month-first when ``reading`` says so, as :func:`funnelkit.inputs.data.parse_dates` does); placeholder
    dates (``reading.no_date``) become null."""
    if kind == "timestamp":
        parsed = f"cast({column} as timestamp)"
    else:
        text = f"trim(cast({column} as varchar))"
        if reading.fmt:
            parsed = f"try_strptime({text}, {string(reading.fmt)})"
        else:
            parsed = f"try_cast({twenty_four_hour(text)} as timestamp)"
            if reading.dayfirst is not None:
                day, month = (1, 3) if reading.dayfirst else (3, 1)
                year = dmy_part(text, 5)
                time = f"regexp_replace({dmy_part(text, 6)}, '^T', ' ')"
                full_year = (f"case when length({year}) = 2 then (case when cast({year} as int) < 69 then '20' "
                             f"else '19' end) || {year} else {year} end")
                iso = (f"{full_year} || '-' || lpad({dmy_part(text, month)}, 2, '0') || '-' || "
                       f"lpad({dmy_part(text, day)}, 2, '0') || {twenty_four_hour(time)}")
                parsed = (f"coalesce({parsed}, case when {dmy_part(text, 1)} <> '' and {dmy_part(text, 2)} = "
                          f"{dmy_part(text, 4)} then try_cast({iso} as timestamp) end)")
            # 年月日 names each part, so no order to decide; tested first by its 年 (one cheap test per value)
            parsed = f"(case when strpos({text}, '年') > 0 then try_cast({chinese_date(text)} as timestamp) else {parsed} end)"
    if reading.no_date:
        days = ", ".join(timestamp(pd.Timestamp(d)) for d in reading.no_date)
        parsed = f"case when date_trunc('day', {parsed}) in ({days}) then null else {parsed} end"
    return parsed


def _placeholder(column: str, reading: DateReading) -> str:
    """Whether the raw value is written as one of the preset's placeholder dates."""
    if not reading.no_date:
        return "false"
    listed = ", ".join(string(d) for d in reading.no_date)
    text = f"trim(cast({column} as varchar))"
    return f"coalesce({text} in ({listed}) or substr({text}, 1, 10) in ({listed}), false)"


def _blank(column: str, kind: str) -> str:
    """Whether a raw value is missing: null, or (text) blank."""
    return f"{column} is null" if kind != "text" else f"{_text(column)} is null"


# amounts written in ten thousands or hundred millions, as funnelkit.inputs.data.parse_amounts reads them
CHINESE_UNITS = {"万": 10_000, "亿": 100_000_000}


def _number(column: str, kind: str, strip: Iterable[str] = ()) -> str:
    """A raw column as a double: numbers as they are, text with ``strip`` removed first; with
    ``strip`` (an amount), a number followed by 万 or 亿 is in ten thousands or hundred millions
    (``12.5万`` = 125,000), rounded to ten-thousandths as the pandas path does (32.3 × 10,000 is
    322999.99999999994 in binary)."""
    if kind == "number":
        return f"cast({column} as double)"
    text = f"cast({column} as varchar)"
    for token in strip:
        text = f"replace({text}, {string(token)}, '')"
    if not strip:
        return f"try_cast({text} as double)"
    units = " ".join(f"when right({text}, 1) = {string(unit)} and regexp_matches({text}, '[0-9][{unit}]$') then "
                     f"round(try_cast(left({text}, length({text}) - 1) as double) * {scale}, 4)"
                     for unit, scale in CHINESE_UNITS.items())
    return f"(case {units} else try_cast({text} as double) end)"


# Currency marks and separators that parse_amounts also removes.
AMOUNT_NOISE = ("¥", "￥", "$", "€", "£", "CNY", "RMB", "USD", "EUR", "元", ",", " ", "\u00a0", "\t")
DEAL_DATES = ["created_at", "closed_at", "expected_start", "last_follow_up_at"]
_DEAL_NUMBERS = ["amount", "win_probability", "payment_days"]
# raw columns whose value as written an example row shows
_DEAL_SHOWN = ["deal_id", "status", "pipeline"] + DEAL_DATES + _DEAL_NUMBERS


def parquet_rows_sql(location: str) -> str:
    """A Parquet file or glob of parts (DuckDB) with ``_row``: each row's 1-based number in the
    parts read one after another in name order. A part's own row number restarts at each part,
    so alone it numbered two rows alike (an example named an ambiguous row, and an exact
    duplicate is found by row); nor is it a column of the export (it would make every row differ)."""
    glob = string(location)
    return f"""
with parts as (
    select file_name, coalesce(sum(num_rows) over (order by file_name rows between unbounded preceding
        and 1 preceding), 0) as before_rows
    from parquet_file_metadata({glob})
)
select r.* exclude (file_row_number, filename), r.file_row_number + p.before_rows + 1 as _row
from read_parquet({glob}, file_row_number = true, filename = true) r join parts p on p.file_name = r.filename
"""


def day_order_sql(columns: list[tuple[str, str]]) -> str:
    """Per (table, column) of ``columns``: the first row (and its value) written day-month-year
    with the day above 12, month-day-year with the month above 12, and with the two numbers
    different — the evidence :func:`funnelkit.inputs.data.day_month_order` decides a column's order from
    (ISO values aside). One query for all columns (each query is a job on Spark)."""
    parts = []
    for table, column in columns:
        text = f"trim(cast({column} as varchar))"
        parts.append(f"""
    select {string(table)} as tab, {string(column)} as col, _row, {text} as v, {dmy_part(text, 1)} as a,
        {dmy_part(text, 2)} as s1, {dmy_part(text, 3)} as b, {dmy_part(text, 4)} as s2
    from {table} where try_cast({text} as timestamp) is null and {text} <> ''""")
    return f"""
with t as ({" union all".join(parts)}
), k as (
    select tab, col, _row, v, cast(a as int) as a, cast(b as int) as b from t where a <> '' and s1 = s2
), ranked as (
    select tab, col, _row, v,
        row_number() over (partition by tab, col, a > 12 and b <= 12 order by _row) as k1,
        row_number() over (partition by tab, col, b > 12 and a <= 12 order by _row) as k2,
        row_number() over (partition by tab, col, a <> b order by _row) as k3,
        a > 12 and b <= 12 as day_first, b > 12 and a <= 12 as month_first, a <> b as differ
    from k
)
select tab, col, _row, v, day_first and k1 = 1 as first_day_first, month_first and k2 = 1 as first_month_first,
    differ and k3 = 1 as first_differ
from ranked where (day_first and k1 = 1) or (month_first and k2 = 1) or (differ and k3 = 1)
"""


def parsed_deal_columns(text_columns: list[str]) -> list[str]:
    """The parsed deal columns the checked table keeps (not the raw values or blank flags)."""
    return (["_row"] + ["deal_id", "customer", "team", "rep", "lost_reason"] + text_columns +
            ["status", "pipeline"] + DEAL_DATES + _DEAL_NUMBERS + ["decision_maker_engaged", "budget_confirmed"])


def parsed_deals_sql(kinds: dict[str, str], default_pipeline: str, text_columns: list[str],
                     readings: dict[str, DateReading] | None = None, no_team: str | None = None) -> str:
    """``raw_deals`` with text trimmed (status as ``status_text``), dates and numbers parsed; the raw
    value of each checked column as ``<name>_src`` (read only for an example row), whether it was
    blank (``<name>_blank``) or a placeholder date (``<name>_placeholder``). ``kinds`` gives each raw
    column's kind (``timestamp``, ``number``, ``text``, ``bool``) or is missing it (absent);
    ``readings`` how each date column is read; ``no_team`` the team of every deal when the table
    has no team column."""
    readings = readings or {}

    def col(name: str) -> str:
        return name if name in kinds else "null"

    def kind(name: str) -> str:
        return kinds.get(name, "text")

    out = ["_row"]
    for name in ["deal_id", "customer", "rep", "lost_reason"] + text_columns:
        out.append(f"{_text(col(name))} as {name}")
    team = _text(col("team")) if "team" in kinds or no_team is None else string(no_team)
    out.append(f"{team} as team")
    out.append(f"{_text(col('status'))} as status_text")  # matched in the checks through fk_status_names
    out.append(f"coalesce({_text(col('pipeline'))}, {string(default_pipeline)}) as pipeline")
    for name in DEAL_DATES:
        reading = readings.get(name, DateReading())
        out.append(f"{_date(col(name), kind(name), reading)} as {name}")
        out.append(f"{_placeholder(col(name), reading)} as {name}_placeholder")
    for name in _DEAL_SHOWN:
        out.append(f"{col(name)} as {name}_src")
    for name in DEAL_DATES + _DEAL_NUMBERS:
        out.append(f"{_blank(col(name), kind(name))} as {name}_blank")
    out.append(f"{_number(col('amount'), kind('amount'), AMOUNT_NOISE)} as amount")
    out.append(f"{_number(col('win_probability'), kind('win_probability'), AMOUNT_NOISE + ('%',))} as win_probability")
    percent = f"right(trim(cast({col('win_probability')} as varchar)), 1) = '%'" \
        if kind("win_probability") == "text" else "false"
    out.append(f"coalesce({percent}, false) as win_probability_percent")
    out.append(f"{_number(col('payment_days'), kind('payment_days'))} as payment_days")
    for name in ["decision_maker_engaged", "budget_confirmed"]:
        out.append(f"{col(name) if kind(name) == 'bool' else _text(col(name))} as {name}")
    return f"select {', '.join(out)} from raw_deals"


def _shown(column: str) -> str:
    return f"cast({column}_src as varchar)"


def _outside(column: str) -> str:
    return f"({column} < {timestamp(MIN_DATE)} or {column} > {timestamp(MAX_DATE)})"


def identifier(name: str) -> str:
    """A quoted column name (any text a raw table's header holds; SQLGlot re-quotes it per dialect)."""
    return '"' + str(name).replace('"', '""') + '"'


def first_copy_sql(table: str, columns: list[str], where: str, by_hash: bool = False) -> str:
    """Per row of ``table`` (its ``_row``) that ``where`` keeps: ``first_row``, the first row
    written the same in every one of ``columns`` (nulls equal, as :func:`funnelkit.inputs.data.exact_copies`
    compares them), and its trimmed ``deal_id``; a row with ``first_row < _row`` is an exact
    duplicate of that row.

    ``by_hash``: only rows whose hash of ``columns`` occurs twice go through the window (where
    ``where`` alone leaves every row): a grouped count of one integer per row instead of a sort
    of all rows by every column (at 1M deals' 2.4M events 0.7 s of CPU against 1.7 s). The
    window compares the values themselves, so a hash collision adds a candidate, never a copy."""
    keys = ", ".join(identifier(c) for c in columns)
    if by_hash:
        where = (f"{where} and hash({keys}) in (select k from (select hash({keys}) as k from {table}) h "
                 "group by k having count(*) > 1)")
    return (f"select _row, {_text('deal_id')} as deal_id, min(_row) over (partition by {keys}) as first_row "
            f"from {table} where {where}")


def _copy_of(row: str) -> str:
    """An exact duplicate's quarantine value naming the row it repeats (:data:`funnelkit.inputs.data.COPY_OF`)."""
    before, after = COPY_OF.split("{row}")
    return f"{string(before)} || cast({row} as varchar) || {string(after)}"


def _finite(column: str) -> str:
    return f"abs({column}) <= {LARGEST_DOUBLE}"


def deal_checks_sql(pipelines: list[str], as_of: pd.Timestamp, text_columns: list[str],
                    created_column: bool = True, currency: str = "CNY", raw_columns: list[str] | None = None) -> str:
    """Each parsed deal with the first reason it cannot be analysed, in the order of
    :func:`funnelkit.inputs.data.validate` (so the same reason wins), its column and raw value; the
    kept columns are :func:`parsed_deal_columns`, ``probability`` (a fraction) and the raw
    ``deal_id`` / ``status`` as written. ``status`` is the trimmed spelling's normalised name from
    ``fk_status_names(raw, status)``, registered by the engine from the distinct spellings with
    :func:`funnelkit.config.normalise_name` (the pandas path's rule: " Closed-Won " → closedwon,
    "W_on" → won). A row equal in every one of ``raw_columns`` (the raw table's, ``_row`` aside)
    to an earlier row with the same deal_id is an exact duplicate (``copy_of``, that row): the first
    copy is checked, the others are quarantined, and ``copies`` (a deal_id's rows) counts the
    first copy only, so a deal_id repeated with other fields is quarantined whole."""
    at = timestamp(as_of)
    pipes = ", ".join(string(p) for p in pipelines)
    date_only = "closed_at = date_trunc('day', closed_at)"
    checks = [("copy_of is not null", "deal_id", reason("exact_duplicate"), _copy_of("copy_of"))]
    checks += [(f"{c} is null", c, reason("missing", c), "null") for c in ["deal_id", "team", "status"]]
    if created_column:
        checks.append(("created_at_blank", "created_at", reason("missing", "created_at"), "null"))
    for c in DEAL_DATES:
        checks += [(_outside(c), c, reason("out_of_range", c), _shown(c)),
                   (f"{c} is null and not {c}_blank and not {c}_placeholder", c, reason("not_a_date", c), _shown(c))]
    checks += [
        ("status not in ('open', 'won', 'lost')", "status", reason("unknown_status"), _shown("status")),
        (f"pipeline not in ({pipes})", "pipeline", reason("unknown_pipeline"), _shown("pipeline")),
    ]
    for c in _DEAL_NUMBERS:
        checks += [(f"({c} is null or isnan({c})) and not {c}_blank", c, reason("not_a_number", c), _shown(c)),
                   (f"not {_finite(c)} and not isnan({c})", c, reason("not_finite", c), _shown(c))]
        if c == "amount":
            checks.append(("amount < 0", "amount", reason("negative", "amount"), _shown(c)))
            marks = foreign_marks(currency)
            if marks:  # as in_other_currency: a mark that cannot stand for the configured currency
                checks.append((f"regexp_matches(cast(amount_src as varchar), {string(marks)})", "amount",
                               reason("other_currency", "amount"), _shown(c)))
    checks += [
        ("probability < 0 or probability > 1", "win_probability", reason("probability_range"),
         _shown("win_probability")),
        ("payment_days < 0", "payment_days", reason("negative", "payment_days"), _shown("payment_days")),
        ("copies > 1", "deal_id", reason("duplicated", "deal_id"), _shown("deal_id")),
        ("status in ('won', 'lost') and closed_at is null", "closed_at", reason("closed_no_date"), "null"),
        (f"({date_only} and closed_at < date_trunc('day', created_at)) or "
         f"(not ({date_only}) and closed_at < created_at)", "closed_at", reason("closed_before_created"),
         _shown("closed_at")),
        (f"created_at >= {at}", "created_at", reason("after_as_of", "created_at"), _shown("created_at")),
    ]
    kept = ", ".join(f"p.{c}" for c in parsed_deal_columns(text_columns))
    finite_probability = f"{_finite('win_probability')}"
    return f"""
with repeated as (
    select deal_id from fk_parsed_deals where deal_id is not null group by deal_id having count(*) > 1
), firsts as (
    -- only the rows of a repeated id can repeat a whole row: the window runs over those few
    {first_copy_sql("raw_deals", [c for c in raw_columns or ["deal_id"] if c != "_row"],
                    f"{_text('deal_id')} in (select deal_id from repeated)")}
), copies as (
    select deal_id, count(*) as copies from firsts where first_row = _row group by deal_id having count(*) > 1
), percent as (
    -- one scalar: a column is in percent when any finite value exceeds 1 or is written with %
    select coalesce(max(case when ({finite_probability} and win_probability > 1) or win_probability_percent
                        then 1 else 0 end), 0) as is_percent
    from fk_parsed_deals
), p as (
    -- a grouped count joined back and a one-row cross join, not windows: a window over the whole
    -- table (``over ()``) runs on one thread in DuckDB and took most of the checks' time at 1M deals
    select f.*, coalesce(c.copies, 1) as copies, case when x.first_row < f._row then x.first_row end as copy_of,
        st.status as status,
        case when not ({finite_probability.replace('win_probability', 'f.win_probability')}) then null
             when r.is_percent = 1 then f.win_probability / 100 else f.win_probability end as probability
    from fk_parsed_deals f left join copies c on c.deal_id = f.deal_id left join firsts x on x._row = f._row
        left join fk_status_names st on st.raw = f.status_text cross join percent r
)
select {kept}, p.probability, p.copies, p.copy_of, cast(p.deal_id_src as varchar) as deal_id_raw,
    cast(p.status_src as varchar) as status_raw, {_first_reason(checks)}
from p
"""


def _first_reason(checks: list[tuple[str, str, str, str]], name: str = "reason") -> str:
    """``<name>``, ``<name>_column`` and ``<name>_value`` of the first check that holds.

    The checks are tested once, for ``<name>_k`` (the first that holds, by its number); the three
    columns are read from that number through a lateral column alias (DuckDB, Spark 3.4+). Three
    searched ``case`` expressions over the checks tested every check three times on a valid row."""
    whens = " ".join(f"when coalesce({c[0]}, false) then {k}" for k, c in enumerate(checks))

    def case(pick: int) -> str:
        picked = " ".join(f"when {k} then {string(c[pick]) if pick < 3 else c[pick]}" for k, c in enumerate(checks))
        return f"case {name}_k {picked} end"

    return (f"case {whens} end as {name}_k, {case(2)} as {name}, {case(1)} as {name}_column, "
            f"cast({case(3)} as varchar) as {name}_value")


def parsed_events_sql(kinds: dict[str, str], reading: DateReading = DateReading()) -> str:
    """``raw_events`` with deal_id trimmed and entered_at parsed (read as ``reading`` says);
    ``date_known`` true if absent; the raw deal_id and entered_at as ``<name>_src``."""
    known = "coalesce(cast(date_known as boolean), true)" if "date_known" in kinds else "true"
    stage = "stage" if "stage" in kinds else "null"
    kind = kinds.get("entered_at", "text")
    return f"""
select _row, {_text('deal_id')} as deal_id, cast({stage} as varchar) as stage_raw,
    {_text(stage)} is null as stage_blank,
    {_date('entered_at', kind, reading)} as entered_at, {_placeholder('entered_at', reading)} as entered_at_placeholder,
    entered_at as entered_at_src, {_blank('entered_at', kind)} as entered_at_blank,
    deal_id as deal_id_src, {known} as date_known
from raw_events
"""


def event_checks_sql(as_of: pd.Timestamp, raw_columns: list[str] | None = None) -> str:
    """Each parsed event with its deal's stage key and index, and the first reason it cannot be
    analysed, in the order of :func:`funnelkit.inputs.data.validate`. ``fk_stage_names`` maps each raw
    stage spelling per pipeline to its key (built in Python by the config's own lookup). An event
    row with a deal_id equal in every one of ``raw_columns`` (the raw table's, ``_row`` aside) to an
    earlier row is an exact duplicate of it, quarantined first (the earlier row is checked)."""
    at = timestamp(as_of)
    created_day = "d.created_at = date_trunc('day', d.created_at)"
    closed_day = "d.closed_at = date_trunc('day', d.closed_at)"
    entered_day = "date_trunc('day', e.entered_at)"
    entered = "cast(e.entered_at_src as varchar)"
    deal_id = "cast(e.deal_id_src as varchar)"
    checks = [
        ("x.first_row < e._row", "deal_id", reason("exact_duplicate"), _copy_of("x.first_row")),
        ("e.deal_id is null", "deal_id", reason("missing", "deal_id"), "null"),
        ("e.stage_blank", "stage", reason("missing", "stage"), "null"),
        ("e.entered_at_blank", "entered_at", reason("missing", "entered_at"), "null"),
        (_outside("e.entered_at"), "entered_at", reason("out_of_range", "entered_at"), entered),
        ("e.entered_at is null and not e.entered_at_placeholder", "entered_at", reason("not_a_date", "entered_at"), entered),
        ("d.deal_id is null and a.deal_id is null", "deal_id", reason("unknown_deal"), deal_id),
        ("a.deal_id is not null or d.reason is not null", "deal_id", reason("quarantined_deal"), deal_id),
        ("m.stage is null", "stage", reason("unknown_stage"), "e.stage_raw"),
        (f"({entered_day} < d.created_at and {created_day}) or (e.entered_at < d.created_at and not ({created_day}))",
         "entered_at", reason("before_created"), entered),
        (f"({entered_day} > d.closed_at and {closed_day}) or (e.entered_at > d.closed_at and not ({closed_day}))",
         "entered_at", reason("after_closed"), entered),
        (f"e.entered_at >= {at}", "entered_at", reason("after_as_of", "entered_at"), entered),
    ]
    return f"""
select e._row, e.deal_id, e.entered_at, e.date_known, m.stage, m.stage_index, m.final_index,
    {_first_reason(checks)}
from fk_parsed_events e
-- one deal per deal_id (``d``, not an exact duplicate's later copy) and the few duplicated ids (``a``,
-- every row quarantined): two joins on the checked deals instead of a distinct over all deals
left join (select deal_id, pipeline, created_at, reason,
               case when status = 'open' then null else closed_at end as closed_at
           from fk_checked_deals where copies = 1 and copy_of is null) d on d.deal_id = e.deal_id
left join (select distinct deal_id from fk_checked_deals where copies > 1) a on a.deal_id = e.deal_id
left join fk_stage_names m on m.raw = e.stage_raw and m.pipeline = d.pipeline
left join ({first_copy_sql("raw_events", [c for c in raw_columns or ["deal_id", "stage", "entered_at"] if c != "_row"],
                           f"{_text('deal_id')} is not null", by_hash=True)}) x on x._row = e._row
"""


def reached_sql() -> str:
    """Per deal with a valid event: whether one of them is its pipeline's final stage."""
    return """
select deal_id, max(stage_index = final_index) as reached_final
from fk_checked_events where reason is null group by deal_id
"""


def deal_events_sql() -> str:
    """The checks between a deal and its valid events (``fk_reached``, :func:`reached_sql`): a
    deal with none, a won deal that never reached its pipeline's final stage, and a deal that did
    but is not won."""
    checks = [
        ("v.deal_id is null", "deal_id", reason("no_event"), "null"),
        ("d.status = 'won' and not v.reached_final", "status", reason("won_not_final"), "d.status_raw"),
        ("d.status <> 'won' and v.reached_final", "status", reason("final_not_won"),
         "d.status_raw"),
    ]
    return f"""
select d.*, {_first_reason(checks, "reason2")}
from fk_checked_deals d left join fk_reached v on v.deal_id = d.deal_id
"""


def clean_deals_sql(columns: list[str]) -> str:
    """Valid deals in canonical columns: open deals lose any closed_at, a lost deal without a
    reason gets ``unspecified``."""
    picked = []
    for c in columns:
        if c == "closed_at":
            picked.append("case when status = 'open' then null else closed_at end as closed_at")
        elif c == "lost_reason":
            picked.append("case when status = 'lost' then coalesce(lost_reason, 'unspecified') else lost_reason end "
                          "as lost_reason")
        elif c == "win_probability":
            picked.append("probability as win_probability")
        else:
            picked.append(c)
    return f"select {', '.join(picked)} from fk_final_deals where coalesce(reason, reason2) is null"


# ``_pos`` of a deal fetched ``order by deal_id`` (ids are unique, so the order is total)
POSITION_BY_ID = "row_number() over (order by deal_id) - 1"


def deal_keys_sql(position: str = POSITION_BY_ID, deals: str = "fk_deals") -> str:
    """``fk_deal_keys``: per deal of ``deals``, its row in the deals held in Python (``position``:
    an expression, by default the rank of its id, for deals fetched in id order), the columns a
    scope filters on, and ``lost_at`` (closed_at of a lost deal). Per-deal and per-stay results
    come back keyed by that integer, not by the id: no text lookup in Python. The rank is taken
    over these few columns, not over the wide deal rows (a sort of every column was slower than
    the checks)."""
    return f"""
select deal_id, {position} as _pos, pipeline, team, rep, created_at,
    case when status = 'lost' then closed_at end as lost_at
from {deals}
"""


def clean_events_sql() -> str:
    """Valid events whose deal stayed valid after the deal–event checks (those in
    ``fk_deal_keys``), with their deal's ``_pos`` and ``lost_at``."""
    return """
select e.deal_id, d._pos, e.stage, e.stage_index, e.final_index, e.entered_at, e.date_known, d.lost_at
from fk_checked_events e join fk_deal_keys d on d.deal_id = e.deal_id
where e.reason is null
"""


def quarantine_sql(deals_file: str, events_file: str, examples: int) -> str:
    """Counts by table and reason (``n``) with up to ``examples`` rows each (first by row); an
    event example's deal_id as written is looked up by row for the examples only."""
    return f"""
with q as (
    select 'deals' as tab, {string(deals_file)} as file, _row as row_number, deal_id_raw as deal_id,
        coalesce(reason_column, reason2_column) as col, coalesce(reason_value, reason2_value) as value,
        coalesce(reason, reason2) as reason
    from fk_final_deals where coalesce(reason, reason2) is not null
    union all
    select 'stage_events', {string(events_file)}, e._row, cast(null as varchar),
        coalesce(e.reason_column, 'deal_id'), e.reason_value, coalesce(e.reason, {string(reason('quarantined_deal'))})
    from fk_checked_events e left join fk_final_deals d on d.deal_id = e.deal_id and e.reason is null
        and d.copy_of is null
    where e.reason is not null or d.reason2 is not null
), ranked as (
    select *, count(*) over (partition by tab, reason) as n,
        row_number() over (partition by tab, reason order by row_number) as k
    from q
), shown as (
    select * from ranked where k <= {int(examples)}
)
select s.tab, s.file, s.row_number, coalesce(s.deal_id, cast(r.deal_id_src as varchar)) as deal_id, s.col,
    case when s.tab = 'stage_events' and s.col = 'deal_id' and s.value is null then cast(r.deal_id_src as varchar)
         else s.value end as value, s.reason, s.n
from shown s left join fk_parsed_events r on s.tab = 'stage_events' and r._row = s.row_number
"""


def date_range_sql() -> str:
    """The latest parsed date of either table within what pandas holds (for the default as-of
    date), with the table, column and row where it is."""
    inside = f"between {timestamp(MIN_DATE)} and {timestamp(MAX_DATE)}"
    return f"""
select t as latest, tab, col, row_number from (
    select created_at as t, 'deals' as tab, 'created_at' as col, _row as row_number from fk_parsed_deals
    where created_at {inside}
    union all
    select closed_at, 'deals', 'closed_at', _row from fk_parsed_deals where closed_at {inside}
    union all
    select entered_at, 'stage_events', 'entered_at', _row from fk_parsed_events where entered_at {inside}
) x order by t desc, row_number limit 1
"""
