"""The SQL texts of the per-event step and of the row checks, written once in DuckDB's dialect.

:mod:`funnelkit.engine` runs them on DuckDB as written and on Spark (or, untested, a warehouse)
after :func:`transpile` (SQLGlot) has turned them into that engine's dialect; there are no
hand-written copies per dialect. The texts are templated only by things of the configuration (how
many stages, which columns a raw table has), never by data values: values enter as literals
built by :func:`string` and :func:`timestamp`, so SQLGlot quotes them for each dialect.

Tables the per-event step reads (the row checks write them):

* ``fk_deals(deal_id, pipeline, team, rep, created_at, status, closed_at, …)`` — one row per
  valid deal;
* ``fk_events(deal_id, stage, stage_index, final_index, entered_at, date_known)`` — one row per
  valid stage event, ``stage_index`` its stage's position in the deal's pipeline (0-based) and
  ``final_index`` that pipeline's last position.
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from funnelkit.data import reason

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
    """Per deal created before ``as_of``: ``reached_<i>`` = the earliest entry into stage i or any
    later one (the any-stage rule), ``furthest_index`` (−1 when none) and, for ``strict``, the
    first entry into each stage itself (``first_<i>``), from which the in-order rule follows.

    One pass over the events, grouped by deal: ``min(entered_at) filter (where stage_index >= i)``.
    """
    columns = [f"min(e.entered_at) filter (where e.stage_index >= {i}) as reached_{i}" for i in range(n_stages)]
    if strict:
        columns += [f"min(e.entered_at) filter (where e.stage_index = {i}) as first_{i}" for i in range(n_stages)]
    at = timestamp(as_of)
    return f"""
select e.deal_id, {", ".join(columns)}, max(e.stage_index) as furthest_index
from fk_events e join fk_deals d on d.deal_id = e.deal_id
where e.entered_at < {at} and d.created_at < {at}{scope}
group by e.deal_id
"""


def stays_sql(as_of: pd.Timestamp) -> str:
    """Per stay in a non-final stage (see :func:`funnelkit.aggregate.stage_stays`): entry, exit
    (the next event, or closed_at of a deal lost before ``as_of``) and outcome. Repeated entries
    into the same stage in a row are one stay; a stay starting or ending at an entry of unknown
    date is left out."""
    at = timestamp(as_of)
    return f"""
with ev as (
    select e.deal_id, e.stage, e.stage_index, e.final_index, e.entered_at, e.date_known
    from fk_events e join fk_deals d on d.deal_id = e.deal_id
    where e.entered_at < {at} and d.created_at < {at}
), ordered as (
    select *, lag(stage_index) over (partition by deal_id order by entered_at, stage_index) as prev_index
    from ev
), runs as (
    select * from ordered where prev_index is null or prev_index <> stage_index
), stays as (
    select *,
        lead(entered_at) over (partition by deal_id order by entered_at, stage_index) as next_at,
        lead(stage_index) over (partition by deal_id order by entered_at, stage_index) as next_index,
        lead(date_known) over (partition by deal_id order by entered_at, stage_index) as next_known
    from runs
)
select s.deal_id, s.stage, s.stage_index, s.entered_at,
    case when s.next_at is not null then s.next_at
         when d.status = 'lost' and d.closed_at < {at} then d.closed_at end as exited_at,
    case when s.next_at is not null and s.next_index > s.stage_index then 'progressed'
         when s.next_at is not null then 'regressed'
         when d.status = 'lost' and d.closed_at < {at} then 'lost'
         else 'open' end as outcome
from stays s join fk_deals d on d.deal_id = s.deal_id
where s.stage_index <> s.final_index and s.date_known and coalesce(s.next_known, true)
"""


def current_stage_sql(as_of: pd.Timestamp) -> str:
    """Per deal: the stage of its latest event before ``as_of`` (ties: the later stage)."""
    at = timestamp(as_of)
    return f"""
select deal_id, stage from (
    select deal_id, stage,
        row_number() over (partition by deal_id order by entered_at desc, stage_index desc) as k
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


def _date(column: str, kind: str) -> str:
    """A raw column as a timestamp: typed values as they are, text by ISO 8601."""
    if kind == "timestamp":
        return f"cast({column} as timestamp)"
    return f"try_cast(trim(cast({column} as varchar)) as timestamp)"


def _number(column: str, kind: str, strip: Iterable[str] = ()) -> str:
    """A raw column as a double: numbers as they are, text with ``strip`` removed first."""
    if kind == "number":
        return f"cast({column} as double)"
    text = f"cast({column} as varchar)"
    for token in strip:
        text = f"replace({text}, {string(token)}, '')"
    return f"try_cast({text} as double)"


# Currency marks and separators that parse_amounts also removes.
AMOUNT_NOISE = ("¥", "￥", "$", "€", "£", "CNY", "RMB", "USD", "EUR", "元", ",", " ", "\u00a0", "\t")


def parsed_deals_sql(kinds: dict[str, str], default_pipeline: str, text_columns: list[str]) -> str:
    """``raw_deals`` with text trimmed, status lower-cased, dates and numbers parsed; one column
    ``<name>_raw`` per checked value so examples can show what was read. ``kinds`` gives each
    raw column's kind (``timestamp``, ``number``, ``text``, ``bool``) or is missing it (absent)."""
    def col(name: str) -> str:
        return name if name in kinds else "null"

    def kind(name: str) -> str:
        return kinds.get(name, "text")

    out = ["_row"]
    for name in ["deal_id", "customer", "team", "rep", "lost_reason"] + text_columns:
        out.append(f"{_text(col(name))} as {name}")
    out.append(f"lower({_text(col('status'))}) as status")
    out.append(f"coalesce({_text(col('pipeline'))}, {string(default_pipeline)}) as pipeline")
    for name in ["created_at", "closed_at", "expected_start", "last_follow_up_at"]:
        out.append(f"{_date(col(name), kind(name))} as {name}")
    for name in ["deal_id", "status", "pipeline", "created_at", "closed_at", "expected_start",
                 "last_follow_up_at", "amount", "win_probability", "payment_days"]:
        out.append(f"cast({col(name)} as varchar) as {name}_raw")
    for name in ["created_at", "closed_at", "expected_start", "last_follow_up_at", "amount", "win_probability",
                 "payment_days"]:
        out.append(f"{_text(col(name))} is null as {name}_blank")
    out.append(f"{_number(col('amount'), kind('amount'), AMOUNT_NOISE)} as amount")
    out.append(f"{_number(col('win_probability'), kind('win_probability'), AMOUNT_NOISE + ('%',))} as win_probability")
    out.append(f"{_number(col('payment_days'), kind('payment_days'))} as payment_days")
    for name in ["decision_maker_engaged", "budget_confirmed"]:
        out.append(f"{col(name) if kind(name) == 'bool' else _text(col(name))} as {name}")
    return f"select {', '.join(out)} from raw_deals"


def deal_checks_sql(pipelines: list[str], as_of: pd.Timestamp) -> str:
    """Each parsed deal with the first reason it cannot be analysed, in the order of
    :func:`funnelkit.data.validate` (so the same reason wins), its column and raw value."""
    at = timestamp(as_of)
    pipes = ", ".join(string(p) for p in pipelines)
    date_only = "closed_at = date_trunc('day', closed_at)"
    checks = [(f"{c} is null", c, reason("missing", c), "null") for c in ["deal_id", "customer", "team", "rep", "status"]]
    checks.append(("created_at_blank", "created_at", reason("missing", "created_at"), "null"))
    checks += [(f"{c} is null and not {c}_blank", c, reason("not_a_date", c), f"{c}_raw")
               for c in ["created_at", "closed_at", "expected_start", "last_follow_up_at"]]
    checks += [
        ("status not in ('open', 'won', 'lost')", "status", reason("unknown_status"), "status_raw"),
        (f"pipeline not in ({pipes})", "pipeline", reason("unknown_pipeline"), "pipeline_raw"),
        ("amount is null and not amount_blank", "amount", reason("not_a_number", "amount"), "amount_raw"),
        ("amount < 0", "amount", reason("negative", "amount"), "amount_raw"),
        ("win_probability is null and not win_probability_blank", "win_probability",
         reason("not_a_number", "win_probability"), "win_probability_raw"),
        ("payment_days is null and not payment_days_blank", "payment_days", reason("not_a_number", "payment_days"),
         "payment_days_raw"),
        ("probability < 0 or probability > 1", "win_probability",
         reason("probability_range"), "win_probability_raw"),
        ("payment_days < 0", "payment_days", reason("negative", "payment_days"), "payment_days_raw"),
        ("copies > 1", "deal_id", reason("duplicated", "deal_id"), "deal_id_raw"),
        ("status in ('won', 'lost') and closed_at is null", "closed_at", reason("closed_no_date"), "null"),
        (f"({date_only} and closed_at < date_trunc('day', created_at)) or "
         f"(not ({date_only}) and closed_at < created_at)", "closed_at", reason("closed_before_created"),
         "closed_at_raw"),
        (f"created_at >= {at}", "created_at", reason("after_as_of", "created_at"), "created_at_raw"),
    ]
    return f"""
with p as (
    select *, count(*) over (partition by deal_id) as copies,
        case when max(win_probability) over () > 1 then win_probability / 100 else win_probability end as probability
    from fk_parsed_deals
)
select *, {_first_reason(checks)}
from p
"""


def _first_reason(checks: list[tuple[str, str, str, str]], name: str = "reason") -> str:
    """``<name>``, ``<name>_column`` and ``<name>_value`` of the first check that holds."""
    def case(pick: int) -> str:
        whens = " ".join(f"when coalesce({c[0]}, false) then {string(c[pick]) if pick < 3 else c[pick]}"
                         for c in checks)
        return f"case {whens} end"

    return (f"{case(2)} as {name}, {case(1)} as {name}_column, "
            f"cast({case(3)} as varchar) as {name}_value")


def parsed_events_sql(kinds: dict[str, str]) -> str:
    """``raw_events`` with deal_id trimmed and entered_at parsed; ``date_known`` true if absent."""
    known = "coalesce(cast(date_known as boolean), true)" if "date_known" in kinds else "true"
    stage = "stage" if "stage" in kinds else "null"
    return f"""
select _row, {_text('deal_id')} as deal_id, cast({stage} as varchar) as stage_raw,
    {_text(stage)} is null as stage_blank,
    {_date('entered_at', kinds.get('entered_at', 'text'))} as entered_at,
    cast(entered_at as varchar) as entered_at_raw, {_text('entered_at')} is null as entered_at_blank,
    cast(deal_id as varchar) as deal_id_raw, {known} as date_known
from raw_events
"""


def event_checks_sql(as_of: pd.Timestamp) -> str:
    """Each parsed event with its deal's stage key and index, and the first reason it cannot be
    analysed, in the order of :func:`funnelkit.data.validate`. ``fk_stage_names`` maps each raw
    stage spelling per pipeline to its key (built in Python by the config's own lookup)."""
    at = timestamp(as_of)
    created_day = "d.created_at = date_trunc('day', d.created_at)"
    closed_day = "d.closed_at = date_trunc('day', d.closed_at)"
    entered_day = "date_trunc('day', e.entered_at)"
    checks = [
        ("e.deal_id is null", "deal_id", reason("missing", "deal_id"), "null"),
        ("e.stage_blank", "stage", reason("missing", "stage"), "null"),
        ("e.entered_at_blank", "entered_at", reason("missing", "entered_at"), "null"),
        ("e.entered_at is null", "entered_at", reason("not_a_date", "entered_at"), "e.entered_at_raw"),
        ("a.deal_id is null", "deal_id", reason("unknown_deal"), "e.deal_id_raw"),
        ("d.deal_id is null", "deal_id", reason("quarantined_deal"), "e.deal_id_raw"),
        ("m.stage is null", "stage", reason("unknown_stage"), "e.stage_raw"),
        (f"({entered_day} < d.created_at and {created_day}) or (e.entered_at < d.created_at and not ({created_day}))",
         "entered_at", reason("before_created"), "e.entered_at_raw"),
        (f"({entered_day} > d.closed_at and {closed_day}) or (e.entered_at > d.closed_at and not ({closed_day}))",
         "entered_at", reason("after_closed"), "e.entered_at_raw"),
        (f"e.entered_at >= {at}", "entered_at", reason("after_as_of", "entered_at"),
         "e.entered_at_raw"),
    ]
    return f"""
select e._row, e.deal_id, e.deal_id_raw, e.entered_at, e.date_known, m.stage, m.stage_index, m.final_index,
    {_first_reason(checks)}
from fk_parsed_events e
left join (select distinct deal_id from fk_parsed_deals) a on a.deal_id = e.deal_id
left join (select deal_id, pipeline, created_at,
               case when status = 'open' then null else closed_at end as closed_at
           from fk_checked_deals where reason is null) d on d.deal_id = e.deal_id
left join fk_stage_names m on m.raw = e.stage_raw and m.pipeline = d.pipeline
"""


def deal_events_sql() -> str:
    """The checks between a deal and its valid events: a deal with none, a won deal that never
    reached its pipeline's final stage, and a deal that did but is not won."""
    checks = [
        ("v.deal_id is null", "deal_id", reason("no_event"), "null"),
        ("d.status = 'won' and not v.reached_final", "status", reason("won_not_final"), "d.status_raw"),
        ("d.status <> 'won' and v.reached_final", "status", reason("final_not_won"),
         "d.status_raw"),
    ]
    return f"""
select d.*, {_first_reason(checks, "reason2")}
from fk_checked_deals d
left join (select deal_id, max(stage_index = final_index) as reached_final
           from fk_checked_events where reason is null group by deal_id) v on v.deal_id = d.deal_id
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


def clean_events_sql() -> str:
    """Valid events whose deal stayed valid after the deal–event checks."""
    return """
select e.deal_id, e.stage, e.stage_index, e.final_index, e.entered_at, e.date_known
from fk_checked_events e join fk_final_deals d on d.deal_id = e.deal_id
where e.reason is null and d.reason is null and d.reason2 is null
"""


def quarantine_sql(deals_file: str, events_file: str, examples: int) -> str:
    """Counts by table and reason (``n``) with up to ``examples`` rows each (first by row)."""
    return f"""
with q as (
    select 'deals' as tab, {string(deals_file)} as file, _row as row_number, deal_id_raw as deal_id,
        coalesce(reason_column, reason2_column) as col, coalesce(reason_value, reason2_value) as value,
        coalesce(reason, reason2) as reason
    from fk_final_deals where coalesce(reason, reason2) is not null
    union all
    select 'stage_events', {string(events_file)}, e._row, e.deal_id_raw,
        coalesce(e.reason_column, 'deal_id'), coalesce(e.reason_value, e.deal_id_raw),
        coalesce(e.reason, 'quarantined_deal')
    from fk_checked_events e left join fk_final_deals d on d.deal_id = e.deal_id and e.reason is null
    where e.reason is not null or d.reason2 is not null
), ranked as (
    select *, count(*) over (partition by tab, reason) as n,
        row_number() over (partition by tab, reason order by row_number) as k
    from q
)
select tab, file, row_number, deal_id, col, value, reason, n from ranked where k <= {int(examples)}
"""


def date_range_sql() -> str:
    """The latest parsed date of either table (for the default as-of date)."""
    return """
select max(t) as latest from (
    select max(created_at) as t from fk_parsed_deals union all
    select max(closed_at) from fk_parsed_deals union all
    select max(entered_at) from fk_parsed_events
) x
"""
