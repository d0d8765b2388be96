"""Issue 18, input side, and issue 17 §3: messy but ordinary exports never crash or give wrong numbers.

More cases with exact expected messages are in the bad-input corpus (tests/data/bad: blank_status,
placeholder_date, placeholder_no_date, infinite_amount, decimal_comma, decimal_contradiction,
dates_day_first, dates_contradictory, dates_ambiguous(_with_preset), far_future_as_of, nul_bytes).
"""
from pathlib import Path

import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.runner.cli import main as cli
from funnelkit.inputs.data import parse_amounts, parse_dates, Parsing


def write(folder: Path, deals: str, events: str, preset: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "deals.csv").write_text(deals, encoding="utf-8")
    (folder / "stage_events.csv").write_text(events, encoding="utf-8")
    if preset:
        (folder / "preset.yaml").write_text(preset, encoding="utf-8")
    return folder


DMY_DEALS = """deal_id,team,created_at,status,closed_at
A,East,05-03-2024,open,
B,East,20-03-2024,won,22-04-2024 16:30
C,West,11-02-2024,lost,14-03-2024 09:15
"""
DMY_EVENTS = """deal_id,stage,entered_at
A,leads,05-03-2024 10:00
B,leads,20-03-2024 11:00
B,customers,22-04-2024 16:30
C,leads,11-02-2024 08:00
C,prospects,01-03-2024 08:00
"""


def test_dd_mm_yyyy_without_a_preset_gives_the_dates_of_an_explicit_format(tmp_path, config):
    """Fails on the code before issue 17: 05-03-2024 became 3 May while 20-03-2024 was 20 March."""
    folder = write(tmp_path, DMY_DEALS, DMY_EVENTS)
    guessed = fk.load_data(folder, config=config, as_of="2024-06-30")
    explicit = fk.load_data(folder, config=config, as_of="2024-06-30", preset=fk.inputs.presets.Preset(
        shape="canonical", date_formats={"created_at": "%d-%m-%Y", "closed_at": "%d-%m-%Y %H:%M",
                                         "entered_at": "%d-%m-%Y %H:%M"}))
    assert guessed.quarantine.empty and explicit.quarantine.empty
    pd.testing.assert_frame_equal(guessed.deals, explicit.deals)
    pd.testing.assert_frame_equal(guessed.events, explicit.events)
    created = guessed.deals.set_index("deal_id")["created_at"]
    assert created["A"] == pd.Timestamp("2024-03-05") and created["B"] == pd.Timestamp("2024-03-20")
    assert guessed.deals.set_index("deal_id").loc["C", "closed_at"] == pd.Timestamp("2024-03-14 09:15")


def test_iso_and_excel_serials_stay_as_they_are():
    values = pd.Series(["2024-03-04", "45355", "2024-03-04T10:15:00", 45355.5])
    parsed, outside = parse_dates(values, Parsing(timezone="UTC"))
    assert parsed.tolist() == [pd.Timestamp("2024-03-04"), pd.Timestamp("2024-03-04"),
                               pd.Timestamp("2024-03-04 10:15"), pd.Timestamp("2024-03-04 12:00")]
    assert not outside.any()


def test_aware_events_against_naive_creation_dates_compare_in_the_stated_zone(tmp_path, config):
    """+08:00 stage times against naive created_at written in Shanghai time: converted to UTC and
    compared with the naive times as if those were UTC, 2 of 3 deals were 'before created_at'."""
    deals = """deal_id,team,created_at,status,closed_at
A,East,2024-03-01 09:00,open,
B,East,2024-03-02 07:30,open,
C,East,2024-03-03 00:10,open,
"""
    events = """deal_id,stage,entered_at
A,leads,2024-03-01T09:30:00+08:00
B,leads,2024-03-02T08:00:00+08:00
B,prospects,2024-03-05T10:00:00+08:00
C,leads,2024-03-03T00:20:00+08:00
"""
    folder = write(tmp_path, deals, events, "shape: canonical\ntimezone: Asia/Shanghai\n")
    data = fk.load_data(folder, config=config, as_of="2024-06-30", preset=folder / "preset.yaml")
    assert data.quarantine.empty, data.quarantine
    assert data.events.set_index(["deal_id", "stage"]).loc[("B", "prospects"), "entered_at"] == pd.Timestamp("2024-03-05 10:00")
    # the same file read as if the naive times were UTC: 09:30+08:00 is 01:30 UTC, before 09:00
    utc = fk.load_data(folder, config=config, as_of="2024-06-30",
                       preset=fk.inputs.presets.Preset(shape="canonical", timezone="UTC"))
    assert set(utc.quarantine.loc[utc.quarantine["table"] == "stage_events", "reason"]) == {
        "before_created"}


def test_the_configured_zone_is_the_default_for_naive_times(config):
    shanghai = config.model_copy(update={"timezone": "Asia/Shanghai"})
    deals = pd.DataFrame({"deal_id": ["A"], "team": ["East"], "created_at": ["2024-03-01 09:00"], "status": ["open"]})
    events = pd.DataFrame({"deal_id": ["A"], "stage": ["leads"], "entered_at": ["2024-03-01T09:30:00+08:00"]})
    data = fk.validate(deals, events, shanghai, as_of=pd.Timestamp("2024-07-01"))
    assert data.quarantine.empty and data.events["entered_at"].iloc[0] == pd.Timestamp("2024-03-01 09:30")


def test_an_unknown_zone_is_a_config_error(tmp_path):
    (tmp_path / "funnel.yaml").write_text(
        (Path(fk.config.PARAMS_DIR) / "funnel.yaml").read_text(encoding="utf-8") + "\ntimezone: Mars/Olympus\n",
        encoding="utf-8")
    with pytest.raises(fk.ConfigError, match="timezone: .*Mars/Olympus.* is not a time zone"):
        fk.load_config(tmp_path / "funnel.yaml")


def test_a_csv_with_100000_columns_is_refused_quickly(tmp_path, config):
    header = ",".join(f"c{i}" for i in range(100_000))
    write(tmp_path, header + "\n" + ",".join("1" for _ in range(100_000)) + "\n", DMY_EVENTS)
    with pytest.raises(fk.DataError) as info:
        fk.load_data(tmp_path, config=config)
    assert str(info.value).endswith("deals.csv: 100,000 columns; funnelkit reads at most 2,000. Export only the "
                                    "columns the preset maps (a wider file is usually not a table of deals)")


def test_long_cells_are_cut_in_messages(tmp_path, config):
    long_id = "x" * 1_000_000
    deals = f"deal_id,team,created_at,status\nA,East,2024-03-01,open\nB,East,2024-03-01,{long_id}\n"
    events = "deal_id,stage,entered_at\nA,leads,2024-03-01\nB,leads,2024-03-01\n"
    write(tmp_path, deals, events)
    data = fk.load_data(tmp_path, config=config, as_of="2024-06-30")
    value = data.quarantine.loc[data.quarantine["column"] == "status", "value"].iloc[0]
    assert len(value) < 120 and "1,000,000 characters" in value
    # a missing column in a file whose header is one huge cell
    (tmp_path / "deals.csv").write_text(long_id + "\n1\n", encoding="utf-8")
    with pytest.raises(fk.DataError) as info:
        fk.load_data(tmp_path, config=config)
    assert len(str(info.value)) < 400


def test_nul_bytes_give_a_short_message_on_the_command_line(tmp_path, capsys):
    (tmp_path / "deals.csv").write_bytes(b"\x00" * 1_000_000)
    (tmp_path / "stage_events.csv").write_text(DMY_EVENTS)
    assert cli(["check", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err) < 300


def test_blank_status_does_not_stop_check(tmp_path, capsys):
    deals = "deal_id,team,created_at,status\nA,East,2024-03-01,open\nB,East,2024-03-01,\n"
    events = "deal_id,stage,entered_at\nA,leads,2024-03-01\nB,leads,2024-03-01\n"
    write(tmp_path, deals, events)
    code = cli(["check", str(tmp_path), "--as-of", "2024-06-30", "--max-quarantined", "60"])
    out = capsys.readouterr().out
    assert code == 0 and "status is missing: 1" in out


@pytest.mark.parametrize("decimal, text, expected", [
    (",", "1.000,50", 1000.5), (",", "1 000,50", 1000.5), (",", "1\u00a0000,50", 1000.5), (",", "12", 12.0),
    (".", "1,000.50", 1000.5), (".", "1 000.50", 1000.5), (".", "1000", 1000.0), (".", "-3.5", -3.5),
])
def test_decimal_mark(decimal, text, expected):
    assert parse_amounts(pd.Series([text]), decimal).iloc[0] == expected


@pytest.mark.parametrize("decimal, text", [(",", "1,000.50"), (",", "12.5"), (".", "1.000,50"), (".", "12,5")])
def test_a_value_contradicting_the_decimal_mark_is_an_error_naming_the_column(decimal, text):
    with pytest.raises(fk.DataError, match=r"deals.csv, column amount: row 1 .* set `decimal: "):
        parse_amounts(pd.Series([text]), decimal, "deals.csv, column amount")


def test_missing_fields_are_named(config):
    deals = pd.DataFrame({"deal_id": ["A"], "status": ["open"]})
    events = pd.DataFrame({"deal_id": ["A"], "stage": ["leads"], "entered_at": ["2024-03-01"]})
    data = fk.validate(deals, events, config, as_of=pd.Timestamp("2024-07-01"))
    assert data.quarantine.empty and data.deals["team"].tolist() == ["All"]
    assert fk.inputs.data.missing_fields(data, ["amount", "customer", "team", "created_at"]) == ["amount", "customer"]
    assert any("no customer, rep, amount column" in n for n in data.notes)
