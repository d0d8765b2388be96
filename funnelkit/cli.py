"""The ``funnelkit`` command: ``sample`` writes sample data, ``score`` scores open deals and plans
follow-ups, ``report`` runs the report matrix."""
from __future__ import annotations

import argparse
import sys

from funnelkit.config import ConfigError
from funnelkit.data import DataError


def _sample(args: argparse.Namespace) -> int:
    from funnelkit.io import sample_dataset, write_dataset

    data = sample_dataset(seed=args.seed, n_deals=args.deals)
    if args.shape == "canonical":
        folder = write_dataset(data, args.out, fmt=args.format)
    else:
        from funnelkit import crm_shapes
        from funnelkit.config import load_config

        writers = {"salesforce": lambda: crm_shapes.write_salesforce(data, args.out),
                   "hubspot": lambda: crm_shapes.write_hubspot(data, args.out),
                   "snapshot": lambda: crm_shapes.write_snapshot(data, args.out, load_config())}
        folder = writers[args.shape]()
    print(f"wrote {len(data.deals):,} deals and {len(data.events):,} stage events to {folder} ({args.shape})")
    return 0


def _report(args: argparse.Namespace) -> int:
    from funnelkit.report import run_reports

    summary = run_reports(args.matrix, jobs=args.jobs, only=args.only, output=args.output, progress=not args.quiet,
                          data_source=args.data)
    ok = len(summary.results) - len(summary.failed)
    print(f"{ok} of {len(summary.results)} reports written in {summary.seconds:.1f} s; index: {summary.index}")
    for result in summary.failed:
        print(f"FAILED {result.job.title}: {result.error}\n  notebook: {result.notebook}", file=sys.stderr)
    return 1 if summary.failed else 0


def _check(args: argparse.Namespace) -> int:
    from funnelkit.check import check_report
    from funnelkit.config import load_config
    from funnelkit.io import load_data

    config = load_config()
    data = load_data(args.data, config=config, as_of=args.as_of, preset=args.preset)
    print("\n".join(check_report(data, config)))
    if args.quarantine_out:
        from funnelkit.safe_output import write_csv

        write_csv(data.quarantine, args.quarantine_out)
        print(f"quarantine: {len(data.quarantine):,} rows → {args.quarantine_out}")
    return 0


def _score(args: argparse.Namespace) -> int:
    import pandas as pd

    from funnelkit.aggregate import open_deals
    from funnelkit.config import load_config
    from funnelkit.io import open_dataset, write_table_export
    from funnelkit.periods import as_of_bound
    from funnelkit.playbook import follow_up_plan, load_playbook
    from funnelkit.scorecard import load_scorecard, score_deals, tier_summary
    from funnelkit.screening import load_screening, screen_opportunities

    config = load_config()
    data = open_dataset(args.data, as_of=args.as_of, config=config, preset=args.preset)
    bound = as_of_bound(args.as_of, data.as_of)
    plan_date = bound - pd.Timedelta(days=1) if args.as_of is None or len(args.as_of) <= 10 else bound
    card = load_scorecard(args.scorecard)
    try:
        card.weights(args.scenario)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    deals = open_deals(data, config, bound)
    if args.screened_only:
        screened = screen_opportunities(deals, load_screening(), plan_date)
        deals = deals[deals["deal_id"].isin(screened.loc[screened["is_opportunity"], "deal_id"])]
    scored = score_deals(deals, card, scenario=args.scenario)
    scored = scored.assign(stage=deals["stage"].to_numpy(), last_follow_up_at=deals["last_follow_up_at"].to_numpy())
    summary = tier_summary(scored)
    what = "screened opportunity points" if args.screened_only else "open deals"
    print(f"{len(scored):,} {what} at {plan_date:%Y-%m-%d}, scenario: {args.scenario or 'baseline'}")
    print(f"{'tier':<10}{'deals':>8}{'share':>9}{'amount':>18}")
    for row in summary.itertuples():
        print(f"{row.tier:<10}{row.deals:>8,}{row.share:>9.1%}{row.amount:>18,.0f}")
    if args.out:
        plan = follow_up_plan(scored, load_playbook(), plan_date)
        path = write_table_export(plan, args.out, sheet_by="rep")
        print(f"follow-up plan: {len(plan):,} deals, {int(plan['overdue'].sum()):,} overdue → {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="funnelkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="write the seeded sample dataset (deals and stage_events)")
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--deals", type=int, default=3000, help="number of deals (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format (default csv)")
    p.add_argument("--shape", choices=["canonical", "salesforce", "hubspot", "snapshot"], default="canonical",
                   help="write it as this CRM would export it (default: canonical tables)")
    p.set_defaults(func=_sample)

    p = sub.add_parser("check", help="print the data-quality report of a dataset, without analysis")
    p.add_argument("data", help="a dataset folder or DuckDB file")
    p.add_argument("--preset", help="CRM export shape: salesforce, hubspot, snapshot (params/presets)")
    p.add_argument("--as-of", dest="as_of", help="reject anything dated after this date")
    p.add_argument("--quarantine-out", help="write the quarantined rows to this CSV")
    p.set_defaults(func=_check)

    p = sub.add_parser("score", help="score open deals and write the follow-up plan")
    p.add_argument("data", help='"sample" or a dataset folder / DuckDB file')
    p.add_argument("--scenario", help="a weight scenario from params/scorecard.yaml (default: baseline)")
    p.add_argument("--scorecard", help="scorecard YAML (default params/scorecard.yaml)")
    p.add_argument("--as-of", dest="as_of", help="analysis date (default: the latest date in the data)")
    p.add_argument("--screened-only", action="store_true", help="only deals that pass the opportunity screen")
    p.add_argument("--preset", help="CRM export shape of DATA: salesforce, hubspot, snapshot (params/presets)")
    p.add_argument("--out", help="write the follow-up plan here (.xlsx: one sheet per rep, or .csv)")
    p.set_defaults(func=_score)

    p = sub.add_parser("report", help="run the report matrix and write HTML reports")
    p.add_argument("--matrix", help="report matrix YAML (default params/reports.yaml)")
    p.add_argument("--jobs", type=int, help="parallel report processes (default: the core count)")
    p.add_argument("--only", help="run only reports whose path matches this glob, e.g. '2024-Q2/East/*'")
    p.add_argument("--output", help="output folder (default from the matrix: reports)")
    p.add_argument("--data", help="data source instead of the matrix's: a folder, a DuckDB file, "
                                  "duckdb:///file.duckdb or duckdb:///parquet-folder, spark:table-or-path")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataError) as exc:
        print(f"funnelkit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
