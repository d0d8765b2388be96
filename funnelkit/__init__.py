"""funnelkit: B2B sales-funnel analysis as pure functions over tidy DataFrames."""
from funnelkit import aggregate, sales, sensitivity
from funnelkit.aggregate import open_deals, reach_table, stage_stays
from funnelkit.config import ConfigError, load_config, load_report_matrix
from funnelkit.data import DataError, Dataset, quality_summary, validate
from funnelkit.funnel import biggest_leak, cohort_funnel, loss_reasons, period_table, team_period_grid
from funnelkit.io import load_data, open_dataset, sample_dataset, write_dataset
from funnelkit.periods import Period, as_of_bound, parse_period
from funnelkit.playbook import follow_up_plan, load_playbook
from funnelkit.sales import sales_metrics
from funnelkit.scorecard import load_scorecard, score_deals, tier_summary
from funnelkit.screening import load_screening, screen_opportunities
from funnelkit.timing import compare_time_in_stage, stalled_deals, time_in_stage

__all__ = [
    "ConfigError", "DataError", "Dataset", "Period", "as_of_bound", "biggest_leak", "cohort_funnel",
    "compare_time_in_stage", "follow_up_plan", "load_config", "load_data", "load_playbook", "load_report_matrix",
    "load_scorecard", "load_screening", "loss_reasons", "open_dataset", "open_deals", "parse_period",
    "period_table", "quality_summary", "reach_table", "sales", "sales_metrics", "sample_dataset", "score_deals",
    "screen_opportunities", "stage_stays", "stalled_deals", "team_period_grid", "tier_summary", "time_in_stage",
    "validate", "write_dataset",
]
