"""Read and write datasets: CSV (UTF-8, UTF-8 with BOM, GB18030), Excel, Parquet and DuckDB.

Loading goes one way. :func:`load_data` is the one entry: it resolves the preset (plain data,
:mod:`funnelkit.inputs.presets`), reads the files the preset's shape needs, hands them to that shape's
reader (:data:`funnelkit.inputs.readers.READERS`) to apply the mapping, and validates the result
(:func:`funnelkit.inputs.data.validate`), so callers always get a :class:`~funnelkit.inputs.data.Dataset` with its
quarantine. A dataset on disk is a folder of export files, or a DuckDB file with tables ``deals``
and ``stage_events``.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Mapping

import pandas as pd

from funnelkit.config import FunnelConfig, load_config
from funnelkit.inputs.data import DataError, Dataset, shown, validate
from funnelkit.events.engine import is_engine_source, load_source
from funnelkit.periods import as_of_bound
from funnelkit.inputs.presets import Preset, load_preset
from funnelkit.inputs.readers import READERS, file_columns, join_extras
from funnelkit.inputs.sample import SAMPLE_END, generate_sample

TABLE_FILES = ("deals", "stage_events")
READABLE = (".csv", ".xlsx", ".xls", ".parquet")
MAX_COLUMNS = 2_000  # a wider file is refused before it is parsed (100,000 columns took 1.4 GB)


def detect_encoding(raw: bytes, path: Path) -> str:
    """UTF-8 (with or without BOM) when the bytes decode as UTF-8, else GB18030 (a superset of GBK
    and GB2312, which Chinese Excel writes). A file whose lines mix the two is an error naming the
    first line that does not fit, because decoding it either way would garble text silently."""
    try:
        raw.decode("utf-8")
        return "utf-8-sig"
    except UnicodeDecodeError:
        pass
    lines = raw.split(b"\n")
    utf8_text, bad = False, None
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8")
            utf8_text = utf8_text or any(ord(c) > 127 for c in text)
        except UnicodeDecodeError:
            bad = bad or number
    if utf8_text and bad:
        raise DataError(f"{path}: line {bad} is not UTF-8 while other lines are: the file mixes encodings; "
                        "save it again in one encoding (UTF-8 or GB18030)")
    try:
        raw.decode("gb18030")
    except UnicodeDecodeError:
        raise DataError(f"{path}: line {bad} cannot be decoded as UTF-8 or GB18030") from None
    return "gb18030"


def _too_wide(columns: pd.Index, path: Path) -> None:
    if len(columns) > MAX_COLUMNS:
        raise DataError(f"{path}: {len(columns):,} columns; funnelkit reads at most {MAX_COLUMNS:,}. "
                        "Export only the columns the preset maps (a wider file is usually not a table of deals)")


TITLE_LINES = 10  # how far down a header under a title line (a report export's name, a blank line) is looked for


def title_lines(rows: list[list[object]]) -> int:
    """How many lines above the header a CRM's report export wrote (a title, an export date, blank
    lines): 0 unless the first line has at most one filled cell and a later line of the first
    :data:`TITLE_LINES` has two or more; then the lines before the first of the most filled ones."""
    counts = [sum(1 for cell in row if cell is not None and not pd.isna(cell) and str(cell).strip()) for row in rows]
    if not counts or counts[0] >= 2 or max(counts) < 2:
        return 0
    return counts.index(max(counts))


def read_csv(path: Path, encoding: str | None = None, separator: str | None = None) -> pd.DataFrame:
    """Read a CSV as text columns in ``encoding`` (else the one :func:`detect_encoding` finds),
    fields separated by ``separator`` (default ``,``)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror})") from None
    if not raw.strip():
        raise DataError(f"{path}: the file is empty (no header row)")
    if b"\x00" in raw[:65536]:
        raise DataError(f"{path}: holds NUL bytes: a binary file, not a CSV text export")
    encoding = encoding or detect_encoding(raw, path)
    options = dict(sep=separator or ",", dtype=str, keep_default_na=False, na_values=[""], encoding=encoding)
    lines = raw[:1 << 20].decode(encoding, errors="replace").splitlines()[:TITLE_LINES]
    try:
        skip = title_lines(list(csv.reader(lines, delimiter=separator or ",")))
    except csv.Error:
        skip = 0
    if skip:
        options["skiprows"] = skip
    header = lines[skip] if lines else ""
    try:  # the width before pandas builds a frame (100,000 columns took pandas minutes)
        width = len(next(csv.reader([header], delimiter=separator or ","), []))
    except csv.Error:  # a cell longer than the csv module's limit
        width = header.count(separator or ",") + 1
    if width > MAX_COLUMNS:
        _too_wide(pd.RangeIndex(width), path)
    try:
        return pd.read_csv(io.BytesIO(raw), **options)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid {encoding} ({exc.reason} at byte {exc.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV: {shown(exc, 300)}") from None


def read_table(path: Path, sheet: str | int | None = None, encoding: str | None = None,
               separator: str | None = None) -> pd.DataFrame:
    """Read one table file by its extension (csv, xlsx/xls, parquet)."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return read_csv(path, encoding, separator or ("\t" if suffix == ".tsv" else None))
    if suffix in (".xlsx", ".xls"):
        try:
            workbook = pd.ExcelFile(path)
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: not a readable Excel workbook ({shown(exc, 300)})") from None
        if sheet is not None and sheet not in workbook.sheet_names:
            raise DataError(f"{path}: no sheet {sheet!r}; the workbook has {', '.join(map(repr, workbook.sheet_names))}")
        table = pd.read_excel(workbook, sheet_name=sheet if sheet is not None else 0, dtype=object)
        named = [c for c in table.columns if not str(c).startswith("Unnamed: ")]
        skip = title_lines([named] + table.head(TITLE_LINES - 1).values.tolist()) if len(table.columns) > 1 else 0
        if skip:  # the header is a data row: the lines above it were a title
            header = [str(v).strip() if pd.notna(v) and str(v).strip() else f"Unnamed: {k}"
                      for k, v in enumerate(table.iloc[skip - 1])]
            table = table.iloc[skip:].set_axis(header, axis=1).reset_index(drop=True)
    elif suffix == ".parquet":
        try:
            table = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({shown(exc, 300)})") from None
    else:
        raise DataError(f"{path}: unsupported file type {shown(suffix)!r}; expected one of {', '.join(READABLE)}")
    _too_wide(table.columns, path)
    return table


def find_table(folder: Path, name: str) -> Path:
    """The file ``name`` in ``folder``: as given when it has an extension, else the single
    ``<name>.<ext>`` with a readable extension."""
    if Path(name).suffix and (folder / name).exists():
        return folder / name
    found = [folder / f"{name}{ext}" for ext in READABLE if (folder / f"{name}{ext}").exists()]
    if not found:
        raise DataError(f"{folder}: no {name} file; expected {name}.csv, {name}.xlsx or {name}.parquet")
    if len(found) > 1:
        raise DataError(f"{folder}: more than one {name} file: {', '.join(p.name for p in found)}")
    return found[0]


def read_duckdb(path: Path) -> dict[str, pd.DataFrame]:
    """Read the ``deals`` and ``stage_events`` tables of a DuckDB file."""
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        tables = {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}
        missing = [t for t in TABLE_FILES if t not in tables]
        if missing:
            raise DataError(f"{path}: no table {', '.join(missing)}; found {', '.join(sorted(tables)) or 'none'}")
        return {t: con.execute(f"select * from {t}").df() for t in TABLE_FILES}


def read_export(folder: Path, preset: Preset) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Every file ``preset`` needs from ``folder``: its shape's tables, lookup files and outcomes file.

    Returns the raw tables and their file names (for messages), keyed by table (``lookup:<file>``
    and ``outcomes`` for the extras).
    """
    wanted = {t: preset.files.get(t, t) for t in READERS[preset.shape].tables}
    wanted |= {f"lookup:{lookup.file}": lookup.file for lookup in preset.lookups}
    if preset.outcomes is not None:
        wanted["outcomes"] = preset.outcomes.file
    tables, names = {}, {}
    for table, name in wanted.items():
        path = find_table(folder, name)
        tables[table] = read_table(path, sheet=preset.sheets.get(table), encoding=preset.encoding,
                                   separator=preset.separator)
        names[table] = str(path)
    return tables, names


def load_data(
    path: str | Path,
    mapping: Mapping[str, str] | None = None,
    config: FunnelConfig | None = None,
    as_of: str | pd.Timestamp | None = None,
    preset: str | Path | Preset | None = None,
) -> Dataset:
    """Load and validate a dataset from a folder of export files or a DuckDB file.

    ``preset`` names a CRM export preset (``params/presets/<name>.yaml`` of the project or the
    packaged ones: salesforce, hubspot, snapshot, …), a preset YAML path, or a :class:`Preset`;
    without one the folder holds funnelkit's canonical ``deals`` and ``stage_events`` tables.
    ``mapping`` renames source columns to canonical ones (``{"Opportunity ID": "deal_id"}``) in
    both tables first. ``as_of`` (a date: end of that day; else the preset's ``as_of``) rejects
    anything dated after it. A folder written by :func:`write_dataset` also carries the quarantine
    of the run that wrote it.
    ``duckdb:///…`` and ``spark:…`` sources are checked and aggregated in that engine
    (:func:`funnelkit.events.engine.load_source`).
    """
    if is_engine_source(path):
        engine_preset = load_preset(preset)
        if mapping or engine_preset.shape != "canonical" or engine_preset.decimal != ".":
            raise DataError(f"{path}: an engine source holds canonical tables; a column mapping or a preset other "
                            "than the canonical shape (with how dates are written) cannot be applied to it")
        config = config or load_config()
        as_of = as_of if as_of is not None else engine_preset.as_of
        return load_source(str(path), config, as_of_bound(as_of, None) if as_of is not None else None,
                           parsing=engine_preset.parsing(config.timezone))
    path = Path(path)
    config = config or load_config()
    preset = load_preset(preset)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    as_of = as_of if as_of is not None else preset.as_of
    bound = as_of_bound(as_of, None) if as_of is not None else None
    prior = None
    if path.is_dir():
        tables, files = read_export(path, preset)
        if preset.shape == "canonical" and (path / "quarantine.parquet").exists():
            prior = pd.read_parquet(path / "quarantine.parquet")
    elif path.suffix.lower() in (".duckdb", ".db") and preset.shape == "canonical":
        tables = read_duckdb(path)
        files = {name: f"{path}:{name}" for name in TABLE_FILES}
    else:
        raise DataError(f"{path}: expected a folder of export files, or a .duckdb file with deals and stage_events")
    if mapping:
        tables = {name: df.rename(columns=dict(mapping)) for name, df in tables.items()}
    joined: list[str] = []
    if preset.lookups or preset.outcomes is not None:
        tables["deals"], joined = join_extras(tables["deals"], tables, preset, files)
    shaped = READERS[preset.shape].read(tables, preset, config, files)
    data = validate(shaped.deals, shaped.events, config, as_of=bound, deals_file=shaped.files["deals"],
                    events_file=shaped.files["stage_events"], parsing=preset.parsing(config.timezone))
    data = dataclasses.replace(data, notes=joined + shaped.notes + data.notes,
                               columns=file_columns(preset, dict(mapping) if mapping else None))
    if prior is not None and (path / "source.json").exists():
        meta = json.loads((path / "source.json").read_text(encoding="utf-8"))
        data = dataclasses.replace(data, source=meta["source"], columns=meta.get("columns", data.columns),
                                   notes=meta["notes"] + [n for n in data.notes if n not in meta["notes"]])
    if prior is not None and len(prior):
        return _with_prior_quarantine(data, prior)
    return data


def _with_prior_quarantine(data: Dataset, prior: pd.DataFrame) -> Dataset:
    rows_in = {t: n + int((prior["table"] == t).sum()) for t, n in data.rows_in.items()}
    quarantine = pd.concat([prior, data.quarantine], ignore_index=True) if len(data.quarantine) else prior
    return dataclasses.replace(data, quarantine=quarantine, rows_in=rows_in)


def sample_dataset(seed: int = 0, n_deals: int = 3000, config: FunnelConfig | None = None) -> Dataset:
    """The built-in sample data (see :mod:`funnelkit.inputs.sample`), validated like any other source."""
    deals, events = generate_sample(n_deals=n_deals, seed=seed)
    data = validate(deals, events, config or load_config(), as_of=SAMPLE_END,
                    deals_file="sample deals", events_file="sample stage_events")
    return data


def write_dataset(data: Dataset, folder: str | Path, fmt: str = "parquet") -> Path:
    """Write ``data`` as ``deals`` and ``stage_events`` files (csv or parquet) into ``folder``.

    Parquet output also stores the quarantine, so a cached copy reports the same data quality.
    """
    if getattr(data, "engine", None) is not None:
        raise DataError(f"{data.source}: its events stay in {data.engine.name}; write them there, not through pandas")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        data.deals.to_csv(folder / "deals.csv", index=False)
        data.events.to_csv(folder / "stage_events.csv", index=False)
    elif fmt == "parquet":
        data.deals.to_parquet(folder / "deals.parquet", index=False)
        data.events.to_parquet(folder / "stage_events.parquet", index=False)
        quarantine = data.quarantine.astype({c: "string" for c in ["table", "file", "deal_id", "column", "value", "reason"]})
        quarantine.to_parquet(folder / "quarantine.parquet", index=False)
        # where the data came from, so messages and reports name the export, not this copy
        (folder / "source.json").write_text(json.dumps({"source": data.source, "notes": list(data.notes),
                                                        "columns": data.columns}),
                                            encoding="utf-8")
    else:
        raise ValueError(f"unknown format {fmt!r}; expected csv or parquet")
    return folder


def open_dataset(source: str | Path = "sample", as_of: str | None = None, config: FunnelConfig | None = None,
                 preset: str | Path | Preset | None = None) -> Dataset:
    """What a notebook's ``data`` parameter names: ``"sample"`` or a path for :func:`load_data`.

    Loaded once per process for the same files and settings (a warm report kernel reads its run's
    data once); each call gets its own copy (:mod:`funnelkit.datacache`)."""
    from funnelkit import datacache

    config = config or load_config()
    preset_key = preset.model_dump_json() if hasattr(preset, "model_dump_json") else str(preset)
    key = (datacache.source_key(source), str(as_of), preset_key, config.model_dump_json())
    if str(source) == "sample":
        return datacache.reuse(key, lambda: sample_dataset(config=config))
    return datacache.reuse(key, lambda: load_data(source, config=config, as_of=as_of, preset=preset))


def write_table_export(table: pd.DataFrame, path: str | Path, sheet_by: str | None = None) -> Path:
    """Write ``table`` to CSV or Excel by the file's extension, spreadsheet-safe
    (:mod:`funnelkit.presentation.safe_output`: text is never a formula).

    Excel gets one sheet per value of ``sheet_by`` (e.g. one per rep) after an "All" sheet; sheet
    names are made valid for Excel and unique.
    """
    from funnelkit.presentation.safe_output import write_csv, write_xlsx

    path = Path(path)
    if path.suffix.lower() == ".csv":
        return write_csv(table, path)
    if path.suffix.lower() != ".xlsx":
        raise DataError(f"{path}: expected a .csv or .xlsx file name")
    sheets = [("All", table)] + (list(table.groupby(sheet_by, sort=True)) if sheet_by else [])
    return write_xlsx(sheets, path)
