"""The per-event step as SQL: stage events → per-deal reach table and per-stay table.

These queries are the same aggregation :func:`funnelkit.aggregate.reach_table` and
:func:`funnelkit.aggregate.stage_stays` do in pandas, written so they can run where the data lives
(DuckDB here; the same SQL, or a SQLGlot translation of it, on a warehouse or Spark table). Only
the per-deal and per-stay results, far smaller than the event log, need to come back to pandas.

Tables expected: ``deals(deal_id, pipeline, status, closed_at, created_at, …)`` and
``stage_events(deal_id, stage, entered_at)``; stages are passed in funnel order.
"""
from __future__ import annotations

import pandas as pd


def _stage_case(stages: list[str]) -> str:
    whens = " ".join(f"when '{s}' then {i}" for i, s in enumerate(stages))
    return f"case e.stage {whens} end"


def reach_sql(stages: list[str], as_of: pd.Timestamp) -> str:
    """Per deal: ``reached_<stage>`` by the any-stage rule (first entry into the stage or any
    later one), ``furthest_index``, and the status / closed_at as they stood at ``as_of``."""
    reached = ",\n    ".join(
        f"min(e.entered_at) filter (where {_stage_case(stages)} >= {i}) as reached_{s}" for i, s in enumerate(stages)
    )
    return f"""
select d.deal_id, d.pipeline, d.team, d.rep,
    case when d.closed_at < TIMESTAMP '{as_of}' then d.status else 'open' end as status,
    case when d.closed_at < TIMESTAMP '{as_of}' then d.closed_at end as closed_at,
    {reached},
    coalesce(max({_stage_case(stages)}), -1) as furthest_index
from deals d
left join stage_events e on e.deal_id = d.deal_id and e.entered_at < TIMESTAMP '{as_of}'
where d.created_at < TIMESTAMP '{as_of}'
group by all
order by d.deal_id
"""


def stays_sql(stages: list[str], as_of: pd.Timestamp) -> str:
    """Per stay: entry, exit (next event, or closed_at of a lost deal), outcome, days, censored.
    Repeated entries into the same stage in a row are one stay; the final stage has no stay."""
    final = len(stages) - 1
    return f"""
with ev as (
    select e.deal_id, e.entered_at, {_stage_case(stages)} as stage_index
    from stage_events e join deals d using (deal_id)
    where e.entered_at < TIMESTAMP '{as_of}' and d.created_at < TIMESTAMP '{as_of}'
), ordered as (
    select *, lag(stage_index) over w as prev_index
    from ev window w as (partition by deal_id order by entered_at, stage_index)
), runs as (
    select deal_id, entered_at, stage_index from ordered
    where prev_index is null or prev_index <> stage_index
), stays as (
    select deal_id, entered_at, stage_index,
        lead(entered_at) over w as next_at, lead(stage_index) over w as next_index
    from runs window w as (partition by deal_id order by entered_at, stage_index)
)
select s.deal_id, s.stage_index, s.entered_at,
    case when s.next_at is not null then s.next_at
         when d.status = 'lost' and d.closed_at < TIMESTAMP '{as_of}' then d.closed_at end as exited_at,
    case when s.next_at is not null and s.next_index > s.stage_index then 'progressed'
         when s.next_at is not null then 'regressed'
         when d.status = 'lost' and d.closed_at < TIMESTAMP '{as_of}' then 'lost'
         else 'open' end as outcome
from stays s join deals d using (deal_id)
where s.stage_index <> {final}
order by s.deal_id, s.entered_at, s.stage_index
"""


def run_duckdb_parquet(folder: str, query: str) -> pd.DataFrame:
    """Run ``query`` with ``deals`` and ``stage_events`` as views over Parquet files in ``folder``:
    the way a warehouse would run it, reading only what the query needs."""
    import duckdb

    with duckdb.connect() as con:
        con.execute(f"create view deals as select * from read_parquet('{folder}/deals.parquet')")
        con.execute(f"create view stage_events as select * from read_parquet('{folder}/stage_events.parquet')")
        return con.execute(query).df()
