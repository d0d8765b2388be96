"""The ``funnelkit`` command: ``init`` writes a project folder (and a draft preset for an export),
``sample`` writes sample data, ``check`` reports data quality, ``score`` scores open deals and plans
follow-ups, ``report`` runs the report matrix.

Every command finds its settings in the project: ``--project DIR``, else the current folder when it
holds ``params/``, else the packaged defaults."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from funnelkit.config import ConfigError
from funnelkit.inputs.data import DataError

if TYPE_CHECKING:
    import pandas as pd

    from funnelkit.analyses.scorecard import Scorecard


def _sample(args: argparse.Namespace) -> int:
    from funnelkit.inputs.io import sample_dataset, write_dataset

    data = sample_dataset(seed=args.seed, n_deals=args.deals)
    if args.shape == "canonical":
        folder = write_dataset(data, args.out, fmt=args.format)
    else:
        from funnelkit.inputs import crm_shapes
        from funnelkit.config import load_config

        writers = {"salesforce": lambda: crm_shapes.write_salesforce(data, args.out),
                   "hubspot": lambda: crm_shapes.write_hubspot(data, args.out),
                   "snapshot": lambda: crm_shapes.write_snapshot(data, args.out, load_config())}
        folder = writers[args.shape]()
    print(f"wrote {len(data.deals):,} deals and {len(data.events):,} stage events to {folder} ({args.shape})")
    return 0


def _report(args: argparse.Namespace) -> int:
    from funnelkit.config import load_report_matrix, matrix_with
    from funnelkit.runner.report import run_reports

    periods = [p.strip() for text in args.period or [] for p in text.split(",") if p.strip()]
    matrix = matrix_with(load_report_matrix(args.matrix), data=args.data, preset=args.preset, as_of=args.as_of,
                         language=args.language, periods=periods or None)
    summary = run_reports(matrix, jobs=args.jobs, only=args.only, output=args.output, progress=not args.quiet,
                          cold=args.cold, verbose=args.verbose)
    if not summary.results:
        print(f"funnelkit: no report matches --only {args.only!r}", file=sys.stderr)
        return 1
    ok = summary.written
    print(f"{ok} of {len(summary.results)} reports written in {summary.seconds:.1f} s; index: {summary.index}")
    for result in summary.failed:
        print(f"FAILED {result.job.title}: {result.error}\n  notebook: {result.notebook}", file=sys.stderr)
        if result.log:
            print("  kernel log:\n    " + result.log.replace("\n", "\n    "), file=sys.stderr)
    return 1 if summary.failed else 0


def _check(args: argparse.Namespace) -> int:
    from funnelkit.runner.check import check_report, verdict
    from funnelkit.config import load_config
    from funnelkit.inputs.io import load_data

    config = load_config()
    data = load_data(args.data, config=config, as_of=args.as_of, preset=args.preset)
    print("\n".join(check_report(data, config)))
    if args.quarantine_out:
        from funnelkit.presentation.safe_output import write_csv

        write_csv(data.quarantine, args.quarantine_out)
        print(f"quarantine: {len(data.quarantine):,} rows → {args.quarantine_out}")
    ok, lines = verdict(data, args.max_quarantined / 100)
    print("\n" + "\n".join(lines))
    return 0 if ok else 1


def _init(args: argparse.Namespace) -> int:
    from funnelkit.runner.project import init_project

    lines, loaded = init_project(Path(args.dir), Path(args.source) if args.source else None, args.preset_name)
    print("\n".join(lines))
    print(_ensure_kernel())
    return 0 if loaded else 1  # the project is written, but its draft preset does not load yet


def _ensure_kernel() -> str:
    """Register the Jupyter kernel "funnelkit" of this Python when none is installed (a wheel
    install has none), so that `funnelkit report` runs right after `funnelkit init`."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from funnelkit.runner.report import KERNEL_NAME

    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        return f"Jupyter kernel {KERNEL_NAME!r}: already installed"
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        path = install(kernel_name=KERNEL_NAME, display_name="Python (funnelkit)", prefix=sys.prefix)
        return f"Jupyter kernel {KERNEL_NAME!r}: installed in {path}"


def _print_scores(deals: "pd.DataFrame", scored: "pd.DataFrame", card: "Scorecard",
                  summary: "pd.DataFrame | None" = None, currency: str | None = None) -> None:
    """Deals per tier, then the unscored ones by reason and the fields that would score them."""
    from funnelkit.analyses.scorecard import tier_summary, unscored_summary

    has_amount = "amount" in scored and scored["amount"].notna().any()
    if summary is None:
        summary = tier_summary(scored if "amount" in scored else scored.assign(amount=0.0))
    amount = f"amount ({currency})" if currency else "amount"  # the funnel's currency, as the reports show it
    print(f"{'tier':<10}{'deals':>8}{'of deals':>10}" + (f"{amount:>18}{'of value':>10}" if has_amount else ""))
    for row in summary.itertuples():
        print(f"{row.tier:<10}{row.deals:>8,}{row.deal_share:>10.1%}"
              + ((f"{row.amount:>18,.0f}" if row.amount == row.amount else f"{'–':>18}")  # no deal: no amount
                 + f"{row.value_share:>10.1%}" if has_amount else ""))
    partial = int(scored["partial"].sum()) if card.missing == "renormalise" else 0
    if partial:
        print(f"{partial:,} deals scored on part of the card (missing: renormalise); coverage: "
              + ", ".join(f"{k} {v:,}" for k, v in scored.loc[scored["partial"], "coverage"].value_counts().items()))
    from funnelkit.presentation.present import load_text, unscored_words

    reasons = unscored_summary(deals, scored, card)
    print(f"unscored: {int(reasons['deals'].sum()):,} deals")
    english = load_text("en")
    for row in reasons.head(10).itertuples():
        absent = f" (no {row.absent} in the data: map an export column to it in the preset)" if row.absent else ""
        reason = unscored_words(row.reason, english, name=lambda column, _: column)  # columns as the data names them
        print(f"  {row.deals:>7,}  {reason}; would be scored with: {row.fields}{absent}")
    if len(reasons) > 10:
        print(f"  {int(reasons['deals'].iloc[10:].sum()):,} more deals, {len(reasons) - 10} other reasons")
    if len(reasons) and card.missing == "unscored":
        print("  (or set `missing: renormalise` in the scorecard to score deals on the fields they have)")
    if (reasons["absent"] != "").any():
        print("  (or learn a scorecard from the fields the data has: funnelkit fit-scorecard DATA --out card.yaml)")


def _score(args: argparse.Namespace) -> int:
    import pandas as pd

    from funnelkit.events.aggregate import open_deals
    from funnelkit.config import load_config
    from funnelkit.inputs.flat import is_table_file, read_deals_table
    from funnelkit.inputs.io import open_dataset, write_table_export
    from funnelkit.periods import as_of_bound
    from funnelkit.analyses.playbook import follow_up_plan, load_playbook
    from funnelkit.analyses.scorecard import load_scorecard, score_deals, tier_summary
    from funnelkit.analyses.screening import load_screening, screen_opportunities

    config = load_config()
    card = load_scorecard(args.scorecard)
    try:
        card.weights(args.scenario)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.preset is None and is_table_file(args.data):  # one table of deals, no stage history: score every row
        table = read_deals_table(args.data)
        scored = score_deals(table, card, scenario=args.scenario)
        print(f"{len(scored):,} deals in {args.data} (no stage history: every row scored, whatever its status), "
              f"scenario: {args.scenario or 'baseline'}")
        _print_scores(table, scored, card, currency=config.currency)
        if args.out:
            print(f"scores: {len(scored):,} deals → {write_table_export(scored, args.out)}")
        return 0 if scored["score"].notna().any() else 1
    data = open_dataset(args.data, as_of=args.as_of, config=config, preset=args.preset)
    bound = as_of_bound(args.as_of, data.as_of)
    plan_date = bound - pd.Timedelta(days=1) if args.as_of is None or len(args.as_of) <= 10 else bound
    deals = open_deals(data, config, bound)
    if args.screened_only:
        screened = screen_opportunities(deals, load_screening(), plan_date)
        deals = deals[deals["deal_id"].isin(screened.loc[screened["is_opportunity"], "deal_id"])]
    scored = score_deals(deals, card, scenario=args.scenario)  # keeps stage and last follow-up for the plan
    summary = tier_summary(scored)
    what = "screened opportunity points" if args.screened_only else "open deals"
    print(f"{len(scored):,} {what} at {plan_date:%Y-%m-%d}, scenario: {args.scenario or 'baseline'}")
    _print_scores(deals, scored, card, summary, currency=config.currency)
    if not scored["score"].notna().any():  # an empty plan is no plan: say so, write nothing, fail
        why = (f"no {what} at {plan_date:%Y-%m-%d} in {args.data}" if not len(scored) else
               f"none of the {len(scored):,} {what} could be scored (reasons and the fields that would score them above)")
        print(f"funnelkit score: nothing scored: {why}"
              + (f"; no follow-up plan written to {args.out}" if args.out else ""), file=sys.stderr)
        return 1
    if args.out:
        from funnelkit.presentation.present import load_text
        from funnelkit.presentation.present_opportunities import follow_up_export, follow_up_table

        text = load_text(config.language)
        plan = follow_up_plan(scored, load_playbook(), plan_date, text.language)
        if card.missing == "renormalise":  # say which scores rest on part of the card
            plan = plan.merge(scored[["deal_id", "coverage"]], on="deal_id", how="left")
        # the same columns, order and headers as the report's follow-up list
        labels = {k: v for p in config.pipelines for k, v in config.stage_labels(p, text.language).items()}
        listed = follow_up_export(follow_up_table(plan, text, labels), text)
        path = write_table_export(listed, args.out, sheet_by=text.column("rep"))
        if plan["last_follow_up_at"].notna().any():
            print(f"follow-up plan: {len(plan):,} deals, {int(plan['overdue'].sum()):,} overdue → {path}")
        else:  # "0 overdue" would be a count of nothing: no deal says when it was last followed up
            print(f"follow-up plan: {len(plan):,} deals, overdue unknown: no deal has a last follow-up date (map a "
                  f"column to last_follow_up_at in the preset); each is due on {pd.Timestamp(plan_date):%Y-%m-%d} → {path}")
    return 0


def _fit_scorecard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from funnelkit.analyses import fit
    from funnelkit.inputs.flat import load_deals
    from funnelkit.presentation.present import load_text
    from funnelkit.analyses.scorecard import load_scorecard

    deals = load_deals(args.data, preset=args.preset, as_of=args.as_of, status_column=args.status_column)
    closed, won = fit.closed_outcomes(deals)
    print(f"{len(deals):,} deals read from {args.data}: {len(closed):,} closed ({int(won.sum()):,} won, "
          f"{int(len(won) - won.sum()):,} lost) fit the card; {len(deals) - len(closed):,} open or other status not used")
    fields = [f.strip() for item in args.fields or [] for f in item.split(",") if f.strip()] or None
    current = load_scorecard(args.current)
    words = {language: load_text(language) for language in ("en", "zh")}
    labels = fit.field_labels(list(closed.columns), current, words)
    try:
        fitted = fit.fit_card(closed, won, fields, tiers=args.tiers, missing=args.missing, labels=labels)
        validation = fit.validate_fit(closed, won, current, fields, tiers=args.tiers,
                                      missing=args.missing, folds=args.folds, seed=args.seed)
    except fit.FitError as exc:
        print(f"funnelkit: cannot fit a scorecard from {args.data}: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(fit.render_yaml(fitted, validation, words["en"], source=str(args.data)), encoding="utf-8")
    load_scorecard(out)  # what was written must load like params/scorecard.yaml
    for column, weight in sorted(fitted.weights.items(), key=lambda kv: -kv[1]):
        print(f"  {weight:>4.0%}  {column}")
    for f in fitted.fields:
        if f.left_out:
            print(f"  left out {f.column}: {fit.left_out_text(f, words['en'])}")
    v = validation
    print(f"held out ({fit.method_text(v, words['en'])}): {v.scored:,} of {v.held_out:,} deals scored, AUC {v.auc:.3f} "
          f"(95% CI {v.auc_low:.3f} to {v.auc_high:.3f})")
    for r in v.tiers.itertuples():
        print(f"  {r.tier:<7}{r.deals:>7,} deals  win rate " + (f"{r.win_rate:.1%} ({r.win_rate_low:.1%} to {r.win_rate_high:.1%})"
                                                                 if r.deals else "–, no deals"))
    print(f"  current scorecard: AUC {v.current_auc:.3f} vs {v.current_fitted_auc:.3f} on the {v.current_scored:,} deals both score"
          if v.current_note is None else f"  current scorecard not compared: {fit.current_note_text(v, words['en'])}")
    print(f"scorecard → {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="funnelkit", description=__doc__)
    project = argparse.ArgumentParser(add_help=False)
    project.add_argument("--project", help="project folder holding params/ (and notebooks/); default: the current "
                                           "folder when it holds params/, else the packaged defaults")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="write a project folder: params/, notebooks/, reports.yaml (and a draft preset)")
    p.add_argument("dir", help="the project folder to create (may exist but must not hold params/)")
    p.add_argument("--from", dest="source", help="a CRM export (folder or file): write a draft preset for it")
    p.add_argument("--preset-name", default="my_export", help="name of the draft preset (default my_export)")
    p.set_defaults(func=_init)

    p = sub.add_parser("sample", help="write the seeded sample dataset (deals and stage_events)", parents=[project])
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--deals", type=int, default=3000, help="number of deals (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format (default csv)")
    p.add_argument("--shape", choices=["canonical", "salesforce", "hubspot", "snapshot"], default="canonical",
                   help="write it as this CRM would export it (default: canonical tables)")
    p.set_defaults(func=_sample)

    p = sub.add_parser("check", help="print the data-quality report of a dataset, without analysis", parents=[project])
    p.add_argument("data", help="a dataset folder or DuckDB file")
    p.add_argument("--preset", help="CRM export preset: a name in params/presets (salesforce, hubspot, snapshot, "
                                    "your own) or a preset YAML file")
    p.add_argument("--max-quarantined", type=float, default=20.0, metavar="PERCENT",
                   help="exit non-zero when more than this share of rows is quarantined (default 20)")
    p.add_argument("--as-of", dest="as_of", help="reject anything dated after this date")
    p.add_argument("--quarantine-out", help="write the quarantined rows to this CSV")
    p.set_defaults(func=_check)

    p = sub.add_parser("score", help="score open deals and write the follow-up plan", parents=[project])
    p.add_argument("data", help='"sample" or a dataset folder / DuckDB file')
    p.add_argument("--scenario", help="a weight scenario from params/scorecard.yaml (default: baseline)")
    p.add_argument("--scorecard", help="scorecard YAML (default params/scorecard.yaml)")
    p.add_argument("--as-of", dest="as_of", help="analysis date (default: the latest date in the data)")
    p.add_argument("--screened-only", action="store_true", help="only deals that pass the opportunity screen")
    p.add_argument("--preset", help="CRM export preset of DATA: a name in params/presets or a preset YAML file")
    p.add_argument("--out", help="write the follow-up plan here (.xlsx: one sheet per rep, or .csv)")
    p.set_defaults(func=_score)

    p = sub.add_parser("fit-scorecard", help="learn a scorecard (params/scorecard.yaml format) from won and lost deals",
                       parents=[project])
    p.add_argument("data", help='"sample", a dataset folder / DuckDB file, or one table of deals (csv, xlsx, parquet) '
                               "with a status column (Won / Lost)")
    p.add_argument("--preset", help="CRM export shape of DATA (params/presets)")
    p.add_argument("--fields", nargs="+", help="candidate columns (default: every usable column)")
    p.add_argument("--out", required=True, help="scorecard YAML to write")
    p.add_argument("--tiers", choices=["fixed", "quantile"], default="fixed",
                   help="fixed 80/60 thresholds (default) or quantile: top 20%% high, next 30%% medium")
    p.add_argument("--missing", choices=["unscored", "renormalise"], default="unscored",
                   help="the card's policy for deals missing a field (default unscored)")
    p.add_argument("--status-column", dest="status_column", help="outcome column of a single table (default: Status)")
    p.add_argument("--current", help="the scorecard to compare with (default params/scorecard.yaml)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds when deals have no close date (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the folds and bootstrap (default 0)")
    p.add_argument("--as-of", dest="as_of", help="analysis date (default: the latest date in the data)")
    p.set_defaults(func=_fit_scorecard)

    p = sub.add_parser("report", help="run the report matrix and write HTML reports", parents=[project])
    p.add_argument("--matrix", help="report matrix YAML (default params/reports.yaml)")
    p.add_argument("--data", help='data for every report: "sample", an export folder, a DuckDB file, '
                                  "duckdb:///file.duckdb, duckdb:///parquet-folder or spark:table-or-path")
    p.add_argument("--preset", help="CRM export preset of the data: a name in params/presets or a YAML file")
    p.add_argument("--as-of", dest="as_of", help="analysis date (default: the matrix's, else the latest date in the data)")
    p.add_argument("--language", choices=["en", "zh"], help="report language")
    p.add_argument("--period", action="append", help="period(s) for every entry: 2024-06, 2024-Q2 or 2024 "
                                                      "(repeat or separate with commas)")
    p.add_argument("--jobs", type=int, help="parallel report processes (default: the core count)")
    p.add_argument("--only", help="run only reports whose path matches this glob, e.g. '2024-Q2/East/*'")
    p.add_argument("--output", help="output folder (default from the matrix: reports)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--cold", action="store_true", help="a new kernel for every report (slower; default: one warm kernel per worker)")
    p.add_argument("--verbose", action="store_true", help="show the report kernels' logs")
    p.set_defaults(func=_report)
    return parser


MAX_MESSAGE = 2_000  # characters of an error message printed (the parts quoting data are cut already)


def _use_project(folder: str | None) -> None:
    """Point every command, and the report kernels it starts, at the project ``folder`` (else the
    one found from the current folder: kernels run inside notebooks/, so they are told explicitly)."""
    from funnelkit.config import PROJECT_ENV, project_dir

    if folder is None:
        found = project_dir()
        if found is not None:
            os.environ[PROJECT_ENV] = str(found)
        return
    path = Path(folder).resolve()
    if not (path / "params").is_dir():
        raise ConfigError(f"{folder}: not a project folder (no params/ inside); create one with `funnelkit init {folder}`")
    os.environ[PROJECT_ENV] = str(path)


def main(argv: list[str] | None = None) -> int:
    from funnelkit.config import PROJECT_ENV

    args = build_parser().parse_args(argv)
    before = os.environ.get(PROJECT_ENV)
    try:
        _use_project(getattr(args, "project", None))
        code = args.func(args)
        sys.stdout.flush()  # a reader gone from stdout shows here, inside the try, not at exit
        return code
    except BrokenPipeError:
        # stdout's reader has gone (`funnelkit init … | head`): no traceback, and nothing more written to
        # the closed pipe when Python flushes at exit (Python docs, signal module, "Note on SIGPIPE")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ConfigError, DataError) as exc:
        message = str(exc)
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + f"… ({len(message):,} characters)"
        print(f"funnelkit: {message}", file=sys.stderr)
        return 2
    finally:  # main() may be called again in the same process (tests, notebooks)
        if before is None:
            os.environ.pop(PROJECT_ENV, None)
        else:
            os.environ[PROJECT_ENV] = before


if __name__ == "__main__":
    sys.exit(main())
