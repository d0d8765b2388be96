"""Result objects: frozen dataclasses that carry an analysis's tables and the numbers about them.

They replace ``DataFrame.attrs`` (experimental in pandas, lost by most operations) as the carrier
of results. A result whose main output is one table keeps it in ``table`` and reads like it, so
``funnel["reached"]``, ``len(funnel)`` and ``funnel.iloc[0]`` keep working; every other field is
a documented number or key. In Jupyter a result shows as an HTML summary (``_repr_html_``).
"""
from __future__ import annotations

import dataclasses
import html
from typing import Any

import pandas as pd

PREVIEW_ROWS = 20


def _field_html(name: str, value: Any) -> str:
    if isinstance(value, pd.DataFrame):
        shown = value.head(PREVIEW_ROWS)
        note = f"<p>{len(shown)} of {len(value)} rows shown</p>" if len(value) > len(shown) else ""
        return f"<details open><summary><code>{html.escape(name)}</code></summary>{shown.to_html()}{note}</details>"
    if isinstance(value, float):
        value = f"{value:.4g}"
    return f"<tr><th><code>{html.escape(name)}</code></th><td>{html.escape(str(value))}</td></tr>"


class ResultDisplay:
    """Mixin for result dataclasses: an HTML summary of the fields for Jupyter."""

    def _repr_html_(self) -> str:
        fields = [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        scalars = "".join(_field_html(n, v) for n, v in fields if not isinstance(v, pd.DataFrame))
        tables = "".join(_field_html(n, v) for n, v in fields if isinstance(v, pd.DataFrame))
        return f"<div><strong>{type(self).__name__}</strong><table>{scalars}</table>{tables}</div>"


class TableResult(ResultDisplay):
    """Mixin for a result whose main output is the DataFrame ``table``: indexing, ``len``,
    iteration, ``in`` and any DataFrame attribute not defined on the result go to the table.
    The result is frozen: to change columns, ``assign`` (which returns a new DataFrame)."""

    table: pd.DataFrame

    def __getitem__(self, key: Any) -> Any:
        return self.table[key]

    def __len__(self) -> int:
        return len(self.table)

    def __iter__(self) -> Any:
        return iter(self.table)

    def __contains__(self, key: Any) -> bool:
        return key in self.table

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the dataclass does not define; never for private names, so
        # copying and pickling do not recurse before ``table`` exists.
        if name.startswith("_") or name == "table":
            raise AttributeError(name)
        return getattr(self.table, name)


__all__ = ["ResultDisplay", "TableResult"]
