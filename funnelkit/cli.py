"""The ``funnelkit`` command: ``sample`` writes sample data, ``report`` runs the report matrix."""
from __future__ import annotations

import argparse
import sys

from funnelkit.config import ConfigError
from funnelkit.data import DataError


def _sample(args: argparse.Namespace) -> int:
    from funnelkit.io import sample_dataset, write_dataset

    data = sample_dataset(seed=args.seed, n_deals=args.deals)
    folder = write_dataset(data, args.out, fmt=args.format)
    print(f"wrote {len(data.deals):,} deals and {len(data.events):,} stage events to {folder}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from funnelkit.report import run_reports

    summary = run_reports(args.matrix, jobs=args.jobs, only=args.only, output=args.output, progress=not args.quiet)
    ok = len(summary.results) - len(summary.failed)
    print(f"{ok} of {len(summary.results)} reports written in {summary.seconds:.1f} s; index: {summary.index}")
    for result in summary.failed:
        print(f"FAILED {result.job.title}: {result.error}\n  notebook: {result.notebook}", file=sys.stderr)
    return 1 if summary.failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="funnelkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="write the seeded sample dataset (deals and stage_events)")
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--deals", type=int, default=3000, help="number of deals (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format (default csv)")
    p.set_defaults(func=_sample)

    p = sub.add_parser("report", help="run the report matrix and write HTML reports")
    p.add_argument("--matrix", help="report matrix YAML (default params/reports.yaml)")
    p.add_argument("--jobs", type=int, help="parallel report processes (default: the core count)")
    p.add_argument("--only", help="run only reports whose path matches this glob, e.g. '2024-Q2/East/*'")
    p.add_argument("--output", help="output folder (default from the matrix: reports)")
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
