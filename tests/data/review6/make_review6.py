"""Writes a German Pipedrive-style CRM export unlike funnelkit's other fixtures (review6).

* `Deals.csv`: `;`-separated, UTF-8 with a BOM, Windows line endings, German headers (Deal-ID, Titel,
  Organisation, Phase, Pipeline, Besitzer, Team, Wert, Währung, Erstellt am, Abschlussdatum,
  Gewonnen am, Verloren am, Status, Verlustgrund); dates `05.03.2024` and `05.03.2024 14:07`; amounts
  `1.234.500,00 €` and some `12.500 EUR`, a few blank, two deals in CHF; quoted fields with an embedded
  `;` and a line break; two pipelines with their own stage names (Neukunden: Qualifiziert, Kontakt
  hergestellt, Angebot erstellt, Verhandlung; Bestandskunden: Bedarf, Angebot, Verhandlung); Status
  Offen / Gewonnen / Verloren, the Phase of a closed deal the stage it closed in.
* `Deal-Änderungen.csv`: Pipedrive's "deal updates" log, one row per field change (Deal-ID,
  Deal-Titel, Feld, Alter Wert, Neuer Wert, Geändert am, Geändert von): Feld is Phase, Status, Wert,
  Besitzer or Erwartetes Abschlussdatum, so the stage changes must be picked out of the others.
* 3 teams, 12 reps. Team "Key Accounts" has never lost a deal; rep Jürgen Weiß (Vertrieb Süd) left at
  the end of June: his open deals went to Sabine Groß (Besitzer changes in the log, the deals file
  names the new owner); Neukunden's pipeline in Pipedrive has a stage "Bedarfsanalyse" between Kontakt
  hergestellt and Angebot erstellt that no deal ever entered (not in the export: the user knows it);
  some Bestandskunden deals and one Neukunden deal are won straight from the second stage; hostile
  values in Titel and Organisation (`<img src=x onerror=alert(1)>`, `=cmd|' /C calc'!A0`,
  `@SUM(1+1)`, a very long name with umlauts) and a rep with a very long name.

Run: python tests/data/review6/make_review6.py  (deterministic; rewrites the two files beside it)
"""
from __future__ import annotations

import csv
import io
import random
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIPELINES = {
    "Neukunden": ["Qualifiziert", "Kontakt hergestellt", "Angebot erstellt", "Verhandlung"],
    "Bestandskunden": ["Bedarf", "Angebot", "Verhandlung"],
}
LONG_REP = "Hans-Jürgen Müller-Lüdenscheidt-Großkopf"
TEAMS = {  # team -> {rep: number of deals}; kind
    "Vertrieb Nord": ({"Anna Schmidt": 32, "Lukas Becker": 30, "Mia Wagner": 26, LONG_REP: 22}, "normal"),
    "Vertrieb Süd": ({"Jürgen Weiß": 30, "Sabine Groß": 28, "Felix Hoffmann": 26, "Lea Schäfer": 24,
                      "Tobias Koch": 20}, "normal"),
    "Key Accounts": ({"Katharina Richter": 22, "Maximilian Klein": 20, "Sophie Wolf": 18}, "never_lost"),
}
LEAVER, SUCCESSOR, LEFT_ON = "Jürgen Weiß", "Sabine Groß", datetime(2024, 6, 28, 17, 30)
AS_OF = datetime(2024, 12, 20, 18, 0)
HOSTILE = ["<img src=x onerror=alert(1)>", "=cmd|' /C calc'!A0", "@SUM(1+1)",
           "Großhandelsgesellschaft für Präzisionsmaschinenbau und Außenwirtschaftsförderung "
           "Müller-Lüdenscheidt & Söhne GmbH & Co. KGaA Zweigniederlassung Überlingen am Bodensee"]
COMPANIES = ["Schneider Maschinenbau GmbH", "Bäckerei Krüger KG", "Fischer & Partner AG", "Müller Logistik GmbH",
             "Südwest Präzisionsteile GmbH", "Nordlicht Energie eG", "Zimmermann Software GmbH",
             "Hoffmann Medizintechnik AG", "Braun Stahlbau GmbH & Co. KG"]
PRODUCTS = ["ERP-Einführung", "Wartungsvertrag", "Rahmenvertrag; Phase 2", "Cloud-Migration", "Schulungspaket"]
REASONS = ["Preis zu hoch", "Wettbewerber gewählt", "Budget gestrichen", "", "Kein Bedarf; Projekt verschoben"]


def de_datetime(moment: datetime) -> str:
    return moment.strftime("%d.%m.%Y %H:%M")


def de_date(moment: datetime) -> str:
    return moment.strftime("%d.%m.%Y")


def de_amount(value: float, style: int) -> str:
    """`1.234.500,00 €` (German marks: dot thousands, decimal comma), or `12.500 EUR`."""
    if style == 0:
        return f"{value:,.2f} €".replace(",", "_").replace(".", ",").replace("_", ".")
    return f"{value:,.0f} EUR".replace(",", ".")


def main() -> None:
    rng = random.Random(6)
    deals, log = [], []
    number = 0
    for team, (reps, kind) in TEAMS.items():
        for rep, count in reps.items():
            for _ in range(count):
                number += 1
                deal_id = str(1000 + number)
                pipeline = "Bestandskunden" if (kind == "never_lost" and rng.random() < 0.7) or rng.random() < 0.3 \
                    else "Neukunden"
                stages = PIPELINES[pipeline]
                created = datetime(2024, 1, 3) + timedelta(days=rng.randrange(0, 300), hours=rng.randrange(8, 18),
                                                           minutes=rng.randrange(0, 60))
                furthest = rng.choices(range(len(stages)), weights=[3] * len(stages))[0]
                moments, at = [created], created
                for _step in range(furthest):
                    at = at + timedelta(days=rng.randrange(2, 30), hours=rng.randrange(0, 8), minutes=rng.randrange(0, 60))
                    moments.append(at)
                roll = rng.random()
                last = len(stages) - 1
                if furthest == last and roll < 0.55:
                    close = "Gewonnen"
                elif furthest == 1 and roll < 0.12:  # won straight from the second stage
                    close = "Gewonnen"
                elif kind != "never_lost" and roll < 0.4:
                    close = "Verloren"
                else:
                    close = None
                closed_at = moments[-1] + timedelta(days=rng.randrange(1, 15), hours=rng.randrange(0, 6)) if close else None
                if moments[-1] > AS_OF:
                    continue
                if closed_at and closed_at > AS_OF:
                    close, closed_at = None, None
                owner = SUCCESSOR if rep == LEAVER and created >= LEFT_ON else rep  # he had left: no new deals
                title = f"{rng.choice(PRODUCTS)} {created.year}"
                customer = COMPANIES[number % len(COMPANIES)]
                if number % 29 == 0:
                    title = HOSTILE[(number // 29) % len(HOSTILE)]
                if number % 31 == 0:
                    customer = HOSTILE[(number // 31) % len(HOSTILE)]
                if number % 23 == 0:  # an address in the organisation cell: a line break inside quotes
                    customer = f"{customer}\nNiederlassung Süd"
                value = rng.randrange(4, 500) * 2500.0
                previous = ""
                for step, moment in enumerate(moments):
                    log.append([deal_id, title, "Phase", previous, stages[step], de_datetime(moment), owner])
                    previous = stages[step]
                    if step == 1 and rng.random() < 0.5:  # the value is revised once the need is known
                        new_value = value + rng.randrange(-20, 40) * 1000.0
                        log.append([deal_id, title, "Wert", de_amount(value, 0), de_amount(new_value, 0),
                                    de_datetime(moment + timedelta(hours=2)), owner])
                        value = new_value
                    if rng.random() < 0.3:
                        expected = moment + timedelta(days=rng.randrange(30, 120))
                        log.append([deal_id, title, "Erwartetes Abschlussdatum", "", de_date(expected),
                                    de_datetime(moment + timedelta(minutes=5)), owner])
                if rep == LEAVER and (closed_at is None or closed_at > LEFT_ON) and created < LEFT_ON:
                    owner = SUCCESSOR  # the rep left: his open deals were reassigned
                    log.append([deal_id, title, "Besitzer", LEAVER, SUCCESSOR, de_datetime(LEFT_ON), "Admin"])
                if close:
                    log.append([deal_id, title, "Status", "Offen", close, de_datetime(closed_at), owner])
                amount = "" if rng.random() < 0.06 else de_amount(value, 0 if rng.random() < 0.8 else 1)
                currency = "EUR" if amount else ""
                if number in (57, 201):  # a Swiss customer billed in francs
                    amount, currency = f"{value:,.0f} CHF".replace(",", "."), "CHF"
                deals.append([
                    deal_id, title, customer, stages[furthest], pipeline, owner, team, amount, currency,
                    de_datetime(created), de_date(closed_at) if closed_at else "",
                    de_datetime(closed_at) if close == "Gewonnen" else "",
                    de_datetime(closed_at) if close == "Verloren" else "",
                    close or "Offen", rng.choice(REASONS) if close == "Verloren" else "",
                ])
    header = ["Deal-ID", "Titel", "Organisation", "Phase", "Pipeline", "Besitzer", "Team", "Wert", "Währung",
              "Erstellt am", "Abschlussdatum", "Gewonnen am", "Verloren am", "Status", "Verlustgrund"]
    text = io.StringIO()
    csv.writer(text, delimiter=";", lineterminator="\r\n").writerows([header] + deals)
    (HERE / "Deals.csv").write_bytes(text.getvalue().encode("utf-8-sig"))
    # Pipedrive writes the log in time order, every deal's changes mixed
    log.sort(key=lambda row: (datetime.strptime(row[5], "%d.%m.%Y %H:%M"), int(row[0])))
    text = io.StringIO()
    csv.writer(text, delimiter=";", lineterminator="\r\n").writerows(
        [["Deal-ID", "Deal-Titel", "Feld", "Alter Wert", "Neuer Wert", "Geändert am", "Geändert von"]] + log)
    (HERE / "Deal-Änderungen.csv").write_bytes(text.getvalue().encode("utf-8-sig"))


if __name__ == "__main__":
    main()
