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
