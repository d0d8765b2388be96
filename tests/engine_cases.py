"""Inputs shared by the engine tests (DuckDB and Spark): the sample with damage of every row-level
kind, and the row-level cases of the bad-input corpus read as raw tables."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import funnelkit as fk
from funnelkit.inputs import io
from funnelkit.inputs.presets import load_preset
from funnelkit.inputs.sample import generate_sample

CORPUS = Path(__file__).parent / "data" / "bad"
# Cases whose input an engine reads as it is: the corpus minus loader errors (missing files or
# columns, encodings) and what an engine does not read: Excel serial dates, a decimal comma.
NOT_ROW_LEVEL = {"currency_and_excel_dates"}
# What a preset may say for an engine: how dates are written (not the shape, mapping or numbers).
ENGINE_PRESET_KEYS = {"shape", "dayfirst", "date_format", "date_formats", "no_date"}
# Cases that must fail with this error in an engine as in pandas (the key phrase of the message).
ENGINE_ERRORS = {"dates_ambiguous": "cannot tell day from month", "dates_contradictory": "contradict each other",
                 "far_future_as_of": "2099-03-04 is more than a year past today"}


def _expect(name: str) -> dict:
    return yaml.safe_load((CORPUS / name / "expect.yaml").read_text(encoding="utf-8"))


def _engine_preset(name: str, expect: dict) -> bool:
    if "preset" not in expect:
        return True
    preset = yaml.safe_load((CORPUS / name / expect["preset"]).read_text(encoding="utf-8"))
    return preset.get("shape", "canonical") == "canonical" and set(preset) <= ENGINE_PRESET_KEYS


def row_level_cases() -> list[str]:
    cases = []
    for folder in sorted(CORPUS.iterdir()):
        if not (folder / "expect.yaml").exists() or folder.name in NOT_ROW_LEVEL:
            continue
        expect = _expect(folder.name)
        if "error" not in expect and _engine_preset(folder.name, expect):
            cases.append(folder.name)
    return cases


def corpus_parsing(name: str) -> fk.inputs.data.Parsing:
    """The parsing a case's preset gives (canonical: none)."""
    expect = _expect(name)
    preset = load_preset(CORPUS / name / expect["preset"]) if "preset" in expect else load_preset(None)
    return preset.parsing(fk.load_config().timezone)


def corpus_case(name: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp | None, list[tuple]]:
    """Raw tables of a corpus case as the CSV loader reads them, its as-of bound, and the
    quarantine it must produce as sorted (table, row, column, reason)."""
    folder = CORPUS / name
    expect = _expect(name)
    deals = io.read_table(io.find_table(folder, "deals"))
    events = io.read_table(io.find_table(folder, "stage_events"))
    as_of = fk.as_of_bound(expect["as_of"], None) if "as_of" in expect else None
    want = sorted((q["table"], q["row"], q["column"], q["reason"]) for q in expect.get("quarantine", []))
    return deals, events, as_of, want


def quarantine_rows(quarantine: pd.DataFrame, as_of: pd.Timestamp | None = None) -> list[tuple]:
    """Sorted (table, row, column, reason), the reason in the command line's English as the
    corpus states it (the data holds reason keys)."""
    from funnelkit.inputs.data import reason_text

    pipelines = list(fk.load_config().pipelines)
    return sorted((r.table, int(r.row), r.column, reason_text(r.reason, as_of, pipelines)) for r in quarantine.itertuples())


def damaged_sample(n_deals: int = 3000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw sample with rows broken in every row-level way, some reasons more than 20 times
    (so the example cap shows): unknown stage, unparseable dates, negative amounts, a deal id
    repeated with other fields, exact copies of deal and event rows, events before creation or
    after closing, won deals without their final stage."""
    deals, events = generate_sample(n_deals=n_deals, seed=0)
    deals = deals.astype({c: object for c in ["amount", "created_at"]}).copy()
    events = events.astype({"entered_at": object}).copy()
    rng = np.random.default_rng(7)
    rows = rng.permutation(len(events))
    events.loc[rows[:30], "stage"] = "qualified lead"                       # not a stage
    events.loc[rows[30:55], "entered_at"] = "31/02/2024 25:61"              # not a date
    events = pd.concat([events, events.iloc[[10, 11, 500]]], ignore_index=True)  # exact copies of event rows
    deals.loc[5:29, "amount"] = -100.0                                      # negative
    deals.loc[40:44, "created_at"] = "yesterday"                            # not a date
    other = deals.iloc[[62, 63]].assign(amount=123.0)                     # same id, other fields:
    deals = pd.concat([deals, deals.iloc[[60, 61]], other], ignore_index=True)  # every row; exact copies: the copy
    first = events.groupby("deal_id").head(1).index[100:125]
    events.loc[first, "entered_at"] = pd.Timestamp("2020-01-01")            # before created_at
    closed = deals.index[deals["status"].isin(["won", "lost"])][200:222]
    for deal_id in deals.loc[closed, "deal_id"]:                            # after closed_at
        last = events.index[events["deal_id"] == deal_id][-1]
        events.loc[last, "entered_at"] = pd.Timestamp("2024-06-29 12:00")
    won = deals.loc[deals["status"] == "won", "deal_id"].iloc[300:305]
    events = events[~(events["deal_id"].isin(won) & (events["stage"] == "customers"))]  # won, no final stage
    return deals.reset_index(drop=True), events.reset_index(drop=True)


def assert_same_checks(got: fk.Dataset, want: fk.Dataset, examples: int = 20) -> None:
    """Same rows in, analysed rows, counts by reason, valid deals; examples = the first rows."""
    assert got.rows_in == want.rows_in
    assert fk.inputs.data.analysed_rows(got) == fk.inputs.data.analysed_rows(want)
    for table, n_in in got.rows_in.items():
        counts = fk.inputs.data.quarantine_counts(got)
        assert n_in == fk.inputs.data.analysed_rows(got)[table] + counts.loc[counts["table"] == table, "rows"].sum()
    key = ["table", "reason"]
    a = fk.inputs.data.quarantine_counts(got).sort_values(key).reset_index(drop=True)
    b = fk.inputs.data.quarantine_counts(want).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    expected_examples = (want.quarantine.sort_values(["table", "row"]).groupby(["table", "reason"]).head(examples))
    assert quarantine_rows(got.quarantine, got.as_of) == quarantine_rows(expected_examples, got.as_of)
    assert (got.quarantine.groupby(["table", "reason"]).size() <= examples).all()
    pd.testing.assert_frame_equal(plain(got.deals), plain(by_deal(want.deals)))


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as Python objects, every kind of missing as None (dtypes differ between engines)."""
    return frame.astype(object).where(frame.notna(), None)


def by_deal(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("deal_id", kind="stable").reset_index(drop=True)


def text_as_values(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text columns (an engine's categoricals, pandas' strings) as Python objects,
    missing as None, and its integer columns as int64: the same values compare equal whatever the
    engine's dtypes."""
    text = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype) or
            pd.api.types.is_string_dtype(frame[c])]
    numbers = [c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c]) and c not in text]
    out = frame.astype({c: object for c in text} | {c: "int64" for c in numbers})
    return out.assign(**{c: out[c].where(out[c].notna(), None) for c in text})


def assert_same_stays(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """The same stays, value for value, in the same order after sorting by deal, entry and stage
    (an engine's text columns are categoricals and its stage_index a small integer: compared as values)."""
    assert list(got.columns) == list(want.columns)
    order = ["deal_id", "entered_at", "stage_index"]
    pd.testing.assert_frame_equal(text_as_values(got).sort_values(order).reset_index(drop=True),
                                  text_as_values(want).sort_values(order).reset_index(drop=True))


def assert_same_step(data: fk.Dataset, engine_data: fk.Dataset, config, as_of=None) -> None:
    """reach (both rules, scoped and not), stays and open deals equal the pandas reference."""
    for strict in (False, True):
        for scope in ({}, {"team": "East"}, {"pipeline": "repurchase"}):
            want = fk.reach_table(data, config, as_of=as_of, strict=strict, **scope)
            got = fk.reach_table(engine_data, config, as_of=as_of, strict=strict, **scope)
            assert got.attrs == want.attrs
            assert got.dtypes.index.equals(want.dtypes.index)
            # the engine's deal text columns are categoricals (a byte or two a deal): compared as values
            pd.testing.assert_frame_equal(text_as_values(by_deal(got)), text_as_values(by_deal(want)))
    want = fk.stage_stays(data, config, as_of=as_of)
    got = fk.stage_stays(engine_data, config, as_of=as_of)
    order = ["deal_id", "entered_at", "stage_index"]
    assert_same_stays(got, want)
    pd.testing.assert_frame_equal(
        plain(by_deal(fk.open_deals(engine_data, config, as_of))), plain(by_deal(fk.open_deals(data, config, as_of))))


def spark_or_fail():
    """A local Spark engine; without Spark (no pyspark or Java) skip, but under CI=true fail."""
    import os

    try:
        from funnelkit.events.engine import SparkEngine

        # Test-sized data: one shuffle partition, no adaptive re-planning and no whole-stage code
        # generation (compiling generated Java took longer than running it on a few thousand rows).
        return SparkEngine(conf={"spark.sql.shuffle.partitions": "1", "spark.default.parallelism": "1",
                                 "spark.sql.adaptive.enabled": "false", "spark.sql.codegen.wholeStage": "false",
                                 "spark.ui.enabled": "false"})
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported the same way
        if os.environ.get("CI") == "true":
            pytest.fail(f"Spark could not start under CI: {exc!r}")
        pytest.skip(f"Spark could not start: {exc!r}")


def report_tables(page: str) -> list[str]:
    """The report's tables and headline (pandas' Styler gives each table a random id: dropped)."""
    page = re.sub(r"T_[0-9a-f]{5}", "T_", page)
    return re.findall(r"<table.*?</table>", page, flags=re.S) + re.findall(r'class="fk-headline".*?</div>', page, re.S)


def report_pages(folder: Path, source: str, entries: str, only: str) -> dict[str, str]:
    """``funnelkit report`` of the matrix ``entries`` (YAML lines) on ``source``, as of 2024-06-30 in
    English, for the reports ``only`` picks: each written page (its path under the output folder → HTML)."""
    from funnelkit.runner.cli import main as cli

    folder.mkdir(parents=True, exist_ok=True)
    matrix = folder / "reports.yaml"
    output = folder / "reports"
    matrix.write_text(f"data: {source}\nas_of: 2024-06-30\nlanguage: en\noutput: {output}\nentries:\n{entries}",
                      encoding="utf-8")
    assert cli(["report", "--matrix", str(matrix), "--jobs", "1", "--quiet", "--only", only]) == 0
    return {str(p.relative_to(output)): p.read_text(encoding="utf-8") for p in sorted(output.rglob("*.html"))
            if p.name != "index.html"}

