"""Write the hostile copy of the sample data into ``csv/`` and ``xlsx/`` beside this file.

The sample generator's deals and events, with attack payloads in every text field (team, rep,
customer, deal id, loss reason, industry, contact, need, a categorical field) and a few rows that
are quarantined with a payload as the shown value (an unknown stage, an unknown pipeline, an
amount and a date that do not parse). Run ``.venv/bin/python tests/data/hostile/generate.py``
after changing it; the files are committed so that the tests read exactly these bytes.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

from funnelkit.presentation.safe_output import write_xlsx
from funnelkit.inputs.sample import TEAMS, generate_sample

HERE = Path(__file__).resolve().parent
SCRIPT = '<script>alert("{}")</script>'
IMG = '<img src=x onerror=alert("{}")>'
LINK = "[click](javascript:alert(1))"
FORMULA = '=HYPERLINK("http://x","click")'
PAYLOADS = [SCRIPT.format("x"), IMG.format("x"), LINK, FORMULA, "+1", "-2", "@SUM(A1)", "$x$ and $\\alpha$",
            '"><svg onload=alert(1)>', "\t=1+1", "**bold** _it_ `code` # h", "javascript:alert(1)"]

TEAM_NAMES = {"East": SCRIPT.format("team"), "North": LINK, "South": FORMULA}
REP_NAMES = dict(zip(
    [rep for reps in TEAMS.values() for rep in reps],
    ["History", LINK, "$x$ and $\\alpha$", "+1", IMG.format("rep"),  # East
     "-2", "@SUM(A1)", FORMULA, "'Quote's [rep]: *?/\\'", "A representative whose name is far longer than 31 chars",  # North
     SCRIPT.format("rep"), '"><svg onload=alert(1)>', "history", "\t=1+1", "Plain Name"],  # South
))
HOSTILE_TEAM = TEAM_NAMES["East"]
HOSTILE_REP = REP_NAMES["Chen Jing"]  # a rep with open deals


def hostile_tables(n_deals: int = 450, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The hostile ``(deals, stage_events)`` tables (see the module docstring)."""
    deals, events = generate_sample(n_deals=n_deals, seed=seed)
    cycle = itertools.cycle(PAYLOADS)
    for column in ["customer", "industry", "contact", "need"]:
        deals[column] = [f"{next(cycle)}" for _ in range(len(deals))]
    lost = deals["status"] == "lost"
    deals.loc[lost, "lost_reason"] = [next(cycle) for _ in range(int(lost.sum()))]
    deals["team"] = deals["team"].map(TEAM_NAMES)
    deals["rep"] = deals["rep"].map(REP_NAMES)
    # every 5th deal id carries a payload (kept unique by its number)
    new_ids = {d: (f"{PAYLOADS[i // 5 % len(PAYLOADS)]}#{i}" if i % 5 == 0 else d)
               for i, d in enumerate(deals["deal_id"])}
    deals["deal_id"] = deals["deal_id"].map(new_ids)
    events["deal_id"] = events["deal_id"].map(new_ids)
    deals = deals.astype({"strategic_value": object, "amount": object, "pipeline": object})
    deals.loc[3, "strategic_value"] = LINK  # not recognised: listed in the data notes
    # rows quarantined with a payload as the shown value, first so they are among the examples
    deals.loc[0, "pipeline"] = IMG.format("pipeline")
    deals.loc[1, "amount"] = "=1+1"
    events = events.astype({"stage": object, "entered_at": object})
    events.loc[len(events)] = {"deal_id": deals.loc[2, "deal_id"], "stage": SCRIPT.format("stage"),
                               "entered_at": events.loc[0, "entered_at"]}
    events.loc[len(events)] = {"deal_id": deals.loc[4, "deal_id"], "stage": "leads",
                               "entered_at": SCRIPT.format("date")}
    return deals, events


def main() -> None:
    deals, events = hostile_tables()
    (HERE / "csv").mkdir(exist_ok=True)
    # the input as a CRM would export it: raw text, not neutralised (that is what we defend against)
    deals.to_csv(HERE / "csv" / "deals.csv", index=False)
    events.to_csv(HERE / "csv" / "stage_events.csv", index=False)
    # Excel input: the payloads as text cells (a formula cell would be read as its empty cached value)
    write_xlsx({"deals": deals}, HERE / "xlsx" / "deals.xlsx")
    write_xlsx({"stage_events": events}, HERE / "xlsx" / "stage_events.xlsx")


if __name__ == "__main__":
    main()
