"""Spreadsheet-safe CSV and Excel output: data is written as data, never as a formula.

A spreadsheet treats a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some programs,
a tab or carriage return) as a formula, so a customer named ``=HYPERLINK("http://x","click")``
would become a live link in a follow-up plan (OWASP "CSV injection"). Every CSV and Excel file
funnelkit writes for people goes through :func:`write_csv` or :func:`write_xlsx`:

* CSV: such a text cell gets a leading apostrophe (``'=HYPERLINK(...)``), which spreadsheets show
  as text; numbers are left alone (``-2`` as a number stays a number).
* Excel: such a text cell is a string cell with Excel's "quote prefix" style, so it is shown as
  typed and stays text even when edited; nothing is a formula cell.
* Sheet names are made valid for Excel and unique (:func:`sheet_names`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Hashable, Iterable

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
SHEET_NAME_MAX = 31
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
# Control characters an xlsx file cannot hold (openpyxl refuses them); shown as U+FFFD instead.
_XLSX_ILLEGAL = re.compile(r"[\000-\010\013\014\016-\037]")


def is_formula_like(value: Any) -> bool:
    """True for a text value a spreadsheet would read as a formula (starts with
    ``= + - @``, tab or carriage return). Numbers, dates and missing values are never formula-like."""
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES)


def csv_text(value: Any) -> Any:
    """``value`` with a leading apostrophe when it is formula-like text; anything else unchanged."""
    return "'" + value if is_formula_like(value) else value


def _text_columns(df: pd.DataFrame) -> list[Hashable]:
    """Columns that may hold text: object, string and categorical ones."""
    return [c for c in df.columns if pd.api.types.is_object_dtype(df[c]) or pd.api.types.is_string_dtype(df[c])
            or isinstance(df[c].dtype, pd.CategoricalDtype)]


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose formula-like text cells (and column names) start with an apostrophe."""
    out = df.copy()
    for column in _text_columns(out):
        out[column] = out[column].map(csv_text).astype(object)
    return out.rename(columns=lambda c: csv_text(c) if isinstance(c, str) else c)


def write_csv(df: pd.DataFrame, path: str | Path, **kwargs: Any) -> Path:
    """Write ``df`` as UTF-8 CSV with a BOM (Excel then opens Chinese text correctly), no index,
    formula-like text neutralised (:func:`csv_safe`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    csv_safe(df).to_csv(path, index=False, encoding="utf-8-sig", **kwargs)
    return path


def sheet_names(values: Iterable[Any], taken: Iterable[str] = ()) -> list[str]:
    """A valid, unique Excel sheet name for each value, in order.

    Excel forbids ``[ ] : * ? / \\``, a leading or trailing apostrophe, the reserved name
    ``History``, empty names and names over 31 characters, and compares names without regard to
    case. Forbidden characters become ``_``; a name that would repeat (case-insensitively) one in
    ``taken`` or an earlier value gets a ``~2``, ``~3`` … suffix within the 31 characters.
    """
    used = {t.casefold() for t in taken}
    names = []
    for value in values:
        base = _XLSX_ILLEGAL.sub("_", _SHEET_FORBIDDEN.sub("_", str(value))).strip().strip("'").strip()
        if base.casefold() == "history":
            base += "_"
        base = base[:SHEET_NAME_MAX].strip("'") or "_"
        name, n = base, 1
        while name.casefold() in used:
            n += 1
            suffix = f"~{n}"
            name = base[:SHEET_NAME_MAX - len(suffix)].rstrip("'") + suffix
        used.add(name.casefold())
        names.append(name)
    return names


def _xlsx_text_cells(worksheet: Any) -> None:
    """Make every text cell of an openpyxl worksheet a plain string: no formula cells, and
    formula-like text carries Excel's quote prefix (stays text when a user edits it)."""
    for row in worksheet.iter_rows():
        for cell in row:
            if cell.data_type == "f" or is_formula_like(cell.value):
                cell.data_type = "s"
                cell.quotePrefix = True


def xlsx_value(value: Any) -> Any:
    """A cell value openpyxl can store: text without the control characters xlsx cannot hold."""
    return _XLSX_ILLEGAL.sub("\ufffd", value) if isinstance(value, str) else value


def write_xlsx(sheets: dict[str, pd.DataFrame] | list[tuple[Any, pd.DataFrame]], path: str | Path) -> Path:
    """Write each ``(name, table)`` to its own sheet of an .xlsx workbook, no index.

    Sheet names are made valid and unique (:func:`sheet_names`); every text cell, the headers
    included, is written as text, never as a formula. Times with a zone are written as their wall
    time in that zone (Excel has no time zones).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    items = list(sheets.items()) if isinstance(sheets, dict) else list(sheets)
    names = sheet_names(name for name, _ in items)
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, (_, table) in zip(names, items):
            clean = table.copy()
            for column in _text_columns(clean):
                clean[column] = clean[column].map(xlsx_value).astype(object)
            for column in clean.columns:
                if isinstance(clean[column].dtype, pd.DatetimeTZDtype):
                    clean[column] = clean[column].dt.tz_localize(None)
            clean = clean.rename(columns=lambda c: xlsx_value(c) if isinstance(c, str) else c)
            clean.to_excel(writer, sheet_name=name, index=False)
            _xlsx_text_cells(writer.sheets[name])
    return path
