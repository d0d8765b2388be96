"""CRM export presets (``params/presets/*.yaml``): how an export is laid out, as plain data.

A preset names the export's *shape* (which reader in :mod:`funnelkit.inputs.readers` reshapes it), its
files, how they are written (separator, encoding, decimal mark, date order, time zone, placeholder
dates) and the mapping to the canonical tables: columns, stage values, status values, constants,
lookup files joined on a key, and a second file of outcomes keyed by the deal id.

This module only describes and loads presets; :func:`funnelkit.inputs.io.load_data` reads the files, the
shape's reader applies the mapping and :func:`funnelkit.inputs.data.validate` checks the result.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from funnelkit.config import PARAMS_DIR, StrictModel, params_file, project_dir, validate_file
from funnelkit.inputs.data import DataError, Parsing

Status = Literal["open", "won", "lost"]


class Lookup(StrictModel):
    """A lookup file joined to the deals on a key (e.g. agent → manager and office)."""

    file: str  # file name (with or without extension) in the export folder
    key: str  # the deals column to join on
    lookup_key: str | None = None  # the lookup file's key column (default: same name as `key`)
    columns: dict[str, str] = Field(default_factory=dict)  # lookup column → name it takes (canonical or source)


class Outcomes(StrictModel):
    """A second file of outcomes keyed by the deal id; a deal missing from it is open."""

    file: str
    key: str  # the outcomes file's column holding the deal id
    columns: dict[str, str] = Field(default_factory=dict)  # outcomes column → name it takes
    status: Status | None = "won"  # the status of every deal in the file (None: use status_column)
    status_column: str | None = None
    status_values: dict[str, Status] = Field(default_factory=dict)


class Preset(StrictModel):
    """A CRM export preset (see the module docstring and the README's "Your own data")."""

    shape: Literal["canonical", "salesforce", "hubspot", "snapshot"]
    files: dict[str, str] = Field(default_factory=lambda: {"deals": "deals", "stage_events": "stage_events"})
    sheets: dict[str, str] = Field(default_factory=dict)  # table → Excel sheet name
    encoding: str | None = None  # CSV encoding; None: detect UTF-8 / UTF-8 BOM / GB18030
    separator: str | None = None  # CSV field separator; None: ","
    decimal: Literal[".", ","] = "."  # decimal mark of amounts: "1.000,50" needs ","
    dayfirst: bool | None = None  # 05-03-2024 is 5 March (true) or 3 May (false); None: decide per column
    date_format: str | None = None  # strptime format for every date column, e.g. "%d/%m/%Y %H:%M"
    date_formats: dict[str, str] = Field(default_factory=dict)  # canonical date column → strptime format
    timezone: str | None = None  # zone of times written without one; None: funnel.yaml's, else local
    no_date: list[str] = Field(default_factory=list)  # placeholder dates meaning "no date", e.g. 9999-12-31
    as_of: str | None = None  # analysis date, for exports without dates (the command's --as-of wins)
    columns: dict[str, str] = Field(default_factory=dict)  # source → canonical (deals)
    defaults: dict[str, str] = Field(default_factory=dict)  # canonical column → value when the export has none
    lookups: list[Lookup] = Field(default_factory=list)
    outcomes: Outcomes | None = None
    history_columns: dict[str, str] = Field(default_factory=dict)  # salesforce history → deal_id, stage, entered_at
    closed_flags: dict[Literal["closed", "won"], str] = Field(default_factory=dict)
    stages: dict[str, str | None] = Field(default_factory=dict)  # source stage → key; None: a close marker
    stage_column: str | None = None
    date_entered_prefix: str = "Date entered"
    status_from_stage: dict[str, Status] = Field(default_factory=dict)  # stage value → status; others: open
    status_column: str | None = None
    status_values: dict[str, Status] = Field(default_factory=dict)
    stage_dates: dict[str, str] = Field(default_factory=dict)  # stage key → date column (snapshot)
    # canonical shape: events column → the values of the rows that are stage changes, for a log of
    # every field change (Pipedrive's deal updates: {Feld: [Phase, Status]}); other rows are left out
    event_rows: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("as_of", mode="before")
    @classmethod
    def _date_text(cls, value: object) -> object:
        return None if value is None else str(value)  # YAML reads 2019-12-31 as a date

    @field_validator("defaults", mode="before")
    @classmethod
    def _constants_text(cls, value: object) -> object:
        return {k: str(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("event_rows", mode="before")
    @classmethod
    def _values_text(cls, value: object) -> object:
        # `{Feld: Phase}` (one value) reads as a list of one; YAML may read a value as a number
        return {k: [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in value.items()} \
            if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _event_rows_canonical(self) -> "Preset":
        if self.event_rows and self.shape != "canonical":
            raise ValueError("event_rows picks the stage changes out of a canonical shape's stage events file "
                             f"(a log of every field change); the {self.shape} shape has no such file")
        return self

    def parsing(self, default_timezone: str | None = None) -> Parsing:
        """How this export writes dates and numbers, for :func:`funnelkit.inputs.data.validate`."""
        formats = dict(self.date_formats)
        if self.date_format:
            formats.setdefault("*", self.date_format)
        return Parsing(dayfirst=self.dayfirst, date_formats=formats, timezone=self.timezone or default_timezone,
                       no_date=tuple(self.no_date), decimal=self.decimal)


CANONICAL = Preset(shape="canonical")


def preset_names() -> list[str]:
    """Presets by name: the project's ``params/presets`` and the packaged ones."""
    folders = [PARAMS_DIR / "presets"]
    if (project := project_dir()) is not None:
        folders.insert(0, project / "params" / "presets")
    return sorted({p.stem for folder in folders if folder.is_dir() for p in folder.glob("*.yaml")})


def load_preset(name: str | Path | Preset | None) -> Preset:
    """A preset by name (``salesforce``, …: the project's ``params/presets``, else the packaged
    ones), by YAML path, or as given; ``None`` is the canonical shape."""
    if name is None:
        return CANONICAL
    if isinstance(name, Preset):
        return name
    path = Path(name)
    if not path.suffix:
        path = params_file(f"presets/{name}.yaml")
        if not path.exists():
            raise DataError(f"no preset {str(name)!r}; known presets: {', '.join(preset_names())} "
                            "(or give the path of a preset YAML file)")
    elif not path.exists():
        raise DataError(f"{path}: no such preset file")
    return validate_file(Preset, path)
