"""Writes a HubSpot/Pipedrive-style CRM export unlike funnelkit's other fixtures (review4).

* `deals.tsv`: tab-separated, UTF-8 with a BOM, Windows line endings; one row per deal with its
  stage now ("Deal Stage"), amounts like "$1,234.50" with a "Currency" column (USD, some EUR,
  some blank), US month-first dates `MM/DD/YYYY hh:mm AM/PM` (many ambiguous: 03/04/2024), blanks.
* `deal_stage_history.xlsx`: one row per stage CHANGE ("From stage", "To stage", "Changed at"),
  below a title line and a blank line, the close as a change to "Closed Won" / "Closed Lost",
  some deals moving back a stage, some skipping one.
* HubSpot's default stage names (Appointment Scheduled … Contract Sent), none of the sample's.
* Team "New Markets" has every deal still open; rep "Kai Müller" has a single deal; reps with
  apostrophes and accents; hostile customer names (HTML, a formula).

Run: python tests/data/review4/make_review4.py  (deterministic; rewrites the two files beside it)
"""
from __future__ import annotations

import csv
import io
import random
from datetime import datetime, timedelta
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).resolve().parent
STAGES = ["Appointment Scheduled", "Qualified To Buy", "Presentation Scheduled",
          "Decision Maker Bought-In", "Contract Sent"]
WON, LOST = "Closed Won", "Closed Lost"
TEAMS = {  # team -> reps, with deals per rep; kind
    "Enterprise": ({"Siobhan O'Brien": 60, "José Álvarez": 55, "Mei Chen": 50, "Kai Müller": 1}, "normal"),
    "Mid-Market": ({"Tom Becker": 55, "Ana Lima": 45}, "normal"),
    "New Markets": ({"Priya Nair": 20, "Léa Dubois": 15}, "all_open"),
}
AS_OF = datetime(2024, 12, 31, 23, 0)
HOSTILE = ["<img src=x onerror=alert(1)>", "+cmd|' /C calc'!A0", "Smith & Sons <b>Ltd</b>"]
REASONS = ["Price", "Went with competitor", "No budget", "", "Timing"]


def us(moment: datetime) -> str:
    """The CRM's US format: month first, 12-hour clock."""
    return moment.strftime("%m/%d/%Y %I:%M %p")


def dollars(value: float) -> str:
    return f"${value:,.2f}"


def main() -> None:
    rng = random.Random(4)
    deals, changes = [], []
    number = 1000
    for team, (reps, kind) in TEAMS.items():
        for rep, count in reps.items():
            for _ in range(count):
                number += 1
                deal_id = str(number)
                start = datetime(2024, 1, 3) if kind == "normal" else datetime(2024, 10, 1)
                created = start + timedelta(days=rng.randrange(0, 300 if kind == "normal" else 80),
                                            hours=rng.randrange(7, 19), minutes=rng.choice([0, 5, 30, 45]))
                furthest = rng.choices(range(5), weights=[3, 3, 3, 2, 3])[0]
                path = [0]
                for stage in range(1, furthest + 1):
                    if stage == 2 and furthest >= 3 and rng.random() < 0.1:
                        continue  # skipped Presentation Scheduled
                    path.append(stage)
                if furthest >= 4 and rng.random() < 0.15:
                    path += [3, 4]  # moved back from Contract Sent, then sent again
                moments, at = [created], created
                for _step in path[1:]:
                    at = at + timedelta(days=rng.randrange(2, 30), hours=rng.randrange(0, 9))
                    moments.append(at)
                close = None
                if kind == "normal":
                    roll = rng.random()
                    if furthest == 4 and roll < 0.6:
                        close = WON
                    elif roll < 0.5:
                        close = LOST
                closed_at = moments[-1] + timedelta(days=rng.randrange(1, 25), hours=rng.randrange(0, 5)) if close else None
                if moments[-1] > AS_OF or (closed_at and closed_at > AS_OF):
                    continue
                stage_now = close or STAGES[path[-1]]
                previous = ""
                for step, moment in zip(path, moments):
                    changes.append([deal_id, previous, STAGES[step], us(moment), rep])
                    previous = STAGES[step]
                if close:
                    changes.append([deal_id, previous, close, us(closed_at), rep])
                amount = rng.choice([None] + [rng.randrange(20, 400) * 250 + rng.choice([0, 0.5])] * 10)
                currency = "" if amount is None else rng.choice(["USD"] * 8 + ["EUR"])
                deals.append([
                    deal_id,
                    f"Deal {deal_id}",
                    HOSTILE[number % 3] if number % 29 == 0 else f"Company {number} Inc.",
                    rep,
                    team,
                    "Sales Pipeline",
                    stage_now,
                    "" if amount is None else dollars(amount) if currency != "EUR" else f"€{amount:,.2f}",
                    currency,
                    us(created),
                    us(closed_at) if closed_at else "",
                    rng.choice(REASONS) if close == LOST else "",
                    f"{rng.choice([10, 20, 40, 60, 80])}%" if not close else "",
                ])
    header = ["Record ID", "Deal Name", "Associated Company", "Deal owner", "Team", "Pipeline",
              "Deal Stage", "Amount", "Currency", "Create Date", "Close Date", "Closed Lost Reason",
              "Deal probability"]
    text = io.StringIO()
    csv.writer(text, delimiter="\t", lineterminator="\r\n").writerows([header] + deals)
    (HERE / "deals.tsv").write_bytes(text.getvalue().encode("utf-8-sig"))
    book = Workbook()
    sheet = book.active
    sheet.title = "Stage changes"
    sheet.append(["Deal stage history - exported 01/02/2025 08:00 AM"])
    sheet.append([])
    sheet.append(["Record ID", "From stage", "To stage", "Changed at", "Changed by"])
    for row in changes:
        sheet.append(row)
    book.properties.created = datetime(2025, 1, 2)  # a fixed timestamp keeps the file reproducible
    book.properties.modified = datetime(2025, 1, 2)
    book.save(HERE / "deal_stage_history.xlsx")


if __name__ == "__main__":
    main()
