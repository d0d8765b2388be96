"""Conversion analysis against hand-worked cases and the funnel identity on the sample data."""
import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.analyses.funnel import months_in

from conftest import make_data

STAGES = ["leads", "prospects", "opportunities", "negotiation", "customers"]


def seed_example(config):
    """The seed template's example: 100 leads, 60 prospects, 30 opportunities, 15 in negotiation,
    5 customers, all in March 2024; every deal that stops is lost there."""
    deals, events = [], []
    furthest = [4] * 5 + [3] * 10 + [2] * 15 + [1] * 30 + [0] * 40
    for i, f in enumerate(furthest):
        deal_id = f"D{i:03d}"
        for j in range(f + 1):
            events.append((deal_id, STAGES[j], f"2024-03-{2 + 3 * j:02d} 10:00"))
        won = f == 4
        deals.append({"deal_id": deal_id, "status": "won" if won else "lost",
                      "closed_at": f"2024-03-{2 + 3 * f + (0 if won else 1):02d} 12:00",
                      "lost_reason": None if won else ("预算不足" if i % 2 else "")})
    return make_data(deals, events, config)


def test_seed_template_example_table1(config):
    data = seed_example(config)
    table = fk.period_table(data, config, "2024-03")
    assert table["count"].tolist() == [100, 60, 30, 15, 5]
    assert table["new"].tolist() == [100, 60, 30, 15, 5]
    assert np.isnan(table["conversion"].iloc[0])
    assert table["conversion"].iloc[1:].round(3).tolist() == [0.6, 0.5, 0.5, 0.333]
    # row s shows deals lost at the stage before s
    assert table["lost"].tolist() == [0, 40, 30, 15, 10]
    assert ("预算不足", 20) in table["main_loss_reasons"].iloc[1]
    assert ("unspecified", 20) in table["main_loss_reasons"].iloc[1]


def test_seed_template_example_cohort_funnel(config):
    funnel = fk.cohort_funnel(seed_example(config), config, "2024-03")
    assert funnel["reached"].tolist() == [100, 60, 30, 15, 5]
    assert funnel["lost_at"].tolist() == [40, 30, 15, 10, 0]
    assert funnel["open_at"].tolist() == [0, 0, 0, 0, 0]
    assert funnel["next_step_rate"].iloc[:-1].round(3).tolist() == [0.6, 0.5, 0.5, 0.333]
    assert funnel["cumulative_rate"].tolist() == [1.0, 0.6, 0.3, 0.15, 0.05]
    leak = fk.biggest_leak(funnel)
    assert leak["stage"] == "negotiation" and leak["loss_rate"] == pytest.approx(10 / 15)


def test_blank_loss_reason_is_unspecified_not_dropped(config):
    losses = fk.loss_reasons(seed_example(config), config, "2024-03")
    leads = losses[losses["stage"] == "leads"].set_index("reason")["deals"]
    assert leads.to_dict() == {"预算不足": 20, "unspecified": 20}
    assert losses["deals"].sum() == 95


def test_skip_counts_the_skipped_stage_as_passed(config):
    data = make_data(
        [{"deal_id": "A", "status": "open"}],
        [("A", "leads", "2024-03-01"), ("A", "opportunities", "2024-03-10")],
        config,
    )
    reach = fk.reach_table(data, config)
    row = reach.iloc[0]
    assert row["reached_prospects"] == pd.Timestamp("2024-03-10")
    assert row["reached_opportunities"] == pd.Timestamp("2024-03-10")
    assert pd.isna(row["reached_negotiation"])
    assert row["furthest_stage"] == "opportunities"
    funnel = fk.cohort_funnel(data, config, "2024-03")
    assert funnel["reached"].tolist() == [1, 1, 1, 0, 0]
    assert funnel["open_at"].tolist() == [0, 0, 1, 0, 0]
    # skips give no stay in the skipped stage
    stays = fk.stage_stays(data, config)
    assert stays["stage"].tolist() == ["leads", "opportunities"]


def test_strict_mode_differs_on_a_skip(config):
    data = make_data(
        [{"deal_id": "A", "status": "open"}, {"deal_id": "B", "status": "open"}],
        [("A", "leads", "2024-03-01"), ("A", "opportunities", "2024-03-10"),
         ("B", "leads", "2024-03-02"), ("B", "prospects", "2024-03-05"), ("B", "opportunities", "2024-03-09")],
        config,
    )
    loose = fk.cohort_funnel(data, config, "2024-03")
    strict = fk.cohort_funnel(data, config, "2024-03", strict=True)
    assert loose["reached"].tolist() == [2, 2, 2, 0, 0]
    assert strict["reached"].tolist() == [2, 1, 1, 0, 0]
    assert strict["skipped_at"].tolist() == [1, 0, 0, 0, 0]
    assert loose["skipped_at"].sum() == 0


def test_regression_keeps_furthest_stage_and_starts_a_new_stay(config):
    data = make_data(
        [{"deal_id": "A", "status": "open"}],
        [("A", "leads", "2024-03-01"), ("A", "prospects", "2024-03-03"), ("A", "opportunities", "2024-03-06"),
         ("A", "negotiation", "2024-03-10"), ("A", "opportunities", "2024-03-15")],
        config,
    )
    funnel = fk.cohort_funnel(data, config, "2024-03")
    assert funnel["reached"].tolist() == [1, 1, 1, 1, 0]
    assert funnel["open_at"].tolist() == [0, 0, 0, 1, 0]
    stays = fk.stage_stays(data, config, as_of=pd.Timestamp("2024-03-20"))
    assert stays["outcome"].tolist() == ["progressed", "progressed", "progressed", "regressed", "open"]
    assert stays["days"].tolist() == [2.0, 3.0, 4.0, 5.0, 5.0]
    assert stays["censored"].tolist() == [False, False, False, False, True]


def test_open_deal_and_as_of_hides_later_events(config):
    data = make_data(
        [{"deal_id": "A", "status": "won", "closed_at": "2024-04-20"}],
        [("A", "leads", "2024-03-01"), ("A", "prospects", "2024-03-20"), ("A", "opportunities", "2024-04-02"),
         ("A", "negotiation", "2024-04-10"), ("A", "customers", "2024-04-20")],
        config,
    )
    early = fk.cohort_funnel(data, config, "2024-03", as_of=pd.Timestamp("2024-04-05"))
    assert early["reached"].tolist() == [1, 1, 1, 0, 0]
    assert early["open_at"].tolist() == [0, 0, 1, 0, 0]  # won later, open at the as-of date
    late = fk.cohort_funnel(data, config, "2024-03")
    assert late["reached"].tolist() == [1, 1, 1, 1, 1]
    assert late["open_at"].sum() == 0 and late["lost_at"].sum() == 0


def check_identity(funnel):
    r = funnel["reached"].to_numpy()
    rest = (funnel["lost_at"] + funnel["open_at"] + funnel["skipped_at"]).to_numpy()
    assert (r[:-1] == r[1:] + rest[:-1]).all(), funnel
    assert rest[-1] == 0


def test_identity_on_sample_for_every_team_and_period(sample, config):
    periods = months_in(sample) + [f"{y}-Q{q}" for y in (2023, 2024) for q in (1, 2, 3, 4)]
    grid = fk.team_period_grid(fk.Scope.build(sample, config), periods)
    assert len(grid) == 3 * len(periods) * 5
    for _, funnel in grid.groupby(["team", "period"]):
        check_identity(funnel)
    assert grid.groupby(["team", "period"])["reached"].first().sum() > 0


@pytest.mark.parametrize("strict", [False, True])
def test_identity_strict_and_loose_whole_sample(sample, config, strict):
    for period in ["2023-Q2", "2024-Q2"]:
        check_identity(fk.cohort_funnel(sample, config, period, strict=strict))


def test_cohort_funnel_from_a_shared_scope_equals_from_data(sample, config):
    """A team's scope narrowed from the whole-data scope filters its reach table; building the
    team's reach table directly gives the same funnel."""
    whole = fk.Scope.build(sample, config)
    a = fk.cohort_funnel_of(whole.narrow(team="East"), "2024-Q1")
    b = fk.cohort_funnel(sample, config, "2024-Q1", team="East")
    pd.testing.assert_frame_equal(a.table, b.table)
    assert (a.cohort_size, a.open_deals, a.period) == (b.cohort_size, b.open_deals, "2024-Q1")


def test_period_table_in_stage_counts_overlaps(config):
    """A deal that entered prospects in February and is still there is counted in March."""
    data = make_data(
        [{"deal_id": "A", "status": "open"}, {"deal_id": "B", "status": "lost", "closed_at": "2024-03-05",
                                              "lost_reason": "预算不足"}],
        [("A", "leads", "2024-02-01"), ("A", "prospects", "2024-02-10"),
         ("B", "leads", "2024-02-01"), ("B", "prospects", "2024-02-02")],
        config,
    )
    table = fk.period_table(data, config, "2024-03")
    assert table["count"].tolist() == [0, 2, 0, 0, 0]
    assert table["new"].tolist() == [0, 0, 0, 0, 0]
    assert table["lost"].tolist() == [0, 0, 1, 0, 0]  # lost at prospects: on the opportunities row


def test_planted_drop_visible_in_period_table(sample, config):
    june = fk.period_table(sample, config, "2024-06", team="South").set_index("stage")["conversion"]
    may = fk.period_table(sample, config, "2024-05", team="South").set_index("stage")["conversion"]
    assert june["opportunities"] < 0.5 * may["opportunities"]
