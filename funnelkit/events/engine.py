"""Run the per-event step and the row checks where the data lives: DuckDB or Apache Spark.

The SQL is written once (:mod:`funnelkit.events.sql`, DuckDB's dialect) and transpiled by SQLGlot for
Spark. An :class:`Engine` holds the tables; only per-deal and per-stay tables, the quarantine
counts by reason and up to ``examples`` example rows per reason come back to Python.

Sources (:func:`load_source`):

* ``duckdb:///path/file.duckdb`` — tables ``deals`` and ``stage_events`` of a DuckDB file (a
  relative path; four slashes, ``duckdb:////data/crm.duckdb``, for an absolute one);
* ``duckdb:///path/folder`` — ``deals.parquet`` and ``stage_events.parquet`` (files or folders of
  parts) read by DuckDB out of core; ``?memory_limit=2GB`` caps DuckDB's memory (it spills to the
  temporary folder beyond);
* ``spark:/path/folder`` — the same Parquet read by Spark; ``spark:db`` — tables ``db.deals`` and
  ``db.stage_events`` of the Spark catalog (``spark:`` alone: ``deals`` and ``stage_events``).
  A local ``SparkSession`` (``local[*]``) by default; ``?master=spark://host:7077`` or
  ``?remote=sc://host:15002`` (Spark Connect) after the source, or the environment variables
  ``FUNNELKIT_SPARK_MASTER`` / ``FUNNELKIT_SPARK_REMOTE``, point elsewhere.

Dates in text columns are read as the pandas path reads them, except Excel serial numbers, times
with a zone offset and month names: ISO 8601 (``2024-03-01 09:00``), and ``dd-mm-yyyy`` /
``mm-dd-yyyy`` with the order decided once per column (by the preset's ``dayfirst``, else by the
column's unambiguous values); ``date_formats`` (strptime) run in DuckDB. Anything else is
quarantined as "not a date", like any unparseable date.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import pandas as pd

from funnelkit.events import sql
from funnelkit.config import FunnelConfig, normalise_name
from funnelkit.inputs.data import (AS_OF_HORIZON, DEAL_OPTIONAL, DEAL_REQUIRED, NO_TEAM, DataError, Dataset, Parsing,
                            _normalise_categories, data_note, empty_quarantine, shown)

ENGINES = ("pandas", "duckdb", "spark")
EXAMPLES = 20  # example rows per quarantine reason
SOURCE_PREFIXES = ("duckdb:", "spark:")
_TEXT_COLUMNS = ["industry", "contact", "need", "strategic_value", "follow_up_cost", "competitive_position",
                 "need_fit"]


class Engine:
    """A SQL engine holding funnelkit's tables (base class; see :class:`DuckDBEngine`,
    :class:`SparkEngine`). ``query`` takes DuckDB-dialect SQL and returns a pandas frame."""

    name = "engine"
    dialect = sql.BASE_DIALECT

    def query(self, text: str, categorical: tuple[str, ...] = ()) -> pd.DataFrame:
        """Run ``text`` (transpiled to this engine's dialect) and fetch the result; the text columns
        named in ``categorical`` come back as pandas categoricals with their categories sorted (so a
        groupby or a sort orders them as it orders text), a byte or two a row instead of the text."""
        return self._fetch(sql.transpile(text, self.dialect), categorical)

    def define(self, name: str, text: str, materialise: bool = False) -> None:
        """Make ``name`` a view of ``text`` (a table computed once when ``materialise``)."""
        raise NotImplementedError

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Make a pandas frame available as table ``name``."""
        raise NotImplementedError

    def drop(self, *names: str) -> None:
        """Free the memory the tables or views ``names`` hold, where that is safe: by default
        nothing (Spark re-plans the cached views computed from a dropped one, so it keeps them)."""

    def kinds(self, name: str) -> dict[str, str]:
        """Each column of ``name`` → ``timestamp``, ``number``, ``bool`` or ``text``."""
        raise NotImplementedError

    def _fetch(self, text: str, categorical: tuple[str, ...] = ()) -> pd.DataFrame:
        raise NotImplementedError


# One conversion, on all cores, freeing each Arrow column as it goes; timestamps straight to the
# nanoseconds pandas' tables hold (a second copy per column otherwise)
ARROW_TO_PANDAS = {"self_destruct": True, "split_blocks": True, "coerce_temporal_nanoseconds": True}
FETCH_BATCH_ROWS = 1_000_000  # rows fetched (and copied out of DuckDB's memory) at a time


def _sorted_categories(frame: pd.DataFrame, categorical: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` with the ``categorical`` columns as categoricals whose categories are in text
    order (an engine's dictionary is in order of first appearance)."""
    for column in categorical:
        if column in frame:
            values = frame[column].astype("category")
            # recoded even when in order: the smallest code type (a byte), not Arrow's int32 indices
            frame[column] = values.cat.set_categories(sorted(values.cat.categories))
    return frame


def _kind(type_name: str) -> str:
    t = type_name.lower()
    if "timestamp" in t or t.startswith("date"):
        return "timestamp"
    if t.startswith("bool"):
        return "bool"
    if any(k in t for k in ("int", "double", "float", "decimal", "real", "numeric", "long", "short", "byte")):
        return "number"
    return "text"


class DuckDBEngine(Engine):
    """DuckDB in this process; ``memory_limit`` (e.g. ``"2GB"``) makes large steps spill to disk."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self, con: Any = None, memory_limit: str | None = None):
        import duckdb

        self.con = con if con is not None else duckdb.connect()
        try:
            self.con.execute("set enable_progress_bar = false")
        except duckdb.InvalidInputException:
            # in a Jupyter kernel without ipywidgets (a report's) DuckDB refuses to change the
            # setting, having turned the bar off itself: nothing to do
            pass
        if memory_limit:
            # DuckDB's allocator keeps freed memory (the Arrow batches it exported, its operators'
            # buffers) until purged: with background threads it is returned to the system, so a
            # limit bounds the process's resident memory, not only DuckDB's buffers
            self.con.execute("set allocator_background_threads = true")
            self.con.execute(f"set memory_limit = {sql.string(memory_limit)}")
            self.con.execute(f"set temp_directory = {sql.string(tempfile.gettempdir())}")
            self.con.execute("set preserve_insertion_order = false")

    def _fetch(self, text: str, categorical: tuple[str, ...] = ()) -> pd.DataFrame:
        # through Arrow: text comes back as Arrow-backed strings, not one Python object per value
        import pyarrow as pa
        import pyarrow.compute as pc

        # In batches, each copied into Arrow's own memory as it arrives (the text columns named in
        # ``categorical`` dictionary-encoded on the way): a batch DuckDB exports is freed only once
        # every one of its columns is. Text pandas keeps zero-copy held its whole batch, the encoded
        # text's originals included, as long as the frame lived (at 10M deals 2.8 GB resident for
        # 1.5 GB of batches); copying the text only still left every batch alive until the numbers
        # were converted (the load's peak 5.0 GB instead of 3.1 GB).
        reader = self.con.sql(text).to_arrow_reader(FETCH_BATCH_ROWS)
        if not categorical and not any(pa.types.is_string(t) or pa.types.is_large_string(t) or
                                       pa.types.is_string_view(t) for t in reader.schema.types):
            # numbers and dates only: the conversion copies them (a one-batch result may be kept
            # zero-copy, holding only itself), so a copy first would only cost time (the reach)
            return reader.read_all().to_pandas(**ARROW_TO_PANDAS)
        batches = []
        for batch in reader:
            batches.append(pa.RecordBatch.from_arrays(
                [pc.dictionary_encode(column) if name in categorical else pa.concat_arrays([column])
                 for name, column in zip(batch.schema.names, batch.columns)], names=batch.schema.names))
            del batch
        if not batches:
            return _sorted_categories(reader.schema.empty_table().to_pandas(), categorical)
        table = pa.Table.from_batches(batches)
        del batches
        if categorical:
            table = table.unify_dictionaries()
        frame = _sorted_categories(table.to_pandas(**ARROW_TO_PANDAS), categorical)
        del table
        pa.default_memory_pool().release_unused()  # the encoding's scratch memory, back to the system
        return frame

    def define(self, name: str, text: str, materialise: bool = False) -> None:
        self.con.execute(f"create or replace temp {'table' if materialise else 'view'} {name} as {text}")

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.con.register(f"{name}_frame", frame)
        self.define(name, f"select * from {name}_frame")

    def drop(self, *names: str) -> None:
        for name in names:
            kind = self.con.execute("select table_type from information_schema.tables where table_name = ?",
                                    [name]).fetchone()
            if kind is not None:
                self.con.execute(f"drop {'view' if kind[0] == 'VIEW' else 'table'} {name}")

    def kinds(self, name: str) -> dict[str, str]:
        return {row[0]: _kind(row[1]) for row in self.con.execute(f"describe {name}").fetchall()}


class SparkEngine(Engine):
    """A Spark session: local (``local[*]``) unless a master or Spark Connect URL is given."""

    name = "spark"
    dialect = "spark"

    def __init__(self, session: Any = None, master: str | None = None, remote: str | None = None,
                 conf: dict[str, str] | None = None):
        self.spark = session if session is not None else spark_session(master, remote, conf)

    def _fetch(self, text: str, categorical: tuple[str, ...] = ()) -> pd.DataFrame:
        with _quiet_pyspark():
            return _sorted_categories(self.spark.sql(text).toPandas(), categorical)

    def define(self, name: str, text: str, materialise: bool = False) -> None:
        frame = self.spark.sql(sql.transpile(text, self.dialect))
        if materialise:
            frame = frame.cache()  # computed once, on first use; later queries do not re-run the checks
        frame.createOrReplaceTempView(name)

    def register(self, name: str, frame: pd.DataFrame) -> None:
        import pyarrow as pa

        table = pa.Table.from_pandas(_plain(frame), preserve_index=False)
        # Arrow's null type (an all-empty column) has no Spark type: read it as text.
        table = table.cast(pa.schema([pa.field(f.name, pa.string() if pa.types.is_null(f.type) else
                                               pa.timestamp("us") if pa.types.is_timestamp(f.type) else f.type)
                                      for f in table.schema]))
        with _quiet_pyspark():
            self.spark.createDataFrame(table).createOrReplaceTempView(name)

    def kinds(self, name: str) -> dict[str, str]:
        return {f.name: _kind(f.dataType.simpleString()) for f in self.spark.table(name).schema.fields}


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Text and categorical columns as plain Python strings / None (what Arrow maps cleanly)."""
    out = {}
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(values) or \
                pd.api.types.is_string_dtype(values):
            values = values.astype("object").where(values.notna(), None).map(
                lambda v: v if v is None or isinstance(v, (bool, np.bool_)) else str(v))
        elif pd.api.types.is_bool_dtype(values) or str(values.dtype) == "boolean":
            values = values.astype("object").where(values.notna(), None)
        out[column] = values
    return pd.DataFrame(out)


@contextmanager
def _quiet_pyspark() -> Iterator[None]:
    """pyspark 4.x warns on every pandas conversion that it is not yet tested with pandas 3; our
    engine tests compare its results with the pandas path instead, so the note is noise in reports."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        yield


def spark_session(master: str | None = None, remote: str | None = None, conf: dict[str, str] | None = None) -> Any:
    """A SparkSession with UTC, timestamps without time zone, and no console progress bars.

    ``remote`` (Spark Connect URL) wins over ``master``; both default to the environment
    (``FUNNELKIT_SPARK_REMOTE``, ``FUNNELKIT_SPARK_MASTER``), then ``local[*]``. ``conf`` adds
    Spark settings (``spark.sql.shuffle.partitions`` is 4 locally: small shuffles stay cheap).
    """
    from pyspark.sql import SparkSession

    remote = remote or os.environ.get("FUNNELKIT_SPARK_REMOTE")
    builder = SparkSession.builder.appName("funnelkit")
    if remote:
        builder = builder.remote(remote)
    else:
        builder = builder.master(master or os.environ.get("FUNNELKIT_SPARK_MASTER") or "local[*]")
        for key, value in {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                           "spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g"}.items():
            builder = builder.config(key, value)
    for key, value in {"spark.sql.session.timeZone": "UTC", "spark.sql.timestampType": "TIMESTAMP_NTZ",
                       "spark.sql.execution.arrow.pyspark.enabled": "true", **(conf or {})}.items():
        builder = builder.config(key, value)
    with _quiet_pyspark():
        session = builder.getOrCreate()
    if not remote:
        session.sparkContext.setLogLevel("ERROR")
    return session


def make_engine(name: str) -> Engine:
    """A new engine by name: ``duckdb`` or ``spark``."""
    if name == "duckdb":
        return DuckDBEngine()
    if name == "spark":
        return SparkEngine()
    raise ValueError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}")


@dataclass(frozen=True)
class EngineDataset(Dataset):
    """A :class:`Dataset` whose event rows stay in ``engine``: ``events`` is empty here,
    ``analysed`` counts the valid rows per table, ``quarantine`` holds up to ``examples`` rows per
    reason and ``quarantine_counts`` (table, reason, rows) the full counts."""

    engine: Engine | None = None
    analysed: dict[str, int] = field(default_factory=dict)
    quarantine_counts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["table", "reason", "rows"]))


# --- the per-event step ----------------------------------------------------------------------

def attach(data: Dataset, config: FunnelConfig, engine: Engine | str) -> Engine:
    """``engine`` (a name makes a new one) holding ``data``'s valid tables as ``fk_deal_keys``
    (``_pos``: the deal's row in ``data.deals``) and ``fk_events`` (with each event's stage index
    in its deal's pipeline)."""
    engine = make_engine(engine) if isinstance(engine, str) else engine
    if isinstance(data, EngineDataset) and data.engine is engine:
        return engine
    stages = _stage_table(config, {s: s for p in config.pipelines for s in config.stage_keys(p)})
    engine.register("fk_stage_keys", stages)
    engine.register("fk_deals_in", data.deals[["deal_id", "pipeline", "team", "rep", "created_at", "status", "closed_at"]]
                    .reset_index(drop=True).assign(_pos=np.arange(len(data.deals))))
    engine.define("fk_deal_keys", sql.deal_keys_sql("_pos", "fk_deals_in"), materialise=True)
    engine.register("fk_events_in", data.events)
    engine.define("fk_events", """
select e.deal_id, d._pos, m.stage, m.stage_index, m.final_index, e.entered_at, e.date_known, d.lost_at
from fk_events_in e join fk_deal_keys d on d.deal_id = e.deal_id
join fk_stage_keys m on m.raw = e.stage and m.pipeline = d.pipeline
""", materialise=True)
    return engine


def _stage_table(config: FunnelConfig, spellings: dict[str, str]) -> pd.DataFrame:
    """Rows (raw spelling, pipeline, stage key, index, final index) for every spelling that names
    a stage of a pipeline, by the config's own lookup (key or label, any case or spacing)."""
    rows = []
    for pipeline in config.pipelines:
        keys = config.stage_keys(pipeline)
        lookup = config.stage_lookup(pipeline)
        for raw, normalised in spellings.items():
            key = lookup.get(normalised)
            if key is not None:
                rows.append((raw, pipeline, key, keys.index(key), len(keys) - 1))
    return pd.DataFrame(rows, columns=["raw", "pipeline", "stage", "stage_index", "final_index"]).astype(
        {"raw": object, "pipeline": object, "stage": object, "stage_index": "int64", "final_index": "int64"})


def _engine_for(data: Dataset, config: FunnelConfig, engine: Engine | str | None) -> Engine:
    held = getattr(data, "engine", None)
    if held is not None:  # the events live in that engine only
        if engine is None or engine is held or engine == held.name:
            return held
        raise ValueError(f"this dataset's events are in {held.name}; they cannot be read by {engine!r}")
    if engine is None:
        raise ValueError("name an engine: duckdb, spark or an Engine")
    return attach(data, config, engine)


def _subset(data: Dataset, pick: Callable[[pd.DataFrame], pd.DataFrame]) -> tuple[pd.DataFrame, np.ndarray]:
    """``pick(data.deals)`` (a row filter) renumbered from 0, and for each row of ``data.deals``
    (an engine's ``_pos``) its row in that subset, −1 when left out."""
    everything = data.deals.reset_index(drop=True)
    picked = pick(everything)
    where = np.full(len(everything) + 1, -1, dtype=np.int64)  # the extra slot: no position
    where[picked.index.to_numpy()] = np.arange(len(picked))
    return picked.reset_index(drop=True), where


def _rows(got: pd.DataFrame | np.ndarray, where: np.ndarray) -> np.ndarray:
    """Rows in the subset of :func:`_subset` of the engine's ``_pos`` column (or array)."""
    pos = got["_pos"].to_numpy(dtype=np.int64, na_value=-1) if isinstance(got, pd.DataFrame) else got
    return where[np.where((pos >= 0) & (pos < len(where) - 1), pos, len(where) - 1)]


def reach_table(data: Dataset, config: FunnelConfig, as_of: pd.Timestamp | None = None, strict: bool = False,
                pipeline: str | None = None, team: str | None = None, rep: str | None = None,
                engine: Engine | str | None = None) -> pd.DataFrame:
    """:func:`funnelkit.events.aggregate.reach_table` computed in ``engine`` (by default the dataset's)
    from :func:`funnelkit.events.sql.reach_sql`, which returns the reach columns in their final
    shape and row order; the deal columns come from ``data.deals`` and ``furthest_stage`` is named
    from its index."""
    from funnelkit.events.aggregate import DEAL_COLUMNS, deals_as_of, filter_scope, furthest_columns, stage_list

    as_of = as_of if as_of is not None else data.as_of
    engine = _engine_for(data, config, engine)
    deals = filter_scope(deals_as_of(data.deals.reset_index(drop=True), as_of), team, rep, pipeline)
    stages = stage_list(config, deals, pipeline)
    got = engine.query(sql.reach_sql(len(stages), as_of, strict, sql.scope_filter("d", team, rep, pipeline)))
    if not np.array_equal(got["_pos"].to_numpy(dtype=np.int64), deals.index.to_numpy()):
        raise RuntimeError(f"{engine.name} returned the reach of other deals than those held in Python: "
                           "the engine's deal positions (fk_deal_keys._pos) do not match data.deals")
    out = deals[[c for c in DEAL_COLUMNS if c in deals.columns]].reset_index(drop=True)
    for i, stage in enumerate(stages):
        # the fetched column itself (a frame's column set from an array is a copy: the reach twice
        # over, 0.6 GB more at 10M deals); same index, 0..n−1
        reached = got.pop(f"reached_{i}").set_axis(out.index)
        out[f"reached_{stage}"] = reached if reached.dtype == "datetime64[ns]" else _nanosecond_column(reached)
    out["furthest_index"], out["furthest_stage"] = furthest_columns(got["furthest_index"].to_numpy(dtype=np.int64),
                                                                     stages)
    out["skipped_out"] = got["skipped_out"].to_numpy(dtype=bool)
    return out


def _nanosecond_column(values: pd.Series) -> np.ndarray:
    """An engine's timestamp column as ``datetime64[ns]`` (no copy when it already is)."""
    return values.to_numpy(dtype="datetime64[ns]")


def stage_stays(data: Dataset, config: FunnelConfig, as_of: pd.Timestamp | None = None,
                engine: Engine | str | None = None) -> pd.DataFrame:
    """:func:`funnelkit.events.aggregate.stage_stays` computed in ``engine`` from
    :func:`funnelkit.events.sql.stays_sql` (ordered there: deal, entry, stage, the pandas path's
    order); the stage names and deal columns are filled in here from ``data.deals``, compact
    (see :func:`funnelkit.events.aggregate.stays_frame`)."""
    from funnelkit.events.aggregate import deals_as_of, stays_frame

    as_of = as_of if as_of is not None else data.as_of
    engine = _engine_for(data, config, engine)
    deals, where = _subset(data, lambda d: deals_as_of(d, as_of))
    got = engine.query(sql.stays_sql(as_of))
    columns = {"_pos": got["_pos"].to_numpy(), "stage_index": got["stage_index"].to_numpy(dtype=np.int8),
               "entered_at": _nanosecond_column(got["entered_at"]), "exited_at": _nanosecond_column(got["exited_at"]),
               "outcome": got["outcome"].to_numpy(dtype=np.int8)}
    del got
    if len(deals) < len(where) - 1:  # some deals left out (created after as_of): their stays too
        deal_pos = _rows(columns["_pos"], where)
        held = deal_pos >= 0
        columns = {k: v[held] for k, v in columns.items()} | {"_pos": deal_pos[held]}
    return stays_frame(deals, config, columns["_pos"], columns["stage_index"], columns["entered_at"],
                       columns["exited_at"], columns["outcome"], as_of, compact=True)


def open_deals(data: Dataset, config: FunnelConfig, as_of: pd.Timestamp | None = None,
               engine: Engine | str | None = None) -> pd.DataFrame:
    """:func:`funnelkit.events.aggregate.open_deals` with the current stage found in ``engine``."""
    from funnelkit.events.aggregate import deals_as_of, stage_name_codes

    as_of = as_of if as_of is not None else data.as_of
    engine = _engine_for(data, config, engine)
    deals, where = _subset(data, lambda d: (lambda seen: seen[seen["status"] == "open"])(deals_as_of(d, as_of)))
    current = engine.query(sql.current_stage_sql(as_of))
    at = _rows(current, where)
    held = at >= 0
    index = np.full(len(deals), -1, dtype=np.int64)
    index[at[held]] = current["stage_index"].to_numpy(dtype=np.int64)[held]
    # names as shared Python strings (one object per stage key, not per deal), as the pandas path's column
    codes, names = stage_name_codes(deals["pipeline"], index, config)
    stage = np.array(names + [None], dtype=object)[np.where(index >= 0, codes, len(names))]
    return deals.assign(stage=pd.Series(stage, dtype="object"))


# --- row checks ------------------------------------------------------------------------------

def check_rows(engine: Engine, config: FunnelConfig, as_of: pd.Timestamp | None = None,
               deals_file: str = "deals", events_file: str = "stage_events", examples: int = EXAMPLES,
               source: str = "", parsing: Parsing | None = None) -> EngineDataset:
    """Validate ``raw_deals`` and ``raw_events`` (each with a 1-based ``_row``) inside ``engine``.

    Every rule of :func:`funnelkit.inputs.data.validate` that looks at one row or one deal runs as SQL
    (:mod:`funnelkit.events.sql`), with the same reasons and the same first-reason order: missing values,
    dates out of pandas' range (1677–2262) or that do not parse, unknown status / pipeline /
    stage, amounts and probabilities that are not numbers, not finite or out of range, exact
    duplicate rows (the first kept) and deal ids repeated with other fields (every row), closing
    before creation, dates after ``as_of``, events for unknown or quarantined deals, before
    creation or after closing, and the deal–event checks (no valid event, won
    without the final stage and the reverse). ``parsing`` (the preset's) says how text dates are
    written: day-first or month-first is decided per column (by the preset, else by the column's
    unambiguous values, as the pandas path does), ``no_date`` placeholders are no date. The valid
    tables stay in the engine as ``fk_deal_keys`` / ``fk_events`` (and ``fk_deals`` where the
    engine keeps what it computed: not DuckDB, which frees it once fetched); the valid deals
    (in deal_id order, the row of each being its ``fk_deal_keys._pos``), the counts by
    reason and up to ``examples`` rows per reason come back. Rows in = analysed + quarantined for
    both tables.
    """
    parsing = parsing or Parsing(timezone=config.timezone)
    deal_kinds, event_kinds = engine.kinds("raw_deals"), engine.kinds("raw_events")
    missing = {"deals": [c for c in DEAL_REQUIRED if c not in deal_kinds],
               "stage_events": [c for c in ("deal_id", "stage", "entered_at") if c not in event_kinds]}
    for table, file in (("deals", deals_file), ("stage_events", events_file)):
        if missing[table]:
            found = deal_kinds if table == "deals" else event_kinds
            raise DataError(f"{file}: missing column(s) {', '.join(missing[table])}; "
                            f"found {', '.join(c for c in found if c != '_row') or 'none'}")
    counts = engine.query("select (select count(*) from raw_deals) as d, (select count(*) from raw_events) as e")
    rows_in = {"deals": int(counts["d"].iloc[0]), "stage_events": int(counts["e"].iloc[0])}
    for table, file in (("deals", deals_file), ("stage_events", events_file)):
        if rows_in[table] == 0:
            raise DataError(f"{file}: has a header but no data rows")
    readings = _readings(engine, {"raw_deals": (deal_kinds, deals_file, sql.DEAL_DATES),
                                  "raw_events": (event_kinds, events_file, ["entered_at"])}, parsing)
    notes = []
    if "team" not in deal_kinds:
        notes.append(data_note("no_team", file=deals_file, team=repr(NO_TEAM)))
    engine.define("fk_parsed_deals", sql.parsed_deals_sql(deal_kinds, config.default_pipeline, _TEXT_COLUMNS,
                                                          readings, NO_TEAM))
    engine.define("fk_parsed_events", sql.parsed_events_sql(event_kinds, readings["entered_at"]))
    if as_of is None:
        as_of = _inferred_as_of(engine, deals_file, events_file)

    spellings = engine.query("select distinct stage_raw from fk_parsed_events where stage_raw is not null")
    engine.register("fk_stage_names", _stage_table(config, {s: normalise_name(s) for s in spellings["stage_raw"]}))
    # status spellings as the pandas path matches them: ignoring case, whitespace, "-" and "_"
    statuses = engine.query("select distinct status_text from fk_parsed_deals where status_text is not null")
    engine.register("fk_status_names", pd.DataFrame({"raw": statuses["status_text"].astype(str).tolist(),
                                                     "status": [normalise_name(v) for v in statuses["status_text"]]},
                                                    dtype=object))
    engine.define("fk_checked_deals", sql.deal_checks_sql(list(config.pipelines), as_of, _TEXT_COLUMNS,
                                                            currency=config.currency, raw_columns=list(deal_kinds)),
                  materialise=True)
    engine.define("fk_checked_events", sql.event_checks_sql(as_of, list(event_kinds)), materialise=True)
    engine.define("fk_reached", sql.reached_sql(), materialise=True)
    engine.define("fk_final_deals", sql.deal_events_sql())  # a view: one copy of the deals less
    canonical = DEAL_REQUIRED + [c for c in DEAL_OPTIONAL if c not in DEAL_REQUIRED]
    columns = [c for c in deal_kinds if c in canonical] + [c for c in canonical if c not in deal_kinds]
    engine.define("fk_deals", sql.clean_deals_sql(columns), materialise=True)
    engine.define("fk_deal_keys", sql.deal_keys_sql(), materialise=True)
    engine.define("fk_events", sql.clean_events_sql(), materialise=True)

    # in deal_id order, so fk_deal_keys._pos is the row in ``deals``
    deals, category_notes = _typed_deals(engine.query(f"select {', '.join(columns)} from fk_deals order by deal_id",
                                                      categorical=CATEGORICAL_DEAL_COLUMNS), config)
    n_events = int(engine.query("select count(*) as n from fk_events")["n"].iloc[0])
    found = engine.query(sql.quarantine_sql(deals_file, events_file, examples))
    # what the checks kept (every parsed column of every row) and the wide valid deals, now held in
    # Python, are not read again: free them (the per-event step reads fk_deal_keys and fk_events)
    engine.drop("fk_final_deals", "fk_reached", "fk_checked_events", "fk_checked_deals", "fk_deals")
    quarantine = pd.DataFrame({
        "table": found["tab"].astype(object), "file": found["file"].astype(object),
        "row": pd.array(found["row_number"], dtype="Int64"), "deal_id": found["deal_id"].astype(object),
        "column": found["col"].astype(object), "value": found["value"].astype(object),
        "reason": found["reason"].astype(object),
    }).sort_values(["table", "row"], kind="stable").reset_index(drop=True) if len(found) else empty_quarantine()
    counts_by_reason = (found.groupby(["tab", "reason"], sort=False)["n"].first().reset_index()
                        .rename(columns={"tab": "table", "n": "rows"}) if len(found)
                        else pd.DataFrame(columns=["table", "reason", "rows"]))
    events = pd.DataFrame({"deal_id": pd.Series(dtype="string"), "stage": pd.Series(dtype="string"),
                           "entered_at": pd.Series(dtype="datetime64[ns]"), "date_known": pd.Series(dtype=bool)})
    return EngineDataset(
        deals=deals, events=events, quarantine=quarantine, rows_in=rows_in, as_of=as_of,
        source=source or f"{deals_file}, {events_file}", notes=notes + category_notes,
        engine=engine, analysed={"deals": len(deals), "stage_events": n_events},
        quarantine_counts=counts_by_reason.astype({"rows": "int64"}),
    )


def _readings(engine: Engine, tables: dict[str, tuple[dict[str, str], str, list[str]]],
              parsing: Parsing) -> dict[str, sql.DateReading]:
    """How each date column is read (``tables``: raw table → its kinds, file name and date
    columns): the preset's format or day order, else, for text dates written ``dd-mm-yyyy`` or
    ``mm-dd-yyyy``, the order the column's unambiguous values show, decided once per column and
    never per value, with the errors of :func:`funnelkit.inputs.data.day_month_order`."""
    readings, undecided = {}, []
    for table, (kinds, _, columns) in tables.items():
        for column in columns:
            fmt = parsing.format_for(column)
            if fmt and engine.dialect != "duckdb":  # try_strptime has no SQLGlot translation
                raise DataError(f"{tables[table][1]}, column {column}: a date format ({fmt!r}) is read by DuckDB "
                                f"only, not by {engine.name}; write the dates in ISO 8601 or load through DuckDB")
            readings[column] = sql.DateReading(dayfirst=parsing.dayfirst, fmt=fmt, no_date=tuple(parsing.no_date))
            if not fmt and parsing.dayfirst is None and kinds.get(column) == "text":
                undecided.append((table, column))
    if not undecided:
        return readings
    found = engine.query(sql.day_order_sql(undecided))
    key = "set `dayfirst: true` or `dayfirst: false` (or `date_formats`) in the preset"
    for table, column in undecided:
        rows = found[(found["tab"] == table) & (found["col"] == column)]

        def first(flag: str) -> str | None:
            hit = rows[rows[flag].astype(bool)]
            return None if hit.empty else f"row {int(hit['_row'].iloc[0])} {shown(hit['v'].iloc[0])!r}"

        day_first, month_first, differ = first("first_day_first"), first("first_month_first"), first("first_differ")
        where = f"{tables[table][1]}, column {column}"
        if day_first and month_first:
            raise DataError(f"{where}: the dates contradict each other: {day_first} put the day first, "
                            f"{month_first} the month; {key}")
        if not day_first and not month_first and differ:
            raise DataError(f"{where}: cannot tell day from month: every date has both numbers at most 12 "
                            f"({differ}); {key}")
        readings[column] = sql.DateReading(dayfirst=month_first is None, no_date=tuple(parsing.no_date))
    return readings


def _inferred_as_of(engine: Engine, deals_file: str, events_file: str) -> pd.Timestamp:
    """The day after the latest date seen; an error if it is more than a year past today (as
    :func:`funnelkit.inputs.data._inferred_as_of`)."""
    latest = engine.query(sql.date_range_sql())
    if latest.empty or pd.isna(latest["latest"].iloc[0]):
        return pd.Timestamp.now().normalize()
    when = pd.Timestamp(latest["latest"].iloc[0])
    if when > pd.Timestamp.now() + AS_OF_HORIZON:
        file = deals_file if latest["tab"].iloc[0] == "deals" else events_file
        raise DataError(f"{file}: row {int(latest['row_number'].iloc[0])}, column {latest['col'].iloc[0]}: "
                        f"{when:%Y-%m-%d} is more than a year past today, so it cannot set the as-of date; "
                        "pass --as-of (or `as_of:` in the preset or report matrix)")
    return when.normalize() + pd.Timedelta(days=1)


# Text of a deal with few distinct values, fetched as categoricals: the descriptive text read by
# scoring and screening, and the columns a scope or a funnel groups on (a byte or two a deal, not
# a string: 0.7 GB less at 10M deals). The deal_id stays text.
CATEGORICAL_DEAL_COLUMNS = ("customer",) + tuple(_TEXT_COLUMNS) + ("pipeline", "team", "rep", "status", "lost_reason")
# every status a deal can take, as categories: deals_as_of writes "open" into an all-closed table
STATUSES = ("lost", "open", "won")


def _typed_deals(deals: pd.DataFrame, config: FunnelConfig) -> tuple[pd.DataFrame, list[str]]:
    """Valid deals from the engine in the dtypes :func:`funnelkit.inputs.data.validate` gives, but
    with the :data:`CATEGORICAL_DEAL_COLUMNS` as categoricals of the same values (categories in
    text order; ``status`` always with all of :data:`STATUSES`), with categorical spellings mapped
    to canonical values (the same rule as the pandas path), and the notes that mapping makes."""
    raw = deals[[c for c in config.categories if c in deals]].copy()  # spellings before mapping
    for column in ["created_at", "closed_at", "expected_start", "last_follow_up_at"]:
        deals[column] = pd.to_datetime(deals[column]).astype("datetime64[ns]")
    for column in ["amount", "win_probability", "payment_days"]:
        deals[column] = deals[column].astype(float)
    deals["deal_id"] = deals["deal_id"].astype("string")
    deals["status"] = deals["status"].cat.set_categories(STATUSES)
    notes = _normalise_categories(deals, raw, config)
    for column in raw.columns:  # canonical text as Arrow strings: ~10 bytes a value, not ~60 for a Python str
        if deals[column].dtype == object:
            deals[column] = deals[column].astype("str")
    return deals, notes


# --- sources ---------------------------------------------------------------------------------

def is_engine_source(source: str | Path) -> bool:
    """Whether ``source`` names a table source for an engine (``duckdb:…`` or ``spark:…``)."""
    return isinstance(source, str) and source.startswith(SOURCE_PREFIXES)


def load_source(source: str, config: FunnelConfig, as_of: pd.Timestamp | None = None,
                engine: Engine | None = None, examples: int = EXAMPLES, parsing: Parsing | None = None) -> EngineDataset:
    """Open an engine source (see the module docstring) and run the row checks in its engine
    (``parsing``: how text dates are written, from the preset)."""
    kind, _, target = source.partition(":")
    target, _, query = target.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    allowed = {"duckdb": {"memory_limit"}, "spark": {"master", "remote"}}.get(kind, set())
    unknown = set(options) - allowed
    if unknown:
        raise DataError(f"{source}: unknown option(s) {', '.join(sorted(unknown))}; "
                        f"expected {', '.join(sorted(allowed)) or 'none'}")
    if kind == "duckdb":
        # SQLAlchemy's convention: duckdb:///relative/path, duckdb:////absolute/path
        path = Path(target[3:] if target.startswith("///") else target)
        engine = engine or DuckDBEngine(memory_limit=options.get("memory_limit"))
        if path.is_dir():
            names = {t: _parquet_part(path, t) for t in ("deals", "stage_events")}
            for table, name in (("deals", "raw_deals"), ("stage_events", "raw_events")):
                engine.define(name, sql.parquet_rows_sql(str(names[table])))
            files = {t: str(names[t]) for t in names}
        elif path.exists():
            engine.con.execute(f"attach {sql.string(str(path))} as fk_source (read_only)")
            tables = {r[0] for r in engine.con.execute(
                "select table_name from information_schema.tables where table_catalog = 'fk_source'").fetchall()}
            absent = [t for t in ("deals", "stage_events") if t not in tables]
            if absent:
                raise DataError(f"{path}: no table {', '.join(absent)}; found {', '.join(sorted(tables)) or 'none'}")
            for table, name in (("deals", "raw_deals"), ("stage_events", "raw_events")):
                engine.define(name, f"select *, row_number() over () as _row from fk_source.{table}")
            files = {t: f"{path}:{t}" for t in ("deals", "stage_events")}
        else:
            raise DataError(f"{path}: no such file or folder")
    elif kind == "spark":
        engine = engine or SparkEngine(master=options.get("master"), remote=options.get("remote"))
        files = {}
        for table, name in (("deals", "raw_deals"), ("stage_events", "raw_events")):
            if target.startswith("/") or target.startswith(".") or "://" in target:
                location = _parquet_part(Path(target), table) if "://" not in target else f"{target}/{table}.parquet"
                frame = engine.spark.read.parquet(str(location))
                files[table] = str(location)
            else:
                qualified = f"{target}.{table}" if target else table
                frame = engine.spark.table(qualified)
                files[table] = qualified
            _with_row_numbers(frame).createOrReplaceTempView(name)
    else:
        raise DataError(f"{source}: unknown source; expected duckdb:///… or spark:…")
    bound = pd.Timestamp(as_of) if as_of is not None else None
    return check_rows(engine, config, bound, files["deals"], files["stage_events"], examples, source=source,
                      parsing=parsing)


def _parquet_part(folder: Path, table: str) -> Path:
    for candidate in (folder / f"{table}.parquet", folder / table):
        if candidate.exists():
            return candidate / "*.parquet" if candidate.is_dir() else candidate
    raise DataError(f"{folder}: no {table} table; expected {table}.parquet (a file or a folder of parts)")


def _with_row_numbers(frame: Any) -> Any:
    """The Spark frame with ``_row``: its 1-based position in read order, computed in the JVM
    (no Python RDD, so no row goes through a Python worker, and it works on Spark Connect):
    ``monotonically_increasing_id`` holds the partition in its upper bits and the position
    within it in the lower 33, and each partition is offset by the rows of those before it."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    ided = frame.withColumn("_fk_id", F.monotonically_increasing_id())
    ided = ided.withColumn("_fk_part", F.shiftright("_fk_id", 33)) \
        .withColumn("_fk_pos", F.col("_fk_id").bitwiseAND((1 << 33) - 1))
    before = Window.orderBy("_fk_part").rowsBetween(Window.unboundedPreceding, -1)
    offsets = ided.groupBy("_fk_part").agg(F.count(F.lit(1)).alias("_fk_n")) \
        .withColumn("_fk_offset", F.coalesce(F.sum("_fk_n").over(before), F.lit(0)))
    return ided.join(F.broadcast(offsets.select("_fk_part", "_fk_offset")), "_fk_part") \
        .withColumn("_row", (F.col("_fk_offset") + F.col("_fk_pos") + 1).cast("long")) \
        .drop("_fk_id", "_fk_part", "_fk_pos", "_fk_offset")


def register_tables(engine: Engine, deals: pd.DataFrame, events: pd.DataFrame) -> None:
    """Raw pandas tables (as a loader read them) into ``engine`` as ``raw_deals`` /
    ``raw_events``, numbered by row (1-based) for the quarantine examples."""
    engine.register("raw_deals", deals.reset_index(drop=True).assign(_row=np.arange(1, len(deals) + 1)))
    engine.register("raw_events", events.reset_index(drop=True).assign(_row=np.arange(1, len(events) + 1)))
