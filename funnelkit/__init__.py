"""funnelkit: B2B sales-funnel analysis as pure functions over tidy DataFrames."""
from funnelkit.aggregate import reach_table, stage_stays
from funnelkit.config import ConfigError, load_config, load_report_matrix
from funnelkit.data import DataError, Dataset, quality_summary, validate
from funnelkit.funnel import biggest_leak, cohort_funnel, loss_reasons, period_table, team_period_grid
from funnelkit.io import load_data, open_dataset, sample_dataset, write_dataset
from funnelkit.periods import Period, as_of_bound, parse_period

__all__ = [
    "ConfigError", "DataError", "Dataset", "Period", "as_of_bound", "biggest_leak", "cohort_funnel", "load_config",
    "load_data", "load_report_matrix", "loss_reasons", "open_dataset", "parse_period", "period_table",
    "quality_summary", "reach_table", "sample_dataset", "stage_stays", "team_period_grid", "validate",
    "write_dataset",
]
