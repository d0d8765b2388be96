"""The scoped view: the per-event step runs once per report; result objects; the analyst's API checks."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.analyses import sensitivity
from funnelkit.events import aggregate
from funnelkit.presentation import present
from funnelkit.analyses.scorecard import load_scorecard, score_deals

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture
def count_calls(monkeypatch):
    """Replace the per-event functions everywhere funnelkit refers to them with counting wrappers."""
    calls = {"reach_table": 0, "stage_stays": 0, "open_deals": 0}
    for name in calls:
        original = getattr(aggregate, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        for module in [m for n, m in sys.modules.items() if n.startswith("funnelkit") and m is not None]:
            if getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, counted)
    return calls


def run_notebook_code(name: str, **parameters) -> dict:
    """Execute a notebook's code cells in one namespace, as papermill would with ``parameters``."""
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    namespace: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        exec("".join(cell["source"]), namespace)
        if "parameters" in cell["metadata"].get("tags", []):
            namespace.update(parameters)
    return namespace


def test_conversion_report_computes_the_per_event_step_once(count_calls, sample, monkeypatch):
    monkeypatch.setattr(fk.inputs.io, "sample_dataset", lambda config=None: sample)
    namespace = run_notebook_code("conversion", team="East", period="2024-Q2")
    # the cohort funnel, Table 1, loss reasons, the period review and the rep roll-up all ran …
    assert namespace["funnel"].cohort_size > 0 and len(namespace["summary"]) == 5
    # … on one reach table and one stays table
    assert count_calls["reach_table"] == 1
    assert count_calls["stage_stays"] == 1


def test_rep_report_shares_the_team_tables(count_calls, sample, monkeypatch):
    monkeypatch.setattr(fk.inputs.io, "sample_dataset", lambda config=None: sample)
    run_notebook_code("rep_performance", team="East", rep="Li Na", period="2024-Q2")
    assert count_calls == {"reach_table": 1, "stage_stays": 1, "open_deals": 1}


def test_scope_tables_equal_the_direct_computation(sample, config):
    scope = fk.Scope.build(sample, config, team="North", pipeline="new_business")
    direct = fk.reach_table(sample, config, team="North", pipeline="new_business")
    pd.testing.assert_frame_equal(scope.reach.reset_index(drop=True), direct)
    stays = fk.stage_stays(sample, config)
    want = stays[stays["deal_id"].isin(direct["deal_id"])]
    pd.testing.assert_frame_equal(scope.stays.reset_index(drop=True), want.reset_index(drop=True))
    assert scope.stages == config.stage_keys("new_business")


def test_reach_columns_are_the_scopes_reach_narrowed_to_them(sample, config):
    whole = fk.Scope.build(sample, config)
    columns = ["reached_leads", "furthest_index", "status"]
    for team in ("North", "East"):
        fresh = whole.narrow(team=team)
        got = fresh.reach_columns(columns)  # before the scope's own reach is computed
        assert "reach" not in fresh.__dict__
        pd.testing.assert_frame_equal(got, fresh.reach[columns])
        pd.testing.assert_frame_equal(fresh.reach_columns(columns), got)  # after it
        assert len(got) == int((sample.deals["team"] == team).sum()) > 0


def test_result_objects_are_frozen_documented_and_display(sample, config):
    funnel = fk.cohort_funnel(sample, config, "2024-Q2", team="East")
    with pytest.raises(dataclasses.FrozenInstanceError):
        funnel.cohort_size = 0
    assert {f.name for f in dataclasses.fields(funnel)} == {
        "table", "period", "as_of", "cohort_size", "median_age_days", "open_deals"}
    assert funnel.cohort_size == funnel["reached"].iloc[0] and len(funnel) == 5 and "reached" in funnel
    html = funnel._repr_html_()
    assert "cohort_size" in html and "<table" in html
    assert "Scope" in fk.Scope.build(sample, config)._repr_html_()
    assert "deals" in sample._repr_html_() and len(repr(sample).splitlines()) == 1


# ---------------------------------------------------------------- the analyst's misuses (issue 19 item 7)


def test_unknown_team_lists_valid_ones_with_did_you_mean(sample, config):
    with pytest.raises(ValueError, match=r"unknown team 'south'\. Did you mean 'South'\? Valid: East, North, South"):
        fk.cohort_funnel(sample, config, "2024-Q2", team="south")
    with pytest.raises(ValueError, match=r"unknown team 'Esat'\. Did you mean 'East'"):
        fk.period_table(sample, config, "2024-Q2", team="Esat")


def test_rep_outside_the_team_is_a_clear_error(sample, config):
    east = sorted(sample.deals.loc[sample.deals["team"] == "East", "rep"].unique())
    other = sample.deals.loc[sample.deals["team"] == "South", "rep"].iloc[0]
    with pytest.raises(ValueError, match=rf"unknown rep '{other}' in team 'East'.*Valid: {', '.join(east)}"):
        fk.cohort_funnel(sample, config, "2024-Q2", team="East", rep=other)
    with pytest.raises(ValueError, match=r"Did you mean 'Li Na'"):
        fk.cohort_funnel(sample, config, "2024-Q2", rep="li na")


def test_as_of_as_a_string_means_the_end_of_that_day(sample, config):
    text = fk.cohort_funnel(sample, config, "2024-Q2", as_of="2024-05-31")
    stamp = fk.cohort_funnel(sample, config, "2024-Q2", as_of=pd.Timestamp("2024-06-01"))
    assert text.as_of == pd.Timestamp("2024-06-01")
    pd.testing.assert_frame_equal(text.table, stamp.table)


def test_filters_are_keyword_only(sample, config):
    with pytest.raises(TypeError):
        fk.cohort_funnel(sample, config, "2024-Q2", None, "East")  # as_of, team given by position


def test_wrong_argument_types_name_the_expected_type(sample, config):
    with pytest.raises(TypeError, match=r"time_in_stage takes the stays table .*got Dataset"):
        fk.time_in_stage(sample)
    with pytest.raises(TypeError, match=r"data must be a Dataset .*got DataFrame"):
        fk.cohort_funnel(sample.deals, config, "2024-Q2")
    with pytest.raises(TypeError, match=r"config must be a FunnelConfig .*got str"):
        fk.cohort_funnel(sample, "params/funnel.yaml", "2024-Q2")
    with pytest.raises(TypeError, match=r"as_of must be a date string .*got int"):
        fk.cohort_funnel(sample, config, "2024-Q2", as_of=20240531)
    with pytest.raises(TypeError, match=r"deals must be a table of deals .*got Dataset"):
        score_deals(sample, load_scorecard())


def test_sales_metrics_takes_config_like_the_others_and_never_prints_it(sample, config):
    new = fk.sales_metrics(sample, config, "2024-Q2", team="East")
    old = fk.sales_metrics(sample, "2024-Q2", team="East")
    pd.testing.assert_frame_equal(new, old)
    with pytest.raises(TypeError) as error:
        fk.sales_metrics(sample, config, config)
    assert "period must be a month like '2024-06'" in str(error.value) and "pipelines" not in str(error.value)


def test_unknown_weight_key_lists_the_dimensions(sample, config):
    deals = fk.open_deals(sample, config)
    with pytest.raises(ValueError, match=r"unknown scorecard dimension 'competitive_barrier'\. "
                                         r"Did you mean 'competitive_position'\?.*Valid: amount, competitive_position"):
        score_deals(deals, load_scorecard(), weights={"competitive_barrier": 0.3})


def test_partial_weights_rescale_the_others_like_a_scenario_set(sample, config):
    card = load_scorecard()
    deals = fk.open_deals(sample, config)
    partial = score_deals(deals, card, weights={"competitive_position": 0.3})
    scenario = score_deals(deals, card, scenario="competitive_position")
    # hand-worked: amount 0.30 × 0.7 = 0.21, win probability 0.25 × 0.7 = 0.175, …
    assert partial.weights == pytest.approx({"amount": 0.21, "win_probability": 0.175, "strategic_value": 0.14,
                                             "follow_up_cost": 0.105, "payment_days": 0.07,
                                             "competitive_position": 0.3})
    pd.testing.assert_series_equal(partial["score"], scenario["score"])
    assert partial["tier"].eq("high").any()  # not every deal low, as when the other weights went to 0
    with pytest.raises(ValueError, match="weights sum to 1.1, not 1"):
        score_deals(deals, card, weights={"amount": 0.4, "win_probability": 0.25, "strategic_value": 0.2,
                                          "follow_up_cost": 0.15, "payment_days": 0.1, "competitive_position": 0.0})


def test_a_single_scenario_name_is_a_list_of_one(sample, config):
    card = load_scorecard()
    deals = fk.open_deals(sample, config)
    one = sensitivity.compare_scenarios(deals, card, "competitive_position")
    listed = sensitivity.compare_scenarios(deals, card, ["competitive_position"])
    pd.testing.assert_frame_equal(one.summary, listed.summary)
    with pytest.raises(ValueError, match=r"unknown scenario 'amount_frist'\. Did you mean 'amount_first'"):
        sensitivity.compare_scenarios(deals, card, "amount_frist")


def test_one_name_per_dimension():
    card = load_scorecard()
    for key, dim in card.dimensions.items():
        assert dim.column == key
        assert dim.label["en"].lower().replace(" ", "_").replace("-", "_") == key
    for name in card.scenarios:
        given = card.scenarios[name].set or {}
        assert set(given) <= set(card.dimensions)


def test_returned_figures_display_and_cjk_font(sample, config):
    from funnelkit.presentation import plots
    fig = plots.funnel_chart(fk.cohort_funnel(sample, config, "2024-Q2"), "t")
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib

    before = list(matplotlib.rcParams["font.family"])
    try:
        font = fk.use_cjk_font()
        assert font is not None and matplotlib.rcParams["font.family"][0] == font
    finally:
        matplotlib.rcParams["font.family"] = before


def test_km_curve_takes_lifelines_argument_order():
    # durations 2, 3 (censored), 5, 7: S drops to 3/4 at 2, to 3/4 · 1/2 at 5, to 0 at 7 (by hand)
    durations = pd.Series([2.0, 3.0, 5.0, 7.0])
    observed = pd.Series([True, False, True, True])
    curve = fk.analyses.timing.km_curve(durations, observed)
    assert curve["days"].tolist() == [0.0, 2.0, 3.0, 5.0, 7.0]
    assert curve["survival"].tolist() == pytest.approx([1.0, 0.75, 0.75, 0.375, 0.0])
    everyone = fk.analyses.timing.km_curve(durations)  # event_observed=None: every stay ended
    assert everyone["survival"].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_plan_cell_says_how_many_rows_it_shows():
    text = present.load_text("en")
    table = pd.DataFrame({"x": np.arange(184)})
    shown, note = present.shown_rows(table, 60, text, "rows_in_plan_file")
    assert len(shown) == 60 and note.data.startswith("60 of 184 rows shown. The full list is in the follow-up plan")
    whole, none = present.shown_rows(table.head(10), 60, text)
    assert len(whole) == 10 and none is None


# ---------------------------------------------------------------- one of each (issue 19 item 6)


def test_one_strict_base_for_every_params_model():
    from funnelkit import config
    from funnelkit.analyses import playbook, scorecard, screening
    from funnelkit.inputs import presets
    from funnelkit.config import StrictModel

    models = [config.FunnelConfig, config.ReportMatrix, playbook.Playbook, scorecard.Scorecard,
              screening.ScreeningRules, presets.Preset]
    assert all(issubclass(m, StrictModel) for m in models)
    for module in (config, playbook, scorecard, screening, presets):
        assert not hasattr(module, "_Strict")


@pytest.mark.parametrize("values, fractions", [([35, 80, None], [0.35, 0.8, None]), ([0.35, 1.0], [0.35, 1.0]),
                                               ([0, 1.5, 80], [0.0, 0.015, 0.8])])
def test_percent_as_fraction_by_hand(values, fractions):
    from funnelkit.inputs.data import percent_as_fraction

    got = percent_as_fraction(pd.Series(values, dtype=float))
    np.testing.assert_allclose(got.to_numpy(), np.array(fractions, dtype=float))


def test_percent_as_fraction_refuses_a_mixed_column():
    """The one helper also carries issue 20's rule: 0.5 (a fraction) beside 1.5 (a percent) is an error."""
    from funnelkit.inputs.data import DataError, percent_as_fraction

    with pytest.raises(DataError, match=r"^win_probability mixes fractions and percents: row 1 \(0\.5\) .* row 2 \(1\.5\)"):
        percent_as_fraction(pd.Series([0.5, 1.5], name="win_probability"))


def test_one_required_columns_check():
    from funnelkit.inputs.data import DataError, require_columns

    frame = pd.DataFrame({"deal_id": [], "stage": []})
    with pytest.raises(DataError, match=r"^x\.csv: missing column\(s\) entered_at; found deal_id, stage$"):
        require_columns(frame, ["deal_id", "entered_at"], "x.csv")
    with pytest.raises(DataError, match=r"^x\.csv: has a header but no data rows$"):
        require_columns(frame, ["deal_id"], "x.csv")
    require_columns(frame, ["deal_id"], "x.csv", need_rows=False)  # a preset's check of the raw export


def test_per_event_step_checks_its_filters_like_the_scope(sample, config):
    # The per-event step is public API too: a misspelt team must not give an empty table.
    with pytest.raises(ValueError, match=r"unknown team 'south'.*Did you mean 'South'"):
        aggregate.reach_table(sample, config, team="south")
    with pytest.raises(ValueError, match=r"unknown rep 'Nobody'"):
        aggregate.reach_table(sample, config, rep="Nobody")
    with pytest.raises(ValueError, match=r"unknown pipeline"):
        aggregate.reach_table(sample, config, pipeline="retail")
    with pytest.raises(TypeError, match="as_of must be a date string"):
        aggregate.stage_stays(sample, config, as_of=20240531)


def test_per_event_step_takes_as_of_as_a_string(sample, config):
    end_of_day = pd.Timestamp("2024-06-01")
    pd.testing.assert_frame_equal(aggregate.reach_table(sample, config, as_of="2024-05-31"),
                                  aggregate.reach_table(sample, config, as_of=end_of_day))
    pd.testing.assert_frame_equal(aggregate.stage_stays(sample, config, as_of="2024-05-31"),
                                  aggregate.stage_stays(sample, config, as_of=end_of_day))
    pd.testing.assert_frame_equal(aggregate.open_deals(sample, config, as_of="2024-05-31"),
                                  aggregate.open_deals(sample, config, as_of=end_of_day))


def test_scoped_tables_equal_filter_scope(sample, config):
    """The scope's cached row lookup gives what filter_scope gives: same rows, order and index."""
    scope = fk.Scope.build(sample, config)
    team = sorted(sample.deals["team"].unique())[0]
    rep = sorted(sample.deals.loc[sample.deals["team"] == team, "rep"].unique())[0]
    for filters in ({}, {"team": team}, {"team": team, "rep": rep}, {"rep": rep}, {"team": team, "rep": "nobody"}):
        narrowed = dataclasses.replace(scope, **{"team": None, "rep": None} | filters)
        want_deals = aggregate.filter_scope(aggregate.deals_as_of(sample.deals, scope.as_of), **filters)
        pd.testing.assert_frame_equal(narrowed.deals, want_deals)
        pd.testing.assert_frame_equal(narrowed.reach, aggregate.filter_scope(scope.reach, **filters))
        pd.testing.assert_frame_equal(narrowed.stays, aggregate.filter_scope(scope.stays, **filters))


def test_narrow_skips_the_checks_only_for_a_known_team_and_rep(sample, config, monkeypatch):
    scope = fk.Scope.build(sample, config)
    team = sorted(sample.deals["team"].unique())[0]
    rep = sorted(sample.deals.loc[sample.deals["team"] == team, "rep"].unique())[0]
    other_rep = sorted(sample.deals.loc[sample.deals["team"] != team, "rep"].unique())[0]
    fast = scope.narrow(team=team).narrow(rep=rep)
    built = fk.Scope.build(sample, config, team=team, rep=rep)
    assert (fast.team, fast.rep, fast.as_of, fast.pipeline) == (built.team, built.rep, built.as_of, built.pipeline)
    assert fast.computed is scope.computed
    with pytest.raises(ValueError, match="rep"):
        scope.narrow(team=team).narrow(rep=other_rep)  # a rep of another team is still refused
    with pytest.raises(ValueError, match="team"):
        scope.narrow(team=team.lower() + "x")


def test_named_codes_give_text_with_missing_for_negative():
    got = aggregate.named(np.array([1, -1, 0, 1]), ["qualify", "propose"])
    assert got.tolist()[0] == "propose" and pd.isna(got.iloc[1]) and got.iloc[2] == "qualify"
    assert str(got.dtype) == "str"


def test_furthest_columns_are_a_byte_a_deal_and_name_the_stage():
    index, stage = aggregate.furthest_columns(np.array([-1, 0, 2, 1, 2]), ["qualify", "propose", "close"])
    assert index.dtype == np.int8 and index.tolist() == [-1, 0, 2, 1, 2]
    assert pd.isna(stage[0]) and list(stage[1:]) == ["qualify", "close", "propose", "close"]
    assert list(stage.categories) == ["close", "propose", "qualify"]  # sorted as text sorts
    assert stage.codes.dtype == np.int8
