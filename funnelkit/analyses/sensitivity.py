"""Scorecard weight sensitivity: what changes with other weights, and which weights the data supports.

Notation: ``x_ik`` are deal i's points (1–5) on dimension k, ``w`` the weights (Σ w = 1), and
``score_i = 20 · Σ_k w_k x_ik``.

* Scenario comparison: tier transition matrix, movers, Kendall tau-b between the two score
  rankings (tau-b because integer points tie often), Jaccard overlap of the high tiers, and the
  pipeline value per tier.
* One-at-a-time sweep: weight k is set to w and the others rescaled in proportion, so the score is
  linear in w: ``score_i(w) = 20 · (w·x_ik + (1−w)·S_i,−k)`` with ``S_i,−k`` the weighted mean of
  the other points. It crosses a tier threshold θ at ``w* = (θ/20 − S_i,−k) / (x_ik − S_i,−k)``.
* Monte Carlo: weights drawn from a Dirichlet centred on the baseline ``w0`` with concentration
  κ (α = κ·w0), so weight k has sd ``sqrt(w0_k(1−w0_k)/(κ+1))``; κ can be derived from the sd a
  user means for the largest weight.
* Backtest on closed deals: AUC = P(score of a won deal > score of a lost deal) + ½ P(tie)
  = Mann–Whitney U / (n_won · n_lost), with bootstrap CIs; win rate per tier with Wilson intervals.
* Suggested weights: logistic regression of won on the points with β ≥ 0 (bounded L-BFGS-B), then
  ``w = β / Σβ``; cross-validated AUC beside the baseline's, bootstrap intervals for the weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from funnelkit.arguments import choose
from funnelkit.memo import reused
from funnelkit.periods import Period
from funnelkit.results import ResultDisplay, TableResult
from funnelkit.analyses.scorecard import TIERS, Scorecard, points_table, score_deals, tier_codes

MIN_CLASS = 40  # fewer won or lost deals than this and the backtest warns
MIN_AUC = 10  # fewer won or lost scored deals than this and no AUC is computed at all
MIN_TAU = 10  # fewer deals scored under both weightings than this and no Kendall tau


@dataclass(frozen=True, eq=False)
class ScenarioComparison(ResultDisplay):
    """Result of :func:`compare_scenarios`; every frame has a ``scenario`` column."""

    summary: pd.DataFrame  # scenario, scored, movers, kendall_tau_b, high_jaccard, high_before, high_after
    transitions: pd.DataFrame  # scenario, baseline_tier, scenario_tier, deals
    movers: pd.DataFrame  # scenario, deal_id, score_before, score_after, tier_before, tier_after
    value_by_tier: pd.DataFrame  # scenario, tier, amount_before, amount_after, change


def _scored_points(deals: pd.DataFrame, scorecard: Scorecard, dims: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Deals with every needed input, and their points matrix (deals × dims)."""
    points, _ = points_table(deals, scorecard)
    complete = points[dims].notna().all(axis=1)
    return deals[complete], points.loc[complete, dims].to_numpy(dtype=float)


def one_field_only(deals: pd.DataFrame, scorecard: Scorecard) -> list[str]:
    """The weighted dimensions of the scored ``deals`` when each deal has exactly one of them (a card
    scored with ``missing: renormalise`` on an export that has only, say, the amount): every score is
    then 20 × that dimension's points whatever the weights, so no scenario can move a deal. Empty
    otherwise (or when no deal has any)."""
    used = [k for k, w in scorecard.weights().items() if w > 0]
    if scorecard.missing != "renormalise" or deals.empty:
        return []
    points, _ = points_table(deals, scorecard)
    has = points[used].notna()
    known = has[has.any(axis=1)]
    if known.empty or (known.sum(axis=1) != 1).any():
        return []
    return [k for k in used if known[k].any()]


def _tiers_of(scores: np.ndarray, scorecard: Scorecard) -> np.ndarray:
    """Fixed-threshold tier codes (0 high, 1 medium, 2 low) of a score array."""
    return tier_codes(scores, scorecard.tiers["high"], scorecard.tiers["medium"])


def scenario_names(scorecard: Scorecard, scenarios: str | list[str] | None = None) -> list[str]:
    """The scenarios asked for as a list: ``None`` → every scenario of the scorecard; one name →
    a list of one. An unknown name is an error listing the scenarios (with "did you mean")."""

    if scenarios is None:
        return list(scorecard.scenarios)
    names = [scenarios] if isinstance(scenarios, str) else list(scenarios)
    return [choose(n, scorecard.scenarios, "scenario") for n in names]


@reused
def compare_scenarios(deals: pd.DataFrame, scorecard: Scorecard, scenarios: str | list[str] | None = None
                      ) -> ScenarioComparison:
    """Compare each named scenario (one name, a list, or ``None`` for all) with the baseline on the
    deals scored under both."""
    scenarios = scenario_names(scorecard, scenarios)
    base = score_deals(deals, scorecard)
    summaries, transitions, movers, values = [], [], [], []
    for name in scenarios:
        alt = score_deals(deals, scorecard, scenario=name)
        both = base["score"].notna() & alt["score"].notna()
        b, a = base[both], alt[both]
        # below MIN_TAU deals (or with every score tied) a rank correlation says nothing
        constant = b["score"].nunique() < 2 or a["score"].nunique() < 2
        tau = (stats.kendalltau(b["score"], a["score"], variant="b").statistic
               if both.sum() >= MIN_TAU and not constant else np.nan)
        high_b, high_a = set(b.loc[b["tier"] == "high", "deal_id"]), set(a.loc[a["tier"] == "high", "deal_id"])
        union = high_b | high_a
        moved = b["tier"].to_numpy() != a["tier"].to_numpy()
        summaries.append({
            "scenario": name, "scored": int(both.sum()), "movers": int(moved.sum()),
            "kendall_tau_b": float(tau), "high_jaccard": len(high_b & high_a) / len(union) if union else 1.0,
            "high_before": len(high_b), "high_after": len(high_a),
        })
        matrix = pd.crosstab(pd.Categorical(b["tier"], TIERS), pd.Categorical(a["tier"], TIERS), dropna=False)
        transitions.append(matrix.rename_axis(index="baseline_tier", columns="scenario_tier").stack()
                           .rename("deals").reset_index().assign(scenario=name))
        movers.append(pd.DataFrame({
            "scenario": name, "deal_id": b["deal_id"].to_numpy()[moved],
            "score_before": b["score"].to_numpy()[moved], "score_after": a["score"].to_numpy()[moved],
            "tier_before": b["tier"].to_numpy()[moved], "tier_after": a["tier"].to_numpy()[moved],
        }))
        before = b.groupby("tier")["amount"].sum().reindex(TIERS, fill_value=0)
        after = a.groupby("tier")["amount"].sum().reindex(TIERS, fill_value=0)
        values.append(pd.DataFrame({"scenario": name, "tier": TIERS, "amount_before": before.to_numpy(),
                                    "amount_after": after.to_numpy(), "change": (after - before).to_numpy()}))
    transitions_df = pd.concat(transitions, ignore_index=True) if transitions else pd.DataFrame()
    if len(transitions_df):
        transitions_df = transitions_df[["scenario", "baseline_tier", "scenario_tier", "deals"]]
    return ScenarioComparison(
        summary=pd.DataFrame(summaries),
        transitions=transitions_df,
        movers=pd.concat(movers, ignore_index=True) if movers else pd.DataFrame(),
        value_by_tier=pd.concat(values, ignore_index=True) if values else pd.DataFrame(),
    )


def sweep_weights(base: dict[str, float], dimension: str, w: float) -> dict[str, float]:
    """Weights with ``dimension`` set to ``w`` and the others rescaled in proportion (sum 1)."""
    rest = sum(v for k, v in base.items() if k != dimension)
    if rest <= 0:
        raise ValueError(f"cannot sweep {dimension!r}: the other weights are all 0")
    return {k: (w if k == dimension else v * (1 - w) / rest) for k, v in base.items()}


def weight_sweep(
    deals: pd.DataFrame, scorecard: Scorecard, dimension: str, grid: np.ndarray | list[float] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One-at-a-time sweep of ``dimension``'s weight over ``grid`` (default 0, 0.05, …, 1).

    Returns ``(counts, tipping)``: tier counts along the grid (``weight, tier, deals``, plus the
    ``weights`` used, which always sum to 1), and per deal the tipping weight nearest the current
    one at which its tier changes (``deal_id, weight_now, tier_now, tipping_weight, tier_after``;
    NaN / NA when no tier change happens for any weight in [0, 1]). Fixed tier thresholds are used.
    """
    base = scorecard.weights()
    if dimension not in base:
        raise ValueError(f"unknown dimension {dimension!r}; expected one of {', '.join(base)}")
    grid = np.round(np.linspace(0, 1, 21), 10) if grid is None else np.asarray(grid, dtype=float)
    others = [k for k, v in base.items() if k != dimension and v > 0]
    dims = others + [dimension]
    scored, x = _scored_points(deals, scorecard, dims)
    x_k = x[:, -1]
    w_rest = np.array([base[k] for k in others])
    s_rest = x[:, :-1] @ w_rest / w_rest.sum()

    rows = []
    for w in grid:
        weights = sweep_weights(base, dimension, float(w))
        scores = 20 * (w * x_k + (1 - w) * s_rest)
        tiers = _tiers_of(scores, scorecard)
        for t, name in enumerate(TIERS):
            rows.append({"weight": float(w), "tier": name, "deals": int((tiers == t).sum()),
                         "weight_sum": sum(weights.values())})
    counts = pd.DataFrame(rows)

    w0 = base[dimension]
    tipping_weight, after, now = _tipping(x_k, s_rest, w0, scorecard)
    tipping = pd.DataFrame({
        "deal_id": scored["deal_id"].to_numpy(), "weight_now": w0, "tier_now": np.asarray(TIERS)[now],
        "tipping_weight": tipping_weight,
        "tier_after": pd.Series(np.asarray(TIERS, dtype=object)[after]).where(~np.isnan(tipping_weight)).to_numpy(),
    })
    return counts, tipping


def _tipping(x_k: np.ndarray, s_rest: np.ndarray, w0: float, scorecard: Scorecard
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per deal, the weight in [0, 1] nearest ``w0`` at which the tier differs from the tier at
    ``w0`` (NaN when none does), the tier there, and the tier now.

    The score ``20·(w·x_k + (1−w)·S_rest)`` is linear in w, so the tier is constant between the
    threshold crossings ``w*`` that lie in [0, 1]. The tier is evaluated at 0, 1, each crossing,
    and the midpoint of each piece between them: a change happens *at* a crossing (a score that
    reaches a threshold from below) or just *beyond* it (one that leaves it from above). A
    crossing at 0 or 1 whose change would lie outside [0, 1] is therefore not a tipping weight.
    """
    n = len(x_k)
    now = _tiers_of(20 * (w0 * x_k + (1 - w0) * s_rest), scorecard)
    crossings = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for theta in (scorecard.tiers["high"], scorecard.tiers["medium"]):
            w_star = (theta / 20 - s_rest) / (x_k - s_rest)
            w_star = np.where(np.abs(w_star) < 1e-12, 0.0, np.where(np.abs(w_star - 1) < 1e-12, 1.0, w_star))
            crossings.append(np.where(np.isfinite(w_star) & (w_star >= 0) & (w_star <= 1), w_star, np.nan))
    points = np.sort(np.column_stack([np.zeros(n), np.ones(n)] + crossings), axis=1)  # NaN sorts last
    mids = (points[:, :-1] + points[:, 1:]) / 2

    def tiers_at(w: np.ndarray) -> np.ndarray:
        return _tiers_of(20 * (w * x_k[:, None] + (1 - w) * s_rest[:, None]), scorecard)

    # the change beyond a crossing is reached from the piece's end nearer w0
    mid_tip = np.where(mids > w0, points[:, :-1], points[:, 1:])
    tips = np.hstack([points, mid_tip])
    tiers = np.hstack([tiers_at(points), tiers_at(mids)])
    valid = np.hstack([~np.isnan(points), ~np.isnan(mids)]) & (tiers != now[:, None])
    distance = np.where(valid, np.abs(tips - w0), np.inf)
    best = distance.argmin(axis=1) if n else np.zeros(0, int)  # crossings before midpoints on ties
    rows = np.arange(n)
    found = np.isfinite(distance[rows, best])
    return np.where(found, tips[rows, best], np.nan), np.where(found, tiers[rows, best], now), now


@reused
def sweep_counts(deals: pd.DataFrame, scorecard: Scorecard) -> pd.DataFrame:
    """:func:`weight_sweep` tier counts of every dimension with a baseline weight above 0, stacked
    with a ``dimension`` column."""
    swept = [k for k, w in scorecard.weights().items() if w > 0]
    return pd.concat([weight_sweep(deals, scorecard, k)[0].assign(dimension=k) for k in swept], ignore_index=True)


def transition_grid(comparison: ScenarioComparison, scenario: str) -> pd.DataFrame:
    """The tier transition matrix of one scenario: baseline tier (rows) × scenario tier (columns),
    deals in each cell, tiers in the order high, medium, low."""
    here = comparison.transitions[comparison.transitions["scenario"] == scenario]
    return (here.pivot(index="baseline_tier", columns="scenario_tier", values="deals")
            .reindex(index=list(TIERS), columns=list(TIERS)).fillna(0).astype(int))


def concentration_for_sd(weights: dict[str, float], sd: float) -> float:
    """Dirichlet concentration κ that gives the largest baseline weight the standard deviation ``sd``:
    ``κ = w(1−w)/sd² − 1``."""
    w = max(weights.values())
    kappa = w * (1 - w) / sd**2 - 1
    if kappa <= 0:
        raise ValueError(f"sd {sd} is too large for a weight of {w}: at most {np.sqrt(w * (1 - w) / 2):.3f}")
    return kappa


@dataclass(frozen=True, eq=False)
class WeightStability(TableResult):
    """Result of :func:`weight_monte_carlo`; reads like its ``table`` (one row per scored deal)."""

    table: pd.DataFrame  # deal_id, tier, p_high, p_medium, p_low, p_stay, stable
    concentration: float  # κ of the Dirichlet
    draws: int
    seed: int
    sd: dict[str, float]  # standard deviation of each drawn weight


@reused
def weight_monte_carlo(
    deals: pd.DataFrame, scorecard: Scorecard, n: int = 2000, concentration: float | None = None,
    sd: float = 0.05, seed: int = 0, stable_at: float = 0.9,
) -> WeightStability:
    """Tier stability under random weights drawn from a Dirichlet centred on the baseline.

    Only dimensions with a baseline weight above 0 are drawn. ``concentration`` (κ) defaults to
    :func:`concentration_for_sd` of ``sd``. Per scored deal: ``p_high, p_medium, p_low``, ``p_stay``
    (probability of its baseline tier) and ``stable`` (``p_stay ≥ stable_at``). Reproducible for a seed.
    """
    base = {k: v for k, v in scorecard.weights().items() if v > 0}
    kappa = concentration if concentration is not None else concentration_for_sd(base, sd)
    dims = list(base)
    scored, x = _scored_points(deals, scorecard, dims)
    w0 = np.array([base[k] for k in dims])
    draws = np.random.default_rng(seed).dirichlet(kappa * w0, size=n)  # n × dims
    tiers = _tiers_of(20 * x @ draws.T, scorecard)  # deals × n
    now = _tiers_of(20 * x @ w0, scorecard)
    p = np.stack([(tiers == t).mean(axis=1) for t in range(3)], axis=1)
    out = pd.DataFrame({"deal_id": scored["deal_id"].to_numpy(), "tier": np.asarray(TIERS)[now],
                        "p_high": p[:, 0], "p_medium": p[:, 1], "p_low": p[:, 2],
                        "p_stay": p[np.arange(len(now)), now]})
    out["stable"] = out["p_stay"] >= stable_at
    return WeightStability(out, concentration=kappa, draws=n, seed=seed,
                           sd={k: float(np.sqrt(v * (1 - v) / (kappa + 1))) for k, v in base.items()})


def stability_by_tier(stability: WeightStability) -> pd.DataFrame:
    """Per baseline tier (high, medium, low): deals and the share that keep their tier
    (``tier, deals, stable_share``; NaN share for a tier without deals)."""
    table = stability.groupby("tier").agg(deals=("deal_id", "size"), stable_share=("stable", "mean"))
    table = table.reindex(list(TIERS))
    table["deals"] = table["deals"].fillna(0).astype(int)
    return table.rename_axis("tier").reset_index()


def closed_in(deals: pd.DataFrame, window: Period) -> pd.DataFrame:
    """The deals closed (won or lost) within ``window``: the history a backtest or a fit uses."""
    return deals[window.contains(deals["closed_at"]) & deals["status"].isin(["won", "lost"])]


def auc(scores: np.ndarray, won: np.ndarray) -> float:
    """Area under the ROC curve: Mann–Whitney U of won vs lost scores / (n_won · n_lost)."""
    won = np.asarray(won, dtype=bool)
    pos, neg = scores[won], scores[~won]
    if len(pos) == 0 or len(neg) == 0:
        return np.nan
    return float(stats.mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))


def _auc_fast(scores: np.ndarray, won: np.ndarray) -> float:
    # Rank form of the same statistic, for bootstrap loops: (R_won − n_won(n_won+1)/2) / (n_won·n_lost)
    n1 = int(won.sum())
    n0 = len(won) - n1
    if n1 == 0 or n0 == 0:
        return np.nan
    ranks = stats.rankdata(scores)
    return float((ranks[won].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (NaN, NaN when n = 0)."""
    if n == 0:
        return (np.nan, np.nan)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


@dataclass(frozen=True, eq=False)
class Backtest(ResultDisplay):
    """Result of :func:`backtest`."""

    auc: pd.DataFrame  # scenario, closed, won, lost, auc, auc_low, auc_high, diff_vs_baseline, diff_low, diff_high, significant
    tiers: pd.DataFrame  # scenario, tier, deals, won, win_rate, win_rate_low, win_rate_high, lift
    too_few: bool  # fewer than ``min_class`` won or lost deals: too uncertain to choose weights on
    min_class: int
    unavailable: str | None = None  # "few_closed": fewer than MIN_AUC won or lost scored deals, no AUC
    unscored: int = 0  # closed deals given that could not be scored under every weighting
    unscored_reasons: dict[str, int] = field(default_factory=dict)  # reason → deals


@reused
def backtest(
    deals: pd.DataFrame, scorecard: Scorecard, scenarios: str | list[str] | None = None, n_boot: int = 1000,
    seed: int = 0, confidence: float = 0.95,
) -> Backtest:
    """How well each weighting separates won from lost among closed deals scored under all of them.

    AUC with a percentile bootstrap CI; for each scenario the paired bootstrap CI of its AUC minus
    the baseline's (the same resampled deals for both); win rate per tier with Wilson intervals and
    the lift of each tier (its win rate ÷ the overall win rate). A scenario's difference is
    ``significant`` when its interval excludes 0 (:func:`differs_beyond_noise`). ``too_few`` below
    :data:`MIN_CLASS` won or lost deals; below :data:`MIN_AUC` won or lost scored deals no AUC is
    computed at all (``unavailable = "few_closed"``, which a report states instead of the
    ``too_few`` caution). Closed deals that cannot be scored under every weighting are counted in
    ``unscored`` with their reasons, so the count of closed deals given = ``closed`` + ``unscored``.
    """
    names = [None] + (scenario_names(scorecard, scenarios) if scenarios is not None else [])
    closed = deals[deals["status"].isin(["won", "lost"])]
    scored = {name: score_deals(closed, scorecard, scenario=name) for name in names}
    ok = np.logical_and.reduce([s["score"].notna().to_numpy() for s in scored.values()]) if len(closed) else \
        np.zeros(0, bool)
    reason = pd.Series(pd.NA, index=closed.index, dtype="object")
    for s_ in scored.values():
        reason = reason.fillna(s_["unscored_reason"].astype("object"))
    unscored_reasons = {str(k): int(v) for k, v in reason[~ok].value_counts().items()}
    won = (closed["status"].to_numpy() == "won")[ok]
    scores = {name: s["score"].to_numpy()[ok] for name, s in scored.items()}
    few = min(int(won.sum()), int((~won).sum())) < MIN_AUC
    if few:
        n_boot = 0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(won), size=(n_boot, len(won))) if len(won) and n_boot else np.zeros((0, 0), dtype=int)
    boot = {name: np.array([_auc_fast(sc[i], won[i]) for i in idx]) for name, sc in scores.items()}
    alpha = (1 - confidence) / 2
    rows, tier_rows = [], []
    overall = won.mean() if len(won) else np.nan
    for name in names:
        diff = boot[name] - boot[None]
        rows.append({
            "scenario": name or "baseline", "closed": int(len(won)), "won": int(won.sum()), "lost": int((~won).sum()),
            "auc": np.nan if few else auc(scores[name], won),
            "auc_low": float(np.nanquantile(boot[name], alpha)) if n_boot else np.nan,
            "auc_high": float(np.nanquantile(boot[name], 1 - alpha)) if n_boot else np.nan,
            "diff_vs_baseline": np.nan if few else auc(scores[name], won) - auc(scores[None], won),
            "diff_low": float(np.nanquantile(diff, alpha)) if name and n_boot else np.nan,
            "diff_high": float(np.nanquantile(diff, 1 - alpha)) if name and n_boot else np.nan,
        })
        rows[-1]["significant"] = differs_beyond_noise(rows[-1]["diff_low"], rows[-1]["diff_high"])
        tiers = scored[name]["tier"].to_numpy()[ok]
        for tier in TIERS:
            here = tiers == tier
            k, n = int(won[here].sum()), int(here.sum())
            low, high = wilson_interval(k, n, confidence)
            rate = k / n if n else np.nan
            tier_rows.append({"scenario": name or "baseline", "tier": tier, "deals": n, "won": k, "win_rate": rate,
                              "win_rate_low": low, "win_rate_high": high,
                              "lift": rate / overall if n and overall > 0 else np.nan})
    n_won, n_lost = int(won.sum()), int((~won).sum())
    return Backtest(pd.DataFrame(rows), pd.DataFrame(tier_rows), n_won < MIN_CLASS or n_lost < MIN_CLASS, MIN_CLASS,
                    "few_closed" if few else None, int((~ok).sum()), unscored_reasons)


def differs_beyond_noise(low: float, high: float) -> bool:
    """The significance rule for a difference with a confidence interval ``[low, high]``: the
    interval excludes 0. An unknown interval (NaN) is not significant."""
    return bool(pd.notna(low) and pd.notna(high) and (low > 0 or high < 0))


def _fit_logistic(x: np.ndarray, y: np.ndarray, start: np.ndarray | None = None, l2: float = 0.0) -> np.ndarray:
    """Intercept and β ≥ 0 of a logistic regression of y on x (maximum likelihood, L-BFGS-B),
    optionally started from ``start`` (bootstrap refits start from the full-data fit); ``l2 > 0``
    adds the ridge penalty ``l2/2 · Σβ²`` (intercept not penalised)."""

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        eta = params[0] + x @ params[1:]
        p = special.expit(eta)
        # negative log-likelihood, written stably: Σ log(1 + e^η) − y·η
        nll = np.sum(np.logaddexp(0, eta) - y * eta) + l2 / 2 * params[1:] @ params[1:]
        grad_eta = p - y
        return nll, np.concatenate([[grad_eta.sum()], x.T @ grad_eta + l2 * params[1:]])

    if start is None:
        start = np.concatenate([[0.0], np.full(x.shape[1], 0.1)])
    bounds = [(None, None)] + [(0, None)] * x.shape[1]
    result = optimize.minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x


def _weights_from_beta(beta: np.ndarray) -> np.ndarray:
    total = beta.sum()
    return beta / total if total > 0 else np.full(len(beta), 1 / len(beta))


@dataclass(frozen=True, eq=False)
class SuggestedWeights(ResultDisplay):
    """Result of :func:`suggest_weights`."""

    weights: pd.DataFrame  # dimension, baseline, suggested, low, high
    cv: pd.DataFrame  # which (baseline / suggested), auc (out-of-fold), plus diff and its CI on the suggested row
    better_than_baseline: bool  # the difference's CI lies above 0
    unavailable: str | None = None  # "few_closed": fewer than MIN_AUC won or lost scored deals, nothing fitted
    won: int = 0  # closed deals the fit could use (every weighted field known): won
    lost: int = 0  # … and lost (a backtest on partial cards may count more)


@reused
def suggest_weights(
    deals: pd.DataFrame, scorecard: Scorecard, dimensions: list[str] | None = None, folds: int = 5,
    seed: int = 0, n_boot: int = 200, confidence: float = 0.95,
) -> SuggestedWeights:
    """Weights that fit the won/lost history, cross-validated against the baseline.

    Fits ``P(won) = expit(a + Σ β_k x_k)`` with β ≥ 0 on closed deals, ``w = β / Σβ``. The AUC of
    out-of-fold scores (each deal scored with weights fitted without it) is compared with the
    baseline's on the same deals, with a paired bootstrap CI of the difference; the suggestion is
    called better only when that CI lies above 0. Weight intervals are percentile bootstrap.
    """
    dims = dimensions or [k for k in scorecard.dimensions]
    closed = deals[deals["status"].isin(["won", "lost"])]
    scored, x = _scored_points(closed, scorecard, dims)
    y = (scored["status"].to_numpy() == "won").astype(float)
    base = scorecard.weights()
    w_base = np.array([base[k] for k in dims])
    if min(int(y.sum()), int(len(y) - y.sum())) < MIN_AUC:
        # a fit on a handful of deals (or on one class) is noise: report nothing rather than it
        empty = np.full(len(dims), np.nan)
        weights = pd.DataFrame({"dimension": dims, "baseline": w_base, "suggested": empty, "low": empty, "high": empty})
        cv = pd.DataFrame({"which": ["baseline", "suggested"], "auc": np.nan, "diff": np.nan, "diff_low": np.nan,
                           "diff_high": np.nan})
        return SuggestedWeights(weights, cv, False, "few_closed", won=int(y.sum()), lost=int(len(y) - y.sum()))

    fold_of = np.random.default_rng(seed).permutation(len(y)) % folds
    oof = np.full(len(y), np.nan)
    for f in range(folds):
        train, test = fold_of != f, fold_of == f
        w = _weights_from_beta(_fit_logistic(x[train], y[train])[1:])
        oof[test] = 20 * x[test] @ w
    base_scores = 20 * x @ w_base
    won = y.astype(bool)
    rng = np.random.default_rng(seed + 1)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    diff = np.array([_auc_fast(oof[i], won[i]) - _auc_fast(base_scores[i], won[i]) for i in idx])
    alpha = (1 - confidence) / 2
    d_low, d_high = float(np.nanquantile(diff, alpha)), float(np.nanquantile(diff, 1 - alpha))

    full = _fit_logistic(x, y)
    w_full = _weights_from_beta(full[1:])
    boot_w = np.array([_weights_from_beta(_fit_logistic(x[i], y[i], start=full)[1:]) for i in idx])
    weights = pd.DataFrame({"dimension": dims, "baseline": w_base, "suggested": w_full,
                            "low": np.quantile(boot_w, alpha, axis=0), "high": np.quantile(boot_w, 1 - alpha, axis=0)})
    auc_base, auc_sugg = auc(base_scores, won), auc(oof, won)
    cv = pd.DataFrame([
        {"which": "baseline", "auc": auc_base, "diff": np.nan, "diff_low": np.nan, "diff_high": np.nan},
        {"which": "suggested", "auc": auc_sugg, "diff": auc_sugg - auc_base, "diff_low": d_low, "diff_high": d_high},
    ])
    better = d_low > 0
    return SuggestedWeights(weights, cv, bool(better), won=int(y.sum()), lost=int(len(y) - y.sum()))


__all__ = [
    "Backtest", "ScenarioComparison", "SuggestedWeights", "WeightStability", "auc", "backtest", "closed_in",
    "compare_scenarios", "concentration_for_sd", "differs_beyond_noise", "scenario_names", "stability_by_tier",
    "suggest_weights", "sweep_counts", "sweep_weights", "transition_grid", "weight_monte_carlo", "weight_sweep",
    "wilson_interval",
]
