"""Shared fixtures: the funnel config, the sample data, a headless browser, and a builder for
hand-made datasets."""
from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import funnelkit as fk


CHROMIUM = os.environ.get("FUNNELKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven headless by Playwright; fails (does not skip) when it is missing."""
    assert Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}: run .ci/install (installs Debian's chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def config() -> fk.config.FunnelConfig:
    return fk.load_config()


@pytest.fixture(scope="session")
def sample() -> fk.Dataset:
    return fk.sample_dataset()


def make_tables(deals: list[dict], events: list[tuple[str, str, str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical raw tables from short specs.

    ``deals``: dicts with at least ``deal_id`` and ``status``; other required columns get defaults
    (team T, rep R, created_at = the deal's first event, amount 1000).
    ``events``: ``(deal_id, stage, entered_at)`` tuples.
    """
    ev = pd.DataFrame(events, columns=["deal_id", "stage", "entered_at"])
    first = ev.groupby("deal_id")["entered_at"].min() if len(ev) else pd.Series(dtype=str)
    rows = []
    for d in deals:
        row = {"customer": f"C-{d['deal_id']}", "team": "T", "rep": "R", "amount": 1000.0,
               "created_at": first.get(d["deal_id"], "2024-01-01"), "closed_at": None, "lost_reason": None}
        rows.append(row | d)
    return pd.DataFrame(rows), ev


def make_data(deals: list[dict], events: list[tuple[str, str, str]], config=None, as_of: str = "2024-07-01") -> fk.Dataset:
    """A validated Dataset from short specs (see :func:`make_tables`); ``as_of`` is the exclusive bound."""
    d, e = make_tables(deals, events)
    return fk.validate(d, e, config or fk.load_config(), as_of=pd.Timestamp(as_of))


# Every report kind of the default matrix for one team in English and one in Chinese, plus a rep
# report in each language: the browser tests and the language checks share this one run.
SAMPLE_NOTEBOOKS = ("conversion", "time_in_stage", "opportunities", "weight_sensitivity")


@pytest.fixture(scope="session")
def rendered_sample(tmp_path_factory) -> Path:
    """A sample run (English index) with an English set for South and a Chinese set for North;
    returns the output folder. Files: ``<period>/<team>/[<rep>/]<notebook>[.zh].html``."""
    from funnelkit.runner.cli import main as cli

    out = tmp_path_factory.mktemp("rendered")
    entries = "".join(f"  - {{notebook: {nb}, teams: [{team}], periods: [2024-Q2]{lang}}}\n"
                      for nb in SAMPLE_NOTEBOOKS for team, lang in (("South", ""), ("North", ", language: zh")))
    entries += ("  - {notebook: rep_performance, teams: [South], reps: [Ma Lin], periods: [2024-Q2]}\n"
                "  - {notebook: rep_performance, teams: [North], reps: [Zhao Lei], periods: [2024-Q2], language: zh}\n")
    matrix = out / "reports.yaml"
    matrix.write_text(f"data: sample\nas_of: 2024-06-30\nlanguage: en\noutput: {out / 'reports'}\nentries:\n{entries}",
                      encoding="utf-8")
    assert cli(["report", "--matrix", str(matrix), "--jobs", "2", "--quiet"]) == 0
    return out / "reports"


def visible_text(page: str) -> str:
    """What a reader sees: text outside tags, styles and scripts. The page <title> is set by the
    report runner from the file path, so it is left out here, and so are commands (``<code>``), which
    are typed as written."""
    page = re.sub(r"(?s)<(style|script|title|code)[^>]*>.*?</\1>", " ", page)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def report_page(body: str, language: str = "en") -> str:
    """``body`` in a page with the reports' stylesheet and Content-Security-Policy."""
    from funnelkit.presentation.pages import assets, content_security_policy

    css = assets().css
    policy = html.escape(content_security_policy((css,)))
    return (f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}"><style>{css}</style></head>'
            f"<body>{body}</body></html>")


def table_fit(browser, page_file: Path, body: str, language: str = "en") -> list[int]:
    """``body``'s first table in a report page (written to ``page_file``) opened in a 1280-pixel
    window: ``[table scrollWidth, table clientWidth, page scrollWidth, rows]``. The table fits when
    the first two are equal and the page is no wider than the window."""
    page_file.write_text(report_page(body, language), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(page_file.as_uri())
    sizes = page.evaluate("""() => { const t = document.querySelector('table');
        return [t.scrollWidth, t.clientWidth, document.documentElement.scrollWidth, t.rows.length] }""")
    page.close()
    return sizes


def drafted_project(tmp_path_factory: pytest.TempPathFactory, export: Path, prefix: str) -> Path:
    """`funnelkit init proj --from <export>`, untouched: the draft as a user first gets it (a new
    user's review of an export)."""
    from funnelkit.runner.project import init_project

    folder = tmp_path_factory.mktemp(prefix) / "proj"
    init_project(folder, export)
    return folder


def load_with_draft(export: Path, project: Path) -> fk.Dataset:
    """The export loaded with the drafted project's funnel.yaml and preset, as `funnelkit check` does."""
    from funnelkit.config import load_config

    return fk.load_data(export, config=load_config(project / "params" / "funnel.yaml"),
                        preset=project / "params" / "presets" / "my_export.yaml")

