"""Load and validate the YAML configuration in ``params/``.

Every file is validated with pydantic on load. An unknown key, a stage listed twice or a period
that does not parse raises :class:`ConfigError` naming the file and the key path.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from funnelkit.periods import parse_period

# The defaults ship inside the wheel as funnelkit/_defaults/{params,notebooks} (pyproject maps the
# repository's one copy there); a source checkout reads the repository's top-level folders.
_PACKAGED = Path(__file__).resolve().parent / "_defaults"
_CHECKOUT = Path(__file__).resolve().parent.parent
PARAMS_DIR = _PACKAGED / "params" if (_PACKAGED / "params").is_dir() else _CHECKOUT / "params"
NOTEBOOKS_DIR = _PACKAGED / "notebooks" if (_PACKAGED / "notebooks").is_dir() else _CHECKOUT / "notebooks"
PROJECT_ENV = "FUNNELKIT_PROJECT"  # set by `--project`; report kernels inherit it


def project_dir() -> Path | None:
    """The project folder: ``$FUNNELKIT_PROJECT`` (what ``--project DIR`` sets), else the current
    folder when it holds ``params/``; ``None`` means the packaged defaults."""
    chosen = os.environ.get(PROJECT_ENV)
    if chosen:
        return Path(chosen).resolve()
    here = Path.cwd()
    return here if (here / "params").is_dir() else None


def params_file(name: str) -> Path:
    """``params/<name>`` of the project when it has that file, else of the packaged defaults."""
    project = project_dir()
    if project is not None and (project / "params" / name).exists():
        return project / "params" / name
    return PARAMS_DIR / name


def notebooks_dir() -> Path:
    """The project's ``notebooks/`` when it has one, else the packaged notebooks."""
    project = project_dir()
    if project is not None and (project / "notebooks").is_dir():
        return project / "notebooks"
    return NOTEBOOKS_DIR


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid."""


class StrictModel(BaseModel):
    """The base of every ``params/`` model: an unknown key is an error, and values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(StrictModel):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    en: str
    zh: str

    def label(self, language: str) -> str:
        return self.zh if language == "zh" else self.en


class Pipeline(StrictModel):
    en: str
    zh: str
    stages: list[Stage] = Field(min_length=2)

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, stages: list[Stage]) -> list[Stage]:
        seen: set[str] = set()
        for stage in stages:
            names = {normalise_name(n) for n in (stage.key, stage.en, stage.zh)}
            if names & seen:
                raise ValueError(f"stage {stage.key!r} is listed twice")
            seen |= names
        return stages

    @property
    def keys(self) -> list[str]:
        return [s.key for s in self.stages]

    def label(self, language: str) -> str:
        return self.zh if language == "zh" else self.en


class RepSettings(StrictModel):
    """How reps are compared: ``min_volume`` closed deals before a rep is ranked or flagged."""

    min_volume: int = Field(default=30, ge=1)


class FunnelConfig(StrictModel):
    """The funnel: pipelines with ordered stages, report language and currency."""

    language: Literal["en", "zh"] = "en"
    currency: str = "CNY"
    timezone: str | None = None  # zone of times written without one (e.g. Asia/Shanghai); None: local
    default_pipeline: str
    b2b_stages: list[Stage] | None = None  # YAML anchor holder; not used directly
    pipelines: dict[str, Pipeline] = Field(min_length=1)
    # column → canonical value → accepted spellings; "true"/"false" values make a yes/no column
    categories: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    reps: RepSettings = Field(default_factory=RepSettings)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        if zone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{zone!r} is not a time zone name like Asia/Shanghai or UTC") from None
        return zone

    @model_validator(mode="after")
    def _default_exists(self) -> "FunnelConfig":
        if self.default_pipeline not in self.pipelines:
            raise ValueError(
                f"default_pipeline {self.default_pipeline!r} is not one of {sorted(self.pipelines)}"
            )
        return self

    def stages(self, pipeline: str | None = None) -> list[Stage]:
        """Ordered stages of ``pipeline`` (the default pipeline when ``None``)."""
        return self.pipelines[pipeline or self.default_pipeline].stages

    def stage_keys(self, pipeline: str | None = None) -> list[str]:
        return [s.key for s in self.stages(pipeline)]

    def stage_labels(self, pipeline: str | None = None, language: str | None = None) -> dict[str, str]:
        """Map stage key → label in ``language`` (the configured language by default)."""
        lang = language or self.language
        return {s.key: s.label(lang) for s in self.stages(pipeline)}

    def category_lookup(self, column: str) -> dict[str, Any]:
        """Map every accepted spelling of ``column``'s values (normalised) → canonical value.

        For a yes/no column (values ``true``/``false``) the canonical values are booleans.
        """
        lookup: dict[str, Any] = {}
        values = self.categories.get(column, {})
        boolean = set(values) == {"true", "false"}
        for canonical, spellings in values.items():
            target: Any = (canonical == "true") if boolean else canonical
            for name in [canonical, *spellings]:
                lookup[normalise_name(name)] = target
        return lookup

    def stage_lookup(self, pipeline: str) -> dict[str, str]:
        """Map every accepted spelling (key, English, Chinese; normalised) → stage key."""
        lookup: dict[str, str] = {}
        for s in self.stages(pipeline):
            for name in (s.key, s.en, s.zh):
                lookup[normalise_name(name)] = s.key
        return lookup


def normalise_name(name: Any) -> str:
    """Case-folded name without whitespace, ``-`` or ``_``: the spelling stage, status and category
    names are matched by, so "Closed Won", "closed-won" and "初步 接洽" / "初步接洽" each match
    (Chinese is written without spaces; a space typed into it is a slip)."""
    return re.sub(r"[\s_\-]+", "", str(name)).casefold()


def read_yaml(path: Path) -> Any:
    """Read a YAML file, turning I/O and syntax errors into :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror})") from None
    try:
        # libyaml's safe loader where PyYAML has it: the same results, ten times faster (every report reads params)
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def validate_file(model: type[BaseModel], path: Path, data: Any | None = None) -> Any:
    """Validate ``data`` (read from ``path`` if not given) against ``model``.

    Errors are re-raised as one :class:`ConfigError` listing ``file: key.path: message``.
    """
    if data is None:
        data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{path}: {key}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def load_params(model: type[BaseModel], name: str, path: str | Path | None = None) -> Any:
    """Validate ``path``, or the project's ``params/<name>`` (see :func:`params_file`), against ``model``."""
    return validate_file(model, Path(path) if path else params_file(name))


def load_config(path: str | Path | None = None) -> FunnelConfig:
    """Load ``params/funnel.yaml`` (or ``path``) into a validated :class:`FunnelConfig`."""
    return load_params(FunnelConfig, "funnel.yaml", path)


# --------------------------------------------------------------------------- report matrix


class MatrixEntry(StrictModel):
    """One line of the report matrix: a notebook for teams (and optionally reps) and periods."""

    notebook: str
    periods: list[str] = Field(min_length=1)
    teams: Literal["all"] | list[str] = "all"
    reps: Literal["all"] | list[str] | None = None  # None: team-level reports
    pipeline: str | None = None
    language: Literal["en", "zh"] | None = None  # this entry's reports in this language (file name `<notebook>.<language>`)
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("periods", mode="before")
    @classmethod
    def _periods_parse(cls, periods: Any) -> Any:
        if not isinstance(periods, list):
            return periods
        return [parse_period(str(p)).label for p in periods]  # a year may come from YAML as a number


class ReportMatrix(StrictModel):
    """``params/reports.yaml``: which notebooks run for which teams, reps and periods."""

    data: str = "sample"  # "sample", a folder / DuckDB file, duckdb:///…, spark:…
    preset: str | None = None  # CRM export shape of `data` (params/presets): salesforce, hubspot, snapshot
    as_of: str | None = None  # ISO date; default: the latest date in the data
    language: Literal["en", "zh"] | None = None  # overrides funnel.yaml for these reports
    output: str = "reports"
    entries: list[MatrixEntry] = Field(min_length=1)

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of_is_date(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            import pandas as pd

            pd.Timestamp(str(value))
        except (ValueError, TypeError):
            raise ValueError(f"{value!r} is not a date like 2024-06-30") from None
        return str(value)


def load_report_matrix(path: str | Path | None = None) -> ReportMatrix:
    """Load ``params/reports.yaml`` (or ``path``) into a validated :class:`ReportMatrix`.

    A relative ``data`` or ``preset`` path is relative to the project folder (the folder holding
    ``params/``) when it does not exist relative to the current folder.
    """
    file = Path(path) if path else params_file("reports.yaml")
    matrix = validate_file(ReportMatrix, file)
    from funnelkit.runner.report import check_parameter_size  # before model_dump expands YAML aliases

    check_parameter_size(matrix)
    return matrix_with(matrix, base=file.resolve().parent.parent)


def matrix_with(matrix: ReportMatrix, *, data: str | None = None, preset: str | None = None,
                as_of: str | None = None, language: str | None = None, periods: list[str] | None = None,
                base: Path | None = None) -> ReportMatrix:
    """``matrix`` with the command line's choices: data source, preset, as-of date, language, and
    periods replacing every entry's. Relative paths are taken from ``base`` (the project folder) when
    they exist there."""
    def located(value: str | None) -> str | None:
        if value is None or value == "sample" or Path(value).is_absolute() or base is None:
            return value
        if not Path(value).suffix and (base / "params" / "presets" / f"{value}.yaml").exists():
            return value  # a preset by name
        return str((base / value).resolve()) if (base / value).exists() else value

    update: dict[str, Any] = {}
    for key, value in (("data", data), ("preset", preset), ("as_of", as_of), ("language", language)):
        if value is not None:
            update[key] = value
    update["data"] = located(update.get("data", matrix.data))
    if update.get("preset", matrix.preset) is not None:
        update["preset"] = located(update.get("preset", matrix.preset))
    if periods:
        try:
            labels = [parse_period(p).label for p in periods]
        except ValueError as exc:
            raise ConfigError(f"--period: {exc}") from None
        update["entries"] = [e.model_copy(update={"periods": labels}) for e in matrix.entries]
    try:
        return ReportMatrix.model_validate(matrix.model_dump() | update)
    except ValidationError as exc:
        raise ConfigError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
