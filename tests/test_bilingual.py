"""Words in the report language: the loss-reason vocabulary, reason keys worded by the presentation
layer, index and page titles, and the table sort keys the styled tables carry."""
from __future__ import annotations

import dataclasses
import re

import pandas as pd
import pytest

from funnelkit.config import ConfigError
from funnelkit.presentation.loss_reasons import LossReasons, in_language, load_loss_reasons
from funnelkit.presentation.present import load_text, styled, unscored_words
from funnelkit.inputs.sample import LOSS_REASONS


@pytest.fixture(scope="module")
def vocabulary() -> LossReasons:
    return load_loss_reasons()


def test_every_sample_reason_has_both_labels(vocabulary):
    for reasons, _ in LOSS_REASONS.values():
        for reason in reasons:
            key = vocabulary.key_of(reason)
            assert key is not None, reason
            assert vocabulary.label(reason, "zh") == reason
            assert vocabulary.label(reason, "en") != reason and vocabulary.label(reason, "en").isascii()


def test_reasons_are_found_by_key_or_label_in_either_language(vocabulary):
    assert vocabulary.label("预算不足", "en") == "No budget"
    assert vocabulary.label("  no BUDGET ", "zh") == "预算不足"  # spaces and case of a typed label
    assert vocabulary.label("no_budget", "zh") == "预算不足"
    assert vocabulary.label("unspecified", "en") == "not recorded"
    assert vocabulary.label("unspecified", "zh") == "未填写"


def test_free_text_and_missing_reasons_stay_as_typed(vocabulary):
    assert vocabulary.label("客户内部重组 <b>", "en") == "客户内部重组 <b>"
    assert vocabulary.label("Went with in-house build", "zh") == "Went with in-house build"
    assert vocabulary.label(None, "en") is None
    labels = vocabulary.labels(pd.Series(["价格过高", None, "own words"]), "en")
    assert labels.iloc[0] == "Price too high" and pd.isna(labels.iloc[1]) and labels.iloc[2] == "own words"


def test_an_engines_categorical_reasons_are_worded_as_a_categorical(vocabulary):
    """An engine's deals hold the loss reason as a categorical: it stays one, and two spellings
    of one reason become one category."""
    reasons = pd.Series(pd.Categorical(["价格过高", None, "Price too high", "own words", "价格过高"]), index=[5, 6, 7, 8, 9])
    labels = vocabulary.labels(reasons, "en")
    assert isinstance(labels.dtype, pd.CategoricalDtype) and list(labels.index) == [5, 6, 7, 8, 9]
    assert list(labels.cat.categories) == ["Price too high", "own words"]
    assert labels.astype(object).where(labels.notna(), None).tolist() == \
        ["Price too high", None, "Price too high", "own words", "Price too high"]


def test_two_spellings_of_one_reason_are_counted_together(sample, vocabulary):
    deals = sample.deals.copy()
    lost = deals.index[deals["lost_reason"] == "预算不足"]
    deals.loc[lost[:5], "lost_reason"] = "No budget"  # a CRM where some reps typed English
    mixed = dataclasses.replace(sample, deals=deals)
    counts = in_language(mixed, "zh", vocabulary).deals["lost_reason"].value_counts()
    assert counts["预算不足"] == len(lost) and "No budget" not in counts
    assert in_language(mixed, "en", vocabulary).deals["lost_reason"].value_counts()["No budget"] == len(lost)


def test_vocabulary_is_validated_on_load(tmp_path):
    path = tmp_path / "loss_reasons.yaml"
    path.write_text("reasons:\n  a: {en: Price, zh: 价格}\n  b: {en: price, zh: 价钱}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="names both"):
        load_loss_reasons(path)
    path.write_text("reasons:\n  a: {en: Price}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="zh"):
        load_loss_reasons(path)


def test_loss_reasons_are_escaped_where_written(vocabulary):
    frame = pd.DataFrame({"reason": vocabulary.labels(pd.Series(["<script>x</script>", "预算不足"]), "en"),
                          "deals": [1, 2]})
    html = styled(frame, load_text("en")).to_html()
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html and "No budget" in html


@pytest.mark.parametrize("language, expected", [
    ("en", "Win probability: no value; Amount: in no band of the scorecard"),
    ("zh", "缺少成交概率；预计金额不在评分卡的任何分档内"),
])
def test_unscored_reason_keys_are_worded_in_the_report_language(language, expected):
    assert unscored_words("missing:win_probability; no_band:amount", load_text(language)) == expected


def test_unscored_reason_is_a_key_and_a_column(sample):
    from funnelkit.analyses.scorecard import UNSCORED_REASONS, load_scorecard, score_deals

    deals = sample.deals[sample.deals["status"] == "open"].head(3).copy()
    deals["win_probability"] = float("nan")
    card = load_scorecard()
    scored = score_deals(deals, card)
    weight = card.weights()[next(k for k, d in card.dimensions.items() if d.column == "win_probability")]
    if card.missing != "renormalise" and weight > 0:
        for reason in scored["unscored_reason"]:
            assert all(part.split(":")[0] in UNSCORED_REASONS for part in reason.split("; "))
            assert "missing:win_probability" in reason


@pytest.mark.parametrize("language", ["en", "zh"])
def test_styled_tables_carry_sort_ranks_totals_and_no_wrap_classes(language):
    from funnelkit.presentation.present import sort_classes, tier_labels

    text = load_text(language)
    tiers = tier_labels(text)
    frame = pd.DataFrame({"rep": ["Sun Qiang", "Li Na", text("total")],
                          "tier": [tiers["low"], "high", None],
                          "note": ["short", "a sentence long enough that it has to wrap in a narrow column", "x"],
                          "deals": [3, 4, 7]})
    classes = sort_classes(frame, text)
    assert classes["tier"].tolist()[:2] == ["fk-o-2", "fk-o-0"]  # by name or by key
    assert all("fk-total" in c for c in classes.iloc[2]) and not any("fk-total" in c for c in classes.iloc[0])
    html = styled(frame, text).to_html()

    def cell(row: int, col: int) -> str:
        return re.search(rf'<td id="T_\w+_row{row}_col{col}" class="([^"]*)"', html).group(1)

    assert "fk-nowrap" in cell(0, 0) and "fk-nowrap" not in cell(0, 2) and "fk-num" in cell(0, 3)
    assert "fk-o-2" in cell(0, 1) and "fk-total" in cell(2, 3)


def test_quarantine_reasons_are_keys_worded_per_language(config):
    from conftest import make_data
    from funnelkit.inputs.data import QUARANTINE_REASONS, reason, reason_text
    from funnelkit.presentation.present import quality_section, quarantine_words

    with pytest.raises(KeyError):
        reason("amount is negative")  # a sentence is not a reason key
    data = make_data([{"deal_id": "G", "status": "open"}, {"deal_id": "X", "status": "open", "amount": -5},
                      {"deal_id": "Y", "status": "open", "team": " "}],
                     [("G", "leads", "2024-03-01"), ("X", "leads", "2024-03-01"), ("Y", "leads", "2024-03-01")], config)
    deals = data.quarantine[data.quarantine["table"] == "deals"].set_index("deal_id")["reason"]
    assert deals.to_dict() == {"X": "negative:amount", "Y": "missing:team"}
    assert all(r.partition(":")[0] in QUARANTINE_REASONS for r in data.quarantine["reason"])
    assert reason_text("negative:amount") == "amount is negative"  # the command line's English
    assert quarantine_words("negative:amount", load_text("en")) == "Amount: negative"
    assert quarantine_words("missing:team", load_text("zh")) == "缺少团队"
    assert quarantine_words("after_as_of:created_at", load_text("zh"), pd.Timestamp("2024-07-01")) == \
        "创建时间晚于数据截止日 2024-06-30"
    assert quarantine_words("typed by hand", load_text("zh")) == "typed by hand"
    for language, expected, pattern in (("zh", "缺少团队", r"[A-Za-z]{3,}"), ("en", "Team: missing", r"[\u3400-\u9fff]")):
        page = "".join(p.to_html() if hasattr(p, "to_html") else getattr(p, "data", str(p))
                       for p in quality_section(data, load_text(language)))
        shown = re.sub(r"<[^>]+>", " ", page)
        for value in ("deals", "stage_events"):  # file names are data values
            shown = shown.replace(f" {value} ", " ")
        assert expected in shown and not re.findall(pattern, shown), re.findall(pattern, shown)
