"""CRM export shapes load into the same funnel as their canonical equivalent; formats parse."""
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.inputs import crm_shapes
from funnelkit.runner.cli import main as cli
from funnelkit.inputs.data import parse_amounts, parse_datetimes


@pytest.fixture(scope="module")
def small():
    return fk.sample_dataset(n_deals=800, seed=4)


@pytest.mark.parametrize("shape", ["salesforce", "hubspot", "snapshot"])
def test_crm_shape_loads_into_the_canonical_funnel(tmp_path, config, small, shape):
    writers = {"salesforce": lambda: crm_shapes.write_salesforce(small, tmp_path),
               "hubspot": lambda: crm_shapes.write_hubspot(small, tmp_path),
               "snapshot": lambda: crm_shapes.write_snapshot(small, tmp_path, config)}
    writers[shape]()
    loaded = fk.load_data(tmp_path, config=config, preset=shape, as_of="2024-06-30")
    assert loaded.quarantine.empty, loaded.quarantine.head()
    assert len(loaded.deals) == len(small.deals)
    for period in ("2023-Q2", "2024-Q1", "2024-Q2"):
        got = fk.cohort_funnel(loaded, config, period)
        want = fk.cohort_funnel(small, config, period)
        if shape == "snapshot":  # a snapshot shows the furthest stage: regressions are invisible
            columns = ["reached", "lost_at"]
        else:
            columns = ["reached", "lost_at", "open_at"]
        pd.testing.assert_frame_equal(got[columns], want[columns])
    assert loaded.notes  # what the reshaping did is reported


def test_salesforce_timing_matches_canonical(tmp_path, config, small):
    crm_shapes.write_salesforce(small, tmp_path)
    loaded = fk.load_data(tmp_path, config=config, preset="salesforce", as_of="2024-06-30")
    a = fk.time_in_stage(fk.stage_stays(loaded, config))
    b = fk.time_in_stage(fk.stage_stays(small, config))
    pd.testing.assert_series_equal(a["median"].round(6), b["median"].round(6))


def test_snapshot_unknown_dates_count_in_funnel_not_in_timing(tmp_path, config, small):
    crm_shapes.write_snapshot(small, tmp_path, config)
    loaded = fk.load_data(tmp_path, config=config, preset="snapshot", as_of="2024-06-30")
    unknown = int((~loaded.events["date_known"]).sum())
    assert unknown > 0 and f"{unknown:,} stages reached with the date unknown" in loaded.notes[0]
    stays = fk.stage_stays(loaded, config)
    assert set(stays["stage"]) <= {"leads", "prospects"}  # only stays with both ends dated
    assert len(stays) < len(fk.stage_stays(small, config))


def test_check_command(tmp_path, capsys):
    assert cli(["sample", "--out", str(tmp_path / "sf"), "--shape", "hubspot", "--deals", "300"]) == 0
    assert cli(["check", str(tmp_path / "sf"), "--preset", "hubspot", "--quarantine-out", str(tmp_path / "q.csv")]) == 0
    out = capsys.readouterr().out
    assert "deals: 300 rows read = 300 analysed + 0 quarantined" in out
    assert "Stages seen against those configured" in out and "Date ranges" in out and "skipped at least one stage" in out
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "deals.csv").write_text("deal_id\nD1\n")
    (bad / "stage_events.csv").write_text("deal_id,stage,entered_at\nD1,leads,2024-01-01\n")
    assert cli(["check", str(bad)]) == 2  # an error that stops analysis exits non-zero
    assert "missing column(s)" in capsys.readouterr().err
    assert cli(["check", str(bad), "--preset", "nonesuch"]) == 2


@pytest.mark.parametrize(
    "text, fmt, dayfirst, expected",
    [
        ("2024-03-04", None, False, "2024-03-04 00:00"),
        ("2024-03-04T10:15:00Z", None, False, "2024-03-04 10:15"),
        ("2024-03-04T10:15:00+08:00", None, False, "2024-03-04 02:15"),
        ("04-03-2024", "%d-%m-%Y", False, "2024-03-04 00:00"),
        ("04/03/2024 10:15", "%d/%m/%Y %H:%M", False, "2024-03-04 10:15"),
        ("04/03/2024 10:15", None, True, "2024-03-04 10:15"),
        ("03/04/2024 10:15", None, False, "2024-03-04 10:15"),
        ("45355", None, False, "2024-03-04 00:00"),
        ("45355.5", None, False, "2024-03-04 12:00"),
    ],
)
def test_date_formats(text, fmt, dayfirst, expected):
    parsed = parse_datetimes(pd.Series([text]), dayfirst=dayfirst, date_format=fmt).iloc[0]
    assert parsed == pd.Timestamp(expected)


def test_amounts_with_separators_and_symbols():
    values = pd.Series(["¥1,200,000", "1 200 000.50", "CNY 35,000", "￥8,000元", "12.5", "lots", None])
    parsed = parse_amounts(values)
    assert parsed.iloc[:5].tolist() == [1200000.0, 1200000.5, 35000.0, 8000.0, 12.5]
    assert parsed.iloc[5:].isna().all()
