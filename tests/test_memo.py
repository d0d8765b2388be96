"""Results reused across the reports of a warm kernel: only for unchanged inputs, handed out as copies."""
from __future__ import annotations

import pandas as pd
import pytest

import funnelkit as fk
from funnelkit import datacache, memo
from funnelkit.inputs.io import open_dataset
from funnelkit.runner.report import Job, batches
from funnelkit.events.scope import Scope


@pytest.fixture()
def reuse():
    memo.enable()
    before = memo.stats()
    yield lambda: {k: memo.stats()[k] - before[k] for k in ("hits", "misses")}
    memo.enable(False)


def scope_of(data, **filters) -> Scope:
    return Scope.build(data, fk.load_config(), as_of="2024-06-30", **filters)


MUTATIONS = {
    "set a value": lambda d: d.deals.__setitem__("amount", 0.0),
    "set one cell": lambda d: d.deals.iloc.__setitem__((0, 0), "changed"),
    "drop rows in place": lambda d: d.deals.drop(index=d.deals.index[:5], inplace=True),  # deprecated, still possible
    "add a column": lambda d: d.deals.__setitem__("extra", 1),
    "rename columns": lambda d: setattr(d.deals, "columns", [*d.deals.columns[:-1], "renamed"]),
    "change events": lambda d: d.events.loc.__setitem__((slice(None), "stage"), "leads"),
    "append a note": lambda d: d.notes.append("changed"),
}


@pytest.mark.filterwarnings("ignore:The inplace keyword")
@pytest.mark.parametrize("change", MUTATIONS, ids=list(MUTATIONS))
def test_a_changed_copy_of_the_cached_data_is_no_longer_pristine(change):
    data = open_dataset("sample")
    assert datacache.pristine_key(data) is not None
    MUTATIONS[change](data)
    assert datacache.pristine_key(data) is None
    assert datacache.pristine_key(open_dataset("sample")) is not None  # the next copy is unchanged


def test_a_dataset_not_from_the_cache_has_no_key():
    assert datacache.pristine_key(fk.sample_dataset(n_deals=200)) is None


def test_frame_digest_follows_content_not_identity():
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert memo.frame_digest(frame) == memo.frame_digest(frame.copy())
    for other in (frame.assign(a=[1, 2, 4]), frame.rename(columns={"b": "c"}), frame.astype({"a": float}),
                  frame.set_axis([0, 1, 5]), frame.iloc[:2]):
        assert memo.frame_digest(other) != memo.frame_digest(frame)


def test_off_by_default_so_library_calls_compute_each_time():
    assert not memo.enabled()
    data = open_dataset("sample")
    before = memo.stats()
    fk.sales_metrics_of(scope_of(data, team="East"), "2024-Q2", by="rep")
    assert memo.stats() == before


def test_same_inputs_reuse_the_result_and_each_caller_gets_its_own_copy(reuse):
    first = fk.rep_summary_of(scope_of(open_dataset("sample"), team="East"), "2024-Q2")
    expected = first.table.copy()
    first.table.loc[:, "won"] = -1  # the first report changes what it got
    first.stages.append("changed")
    second = fk.rep_summary_of(scope_of(open_dataset("sample"), team="East"), "2024-Q2")
    assert reuse() == {"hits": 1, "misses": 1}
    pd.testing.assert_frame_equal(second.table, expected)
    assert "changed" not in second.stages
    # and the reused result equals a fresh computation
    memo.enable(False)
    fresh = fk.rep_summary_of(scope_of(open_dataset("sample"), team="East"), "2024-Q2")
    pd.testing.assert_frame_equal(second.table, fresh.table)
    assert second.team_rate == fresh.team_rate and second.window == fresh.window


def test_changed_data_or_other_arguments_compute_afresh(reuse):
    fk.sales_metrics_of(scope_of(open_dataset("sample"), team="East"), "2024-Q2", by="rep")
    changed = open_dataset("sample")
    changed.deals["amount"] = changed.deals["amount"] * 2
    doubled = fk.sales_metrics_of(scope_of(changed, team="East"), "2024-Q2", by="rep")
    fk.sales_metrics_of(scope_of(open_dataset("sample"), team="North"), "2024-Q2", by="rep")
    fk.sales_metrics_of(scope_of(open_dataset("sample"), team="East"), "2024-06", by="rep")
    assert reuse() == {"hits": 0, "misses": 3}  # the changed data is not even looked up
    memo.enable(False)
    plain = fk.sales_metrics_of(scope_of(open_dataset("sample"), team="East"), "2024-Q2", by="rep")
    assert doubled["open_pipeline"].sum() == pytest.approx(2 * plain["open_pipeline"].sum())


def test_frames_are_keyed_by_content(reuse):
    card = fk.load_scorecard()
    deals = scope_of(open_dataset("sample"), team="East").open_deals
    fk.score_deals(deals, card)
    fk.score_deals(deals.copy(), card)  # equal content: reused
    fk.score_deals(deals.assign(amount=deals["amount"] + 1), card)  # other content: computed
    fk.score_deals(deals, card.model_copy(update={"tiers": {"high": 70, "medium": 50}}))  # another scorecard: computed
    assert reuse() == {"hits": 1, "misses": 3}


def test_the_store_is_bounded(reuse, monkeypatch):
    monkeypatch.setattr(memo, "MAX_ENTRIES", 3)
    data = open_dataset("sample")
    for month in ("2024-01", "2024-02", "2024-03", "2024-04", "2024-05"):
        fk.sales_metrics_of(scope_of(data), month)
    assert memo.stats()["kept"] == 3


def test_the_store_is_bounded_by_size(reuse, monkeypatch):
    data = open_dataset("sample")
    months = ("2024-01", "2024-02", "2024-03", "2024-04", "2024-05")
    one = memo.approx_bytes(fk.sales_metrics_of.uncached(scope_of(data), months[0]))
    assert one > 0
    monkeypatch.setattr(memo, "MAX_BYTES", int(2.5 * one))  # room for two such results, not three
    for month in months:
        fk.sales_metrics_of(scope_of(data), month)
    kept = memo.stats()
    assert 1 <= kept["kept"] <= 2 and kept["bytes"] <= memo.MAX_BYTES
    assert kept["bytes"] == sum(memo.approx_bytes(v) for v in memo._store.values())  # the running total is right
    fk.sales_metrics_of(scope_of(data), months[-1])  # the newest is still kept: reused
    assert reuse()["hits"] == 1


def test_a_result_over_the_size_bound_is_not_kept(reuse, monkeypatch):
    monkeypatch.setattr(memo, "MAX_BYTES", 100)
    data = open_dataset("sample")
    fk.sales_metrics_of(scope_of(data), "2024-01")
    fk.sales_metrics_of(scope_of(data), "2024-01")
    assert reuse() == {"hits": 0, "misses": 2} and memo.stats()["kept"] == 0 and memo.stats()["bytes"] == 0


def test_approx_bytes_counts_what_a_result_holds():
    import sys

    import numpy as np

    frame = pd.DataFrame({"a": np.arange(1000, dtype="int64")}, index=pd.Index(np.arange(1000, dtype="int64")))
    assert memo.approx_bytes(frame) == 16_000  # 1,000 int64 values and 1,000 int64 labels
    assert memo.approx_bytes("abc") == 3 and memo.approx_bytes(b"x" * 1000) == 1000
    words = pd.DataFrame({"w": ["x" * 100] * 100}, index=pd.Index(np.arange(100, dtype="int64")), dtype=object)
    assert memo.approx_bytes(words) == 100 * 8 + 100 * sys.getsizeof("x" * 100) + 100 * 8  # pointers, strings, labels
    empty = words.iloc[:0]  # an object block with its columns and no rows
    assert memo.approx_bytes(empty) == 0 and memo.approx_bytes(empty["w"]) == 0
    text = "y" * 500
    assert memo.approx_bytes([text, text]) == sys.getsizeof([text, text]) + 500  # the same object counts once


def test_batches_keep_a_reports_periods_together_in_first_seen_order():
    jobs = [Job(nb, period, team, rep, {}, f"{period}/{team}/{rep}/{nb}")
            for nb in ("a", "b") for period in ("2024-Q2", "2024-06") for team, rep in (("East", "x"), ("East", "y"))]
    grouped = batches(jobs)
    assert [[(j.notebook, j.rep, j.period) for j in b] for b in grouped] == [
        [("a", "x", "2024-Q2"), ("a", "x", "2024-06")], [("a", "y", "2024-Q2"), ("a", "y", "2024-06")],
        [("b", "x", "2024-Q2"), ("b", "x", "2024-06")], [("b", "y", "2024-Q2"), ("b", "y", "2024-06")]]
    assert sorted(j.relpath for b in grouped for j in b) == sorted(j.relpath for j in jobs)


def test_calls_inside_a_reused_analysis_are_not_kept_on_their_own(reuse):
    fk.rep_summary_of(scope_of(open_dataset("sample"), team="East"), "2024-Q2")  # one cohort funnel per rep inside
    assert reuse() == {"hits": 0, "misses": 1} and memo.stats()["kept"] == 1


def _pareto_losses(deals: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"reason": ["No budget", "Lost to competitor", "No budget"], "deals": [deals, 2, 1]})


def test_a_chart_is_drawn_once_per_content_and_is_the_figure_it_stands_for(reuse):
    from funnelkit.presentation import plots, present

    first = present.chart_html(plots.loss_pareto, _pareto_losses(), "Losses", alt="Losses").data
    again = present.chart_html(plots.loss_pareto, _pareto_losses(), "Losses", alt="Losses").data
    assert reuse() == {"hits": 1, "misses": 1} and again == first
    # the same bytes as drawing the figure and saving it, as figure_html does
    assert first == present.figure_html(plots.loss_pareto(_pareto_losses(), "Losses"), "Losses").data


def test_a_changed_input_or_setting_draws_a_new_chart(reuse):
    import matplotlib

    from funnelkit.presentation import plots, present

    base = present.chart_html(plots.loss_pareto, _pareto_losses(), "Losses").data
    charts = [present.chart_html(plots.loss_pareto, _pareto_losses(deals=9), "Losses").data,  # other data
              present.chart_html(plots.loss_pareto, _pareto_losses(), "Other title").data,  # other argument
              present.chart_html(plots.loss_pareto, _pareto_losses(), "Losses", dpi=60).data]  # other resolution
    with matplotlib.rc_context({"axes.facecolor": "#ffeeee"}):  # a report changed a matplotlib setting
        charts.append(present.chart_html(plots.loss_pareto, _pareto_losses(), "Losses").data)
    assert reuse() == {"hits": 0, "misses": 5}
    assert len({base, *charts}) == 5


def test_a_chart_of_a_notebook_function_is_drawn_each_time(reuse):
    from funnelkit.presentation import plots, present

    def draw(losses, title):  # defined in a report: the next one may define another of that name
        return plots.loss_pareto(losses, title)

    for _ in range(2):
        present.chart_html(draw, _pareto_losses(), "Losses")
    assert reuse() == {"hits": 0, "misses": 0}


def test_the_report_context_words_loss_reasons_once_and_keeps_the_data_a_key(reuse):
    contexts = [fk.report_context("conversion", data="sample", period="2024-Q2", as_of="2024-06-30", language=lang)
                for lang in ("en", "en", "zh")]
    keys = [datacache.pristine_key(c.data) for c in contexts]
    assert None not in keys and keys[0] == keys[1] != keys[2]
    assert contexts[0].data is not contexts[1].data  # each report its own copy
    reasons = {c.text.language: set(c.data.deals["lost_reason"].dropna()) for c in contexts}
    assert "价格过高" in reasons["zh"] and "价格过高" not in reasons["en"]  # worded in each report's language


def listed_copies(table: pd.DataFrame) -> list:
    """The weak references pandas keeps to the copies of ``table``'s buffers (copy-on-write)."""
    axes = [axis._references for axis in (table.index, table.columns) if axis._references is not None]
    return [ref for refs in [block.refs for block in table._mgr.blocks] + axes for ref in refs.referenced_blocks]


def test_dead_copies_of_kept_results_and_data_are_forgotten(reuse):
    scope = scope_of(open_dataset("sample"), team="East")
    kept = []
    for _ in range(6):  # six hand-outs of one kept result; one copy kept alive
        kept.append(fk.sales_metrics_of(scope, "2024-Q2", by="rep"))
        kept = kept[:1]
    assert reuse() == {"hits": 5, "misses": 1}
    (result,) = memo._store.values()
    before = listed_copies(result)
    dead = sum(ref() is None for ref in before)
    assert dead >= 5 * len(result._mgr.blocks)  # each hand-out listed one copy per block
    assert memo.forget_dead_copies() == dead
    after = listed_copies(result)
    assert all(ref() is not None for ref in after) and len(after) == len(before) - dead
    assert any(ref() is kept[0]._mgr.blocks[0] for ref in after)  # a live copy stays listed: still copy-on-write
    pd.testing.assert_frame_equal(fk.sales_metrics_of(scope, "2024-Q2", by="rep"), kept[0])

    data = open_dataset("sample")
    del data, scope
    import gc
    gc.collect()
    assert datacache.forget_dead_copies() > 0
    for table in (d for loaded in datacache._loaded.values() for d in (loaded.deals, loaded.events)):
        assert all(ref() is not None for ref in listed_copies(table))
