"""End-to-end report runs on the sample data: HTML, executed notebooks, index and failures."""
import re

import pytest

from funnelkit.cli import main as cli
from funnelkit.config import ConfigError
from funnelkit.report import notebook_to_html, slug


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
        from funnelkit.report import run_reports

        run_reports(matrix, progress=False)
    assert cli(["report", "--matrix", matrix, "--quiet"]) == 2


def test_slug_keeps_names_readable():
    assert slug("Li Na") == "Li_Na"
    assert slug("华东 团队") == "华东_团队"
    assert slug("../etc") == "etc"


def test_default_matrix_expands_with_known_parameters(sample):
    from funnelkit.config import load_report_matrix
    from funnelkit.report import check_parameters, expand_matrix

    jobs = expand_matrix(load_report_matrix(), sample)
    check_parameters(jobs)  # papermill would only warn about an unknown name
    assert len(jobs) == 36 and sum(j.rep is not None for j in jobs) == 16
    zh = [j for j in jobs if j.parameters.get("language") == "zh"]
    assert len(zh) == 6 and all(j.relpath.endswith(f"{j.notebook}.zh") and j.team == "North" for j in zh)
    assert {j.notebook for j in jobs} == {"conversion", "time_in_stage", "opportunities", "weight_sensitivity",
                                          "rep_performance"}
    assert "2024-Q2/East/Li_Na/rep_performance" in {j.relpath for j in jobs}
