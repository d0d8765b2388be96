"""fixes5: leftovers seen in the fifth session's reports and commands, each with a test that failed
before its fix (hand-worked values; Chromium where it is about what a reader sees)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.presentation.present import load_text

EN, ZH = load_text("en"), load_text("zh")


def _page(body: str, language: str = "en") -> str:
    from funnelkit.presentation.pages import assets

    return (f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8"><style>{assets().css}</style></head>'
            f"<body>{body}</body></html>")


# --- 1. the rep roll-up table fits the page in Chinese


def test_header_and_interval_widths_by_hand():
    """A header of at most 10 display columns stays on one line ("加权管道" = 8, "Closed" = 6); a longer
    one counts its widest word ("Win rate adjusted for sample size" → "adjusted" = 8), a Chinese one
    half its width as on two lines ("按样本量校正的赢单率", 10 characters = 20 columns → 10). An interval
    keeps its bracket whole and, in Chinese, gets a break opportunity before it (none after "%")."""
    from funnelkit.presentation.present import _header_width, _header_html, _keep_brackets_whole

    assert _header_width("加权管道") == 8 and _header_width("Closed") == 6
    assert _header_width("Win rate adjusted for sample size") == 8
    assert _header_width("按样本量校正的赢单率") == 10 and _header_width("每日销售速度") == 6
    assert "fk-nowrap" in _header_html("周期中位数") and "fk-nowrap" not in _header_html("按样本量校正的赢单率")
    assert _keep_brackets_whole("24.1%（17.9%–31.7%）") == '24.1%<wbr><span class="fk-nowrap">（17.9%–31.7%）</span>'
    assert _keep_brackets_whole("24.1% (17.9%–31.7%)") == '24.1% <span class="fk-nowrap">(17.9%–31.7%)</span>'
    assert _keep_brackets_whole("Lead (bring in the team)") == "Lead (bring in the team)"  # words may wrap


@pytest.mark.parametrize("language", ["en", "zh"])
def test_rep_rollup_fits_a_1280_pixel_window(browser, tmp_path, language):
    """North's roll-up (2024-Q2, five reps, twelve columns) ran 62 px past the page in Chinese: its
    intervals "24.1%（17.9%–31.7%）" had no break opportunity and its headers could not break. In a
    1280-pixel window the table's right edge is inside the page, with no scroll bar."""
    from funnelkit.analyses import playbook, scorecard
    from funnelkit.presentation import present

    ctx = fk.report_context("rep_performance", data="sample", period="2024-Q2", as_of="2024-06-30", team="North",
                            rep="Zhao Lei", language=language)
    team_scope = ctx.scope.widen("rep")
    scored = scorecard.score_deals(team_scope.open_deals, scorecard.load_scorecard())
    plan = playbook.follow_up_plan(scored, playbook.load_playbook(), ctx.plan_date, language)
    summary = fk.rep_summary_of(team_scope, "2024-Q2", window_months=12, plan=plan)
    page_file = tmp_path / f"rollup.{language}.html"
    page_file.write_text(_page(present.rollup_table(summary, ctx.text).to_html(), language), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(page_file.as_uri())
    sizes = page.evaluate("""() => { const t = document.querySelector('table');
        return [Math.ceil(t.getBoundingClientRect().right), Math.floor(document.body.getBoundingClientRect().right),
                t.scrollWidth, t.clientWidth, document.documentElement.scrollWidth, t.rows[0].cells.length] }""")
    page.screenshot(path=str(tmp_path / f"rollup.{language}.png"))
    page.close()
    right, page_right, table_scroll, table_client, page_scroll, columns = sizes
    assert columns == 12 and right <= page_right and table_scroll <= table_client and page_scroll <= 1280, sizes
