"""The bad-input corpus (tests/data/bad): each case gives the exact error or quarantine it must produce.

Also: a 100 MB file with a bad row near the end, and property-based tests over random valid event
logs (funnel identity, row accounting, row order).
"""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funnelkit as fk
from funnelkit.inputs.data import reason_text

CORPUS = Path(__file__).parent / "data" / "bad"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.yaml").exists())


def test_corpus_has_at_least_25_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", CASES)
def test_bad_input_case(name, config):
    folder = CORPUS / name
    expect = yaml.safe_load((folder / "expect.yaml").read_text(encoding="utf-8"))
    preset = str(folder / expect["preset"]) if "preset" in expect else None
    load = lambda: fk.load_data(folder, config=config, as_of=expect.get("as_of"), preset=preset)  # noqa: E731
    if "error" in expect:
        with pytest.raises(fk.DataError) as info:
            load()
        assert str(info.value) == expect["error"].format(dir=folder)
        return
    data = load()
    got = data.quarantine[["table", "row", "column", "reason"]].astype({"row": int}).to_dict("records")
    # the corpus states reasons as the command line words them (the data holds keys: missing:team)
    got = [r | {"reason": reason_text(r["reason"], data.as_of, list(config.pipelines))} for r in got]
    key = lambda r: (r["table"], r["row"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expect["quarantine"], key=key)
    for table, n_in in data.rows_in.items():
        analysed = len(data.deals) if table == "deals" else len(data.events)
        assert n_in == analysed + int((data.quarantine["table"] == table).sum())
    for deal_id, fields in expect.get("deals", {}).items():
        row = data.deals.set_index("deal_id").loc[deal_id]
        for column, value in fields.items():
            assert str(row[column]) == str(value)
    if "stages" in expect:
        assert data.events.sort_values(["deal_id", "entered_at"])["stage"].tolist() == expect["stages"]


def test_100_mb_file_with_a_bad_row_near_the_end(tmp_path, config):
    n_deals, per_deal = 1000, 2600
    deals = pd.DataFrame({"deal_id": [f"D{i:05d}" for i in range(n_deals)], "customer": "客户", "team": "East",
                          "rep": "Li Na", "created_at": "2023-01-01 00:00:00", "amount": "1000", "status": "open"})
    deals.to_csv(tmp_path / "deals.csv", index=False)
    minutes = np.arange(per_deal)
    times = (pd.Timestamp("2023-01-01") + pd.to_timedelta(np.tile(minutes, n_deals), unit="min")).strftime("%Y-%m-%d %H:%M:%S")
    events = pd.DataFrame({"deal_id": np.repeat(deals["deal_id"].to_numpy(), per_deal),
                           "stage": np.where(np.tile(minutes, n_deals) % 2 == 0, "leads", "prospects"),
                           "entered_at": times, "note": "x" * 4})
    bad_row = len(events) - 7
    events.loc[bad_row - 1, "entered_at"] = "31/02/2024 25:61"
    events.to_csv(tmp_path / "stage_events.csv", index=False)
    assert (tmp_path / "stage_events.csv").stat().st_size > 100e6
    data = fk.load_data(tmp_path, config=config, as_of="2024-06-30")
    assert data.quarantine[["row", "column", "reason"]].to_dict("records") == [
        {"row": bad_row, "column": "entered_at", "reason": "not_a_date:entered_at"}]
    assert data.rows_in["stage_events"] == len(data.events) + 1 == len(events)


# --- property-based tests over random valid event logs ---------------------------------------

STAGES = ["leads", "prospects", "opportunities", "negotiation", "customers"]


@st.composite
def event_logs(draw):
    """Deals that walk forward through the stages (with skips and regressions), then close or stay open."""
    n = draw(st.integers(1, 25))
    deals, events = [], []
    for i in range(n):
        day = draw(st.integers(0, 150))
        path = [0]
        for _ in range(draw(st.integers(0, 5))):
            step = draw(st.sampled_from([1, 1, 2, -1]))
            path.append(min(max(path[-1] + step, 0), 4))
            if path[-1] == 4:
                break
        t = pd.Timestamp("2024-01-01") + pd.Timedelta(days=day)
        for k in path:
            events.append({"deal_id": f"D{i}", "stage": STAGES[k], "entered_at": str(t)})
            t += pd.Timedelta(days=draw(st.integers(1, 20)))
        status = "won" if path[-1] == 4 else draw(st.sampled_from(["open", "lost"]))
        closed = str(pd.Timestamp(events[-1]["entered_at"]) + (pd.Timedelta(0) if status == "won" else pd.Timedelta(days=3)))
        deals.append({"deal_id": f"D{i}", "customer": "C", "team": draw(st.sampled_from(["A", "B"])), "rep": "R",
                      "created_at": events[-len(path)]["entered_at"], "amount": "100", "status": status,
                      "closed_at": closed if status != "open" else "", "lost_reason": ""})
    return pd.DataFrame(deals), pd.DataFrame(events)


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(event_logs())
def test_identity_and_accounting_hold_on_random_logs(config, log):
    deals, events = log
    data = fk.validate(deals, events, config, as_of=pd.Timestamp("2025-01-01"))
    assert data.quarantine.empty
    for table, n_in in data.rows_in.items():
        assert n_in == (len(data.deals) if table == "deals" else len(data.events))
    for period in ("2024-Q1", "2024-Q2", "2024-05"):
        for strict in (False, True):
            funnel = fk.cohort_funnel(data, config, period, strict=strict)
            r = funnel["reached"].to_numpy()
            rest = (funnel["lost_at"] + funnel["open_at"] + funnel["skipped_at"]).to_numpy()
            assert (r[:-1] == r[1:] + rest[:-1]).all()


@PROPERTY
@given(event_logs(), st.randoms(use_true_random=False))
def test_shuffling_rows_changes_nothing(config, log, rnd):
    deals, events = log
    shuffled_deals = deals.sample(frac=1, random_state=rnd.randint(0, 10**6))
    shuffled_events = events.sample(frac=1, random_state=rnd.randint(0, 10**6))
    a = fk.validate(deals, events, config, as_of=pd.Timestamp("2025-01-01"))
    b = fk.validate(shuffled_deals, shuffled_events, config, as_of=pd.Timestamp("2025-01-01"))
    for period in ("2024-Q1", "2024-Q2"):
        pd.testing.assert_frame_equal(fk.cohort_funnel(a, config, period).table, fk.cohort_funnel(b, config, period).table)
        pd.testing.assert_frame_equal(fk.period_table(a, config, period).table, fk.period_table(b, config, period).table)


@PROPERTY
@given(event_logs(), st.integers(0, 10))
def test_rows_in_equals_analysed_plus_quarantined_with_damage(config, log, damage):
    deals, events = log
    events = events.copy()
    for i in range(min(damage, len(events))):
        events.loc[i, "entered_at" if i % 2 else "stage"] = "???"
    data = fk.validate(deals, events, config, as_of=pd.Timestamp("2025-01-01"))
    for table, n_in in data.rows_in.items():
        analysed = len(data.deals) if table == "deals" else len(data.events)
        assert n_in == analysed + int((data.quarantine["table"] == table).sum())
