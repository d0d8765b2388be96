"""The per-event step and the row checks in DuckDB equal the pandas reference (the sample, a
damaged sample, the row-level cases of the bad-input corpus), and DuckDB sources load."""
import duckdb
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.events import engine as en
from funnelkit.events import sql
from funnelkit.inputs.sample import SAMPLE_END, generate_sample

from engine_cases import (ENGINE_ERRORS, assert_same_checks, assert_same_stays, assert_same_step, by_deal, corpus_case,
                          corpus_parsing, damaged_sample, plain, quarantine_rows, report_pages, report_tables,
                          row_level_cases)


@pytest.fixture(scope="module")
def checked(config):
    """The raw sample checked inside DuckDB."""
    engine = en.DuckDBEngine()
    en.register_tables(engine, *generate_sample(n_deals=3000, seed=0))
    return en.check_rows(engine, config, SAMPLE_END)


@pytest.mark.parametrize("as_of", [None, pd.Timestamp("2024-01-15")])
def test_step_on_checked_sample_equals_pandas(checked, sample, config, as_of):
    assert_same_step(sample, checked, config, as_of)


def test_step_on_a_pandas_dataset_through_duckdb(sample, config):
    engine = en.attach(sample, config, "duckdb")
    for strict in (False, True):
        pd.testing.assert_frame_equal(fk.reach_table(sample, config, strict=strict, engine=engine),
                                      fk.reach_table(sample, config, strict=strict))
    assert_same_stays(fk.stage_stays(sample, config, engine="duckdb"), fk.stage_stays(sample, config))


def test_checks_on_the_clean_sample_quarantine_nothing(checked, sample):
    assert_same_checks(checked, sample)
    assert checked.quarantine.empty and checked.analysed == {"deals": 3000, "stage_events": len(sample.events)}


def test_checks_on_a_damaged_sample_equal_pandas(config):
    deals, events = damaged_sample()
    want = fk.validate(deals, events, config, as_of=SAMPLE_END)
    engine = en.DuckDBEngine()
    en.register_tables(engine, deals, events)
    got = en.check_rows(engine, config, SAMPLE_END)
    assert_same_checks(got, want)
    counts = fk.inputs.data.quarantine_counts(got)
    assert counts["rows"].max() > 20  # so the example cap was exercised
    reasons = set(counts["reason"])
    for reason in ("unknown_stage", "not_a_date:entered_at", "negative:amount",
                   "duplicated:deal_id", "exact_duplicate", "before_created",
                   "after_closed", "won_not_final",
                   "not_a_date:created_at"):
        assert reason in reasons
    # and the analysis on what is left is the pandas one
    assert_same_step(want, got, config)


@pytest.mark.parametrize("name", row_level_cases())
def test_corpus_case_in_duckdb(name, config):
    deals, events, as_of, want = corpus_case(name)
    parsing = corpus_parsing(name)
    engine = en.DuckDBEngine()
    en.register_tables(engine, deals, events)
    got = en.check_rows(engine, config, as_of, parsing=parsing)
    assert quarantine_rows(got.quarantine, got.as_of) == want
    pandas = fk.validate(deals, events, config, as_of=as_of, parsing=parsing)
    assert_same_checks(got, pandas)


def test_the_newer_rules_are_in_the_corpus_cases_duckdb_runs():
    """Non-finite amounts, out-of-range and placeholder dates, day-first dates (by the values and
    by the preset) are row-level cases the engines run, not left out."""
    assert {"infinite_amount", "placeholder_date", "placeholder_no_date", "dates_day_first",
            "dates_ambiguous_with_preset", "exact_duplicate_rows", "chinese_dates_and_units"} <= set(row_level_cases())


@pytest.mark.parametrize("name", sorted(ENGINE_ERRORS))
def test_corpus_errors_in_duckdb_as_in_pandas(name, config):
    deals, events, as_of, _ = corpus_case(name)
    with pytest.raises(fk.DataError, match=ENGINE_ERRORS[name]):
        fk.validate(deals, events, config, as_of=as_of)
    engine = en.DuckDBEngine()
    en.register_tables(engine, deals, events)
    with pytest.raises(fk.DataError, match=ENGINE_ERRORS[name]):
        en.check_rows(engine, config, as_of, parsing=corpus_parsing(name))


def test_duckdb_file_and_parquet_folder_sources(tmp_path, sample, config):
    folder = fk.write_dataset(sample, tmp_path / "pq", fmt="parquet")
    path = tmp_path / "crm.duckdb"
    with duckdb.connect(str(path)) as con:
        for table in ("deals", "stage_events"):
            con.execute(f"create table {table} as select * from read_parquet('{folder}/{table}.parquet')")
    for source in (f"duckdb:///{path}", f"duckdb:///{folder}"):
        data = fk.load_data(source, config=config, as_of="2024-06-30")
        assert isinstance(data, en.EngineDataset) and data.engine.name == "duckdb"
        assert data.rows_in == {"deals": 3000, "stage_events": len(sample.events)}
        pd.testing.assert_frame_equal(fk.cohort_funnel(data, config, "2024-Q1").table, fk.cohort_funnel(sample, config, "2024-Q1").table)
        assert fk.quality_summary(data).equals(fk.quality_summary(sample))
        with pytest.raises(ValueError, match="events are in duckdb"):
            fk.reach_table(data, config, engine="pandas")


def test_engine_source_errors_name_the_source(tmp_path, config):
    with pytest.raises(fk.DataError, match="no such file"):
        fk.load_data(f"duckdb:///{tmp_path / 'none.duckdb'}", config=config)
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(fk.DataError, match="no table deals, stage_events"):
        fk.load_data(f"duckdb:///{path}", config=config)
    with pytest.raises(fk.DataError, match="unknown source"):
        en.load_source("oracle:x", config)


def test_one_sql_text_transpiles_for_spark_and_warehouses():
    text = sql.reach_sql(5, SAMPLE_END, strict=True, scope=sql.scope_filter("d", "O'Brien's team", None, None))
    spark = sql.transpile(text, "spark")
    assert "FILTER(WHERE" in spark and "TIMESTAMP_NTZ" in spark and "O\\'Brien\\'s team" in spark
    assert "MIN(CASE WHEN" in sql.transpile(text, "snowflake").upper().replace("IFF(", "CASE WHEN ") or \
        "IFF(" in sql.transpile(text, "snowflake")
    assert sql.transpile(text, "duckdb") == text


def test_check_report_from_duckdb_equals_pandas(tmp_path, config):
    from funnelkit.runner.check import check_report

    deals, events = damaged_sample(1000)
    folder = tmp_path / "raw"
    folder.mkdir()
    deals.astype({"amount": str, "created_at": str}).to_parquet(folder / "deals.parquet", index=False)
    events.astype({"entered_at": str}).to_parquet(folder / "stage_events.parquet", index=False)
    pandas_lines = check_report(fk.load_data(folder, config=config), config)
    engine_lines = check_report(fk.load_data(f"duckdb:///{folder}", config=config), config)
    assert engine_lines[1:] == pandas_lines[1:]
    assert any("quarantined" in line and "0 quarantined" not in line for line in engine_lines)


def test_spark_that_cannot_start_fails_under_ci_and_skips_elsewhere(monkeypatch):
    from engine_cases import spark_or_fail

    def no_java(*args, **kwargs):
        raise RuntimeError("Java gateway process exited before sending its port number")

    monkeypatch.setattr(en, "SparkEngine", no_java)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Spark could not start under CI"):
        spark_or_fail()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        spark_or_fail()


def test_an_engine_source_takes_how_dates_are_written_from_the_preset(tmp_path, config):
    """`dayfirst:` in a canonical preset reaches the engine's SQL; a preset of another shape is refused."""
    from engine_cases import CORPUS

    deals, events, _, _ = corpus_case("dates_ambiguous_with_preset")
    deals.to_parquet(tmp_path / "deals.parquet", index=False)
    events.to_parquet(tmp_path / "stage_events.parquet", index=False)
    preset = CORPUS / "dates_ambiguous_with_preset" / "preset.yaml"
    data = fk.load_data(f"duckdb:///{tmp_path}", config=config, preset=preset)
    assert data.quarantine.empty
    created = data.deals.set_index("deal_id")["created_at"]
    assert created["D4"] == pd.Timestamp("2024-03-04") and created["D1"] == pd.Timestamp("2024-03-01 09:00")
    with pytest.raises(fk.DataError, match="cannot tell day from month"):  # no preset: ambiguous, as in pandas
        fk.load_data(f"duckdb:///{tmp_path}", config=config)
    with pytest.raises(fk.DataError, match="preset other than the canonical shape"):
        fk.load_data(f"duckdb:///{tmp_path}", config=config, preset="salesforce")


def test_results_are_keyed_by_deal_position_in_id_order(checked, sample, config):
    """The engine numbers the valid deals (``fk_deal_keys._pos``) in the order ``data.deals`` holds
    them, and the per-event results come back by that number: every position names its own deal."""
    keys = checked.engine.query("select deal_id, _pos from fk_deal_keys order by _pos")
    assert keys["_pos"].tolist() == list(range(len(checked.deals)))
    assert keys["deal_id"].tolist() == checked.deals["deal_id"].tolist()
    assert checked.deals["deal_id"].is_monotonic_increasing
    events = checked.engine.query("select e.deal_id, k.deal_id as keyed from fk_events e join fk_deal_keys k on k._pos = e._pos")
    assert len(events) == len(sample.events) and (events["deal_id"] == events["keyed"]).all()


def test_stays_come_back_ordered_with_outcome_codes(checked, sample, config):
    got = checked.engine.query(sql.stays_sql(SAMPLE_END))
    order = got[["_pos", "entered_at", "stage_index"]]
    assert order.equals(order.sort_values(["_pos", "entered_at", "stage_index"], kind="stable").reset_index(drop=True))
    want = fk.stage_stays(sample, config)
    named = pd.Series([sql.OUTCOMES[k] for k in got["outcome"]])
    assert named.value_counts().sort_index().equals(want["outcome"].astype(object).value_counts().sort_index())


def test_the_check_tables_are_dropped_once_counted(checked):
    tables = set(checked.engine.query("select table_name from information_schema.tables")["table_name"])
    assert {"fk_deal_keys", "fk_events"} <= tables
    assert not tables & {"fk_checked_deals", "fk_checked_events", "fk_reached", "fk_final_deals", "fk_deals"}


def test_engine_deals_hold_text_of_few_values_as_sorted_categoricals(checked, sample):
    """The engine fetches customer, industry, the scorecard's text fields and the columns a scope
    groups on (pipeline, team, rep, status, lost_reason) as categoricals (a byte or two a row at
    millions of deals) with categories in text order, holding the pandas path's values; status
    always has every status (deals_as_of reopens deals closed later, even in an all-closed table);
    the deal id stays text; the scores of its deals are the pandas scores."""
    want = by_deal(sample.deals)
    for column in en.CATEGORICAL_DEAL_COLUMNS:
        values = checked.deals[column]
        assert isinstance(values.dtype, pd.CategoricalDtype), column
        assert list(values.cat.categories) == sorted(values.cat.categories), column
        assert plain(values).tolist() == plain(want[column]).tolist(), column
    assert list(checked.deals["status"].cat.categories) == ["lost", "open", "won"]
    assert checked.deals["deal_id"].dtype == want["deal_id"].dtype
    card = fk.load_scorecard()
    pd.testing.assert_frame_equal(plain(fk.score_deals(checked.deals, card).table),
                                  plain(fk.score_deals(want, card).table))


def test_stays_of_an_engine_are_compact(checked, config):
    stays = fk.stage_stays(checked, config)
    for column in ("deal_id", "stage", "outcome"):
        assert isinstance(stays[column].dtype, pd.CategoricalDtype), column
    assert list(stays["stage"].cat.categories) == sorted(stays["stage"].cat.categories)
    assert stays["stage_index"].dtype == "int8"
    # the deal_id codes are the rows of the deals: no text copied per stay
    assert (checked.deals["deal_id"].to_numpy()[stays["deal_id"].cat.codes.to_numpy()] ==
            stays["deal_id"].astype(object).to_numpy()).all()


def test_compact_stays_hold_no_hash_table_of_every_deal_id(checked, config):
    """engines5: the deal-id categorical is made without pandas' uniqueness check, whose hash table
    of every id stayed cached on the categories as long as the stays lived (1.4 GB at 10M deals);
    its values are still the deals' ids, and looking one up still works."""
    stays = fk.stage_stays(checked, config)
    ids = stays["deal_id"].cat.categories
    assert "_engine" not in ids._cache and "is_unique" not in ids._cache
    assert ids.equals(pd.Index(checked.deals["deal_id"]))
    first = checked.deals["deal_id"].iloc[0]
    assert (stays["deal_id"] == first).sum() == (stays["deal_id"].astype(object) == first).sum() > 0


def test_fetched_results_live_in_arrow_memory_not_in_duckdb_batches():
    """engines5: what the engine returns is copied out of the batches DuckDB exports (a batch is
    freed only when all its columns are, so a column kept zero-copy held the whole batch): the
    fetched text and integers are in Arrow's memory pool, and the values are unchanged."""
    import pyarrow as pa

    engine = en.DuckDBEngine()
    rows = 200_000
    before = pa.total_allocated_bytes()
    frame = engine.query(f"select 'D' || i::varchar as deal_id from range({rows}) t(i)")
    # the ids' characters and offsets, copied (kept zero-copy they were DuckDB's, and held its batch)
    assert pa.total_allocated_bytes() - before >= int(frame["deal_id"].str.len().sum()) + rows * 4
    assert frame["deal_id"].iloc[-1] == f"D{rows - 1}" and frame["deal_id"].is_unique
    text = engine.query(f"select 'D' || i::varchar as deal_id, (i % 3)::varchar as team from range({rows}) t(i)",
                        categorical=("team",))
    assert text["deal_id"].iloc[-1] == f"D{rows - 1}"
    assert list(text["team"].cat.categories) == ["0", "1", "2"] and text["team"].iloc[4] == "1"


def test_every_report_on_a_duckdb_source_shows_the_pandas_figures(tmp_path, sample):
    """Every notebook, for a team and a rep, on a DuckDB Parquet source: the same tables and
    headlines as on the pandas source of the same files (the engine's deals hold pipeline, team,
    rep, status and lost reason as categoricals, which every analysis must read as text)."""
    for name, frame in (("deals", sample.deals), ("stage_events", sample.events)):
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    rep = sample.deals.loc[sample.deals["team"] == "East", "rep"].iloc[0]
    entries = "".join(f"  - notebook: {notebook}\n    teams: [East]\n    periods: [2024-Q2]\n"
                      for notebook in ("conversion", "time_in_stage", "opportunities", "weight_sensitivity",
                                       "fitted_scorecard")) + \
        f"  - notebook: rep_performance\n    teams: [East]\n    reps: [{rep}]\n    periods: [2024-Q2]\n"
    pages = {name: report_pages(tmp_path / name, source, entries, "2024-Q2/East/*")
             for name, source in (("pandas", str(tmp_path)), ("duckdb", f"duckdb:///{tmp_path}"))}
    assert len(pages["duckdb"]) == 6 and pages["duckdb"].keys() == pages["pandas"].keys()
    for page, html in pages["duckdb"].items():
        assert report_tables(html), page
        assert report_tables(html) == report_tables(pages["pandas"][page]), page


def test_an_engine_reopens_deals_of_an_all_closed_table(tmp_path, sample):
    """Deals closed after an earlier as-of were open then, even when the table has no open deal
    (an engine's status categories always hold "open")."""
    closed = sample.deals[sample.deals["status"] != "open"]
    closed.to_parquet(tmp_path / "deals.parquet", index=False)
    sample.events[sample.events["deal_id"].isin(closed["deal_id"])].to_parquet(tmp_path / "stage_events.parquet",
                                                                               index=False)
    data = en.load_source(f"duckdb:///{tmp_path}", fk.load_config())
    assert set(data.deals["status"]) == {"won", "lost"}
    earlier = pd.Timestamp("2024-03-01")
    then = fk.events.aggregate.deals_as_of(data.deals, earlier)
    reopened = then["status"] == "open"
    assert reopened.sum() == ((closed["created_at"] < earlier) & (closed["closed_at"] >= earlier)).sum() > 0
    assert then.loc[reopened, "lost_reason"].isna().all()
