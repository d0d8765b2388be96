"""Loaders and validation: each quarantine reason, the row accounting, every file format."""
import duckdb
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.runner.cli import main as cli

from conftest import make_tables

GOOD = [("G", "leads", "2024-03-01"), ("G", "prospects", "2024-03-05")]


def quarantined(deals, events, config, as_of="2024-07-01"):
    d, e = make_tables([{"deal_id": "G", "status": "open"}] + deals, GOOD + events)
    data = fk.validate(d, e, config, as_of=pd.Timestamp(as_of))
    for table, n_in in data.rows_in.items():
        analysed = len(data.deals) if table == "deals" else len(data.events)
        assert n_in == analysed + (data.quarantine["table"] == table).sum()
    assert "G" in set(data.deals["deal_id"])  # the good deal always survives
    return data


@pytest.mark.parametrize(
    "deal, events, table, column, reason",
    [
        ({"deal_id": "X", "status": "open"}, [("X", "stage 9", "2024-03-01")], "stage_events", "stage",
         "unknown_stage"),
        ({"deal_id": "X", "status": "open", "created_at": "2024-03-01"}, [("X", "leads", "yesterday-ish")],
         "stage_events", "entered_at", "not_a_date:entered_at"),
        ({"deal_id": "X", "status": "open", "created_at": "31/31/2024"}, [("X", "leads", "2024-03-01")],
         "deals", "created_at", "not_a_date:created_at"),
        ({"deal_id": "X", "status": "open", "amount": -5}, [("X", "leads", "2024-03-01")], "deals", "amount",
         "negative:amount"),
        ({"deal_id": "X", "status": "open", "amount": "lots"}, [("X", "leads", "2024-03-01")], "deals", "amount",
         "not_a_number:amount"),
        ({"deal_id": "X", "status": "maybe"}, [("X", "leads", "2024-03-01")], "deals", "status",
         "unknown_status"),
        ({"deal_id": "X", "status": "lost"}, [("X", "leads", "2024-03-01")], "deals", "closed_at",
         "closed_no_date"),
        ({"deal_id": "X", "status": "lost", "closed_at": "2024-03-02"}, [("X", "leads", "2024-03-01"),
         ("X", "prospects", "2024-03-04")], "stage_events", "entered_at", "after_closed"),
        ({"deal_id": "X", "status": "open", "created_at": "2024-03-01"}, [("X", "leads", "2024-03-01"),
         ("X", "prospects", "2024-08-01")], "stage_events", "entered_at", "after_as_of:entered_at"),
        ({"deal_id": "X", "status": "open", "created_at": "2024-03-05"}, [("X", "leads", "2024-03-01")],
         "stage_events", "entered_at", "before_created"),
        ({"deal_id": "X", "status": "won", "closed_at": "2024-03-09"}, [("X", "leads", "2024-03-01"),
         ("X", "negotiation", "2024-03-08")], "deals", "status", "won_not_final"),
        ({"deal_id": "X", "status": "open"}, [("X", "leads", "2024-03-01"), ("X", "customers", "2024-03-08")],
         "deals", "status", "final_not_won"),
        ({"deal_id": "X", "status": "open", "pipeline": "retail"}, [("X", "leads", "2024-03-01")], "deals",
         "pipeline", "unknown_pipeline"),
        ({"deal_id": "X", "status": "open", "team": " "}, [("X", "leads", "2024-03-01")], "deals", "team",
         "missing:team"),
    ],
)
def test_each_quarantine_reason(config, deal, events, table, column, reason):
    data = quarantined([deal], events, config)
    hits = data.quarantine[(data.quarantine["table"] == table) & data.quarantine["reason"].str.startswith(reason)]
    assert len(hits) >= 1, data.quarantine
    assert hits["column"].iloc[0] == column
    assert hits["row"].iloc[0] >= 1


def test_duplicate_deal_ids_quarantine_every_copy(config):
    data = quarantined([{"deal_id": "X", "status": "open"}, {"deal_id": "X", "status": "lost"}],
                       [("X", "leads", "2024-03-01")], config)
    deals = data.quarantine[data.quarantine["table"] == "deals"]
    assert deals["reason"].tolist() == ["duplicated:deal_id"] * 2
    assert deals["row"].tolist() == [2, 3]
    assert data.quarantine[data.quarantine["table"] == "stage_events"]["reason"].tolist() == ["quarantined_deal"]


def test_event_for_unknown_deal(config):
    data = quarantined([], [("NOPE", "leads", "2024-03-01")], config)
    q = data.quarantine
    assert q["reason"].tolist() == ["unknown_deal"]
    assert q["row"].tolist() == [3]  # third data row of stage_events
    assert q["file"].tolist() == ["stage_events"]


def test_quarantined_deal_takes_its_events_along(config):
    data = quarantined([{"deal_id": "X", "status": "won", "closed_at": "2024-03-09"}],
                       [("X", "leads", "2024-03-01"), ("X", "prospects", "2024-03-02")], config)
    reasons = data.quarantine.groupby("table")["reason"].apply(list).to_dict()
    assert reasons["deals"] == ["won_not_final"]
    assert reasons["stage_events"] == ["quarantined_deal"] * 2


def test_quality_summary_accounts_for_every_row(config):
    data = quarantined([{"deal_id": "X", "status": "open", "amount": -1}], [("X", "leads", "2024-03-01")], config)
    summary = fk.quality_summary(data).set_index(["table", "reason"])["rows"]
    for table in ("deals", "stage_events"):
        assert summary[(table, "rows in")] == summary[(table, "analysed")] + summary[(table, "quarantined")]
    assert summary[("deals", "  negative:amount")] == 1


def test_missing_column_and_empty_table_are_errors(config):
    d, e = make_tables([{"deal_id": "G", "status": "open"}], GOOD)
    with pytest.raises(fk.DataError, match=r"deals: missing column\(s\) status"):
        fk.validate(d.drop(columns="status"), e, config)
    with pytest.raises(fk.DataError, match="stage_events: has a header but no data rows"):
        fk.validate(d, e.iloc[:0], config)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(fk.DataError, match="no such file or folder"):
        fk.load_data(tmp_path / "absent")
    (tmp_path / "deals.csv").write_text("deal_id\n")
    with pytest.raises(fk.DataError, match="no stage_events file"):
        fk.load_data(tmp_path)


def test_empty_csv_is_named(tmp_path):
    (tmp_path / "deals.csv").write_text("")
    (tmp_path / "stage_events.csv").write_text("deal_id,stage,entered_at\n")
    with pytest.raises(fk.DataError, match=r"deals\.csv: the file is empty"):
        fk.load_data(tmp_path)


def test_sample_cli_output_loads_back_unchanged(tmp_path, config):
    assert cli(["sample", "--out", str(tmp_path), "--deals", "400", "--seed", "3"]) == 0
    loaded = fk.load_data(tmp_path, as_of="2024-06-30")
    direct = fk.sample_dataset(seed=3, n_deals=400)
    assert loaded.quarantine.empty
    assert loaded.rows_in == direct.rows_in
    columns = ["deal_id", "team", "rep", "status", "created_at", "closed_at", "amount", "pipeline"]
    pd.testing.assert_frame_equal(loaded.deals[columns].astype(str), direct.deals[columns].astype(str))
    pd.testing.assert_frame_equal(loaded.events.astype(str), direct.events.astype(str))
    for period in ["2024-Q1", "2023-Q3"]:
        pd.testing.assert_frame_equal(fk.cohort_funnel(loaded, config, period).table, fk.cohort_funnel(direct, config, period).table,
                                      check_like=True)


@pytest.mark.parametrize("fmt", ["xlsx", "parquet", "duckdb", "gb18030"])
def test_every_format_gives_the_same_funnel(tmp_path, config, fmt):
    direct = fk.sample_dataset(seed=1, n_deals=300)
    if fmt == "xlsx":
        direct.deals.to_excel(tmp_path / "deals.xlsx", index=False)
        direct.events.to_excel(tmp_path / "stage_events.xlsx", index=False)
        path = tmp_path
    elif fmt == "parquet":
        path = fk.write_dataset(direct, tmp_path, fmt="parquet")
    elif fmt == "gb18030":
        direct.deals.to_csv(tmp_path / "deals.csv", index=False, encoding="gb18030")
        direct.events.to_csv(tmp_path / "stage_events.csv", index=False, encoding="gb18030")
        path = tmp_path
    else:
        path = tmp_path / "crm.duckdb"
        with duckdb.connect(str(path)) as con:
            for name, df in (("deals", direct.deals), ("stage_events", direct.events)):
                con.register("src", df)
                con.execute(f"create table {name} as select * from src")
                con.unregister("src")
    loaded = fk.load_data(path, as_of="2024-06-30")
    assert loaded.quarantine.empty and len(loaded.deals) == 300
    assert set(loaded.deals["customer"]) == set(direct.deals["customer"])  # Chinese text survives
    pd.testing.assert_frame_equal(fk.cohort_funnel(loaded, config, "2024-Q1").table, fk.cohort_funnel(direct, config, "2024-Q1").table)


def test_column_mapping_and_stage_labels(tmp_path, config):
    deals = pd.DataFrame({"Opportunity": ["A"], "Account": ["客户A"], "Team": ["T"], "Owner": ["R"],
                          "Created": ["2024-03-01"], "Value": ["1000"], "Status": ["Open"]})
    events = pd.DataFrame({"Opportunity": ["A", "A"], "Stage": ["潜在客户", "  Prospects "],
                           "Entered": ["2024-03-01", "2024-03-02"]})
    deals.to_csv(tmp_path / "deals.csv", index=False)
    events.to_csv(tmp_path / "stage_events.csv", index=False)
    mapping = {"Opportunity": "deal_id", "Account": "customer", "Team": "team", "Owner": "rep",
               "Created": "created_at", "Value": "amount", "Status": "status", "Stage": "stage", "Entered": "entered_at"}
    data = fk.load_data(tmp_path, mapping=mapping, as_of="2024-06-30")
    assert data.quarantine.empty
    assert data.events["stage"].tolist() == ["leads", "prospects"]


def test_an_exact_duplicate_row_is_one_deal_its_copies_quarantined_as_copies_of_it(config):
    """An export repeating a line (fixes6): every copy was quarantined as a duplicated id, so the
    deal was not analysed. The first is analysed; each later copy, and a repeated event row, is
    quarantined naming the row it repeats; an id on rows that differ stays quarantined whole."""
    same = {"deal_id": "X", "status": "open"}
    data = quarantined([same, same, {"deal_id": "Y", "status": "open"}, {"deal_id": "Y", "status": "lost"}, same],
                       [("X", "leads", "2024-03-01"), ("X", "leads", "2024-03-01"), ("Y", "leads", "2024-03-01")],
                       config)
    q = data.quarantine
    assert "X" in data.deals["deal_id"].tolist() and "Y" not in data.deals["deal_id"].tolist()
    deals = q[q["table"] == "deals"]
    assert deals[["row", "reason", "value"]].values.tolist() == [
        [3, "exact_duplicate", "row 2"], [4, "duplicated:deal_id", "Y"], [5, "duplicated:deal_id", "Y"],
        [6, "exact_duplicate", "row 2"]]
    events = q[q["table"] == "stage_events"]
    assert events[["row", "reason", "value"]].values.tolist() == [[4, "exact_duplicate", "row 3"], [5, "quarantined_deal", "Y"]]
    assert data.rows_in["deals"] == len(data.deals) + len(deals)
    assert data.rows_in["stage_events"] == len(data.events) + len(events)
