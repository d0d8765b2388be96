"""Write a dataset the way a CRM would export it (Salesforce, HubSpot-style, snapshot-only).

These realistic example files are what the presets in ``params/presets`` read back; the tests
generate them from the sample data, so no download is needed. Each writer follows its preset:
stage names, column names, date formats and encodings.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from funnelkit.config import FunnelConfig
from funnelkit.inputs.data import Dataset
from funnelkit.inputs.presets import Preset, load_preset


def _source_stage_names(preset: Preset) -> dict[str, str]:
    """Stage key → the first source name the preset maps to it."""
    names: dict[str, str] = {}
    for source, key in preset.stages.items():
        if key is not None and key not in names:
            names[key] = source
    return names


def _close_name(preset: Preset) -> str:
    return next(source for source, key in preset.stages.items() if key is None)


def write_salesforce(data: Dataset, folder: str | Path, preset: Preset | None = None, seed: int = 0) -> Path:
    """``Opportunity.csv`` and ``OpportunityHistory.csv`` (with extra same-stage rows for amount changes)."""
    preset = preset or load_preset("salesforce")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = _source_stage_names(preset)
    d = data.deals
    last_stage = data.events.sort_values("entered_at").groupby("deal_id")["stage"].last()
    current = d["deal_id"].map(last_stage).map(names)
    current = current.where(d["status"] != "lost", _close_name(preset))
    opportunity = pd.DataFrame({
        "Id": d["deal_id"], "Name": d["customer"] + " - " + d["need"].fillna(""), "AccountId": d["customer"],
        "OwnerId": d["rep"], "Team__c": d["team"], "StageName": current,
        "IsClosed": d["status"].isin(["won", "lost"]).map({True: "true", False: "false"}),
        "IsWon": (d["status"] == "won").map({True: "true", False: "false"}),
        "CreatedDate": d["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "CloseDate": d["closed_at"].dt.strftime("%Y-%m-%d"), "Amount": d["amount"],
        "Probability": (d["win_probability"] * 100).round(0), "LossReason": d["lost_reason"],
    })
    opportunity.to_csv(folder / "Opportunity.csv", index=False)
    history = data.events.sort_values(["deal_id", "entered_at"], kind="stable")
    history = history.assign(StageName=history["stage"].map(names))
    # amount / probability edits: an extra row for the same stage, before the deal's next change
    next_at = history.groupby("deal_id")["entered_at"].shift(-1)
    gap = (next_at - history["entered_at"]).fillna(pd.Timedelta(hours=1))
    extra = history.assign(entered_at=history["entered_at"] + gap * rng.uniform(0.2, 0.8, len(history)))
    extra = extra.sample(frac=0.2, random_state=seed)
    lost = d[d["status"] == "lost"]
    closes = pd.DataFrame({"deal_id": lost["deal_id"], "StageName": _close_name(preset), "entered_at": lost["closed_at"]})
    rows = pd.concat([history, extra, closes], ignore_index=True).sort_values(["deal_id", "entered_at"], kind="stable")
    # an amount change after the close would be after closed_at: keep only rows up to the close
    closed_at = rows["deal_id"].map(d.set_index("deal_id")["closed_at"])
    rows = rows[~(rows["entered_at"] > closed_at)]
    pd.DataFrame({"OpportunityId": rows["deal_id"], "StageName": rows["StageName"],
                  "CreatedDate": rows["entered_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.000+0000")}
                 ).to_csv(folder / "OpportunityHistory.csv", index=False)
    return folder


def write_hubspot(data: Dataset, folder: str | Path, preset: Preset | None = None) -> Path:
    """``hubspot-deals.csv``: one row per deal, a ``Date entered`` column per stage (first entry)."""
    preset = preset or load_preset("hubspot")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = _source_stage_names(preset)
    fmt = preset.date_format or "%Y-%m-%d %H:%M"
    d = data.deals.set_index("deal_id")
    last_stage = data.events.sort_values("entered_at").groupby("deal_id")["stage"].last()
    current = last_stage.reindex(d.index).map(names).where(d["status"] != "lost", _close_name(preset))
    out = pd.DataFrame({
        "Record ID": d.index, "Deal Name": d["customer"] + " " + d["need"].fillna(""),
        "Associated Company": d["customer"], "Deal owner": d["rep"], "HubSpot Team": d["team"],
        "Pipeline": "Sales Pipeline", "Deal Stage": current.to_numpy(),
        "Create Date": d["created_at"].dt.strftime(fmt), "Close Date": d["closed_at"].dt.strftime(fmt),
        "Amount": d["amount"].map(lambda a: f"¥{a:,.0f}"), "Closed Lost Reason": d["lost_reason"],
    }).reset_index(drop=True)
    first = data.events.groupby(["deal_id", "stage"])["entered_at"].min().unstack()
    for key, source in names.items():
        column = f'{preset.date_entered_prefix} "{source} (Sales Pipeline)"'
        out[column] = first.reindex(d.index)[key].dt.strftime(fmt).to_numpy() if key in first else None
    lost_column = f'{preset.date_entered_prefix} "{_close_name(preset)} (Sales Pipeline)"'
    out[lost_column] = d["closed_at"].where(d["status"] == "lost").dt.strftime(fmt).to_numpy()
    out.to_csv(folder / "hubspot-deals.csv", index=False)
    return folder


def write_snapshot(data: Dataset, folder: str | Path, config: FunnelConfig, preset: Preset | None = None) -> Path:
    """``snapshot.csv`` in GB18030 with Chinese headers and stage labels: each deal's furthest stage,
    its status, created / engaged (entered the second stage) / closed dates as dd-mm-yyyy."""
    preset = preset or load_preset("snapshot")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fmt = preset.date_format or "%Y-%m-%d"
    keys = config.stage_keys()
    labels = config.stage_labels(language="zh")
    d = data.deals.set_index("deal_id")
    order = {k: i for i, k in enumerate(keys)}
    ev = data.events.assign(order=data.events["stage"].map(order))
    furthest = ev.sort_values("order").groupby("deal_id")["stage"].last().reindex(d.index)
    # the any-stage rule: a deal reached the second stage when it first entered it or any later one
    engaged = ev[ev["order"] >= 1].groupby("deal_id")["entered_at"].min().reindex(d.index)
    status = d["status"].map({v: k for k, v in preset.status_values.items()})
    columns = {v: k for k, v in preset.columns.items()}
    out = pd.DataFrame({
        columns["deal_id"]: d.index, columns["customer"]: d["customer"].to_numpy(), columns["rep"]: d["rep"].to_numpy(),
        columns["team"]: d["team"].to_numpy(), preset.stage_column: furthest.map(labels).to_numpy(),
        preset.status_column: status.to_numpy(), columns["created_at"]: d["created_at"].dt.strftime(fmt).to_numpy(),
        preset.stage_dates["prospects"]: engaged.dt.strftime(fmt).to_numpy(),
        columns["closed_at"]: d["closed_at"].dt.strftime(fmt).to_numpy(), columns["amount"]: d["amount"].to_numpy(),
        columns["lost_reason"]: d["lost_reason"].to_numpy(),
    })
    out.to_csv(folder / "snapshot.csv", index=False, encoding=preset.encoding or "utf-8")
    return folder
