"""Presentation for the reports: wording in the report language, number formats, styled tables.

Wording lives in ``params/text.yaml`` (every key in English and Chinese). Tables are pandas
Stylers with formatted numbers, so the HTML report shows ``12.5%``, ``1,234`` and ``¥1,200,000``.
"""
from __future__ import annotations

import functools
import html
import re
import unicodedata
from pathlib import Path, PurePath
from collections.abc import Callable, Hashable
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler
from pydantic import RootModel

from funnelkit import memo
from funnelkit.config import PARAMS_DIR, params_file, validate_file
from funnelkit.inputs.data import Dataset, copy_of, quality_summary, quarantine_counts
from funnelkit.presentation.pages import TEMPLATES

CURRENCY_SYMBOLS = {"CNY": "¥", "RMB": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
SHORT_CELL = 26  # columns (a Chinese character is 2): a text column whose cells are all this short is kept unwrapped
SHORT_HEADER = 10  # display columns: a header this short is kept on one line; longer ones wrap at spaces, a Chinese one anywhere
TABLE_WIDTH = 140  # display columns a table's one-line cells may take, about the 1,100-pixel page at the tables' font
TEXT_MIN = 16  # display columns of a wrapping cell's minimum width (td.fk-text{min-width:8em} in report.css)
WRAP_MIN = 8  # display columns of a short wrapping cell's minimum width (td.fk-wrap{min-width:4em}: "East rep" / "019")
CELL_PADDING = 3  # display columns of a cell's padding and border
_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
# Where a one-line cell may break when its table must wrap: at a space, or before a full-width bracket
# (styled writes <wbr> there: "24.1%（17.9%–31.7%）" has no break opportunity of its own after "%").
_CELL_BREAK = re.compile(r"\s+|(?<=\S)(?=（)|[\u3400-\u9fff\uf900-\ufaff]{2}")
# (or between two Chinese characters: an English page breaks them anywhere, a Chinese one keeps
# words whole (word-break:keep-all) but a wrapping cell breaks a run too long for its column,
# td.fk-text{overflow-wrap:anywhere} in report.css: a company name has no space to break at)
# A bracketed figure such as an interval, kept whole in a wrapping cell (not "（17.9%–" / "31.7%）");
# numbers only, so no other text (a name, escaped markup) is touched
_BRACKETED = re.compile(r"(?P<before>\S?)(?P<group>[（(][−+-]?[0-9][0-9.,%+−–-]*[）)])")


def md_escape(text: str) -> str:
    """``text`` as literal Markdown inline text: every ASCII punctuation character gets a backslash
    (CommonMark lets any of them be escaped), so no value becomes a link, an HTML tag or emphasis;
    ``<`` then reaches the HTML as ``&lt;``. Line breaks become spaces (one line, no new block)."""
    return _MD_PUNCTUATION.sub(r"\\\1", re.sub(r"[\r\n]+", " ", str(text)))


@functools.lru_cache(maxsize=1)
def _styler_class() -> type[Styler]:
    """A Styler that writes no ``<style>`` element (the report page's Content-Security-Policy
    allows only its own stylesheet); cells carry classes that ``report.css`` styles instead."""
    return Styler.from_custom_template(str(TEMPLATES / "styler"), html_style="no_style.tpl")


class _Bilingual(RootModel[dict[str, dict[Literal["en", "zh"], str]]]):
    pass


class Text:
    """Report wording in one language: ``T("key", **values)`` formats ``params/text.yaml[key]``."""

    def __init__(self, entries: dict[str, dict[str, str]], language: str):
        self.entries, self.language = entries, language

    def __call__(self, key: str, **values: Any) -> str:
        return self.entries[key][self.language].format(**values)

    def counted(self, key: str, count: str, **values: Any) -> str:
        """``key`` formatted, or its singular ``<key>_one`` when ``values[count]`` is 1 and the text
        file has one (English needs "1 deal", Chinese none)."""
        singular = f"{key}_one"
        return self(singular if values[count] == 1 and singular in self.entries else key, **values)

    def column(self, name: str) -> str:
        """Header for column ``name`` (``col_<name>`` in the text file, else the name itself)."""
        entry = self.entries.get(f"col_{name}")
        return entry[self.language] if entry else name


def load_text(language: str = "en", path: str | Path | None = None) -> Text:
    """Load ``params/text.yaml`` (a project's, over the packaged one for keys it lacks); every key
    must give both ``en`` and ``zh``. Read once per
    process until the file changes (every report and its page title need it); each call gets
    its own entries, so a report that changes its wording cannot change the next one's."""
    path = Path(path) if path else params_file("text.yaml")
    entries = _text_entries(path, _version(path))
    packaged = PARAMS_DIR / "text.yaml"
    if path.resolve() != packaged.resolve():
        # a project's copy made by an older funnelkit lacks the keys added since: those come from
        # the packaged wording (the project's own wording wins), not a KeyError in every report
        entries = _text_entries(packaged, _version(packaged)) | entries
    return Text({key: dict(words) for key, words in entries.items()}, language)


def _version(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
        return stat.st_mtime_ns, stat.st_size
    except OSError:
        return None  # validate_file says what is wrong with the file


@functools.lru_cache(maxsize=4)
def _text_entries(path: Path, version: tuple[int, int] | None) -> dict[str, dict[str, str]]:
    entries = validate_file(_Bilingual, path).root
    missing = [k for k, v in entries.items() if set(v) != {"en", "zh"}]
    if missing:
        from funnelkit.config import ConfigError

        raise ConfigError(f"{path}: {', '.join(missing)}: needs both en and zh")
    return entries


def fmt_pct(x: float) -> str:
    """``0.1234 → '12.3%'``; missing → ``'–'``."""
    return "–" if pd.isna(x) else f"{x:.1%}"


def fmt_int(x: float) -> str:
    """``1234 → '1,234'``; missing → ``'–'``."""
    return "–" if pd.isna(x) else f"{x:,.0f}"


def configured_currency() -> str:
    """The currency of the project's funnel.yaml (what an amount is shown in when not told)."""
    from funnelkit.config import load_config

    return load_config().currency


def fmt_money(x: float, currency: str | None = None) -> str:
    """``1200000 → '¥1,200,000'``, ``-468000 → '−¥468,000'`` (symbol from the currency code,
    default the configured one); missing → ``'–'``."""
    if pd.isna(x):
        return "–"
    currency = currency or configured_currency()
    # a typographic minus, as every other signed figure of the reports (a change of -¥468,000 read as a dash)
    return f"{'−' if round(x) < 0 else ''}{CURRENCY_SYMBOLS.get(currency, currency + ' ')}{abs(x):,.0f}"


def rate_of(text: Text, rate: float, n: int, of: int, none_key: str) -> str:
    """A rate with the counts it is made of, ``n ÷ of``: ``"20.0% (1 of 5)"`` (``rate_of`` in
    text.yaml); ``text(none_key)`` when ``of`` is 0 (no rate, not 0%)."""
    return text(none_key) if not of or pd.isna(rate) else text("rate_of", rate=rate, n=int(n), of=int(of))


def fmt_days(x: float, unit: str = "d") -> str:
    """``12.34 → '12.3 d'`` (``unit`` from ``text("unit_days")`` in a report); missing → ``'–'``."""
    return "–" if pd.isna(x) else f"{x:,.1f} {unit}"


def display_width(value: str) -> int:
    """Width of ``value`` in columns, a wide (Chinese) character counting 2, as it is printed: a
    cell of 20 Chinese characters is as wide as 40 Latin ones, so it must not be kept unwrapped."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in value)


def no_stays_note(summary: pd.DataFrame, labels: dict[str, str], text: Text) -> list[str]:
    """A sentence naming the stages (the final one aside: a won deal stays there) that no stay of
    the time-in-stage ``summary`` covers, which its table and chart would otherwise leave out without
    a word (a stage every deal skips, such as a pipeline stage no one uses); empty when none."""
    keys = list(labels)[:-1]
    missing = [labels[k] for k in keys if k not in set(summary["stage"] if len(summary) else [])]
    return [text("tis_no_stays", stages=text("list_sep").join(missing))] if missing else []


def styled(
    df: pd.DataFrame,
    text: Text,
    pct: tuple[str, ...] = (),
    ints: tuple[str, ...] = (),
    money: tuple[str, ...] = (),
    days: tuple[str, ...] = (),
    currency: str | None = None,
    decimals: tuple[str, ...] = (),
    missing: dict[str, str] | None = None,
    pp: tuple[str, ...] = (),
    order: dict[str, list[Any]] | None = None,
) -> Styler:
    """A Styler with formatted numbers, translated headers and no index, ready for the report.

    ``missing`` maps a column to the text key shown where its value is unknown (instead of "–"),
    e.g. ``{"weighted_pipeline": "no_probabilities"}``. ``pp`` columns are differences of two
    rates, shown in percentage points (:func:`fmt_pp`).

    Every text cell and header is HTML-escaped; numeric columns carry the class ``fk-num``. Money is
    shown in ``currency``, by default the configured one.

    Sorting in the page (``sort-tables.js``): ``order`` maps a column to its values in rank order,
    and each such cell gets the class ``fk-o-<rank>`` (a ``tier`` column is ranked high > medium >
    low > unscored by default, by key or by its name in the report language); a row whose first
    column reads "Total" in the report language is a total row (``fk-total``) kept at the bottom."""
    formats: dict[str, Any] = {c: fmt_pct for c in pct if c in df}
    if money and currency is None:
        currency = configured_currency()
    formats |= {c: fmt_int for c in ints if c in df}
    formats |= {c: (lambda x, cur=currency: fmt_money(x, cur)) for c in money if c in df}
    formats |= {c: (lambda x, unit=text("unit_days"): fmt_days(x, unit)) for c in days if c in df}
    formats |= {c: (lambda x: "–" if pd.isna(x) else f"{x:.2f}") for c in decimals if c in df}
    formats |= {c: (lambda x, unit=text("unit_pp"): fmt_pp(x, unit)) for c in pp if c in df}
    shown = df.rename(columns={c: text.column(c) for c in df.columns})
    formats = {text.column(c): f for c, f in formats.items()}
    numeric = [pd.api.types.is_numeric_dtype(shown.iloc[:, i]) for i in range(shown.shape[1])]
    classes = sort_classes(df, text, order)
    classes.columns, classes.index = shown.columns, shown.index
    kinds = []
    for i, is_number in enumerate(numeric):
        # numbers, and short text such as names, dates and "20.8% (14.7% – 28.5%)", stay on one line
        # as objects: mapping a categorical (an engine's text, a furthest stage) gives a categorical, which has no max
        short = not is_number and shown.iloc[:, i].astype(object).map(lambda v: display_width(str(v))).max() <= SHORT_CELL \
            if len(shown) else False
        # long text (a next action, a screening result) keeps a readable width beside the one-line columns
        kinds.append(" fk-num" if is_number else " fk-nowrap" if short else " fk-text" if len(shown) else "")
    kinds = _wrap_wide_tables(shown, kinds, formats)
    for i, kind in enumerate(kinds):
        classes.iloc[:, i] = (classes.iloc[:, i] + kind).str.strip()
    style = _styler_class()(shown).format(formats, na_rep="–", escape="html")
    bracketed = [c for i, c in enumerate(shown.columns) if kinds[i] == " fk-text" and c not in formats
                 and shown.iloc[:, i].map(lambda v: isinstance(v, str) and _BRACKETED.search(v) is not None).any()]
    if bracketed:  # Styler escapes the value before this formatter, so the markup added here stays markup
        style = style.format(_keep_brackets_whole, subset=bracketed, na_rep="–", escape="html")
    for c, key in (missing or {}).items():
        if c in df:
            style = style.format(formats.get(text.column(c)), subset=[text.column(c)], na_rep=text(key),
                                 escape="html")
    return (
        style.format_index(_header_html, axis=1)
        .hide(axis="index")
        .set_td_classes(classes)
        .set_table_attributes('class="fk-table"')
    )


def _keep_brackets_whole(escaped: Any) -> str:
    """An escaped cell with each bracketed figure (:data:`_BRACKETED`) in a span that does not wrap,
    after a break opportunity where it follows a character without a space (see :data:`_CELL_BREAK`)."""
    def whole(m: re.Match) -> str:
        before, group = m["before"], m["group"]
        return f'{before}{"<wbr>" if before else ""}<span class="fk-nowrap">{group}</span>'

    return _BRACKETED.sub(whole, str(escaped))


def _wrap_wide_tables(shown: pd.DataFrame, kinds: list[str], formats: dict[str, Any]) -> list[str]:
    """``kinds`` with the widest one-line text columns that can wrap (a cell with a break opportunity,
    :data:`_CELL_BREAK`, wider than a wrapping column's minimum) let wrap, widest first, while the
    table's estimated width exceeds :data:`TABLE_WIDTH`: eleven one-line columns side by side ran
    64 pixels past the page (review3's follow-up plan), twelve with Chinese intervals 62 (fixes5's
    rep roll-up). The estimate, in display columns: each column's widest cell as printed, or its
    header where that is wider, plus padding. A header longer than :data:`SHORT_HEADER` wraps:
    it counts its widest word, a Chinese one (which may break between any two characters) half its
    width, as on two lines. A wrapping column still counts its one-line width, at least its minimum
    (how narrow the browser makes it depends on the others), so once a table is too wide every
    column that can wrap is let wrap: the follow-up plan needed all of them. Letting a column wrap
    costs nothing where the table fits: the browser wraps only when it must."""
    def printed(i: int) -> pd.Series:
        column, f = shown.iloc[:, i].astype(object), formats.get(shown.columns[i])  # see "short" above

        def one(v: Any) -> str:
            try:
                return str(f(v)) if f is not None else str(v)
            except (TypeError, ValueError):  # a value its formatter does not take is shown as it is
                return str(v)

        return column.map(one)

    if not len(shown):
        return kinds
    cells = [printed(i) for i in range(len(kinds))]
    widths = [max(int(c.map(display_width).max()), _header_width(str(shown.columns[i]))) for i, c in enumerate(cells)]
    kinds = list(kinds)

    def total() -> int:
        return sum((max(w, TEXT_MIN) if k == " fk-text" else w) + CELL_PADDING for w, k in zip(widths, kinds))

    breaks = [cells[i].str.contains(_CELL_BREAK).any() for i in range(len(kinds))]
    wrappable = sorted((i for i, k in enumerate(kinds) if k == " fk-nowrap" and widths[i] > TEXT_MIN and breaks[i]),
                       key=lambda i: -widths[i])
    for i in wrappable:
        if total() <= TABLE_WIDTH:
            break
        kinds[i] = " fk-text"
    # Narrower than a wrapping cell's minimum ("East rep 019", "every 3 days"): a column let wrap
    # at a smaller minimum (fk-wrap, :data:`WRAP_MIN`), the one that saves most first, while the narrowest the table can be — each
    # wrapping column at its minimum, each fk-wrap one at its longest word or minimum — is wider than the
    # page: a team's English plan of eleven columns ran 34 to 62 px past it with every longer
    # column wrapping (fixes6).
    def words(i: int) -> int:
        return max(int(cells[i].map(lambda v: max(map(display_width, v.split() or [""]))).max()),
                   _header_width(str(shown.columns[i])))

    def narrowest() -> int:
        return sum((TEXT_MIN if k == " fk-text" else max(words(i), WRAP_MIN) if k == " fk-wrap" else w) + CELL_PADDING
                   for i, (w, k) in enumerate(zip(widths, kinds)))

    spaced = sorted((i for i, k in enumerate(kinds) if k == " fk-nowrap" and breaks[i] and words(i) < widths[i]),
                    key=lambda i: words(i) - widths[i])
    for i in spaced:
        if narrowest() <= TABLE_WIDTH:
            break
        kinds[i] = " fk-wrap"
    return kinds


def _header_width(name: str) -> int:
    """The display columns a column header needs (see :func:`_wrap_wide_tables`): all of it when it
    is at most :data:`SHORT_HEADER` wide (kept on one line, :func:`_header_html`); else its widest
    word, a word with Chinese characters counting half its width (rounded up: two lines), since
    ``report.css`` lets a Chinese header break between any two characters."""
    if display_width(name) <= SHORT_HEADER:
        return display_width(name)

    def word(w: str) -> int:
        return -(-display_width(w) // 2) if display_width(w) > len(w) else len(w)

    return max(map(word, name.split() or [""]))


def _header_html(name: Any) -> str:
    """A column header, escaped; a short one ("得分", "意向客户") in a span that does not wrap."""
    escaped = html.escape(str(name))
    return f'<span class="fk-nowrap">{escaped}</span>' if display_width(str(name)) <= SHORT_HEADER else escaped


def sort_classes(df: pd.DataFrame, text: Text, order: dict[str, Any] | None = None) -> pd.DataFrame:
    """Per cell of ``df``, the classes the page's table sort reads (see :func:`styled`):
    ``fk-o-<rank>`` where ``order[column]`` ranks the value (a list in rank order, or a dict value →
    rank), and ``fk-total`` on every cell of a total row. A ``tier`` column is ranked high (0) >
    medium > low > unscored unless ``order`` says otherwise, whether it holds keys or names."""
    order = dict(order or {})
    if "tier" in df and "tier" not in order:
        order["tier"] = {spelling: rank for rank, (key, name) in enumerate(tier_labels(text).items())
                         for spelling in (key, name)}
    classes = pd.DataFrame("", index=df.index, columns=df.columns, dtype=object)
    for column, values in order.items():
        if column in df:
            rank = values if isinstance(values, dict) else {v: i for i, v in reversed(list(enumerate(values)))}
            ranks = df[column].astype(object).map(lambda v: rank.get(v) if isinstance(v, Hashable) else None)
            classes[column] = [f"fk-o-{int(r)}" if r is not None and pd.notna(r) else "" for r in ranks]
    if df.shape[1]:
        total = df.iloc[:, 0].astype(object).isin([text("total"), "total", "Total"]).to_numpy()
        classes.loc[total, :] = classes.loc[total, :].apply(lambda c: (c + " fk-total").str.strip())
    return classes


def quality_section(data: Dataset, text: Text, examples: int = 10) -> list[Any]:
    """The report's data-quality section: heading and note, the summary (rows in / analysed /
    quarantined by reason) and examples of quarantined rows with file name, row, column and reason:
    the first row of every reason, then the next rows in file order, so a reason with many rows
    does not hide the others."""
    from IPython.display import Markdown

    q = data.quarantine
    summary = quality_summary(data)
    words = {k: text(f"quality_{k.replace(' ', '_')}") for k in ("rows in", "analysed", "quarantined", "deals",
                                                                  "stage_events")}
    summary = summary.assign(table=summary["table"].map(words).fillna(summary["table"]),
                             reason=[words.get(r) or "  " + quarantine_words(r.strip(), text, data.as_of)
                                     for r in summary["reason"]])
    parts: list[Any] = [section(text, "quality_title", "quality", "quality_note"),
                        styled(summary, text, ints=("rows",))]
    if len(q):
        q = q.iloc[np.argsort(q.groupby("reason", sort=False).cumcount().to_numpy() > 0, kind="stable")]
        # an absolute path names the analyst's machine, not the export: the file name is what a reader looks for
        q = q.assign(file=q["file"].map(lambda f: PurePath(f).name if isinstance(f, str) and PurePath(f).is_absolute()
                                        else f),
                     column=[column_words(data, t, c, text) if isinstance(c, str) else c
                             for t, c in zip(q["table"], q["column"])],
                     value=[text("quarantine_copy_of", row=copy_of(v)) if r == "exact_duplicate" else v
                            for r, v in zip(q["reason"], q["value"])],
                     reason=q["reason"].map(lambda r: quarantine_words(r, text, data.as_of)))
        shown, note = shown_rows(q[["file", "row", "deal_id", "column", "value", "reason"]], examples, text)
        parts.append(styled(shown, text, ints=("row",)))
        parts += [note] if note is not None else []
    else:
        parts.append(Markdown(text("quality_clean")))
    if data.notes:
        parts.append(Markdown(bullets([note_words(note, text) for note in data.notes])))
    return parts


def note_words(note: str, text: Text) -> str:
    """A data note (:data:`funnelkit.inputs.data.DATA_NOTES`) in the report language, its file named
    without the analyst's folders; a note without wording in text.yaml as it is."""
    from funnelkit.inputs.data import note_parts

    parts = note_parts(note)
    if parts is None or f"data_note_{parts[0]}" not in text.entries:
        return note
    key, fields = parts
    if "file" in fields and PurePath(fields["file"]).is_absolute():
        fields["file"] = PurePath(fields["file"]).name
    if "columns" in fields:
        fields["columns"] = text("list_sep").join(field_label(c.strip(), text) for c in fields["columns"].split(","))
    return text(f"data_note_{key}", **fields)


def title(text: Text, notebook_key: str, period: str, as_of: pd.Timestamp, team: str | None = None,
          rep: str | None = None) -> str:
    """Markdown title line: notebook, team / rep, period, and the as-of date (inclusive); every
    value is literal text (:func:`md_escape`)."""
    scope = " / ".join(x for x in (team, rep) if x) or text("all_teams")
    shown_as_of = (as_of - pd.Timedelta(microseconds=1)).strftime("%Y-%m-%d")
    generated = pd.Timestamp.now().strftime("%Y-%m-%d %H:%M")
    return (f"# {md_escape(text('report_title', notebook=text(notebook_key), scope=scope, period=period))}\n\n"
            f"{md_escape(text('subtitle', as_of=shown_as_of, generated=generated))}")


def bullets(lines: list[str]) -> str:
    """Markdown bullet list of literal lines (:func:`md_escape`)."""
    return "\n".join(f"- {md_escape(line)}" for line in lines)


Finding = tuple[str, str]  # (sentence, anchor of the section that shows it)


def headline(text: Text, findings: list[Finding], extra: str = "") -> Any:
    """The headline block: each finding with a link to its section, then ``extra`` (a sentence)."""
    from IPython.display import HTML

    items = "".join(f'<li>{html.escape(line)} <a href="#{anchor}">→ {html.escape(text("see_section"))}</a></li>'
                    for line, anchor in findings)
    tail = f"<p>{html.escape(extra)}</p>" if extra else ""
    return HTML(f'<div class="fk-headline"><h2 id="headline">{html.escape(text("headline"))}</h2><ul>{items}</ul>{tail}</div>')


def section(text: Text, title_key: str, anchor: str, note_key: str | None = None, **values: Any) -> Any:
    """A section heading with a stable ``id`` (for the headline links) and its how-to-read note."""
    from IPython.display import HTML

    note = f"<p class=\"fk-note\">{html.escape(text(note_key, **values))}</p>" if note_key else ""
    return HTML(f'<h2 id="{anchor}">{html.escape(text(title_key))}</h2>{note}')


def conversion_findings(funnel: pd.DataFrame, losses: pd.DataFrame, data: Dataset, text: Text,
                        table1: Any = None) -> list[Finding]:
    """Headline sentences for the conversion report, computed from its tables.

    The cohort win rate under its named definition, "maturing" while most of the cohort is open,
    with Table 1's new customers of the period when ``table1`` is given
    (:func:`funnelkit.presentation.story.cohort_headline`); the biggest leak (:func:`funnelkit.analyses.funnel.biggest_leak`);
    the most common loss reason; and the quarantine count when any row was set aside.
    """
    from funnelkit.analyses.funnel import biggest_leak
    from funnelkit.presentation.story import cohort_headline

    period = funnel.period
    cohort = funnel.cohort_size
    if cohort == 0:
        return [(text("empty_cohort"), "funnel")]
    leak = biggest_leak(funnel)
    lines = [(text("headline_no_leak") if leak is None else
              text("headline_leak", stage=leak["label"], lost=int(leak["lost_at"]),
                   reached=int(leak["reached"]), rate=leak["loss_rate"]), "funnel"),
             cohort_headline(funnel, table1, text)]
    if len(losses):
        by_reason = losses.groupby("reason")["deals"].sum().sort_values(ascending=False)
        lines.append((text.counted("headline_reason", "n", period=period, reason=by_reason.index[0], n=int(by_reason.iloc[0]),
                           share=by_reason.iloc[0] / by_reason.sum()), "losses"))
    quarantined = int(quarantine_counts(data)["rows"].sum())
    if quarantined:
        lines.append((text("headline_quality", quarantined=quarantined, rows_in=sum(data.rows_in.values())),
                      "quality"))
    return lines


def chart_words(text: Text) -> dict[str, str]:
    """The words the charts in :mod:`funnelkit.presentation.plots` print, in the report language."""
    return {
        "deals": text("chart_deals"), "of_previous": text("chart_of_previous"), "of_first": text("chart_of_first"),
        "axis": text("chart_funnel_axis"), "cumulative": text("chart_cumulative"), "empty": text("chart_no_losses"),
        "loss_axis": text("chart_loss_axis"), "x": text("chart_days_in_stage"), "y": text("chart_still_in_stage"),
    }


def funnel_plot_words(text: Text) -> dict[str, str]:
    """Every word :func:`funnelkit.presentation.plots.funnel_plot` prints (axes, team line and the
    95% / 99.8% limit lines of its legend), in the report language."""
    return {"x": text("chart_closed"), "y": text("chart_win_rate"), "team": text("chart_team_rate"),
            "l95": text("chart_limits_95"), "l998": text("chart_limits_998")}


def figure_html(fig: Any, alt: str = "", dpi: int = 110) -> Any:
    """The figure as an inline PNG ``<img>`` (base64), so the report carries its charts and
    needs no file beside it. Returns an ``IPython.display.HTML`` object for ``display``."""
    return _img_html(_png_base64(fig, dpi), alt)


def chart_html(draw: Callable[..., Any], *args: Any, alt: str = "", dpi: int = 110, **kwargs: Any) -> Any:
    """``figure_html(draw(*args, **kwargs), alt, dpi)``: the chart ``draw`` (a function of
    :mod:`funnelkit.presentation.plots`) makes of the arguments, as an inline PNG ``<img>``.

    In a warm report kernel (:mod:`funnelkit.memo` enabled) a chart is drawn once for the same
    draw function, arguments (by content) and matplotlib settings, and its PNG reused: the two
    periods of a rep's report often show the same chart. Elsewhere it is drawn each time."""
    from funnelkit.presentation.plots import settings_key

    return _img_html(_chart_png(draw, args, kwargs, dpi, settings_key()), alt)


@memo.reused
def _chart_png(draw: Callable[..., Any], args: tuple, kwargs: dict[str, Any], dpi: int, settings: str) -> str:
    """The base64 PNG of ``draw(*args, **kwargs)`` (``settings``: the matplotlib settings it is
    drawn under, part of the reuse key only)."""
    return _png_base64(draw(*args, **kwargs), dpi)


def _png_base64(fig: Any, dpi: int) -> str:
    import base64
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img_html(encoded: str, alt: str) -> Any:
    from IPython.display import HTML

    return HTML(f'<img class="fk-chart" alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">')


def with_ci(table: pd.DataFrame, name: str, text: Text) -> pd.Series:
    """``'12.3 d (10.1–14.9 d)'`` from columns ``name``, ``name_low``, ``name_high``; a value or
    bound that is NaN is printed as "not reached"."""
    nr = text("not_reached")

    def one(row: pd.Series) -> str:
        value, low, high = row[name], row[f"{name}_low"], row[f"{name}_high"]
        if pd.isna(value):
            return nr
        return text("with_interval", value=fmt_days(value, text("unit_days")),
                    low="–" if pd.isna(low) else f"{low:,.1f}", high=nr if pd.isna(high) else f"{high:,.1f}")

    return table.apply(one, axis=1) if len(table) else pd.Series(dtype=str)


def time_in_stage_findings(summary: pd.DataFrame, stalled: pd.DataFrame, overall: pd.Series, labels: dict[str, str],
                           text: Text, period: str, quantile: float, currency: str) -> list[Finding]:
    """Headline sentences for the time-in-stage report: the slowest stage by KM median (every stage
    tied at the median as shown, to 0.1 day, is named), stalled deals, and win rate / cycle / velocity."""
    lines = []
    known = summary.dropna(subset=["median"])
    if len(known):
        shown = known["median"].round(1)  # the precision fmt_days prints: equal as read is a tie
        slowest = known[shown == shown.max()]
        slow = slowest.iloc[0]
        median = fmt_days(slow["median"], text("unit_days"))
        if len(slowest) > 1:
            stages = text("list_sep").join(labels.get(s, s) for s in slowest["stage"])
            lines.append((text("tis_headline_slowest_tied", stages=stages, median=median), "km"))
        elif pd.isna(slow["p75"]):
            lines.append((text("tis_headline_slowest_open", stage=labels.get(slow["stage"], slow["stage"]),
                               median=median), "km"))
        else:
            lines.append((text("tis_headline_slowest", stage=labels.get(slow["stage"], slow["stage"]), median=median,
                               p75=fmt_days(slow["p75"], text("unit_days"))), "km"))
    if len(stalled):
        top = stalled.iloc[0]
        lines.append((text("tis_headline_stalled", n=len(stalled), q=quantile * 100, deal=top["deal_id"],
                           rep=top["rep"], days=top["days"], stage=labels.get(top["stage"], top["stage"])), "stalled"))
    elif overall.get("open_deals", 1) == 0:  # every deal closed: "no open deal has sat too long" implies some sit
        lines.append((text("tis_headline_no_open"), "stalled"))
    else:
        lines.append((text("tis_headline_no_stalled", q=quantile * 100), "stalled"))
    if overall["closed"] > 0:
        cycle = (text("cycle_text", cycle=fmt_days(overall["cycle_median"], text("unit_days")))
                 if pd.notna(overall["cycle_median"]) else text("cycle_none"))
        velocity = (text("velocity_text", velocity=fmt_money(overall["velocity_per_day"], currency))
                    if pd.notna(overall["velocity_per_day"]) else text("velocity_none"))
        lines.append((text("tis_headline_cycle", period=period, win=overall["win_rate"], closed=int(overall["closed"]),
                           cycle_text=cycle, velocity_text=velocity), "cycle"))
    return lines


def opportunity_findings(screened: pd.DataFrame, both: pd.DataFrame, plan: pd.DataFrame, text: Text,
                         scenario: str, currency: str) -> list[Finding]:
    """Headline sentences for the opportunities report: how many open deals qualify and the most
    missed criterion, the tier counts, overdue follow-ups, and screen/score disagreements."""
    from funnelkit.analyses.screening import failing_criteria

    if screened.empty:
        return [(text("no_open_deals"), "screen")]
    lines = []
    if len(screened):
        worst = failing_criteria(screened).iloc[0]
        # no deal misses any criterion (often: the CRM lacks the fields): naming one as "missed most
        # often (0 deals)" would be a figure from zero cases
        key = "opp_headline_screen" if worst["not met"] else "opp_headline_screen_none_missed"
        if not (screened[list(screened.criteria)] != "unknown").to_numpy().any():
            key = "opp_headline_screen_unknown"  # "0 of 54 are opportunity points" from no criterion checked
        lines.append((text(key, qualified=int(screened["is_opportunity"].sum()), open=len(screened),
                           k=screened.min_criteria, n=len(screened.criteria),
                           criterion=worst["label"], missed=int(worst["not met"])), "screen"))
    tiers = both["tier"].astype("object").fillna("unscored").value_counts()
    high_amount = both.loc[both["tier"] == "high", "amount"].sum()
    if len(plan) and plan["last_follow_up_at"].isna().all():  # every deal due now: "0 overdue" would say nothing
        lines.append((text("opp_headline_overdue_undated", deals=len(plan)), "plan"))
    elif len(plan):
        lines.append((text.counted("opp_headline_overdue", "overdue", overdue=int(plan["overdue"].sum()),
                           overdue_high=int((plan["overdue"] & (plan["tier"] == "high")).sum())), "plan"))
    if both["score"].isna().all():
        return lines + [(text("no_scored"), "tiers")]
    lines.append((text("opp_headline_tiers", scenario=scenario, high=int(tiers.get("high", 0)),
                       medium=int(tiers.get("medium", 0)), low=int(tiers.get("low", 0)),
                       unscored=int(tiers.get("unscored", 0)),
                       high_amount=fmt_money(high_amount, currency) if tiers.get("high", 0) else text("no_high_deals")),
                  "tiers"))
    # a deal fails the screen only when it could not qualify even were every unknown criterion met:
    # with the CRM lacking the fields, "27 high-scoring deals fail the screen" would be from no check
    criteria = screened[list(screened.criteria)]
    could_pass = criteria.isin(["met", "unknown"]).sum(axis=1) >= screened.min_criteria
    fails = screened.loc[~could_pass.to_numpy(), "deal_id"]
    high_fail = int(((both["tier"] == "high") & ~both["is_opportunity"] & both["deal_id"].isin(fails)).sum())
    low_pass = int(((both["tier"] == "low") & both["is_opportunity"]).sum())
    if high_fail or low_pass:
        lines.append((text("opp_headline_mismatch", high_fail=high_fail, low_pass=low_pass), "side"))
    return lines


def tier_labels(text: Text) -> dict[str, str]:
    """Tier key → its name in the report language (high, medium, low, unscored)."""
    return {t: text(f"tier_{t}") for t in ("high", "medium", "low", "unscored")}


def interval(table: pd.DataFrame, value: str, low: str, high: str, fmt: str | Callable[[float], str],
             text: Text | None = None) -> pd.Series:
    """``'0.671 (0.646–0.697)'`` from three columns, with ``fmt`` (a format string, or a function
    such as :func:`funnelkit.presentation.story.signed` for signed differences with a typographic
    minus) applied to each; '–' when missing.
    With ``text``, punctuated in the report language (``with_interval``: full-width brackets in Chinese)."""
    show = fmt.format if isinstance(fmt, str) else fmt

    def one(row: pd.Series) -> str:
        if pd.isna(row[value]):
            return "–"
        if pd.isna(row[low]):
            return show(row[value])
        values = {"value": show(row[value]), "low": show(row[low]), "high": show(row[high])}
        return text("with_interval", **values) if text else "{value} ({low}–{high})".format(**values)

    return table.apply(one, axis=1) if len(table) else pd.Series(dtype=str)


def sensitivity_findings(comparison: Any, test: Any, stability: pd.DataFrame, names: dict[str, str], text: Text,
                         sd: float, card: Any = None, one_field: list[str] | None = None) -> list[Finding]:
    """Plain-language conclusions of the weight-sensitivity report, one per scenario, then stability
    (fields named as in ``card``, the scorecard tested; default ``params/scorecard.yaml``).

    A scenario's AUC difference is "significant" by :func:`funnelkit.analyses.sensitivity.differs_beyond_noise`.
    Kendall τ and AUC are left out, with the reason, where too few deals give them; the closed
    deals the backtest could not score are counted with their reasons. ``one_field``
    (:func:`funnelkit.analyses.sensitivity.one_field_only`): every open deal is scored on one of
    these dimensions alone, so no weighting can move it: said instead of each scenario's "0 deals
    changing tier, ranking agreement 1.00", which would read as weights that do not matter.
    """
    from funnelkit.analyses.sensitivity import MIN_AUC, MIN_TAU

    lines = []
    base_auc = test.auc.set_index("scenario")
    if comparison.summary.empty or not (comparison.summary["scored"] > 0).any():
        lines.append((text("ws_no_open"), "transitions"))
    elif one_field:
        labels = {k: d.label.get(text.language, k) for k, d in card.dimensions.items()} if card is not None else {}
        lines.append((text("ws_one_field", fields=text("list_sep").join(labels.get(k, k) for k in one_field)),
                      "transitions"))
    for row in comparison.summary.itertuples():
        if row.scored == 0 or one_field:
            continue
        moves = comparison.movers[comparison.movers["scenario"] == row.scenario]
        out_high = int(((moves["tier_before"] == "high") & (moves["tier_after"] != "high")).sum())
        into_high = int(((moves["tier_after"] == "high") & (moves["tier_before"] != "high")).sum())
        alt = base_auc.loc[row.scenario]
        significant = bool(alt["significant"])
        tau_text = (text("ws_tau", tau=row.kendall_tau_b) if pd.notna(row.kendall_tau_b)
                    else text("ws_tau_none", n=row.scored, min=MIN_TAU))
        auc_text = (text("ws_auc", auc_base=base_auc.loc["baseline", "auc"], auc_alt=alt["auc"],
                         sig=text("significant" if significant else "not_significant"))
                    if pd.notna(alt["auc"]) and pd.notna(base_auc.loc["baseline", "auc"]) else text("ws_auc_none"))
        lines.append((text("ws_conclusion", scenario=names.get(row.scenario, row.scenario), out_high=out_high,
                           into_high=into_high, movers=row.movers, tau_text=tau_text, auc_text=auc_text),
                      "transitions"))
    if len(stability):
        lines.append((text.counted("ws_stability", "fragile_high", sd=sd, stable=stability["stable"].mean(),
                           fragile_high=int((~stability["stable"] & (stability["tier"] == "high")).sum())), "stability"))
    if test.unavailable:
        first = test.auc.iloc[0]
        lines.append((text("backtest_few", won=int(first["won"]), lost=int(first["lost"]), min=MIN_AUC), "backtest"))
    elif test.too_few:
        lines.append((backtest_warning(test, text), "backtest"))
    if test.unscored:
        lines.append((unscored_sentence(test, text, card), "backtest"))
    return lines


def backtest_warning(test: Any, text: Text) -> str:
    """The warning that a :class:`funnelkit.analyses.sensitivity.Backtest` has too few won or lost deals."""
    auc = test.auc.iloc[0]
    return text("ws_too_few", won=int(auc["won"]), lost=int(auc["lost"]), min=test.min_class)


def suggestion_verdict(suggestion: Any, text: Text) -> str:
    """The conclusion of :func:`funnelkit.analyses.sensitivity.suggest_weights` in the report language."""
    from funnelkit.presentation.story import signed

    row = suggestion.cv.set_index("which")
    return text("suggest_better" if suggestion.better_than_baseline else "suggest_keep",
                auc_sugg=row.loc["suggested", "auc"], auc_base=row.loc["baseline", "auc"],
                low=signed(row.loc["suggested", "diff_low"], 3), high=signed(row.loc["suggested", "diff_high"], 3))


def rep_findings(summary: Any, rep: str, rates: pd.DataFrame, stalled: int, overdue: int | str | None, labels: dict[str, str],
                 text: Text) -> list[Finding]:
    """Headline sentences for a rep report: win rate with interval against the team and the limits,
    the rank on the shrunk rate, the stage where the rep's next-step rate (``rates`` from
    :func:`funnelkit.analyses.reps.rep_vs_team`) is furthest below the team's, and the deals to act on."""
    row = summary[summary["rep"] == rep]
    if row.empty:
        return [(text("empty_cohort"), "rep-funnel")]
    r = row.iloc[0]
    if r["closed"] == 0:
        lines = [(text("rep_headline_no_closed", rep=rep), "funnel-plot")]
    else:
        ranked = int(summary["rank"].notna().sum())
        rank_text = (text("rank_text", rank=int(r["rank"]), ranked=ranked) if pd.notna(r["rank"]) else
                     text("rank_none", closed=int(r["closed"]), min_volume=summary.min_volume))
        lines = [(text.counted("rep_headline_rate", "closed", rep=rep, rate=r["win_rate"], low=r["win_rate_low"],
                       high=r["win_rate_high"], closed=int(r["closed"]), team_rate=summary.team_rate,
                       flag_text=text(f"flag_{r['flag']}"), rank_text=rank_text), "funnel-plot")]
    from funnelkit.analyses.reps import readable_rates

    rates = readable_rates(rates)  # a maturing rate, or one of a handful of decided deals, is not compared
    gap = (rates["rep_rate"] - rates["team_rate"]).dropna()
    if len(gap) and gap.min() < 0:
        from funnelkit.presentation.story import step_label

        worst = rates.loc[gap.idxmin()]
        step = step_label(text, labels.get(worst["stage"], worst["stage"]),
                          labels.get(worst["next_stage"], worst["next_stage"]))
        lines.append((text("rep_step_gap", step=step, rep_rate=fmt_pct(worst["rep_rate"]),
                           team_rate=fmt_pct(worst["team_rate"]),
                           diff=fmt_pp(worst["rep_rate"] - worst["team_rate"], text("unit_pp"))), "rep-funnel"))
    lines.append((work_line(text, stalled, overdue), "rep-deals"))
    return lines


def work_line(text: Text, stalled: int, overdue: int | str | None) -> str:
    """"3 stalled and 2 overdue deals to act on"; with ``overdue`` None or ``"unscored"`` (open
    deals, none scored) or ``"undated"`` (none with a last follow-up date:
    :func:`funnelkit.analyses.playbook.overdue_unknown`) the overdue count is said to be unknown, and why."""
    if overdue == "undated":
        return text("rep_headline_work_undated", stalled=stalled)
    if overdue is None or isinstance(overdue, str):
        return text("rep_headline_work_unscored", stalled=stalled)
    return text("rep_headline_work", stalled=stalled, overdue=overdue)


def coaching(points: list[tuple[str, dict]], labels: dict[str, str], text: Text) -> list[str]:
    """The coaching points of :func:`funnelkit.analyses.reps.coaching_points` worded in the report language."""
    from funnelkit.presentation.story import step_label

    stages = list(labels)
    lines = []
    for key, values in points:
        if key == "weak":
            # one label per step, and the gap in percentage points like every difference of rates
            at = stages.index(values["stage"]) if values["stage"] in stages else -1
            target = stages[at + 1] if 0 <= at < len(stages) - 1 else values["stage"]
            lines.append(text("coach_weak_step", step=step_label(text, labels.get(values["stage"], values["stage"]),
                                                                 labels.get(target, target)),
                              gap=fmt_pp(-values["gap"] / 100, text("unit_pp"))))
            continue
        if "stage" in values:
            values = values | {"stage": labels.get(values["stage"], values["stage"])}
        if key == "slow":
            unit = text("unit_days")
            values = values | {"rep_days": fmt_days(values["rep_days"], unit), "team_days": fmt_days(values["team_days"], unit)}
        lines.append(text(f"coach_{key}", **values))
    return lines


def rollup_table(summary: pd.DataFrame, text: Text) -> Styler:
    """The team roll-up of :func:`funnelkit.analyses.reps.rep_summary`: one row per rep with intervals;
    a rep below the minimum volume reads "not ranked", and the caption says why (and, where the
    weighted pipeline is shown, that it rests on the CRM's probabilities)."""
    shown = summary.assign(
        win_rate=interval(summary, "win_rate", "win_rate_low", "win_rate_high", "{:.1%}", text),
        flag=summary["flag"].map(lambda f: text(f"flag_{f}") if f != "within" else ""),
    )
    columns = [c for c in ["rank", "rep", "closed", "won", "win_rate", "shrunk_win_rate", "value_win_rate",
                           "cycle_median", "velocity_per_day", "weighted_pipeline", "overdue", "flag"] if c in shown]
    from funnelkit.analyses.sales import missing_pipeline_key

    pipeline_key = missing_pipeline_key(summary["open_pipeline"]) if "open_pipeline" in summary else "no_probabilities"
    why = set(summary["overdue_unknown"].dropna()) if "overdue_unknown" in summary else set()
    overdue_key = "overdue_undated_cell" if why == {"undated"} else "overdue_unscored_cell"
    table = styled(shown[columns], text, ints=("rank", "closed", "won", "overdue"),
                   pct=("shrunk_win_rate", "value_win_rate"), days=("cycle_median",),
                   money=("velocity_per_day", "weighted_pipeline"), currency=None if isinstance(summary, pd.DataFrame) else summary.currency,
                   missing={"rank": "not_ranked", "weighted_pipeline": pipeline_key, "overdue": overdue_key})
    # the reason under the table, not in the rank cell: a sentence there pushed the last columns off the page
    captions = []
    if "rank" in columns and shown["rank"].isna().any():
        volume = getattr(summary, "min_volume", None)
        captions.append(text("rollup_not_ranked", min_volume=volume) if volume else text("too_few_to_rank_note"))
    if "overdue" in columns and overdue_key == "overdue_undated_cell" and shown["overdue"].isna().any():
        captions.append(text("rollup_overdue_undated"))  # the why under the table: in the cells it overran the page
    if "weighted_pipeline" in columns:
        captions.append(text("rollup_pipeline_caveat"))
    return table.set_caption(html.escape(text("sentence_sep").join(captions))) if captions else table


def with_pipeline_caveat(table: Styler, text: Text) -> Styler:
    """``table`` with a caption saying that the weighted pipeline (Σ amount × CRM probability) rests
    on the CRM's probabilities, which often run ahead of what closed deals support: for every table
    that shows the weighted pipeline."""
    return table.set_caption(html.escape(text("rollup_pipeline_caveat")))


def review_findings(review: Any, text: Text) -> list[Finding]:
    """One sentence per flagged step of a :class:`funnelkit.analyses.review.PeriodReview`, or a no-change
    line (:func:`funnelkit.presentation.story.review_findings`: step label and the difference in pp)."""
    from funnelkit.presentation.story import review_findings as step_findings

    return step_findings(review, text)


def rep_flag_findings(summary: pd.DataFrame, text: Text) -> list[Finding]:
    """One sentence naming the reps outside the team's 99.8% funnel limits, if any: each rep with
    the side, win rate and closed deals, worded and punctuated in the report language
    (``rep_flag_item``; full-width brackets and commas on a Chinese page)."""
    flagged = summary[summary["flag"] != "within"]
    if flagged.empty:
        return []
    names = text("clause_sep").join(text("rep_flag_item", rep=r.rep, side=text(f"flag_side_{r.flag}"),
                                         rate=r.win_rate, closed=int(r.closed))
                                    for r in flagged.itertuples())
    return [(text("headline_reps", names=names, team_rate=summary.team_rate), "reps")]


def win_rate_notes(data: Dataset, text: Text, team: str | None = None) -> list[str]:
    """The note every win rate carries when the data records no lost deal (it is 100% by
    construction: not converting means still open); when the data records losses but ``team``
    has none, the note says so for the team (its 100% may only mean losses are not entered);
    empty otherwise."""
    from funnelkit.analyses.sales import losses_recorded

    if not losses_recorded(data.deals):
        return [text("no_losses_recorded")]
    if team is not None and not losses_recorded(data.deals[data.deals["team"] == team]):
        # a team with no closed deal at all shows no win rate: "its win rates are 100%" would be false
        closed = data.deals.loc[data.deals["team"] == team, "status"].isin(["won", "lost"]).any()
        return [text("no_losses_in_team" if closed else "no_closed_in_team", team=team)]
    return []


def unscored_sentence(test: Any, text: Text, card: Any = None) -> str:
    """Why the backtest counts fewer closed deals than the window holds: ``"17 closed deals could
    not be scored: no win probability (12), …"`` (fields named as in ``card``, the scorecard
    tested); empty when every closed deal was scored."""
    if not test.unscored:
        return ""
    # the fields one deal lacks are listed with commas, the groups of deals apart with semicolons:
    # "a; b; c (44), d; e (5)" read as one list of fields with two counts in it
    reasons = text("clause_sep").join(
        text("reason_count", reason=unscored_words(reason, text, card=card).replace(text("clause_sep"), text("list_sep")),
             n=n) for reason, n in test.unscored_reasons.items())
    return text.counted("unscored_closed", "n", n=test.unscored, reasons=reasons)


def unavailable(text: Text, key: str, **values: Any) -> Any:
    """A section that cannot be computed: one sentence (``params/text.yaml``) saying why and which
    data would make it work, in place of its table or chart."""
    from IPython.display import HTML

    return HTML(f'<p class="fk-note fk-unavailable">{html.escape(text(key, **values))}</p>')


def missing_words(data: Dataset) -> dict[str, str]:
    """Text keys for money columns that the data cannot give, for :func:`styled`'s ``missing``:
    every amount figure is "not available (no amounts)" when no deal has an amount, the weighted
    pipeline "not available (no probabilities)" when no deal has a probability; a velocity is "not
    available" with what it needs (won deals with amounts and open deals) wherever it is unknown."""
    if data.deals["amount"].isna().all():
        return {c: "no_amounts" for c in ("amount", "open_pipeline", "weighted_pipeline", "value_win_rate",
                                         "velocity_per_day", "amount_before", "amount_after", "change")}
    velocity = {"velocity_per_day": "velocity_none_cell"}
    if data.deals["win_probability"].isna().all():
        return velocity | {"weighted_pipeline": "no_probabilities"}
    return velocity


def screen_reasons(screened: Any, text: Text) -> pd.Series:
    """One line per deal of a :class:`funnelkit.analyses.screening.Screening` in the report language:
    verdict (met / enabled), then the criteria met, missed and unknown."""
    from funnelkit.analyses.screening import STATES

    keys = list(screened.criteria)
    state_words = {s: text(f"screen_{s.replace(' ', '_')}") for s in STATES}

    def reason(row: pd.Series) -> str:
        parts = [text("screen_reason", verdict=text("screen_yes" if row["is_opportunity"] else "screen_no"),
                      met=row["met_count"], n=len(keys))]
        for state in STATES:
            names = [screened.criteria[k] for k in keys if row[k] == state]
            if names:
                parts.append(text("screen_part", state=state_words[state], names=text("list_sep").join(names)))
        return text("clause_sep").join(parts)

    return screened.table.apply(reason, axis=1) if len(screened) else pd.Series(dtype=str)


def cadence(plan: pd.DataFrame, text: Text) -> pd.Series:
    """The follow-up cadence of each plan row (``cadence_days`` / ``cadence_months``) in words;
    one month reads "every month", not "every 1 month(s)"."""
    def one(row: pd.Series) -> str:
        if pd.notna(row["cadence_days"]):
            return text("cadence_days", n=int(row["cadence_days"]))
        return text.counted("cadence_months", "n", n=int(row["cadence_months"]))

    return plan.apply(one, axis=1) if len(plan) else pd.Series(dtype=str)


def shown_rows(table: pd.DataFrame, limit: int, text: Text, rest_key: str | None = None) -> tuple[pd.DataFrame, Any]:
    """``table`` cut to ``limit`` rows and, when rows were cut, the note "60 of 184 rows shown"
    (plus the sentence ``rest_key`` saying where the rest is), else ``None``: nothing is cut silently."""
    from IPython.display import Markdown

    if len(table) <= limit:
        return table, None
    note = text("rows_shown", shown=limit, total=len(table)) + (" " + text(rest_key) if rest_key else "")
    return table.head(limit), Markdown(note)


def fmt_pp(x: float, unit: str = "pp", decimals: int = 1) -> str:
    """A difference of two rates (as fractions) in percentage points, signed:
    ``-0.082 → '−8.2 pp'``, ``0.053 → '+5.3 pp'``, ``0 → '0.0 pp'``; ``unit`` from
    ``text("unit_pp")`` in a report (百分点 in Chinese); missing → ``'–'``.
    A typographic minus, as in the reports' prose; a value that rounds to zero has no sign."""
    if pd.isna(x):
        return "–"
    points = round(float(x) * 100, decimals)
    sign = "+" if points > 0 else "−" if points < 0 else ""
    return f"{sign}{abs(points):,.{decimals}f} {unit}"
# --- bilingual ---------------------------------------------------------------------------------


def field_label(column: str, text: Text, card: Any = None) -> str:
    """A deal column's name for readers: the label in the report language of ``card``'s dimension
    on that column (the scorecard the report scores with; default ``params/scorecard.yaml``),
    else the column's table header (``col_<column>``), else the column as named in the data."""
    from funnelkit.analyses.scorecard import load_scorecard

    for dim in (card if card is not None else load_scorecard()).dimensions.values():
        if dim.column == column:
            return dim.label.get(text.language, column) if isinstance(dim.label, dict) else column
    return text.column(column)


def column_words(data: Dataset, table: str, column: str, text: Text) -> str:
    """A quarantined row's column for readers: as the export names it, with the canonical field in
    brackets, where a preset or mapping renamed it (``"Close Date (closed_at)"``: the name the
    reader finds in their file and the one their preset maps); else :func:`field_label`."""
    named = data.file_column(table, column)
    return text("file_column", column=named, field=column) if named else field_label(column, text)


def drivers_words(drivers: Any, text: Text, card: Any = None) -> Any:
    """A scored deal's top drivers (``"amount:30; win_probability:25"``, see
    :func:`funnelkit.analyses.scorecard.score_deals`) for readers: ``"Amount 30 · Win probability 25"``, each
    dimension by its label in the report language in ``card``, the scorecard the deals were scored
    with (default ``params/scorecard.yaml``); a missing value is returned unchanged."""
    from funnelkit.analyses.scorecard import load_scorecard

    if not isinstance(drivers, str):
        return drivers
    dimensions = (card if card is not None else load_scorecard()).dimensions
    shown = []
    for part in drivers.split("; "):
        key, _, points = part.partition(":")
        label = dimensions[key].label.get(text.language, key) if key in dimensions else key
        shown.append(f"{label} {points}")
    return " · ".join(shown)


def unscored_words(reason: Any, text: Text, name: Any = None, card: Any = None) -> Any:
    """A scorecard's unscored reason (``"missing:win_probability; no_band:amount"``, see
    :func:`funnelkit.analyses.scorecard.unscored_reason`) in the report language, each part from
    ``unscored_<key>`` in text.yaml with the field's label (``name(column, text)``, default
    :func:`field_label` in ``card``, the scorecard that scored); anything else is returned unchanged."""
    if not isinstance(reason, str):
        return reason
    label = name or (lambda column, text: field_label(column, text, card))
    parts = []
    for part in reason.split("; "):
        key, _, column = part.partition(":")
        entry = f"unscored_{key}"
        parts.append(text(entry, field=label(column, text)) if column and entry in text.entries else part)
    return text("clause_sep").join(parts)


def quarantine_words(reason: Any, text: Text, as_of: pd.Timestamp | None = None) -> Any:
    """A quarantine reason (``missing:team``, see :func:`funnelkit.inputs.data.reason`) in the report
    language, from ``quarantine_<key>`` in text.yaml with the column's name for readers; text that
    is not a reason key (e.g. from an older cache) is returned unchanged."""
    from funnelkit.config import load_config
    from funnelkit.inputs.data import QUARANTINE_REASONS, as_of_label, reason_parts

    if not isinstance(reason, str):
        return reason
    key, column = reason_parts(reason)
    if key not in QUARANTINE_REASONS:
        return reason
    values = {"column": field_label(column, text) if column else "",
              "as_of": as_of_label(as_of) if as_of is not None else "",
              "pipelines": text("list_sep").join(load_config().pipelines) if key == "unknown_pipeline" else ""}
    return text(f"quarantine_{key}", **values)
