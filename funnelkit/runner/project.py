"""``funnelkit init``: a project folder, and a draft preset written from a look at an export.

A project is a folder with ``params/`` (every YAML of the defaults, commented), ``notebooks/`` and
a ``data/`` folder that ``params/reports.yaml`` points at. With ``--from EXPORT`` the draft preset
``params/presets/<name>.yaml`` lists the columns it recognised, the distinct stage values with a
proposed mapping, each date column's detected order, and a comment on every guess to confirm; the
project's ``funnel.yaml`` gets the stages the export's values suggest.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from funnelkit.config import NOTEBOOKS_DIR, PARAMS_DIR, ConfigError, normalise_name
from funnelkit.inputs.data import DataError, DMY_PATTERN, day_month_order
from funnelkit.inputs.io import READABLE, read_table

# canonical field → header spellings (normalised: lower case, letters and digits only)
SYNONYMS: dict[str, list[str]] = {
    "deal_id": ["dealid", "id", "opportunityid", "recordid", "leadid", "mqlid", "opportunity", "商机编号", "编号"],
    "customer": ["customer", "account", "accountname", "company", "associatedcompany", "客户名称", "客户"],
    "rep": ["rep", "owner", "dealowner", "salesagent", "seller", "salesrep", "agent", "ownerid", "负责人", "销售"],
    "team": ["team", "salesteam", "hubspotteam", "manager", "团队"],
    "created_at": ["createdat", "created", "createdate", "createddate", "firstcontactdate", "创建日期"],
    "closed_at": ["closedat", "closedate", "closedate", "closingdate", "wondate", "关闭日期"],
    "amount": ["amount", "value", "dealvalue", "closevalue", "revenue", "金额"],
    "lost_reason": ["lostreason", "lossreason", "closedlostreason", "流失原因"],
    "industry": ["industry", "sector", "businesssegment", "行业"],
    "pipeline": ["pipeline"],
}
STAGE_NAMES = ["stage", "dealstage", "stagename", "阶段", "currentstage"]
STATUS_NAMES = ["status", "result", "outcome", "opportunityresult", "状态", "winloss"]
WON = re.compile(r"^(closed\s*)?(won|win|wins)$|赢单|成交", re.IGNORECASE)
LOST = re.compile(r"^(closed\s*)?(lost|loss|lose)$|输单|丢单|流失", re.IGNORECASE)
DATE_HINT = re.compile(r"date|time|_at$|日期|时间", re.IGNORECASE)


def _y(value: Any) -> str:
    """``value`` as a one-line YAML scalar (quoted where YAML needs it)."""
    return yaml.safe_dump(value, allow_unicode=True).splitlines()[0]


def _key(name: Any) -> str:
    return re.sub(r"[\W_]+", "", str(name)).casefold()


def _slug(name: Any) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", normalise_name(name)).strip("_")
    return key if re.match(r"^[a-z]", key or "") else f"stage_{key or 'x'}"


def init_project(folder: Path, source: Path | None = None, preset_name: str = "my_export") -> list[str]:
    """Write a project into ``folder``; with ``source``, a draft preset for that export too.

    Returns the lines to print: what was written and what to do next.
    """
    if (folder / "params").exists():
        raise ConfigError(f"{folder}: already holds params/; choose a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")
    shutil.copytree(PARAMS_DIR, folder / "params", ignore=ignore)
    shutil.copytree(NOTEBOOKS_DIR, folder / "notebooks", ignore=ignore)
    (folder / "data").mkdir(exist_ok=True)
    lines = [f"wrote {folder}/params (settings), {folder}/notebooks, {folder}/data (put your export here)"]
    data, preset = "data", None
    if source is not None:
        draft, stages, notes = draft_preset(source)
        path = folder / "params" / "presets" / f"{preset_name}.yaml"
        path.write_text(draft, encoding="utf-8")
        if stages:
            _write_funnel(folder / "params" / "funnel.yaml", stages)
        data, preset = str(source.resolve() if source.is_dir() else source.resolve().parent), preset_name
        lines += [f"wrote a draft preset {path} — read every '# guess' comment and confirm it", *notes]
        lines += _first_look(folder, Path(data), path)
        lines.append(f"next: funnelkit check {data} --project {folder} --preset {preset_name}")
    _point_matrix(folder / "params" / "reports.yaml", data, preset)
    lines.append(f"then: funnelkit report --project {folder}   (or cd {folder} && funnelkit report)")
    return lines


def _first_look(folder: Path, data: Path, preset: Path) -> list[str]:
    """Load the export with the draft: report periods become the year of its latest date, and
    the result (or the first problem) is printed."""
    from funnelkit.config import load_config
    from funnelkit.inputs.io import load_data

    try:
        loaded = load_data(data, config=load_config(folder / "params" / "funnel.yaml"), preset=preset)
    except (DataError, ConfigError) as exc:
        return [f"a first load with the draft stops at: {exc}", "fix the preset, then run the check below"]
    year = (loaded.as_of - pd.Timedelta(days=1)).year
    matrix = folder / "params" / "reports.yaml"
    matrix.write_text(re.sub(r"(?m)^(\s*)periods:.*$", rf'\1periods: ["{year}"]   # the year of the latest date',
                             matrix.read_text(encoding="utf-8")), encoding="utf-8")
    return [f"a first load with the draft: {len(loaded.deals):,} of {loaded.rows_in['deals']:,} deals analysed; "
            f"report periods set to {year}"]


def _point_matrix(path: Path, data: str, preset: str | None) -> None:
    """Set ``data:`` (and ``preset:``) in the project's reports.yaml, keeping its comments."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^data:.*$", f"data: {yaml.safe_dump(data).splitlines()[0]}"
                  "   # your export folder (relative to the project), or \"sample\"", text, count=1)
    if preset:
        text = re.sub(r"(?m)^(data:.*)$", rf"\1\npreset: {preset}   # params/presets/{preset}.yaml", text, count=1)
    text = re.sub(r"(?m)^as_of:.*$", "# as_of: 2024-06-30   # analysis date; omit for the latest date in the data",
                  text, count=1)
    path.write_text(text, encoding="utf-8")


def _write_funnel(path: Path, stages: list[str]) -> None:
    """The project's funnel.yaml with one pipeline of the export's stages (languages, currency and
    categories kept from the defaults)."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config.pop("b2b_stages", None)
    labels = [{"key": _slug(s), "en": str(s), "zh": str(s)} for s in stages]
    config["default_pipeline"] = "export"
    config["pipelines"] = {"export": {"en": "Export", "zh": "导出", "stages": labels}}
    header = ("# Funnel configuration written by `funnelkit init --from`: the stages come from the export's stage\n"
              "# values, ordered by how many stage dates their deals carry (guess: check the order; add Chinese\n"
              "# labels under zh). Data may name a stage by its key or either label.\n")
    path.write_text(header + yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _sniff(path: Path) -> str | None:
    """The field separator of a text export: the most frequent of , ; tab | in its first line."""
    if path.suffix.lower() not in (".csv", ".txt", ".tsv"):
        return None
    head = path.read_bytes()[:65536].split(b"\n", 1)[0]
    counts = {sep: head.count(sep.encode()) for sep in (",", ";", "\t", "|")}
    return max(counts, key=counts.get) if max(counts.values()) else ","


def _date_order(values: pd.Series, where: str) -> str:
    """A comment on how a column writes dates: ISO, Excel serial, day first, month first or ambiguous."""
    text = values.dropna().astype(str).str.strip()
    text = text[text.ne("")]
    if text.empty:
        return "empty"
    if pd.to_datetime(text, errors="coerce", format="ISO8601").notna().all():
        return "iso"
    parts = text.str.extract(DMY_PATTERN)
    dmy = parts[0].notna()
    if dmy.any():
        try:
            return "dayfirst" if day_month_order(parts[dmy].assign(text=text[dmy]), where) else "monthfirst"
        except DataError as exc:
            return "contradictory" if "contradict" in str(exc) else "ambiguous"
    return "other"


def draft_preset(source: Path) -> tuple[str, list[str], list[str]]:
    """A draft preset (YAML text with a comment on each guess) for the export at ``source`` (a folder
    or one file), the stages its values suggest in order, and notes to print."""
    files = sorted(p for p in (source.iterdir() if source.is_dir() else [source])
                   if p.suffix.lower() in READABLE + (".txt", ".tsv"))
    if not files:
        raise DataError(f"{source}: no export files ({', '.join(READABLE)})")
    tables = {}
    for path in files:
        tables[path] = (read_table(path, separator=_sniff(path)), _sniff(path))
    # the main file: the one with a stage or status column and the most rows
    def score(item: tuple[Path, tuple[pd.DataFrame, str | None]]) -> tuple[int, int]:
        df = item[1][0]
        keys = {_key(c) for c in df.columns}
        return (int(bool(keys & set(STAGE_NAMES + STATUS_NAMES))), len(df))
    main_path, (main, separator) = max(tables.items(), key=score)
    out: list[str] = [f"# Draft preset written by `funnelkit init --from {source}`.",
                      "# Every line marked '# guess' is a guess: confirm or change it, then run `funnelkit check`.",
                      "shape: snapshot   # guess: one row per deal with its stage now (see the README for the others)",
                      f"files: {{deals: {main_path.name}}}"]
    if separator and separator != ",":
        out.append(f"separator: {_y(separator)}   # detected in the header line")
    notes: list[str] = []
    by_key = {_key(c): c for c in main.columns}
    columns: dict[str, str] = {}
    for field, names in SYNONYMS.items():
        found = next((by_key[n] for n in names if n in by_key and by_key[n] not in columns), None)
        if found is not None:
            columns[found] = field
    stage_col = next((by_key[n] for n in STAGE_NAMES if n in by_key), None)
    status_col = next((by_key[n] for n in STATUS_NAMES if n in by_key), None)
    stage_col = stage_col or status_col
    # date columns and their order
    dates: dict[str, str] = {}
    for column in main.columns:
        if DATE_HINT.search(str(column)) and column not in (stage_col,):
            dates[column] = _date_order(main[column], f"{main_path.name}, column {column}")
    orders = {o for o in dates.values() if o in ("dayfirst", "monthfirst")}
    out.append("columns:   # export column → canonical field (guess from the header names)")
    for source_col, field in columns.items():
        out.append(f"  {_y(source_col)}: {field}")
    team_from_lookup = any(_key(c) in SYNONYMS["team"] for path, (df, _) in tables.items() if path != main_path
                           for c in df.columns)
    if "team" not in columns.values() and not team_from_lookup:
        out.append("defaults: {team: All}   # guess: no team column recognised; map one, or join a lookup file")
    if len(orders) == 1:
        out.append(f"dayfirst: {str(orders == {'dayfirst'}).lower()}   # detected: days above 12 in "
                   f"{', '.join(c for c, o in dates.items() if o in orders)}")
    elif any(o in ("ambiguous", "contradictory") for o in dates.values()) or len(orders) > 1:
        out.append("dayfirst: null   # SET THIS: the dates do not show whether the day or the month comes first")
    for column, order in dates.items():
        out.append(f"# date column {column}: {order}")
    stages: list[str] = []
    if stage_col is not None:
        values = main[stage_col].dropna().astype(str).str.strip()
        distinct = [v for v in pd.unique(values) if v][:40]
        date_cols = list(dates)
        filled = main[date_cols].notna().sum(axis=1) if date_cols else pd.Series(0, index=main.index)
        depth = {v: float(filled[values.index[values == v]].mean()) for v in distinct}
        won = [v for v in distinct if WON.search(v)]
        lost = [v for v in distinct if LOST.search(v)]
        ordinary = sorted((v for v in distinct if v not in won + lost), key=lambda v: (depth[v], v))
        if not ordinary:
            ordinary = ["Opportunity"]
            notes.append("no open stage values: deals start in one stage 'Opportunity' and end won or lost")
        stages = ordinary + (won[:1] or ["Won"])
        out.append(f"stage_column: {_y(stage_col)}   # guess: the deal's current stage")
        out.append("stages:   # export value → stage key of params/funnel.yaml; ~ marks a close that is no stage")
        for v in distinct:
            target = "~" if v in lost else _slug(stages[-1]) if v in won else _slug(v)
            why = "lost: a close at the furthest dated stage" if v in lost else "won: the final stage" if v in won \
                else f"an open stage (its deals carry {depth[v]:.1f} stage dates on average)"
            out.append(f"  {_y(v)}: {target}   # guess: {why}")
        if won or lost:
            out.append("status_from_stage:   # guess: other values are open")
            for v in won:
                out.append(f"  {_y(v)}: won")
            for v in lost:
                out.append(f"  {_y(v)}: lost")
        stage_dates = {}
        for column in dates:
            if column in columns:
                continue
            match = next((s for s in ordinary if _key(s)[:5] and _key(s)[:5] in _key(column)), None)
            if match:
                stage_dates[_slug(match)] = column
        if stage_dates:
            out.append("stage_dates:   # guess: stage key → the column with its entry date (by name)")
            for key, column in stage_dates.items():
                out.append(f"  {key}: {_y(column)}")
        if "created_at" not in columns.values() and not dates:
            out.append("as_of: null   # SET THIS: the export has no dates; give the analysis date")
            out.append("# and constants for the dates, e.g. defaults: {created_at: 2024-06-30, closed_at: 2024-06-30}")
    else:
        notes.append("no stage or status column recognised: set stage_column (or status_column) in the preset")
    # other files: lookups (a column of the main file, unique in the other file)
    for path, (df, _) in tables.items():
        if path == main_path:
            continue
        shared = [c for c in df.columns if c in main.columns and df[c].is_unique]
        if shared:
            extra = [c for c in df.columns if c != shared[0]]
            out.append(f"lookups:   # guess: {path.name} gives each {shared[0]} more fields")
            out.append(f"  - file: {path.name}")
            out.append(f"    key: {_y(shared[0])}")
            out.append("    columns: {" + ", ".join(f"{_y(c)}: "
                                              f"{'team' if _key(c) in SYNONYMS['team'] else _y(c)}"
                                              for c in extra) + "}")
        else:
            notes.append(f"{path.name}: not used by the draft (no column shared with {main_path.name}); "
                         "an outcomes file keyed by the deal id goes under `outcomes:`")
    return "\n".join(out) + "\n", stages, notes
