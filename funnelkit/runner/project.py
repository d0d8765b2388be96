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
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from funnelkit.config import NOTEBOOKS_DIR, PARAMS_DIR, ConfigError
from funnelkit.inputs.data import CHINESE_DATE, DataError, DMY_PATTERN, day_month_order
from funnelkit.inputs.io import READABLE, read_table

# canonical field → header spellings (normalised: lower case, letters and digits only)
SYNONYMS: dict[str, list[str]] = {
    "deal_id": ["dealid", "id", "opportunityid", "recordid", "leadid", "mqlid", "opportunity", "商机编号", "商机id",
                "机会编号", "编号", "dealnummer"],
    "customer": ["customer", "account", "accountname", "company", "associatedcompany", "客户名称", "客户", "公司名称",
                 "organisation", "organization", "organisationsname", "kunde", "firma", "unternehmen"],
    "rep": ["rep", "owner", "dealowner", "salesagent", "seller", "salesrep", "agent", "ownerid", "负责人", "销售",
            "商机负责人", "销售负责人", "销售代表", "所有人",
            "besitzer", "inhaber", "dealinhaber", "verantwortlich", "vertriebsmitarbeiter"],
    "team": ["team", "salesteam", "hubspotteam", "manager", "团队", "所属部门", "部门", "销售团队", "销售部门",
             "负责人所属部门", "负责人主属部门", "vertriebsteam", "abteilung"],
    "created_at": ["createdat", "created", "createdate", "createddate", "firstcontactdate", "创建日期", "创建时间",
                   "erstelltam", "erstellungsdatum", "dealerstelltam", "dealcreated", "addtime"],
    "closed_at": ["closedat", "closedate", "closedate", "closingdate", "wondate", "关闭日期", "结单日期", "结单时间",
                  "实际结单日期", "成交日期", "赢单日期",
                  "abschlussdatum", "geschlossenam", "dealclosedon", "closetime"],
    "amount": ["amount", "value", "dealvalue", "closevalue", "revenue", "金额", "预计成交金额", "预计成交金额元",
               "商机金额", "商机金额元", "成交金额", "成交金额元", "销售金额",
               "wert", "dealwert", "betrag", "auftragswert"],
    "lost_reason": ["lostreason", "lossreason", "closedlostreason", "流失原因", "输单原因", "丢单原因",
                    "verlustgrund", "grunddesverlusts"],
    "industry": ["industry", "sector", "businesssegment", "行业", "branche"],
    "pipeline": ["pipeline", "业务流程", "商机流程"],
    "currency": ["currency", "currencycode", "dealcurrencycode", "币种", "货币", "währung", "wahrung"],
    "win_probability": ["probability", "dealprobability", "winprobability", "成交概率", "赢率", "wahrscheinlichkeit"],
}
# a stage history names the stage entered; a log of stage changes ("From stage", "To stage") the new one
STAGE_NAMES = ["stage", "dealstage", "stagename", "阶段", "currentstage", "tostage", "newstage", "stageto",
               "销售阶段", "商机阶段", "变更后阶段", "新阶段",
               "phase", "dealphase", "stufe"]
STATUS_NAMES = ["status", "result", "outcome", "opportunityresult", "状态", "winloss", "赢单输单", "输赢状态",
                "输赢", "商机状态", "dealstatus"]
# a log of every field change (Pipedrive's deal updates): the field column and the new value's column
FIELD_NAMES = ["feld", "field", "fieldname", "feldname", "geändertesfeld", "changedfield", "attribute", "字段",
               "变更字段", "字段名称"]
NEW_VALUE_NAMES = ["neuerwert", "newvalue", "tovalue", "valueafter", "wertneu", "新值", "变更后值", "变更后"]
WON = re.compile(r"^(closed\s*)?(won|win|wins|gewonnen)$|赢单|成交", re.IGNORECASE)
LOST = re.compile(r"^(closed\s*)?(lost|loss|lose|verloren)$|输单|丢单|流失", re.IGNORECASE)
# "Changed at" too; German: "Erstellt am", "Abschlussdatum", "Geändert am", "Uhrzeit"
DATE_HINT = re.compile(r"date|time|(^|[\s_])at$|datum|zeit|(^|[\s_])am$|日期|时间", re.IGNORECASE)


def _y(value: Any) -> str:
    """``value`` as a one-line YAML scalar (quoted where YAML needs it)."""
    return yaml.safe_dump(value, allow_unicode=True).splitlines()[0]


def _key(name: Any) -> str:
    return re.sub(r"[\W_]+", "", str(name)).casefold()


def _slug(name: Any) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", str(name).casefold()).strip("_")
    return key if re.match(r"^[a-z]", key or "") else f"stage_{key or 'x'}"


def stage_keys(values: list[str]) -> dict[str, str]:
    """A distinct stage key for each value: its ASCII slug, else ``stage_<position>`` (a Chinese
    name has no ASCII letters, and every one would otherwise become the same key)."""
    keys: dict[str, str] = {}
    for number, value in enumerate(values, start=1):
        key = _slug(value) if re.search(r"[A-Za-z0-9]", str(value)) else f"stage_{number}"
        while key in keys.values():
            key = f"{key}_{number}"
        keys[value] = key
    return keys


def init_project(folder: Path, source: Path | None = None, preset_name: str = "my_export") -> tuple[list[str], bool]:
    """Write a project into ``folder``; with ``source``, a draft preset for that export too.

    Returns the lines to print (what was written and what to do next) and whether a first load with
    the draft succeeded (always true without ``source``). The project is built in a temporary folder
    beside ``folder`` and moved into place only when complete: a failure writes nothing.
    """
    if (folder / "params").exists():
        raise ConfigError(f"{folder}: already holds params/; choose a new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.init-", dir=folder.parent))
    try:
        lines, loaded = _write_project(work, folder, source, preset_name)
        folder.mkdir(exist_ok=True)
        for item in work.iterdir():
            item.rename(folder / item.name)
    except (DataError, ConfigError) as exc:
        raise type(exc)(str(exc).replace(str(work), str(folder))) from None
    except Exception as exc:  # noqa: BLE001 - a draft must never end in a traceback
        what = f"reading the export {source}" if source is not None else f"writing {folder}"
        raise DataError(f"{what}: {str(exc).replace(str(work), str(folder))} ({type(exc).__name__}); "
                        "nothing was written") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return lines, loaded


def _write_project(work: Path, folder: Path, source: Path | None, preset_name: str) -> tuple[list[str], bool]:
    """Write the project into ``work``; the lines printed name ``folder``, where it will be moved."""
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")
    shutil.copytree(PARAMS_DIR, work / "params", ignore=ignore)
    shutil.copytree(NOTEBOOKS_DIR, work / "notebooks", ignore=ignore)
    (work / "data").mkdir(exist_ok=True)
    lines = [f"wrote {folder}/params (settings), {folder}/notebooks, {folder}/data (put your export here)"]
    data, preset, loaded = "data", None, True
    if source is not None:
        found: dict[str, Any] = {}
        draft, stages, notes = draft_preset(source, found)
        path = work / "params" / "presets" / f"{preset_name}.yaml"
        path.write_text(draft, encoding="utf-8")
        if stages:
            names = _write_funnel(work / "params" / "funnel.yaml", stages, found.get("currency"), found.get("pipelines"))
            _write_playbook(work / "params" / "playbook.yaml", names)
        data, preset = str(source.resolve() if source.is_dir() else source.resolve().parent), preset_name
        _point_matrix(work / "params" / "reports.yaml", data, preset)
        shown_path = folder / "params" / "presets" / f"{preset_name}.yaml"
        lines += [f"wrote a draft preset {shown_path} — read every '# guess' comment and confirm it", *notes]
        if stages:
            lines.append(f"wrote {folder}/params/funnel.yaml with the export's stages (English labels "
                         f"\"Stage N: <name>\" where the name is Chinese: write your own) and {folder}/params/"
                         "playbook.yaml with the sample's stage actions put against them — a draft to edit")
        if found.get("currency") not in (None, "CNY"):  # the packaged card's amount bands are yuan-sized
            lines.append(f"the amounts are in {found['currency']}: params/scorecard.yaml's amount bands are the "
                         "packaged card's, set for CNY (≥ 1,000,000 scores 5): set them for your deal sizes, or "
                         "learn a card from your won and lost deals with `funnelkit fit-scorecard`")
        if len(found.get("pipelines") or {}) > 1:
            _entries_per_pipeline(work / "params" / "reports.yaml", list(found["pipelines"]))
        first, loaded = _first_look(work, Path(data), path)
        lines += [line.replace(str(work), str(folder)) for line in first]
        lines.append(f"next: funnelkit check {data} --project {folder} --preset {preset_name}")
    else:
        _point_matrix(work / "params" / "reports.yaml", data, preset)
    lines.append(f"then: funnelkit report --project {folder}   (or cd {folder} && funnelkit report)")
    return lines, loaded


def _first_look(folder: Path, data: Path, preset: Path) -> tuple[list[str], bool]:
    """Load the export with the draft: report periods become the year of its latest date, and
    the result (or the first problem) is printed; the flag says whether the load succeeded."""
    from funnelkit.config import load_config
    from funnelkit.inputs.io import load_data

    try:
        loaded = load_data(data, config=load_config(folder / "params" / "funnel.yaml"), preset=preset)
    except (DataError, ConfigError) as exc:
        return [f"a first load with the draft stops at: {exc}", "fix the preset, then run the check below"], False
    if loaded.deals.empty:  # the as-of date is then today's, not the data's: no period to set
        return [f"a first load with the draft: 0 of {loaded.rows_in['deals']:,} deals analysed; "
                "report periods left as they were (run the check below)"], False
    year = (loaded.as_of - pd.Timedelta(days=1)).year
    matrix = folder / "params" / "reports.yaml"
    text = re.sub(r"(?m)^(\s*)periods:.*$", rf'\1periods: ["{year}"]   # the year of the latest date',
                  matrix.read_text(encoding="utf-8"))
    team = str(loaded.deals["team"].value_counts().index[0])  # the sample's North is no team of the export
    text = re.sub(r"(?m)^(\s*)teams: \[North\]", rf"\1teams: [{_y(team)}]   # the team with the most deals", text)
    # the sample's rep (Zhao Lei) is no rep of the export either: the chosen team's busiest rep
    reps = loaded.deals.loc[loaded.deals["team"] == team, "rep"].dropna()
    text = re.sub(r"(?m)^(\s*)reps: \[Zhao Lei\]",
                  (rf"\1reps: [{_y(str(reps.value_counts().index[0]))}]   # the rep with the most deals in that team"
                   if len(reps) else r"\1reps: all"), text)
    matrix.write_text(text, encoding="utf-8")
    return [f"a first load with the draft: {len(loaded.deals):,} of {loaded.rows_in['deals']:,} deals analysed; "
            f"report periods set to {year}"], len(loaded.deals) > 0


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


CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def english_label(name: str, number: int) -> str:
    """The drafted English label of the export's stage ``name``, the ``number``-th: the name itself
    when it has no Chinese (an English or other Latin-script CRM's own word), else
    ``Stage 3: 方案报价`` — no translation is made up (a guessed one would read as the user's own
    wording), and an English reader still gets the stage's place and the name the CRM shows."""
    return f"Stage {number}: {name}" if CJK.search(name) else name


def _entries_per_pipeline(path: Path, pipelines: list[str]) -> None:
    """Each entry of the project's reports.yaml once per pipeline (``pipeline: <name>``): a report
    covers one pipeline when the pipelines' stages differ (their funnels cannot be added up)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("entries:")) + 1
    out, block = lines[:start], []

    def flush() -> None:
        for name in pipelines:
            out.extend(block + [f"    pipeline: {_y(name)}   # one report per pipeline: their stages differ"])
        block.clear()

    for line in lines[start:]:
        if line.startswith("  - ") or not line.startswith("    "):
            if block:
                flush()
            if not line.startswith("  - "):
                out.append(line)
                continue
        block.append(line)
    if block:
        flush()
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _write_funnel(path: Path, stages: list[str], currency: str | None = None,
                  pipelines: dict[str, list[str]] | None = None) -> dict[str, str]:
    """The project's funnel.yaml with one pipeline of the export's stages (or, given ``pipelines``,
    one per pipeline of the export: its name → its stage keys in order, the first the default) and
    the amounts' currency when the export shows one (languages, categories and otherwise the
    currency kept from the defaults); returns each stage key → the export's name, in funnel order.
    Labels: ``zh`` the export's name, ``en`` :func:`english_label`."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    if currency:
        config["currency"] = currency
    config.pop("b2b_stages", None)
    keys = stage_keys(stages)
    labels = [{"key": key, "en": english_label(str(s), n), "zh": str(s)}
              for n, (s, key) in enumerate(keys.items(), start=1)]
    config["default_pipeline"] = "export"
    config["pipelines"] = {"export": {"en": "Export", "zh": "导出", "stages": labels}}
    if pipelines:  # the export's pipeline column names each deal's pipeline: keep its names as keys
        by_key = {label["key"]: label for label in labels}
        config["default_pipeline"] = next(iter(pipelines))
        config["pipelines"] = {name: {"en": name, "zh": name, "stages": [dict(by_key[k]) for k in keys]}
                               for name, keys in pipelines.items()}
    header = ("# Funnel configuration written by `funnelkit init --from`: the stages come from the export's stage\n"
              "# values, ordered by how many stage dates their deals carry (guess: check the order). zh holds the\n"
              "# export's own names; en the same name where it has no Chinese, else \"Stage N: <the export's name>\"\n"
              "# (not a translation: write the English names your readers use). Data may name a stage by its key\n"
              "# or either label.\n")
    path.write_text(header + yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return {key: str(name) for name, key in keys.items()}


def _write_playbook(path: Path, names: dict[str, str]) -> None:
    """The project's playbook.yaml with its ``stages:`` keyed by the export's stages (``names``: key
    → the export's name, in funnel order): the sample's key actions, as a draft to edit, put against the export's open
    stages by their place before the close — the sample's last open stage (negotiation) against the
    export's last open stage, and so on back; a stage with no counterpart (or one the sample gives
    no actions) is left out, and the report says none is set. The sample's stage keys are gone:
    none is a stage of the export, so every stage read "none set in the playbook"."""
    from funnelkit.config import load_config

    text = path.read_text(encoding="utf-8")
    sample = yaml.safe_load(text).get("stages") or {}
    sample_open = load_config(PARAMS_DIR / "funnel.yaml").stage_keys()[:-1]
    keys = list(names)
    paired = dict(zip(reversed(keys[:-1]), reversed(sample_open)))
    lines = ["# DRAFT written by `funnelkit init --from`: the key actions of the sample playbook, put against",
             "# this export's stages by their place before the close (the sample's last open stage against the",
             "# export's last open stage, and so on back). Edit them to your own sales process; a stage left",
             "# out reads \"none set in the playbook\" in the reports.",
             "stages:"]
    for key in keys[:-1]:
        was = paired.get(key)
        if was not in sample:
            continue
        name = re.sub(r"\s+", " ", names[key])  # a comment ends at a line break
        lines.append(f"  {_y(key)}:   # {name} — draft: the sample's {was} actions")
        lines += [f"    {language}: {_y(words)}" for language, words in sample[was].items()]
    head = re.split(r"(?m)^stages:", text, maxsplit=1)[0].rstrip("\n")
    path.write_text(head + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


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
    if text.str.fullmatch(CHINESE_DATE).all():
        return "chinese (2024年3月5日: year, month and day named, nothing to set)"
    parts = text.str.extract(DMY_PATTERN)
    dmy = parts[0].notna()
    if dmy.any():
        try:
            return "dayfirst" if day_month_order(parts[dmy].assign(text=text[dmy]), where) else "monthfirst"
        except DataError as exc:
            return "contradictory" if "contradict" in str(exc) else "ambiguous"
    return "other"


def _stage_history(tables: dict[Path, tuple[pd.DataFrame, str | None]], main_path: Path,
                   main: pd.DataFrame) -> tuple[Path, pd.DataFrame, str, str, dict[str, list[str]]] | None:
    """A file of stage entries beside the deals file: it repeats the deals file's id column and has
    a stage column and a date column — or is a log of every field change (a field column, e.g.
    Pipedrive's ``Feld``, naming the stage field among others, and a new value column). Returns
    ``(path, table, stage column, date column, event_rows)``, the table cut to the stage changes
    (and status changes to won or lost) and ``event_rows`` the preset's filter for them (empty for
    a file of stage entries only)."""
    id_col = _id_column(main)
    for path, (df, _) in tables.items():
        if path == main_path or id_col is None or id_col not in df.columns or df[id_col].is_unique:
            continue
        keys = {_key(c): c for c in df.columns}
        stage = next((keys[n] for n in STAGE_NAMES if n in keys), None)
        rows: dict[str, list[str]] = {}
        field, new = (next((keys[n] for n in names if n in keys), None) for names in (FIELD_NAMES, NEW_VALUE_NAMES))
        if stage is None and field is not None and new is not None:
            names = df[field].astype("string").str.strip()
            stage_fields = [v for v in pd.unique(names.dropna()) if _key(v) in STAGE_NAMES]
            status_fields = [v for v in pd.unique(names.dropna()) if _key(v) in STATUS_NAMES
                             and df.loc[names == v, new].dropna().astype(str).map(lambda x: bool(WON.search(x.strip()))).any()]
            if stage_fields:
                rows = {field: stage_fields + status_fields}
                df, stage = df[names.isin(rows[field]).fillna(False).to_numpy(dtype=bool)], new
        entered = next((c for c in df.columns if c != stage and DATE_HINT.search(str(c))), None)
        if stage is not None and entered is not None:
            return path, df, stage, entered, rows
    return None


def _history_stages(history: tuple[Path, pd.DataFrame, str, str, dict[str, list[str]]], status: pd.Series | None,
                    out: list[str], pipelines: pd.Series | None = None,
                    by_pipeline: dict[str, list[str]] | None = None) -> list[str]:
    """The stages of a stage-entry file in funnel order (by a value's mean position among its deal's
    entries, a won value last), appended to ``out`` as ``stages:`` with the deals' ``status_values``.
    With ``pipelines`` (each deal's pipeline, indexed by deal id), ``by_pipeline`` receives each
    pipeline's stage keys in the order its deals enter them (two pipelines name their stages apart)."""
    by_pipeline = {} if by_pipeline is None else by_pipeline
    path, events, stage_col, _, _ = history
    values = events[stage_col].astype("string").str.strip()
    position = values.groupby(events[_id_column(events)]).cumcount()
    order = position.groupby(values).mean()
    won = [v for v in order.index if WON.search(v)]
    lost = [v for v in order.index if LOST.search(v)]
    stages = sorted((v for v in order.index if v not in won + lost), key=lambda v: (order[v], v)) + won[:1]
    keys = stage_keys(stages)
    if pipelines is not None:  # each pipeline's stages in the order its own deals enter them
        ids = events[_id_column(events)].astype("string").str.strip()
        of_deal = ids.map(pipelines.set_axis(pipelines.index.astype("string").str.strip()))
        for name in pd.unique(pipelines.dropna()):
            part = order if of_deal.isna().all() else position[of_deal == name].groupby(values[of_deal == name]).mean()
            by_pipeline[str(name)] = [keys[v] for v in sorted((v for v in part.index if v in keys and v not in won),
                                                             key=lambda v: (part[v], v))] + [keys[w] for w in won[:1]]
    out.append(f"stages:   # guess: {path.name}'s stage values → stage keys, in the order deals enter them")
    for v in stages:
        out.append(f"  {_y(v)}: {keys[v]}   # guess: entered as entry {order[v] + 1:.1f} of a deal on average")
    for v in lost:
        out.append(f"  {_y(v)}: ~   # guess: a close, not a stage: the deals' status says a deal was lost")
    if status is not None:
        out.append("status_values:   # guess: the deals' status values")
        for v in pd.unique(status.dropna().astype(str).str.strip()):
            if v:
                guess = "won" if WON.search(v) else "lost" if LOST.search(v) else "open"
                out.append(f"  {_y(v)}: {guess}")
    return stages


def _id_column(df: pd.DataFrame) -> str | None:
    """The deal id column of a table, by the header names."""
    keys = {_key(c): c for c in df.columns}
    return next((keys[n] for n in SYNONYMS["deal_id"] if n in keys), None)


def amount_currency(amounts: pd.Series, codes: pd.Series | None = None) -> str | None:
    """The currency most amounts are in: the most common code of a currency column, else the most
    common mark written in the amounts (``$`` → USD, ``¥`` → CNY, ``€`` → EUR, ``£`` → GBP); None
    when nothing says."""
    if codes is not None:
        code = codes.dropna().astype(str).str.strip().str.upper()
        code = code[code.str.fullmatch(r"[A-Z]{3}")]
        if len(code):
            return str(code.value_counts().index[0])
    marks = amounts.dropna().astype(str).str.extract(r"([¥￥$€£]|CNY|RMB|USD|EUR|GBP|元)")[0].dropna()
    names = {"¥": "CNY", "￥": "CNY", "元": "CNY", "RMB": "CNY", "$": "USD", "€": "EUR", "£": "GBP"}
    return names.get(marks.value_counts().index[0], marks.value_counts().index[0]) if len(marks) else None


def _known_columns(df: pd.DataFrame) -> int:
    """How many of a table's headers name a field, a stage, a status or a date."""
    names = {n for spellings in SYNONYMS.values() for n in spellings} | set(STAGE_NAMES + STATUS_NAMES)
    return sum(1 for c in df.columns if _key(c) in names or DATE_HINT.search(str(c)))


def _best_sheet(path: Path) -> tuple[pd.DataFrame, str | None]:
    """The table of an export file, and the sheet it is on when that is not the workbook's first:
    CRMs put a notes or cover sheet (说明, "Read me") beside the data, before it or after it. The
    sheet whose headers name the most fields wins, then the one with more rows."""
    if path.suffix.lower() not in (".xlsx", ".xls"):
        return read_table(path, separator=_sniff(path)), None
    names = pd.ExcelFile(path).sheet_names
    if len(names) == 1:
        return read_table(path), None
    read = {name: read_table(path, sheet=name) for name in names}
    best = max(names, key=lambda name: (_known_columns(read[name]), len(read[name])))
    return read[best], (best if best != names[0] else None)


def draft_preset(source: Path, extra: dict[str, Any] | None = None) -> tuple[str, list[str], list[str]]:
    """A draft preset (YAML text with a comment on each guess) for the export at ``source`` (a folder
    or one file), the stages its values suggest in order, and notes to print. ``extra`` (when given)
    receives what belongs in funnel.yaml rather than the preset: ``currency``, the amounts' currency."""
    files = sorted(p for p in (source.iterdir() if source.is_dir() else [source])
                   if p.suffix.lower() in READABLE + (".txt", ".tsv"))
    if not files:
        raise DataError(f"{source}: no export files ({', '.join(READABLE)})")
    tables, sheets = {}, {}
    for path in files:
        table, sheets[path] = _best_sheet(path)
        tables[path] = (table, _sniff(path))
    # the main file: the one with a stage or status column, one row per deal id (a stage history
    # repeats the id), and the most rows
    def score(item: tuple[Path, tuple[pd.DataFrame, str | None]]) -> tuple[int, int, int]:
        df = item[1][0]
        keys = {_key(c) for c in df.columns}
        ids = _id_column(df)
        return (int(bool(keys & set(STAGE_NAMES + STATUS_NAMES))),
                int(ids is None or df[ids].nunique() >= 0.9 * len(df)), len(df))  # a few duplicates: bad rows
    main_path, (main, separator) = max(tables.items(), key=score)
    history = _stage_history(tables, main_path, main)
    out: list[str] = [f"# Draft preset written by `funnelkit init --from {source}`.",
                      "# Every line marked '# guess' is a guess: confirm or change it, then run `funnelkit check`."]
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
    pipeline_col = next((c for c, f in columns.items() if f == "pipeline"), None)
    if pipeline_col is not None and main[pipeline_col].dropna().astype(str).str.strip().nunique() <= 1:
        del columns[pipeline_col]  # one pipeline: its name is no key of funnel.yaml, and nothing to tell apart
        notes.append(f"{main_path.name}: column {pipeline_col} holds one pipeline: not mapped (every deal is in "
                     "funnel.yaml's pipeline 'export')")
    if extra is not None and "amount" in columns.values():
        amount_col = next(c for c, f in columns.items() if f == "amount")
        currency_col = next((c for c, f in columns.items() if f == "currency"), None)
        extra["currency"] = amount_currency(main[amount_col], main[currency_col] if currency_col else None)
    # date columns and their order
    dates: dict[str, str] = {}
    for column in main.columns:
        if DATE_HINT.search(str(column)) and column not in (stage_col,):
            dates[column] = _date_order(main[column], f"{main_path.name}, column {column}")
    if history:
        path, events, event_stage, entered, event_rows = history
        out += ["shape: canonical   # guess: a deals file and a file of stage entries (one row per stage a deal entered)",
                f"files: {{deals: {_y(main_path.name)}, stage_events: {_y(path.name)}}}"]
        for column, values in event_rows.items():
            out.append(f"event_rows: {{{_y(column)}: [{', '.join(_y(v) for v in values)}]}}   # guess: {path.name} "
                       f"logs every field change; its {column} rows for these fields are the stage changes")
        chosen = {table: sheets[p] for table, p in (("deals", main_path), ("stage_events", path)) if sheets[p]}
        if chosen:
            out.append("sheets: {" + ", ".join(f"{t}: {_y(n)}" for t, n in chosen.items())
                       + "}   # guess: the workbook's sheet that holds the table (the others look like notes)")
        dates[entered] = _date_order(events[entered], f"{path.name}, column {entered}")
        blanks = status_col is not None and int(main[status_col].isna().sum()
                                                + main[status_col].astype("string").str.strip().eq("").sum())
        if blanks and stage_col is not None and stage_col != status_col:
            # 赢单/输单 left blank for an open deal: the stage now (销售阶段) names every deal's status
            notes.append(f"{main_path.name}: column {status_col} is blank in {blanks:,} rows (open deals?): "
                         f"the status is read from {stage_col} instead")
            status_col = None
        if status_col is not None:
            columns[status_col] = "status"
        columns |= {event_stage: "stage", entered: "entered_at"}
        if status_col is None and stage_col is not None:  # the deal's stage now says won, lost or open
            status_col = stage_col
            out.append(f"status_column: {_y(stage_col)}   # guess: the deal's stage now gives its status")
    else:
        out += ["shape: snapshot   # guess: one row per deal with its stage now (see the README for the others)",
                f"files: {{deals: {_y(main_path.name)}}}"]
        if sheets[main_path]:
            out.append(f"sheets: {{deals: {_y(sheets[main_path])}}}   # guess: the workbook's sheet that holds the deals")
    if separator and separator != ",":
        out.append(f"separator: {_y(separator)}   # detected in the header line")
    amount_col = next((c for c, f in columns.items() if f == "amount"), None)
    if amount_col is not None:
        text = main[amount_col].dropna().astype(str)
        comma = text.str.contains(r"\d\.\d{3}(?:,\d+|\b)|\d,\d{1,2}(?!\d)").sum()  # 1.234.500,00 / 12,50
        point = text.str.contains(r"\d,\d{3}(?:\.\d+|\b)|\d\.\d{1,2}(?!\d)").sum()  # 1,234,500.00 / 12.50
        if comma > point:
            out.append(f"decimal: \",\"   # detected: {amount_col} writes amounts like {_y(text[text.str.contains(r'[.,]')].iloc[0])}")
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
    if history:
        pipelines = (main[pipeline_col].astype("string").str.strip().set_axis(main[_id_column(main)].astype("string"))
                     if pipeline_col in columns and _id_column(main) is not None else None)
        by_pipeline: dict[str, list[str]] = {}
        stages = _history_stages(history, main[status_col] if status_col is not None else None, out, pipelines,
                                 by_pipeline)
        if extra is not None and len(by_pipeline) > 1:
            extra["pipelines"] = by_pipeline
    elif stage_col is not None:
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
        keys = stage_keys(stages)
        out.append(f"stage_column: {_y(stage_col)}   # guess: the deal's current stage")
        out.append("stages:   # export value → stage key of params/funnel.yaml; ~ marks a close that is no stage")
        for v in distinct:
            target = "~" if v in lost else keys[stages[-1]] if v in won else keys[v]
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
                stage_dates[keys[match]] = column
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
        if path == main_path or (history and path == history[0]):
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
            id_col = _id_column(main)
            why = (f"its {id_col} repeats but no stage column and date column were recognised"
                   if id_col in df.columns else f"no column shared with {main_path.name}")
            notes.append(f"{path.name}: not used by the draft ({why}); a stage history goes under `files:` as "
                         "`stage_events`, an outcomes file keyed by the deal id under `outcomes:`")
    return "\n".join(out) + "\n", stages, notes
