"""The HTML pages of a report run, from the template files in ``funnelkit/presentation/templates``.

* A report page: nbconvert's ``basic`` output (no code, no prompts, no parameter cells) inside
  ``templates/report/index.html.j2``, an nbconvert template that extends ``basic`` and is found
  through ``extra_template_basedirs``. The page inlines ``report.css`` and ``sort-tables.js`` and
  charts are base64 PNGs, so the file opens offline and requests nothing.
* The index of a run: ``templates/index.html.j2``, a Jinja2 template with autoescaping.

Every page carries a Content-Security-Policy ``<meta>``: nothing may load from anywhere
(``default-src 'none'``), images only from ``data:`` URLs, and the only inline style and script
allowed are the page's own, by their sha256 hashes. A script or event handler that reached the page
through a data value would not run, even if escaping had missed it.
"""
from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "templates"
REPORT_TEMPLATE = "report"
HTML_LANG = {"en": "en", "zh": "zh-CN"}


@dataclass(frozen=True)
class Assets:
    """The report page's stylesheet and script, as inlined (their hashes go into the CSP)."""

    css: str
    js: str


@functools.lru_cache(maxsize=1)
def assets() -> Assets:
    """``report.css`` and ``sort-tables.js`` from the report template folder."""
    folder = TEMPLATES / REPORT_TEMPLATE
    return Assets((folder / "report.css").read_text(encoding="utf-8"),
                  (folder / "sort-tables.js").read_text(encoding="utf-8"))


def csp_hash(text: str) -> str:
    """The CSP source for an inline element whose content is exactly ``text``:
    ``'sha256-<base64 of SHA-256 of its UTF-8 bytes>'``."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def content_security_policy(styles: tuple[str, ...] = (), scripts: tuple[str, ...] = ()) -> str:
    """A policy allowing only the given inline ``styles`` and ``scripts`` (by hash), ``data:``
    images, and nothing else: no request, no plugin, no form, no ``<base>``, no event handler."""
    style_src = " ".join(csp_hash(s) for s in styles) or "'none'"
    script_src = " ".join(csp_hash(s) for s in scripts) or "'none'"
    return (f"default-src 'none'; style-src {style_src}; script-src {script_src}; img-src data:; "
            "base-uri 'none'; form-action 'none'")


@functools.lru_cache(maxsize=1)
def html_exporter() -> Any:
    """nbconvert's exporter with funnelkit's report template, without code, prompts or parameter
    cells; built once per process (loading templates costs more than exporting one report)."""
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_cell_tags = {"parameters", "injected-parameters", "notebook-only"}
    c.HTMLExporter.exclude_input = True
    c.HTMLExporter.exclude_input_prompt = True
    c.HTMLExporter.exclude_output_prompt = True
    exporter = HTMLExporter(config=c, template_name=REPORT_TEMPLATE, extra_template_basedirs=[str(TEMPLATES)])
    exporter.register_preprocessor("nbconvert.preprocessors.TagRemovePreprocessor", enabled=True)
    return exporter


def report_language(nb: Any) -> str | None:
    """The report language a papermill-executed notebook was run with (its ``language``
    parameter), or ``None`` when it was not given."""
    parameters = nb.get("metadata", {}).get("papermill", {}).get("parameters", {}) or {}
    return parameters.get("language")


def notebook_to_html(nb: Any, title: str, language: str | None = None) -> str:
    """A self-contained HTML page of an executed notebook without code, prompts or parameters.

    ``language`` (``en``/``zh``; default: the notebook's ``language`` parameter, else
    ``params/funnel.yaml``) sets ``<html lang>``, so browsers pick fonts and screen readers the voice.
    """
    if language is None:
        language = report_language(nb)
    if language is None:
        from funnelkit.config import load_config

        language = load_config().language
    a = assets()
    fk = {"title": title, "lang": HTML_LANG.get(language, language), "css": a.css, "js": a.js,
          "csp": content_security_policy((a.css,), (a.js,))}
    body, _ = html_exporter().from_notebook_node(nb, resources={"fk": fk})
    return body


@functools.lru_cache(maxsize=1)
def _index_template() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("index.html.j2")


def render_index(context: dict[str, Any], language: str = "en", title: str = "funnelkit reports") -> str:
    """The run's ``index.html`` from ``templates/index.html.j2``; every value in ``context`` is
    autoescaped. Keys: ``as_of, generated, n_reports, n_failed, teams, rows`` (see the template).
    The page has the report pages' stylesheet and table-sorting script, and their policy."""
    a = assets()
    return _index_template().render(context | {"css": a.css, "js": a.js, "lang": HTML_LANG.get(language, language),
                                               "title": title, "csp": content_security_policy((a.css,), (a.js,))})
