import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.config import ConfigError, load_config, load_report_matrix


def test_month_and_quarter_bounds():
    m = fk.parse_period("2024-03")
    assert (m.start, m.end) == (pd.Timestamp("2024-03-01"), pd.Timestamp("2024-04-01"))
    q = fk.parse_period("2024-q1")
    assert (q.label, q.start, q.end) == ("2024-Q1", pd.Timestamp("2024-01-01"), pd.Timestamp("2024-04-01"))
    assert fk.parse_period("2024-01").previous().label == "2023-12"
    assert fk.parse_period("2024-Q1").previous().label == "2023-Q4"
    y = fk.parse_period("2017")  # a year (issue 17)
    assert (y.label, y.start, y.end, y.previous().label) == ("2017", pd.Timestamp("2017-01-01"),
                                                             pd.Timestamp("2018-01-01"), "2016")


@pytest.mark.parametrize("bad", ["2024-13", "2024-Q5", "March 2024", "24"])
def test_bad_period_is_named(bad):
    with pytest.raises(ValueError, match=bad):
        fk.parse_period(bad)


def test_as_of_date_means_end_of_day():
    default = pd.Timestamp("2000-01-01")
    assert fk.as_of_bound("2024-06-30", default) == pd.Timestamp("2024-07-01")
    assert fk.as_of_bound("2024-06-30 12:00", default) == pd.Timestamp("2024-06-30 12:00")
    assert fk.as_of_bound(None, default) == default


def test_default_config_loads(config):
    assert config.stage_keys() == ["leads", "prospects", "opportunities", "negotiation", "customers"]
    assert config.stage_labels(language="zh")["customers"] == "成交客户"
    assert set(config.pipelines) == {"new_business", "repurchase", "key_account"}


def _write(tmp_path, text, name="funnel.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


BASE = """
default_pipeline: p
pipelines:
  p:
    en: P
    zh: 甲
    stages:
      - {key: a, en: A, zh: 一}
      - {key: b, en: B, zh: 二}
"""


def test_unknown_key_names_file_and_key(tmp_path):
    path = _write(tmp_path, BASE + "colour: blue\n")
    with pytest.raises(ConfigError, match=r"funnel\.yaml: colour: unknown key"):
        load_config(path)
    path = _write(tmp_path, BASE.replace("{key: b, en: B, zh: 二}", "{key: b, en: B, zh: 二, colour: red}"))
    with pytest.raises(ConfigError, match=r"pipelines\.p\.stages\.1\.colour: unknown key"):
        load_config(path)


def test_stage_listed_twice_is_an_error(tmp_path):
    path = _write(tmp_path, BASE.replace("{key: b, en: B, zh: 二}", "{key: b, en: a, zh: 二}"))
    with pytest.raises(ConfigError, match=r"pipelines\.p\.stages: .*listed twice"):
        load_config(path)


def test_bad_period_in_matrix_names_the_key(tmp_path):
    path = _write(tmp_path, "entries:\n  - notebook: conversion\n    periods: [2024-Q7]\n", "reports.yaml")
    with pytest.raises(ConfigError, match=r"reports\.yaml: entries\.0\.periods.*2024-Q7"):
        load_report_matrix(path)


def test_default_matrix_loads():
    matrix = load_report_matrix()
    assert matrix.entries and matrix.as_of == "2024-06-30"


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
