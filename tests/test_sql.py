"""The per-event step as SQL (DuckDB on Parquet) gives the same tables as the pandas path."""
import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit import sql


@pytest.fixture(scope="module")
def parquet(tmp_path_factory, sample):
    return fk.write_dataset(sample, tmp_path_factory.mktemp("pq"), fmt="parquet")


@pytest.mark.parametrize("as_of", [None, "2024-01-15"])
def test_reach_table_sql_equals_pandas(parquet, sample, config, as_of):
    bound = sample.as_of if as_of is None else pd.Timestamp(as_of)
    stages = config.stage_keys()
    got = sql.run_duckdb_parquet(str(parquet), sql.reach_sql(stages, bound))
    want = fk.reach_table(sample, config, as_of=bound).sort_values("deal_id").reset_index(drop=True)
    assert len(got) == len(want)
    assert got["deal_id"].tolist() == want["deal_id"].tolist()
    assert (got["furthest_index"].to_numpy() == want["furthest_index"].to_numpy()).all()
    assert got["status"].tolist() == want["status"].astype(str).tolist()
    for stage in stages:
        a = pd.to_datetime(got[f"reached_{stage}"]).astype("datetime64[ns]")
        pd.testing.assert_series_equal(a, want[f"reached_{stage}"], check_names=False)


def test_stays_sql_equals_pandas(parquet, sample, config):
    stages = config.stage_keys()
    got = sql.run_duckdb_parquet(str(parquet), sql.stays_sql(stages, sample.as_of))
    want = fk.stage_stays(sample, config).sort_values(["deal_id", "entered_at", "stage_index"]).reset_index(drop=True)
    assert len(got) == len(want)
    assert got["outcome"].tolist() == want["outcome"].tolist()
    assert (got["stage_index"].to_numpy() == want["stage_index"].to_numpy()).all()
    exited = pd.to_datetime(got["exited_at"]).astype("datetime64[ns]")
    assert ((exited == want["exited_at"]) | (exited.isna() & want["exited_at"].isna())).all()
