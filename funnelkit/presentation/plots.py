"""Charts for the reports (matplotlib/seaborn), readable with Chinese labels.

Each function returns a :class:`matplotlib.figure.Figure` built without pyplot, so nothing is
shown twice in a notebook (``display(fig)`` shows it) and no figure is left open. The CJK font
is applied while the figure is built, through :func:`font_context`.
"""
from __future__ import annotations

import contextlib
import textwrap
from functools import lru_cache
from typing import Iterator

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Fonts with Chinese glyphs, best first. The CI and the set-up script install WenQuanYi Micro Hei.
CJK_FONTS = [
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
    "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC", "Arial Unicode MS",
]
PALETTE = "crest"  # seaborn's sequential palette, for the heatmaps
# seaborn's "crest" and "deep" colours, fixed here so that charts without a heatmap need not import
# seaborn (and with it pyplot): report kernels start faster.
CREST = ["#7dba91", "#59a590", "#40908e", "#287a8c", "#1c6488", "#254b7f"]
DEEP = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


class ChartFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG when returned in Jupyter (a figure built
    without pyplot otherwise shows as ``<Figure size 800x450 with 1 Axes>``)."""

    def _repr_png_(self) -> bytes:
        import io

        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def use_cjk_font() -> str | None:
    """Make matplotlib (and pandas' ``.plot``) render Chinese in the analyst's own charts: put the
    first installed CJK font of :data:`CJK_FONTS` in front of the default family. Returns the font
    used, or ``None`` when no CJK font is installed (see the README's set-up section)."""
    font = cjk_font()
    if font is not None:
        matplotlib.rcParams["font.family"] = [font, "DejaVu Sans"]
        matplotlib.rcParams["axes.unicode_minus"] = False
    return font


def settings_key() -> str:
    """A digest of matplotlib's current settings (``rcParams`` but the backend): a chart is
    only reused under the settings it was drawn with (:func:`funnelkit.presentation.present.chart_html`)."""
    import hashlib

    settings = sorted((k, repr(v)) for k, v in matplotlib.rcParams.items() if k != "backend")
    return hashlib.blake2b(repr(settings).encode(), digest_size=16).hexdigest()


def _spread(colors: list[str], n: int) -> list[str]:
    """``n`` colours taken evenly from ``colors``."""
    return [colors[round(i * (len(colors) - 1) / max(n - 1, 1))] for i in range(n)]


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The first installed font from :data:`CJK_FONTS`, or ``None`` when there is none."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


@contextlib.contextmanager
def font_context() -> Iterator[None]:
    """Matplotlib settings under which Chinese text renders (CJK font first, DejaVu as fallback)
    and any text is shown as written: no mathtext, so a ``$`` in a name is a dollar sign."""
    family = [f for f in (cjk_font(), "DejaVu Sans") if f]
    with matplotlib.rc_context({"font.family": family, "axes.unicode_minus": False, "text.parse_math": False}):
        yield


def _pct(x: float) -> str:
    return "–" if pd.isna(x) else f"{x:.1%}"


def fitted_limit(top: float, headroom: float = 0.12) -> float:
    """Upper axis limit fitted to the data: ``top`` plus ``headroom`` of it (room for the value
    labels), at least 1, so a maximum of 161 gets an axis to about 180, not 300."""
    return max(float(top) * (1 + headroom), 1.0) if np.isfinite(top) else 1.0


def legend_outside(ax, **kwargs) -> None:
    """The legend to the right of the plotting area, so it never covers bars, lines or points
    (the PNG is saved with ``bbox_inches="tight"``, which keeps it in the picture)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False, **kwargs)


def label_bars(ax, bars, texts: list[str], fontsize: int = 8) -> None:
    """Write each bar's value on top of it (``texts`` in bar order)."""
    ax.bar_label(bars, labels=texts, padding=2, fontsize=fontsize)


def reps_to_label(reps: pd.DataFrame, highlight: str | None = None, most: int = 12, each_end: int = 3) -> set[str]:
    """Which reps a scatter names: all of them when there are at most ``most``; otherwise the
    ``each_end`` highest and lowest win rates, every flagged rep and the highlighted one."""
    if len(reps) <= most:
        return set(reps["rep"])
    ranked = reps.sort_values("win_rate", kind="stable")
    chosen = set(ranked["rep"].head(each_end)) | set(ranked["rep"].tail(each_end))
    chosen |= set(reps.loc[reps["flag"] != "within", "rep"])
    return chosen | ({highlight} if highlight else set())


def funnel_chart(funnel: pd.DataFrame, title: str, labels: dict[str, str] | None = None) -> Figure:
    """Horizontal funnel of ``reached`` per stage, each bar labelled with its count,
    % of the previous stage and % of the first stage.

    ``labels`` translates the annotation words (keys ``deals``, ``of_previous``, ``of_first``).
    A ``step_text`` column (:func:`funnelkit.presentation.story.funnel_chart_frame`) replaces "% of previous"
    with the step's label and rate, or "maturing (N open)".
    """
    words = {"deals": "deals", "of_previous": "of previous", "of_first": "of first"} | (labels or {})
    with font_context():
        fig = ChartFigure(figsize=(8, 0.7 * len(funnel) + 1.2))
        ax = fig.subplots()
        colors = _spread(CREST, len(funnel))
        y = np.arange(len(funnel))[::-1]
        ax.barh(y, funnel["reached"], color=colors)
        ax.set_yticks(y, funnel["label"])
        top = max(int(funnel["reached"].max()), 1)
        for yi, row in zip(y, funnel.itertuples()):
            text = f"{row.reached:,} {words['deals']}"
            step_text = getattr(row, "step_text", "")
            if step_text:  # the step into this bar, labelled and worded by the caller (maturing or a rate)
                text += f" · {step_text} · {_pct(row.cumulative_rate)} {words['of_first']}"
            elif not pd.isna(row.pct_of_previous):
                text += f" · {_pct(row.pct_of_previous)} {words['of_previous']} · {_pct(row.cumulative_rate)} {words['of_first']}"
            ax.text(row.reached + top * 0.01, yi, text, va="center", fontsize=9, clip_on=False)
        ax.set_xlim(0, fitted_limit(top, 0.05))  # the labels run on into the right margin
        ax.set_xlabel(words.get("axis", "Deals (count)"))
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
    return fig


def loss_pareto(losses: pd.DataFrame, title: str, labels: dict[str, str] | None = None) -> Figure:
    """Pareto chart of lost deals by reason: bars (count) and the cumulative share line (%)."""
    words = {"loss_axis": "Lost deals (count)", "cumulative": "Cumulative share (%)"} | (labels or {})
    by_reason = losses.groupby("reason")["deals"].sum().sort_values(ascending=False)
    with font_context():
        fig = ChartFigure(figsize=(8, 4))
        ax = fig.subplots()
        if by_reason.empty:
            ax.text(0.5, 0.5, words.get("empty", "No lost deals in this period"), ha="center", transform=ax.transAxes)
            ax.set_axis_off()
        else:
            x = np.arange(len(by_reason))
            bars = ax.bar(x, by_reason.to_numpy(), color=CREST[2])
            label_bars(ax, bars, [f"{int(v):,}" for v in by_reason.to_numpy()])
            ax.set_ylim(0, fitted_limit(by_reason.max()))
            ax.set_xticks(x, by_reason.index, rotation=30, ha="right")
            ax.set_ylabel(words["loss_axis"])
            cum = by_reason.cumsum() / by_reason.sum() * 100
            ax2 = ax.twinx()
            ax2.plot(x, cum.to_numpy(), color="#c0392b", marker="o")
            ax2.set_ylim(0, 105)
            ax2.set_ylabel(words["cumulative"])
        ax.set_title(title)
        fig.tight_layout()
    return fig


def km_curves(curves: pd.DataFrame, title: str, labels: dict[str, str] | None = None) -> Figure:
    """Kaplan–Meier curves, one per ``group`` of the tidy ``curves`` frame (``group, days,
    survival, low, high``): the share of stays still in the stage after t days, with its band."""
    words = {"x": "Days in stage", "y": "Still in stage (%)"} | (labels or {})
    with font_context():
        fig = ChartFigure(figsize=(9, 4.5))
        ax = fig.subplots()
        groups = list(dict.fromkeys(curves["group"]))
        for color, group in zip(DEEP * 2, groups):
            c = curves[curves["group"] == group]
            ax.step(c["days"], c["survival"] * 100, where="post", color=color, label=group)
            ax.fill_between(c["days"], c["low"].fillna(c["survival"]) * 100, c["high"].fillna(c["survival"]) * 100,
                            step="post", color=color, alpha=0.15, linewidth=0)
        ax.axhline(50, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel(words["x"])
        ax.set_ylabel(words["y"])
        ax.set_ylim(0, 102)
        ax.set_xlim(0, max(float(curves["days"].quantile(0.98)), 1.0))
        legend_outside(ax)
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
    return fig


def heatmap(table: pd.DataFrame, title: str, xlabel: str, ylabel: str, fmt: str = ".0f",
            cbar_label: str = "") -> Figure:
    """An annotated heatmap of a wide table (rows × columns of numbers; NaN cells stay blank).

    Rows and columns with no value are left out (a caller shows a sentence instead of an empty table).
    """
    import seaborn as sns

    table = table.dropna(how="all").dropna(axis=1, how="all")
    if table.empty:
        raise ValueError("heatmap: the table has no value to show")

    with font_context():
        fig = ChartFigure(figsize=(8, 0.35 * len(table) + 1.8))
        ax = fig.subplots()
        sns.heatmap(table, annot=True, fmt=fmt, cmap=PALETTE, ax=ax, cbar_kws={"label": cbar_label},
                    annot_kws={"fontsize": 8})
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        fig.tight_layout()
    return fig


def sweep_lines(counts: pd.DataFrame, current: dict[str, float], labels: dict[str, str], title: str,
                words: dict[str, str] | None = None) -> Figure:
    """Small multiples, one per ``dimension`` of the tidy ``counts`` (``dimension, weight, tier,
    deals``): deals per tier as the weight varies, the current weight marked by a dashed line."""
    words = {"weight": "Weight (%)", "deals": "Deals (count)", "current": "current"} | (words or {})
    dims = list(dict.fromkeys(counts["dimension"]))
    cols = min(3, len(dims))
    rows = int(np.ceil(len(dims) / cols))
    colors = {"high": "#2f855a", "medium": "#d69e2e", "low": "#c53030"}
    with font_context():
        fig = ChartFigure(figsize=(3.4 * cols, 2.8 * rows + 0.6))
        axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True)).ravel()
        for ax, dim in zip(axes, dims):
            here = counts[counts["dimension"] == dim]
            for tier, color in colors.items():
                t = here[here["tier"] == tier]
                ax.plot(t["weight"] * 100, t["deals"], color=color, label=labels.get(tier, tier))
            ax.axvline(current[dim] * 100, color="grey", linestyle="--", linewidth=1)
            ax.set_title(labels.get(dim, dim), fontsize=10)
            ax.set_xlabel(words["weight"])
            ax.spines[["top", "right"]].set_visible(False)
        for ax in axes[len(dims):]:
            ax.set_axis_off()
        axes[0].set_ylabel(words["deals"])
        handles, names = axes[0].get_legend_handles_labels()
        fig.suptitle(title)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        # below the small multiples, so no panel's lines are covered
        fig.legend(handles, names, loc="lower center", ncol=len(names), frameon=False, fontsize=9)
    return fig


def funnel_plot(reps: pd.DataFrame, limits: pd.DataFrame, team_rate: float, title: str,
                highlight: str | None = None, words: dict[str, str] | None = None) -> Figure:
    """Win rate (%) against closed deals per rep, with the team rate and its 95% / 99.8% limits.

    ``reps``: ``rep, closed, win_rate, flag``; ``limits`` from :func:`funnelkit.analyses.reps.funnel_limits`.
    ``highlight`` names a rep drawn larger and labelled.
    """
    words = {"x": "Closed deals (count)", "y": "Win rate (%)", "team": "team rate", "l95": "95% limits",
             "l998": "99.8% limits"} | (words or {})
    colors = {"above": "#2f855a", "below": "#c53030", "within": "#4a5568"}
    with font_context():
        fig = ChartFigure(figsize=(9, 4.5))
        ax = fig.subplots()
        ax.plot(limits["n"], limits["upper_95"] * 100, color="#a0aec0", linestyle="--", label=words["l95"])
        ax.plot(limits["n"], limits["lower_95"] * 100, color="#a0aec0", linestyle="--")
        ax.plot(limits["n"], limits["upper_99_8"] * 100, color="#718096", linestyle=":", label=words["l998"])
        ax.plot(limits["n"], limits["lower_99_8"] * 100, color="#718096", linestyle=":")
        ax.axhline(team_rate * 100, color="#2a6f97", linewidth=1, label=words["team"])
        named = reps_to_label(reps, highlight)
        for row in reps.itertuples():
            big = row.rep == highlight
            ax.scatter(row.closed, row.win_rate * 100, s=90 if big else 30, color=colors.get(row.flag, "#4a5568"),
                       edgecolor="black" if big else "none", zorder=3)
            if row.rep in named:
                ax.annotate(row.rep, (row.closed, row.win_rate * 100), textcoords="offset points", xytext=(6, 4),
                            fontsize=9)
        ax.set_xlabel(words["x"])
        ax.set_ylabel(words["y"])
        # room above 100% for the name of a rep who won every deal, below the title
        # the upper 95% line at the smallest volume shown too: fitted to the dots alone, the axis cut
        # off the funnel's upper half, and only the lower limits were drawn
        shown = limits.loc[limits["n"] >= float(reps["closed"].min()), "upper_95"] if len(reps) else limits["upper_95"]
        upper = float(shown.max()) if len(shown) and shown.notna().any() else 0.0
        ax.set_ylim(0, min(110.0, fitted_limit(100 * max(float(reps["win_rate"].max()), team_rate, upper), 0.25)))
        ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= min(100.0, ax.get_ylim()[1])])
        ax.set_xlim(0, fitted_limit(float(reps["closed"].max()), 0.1))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # closed deals are whole: no 2.5 on the axis
        legend_outside(ax, fontsize=8)
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
    return fig


def tick_label(label: str, categories: int, axis_chars: int = 80) -> str:
    """``label`` wrapped onto lines that fit its share of an axis about ``axis_chars`` characters
    wide (``"Appointment Scheduled → Qualified To Buy"`` ran into its neighbours under five bars);
    a CJK character counts twice."""
    room = max(8, axis_chars // max(categories, 1))
    wide = sum(1 for c in label if ord(c) > 0x2E7F)  # CJK glyphs are about twice as wide
    width = max(4, room // 2) if wide > len(label) / 2 else room
    return textwrap.fill(label, width=width, break_long_words=True, break_on_hyphens=False)


def compare_bars(table: pd.DataFrame, title: str, ylabel: str) -> Figure:
    """Grouped bars of a wide table (rows = categories on the x axis, columns = series), in %."""
    with font_context():
        fig = ChartFigure(figsize=(9, 4))
        ax = fig.subplots()
        x = np.arange(len(table))
        width = 0.8 / max(len(table.columns), 1)
        for i, (column, color) in enumerate(zip(table.columns, DEEP * 2)):
            bars = ax.bar(x + i * width - 0.4 + width / 2, table[column] * 100, width, label=column, color=color)
            label_bars(ax, bars, ["" if pd.isna(v) else f"{v:.0%}" for v in table[column]], fontsize=7)
        ax.set_xticks(x, [tick_label(str(v), len(table)) for v in table.index])
        ax.set_ylabel(ylabel)
        top = np.nanmax(table.to_numpy(dtype=float)) * 100 if table.size and np.isfinite(table.to_numpy(dtype=float)).any() else 0
        ax.set_ylim(0, min(fitted_limit(top, 0.15), 105))
        legend_outside(ax)
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
    return fig


def evidence_bars(bins: pd.DataFrame, overall: float, title: str, words: dict[str, str]) -> Figure:
    """Win rate (%) of closed deals per bin of one fitted field (``label``, ``deals``, ``win_rate``,
    ``points``), each bar labelled with its points and deals, and the overall win rate as a line.

    ``words`` gives ``win_rate`` (axis), ``points``, ``deals`` and ``overall`` (line legend).
    """
    with font_context():
        fig = Figure(figsize=(8, 3.2))
        ax = fig.subplots()
        x = np.arange(len(bins))
        colors = [CREST[min(int(p), 5)] for p in bins["points"]]
        ax.bar(x, bins["win_rate"] * 100, color=colors)
        for xi, row in zip(x, bins.itertuples()):
            ax.annotate(f"{int(row.points)} {words['points']}\n{int(row.deals):,} {words['deals']}",
                        (xi, row.win_rate * 100), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")
        ax.axhline(overall * 100, color=DEEP[3], linestyle="--", linewidth=1, label=f"{words['overall']} {overall:.1%}")
        labels = [str(v).replace("\n", " ") for v in bins["label"]]  # data text on one line
        labels = [v if len(v) <= 24 else v[:23] + "…" for v in labels]
        ax.set_xticks(x, labels, rotation=20 if len(bins) > 3 else 0, ha="right" if len(bins) > 3 else "center",
                      fontsize=8)
        ax.set_ylabel(words["win_rate"])
        ax.set_ylim(0, max(float(bins["win_rate"].max()) * 100 * 1.3, overall * 100 * 1.3, 1))
        legend_outside(ax, fontsize=8)
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
    return fig


TIER_COLORS = {"high": "#c44e52", "medium": "#dd8452", "low": "#4c72b0", "unscored": "#8c8c8c"}  # as report.css's badges


def stacked_value_bars(table: pd.DataFrame, title: str, words: dict[str, str], series: dict[str, str],
                       scale: float = 1e6) -> Figure:
    """Stacked bars of money per row of ``table`` (rows = x categories, e.g. stage labels; columns =
    tier keys, stacked in column order and coloured by :data:`TIER_COLORS`), in units of ``scale``.
    Each bar carries its total; the legend (``series``: column → name) sits outside the plot area.

    ``words`` gives ``x`` and ``y`` (axis titles, the y one with its currency unit).
    """
    with font_context():
        fig = ChartFigure(figsize=(8.5, 4))
        ax = fig.subplots()
        x = np.arange(len(table))
        bottom = np.zeros(len(table))
        for column in table.columns:
            values = table[column].fillna(0).to_numpy(dtype=float) / scale
            if values.any():
                ax.bar(x, values, 0.6, bottom=bottom, label=series.get(column, column),
                       color=TIER_COLORS.get(column, DEEP[len(bottom) % len(DEEP)]))
            bottom = bottom + values
        for xi, total in zip(x, bottom):
            ax.annotate(f"{total:,.1f}", (xi, total), ha="center", va="bottom", fontsize=9, xytext=(0, 2),
                        textcoords="offset points")
        ax.set_xticks(x, [str(v) for v in table.index])
        ax.set_xlabel(words["x"])
        ax.set_ylabel(words["y"])
        ax.set_ylim(0, max(float(bottom.max()) * 1.12, 1e-9) if len(bottom) else 1)
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
    return fig
