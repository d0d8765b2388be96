"""Fitted scorecard on the sample: held-out AUC and tier win rates beside the current card's (printed,
never asserted), and how long fitting takes.

    python benchmarks/bench_fit.py [--deals 3000] [--seed 0] [--tiers fixed|quantile]

Validation as ``funnelkit fit-scorecard`` does it: a time split on close dates (the latest 25% of
closed deals held out), and, for comparison, stratified 5-fold cross-validation with the dates ignored.
"""
from __future__ import annotations

import argparse
import time

import funnelkit as fk
from funnelkit.analyses import fit
from funnelkit.presentation.present import load_text
from funnelkit.analyses.scorecard import load_scorecard

TEXT = load_text("en")


def show(name: str, v: fit.Validation) -> None:
    print(f"{name}: {fit.method_text(v, TEXT)}")
    print(f"  fitted card held-out AUC {v.auc:.3f} (95% CI {v.auc_low:.3f} to {v.auc_high:.3f}), "
          f"{v.scored:,} of {v.held_out:,} held-out deals scored")
    if v.current_note is None:
        print(f"  current card AUC {v.current_auc:.3f} vs fitted {v.current_fitted_auc:.3f} "
              f"on the {v.current_scored:,} held-out deals both score")
    else:
        print(f"  current card not compared: {fit.current_note_text(v, TEXT)}")
    for r in v.tiers.itertuples():
        rate = f"{r.win_rate:.1%} ({r.win_rate_low:.1%} to {r.win_rate_high:.1%})" if r.deals else "no deals"
        print(f"  tier {r.tier:<7}{r.deals:>6,} deals, win rate {rate}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiers", choices=["fixed", "quantile"], default="fixed")
    args = parser.parse_args()

    data = fk.sample_dataset(seed=args.seed, n_deals=args.deals)
    closed, won = fit.closed_outcomes(data.deals)
    current = load_scorecard()
    print(f"sample: {args.deals:,} deals (seed {args.seed}), {len(closed):,} closed, {int(won.sum()):,} won")
    start = time.perf_counter()
    card = fit.fit_card(closed, won, tiers=args.tiers)
    print(f"fit on all closed deals: {time.perf_counter() - start:.2f} s; weights "
          + ", ".join(f"{k} {w:.0%}" for k, w in sorted(card.weights.items(), key=lambda kv: -kv[1])))
    start = time.perf_counter()
    show("time split", fit.validate_fit(closed, won, current, tiers=args.tiers, seed=args.seed))
    print(f"  ({time.perf_counter() - start:.2f} s)")
    start = time.perf_counter()
    show("k-fold", fit.validate_fit(closed.drop(columns=["closed_at"]), won, current, tiers=args.tiers, seed=args.seed))
    print(f"  ({time.perf_counter() - start:.2f} s)")


if __name__ == "__main__":
    main()
