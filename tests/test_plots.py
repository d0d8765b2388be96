"""Charts: Chinese labels must render with a real CJK font (no empty boxes) on a fresh machine."""
import warnings

import pandas as pd

import funnelkit as fk
from funnelkit.presentation import plots, present
def test_a_cjk_font_is_installed():
    # Fails (does not skip) where set-up did not install a CJK font: reports would show boxes.
    assert plots.cjk_font() is not None, "no CJK font found; run .ci/install"


def test_chinese_labels_render_without_missing_glyphs(sample, config):
    funnel = fk.cohort_funnel(sample, config, "2024-Q1", language="zh")
    assert funnel["label"].iloc[0] == "潜在客户"
    losses = fk.loss_reasons(sample, config, "2024-Q1")
    words = present.chart_words(present.load_text("zh"))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*missing from font.*")
        for fig in (plots.funnel_chart(funnel, "销售漏斗", words), plots.loss_pareto(losses, "流失原因", words)):
            fig.canvas.draw()  # a missing glyph warns at draw time
    labels = [t.get_text() for t in plots.funnel_chart(funnel, "t", words).axes[0].get_yticklabels()]
    assert labels == ["潜在客户", "意向客户", "商机客户", "谈判阶段", "成交客户"]


def test_funnel_chart_annotates_counts_and_rates(sample, config):
    funnel = fk.cohort_funnel(sample, config, "2024-Q1").assign(label=lambda f: f["stage"])
    texts = [t.get_text() for t in plots.funnel_chart(funnel, "t").axes[0].texts]
    second = funnel.iloc[1]
    assert texts[1] == (f"{second['reached']:,} deals · {second['pct_of_previous']:.1%} of previous · "
                        f"{second['cumulative_rate']:.1%} of first")


def test_number_formats():
    assert present.fmt_pct(0.33333) == "33.3%"
    assert present.fmt_int(1234567) == "1,234,567"
    assert present.fmt_money(1200000, "CNY") == "¥1,200,000"
    assert present.fmt_pct(pd.NA) == "–"
