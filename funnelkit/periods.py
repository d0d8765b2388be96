"""Reporting periods (monthly ``2024-03`` or quarterly ``2024-Q1``) and the as-of bound.

A period is the half-open interval ``[start, end)``. An as-of *date* means "up to the end of
that day", so it is turned into the exclusive bound ``date + 1 day``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$", re.IGNORECASE)
_YEAR = re.compile(r"^(\d{4})$")


@dataclass(frozen=True)
class Period:
    """A calendar month, quarter or year, ``start <= t < end``."""

    label: str
    start: pd.Timestamp
    end: pd.Timestamp
    months: int

    def previous(self) -> "Period":
        """The period of the same length immediately before this one."""
        start = self.start - pd.DateOffset(months=self.months)
        if self.months == 1:
            return parse_period(start.strftime("%Y-%m"))
        if self.months == 12:
            return parse_period(f"{start.year}")
        return parse_period(f"{start.year}-Q{(start.month - 1) // 3 + 1}")

    def contains(self, t: pd.Series) -> pd.Series:
        """Boolean mask: ``start <= t < end`` (missing times are outside)."""
        return (t >= self.start) & (t < self.end)

    def __str__(self) -> str:
        return self.label


def parse_period(text: str | Period) -> Period:
    """Parse ``YYYY-MM`` (a month), ``YYYY-Qn`` (a quarter) or ``YYYY`` (a year) into a :class:`Period`.

    Raises ``ValueError`` naming the text and the accepted forms.
    """
    if isinstance(text, Period):
        return text
    text = str(text).strip()
    if m := _MONTH.match(text):
        year, month = int(m.group(1)), int(m.group(2))
        if 1 <= month <= 12:
            start = pd.Timestamp(year=year, month=month, day=1)
            return Period(f"{year:04d}-{month:02d}", start, start + pd.DateOffset(months=1), 1)
    if m := _QUARTER.match(text):
        year, quarter = int(m.group(1)), int(m.group(2))
        start = pd.Timestamp(year=year, month=3 * quarter - 2, day=1)
        return Period(f"{year:04d}-Q{quarter}", start, start + pd.DateOffset(months=3), 3)
    if m := _YEAR.match(text):
        start = pd.Timestamp(year=int(m.group(1)), month=1, day=1)
        return Period(f"{start.year:04d}", start, start + pd.DateOffset(years=1), 12)
    raise ValueError(f"period {text!r} is not a period: expected a month YYYY-MM (e.g. 2024-03), "
                     "a quarter YYYY-Qn (e.g. 2024-Q1) or a year YYYY (e.g. 2024)")


def periods_without_data(periods: list[str], first: pd.Timestamp, bound: pd.Timestamp) -> list[str]:
    """The ``periods`` that hold no moment of the data's range ``[first, bound)`` (``bound``: the
    exclusive as-of bound): those starting at or after the as-of date or ending before ``first``."""
    return [p for p in periods if (period := parse_period(p)).start >= bound or period.end <= first]


def as_of_bound(as_of: str | pd.Timestamp | None, default: pd.Timestamp) -> pd.Timestamp:
    """Exclusive upper time bound for an as-of date.

    A date without a time (``2024-06-30``) means the end of that day, so the bound is the next
    midnight; a timestamp with a time is used as given. ``None`` gives ``default``.
    """
    if as_of is None or (isinstance(as_of, str) and not as_of.strip()):
        return default
    ts = pd.Timestamp(as_of)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(None)
    if ts == ts.normalize() and (not isinstance(as_of, str) or len(as_of.strip()) <= 10):
        return ts + pd.Timedelta(days=1)
    return ts


def trailing_window(period: Period, months: int | None) -> Period:
    """The ``months`` calendar months ending with ``period`` (``[end − months, end)``), or the
    period itself when ``months`` is 0 or ``None``. Rep rates, time in stage and the backtest
    look back over such a window so small samples are not overread."""
    if not months:
        return period
    start = period.end - pd.DateOffset(months=months)
    return Period(f"{start:%Y-%m}…{period.label}", start, period.end, months)
