"""The per-event step: stage events → one row per deal (reach) and one row per stay.

This is the only code that reads event rows; everything downstream works on its outputs. Both
outputs are simple group-wise aggregations (first entry per stage, next event per deal), so the
same step can run as SQL where the data lives (:mod:`funnelkit.events.sql`, run by :mod:`funnelkit.events.engine`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from funnelkit.events import engine as engines
from funnelkit.events.sql import OUTCOMES
from funnelkit.arguments import checked_filters
from funnelkit.config import FunnelConfig
from funnelkit.inputs.data import Dataset, isin, positions, take

DEAL_COLUMNS = ["deal_id", "pipeline", "team", "rep", "created_at", "amount", "status", "closed_at", "lost_reason"]


def _engine(data: Dataset, engine: engines.Engine | str | None) -> engines.Engine | str | None:
    """The engine to run the per-event step in, or None for the pandas code."""
    held = getattr(data, "engine", None)
    if engine is None:
        return held
    if engine == "pandas" and held is not None:
        raise ValueError(f"this dataset's events are in {held.name}; pandas cannot read them")
    return None if engine == "pandas" else engine


def stage_list(config: FunnelConfig, deals: pd.DataFrame, pipeline: str | None) -> list[str]:
    """Stage keys for ``pipeline``, or the stages shared by every pipeline in ``deals``.

    Funnels of pipelines with different stage lists cannot be added up: name one.
    """
    if pipeline is not None:
        if pipeline not in config.pipelines:
            raise ValueError(f"pipeline {pipeline!r} is not one of {', '.join(config.pipelines)}")
        return config.stage_keys(pipeline)
    present = list(pd.unique(deals["pipeline"])) or [config.default_pipeline]
    lists = {tuple(config.stage_keys(p)) for p in present}
    if len(lists) > 1:
        raise ValueError(f"pipelines {', '.join(present)} have different stages; choose one with pipeline= "
                         "(in params/reports.yaml, `pipeline:` on the entry: one entry per pipeline)")
    return list(lists.pop())


def deals_as_of(deals: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Deals created before ``as_of``, with status and closed_at as they stood then.

    A deal closed at or after ``as_of`` was still open at ``as_of``.
    """
    created = deals["created_at"] < as_of
    # all created before as_of (the usual case): no copy of every column
    seen = deals.copy(deep=False) if created.all() else deals[created]
    closed_later = seen["closed_at"].notna() & (seen["closed_at"] >= as_of)
    if closed_later.any():
        seen = seen.copy()
        seen.loc[closed_later, "status"] = "open"
        seen.loc[closed_later, "closed_at"] = pd.NaT
        seen.loc[closed_later, "lost_reason"] = pd.NA
    return seen


def filter_scope(frame: pd.DataFrame, team: str | None = None, rep: str | None = None,
                 pipeline: str | None = None) -> pd.DataFrame:
    """Rows of ``frame`` for one team, rep and/or pipeline (``None`` keeps all)."""
    if team is None and rep is None and pipeline is None:
        return frame.copy(deep=False)  # a new frame (copy on write), not a copy of every column
    mask = pd.Series(True, index=frame.index)
    for column, value in (("team", team), ("rep", rep), ("pipeline", pipeline)):
        if value is not None:
            mask &= frame[column] == value
    return frame[mask]


def reach_table(
    data: Dataset,
    config: FunnelConfig,
    as_of: str | pd.Timestamp | None = None,
    strict: bool = False,
    pipeline: str | None = None,
    team: str | None = None,
    rep: str | None = None,
    engine: engines.Engine | str | None = None,
) -> pd.DataFrame:
    """One row per deal: when it reached each stage, its furthest stage and its status at ``as_of``.

    Any-stage rule (default): a deal reaches stage s at its earliest entry into s *or any later
    stage*, so a skipped stage counts as passed at the time of the later entry::

        reached_at[s] = min(first_entry[j] for j >= s)

    Strict rule (``strict=True``): a deal reaches s only by entering s after reaching s−1;
    a deal whose chain breaks is marked ``skipped_out`` at its last in-order stage.

    Columns: the deal columns, ``reached_<stage>`` per stage (datetime), ``furthest_stage``,
    ``furthest_index`` (0-based; −1 when no stage was reached by ``as_of``) and ``skipped_out``.
    The stage order is :func:`stage_list` (a :class:`~funnelkit.events.scope.Scope` holds it beside the table).

    ``engine`` (``"pandas"``, ``"duckdb"``, ``"spark"`` or an :class:`~funnelkit.events.engine.Engine`)
    runs the step there from the SQL in :mod:`funnelkit.events.sql`; by default a dataset loaded into an
    engine uses it, any other the pandas code below (the reference). The filters and ``as_of`` are
    checked as in :func:`funnelkit.arguments.checked_filters`: an unknown team or rep is an error
    listing the valid ones, not an empty table.
    """
    as_of, team, rep, pipeline, _ = checked_filters(data, config, as_of=as_of, team=team, rep=rep, pipeline=pipeline)
    if _engine(data, engine) is not None:
        return engines.reach_table(data, config, as_of, strict, pipeline, team, rep, engine=_engine(data, engine))
    deals = filter_scope(deals_as_of(data.deals, as_of), team, rep, pipeline)
    stages = stage_list(config, deals, pipeline)
    events = data.events[(data.events["entered_at"] < as_of) & isin(data.events["deal_id"], deals["deal_id"])]

    first = events.groupby(["deal_id", "stage"], observed=True)["entered_at"].min().unstack("stage")
    first = first.reindex(index=deals["deal_id"], columns=stages)
    entry = first.to_numpy(dtype="datetime64[ns]").view("int64")
    entry = np.where(entry == NAT, NEVER, entry)
    any_stage = np.minimum.accumulate(entry[:, ::-1], axis=1)[:, ::-1]
    return reach_frame(deals, stages, any_stage, entry, strict, as_of)


def named(codes: np.ndarray, names: list[str]) -> pd.Series:
    """``names[code]`` for each code (missing where negative) as a text column (pandas' ``str``),
    through an Arrow dictionary: millions of rows without a Python object each."""
    codes = np.asarray(codes)
    picked = pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32(), mask=codes < 0),
                                            pa.array(names, type=pa.string())).cast(pa.string())
    return picked.to_pandas()


NEVER = np.iinfo("int64").max  # "no entry" in integer nanoseconds: later than any entry
NAT = np.iinfo("int64").min  # NaT's integer value


def reach_frame(deals: pd.DataFrame, stages: list[str], any_stage: np.ndarray, entry: np.ndarray | None,
                strict: bool, as_of: pd.Timestamp) -> pd.DataFrame:
    """The reach table from two deals × stages matrices of integer nanoseconds (:data:`NEVER`
    where none): ``any_stage`` = earliest entry into the stage or any later one, ``entry`` =
    first entry into the stage itself (used by the strict rule only)."""
    if strict:
        reached = entry.copy()
        for j in range(1, len(stages)):
            reached[:, j] = np.where(reached[:, j - 1] == NEVER, NEVER, entry[:, j])
    else:
        reached = any_stage
    has = reached != NEVER
    furthest = np.where(has.any(axis=1), has.shape[1] - 1 - np.argmax(has[:, ::-1], axis=1), -1)
    furthest_any = np.where((any_stage != NEVER).any(axis=1),
                            has.shape[1] - 1 - np.argmax((any_stage != NEVER)[:, ::-1], axis=1), -1)

    out = deals[[c for c in DEAL_COLUMNS if c in deals.columns]].reset_index(drop=True)
    reached = np.where(has, reached, NAT).astype("int64").view("datetime64[ns]")
    for j, stage in enumerate(stages):
        out[f"reached_{stage}"] = reached[:, j]
    out["furthest_index"], out["furthest_stage"] = furthest_columns(furthest, stages)
    out["skipped_out"] = furthest_any > furthest
    return out


def furthest_columns(furthest: np.ndarray, stages: list[str]) -> tuple[np.ndarray, pd.Categorical]:
    """The reach table's ``furthest_index`` (−1 when no stage was reached) in the smallest integer
    type that holds it, and ``furthest_stage``, its stage name (missing at −1), as a categorical
    (:func:`coded`): a byte a deal each instead of eight and about sixteen (0.2 GB at 10M deals)."""
    furthest = np.asarray(furthest)
    return furthest.astype(np.min_scalar_type(-max(len(stages), 1))), coded(furthest, stages)


def stage_stays(data: Dataset, config: FunnelConfig, as_of: str | pd.Timestamp | None = None,
                engine: engines.Engine | str | None = None) -> pd.DataFrame:
    """One row per stay of a deal in a non-final stage, seen at ``as_of``.

    A stay starts at an entry into stage s and ends at the deal's next stage event (``outcome``
    ``progressed`` if that stage is later, ``regressed`` if earlier — a regression starts a new
    stay of the earlier stage), at ``closed_at`` for a lost deal (``lost``), or is right-censored
    at ``as_of`` for a deal still open (``open``, ``censored=True``, ``exited_at`` empty).
    A skipped stage has no stay; repeated entries into the same stage in a row are one stay.
    ``days = (exited_at or as_of − entered_at) / 1 day``. A stay that starts or ends at an entry
    whose date is unknown (``date_known`` False, from a snapshot export) is left out.

    Columns: ``deal_id, team, rep, pipeline, stage, stage_index, entered_at, exited_at, outcome,
    days, censored``. ``engine`` and ``as_of`` as in :func:`reach_table`.
    """
    as_of = checked_filters(data, config, as_of=as_of).as_of
    if _engine(data, engine) is not None:
        return engines.stage_stays(data, config, as_of, engine=_engine(data, engine))
    deals = deals_as_of(data.deals, as_of).reset_index(drop=True)
    events = data.events[data.events["entered_at"] < as_of]
    deal_pos = positions(events["deal_id"], deals["deal_id"])  # row of each event's deal, −1 if none
    keep = deal_pos >= 0
    deal_pos = deal_pos[keep]
    entered = events["entered_at"].to_numpy(dtype="datetime64[ns]")[keep]
    known = events["date_known"].to_numpy(dtype=bool)[keep] if "date_known" in events else np.ones(len(deal_pos), bool)

    # Work on integer codes: the deal's row and the stage's position in its pipeline.
    pipeline_codes, pipelines = pd.factorize(deals["pipeline"])
    event_pipeline = pipeline_codes[deal_pos]
    stage_codes, stage_names_seen = pd.factorize(events["stage"])
    stage_codes = stage_codes[keep]
    stage_index = np.full(len(deal_pos), -1)
    for code, name in enumerate(pipelines):
        rows = event_pipeline == code
        index_of = {s: i for i, s in enumerate(config.stage_keys(name))}
        lookup = np.array([index_of.get(n, -1) for n in stage_names_seen] + [-1])
        stage_index[rows] = lookup[stage_codes[rows]]
    order = np.lexsort((stage_index, entered, deal_pos))
    deal_pos, entered, stage_index, known = deal_pos[order], entered[order], stage_index[order], known[order]
    first_of_run = np.ones(len(deal_pos), bool)
    first_of_run[1:] = (deal_pos[1:] != deal_pos[:-1]) | (stage_index[1:] != stage_index[:-1])
    deal_pos, entered, stage_index, known = (a[first_of_run] for a in (deal_pos, entered, stage_index, known))

    same_deal_next = np.zeros(len(deal_pos), bool)
    same_deal_next[:-1] = deal_pos[:-1] == deal_pos[1:]
    next_at = np.where(same_deal_next, np.roll(entered, -1), np.datetime64("NaT"))
    next_index = np.where(same_deal_next, np.roll(stage_index, -1), -1)
    dated = known & np.where(same_deal_next, np.roll(known, -1), True)
    lost = (deals["status"].to_numpy(dtype=object) == "lost")[deal_pos]
    closed_at = deals["closed_at"].to_numpy(dtype="datetime64[ns]")[deal_pos]
    has_next = same_deal_next
    outcome = np.select([has_next & (next_index > stage_index), has_next, lost], [0, 1, 2], 3)  # OUTCOMES
    exited_at = np.where(has_next, next_at, np.where(lost, closed_at, np.datetime64("NaT")))
    final_index = np.array([len(config.stage_keys(p)) - 1 for p in pipelines])[pipeline_codes[deal_pos]]
    rows = (stage_index != final_index) & dated
    deal_pos, stage_index, entered, exited_at, outcome = (
        a[rows] for a in (deal_pos, stage_index, entered, exited_at, outcome))

    return stays_frame(deals, config, deal_pos, stage_index, entered, exited_at, outcome, as_of)


def stays_frame(deals: pd.DataFrame, config: FunnelConfig, deal_pos: np.ndarray, stage_index: np.ndarray,
                entered: np.ndarray, exited_at: np.ndarray, outcome: np.ndarray, as_of: pd.Timestamp,
                compact: bool = False) -> pd.DataFrame:
    """The stay table from per-stay arrays (``deal_pos``: the deal's row in ``deals``; ``outcome``:
    indexes into :data:`funnelkit.events.sql.OUTCOMES`), with the deal's team, rep and pipeline,
    the stage key (``stage_index`` in the deal's pipeline), ``censored`` and ``days`` (to exit, or
    to ``as_of`` if open). ``compact``: ``deal_id``, ``stage`` and ``outcome`` as categoricals (the
    deal's row, the stage and the outcome as small integer codes; categories in text order) and
    ``stage_index`` as int8, the same values in a fraction of the memory (an engine's stays of
    millions of deals)."""
    pipeline = take(deals["pipeline"], deal_pos)
    stage, names = stage_name_codes(pipeline, stage_index, config)
    if compact:
        deal_id = pd.Categorical.from_codes(deal_pos.astype(np.int32, copy=False), dtype=_deal_ids(deals))
        stage_column = coded(stage, names)
        outcome_column = coded(outcome, list(OUTCOMES))
        stage_index = stage_index.astype(np.int8)
    else:
        deal_id = deals["deal_id"].take(deal_pos).reset_index(drop=True)
        stage_column, outcome_column = named(stage, names), named(outcome, list(OUTCOMES))
    stays = pd.DataFrame({
        "deal_id": deal_id,
        "team": take(deals["team"], deal_pos), "rep": take(deals["rep"], deal_pos),
        "pipeline": pipeline,
        "stage": stage_column, "stage_index": stage_index, "entered_at": entered,
        "exited_at": exited_at.astype("datetime64[ns]", copy=False), "outcome": outcome_column,
    }, copy=False)
    stays["censored"] = outcome == OUTCOMES.index("open")
    end = stays["exited_at"].fillna(as_of)
    stays["days"] = (end - stays["entered_at"]) / pd.Timedelta(days=1)
    return stays


def stage_name_codes(pipeline: pd.Series, stage_index: np.ndarray, config: FunnelConfig) -> tuple[np.ndarray, list[str]]:
    """Each row's stage as a code into the stage keys of every pipeline present, joined in one list
    (``names``, which may repeat a key: a stage of two pipelines): ``stage_index`` is the position
    in the row's ``pipeline``. Small integers: a row per stay, tens of millions at 10M deals."""
    pipeline_codes, pipelines = pd.factorize(pipeline)
    keys = [config.stage_keys(p) for p in pipelines]
    first = np.cumsum([0] + [len(k) for k in keys], dtype=np.int16)[:-1]  # each pipeline's first key in the list
    codes = first[pipeline_codes.astype(np.int16)] + stage_index if len(keys) else np.full(len(stage_index), -1)
    return codes, [s for k in keys for s in k]


def coded(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    """``names[code]`` for each code (missing where negative) as a categorical whose categories
    are the distinct names in text order (``names`` may repeat one: a stage of two pipelines)."""
    categories = sorted(set(names))
    recode = np.array([categories.index(n) for n in names] + [-1], dtype=np.int16)
    codes = np.asarray(codes)
    return pd.Categorical.from_codes(recode[np.where(codes < 0, len(names), codes)], categories=categories)


def _deal_ids(deals: pd.DataFrame) -> pd.CategoricalDtype:
    """The deals' ids (unique: checked on load) as a categorical type whose codes are the rows of ``deals``."""
    # the column's own array: no Python string per deal, no second copy of the ids
    ids = pd.Index(deals["deal_id"].array, copy=False)
    fast = getattr(pd.CategoricalDtype, "_from_fastpath", None)
    # without the public constructor's uniqueness check, whose hash table of every id stays cached
    # on the index as long as the stays live (1.4 GB at 10M deals); the load checked the ids unique
    return fast(ids, False) if fast is not None else pd.CategoricalDtype(ids)


def open_deals(data: Dataset, config: FunnelConfig, as_of: str | pd.Timestamp | None = None,
               engine: engines.Engine | str | None = None) -> pd.DataFrame:
    """Deals still open at ``as_of`` with their current ``stage``: the stage of their latest event
    (after a regression, the earlier stage they fell back to). ``engine`` and ``as_of`` as in
    :func:`reach_table`."""
    as_of = checked_filters(data, config, as_of=as_of).as_of
    if _engine(data, engine) is not None:
        return engines.open_deals(data, config, as_of, engine=_engine(data, engine))
    deals = deals_as_of(data.deals, as_of)
    deals = deals[deals["status"] == "open"]
    events = data.events[(data.events["entered_at"] < as_of) & isin(data.events["deal_id"], deals["deal_id"])]
    latest = events.sort_values(["deal_id", "entered_at"], kind="stable").groupby("deal_id")["stage"].last()
    return deals.assign(stage=deals["deal_id"].map(latest).astype("object")).reset_index(drop=True)
