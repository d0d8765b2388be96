"""Chart layout a reader relies on: axes fitted to the data, legends outside the data area, value
labels on bars, every rep named in the funnel plot."""
from __future__ import annotations

import pandas as pd

from funnelkit.presentation import plots
def test_funnel_axis_is_fitted_to_the_largest_bar():
    funnel = pd.DataFrame({"label": ["A", "B", "C"], "reached": [161, 80, 20],
                           "pct_of_previous": [float("nan"), 80 / 161, 0.25], "cumulative_rate": [1, 80 / 161, 20 / 161]})
    ax = plots.funnel_chart(funnel, "t").axes[0]
    assert 161 <= ax.get_xlim()[1] <= 161 * 1.1  # was 1.9 × the maximum: an axis to 306


def test_pareto_bars_carry_their_values_and_a_fitted_axis():
    losses = pd.DataFrame({"reason": ["a", "b", "c"], "deals": [12, 5, 1]})
    ax = plots.loss_pareto(losses, "t").axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["12", "5", "1"]
    assert 12 < ax.get_ylim()[1] <= 12 * 1.2


def _legend_right_of_axes(fig, ax):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # positions exist once a canvas lays them out
    fig.draw(renderer)
    legend = ax.get_legend() or fig.legends[0]
    return legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1 - 1


def test_compare_bars_legend_is_outside_and_bars_are_labelled():
    table = pd.DataFrame({"rep": [0.30, 0.5], "team": [0.25, 0.4]}, index=["A → B", "B → C"])
    fig = plots.compare_bars(table, "t", "%")
    ax = fig.axes[0]
    assert _legend_right_of_axes(fig, ax)
    assert sorted(t.get_text() for t in ax.texts) == ["25%", "30%", "40%", "50%"]
    assert ax.get_ylim()[1] <= 60


def test_every_rep_is_named_when_few_and_the_ends_when_many():
    reps = pd.DataFrame({"rep": list("ABCDE"), "closed": [10, 20, 30, 40, 50],
                         "win_rate": [0.1, 0.2, 0.25, 0.3, 0.5], "flag": ["within"] * 5})
    assert plots.reps_to_label(reps) == set("ABCDE")
    many = pd.DataFrame({"rep": [f"R{i:02d}" for i in range(20)], "closed": range(10, 30),
                         "win_rate": [i / 40 for i in range(20)], "flag": ["within"] * 19 + ["above"]})
    named = plots.reps_to_label(many, highlight="R10")
    assert named == {"R00", "R01", "R02", "R17", "R18", "R19", "R10"}
    limits = pd.DataFrame({"n": [1, 60], "upper_95": [0.9, 0.4], "lower_95": [0.0, 0.1], "upper_99_8": [1, 0.45],
                           "lower_99_8": [0, 0.05]})
    fig = plots.funnel_plot(reps, limits, 0.25, "t")
    ax = fig.axes[0]
    assert {t.get_text() for t in ax.texts} == set("ABCDE")
    assert _legend_right_of_axes(fig, ax)
    assert ax.get_ylim()[1] <= 65  # fitted: top rate 50%, not 100%
