"""Read one table of deals without stage history, e.g. a win/loss export, for fitting and scoring.

Such a file is one row per deal with a status column (Won / Lost / anything else = open) and the
deal's fields; it has no stage events, so the funnel analyses cannot use it, but a scorecard can be
fitted on its closed rows and can score every row. The separator (``,`` ``;`` tab ``|``) and the
encoding (UTF-8, UTF-8 with BOM, GB18030) are detected.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from funnelkit.config import FunnelConfig
from funnelkit.inputs.data import DataError, Dataset
from funnelkit.inputs.io import detect_encoding, open_dataset, read_table

TABLE_SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx", ".xls", ".parquet")
WON = {"won", "win", "closed won", "closed-won", "closedwon", "成交", "赢单", "赢"}
LOST = {"lost", "loss", "closed lost", "closed-lost", "closedlost", "丢单", "输单", "失败"}


def is_table_file(path: str | Path) -> bool:
    """True for a single table file (not a dataset folder, DuckDB file or ``"sample"``)."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in TABLE_SUFFIXES


def _read_text_table(path: Path) -> pd.DataFrame:
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty (no header row)")
    text = raw.decode(detect_encoding(raw, path))
    try:
        sep = csv.Sniffer().sniff("\n".join(text[:65536].splitlines()[:20]), delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    try:
        return pd.read_csv(io.StringIO(text.lstrip("\ufeff")), sep=sep, dtype=str, keep_default_na=False,
                           na_values=[""])
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: not a readable {sep!r}-separated file: {exc}") from None


def read_deals_table(path: str | Path, status_column: str | None = None) -> pd.DataFrame:
    """One deal per row with ``deal_id`` and ``status`` (won / lost / open) added.

    ``status_column`` (default: the column named ``status`` in any case) holds the outcome; values
    are matched case-insensitively (Won, Closed Won, 成交 → won; Lost, Closed Lost, 丢单 → lost);
    anything else, blank included, is open. ``deal_id`` is the file's ``deal_id`` or ``id`` column,
    else ``row <n>`` (1-based data row). Other columns are kept as text, names stripped.
    """
    path = Path(path)
    table = _read_text_table(path) if path.suffix.lower() in (".csv", ".txt", ".tsv") else read_table(path)
    table.columns = [str(c).strip() for c in table.columns]
    lower = {c.lower(): c for c in table.columns}
    name = status_column or lower.get("status")
    if name is None or name not in table.columns:
        raise DataError(f"{path}: no status column {status_column or 'status'!r} (won / lost / open); "
                        f"found {', '.join(table.columns)}; name it with --status-column")
    if table.empty:
        raise DataError(f"{path}: has a header but no data rows")
    value = table[name].astype("string").str.strip().str.lower()
    status = pd.Series("open", index=table.index, dtype="object")
    status[value.isin(WON).fillna(False).to_numpy()] = "won"
    status[value.isin(LOST).fillna(False).to_numpy()] = "lost"
    out = table.drop(columns=[name] + (["status"] if "status" in table.columns and name != "status" else []))
    id_column = lower.get("deal_id") or lower.get("id")
    ids = (table[id_column].astype("string") if id_column else
           pd.Series([f"row {i}" for i in range(1, len(table) + 1)], index=table.index, dtype="string"))
    if id_column:
        out = out.drop(columns=[id_column])
    out.insert(0, "deal_id", ids)
    out.insert(1, "status", status)
    return out


def load_deals(source: str | Path, preset: str | None = None, as_of: str | None = None,
               status_column: str | None = None) -> pd.DataFrame:
    """Deals from a single table file (:func:`read_deals_table`) or from a dataset (sample, folder,
    DuckDB file, CRM export through ``preset``) as validated by :func:`funnelkit.inputs.io.open_dataset`."""
    if preset is None and is_table_file(source):
        return read_deals_table(source, status_column)
    data = open_dataset(source, as_of=as_of, preset=preset)
    return data.deals.copy()


@dataclass(frozen=True)
class Deals:
    """What a fitted-card notebook needs: the validated dataset (None for a single table), every deal
    as it stood at ``as_of``, the open deals and the as-of bound (exclusive)."""

    dataset: Dataset | None
    deals: pd.DataFrame
    open: pd.DataFrame
    as_of: pd.Timestamp


def open_deals_for_fit(source: str | Path, config: FunnelConfig, preset: str | None = None,
                       as_of: str | None = None, status_column: str | None = None) -> Deals:
    """:class:`Deals` from a single table file or from a dataset (``"sample"``, folder, DuckDB)."""
    from funnelkit.events.aggregate import deals_as_of, open_deals
    from funnelkit.periods import as_of_bound

    if preset is None and is_table_file(source):
        table = read_deals_table(source, status_column)
        bound = as_of_bound(as_of, pd.Timestamp.now().normalize() + pd.Timedelta(days=1))
        return Deals(None, table, table[table["status"] == "open"], bound)
    data = open_dataset(source, as_of=as_of, config=config, preset=preset)
    bound = as_of_bound(as_of, data.as_of)
    return Deals(data, deals_as_of(data.deals, bound), open_deals(data, config, bound), bound)


__all__ = ["Deals", "is_table_file", "load_deals", "open_deals_for_fit", "read_deals_table"]
