"""Last session's leftovers (fixes6): each test fails without its fix."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.presentation.present import load_text

BAD = Path(__file__).parent / "data" / "bad"
EN, ZH = load_text("en"), load_text("zh")


# --- 1. an exact duplicate row is one deal


def test_an_exact_copy_is_named_by_the_row_it_repeats_in_reports_and_check(config):
    """The report's examples say which row a copy repeats, in the report's language (the data holds
    "row 4"); `check` prints "row 5 repeats row 4"; the summary counts copies apart from ids
    repeated with other fields."""
    from funnelkit.presentation import present
    from funnelkit.runner.check import check_report

    data = fk.load_data(BAD / "exact_duplicate_rows", config=config)
    assert sorted(data.deals["deal_id"]) == ["D1", "D2", "D3", "D4"]

    def copies(text):
        table = present.quality_section(data, text)[2].data
        rows = table[table[text.column("reason")] == text("quarantine_exact_duplicate")]
        return list(zip(rows[text.column("row")], rows[text.column("value")]))

    assert copies(EN) == [(5, "same as row 4"), (8, "same as row 6"), (10, "same as row 9"), (3, "same as row 2")]
    assert copies(ZH) == [(5, "同第 4 行"), (8, "同第 6 行"), (10, "同第 9 行"), (3, "同第 2 行")]
    summary = present.quality_section(data, ZH)[1].data
    counts = list(zip(summary.iloc[:, 0], summary.iloc[:, 1].str.strip(), summary.iloc[:, 2]))
    copy = ZH("quarantine_exact_duplicate")
    assert ("商机表", copy, 3) in counts and ("阶段记录表", copy, 1) in counts and ("商机表", "商机编号重复", 4) in counts
    lines = check_report(data, config)
    assert any(line.endswith("deals.csv, row 5 repeats row 4 (deal D4)") for line in lines), lines
