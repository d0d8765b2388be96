"""funnelkit: B2B sales-funnel analysis as pure functions over tidy DataFrames."""
from funnelkit.analyses import sales, sensitivity
from funnelkit.analyses.funnel import (
    biggest_leak, cohort_funnel, cohort_funnel_of, loss_reasons, loss_reasons_of, period_table, period_table_of,
    team_period_grid,
)
from funnelkit.analyses.playbook import follow_up_plan, load_playbook
from funnelkit.analyses.reps import rep_summary, rep_summary_of
from funnelkit.analyses.review import period_review, period_review_of
from funnelkit.analyses.sales import sales_metrics, sales_metrics_of
from funnelkit.analyses.scorecard import load_scorecard, score_deals, tier_summary
from funnelkit.analyses.screening import load_screening, screen_opportunities
from funnelkit.analyses.timing import compare_time_in_stage, stalled_deals, time_in_stage
from funnelkit.config import ConfigError, load_config, load_report_matrix
from funnelkit.events import aggregate
from funnelkit.events.aggregate import open_deals, reach_table, stage_stays
from funnelkit.events.scope import Scope
from funnelkit.inputs.data import DataError, Dataset, quality_summary, validate
from funnelkit.inputs.io import load_data, open_dataset, sample_dataset, write_dataset
from funnelkit.periods import Period, as_of_bound, parse_period

# Loaded on first use: they pull in matplotlib and the pandas Styler, which the command line and
# plain analysis code do not need.
_LAZY = {"ReportContext": "funnelkit.presentation.context", "report_context": "funnelkit.presentation.context",
         "use_cjk_font": "funnelkit.presentation.plots"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'funnelkit' has no attribute {name!r}")


__all__ = [
    "ConfigError", "DataError", "Dataset", "Period", "ReportContext", "Scope", "as_of_bound", "biggest_leak",
    "cohort_funnel", "cohort_funnel_of", "compare_time_in_stage", "follow_up_plan", "load_config", "load_data",
    "load_playbook", "load_report_matrix", "load_scorecard", "load_screening", "loss_reasons", "loss_reasons_of",
    "open_dataset", "open_deals", "parse_period", "period_review", "period_review_of", "period_table",
    "period_table_of", "quality_summary", "reach_table", "rep_summary", "rep_summary_of", "report_context", "sales",
    "sales_metrics", "sales_metrics_of", "sample_dataset", "score_deals", "screen_opportunities", "stage_stays",
    "stalled_deals", "team_period_grid", "tier_summary", "time_in_stage", "use_cjk_font", "validate", "write_dataset",
]
