"""Fitted scorecard (issue 14): planted drivers, no leakage, the win/loss fixture through the
commands, the missing-field policy against hand-worked scores, and YAML that reads back exactly."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from funnelkit.analyses import fit
from funnelkit.runner.cli import main as cli
from funnelkit.presentation.present import load_text
from funnelkit.analyses.scorecard import Scorecard, load_scorecard, score_deals, unscored_summary

WINLOSS = Path(__file__).parent / "data" / "winloss" / "winloss.csv"


def planted(n: int = 1500, seed: int = 0, dates: bool = False) -> pd.DataFrame:
    """Closed deals whose log-odds of winning are 1.5·strong (numeric) + region effect (categorical,
    weaker); ``noise`` is independent of the outcome."""
    rng = np.random.default_rng(seed)
    strong = rng.normal(size=n)
    region = rng.choice(["north", "south", "east", "west", "rare1", "rare2"], size=n, p=[.3, .3, .2, .16, .02, .02])
    effect = pd.Series(region).map({"north": 0.8, "south": 0.0, "east": -0.4, "west": -0.8, "rare1": 0.0, "rare2": 0.0})
    won = rng.random(n) < 1 / (1 + np.exp(-(-1.2 + 1.5 * strong + effect.to_numpy())))
    deals = pd.DataFrame({"deal_id": [f"D{i:05d}" for i in range(n)], "strong": strong, "region": region,
                          "noise": rng.normal(size=n), "status": np.where(won, "won", "lost")})
    if dates:
        deals["closed_at"] = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(n) * 6, unit="h")
    return deals


@pytest.fixture(scope="module")
def planted_fit():
    closed, won = fit.closed_outcomes(planted())
    return closed, won, fit.fit_card(closed, won)


def test_planted_drivers_get_the_largest_weights_and_noise_is_left_out(planted_fit):
    _, _, result = planted_fit
    assert set(result.weights) == {"strong", "region"}
    assert result.weights["strong"] > result.weights["region"] > 0  # 1.5 per sd beats a ±0.8 region effect
    assert sum(result.weights.values()) == pytest.approx(1)
    assert all(round(w / 0.05, 9) == round(w / 0.05) for w in result.weights.values())
    noise = next(f for f in result.fields if f.column == "noise")
    assert noise.left_out and noise.iv < fit.MIN_IV


@pytest.mark.parametrize("seed", [1, 2])
def test_noise_left_out_on_other_seeds(seed):
    closed, won = fit.closed_outcomes(planted(seed=seed))
    result = fit.fit_card(closed, won)
    assert "noise" not in result.weights
    assert sorted(result.weights, key=result.weights.get, reverse=True) == ["strong", "region"]


def test_numeric_bins_are_monotone_and_match_the_written_bands(planted_fit):
    closed, won, result = planted_fit
    strong = next(f for f in result.fields if f.column == "strong")
    rates = strong.bins.sort_values("lower")["win_rate"].to_numpy()
    assert len(rates) >= 3 and np.all(np.diff(rates) > 0)
    assert list(strong.bins.sort_values("lower")["points"]) == sorted(strong.bins["points"])
    assert strong.bins["points"].min() == 1 and strong.bins["points"].max() == 5
    # the evidence is the count of training deals in each written band
    card = Scorecard.model_validate(result.card)
    points = score_deals(closed, card)["points_strong"]
    for row in strong.bins.itertuples():
        assert int((points == row.points).sum()) == row.deals
        assert int(won[(points == row.points).to_numpy()].sum()) == row.won


def test_woe_and_iv_by_hand():
    # bins with (won, lost) = (30, 10) and (10, 30): g = (30.5/41, 10.5/41), b = (10.5/41, 30.5/41)
    woe, iv = fit._evidence(np.array([30, 10]), np.array([10, 30]))
    g, b = np.array([30.5, 10.5]) / 41, np.array([10.5, 30.5]) / 41
    assert woe == pytest.approx(np.log(g / b))
    assert iv == pytest.approx(float(np.sum((g - b) * np.log(g / b))))
    assert list(fit.woe_points(np.array([-1.0, 0.0, 1.0]))) == [1, 3, 5]


def test_same_seed_same_card_and_validation():
    closed, won = fit.closed_outcomes(planted(n=800, seed=3))
    a, b = (fit.validate_fit(closed, won, load_scorecard(), seed=7, n_boot=200) for _ in range(2))
    assert (a.auc, a.auc_low, a.auc_high) == (b.auc, b.auc_low, b.auc_high)
    pd.testing.assert_frame_equal(a.tiers, b.tiers)
    first, second = (fit.render_yaml(fit.fit_card(closed, won), a, load_text("en")) for _ in range(2))
    assert first == second


def test_validation_uses_only_training_deals():
    """``leak`` is the outcome itself in the held-out (latest) quarter and noise before it: a fit that
    saw the test outcomes would score the held-out deals almost perfectly."""
    deals = planted(n=1600, seed=4, dates=True)
    closed, won = fit.closed_outcomes(deals)
    test = np.arange(len(closed)) >= 1200  # the latest quarter by closed_at
    rng = np.random.default_rng(0)
    closed["leak"] = np.where(test, np.where(won == 1, "yes", "no"), rng.choice(["yes", "no"], size=len(closed)))
    validation = fit.validate_fit(closed, won, load_scorecard(), n_boot=200)
    assert validation.method == "time" and validation.held_out == 400
    assert validation.scores["row"].min() == 1200
    assert validation.auc < 0.9
    leaky = fit.fit_card(closed, won)  # positive control: the field is picked when test outcomes are seen
    assert "leak" in leaky.weights


def test_kfold_when_no_dates_every_deal_held_out_once(planted_fit):
    closed, won, _ = planted_fit
    validation = fit.validate_fit(closed, won, load_scorecard(), n_boot=100)
    assert validation.method == "kfold" and validation.folds == 5
    assert sorted(validation.scores["row"]) == list(range(len(closed)))
    assert validation.auc_low < validation.auc < validation.auc_high
    assert validation.tiers["deals"].sum() == validation.scored
    assert validation.current_note is not None  # the seed card's fields are not in this data


def test_round_weights_sum_to_one_in_steps():
    w = fit.round_weights({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert sum(w.values()) == pytest.approx(1) and sorted(w.values()) == [0.3, 0.35, 0.35]
    assert fit.round_weights({"a": 0.63, "b": 0.36, "c": 0.01}) == {"a": 0.65, "b": 0.35, "c": 0.0}  # 12.6, 7.2, 0.2 steps


HOSTILE = ["a: b", "#hash", "line\nbreak", "null", "yes", "  padded ", '"quoted"', "它's", "- item", "{x}", "tab\there"]


def test_yaml_reads_back_exactly_with_hostile_levels(tmp_path):
    rng = np.random.default_rng(5)
    n = 1200
    level = rng.choice(HOSTILE, size=n)
    good = {v: i % 2 for i, v in enumerate(HOSTILE)}
    won = (rng.random(n) < np.where(pd.Series(level).map(good).to_numpy() == 1, 0.7, 0.2)).astype(int)
    deals = pd.DataFrame({"deal_id": np.arange(n).astype(str), "Kind: #1\nnew": level,
                          "status": np.where(won == 1, "won", "lost")})
    closed, y = fit.closed_outcomes(deals)
    result = fit.fit_card(closed, y)
    path = tmp_path / "card.yaml"
    path.write_text(fit.render_yaml(result, None, load_text("en"), source="evil\nsource: x"), encoding="utf-8")
    loaded = load_scorecard(path)
    assert loaded.model_dump() == Scorecard.model_validate(result.card).model_dump()
    (dim,) = loaded.dimensions.values()
    assert dim.column == "Kind: #1\nnew" and set(dim.points) == set(HOSTILE)
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["missing"] == "unscored"


def renorm_card(policy: str) -> Scorecard:
    return Scorecard.model_validate({"missing": policy, "dimensions": {
        "a": {"label": {"en": "A", "zh": "A"}, "column": "a", "weight": 0.5,
              "bands": [{"points": 5, "at_least": 10}, {"points": 1}]},
        "b": {"label": {"en": "B", "zh": "B"}, "column": "b", "weight": 0.3, "points": {"x": 3, "y": 1}},
        "c": {"label": {"en": "C", "zh": "C"}, "column": "c", "weight": 0.2, "points": {"hi": 1, "lo": 2}, "other": 4},
    }})


def test_renormalise_policy_by_hand():
    deals = pd.DataFrame({"deal_id": ["all", "no_b", "only_c", "none", "other_c"],
                          "a": [12, 12, None, None, 1], "b": ["x", None, None, None, "y"],
                          "c": ["hi", "hi", "lo", None, "new level"]})
    scored = score_deals(deals, renorm_card("renormalise")).set_index("deal_id")
    # all: 20·(0.5·5 + 0.3·3 + 0.2·1) = 72
    assert scored.loc["all", "score"] == pytest.approx(72) and scored.loc["all", "coverage"] == "3/3"
    # no_b: 20·(0.5·5 + 0.2·1) / 0.7 = 54 / 0.7
    assert scored.loc["no_b", "score"] == pytest.approx(54 / 0.7) and scored.loc["no_b", "coverage"] == "2/3"
    assert scored.loc["no_b", "partial"] and scored.loc["no_b", "tier"] == "medium"
    # only_c: 20·0.2·2 / 0.2 = 40
    assert scored.loc["only_c", "score"] == pytest.approx(40) and scored.loc["only_c", "coverage"] == "1/3"
    assert np.isnan(scored.loc["none", "score"]) and scored.loc["none", "unscored_reason"] == "missing:a; missing:b; missing:c"
    # an unlisted level takes `other`: 20·(0.5·1 + 0.3·1 + 0.2·4) = 32
    assert scored.loc["other_c", "score"] == pytest.approx(32) and not scored.loc["other_c", "partial"]
    assert scored["contribution_a"].fillna(0).add(scored["contribution_b"].fillna(0)).add(
        scored["contribution_c"].fillna(0))[scored["score"].notna()].to_numpy() == pytest.approx(scored["score"].dropna().to_numpy())

    strict = score_deals(deals, renorm_card("unscored")).set_index("deal_id")
    assert strict["score"].notna().tolist() == [True, False, False, False, True]
    assert strict.loc["no_b", "unscored_reason"] == "missing:b"
    summary = unscored_summary(deals, strict.reset_index(), renorm_card("unscored"))
    assert summary["deals"].sum() == 3
    assert dict(zip(summary["reason"], summary["fields"]))["missing:b"] == "b"


def test_unscored_summary_names_absent_columns(sample):
    deals = fk_open(sample).drop(columns=["payment_days"])
    card = load_scorecard()
    scored = score_deals(deals, card)
    summary = unscored_summary(deals, scored, card)
    assert summary["deals"].sum() == scored["score"].isna().sum() == len(deals)
    assert all("payment_days" in f for f in summary["absent"])


def fk_open(sample):
    import funnelkit as fk

    return fk.open_deals(sample, fk.load_config())


def test_winloss_fixture_fits_and_scores_through_the_commands(tmp_path, capsys):
    card_path, scores_path = tmp_path / "fitted.yaml", tmp_path / "scores.csv"
    assert cli(["fit-scorecard", str(WINLOSS), "--out", str(card_path)]) == 0
    out = capsys.readouterr().out
    assert "400 closed (" in out and "AUC" in out
    card = load_scorecard(card_path)
    columns = {d.column for d in card.dimensions.values()}
    assert {"Budget confirmed", "Champion"} <= columns and "Opportunity" not in columns
    assert cli(["score", str(WINLOSS), "--scorecard", str(card_path), "--out", str(scores_path)]) == 0
    out = capsys.readouterr().out
    scores = pd.read_csv(scores_path, encoding="utf-8-sig")
    raw = pd.read_csv(WINLOSS, sep=";", dtype=str, keep_default_na=False, na_values=[""])
    assert len(scores) == len(raw)
    n_unscored = int(scores["score"].isna().sum())
    assert n_unscored == int(raw[[d.column for d in card.dimensions.values()]].isna().any(axis=1).sum()) > 0
    assert f"unscored: {n_unscored:,} deals" in out and "would be scored with: Champion" in out
    # a deal with the best level of every field scores 100
    best = pd.Series(True, index=raw.index)
    for dim in card.dimensions.values():
        best &= raw[dim.column].map(dim.points).eq(5)
    assert best.any() and (scores.loc[best.to_numpy(), "score"] == 100).all()


def test_fit_on_sample_loads_and_scores_unchanged(tmp_path, capsys):
    card_path = tmp_path / "sample_card.yaml"
    assert cli(["fit-scorecard", "sample", "--out", str(card_path), "--tiers", "quantile", "--missing", "renormalise"]) == 0
    out = capsys.readouterr().out
    assert "time split" in out and "current scorecard: AUC" in out
    card = load_scorecard(card_path)
    assert card.mode == "relative" and card.missing == "renormalise"
    assert "lost_reason" not in {d.column for d in card.dimensions.values()}
    assert cli(["score", "sample", "--scorecard", str(card_path), "--out", str(tmp_path / "plan.csv")]) == 0
    assert "unscored:" in capsys.readouterr().out
    plan = pd.read_csv(tmp_path / "plan.csv", encoding="utf-8-sig")
    assert plan[load_text().column("coverage")].str.fullmatch(rf"\d+/{len(card.dimensions)}").all()


def test_fit_errors_are_clear(tmp_path, capsys):
    path = tmp_path / "few.csv"
    path.write_text("Status;Q\nWon;a\nLost;b\nWon;a\n", encoding="utf-8")
    assert cli(["fit-scorecard", str(path), "--out", str(tmp_path / "x.yaml")]) == 2
    assert "at least 5 of each" in capsys.readouterr().err
    assert cli(["fit-scorecard", str(WINLOSS), "--fields", "Nope", "--out", str(tmp_path / "x.yaml")]) == 2
    assert "no column 'Nope'" in capsys.readouterr().err
    nostatus = tmp_path / "nostatus.csv"
    nostatus.write_text("Outcome,Q\nWon,a\n", encoding="utf-8")
    assert cli(["fit-scorecard", str(nostatus), "--out", str(tmp_path / "x.yaml")]) == 2
    assert "no status column" in capsys.readouterr().err


def test_every_reason_and_method_has_words_in_both_languages():
    for language in ("en", "zh"):
        text = load_text(language)
        for reason in fit.LEFT_OUT:
            f = fit.FieldFit("x", "numeric", 0.01, 10, 0, pd.DataFrame(), None, reason,
                             {"iv": 0.01, "n": 10, "levels": 9, "weight": 0.004, "min_iv": fit.MIN_IV, "auc": 0.99,
                              "min_share": fit.MIN_SHARE})
            assert fit.left_out_text(f, text)
        for note in ("none_given", "cannot_score", "one_class"):
            assert text(f"fit_current_{note}")


NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "fitted_scorecard.ipynb"


def test_notebook_parameters_and_stored_without_outputs():
    import nbformat
    import papermill as pm

    names = set(pm.inspect_notebook(str(NOTEBOOK)))
    assert names == {"data", "preset", "as_of", "fields", "tiers", "missing", "scorecard_path", "language",
                     "config_path", "seed", "team", "rep", "pipeline", "period"}
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_notebook_runs_on_the_winloss_table_in_chinese(tmp_path):
    """The one-table export (no stage history, no open deals) in Chinese: every section renders and
    says why there is nothing to move; numbers match the command's fit."""
    import nbformat
    import papermill as pm

    out = tmp_path / "fitted.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out), parameters={"data": str(WINLOSS), "language": "zh", "tiers": "quantile"},
                        kernel_name="funnelkit", cwd=str(NOTEBOOK.parent), progress_bar=False, execution_timeout=600)
    text = "".join(str(o.get("data", {}).get("text/html", "")) + str(o.get("data", {}).get("text/markdown", ""))
                   for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    for key in ("fit_card_title", "fit_evidence_title", "fit_holdout_title", "fit_movers_title", "fit_no_open"):
        assert load_text("zh")(key) in text
    closed, won = fit.closed_outcomes(pd.read_csv(WINLOSS, sep=";", dtype=str, keep_default_na=False, na_values=[""])
                                      .rename(columns={"Status": "status"}))
    v = fit.validate_fit(closed, won, load_scorecard(), tiers="quantile", n_boot=10)
    assert f"{v.auc:.3f}" in text


def test_evidence_chart_labels_points_and_escapes_data_text():
    import warnings

    from funnelkit.presentation import plots
    bins = pd.DataFrame({"label": ["$5 & up$", "行业标杆", "a\nb"], "deals": [10, 1200, 30],
                         "win_rate": [0.1, 0.25, 0.4], "points": [1, 3, 5]})
    words = {"win_rate": "赢单率（%）", "points": "分", "deals": "个", "overall": "总体赢单率"}
    fig = plots.evidence_bars(bins, 0.2, "字段 $x$", words)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*missing from font.*")
        fig.canvas.draw()  # $…$ from data must not be parsed as mathtext (font_context turns it off)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["1 分\n10 个", "3 分\n1,200 个", "5 分\n30 个"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["$5 & up$", "行业标杆", "a b"]
    assert [round(p.get_height(), 6) for p in ax.patches] == [10, 25, 40]


def test_a_field_recorded_at_the_close_is_left_out():
    """A CRM's probability is set to 100% on won and 0% on lost deals: it must not become the card."""
    deals = planted(n=600, seed=6)
    deals["probability"] = np.where(deals["status"] == "won", 100.0, 0.0)
    deals["Stage name"] = np.where(deals["status"] == "won", "Closed Won", "Closed Lost")
    deals["scattered"] = [f"v{i % 40}" for i in range(len(deals))]  # 40 values, none held by 5% of deals
    closed, won = fit.closed_outcomes(deals)
    result = fit.fit_card(closed, won)
    reasons = {f.column: f.left_out for f in result.fields}
    assert reasons["probability"] == reasons["Stage name"] == "outcome" and reasons["scattered"] == "scattered"
    assert "strong" in result.weights


def test_notebook_takes_what_the_report_runner_passes():
    from funnelkit.runner.report import Job, check_parameters

    job = Job("fitted_scorecard", "2024-Q2", "East", None,
              {"period": "2024-Q2", "team": "East", "rep": None, "pipeline": None, "data": "x", "as_of": None,
               "language": "zh"}, "2024-Q2/East/fitted_scorecard")
    check_parameters([job])  # raises on a name the notebook does not define


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.001, 1.0), min_size=1, max_size=12))
def test_rounded_weights_always_sum_to_one_within_a_step(raw):
    total = sum(raw)
    weights = {f"f{i}": w / total for i, w in enumerate(raw)}
    rounded = fit.round_weights(weights)
    assert sum(rounded.values()) == pytest.approx(1, abs=1e-9)
    for key, w in weights.items():
        assert abs(rounded[key] - w) < 0.05 + 1e-9
        assert rounded[key] / 0.05 == pytest.approx(round(rounded[key] / 0.05), abs=1e-9)


def test_tier_changes_by_hand():
    # current: weights .5/.3/.2, unscored policy; fitted: .2/.4/.4, renormalise
    current = renorm_card("unscored")
    dims = current.model_dump()["dimensions"]
    fitted = Scorecard.model_validate({"missing": "renormalise", "dimensions": {
        k: dims[k] | {"weight": w} for k, w in zip(dims, (0.2, 0.4, 0.4))}})
    deals = pd.DataFrame({"deal_id": ["d1", "d2", "d3", "d4"], "a": [12, 1, None, 1],
                          "b": ["x", "x", "x", "y"], "c": ["hi", "zz", "hi", "hi"]})
    transitions, movers = fit.tier_changes(deals, current, fitted)
    # d1: 20·(.5·5 + .3·3 + .2·1) = 72 medium → 20·(.2·5 + .4·3 + .4·1) = 52 low
    # d2: 20·(.5·1 + .3·3 + .2·4) = 44 low → 20·(.2·1 + .4·3 + .4·4) = 60 medium
    # d3: unscored (no a) → 20·(.4·3 + .4·1) / .8 = 40 low;  d4: 20 low → 20 low
    assert list(movers["deal_id"]) == ["d1", "d2", "d3"]
    assert list(movers["direction"]) == ["down", "up", "one_card"]
    assert movers["score_current"].tolist()[:2] == pytest.approx([72, 44])
    assert movers["score_fitted"].tolist() == pytest.approx([52, 60, 40])
    assert transitions.loc["medium", "low"] == transitions.loc["low", "medium"] == 1
    assert transitions.loc["unscored", "low"] == transitions.loc["low", "low"] == 1
    assert int(transitions.to_numpy().sum()) == 4
