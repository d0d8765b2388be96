"""Rendered reports speak one language: no English words in a Chinese report and no Chinese in an
English one, outside data values (customer, team and rep names, free-text loss reasons …). Loss
reasons the vocabulary knows (params/loss_reasons.yaml) must be in the report language too."""
from __future__ import annotations

import re

import pytest

from conftest import visible_text
from funnelkit.presentation.present import load_text


# Names of methods and acronyms a Chinese statistics text writes in Latin letters.
PROPER_NAMES = {"Kaplan", "Meier", "Fisher", "Wilson", "Kendall", "Jaccard", "Dirichlet", "AUC", "CRM", "Benjamini",
                "Hochberg", "Greenwood"}


def data_values(sample) -> list[str]:
    values: set[str] = set()
    for frame in (sample.deals, sample.events, sample.quarantine):
        for column in frame.columns:
            # loss reasons are not data values here: the vocabulary words them in the report language
            if column not in ("lost_reason", "reason") and (frame[column].dtype == object
                                                            or str(frame[column].dtype).startswith("string")):
                values |= {str(v) for v in frame[column].dropna().unique() if len(str(v)) > 1}
    return sorted(values, key=len, reverse=True)


@pytest.fixture(scope="module")
def rendered(rendered_sample):
    """Report pages of the shared sample run (conftest.py): language → report kind → HTML."""
    out: dict[str, dict[str, str]] = {"en": {}, "zh": {}}
    for path in rendered_sample.rglob("*.html"):
        if not path.name.startswith("index."):
            kind, _, language = path.stem.partition(".")
            out[language or "en"][kind] = path.read_text(encoding="utf-8")
    return out


def words_left(page: str, values: list[str], pattern: str) -> set[str]:
    text = visible_text(page)
    for value in values:
        text = text.replace(value, " ")
    return set(re.findall(pattern, text))


def test_chinese_reports_have_no_english_words(rendered, sample):
    values = data_values(sample)
    assert set(rendered["zh"]) == set(rendered["en"]) == {"conversion", "time_in_stage", "opportunities",
                                                          "weight_sensitivity", "rep_performance"}
    for name, page in rendered["zh"].items():
        left = words_left(page, values, r"[A-Za-z][A-Za-z'’\-]+") - PROPER_NAMES
        assert not left, f"{name}: English words in the Chinese report: {sorted(left)}"
        assert load_text("zh")(name) in visible_text(page)  # the report's own name, in Chinese


def test_english_reports_have_no_chinese(rendered, sample):
    values = data_values(sample)
    for name, page in rendered["en"].items():
        left = words_left(page, values, r"[\u3400-\u9fff\u3000-\u303f\uff01-\uff5e]+")
        assert not left, f"{name}: Chinese in the English report: {sorted(left)}"
        assert load_text("en")(name) in visible_text(page)
