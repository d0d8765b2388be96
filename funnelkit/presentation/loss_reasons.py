"""The loss-reason vocabulary (``params/loss_reasons.yaml``): known reasons in both report languages.

A CRM's loss reason is either one of a fixed list (often typed in one language) or free text. A
reason that matches a vocabulary key or either of its labels is shown in the report language;
free text is shown as typed, because translating it would put words in the rep's mouth.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field, field_validator

from funnelkit.config import StrictModel, params_file, validate_file
from funnelkit.events.aggregate import coded
from funnelkit.inputs.data import Dataset


class Label(StrictModel):
    """A reason's label in each report language."""

    en: str
    zh: str
    also: list[str] = Field(default_factory=list)  # other spellings CRMs write (价格太高 for 价格过高), shown as the labels

    @field_validator("en", "zh")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a label may not be blank")
        return value.strip()

    def spellings(self, key: str) -> set[str]:
        """Every spelling that names this reason: its key, both labels and ``also``, as matched."""
        return {_match_key(key), _match_key(self.en), _match_key(self.zh), *(_match_key(a) for a in self.also)}


def _match_key(text: str) -> str:
    """What two spellings of one reason share: no surrounding spaces, case folded."""
    return str(text).strip().casefold()


class LossReasons(StrictModel):
    """``params/loss_reasons.yaml``: reason key → :class:`Label`. A key or label may name one
    reason only, so a typed reason never matches two entries."""

    reasons: dict[str, Label]

    @field_validator("reasons")
    @classmethod
    def _one_reason_per_spelling(cls, reasons: dict[str, Label]) -> dict[str, Label]:
        seen: dict[str, str] = {}
        for key, label in reasons.items():
            for spelling in label.spellings(key):
                if spelling in seen and seen[spelling] != key:
                    raise ValueError(f"{spelling!r} names both {seen[spelling]!r} and {key!r}")
                seen[spelling] = key
        return reasons

    @functools.cached_property
    def _by_spelling(self) -> dict[str, str]:
        return {spelling: key for key, label in self.reasons.items() for spelling in label.spellings(key)}

    def key_of(self, reason: object) -> str | None:
        """The vocabulary key ``reason`` spells (key, English or Chinese label), else ``None``."""
        if reason is None or (not isinstance(reason, str) and pd.isna(reason)):
            return None
        return self._by_spelling.get(_match_key(str(reason)))

    def label(self, reason: object, language: Literal["en", "zh"] | str) -> object:
        """``reason`` in ``language`` when the vocabulary knows it; otherwise ``reason`` unchanged
        (free text as typed, missing stays missing)."""
        key = self.key_of(reason)
        if key is None:
            return reason
        return getattr(self.reasons[key], "zh" if language == "zh" else "en")

    def labels(self, reasons: pd.Series, language: str) -> pd.Series:
        """:meth:`label` of every value of ``reasons`` (same index; each distinct value looked up once;
        an engine's categorical stays one, two spellings of one reason becoming one category)."""
        if isinstance(reasons.dtype, pd.CategoricalDtype):
            worded = [self.label(r, language) for r in reasons.cat.categories]
            return pd.Series(coded(reasons.cat.codes.to_numpy(), worded), index=reasons.index, name=reasons.name)
        return reasons.map({r: self.label(r, language) for r in reasons.dropna().unique()}).where(reasons.notna(), reasons)


@functools.lru_cache(maxsize=4)
def _load(path: Path, mtime: float) -> LossReasons:
    return validate_file(LossReasons, path)


def load_loss_reasons(path: str | Path | None = None) -> LossReasons:
    """Load and validate ``params/loss_reasons.yaml`` (or ``path``); cached until the file changes."""
    path = Path(path) if path else params_file("loss_reasons.yaml")
    return _load(path, path.stat().st_mtime)


def in_language(data: Dataset, language: str, vocabulary: LossReasons | None = None) -> Dataset:
    """``data`` with every loss reason the vocabulary knows worded in ``language`` (free text as
    typed). Two spellings of one reason (``预算不足`` and ``No budget``) become one, so they are
    counted together in every table, chart and headline of the report."""
    import dataclasses

    vocabulary = vocabulary or load_loss_reasons()
    if "lost_reason" not in data.deals or not data.deals["lost_reason"].notna().any():
        return data
    deals = data.deals.assign(lost_reason=vocabulary.labels(data.deals["lost_reason"], language))
    return dataclasses.replace(data, deals=deals)
