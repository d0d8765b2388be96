"""End-to-end report runs on the sample data: HTML, executed notebooks, index and failures."""
import re

import pytest

from funnelkit.runner.cli import main as cli
from funnelkit.config import ConfigError
from funnelkit.runner.report import notebook_to_html, slug


def write_matrix(tmp_path, entries: str, language: str = "en") -> str:
    path = tmp_path / "reports.yaml"
    path.write_text(f"data: sample\nas_of: 2024-06-30\nlanguage: {language}\noutput: {tmp_path / 'out'}\n"
                    f"entries:\n{entries}", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("run")
    matrix = write_matrix(tmp_path, "  - notebook: conversion\n    teams: [East, South]\n    periods: [2024-06]\n"
                                    "  - notebook: conversion\n    teams: [North]\n    periods: [2024-06]\n"
                                    "    parameters: {pipeline: no_such_pipeline}\n")
    code = cli(["report", "--matrix", matrix, "--jobs", "2", "--quiet"])
    return code, tmp_path / "out"


def test_reports_and_executed_notebooks_are_written(sample_run):
    code, out = sample_run
    for team in ("East", "South"):
        page = (out / "2024-06" / team / "conversion.html").read_text(encoding="utf-8")
        assert (out / "2024-06" / team / "conversion.ipynb").exists()
        assert page.count('class="fk-chart"') == 2 and "data:image/png;base64," in page
        assert page.count("<table") >= 4
        for heading in ("Headline", "Cohort funnel", "Table 1", "Loss reasons", "Data quality"):
            assert heading in page
        assert f"Conversion analysis — {team}, 2024-06" in page
        assert "Biggest leak" in page
        # business readers get no code, no parameters and nothing fetched from the network
        assert "import funnelkit" not in page and "config_path" not in page
        assert not re.search(r"<script[^>]+src=|https?://cdn", page)


def test_a_failing_report_does_not_stop_the_others(sample_run, capsys):
    code, out = sample_run
    assert code == 1
    assert not (out / "2024-06" / "North" / "conversion.html").exists()
    assert (out / "2024-06" / "North" / "conversion.ipynb").exists()  # the failed notebook, for debugging
    index = (out / "index.html").read_text(encoding="utf-8")
    assert index.count("class=\"ok\"") == 2 and index.count(">failed</span>") == 1
    assert 'href="2024-06/East/conversion.html"' in index
    assert "no_such_pipeline" in index  # the error is shown on hover


def test_no_stray_warnings_or_logs_in_reports(sample_run):
    import nbformat

    _, out = sample_run
    for path in (out / "2024-06" / team / "conversion.ipynb" for team in ("East", "South")):
        nb = nbformat.read(path, as_version=4)
        streams = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream"]
        assert not streams, [o.get("text", "")[:200] for o in streams]
        page = path.with_suffix(".html").read_text(encoding="utf-8")
        assert "Warning" not in page and "Traceback" not in page


def test_no_temporary_files_left(sample_run):
    _, out = sample_run
    assert not [p for p in out.rglob("*.tmp")]


def test_unknown_notebook_parameter_is_an_error(tmp_path):
    matrix = write_matrix(tmp_path, "  - notebook: conversion\n    periods: [2024-06]\n    parameters: {colour: red}\n")
    with pytest.raises(ConfigError, match="no parameter.*colour"):
        from funnelkit.runner.report import run_reports

        run_reports(matrix, progress=False)
    assert cli(["report", "--matrix", matrix, "--quiet"]) == 2


def test_slug_keeps_names_readable():
    assert slug("Li Na") == "Li_Na"
    assert slug("华东 团队") == "华东_团队"
    assert slug("../etc") == "etc"


def test_default_matrix_expands_with_known_parameters(sample):
    from funnelkit.config import load_report_matrix
    from funnelkit.runner.report import check_parameters, expand_matrix

    jobs = expand_matrix(load_report_matrix(), sample)
    check_parameters(jobs)  # papermill would only warn about an unknown name
    assert len(jobs) == 36 and sum(j.rep is not None for j in jobs) == 16
    zh = [j for j in jobs if j.parameters.get("language") == "zh"]
    assert len(zh) == 6 and all(j.relpath.endswith(f"{j.notebook}.zh") and j.team == "North" for j in zh)
    assert {j.notebook for j in jobs} == {"conversion", "time_in_stage", "opportunities", "weight_sensitivity",
                                          "rep_performance"}
    assert "2024-Q2/East/Li_Na/rep_performance" in {j.relpath for j in jobs}


# --- issue 13 part B: opportunities report and executive index -------------------------------

def _cells(table_html: str) -> list[list[str]]:
    """The text of each body row's cells of one HTML table."""
    import html as html_module

    rows = re.findall(r"(?s)<tr[^>]*>(.*?)</tr>", table_html)
    cells = [[html_module.unescape(re.sub(r"<[^>]+>", "", c)).strip()
              for c in re.findall(r"(?s)<td[^>]*>(.*?)</td>", r)] for r in rows]
    return [c for c in cells if c]


def _table_after(page: str, anchor: str) -> str:
    start = page.index(f'id="{anchor}"')
    return page[page.index("<table", start):page.index("</table>", start)]


@pytest.fixture(scope="module")
def opportunities_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("opps")
    matrix = write_matrix(tmp_path, "  - notebook: opportunities\n    teams: [East, North]\n    periods: [2024-Q2]\n")
    assert cli(["report", "--matrix", matrix, "--jobs", "2", "--quiet"]) == 0
    return tmp_path / "out"


def test_opportunities_report_has_chart_sorted_list_and_forecast(opportunities_run):
    from funnelkit.presentation.present import load_text

    text = load_text("en")
    page = (opportunities_run / "2024-Q2" / "East" / "opportunities.html").read_text(encoding="utf-8")
    assert re.search(rf'<img alt="{text("value_chart_title")}" class="fk-chart" src="data:image/png;base64,', page)
    rows = _cells(_table_after(page, "plan"))
    body, total = rows[:-1], rows[-1]
    header = [text.column(c) for c in ("deal_id", "amount", "days_overdue", "next_action")]
    assert all(h in _table_after(page, "plan") for h in header)
    days = [int(r[-1]) for r in body]
    assert days == sorted(days, reverse=True) and days[0] > 0  # most overdue first
    amounts = [float(r[5].lstrip("¥").replace(",", "")) for r in body]
    for i in range(1, len(body)):  # then the largest amount
        if days[i] == days[i - 1]:
            assert amounts[i] <= amounts[i - 1]
    assert total[0] == text("fu_total", deals=len(body)) and total[5] == f"¥{sum(amounts):,.0f}"
    assert 'class="fk-badge fk-tier-high"' in page and "style=" not in page.split("</head>")[1]
    assert text("col_deal_share") in page and text("col_value_share") in page
    assert 'id="forecast"' in page and "Caution: the CRM probabilities average" in page
    bands = _cells(_table_after(page, "calibration-band"))
    assert [r[0] for r in bands] == ["0–20%", "20–40%", "40–60%", "60–80%", "80–100%"]


def test_index_shows_key_figures_per_team(opportunities_run):
    from funnelkit.presentation.present import load_text

    text = load_text("en")
    index = (opportunities_run / "index.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in index and text("index_figures_title", period="2024-Q2") in index
    assert index.count('class="fk-card"') == 2
    for key in ("won_value", "win_rate", "open_pipeline", "forecast", "overdue", "leak"):
        assert index.count(f"<dt>{text('fig_' + key)}</dt>") == 2, key
    compare = _cells(_table_after(index, "compare"))
    assert len(compare) == 3  # East, North, all teams (row headers are <th>)
    footer = index[index.index("<tfoot>"):index.index("</tfoot>")]  # the all-teams row stays last when sorted
    assert text("all_teams") in footer and "East" not in footer
    assert index.index('id="compare"') < index.index('id="reports"')  # figures, comparison, then the grid
    assert 'href="2024-Q2/East/opportunities.html"' in index
