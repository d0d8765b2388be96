"""review4: defects a sales-operations analyst hit taking a HubSpot-style export to reports.

tests/data/review4/ (written by make_review4.py): `deals.tsv` (tab-separated, UTF-8 with a BOM,
Windows line endings, US dates `MM/DD/YYYY hh:mm AM/PM`, amounts in "$1,234.50" and some in
"€", a Currency column) and `deal_stage_history.xlsx` (one row per stage CHANGE: "From stage",
"To stage", "Changed at", below a title line and a blank line). Each test failed before its fix.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.inputs.data import parse_datetimes

FOLDER = Path(__file__).parent / "data" / "review4"


# --- 1. US 12-hour times


def test_us_twelve_hour_times_are_read_month_first():
    """`init` detected these columns as month-first, but the loader read no 12-hour time: every
    deal was quarantined as "not a date". 12 AM is midnight, 12 PM noon; 13:05 PM is no time."""
    values = pd.Series(["03/04/2024 09:15 AM", "03/04/2024 12:30 AM", "03/04/2024 12:30 PM",
                        "03/14/2024 01:05 pm", "03/04/2024 3:05:09 p.m.", "03/04/2024 13:05 PM"])
    parsed = parse_datetimes(values)
    assert parsed.tolist()[:5] == [pd.Timestamp("2024-03-04 09:15"), pd.Timestamp("2024-03-04 00:30"),
                                   pd.Timestamp("2024-03-04 12:30"), pd.Timestamp("2024-03-14 13:05"),
                                   pd.Timestamp("2024-03-04 15:05:09")]
    assert pd.isna(parsed.iloc[5])


# --- 2. a second currency


def _deals_in(amounts: list[str], codes: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    deals = pd.DataFrame({"deal_id": [f"D{i}" for i in range(len(amounts))], "team": "East", "status": "open",
                          "created_at": "2024-03-01 09:00", "amount": amounts})
    if codes is not None:
        deals["currency"] = codes
    events = pd.DataFrame({"deal_id": deals["deal_id"], "stage": "leads", "entered_at": "2024-03-01 09:00"})
    return deals, events


def test_amounts_in_another_currency_are_quarantined_not_summed(config):
    """review4's export writes 32 of 288 amounts in euros ("€12,500.00"): they were stripped of the
    sign and summed with the dollars, so every won value, pipeline and forecast was in no currency.
    A mark that cannot be the configured currency, or a currency column naming another, sets the
    deal aside; "$" is one of several dollars, so it stays with USD; a blank code is the configured one."""
    usd = config.model_copy(update={"currency": "USD"})
    deals, events = _deals_in(["$1,234.50", "€500.00", "1,200", "EUR 70", "900", "¥800", "", "USD 5"],
                              ["USD", "EUR", "EUR", "", "", "USD", "", "usd"])
    data = fk.validate(deals, events, usd, as_of=pd.Timestamp("2024-06-30"))
    q = data.quarantine[data.quarantine["table"] == "deals"].set_index("deal_id")
    assert q["reason"].to_dict() == {"D1": "other_currency:amount", "D2": "other_currency:amount",
                                     "D3": "other_currency:amount", "D5": "other_currency:amount"}
    assert q.loc["D2", "value"] == "1,200 EUR"  # the amount with the code that set it aside
    amounts = data.deals.set_index("deal_id")["amount"]
    assert amounts.drop("D6").to_dict() == {"D0": 1234.5, "D4": 900.0, "D7": 5.0} and pd.isna(amounts["D6"])
    assert data.rows_in["deals"] == len(data.deals) + len(q)
    # yuan in a CNY project: ¥, 元 and CNY are the configured currency, $ is not
    deals, events = _deals_in(["¥1,000", "2,000元", "CNY 3", "$4"])
    data = fk.validate(deals, events, config, as_of=pd.Timestamp("2024-06-30"))
    assert data.quarantine.groupby("deal_id")["reason"].first().to_dict() == {"D3": "other_currency:amount"}
