"""Write the edge datasets of tests/data/edge/ (canonical CSVs), deterministically.

Run from the repository root: ``.venv/bin/python tests/data/edge/make_edge.py``. Each dataset is a
folder with ``deals.csv`` and ``stage_events.csv``, a ``case.yaml`` holding the notebook
parameters the edge suite runs it with (period, as-of date, team, rep) and what it is about, and,
where the dataset needs its own configuration (a custom pipeline, another currency), a
``params/funnel.yaml`` that the suite passes to the notebooks as ``config_path``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
PARAMS = HERE.parents[2] / "params"
B2B = ["leads", "prospects", "opportunities", "negotiation", "customers"]
SCORING = ["win_probability", "strategic_value", "follow_up_cost", "payment_days", "competitive_position",
           "need_fit", "decision_maker_engaged", "budget_confirmed", "expected_start"]


def simulate(seed: int, n: int, start: str, end: str, reps: dict[str, list[str]], stages: list[str] = B2B,
             p_lost: float = 0.25, as_of: str = "2024-06-30", skip: float = 0.0, midnight: float = 0.0,
             pipeline: str = "new_business") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` deals created between ``start`` and ``end`` that walk the ``stages``: at each stage a deal
    progresses (skipping one stage with probability ``skip``), is lost (``p_lost``) or, when its
    next move would fall after ``as_of``, stays open. ``midnight``: share of entries put at 00:00."""
    rng = np.random.default_rng(seed)
    bound = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    span = (pd.Timestamp(end) - pd.Timestamp(start)) / pd.Timedelta(hours=1)
    pairs = [(team, rep) for team, names in reps.items() for rep in names]
    deals, events = [], []
    for i in range(n):
        team, rep = pairs[i % len(pairs)]
        t = pd.Timestamp(start) + pd.Timedelta(hours=int(rng.integers(0, max(int(span), 1))))
        created = t
        deal_id = f"E{seed:02d}-{i:03d}"
        j, status, closed, reason = 0, "open", None, None
        events.append((deal_id, stages[0], t))
        while True:
            wait = pd.Timedelta(hours=int(rng.integers(12, 24 * 30)))
            if t + wait >= bound:
                break
            t = t + wait
            if rng.random() < midnight:
                t = t.normalize()
                t = max(t, events[-1][2])
            if rng.random() < p_lost:
                status, closed = "lost", t
                reason = str(rng.choice(["预算不足", "需求不明确", "竞争对手介入", ""]))
                break
            j = min(j + (2 if rng.random() < skip and j + 2 < len(stages) else 1), len(stages) - 1)
            events.append((deal_id, stages[j], t))
            if j == len(stages) - 1:
                status, closed = "won", t
                break
        quality = rng.random()
        deals.append({
            "deal_id": deal_id, "customer": f"客户 {i:03d}", "pipeline": pipeline, "team": team, "rep": rep,
            "created_at": created, "amount": float(round(rng.lognormal(11.5, 1.0), -2)), "status": status,
            "closed_at": closed, "lost_reason": reason if status == "lost" else None,
            "industry": str(rng.choice(["制造", "金融", "医疗"])),
            "win_probability": round(float(np.clip(quality + rng.normal(0, 0.15), 0.05, 0.95)), 2),
            "strategic_value": str(rng.choice(["benchmark", "potential", "ordinary"])),
            "follow_up_cost": str(rng.choice(["low", "medium", "high"])),
            "payment_days": int(rng.choice([15, 30, 45, 60, 90, 120])),
            "competitive_position": str(rng.choice(["advantage", "parity", "disadvantage"])),
            "need_fit": str(rng.choice(["high", "medium", "low"])),
            "decision_maker_engaged": bool(rng.random() < quality),
            "budget_confirmed": bool(rng.random() < quality),
            "expected_start": (created + pd.Timedelta(days=int(rng.integers(20, 200)))).normalize(),
            "last_follow_up_at": created + pd.Timedelta(days=int(rng.integers(0, 20))),
        })
    deal_frame = pd.DataFrame(deals)
    deal_frame["last_follow_up_at"] = deal_frame[["last_follow_up_at"]].min(axis=1).clip(upper=pd.Timestamp(as_of))
    return deal_frame, pd.DataFrame(events, columns=["deal_id", "stage", "entered_at"])


def funnel_yaml(**changes: object) -> dict:
    config = yaml.safe_load((PARAMS / "funnel.yaml").read_text(encoding="utf-8"))
    config.pop("b2b_stages", None)
    config.update(changes)
    return config


def write(name: str, deals: pd.DataFrame, events: pd.DataFrame, case: dict, config: dict | None = None) -> None:
    folder = HERE / name
    folder.mkdir(exist_ok=True)
    fmt = "%Y-%m-%d %H:%M"
    out = deals.copy()
    for column in ("created_at", "closed_at", "last_follow_up_at"):
        out[column] = pd.to_datetime(out[column]).dt.strftime(fmt)
    out["expected_start"] = pd.to_datetime(out["expected_start"]).dt.strftime("%Y-%m-%d")
    out.to_csv(folder / "deals.csv", index=False)
    events.assign(entered_at=pd.to_datetime(events["entered_at"]).dt.strftime(fmt)).to_csv(
        folder / "stage_events.csv", index=False)
    if config is not None:
        (folder / "params").mkdir(exist_ok=True)
        (folder / "params" / "funnel.yaml").write_text(
            "# Configuration of this edge dataset (written by make_edge.py)\n"
            + yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (folder / "case.yaml").write_text(yaml.safe_dump(case, allow_unicode=True, sort_keys=False), encoding="utf-8")


TEAMS = {"East": ["Ann", "Bo", "Cui"], "West": ["Dee", "Eli"]}


def main() -> None:
    q2 = {"period": "2024-Q2", "as_of": "2024-06-30", "team": "East", "rep": "Ann"}

    deals, events = simulate(1, 70, "2023-09-01", "2024-02-01", TEAMS, as_of="2025-06-30", p_lost=0.2)
    assert (deals["status"] != "open").all()
    write("all_closed", deals, events, q2 | {"about": "every deal closed (won or lost): no open deals"})

    deals, events = simulate(2, 70, "2024-01-01", "2024-06-05", TEAMS, p_lost=0.0, as_of="2024-06-04")
    assert (deals["status"] != "lost").all()
    young = (pd.Timestamp("2024-06-05") - deals.loc[deals["created_at"] >= "2024-06-01", "created_at"]).max()
    assert young < pd.Timedelta(days=7)
    write("no_losses", deals, events, {"period": "2024-06", "as_of": "2024-06-04", "team": "East", "rep": "Ann",
                                       "about": "no lost deals recorded (not converting = still open); "
                                                "the June cohort is younger than a week"})

    deals, events = simulate(3, 45, "2023-10-01", "2024-06-20", {"Solo": ["Only Rep"]})
    write("one_rep", deals, events, q2 | {"team": "Solo", "rep": "Only Rep", "language": "zh",
                                          "about": "one team with one rep (reports in Chinese)"})

    stages = ["lead", "proposal", "client"]
    config = funnel_yaml(default_pipeline="simple", pipelines={"simple": {
        "en": "Simple", "zh": "简易", "stages": [{"key": "lead", "en": "Lead", "zh": "线索"},
                                                {"key": "proposal", "en": "Proposal", "zh": "方案"},
                                                {"key": "client", "en": "Client", "zh": "客户"}]}})
    deals, events = simulate(4, 60, "2023-10-01", "2024-06-20", TEAMS, stages=stages, pipeline="simple")
    write("three_stages", deals, events, q2 | {"about": "a custom pipeline of three stages"}, config)

    deals, events = simulate(5, 60, "2023-10-01", "2024-06-20", TEAMS)
    write("no_amounts", deals.assign(amount=None), events, q2 | {"about": "no amounts"})

    deals, events = simulate(6, 60, "2023-10-01", "2024-06-20", TEAMS)
    write("no_scoring", deals.assign(**{c: None for c in SCORING}), events,
          q2 | {"about": "no probabilities or scoring fields"})

    deals, events = simulate(7, 60, "2023-10-01", "2024-06-20", TEAMS, skip=0.3, midnight=0.3)
    single = deals.iloc[[0]].assign(deal_id="E07-single", rep="Single Deal", team="East",
                                    created_at=pd.Timestamp("2024-04-01 00:00"), status="open", closed_at=None,
                                    lost_reason=None)
    boundary = deals.iloc[[1]].assign(deal_id="E07-boundary", created_at=pd.Timestamp("2024-03-20"), status="open",
                                      closed_at=None, lost_reason=None)
    deals = pd.concat([deals, single, boundary], ignore_index=True)
    events = pd.concat([events, pd.DataFrame(
        [("E07-single", "leads", pd.Timestamp("2024-04-01 00:00")),
         ("E07-boundary", "leads", pd.Timestamp("2024-03-20")),
         ("E07-boundary", "prospects", pd.Timestamp("2024-04-01 00:00")),  # stay starts at Q2's first instant
         ("E07-boundary", "negotiation", pd.Timestamp("2024-04-01 00:00"))],  # …and skips opportunities
        columns=["deal_id", "stage", "entered_at"])], ignore_index=True)
    write("usd", deals, events, q2 | {"rep": "Single Deal",
                                      "about": "currency USD; a rep with a single deal; deals that skip stages; "
                                               "stays that start exactly at a period boundary"},
          funnel_yaml(currency="USD"))

    early, early_events = simulate(8, 30, "2024-01-01", "2024-02-01", TEAMS, as_of="2024-02-28", p_lost=0.6)
    early = early[early["status"] != "open"]
    early_events = early_events[early_events["deal_id"].isin(early["deal_id"])]
    late, late_events = simulate(9, 30, "2024-06-01", "2024-06-25", TEAMS)
    deals = pd.concat([early, late], ignore_index=True)
    events = pd.concat([early_events, late_events], ignore_index=True)
    write("empty_period", deals, events, {"period": "2024-04", "as_of": "2024-06-30", "team": "East", "rep": "Ann",
                                          "about": "a period (April 2024) with no deals at all"})


if __name__ == "__main__":
    main()
