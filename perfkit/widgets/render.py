"""What panels show as text: tables as HTML, responses as the API's JSON, messages."""
from __future__ import annotations

import html
import json
import math
import numbers

import pandas as pd


#: Table style: numbers right-aligned, a little air between columns.
TABLE_STYLE = ("<style>.perfkit-html-table td, .perfkit-html-table th {text-align: right; padding: 2px 10px}"
               " .perfkit-html-table tbody th {text-align: left}</style>")


def number(value, digits: int = 4) -> str:
    """One format for every number of a table: ``digits`` significant digits, thousands separated, never an
    exponent, blank for NaN: 332,600 beside 1,078 and 12.35 and 0.004719 (not ``3.326e+05``).

    >>> [number(v) for v in (332600.4, 1078.2, 12.345, 0.0047186, float("nan"), 0.0, 4096)]
    ['332,600', '1,078', '12.35', '0.004719', '', '0', '4,096']
    """
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    value = float(value)
    if value != value:
        return ""
    if value == 0 or math.isinf(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{round(value, decimals):,.{decimals}f}"


def _cell(value) -> str:
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return number(value)
    return "" if value is None else str(value)


def styled(frame: pd.DataFrame):
    """``frame`` for a notebook: every number in :func:`number`'s format, blanks where there is no value. The
    HTML ids derive from the table's content (not pandas' random ones) and the plain-text form is the table
    itself (not an object address), so a rerun stores the same output."""
    import hashlib

    from pandas.io.formats.style import Styler

    class Table(Styler):
        def __repr__(self) -> str:
            return self.data.map(_cell).to_string()

    uuid = hashlib.sha1(frame.to_csv().encode()).hexdigest()[:8]
    return Table(frame, uuid=uuid).format(lambda v: html.escape(_cell(v)))


def table_html(frame: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a compact HTML table, numbers in :func:`number`'s one format, blanks for NaN."""
    def fmt(v):
        if isinstance(v, numbers.Number) and not isinstance(v, bool):
            return number(v, digits)
        return html.escape(str(v))
    body = frame.map(fmt) if hasattr(frame, "map") else frame.applymap(fmt)
    return TABLE_STYLE + body.to_html(escape=False, border=0, classes="perfkit-html-table")


def json_text(body) -> str:
    """A response exactly as the API serializes it (indented for reading)."""
    return json.dumps(body, indent=2)


def message_html(text: str, error: bool = True) -> str:
    color = "#b00020" if error else "#1b5e20"
    return f'<div style="color:{color};white-space:pre-wrap">{html.escape(text)}</div>' if text else ""


def warning_html(text: str) -> str:
    """A prominent warning (a configuration that does not fit): bold, on a red band above the results."""
    if not text:
        return ""
    return ('<div class="perfkit-warning" style="background:#fdecea;border-left:6px solid #b00020;color:#b00020;'
            f'font-weight:bold;padding:6px 10px;margin:4px 0;white-space:pre-wrap">{html.escape(text)}</div>')


def mimebundle(widget, name: str) -> dict:
    """What a notebook shows for a panel: its widget, and where widgets cannot render (a notebook opened
    without running it, a static viewer) one line saying how to bring it to life."""
    bundle = widget._repr_mimebundle_()
    bundle["text/plain"] = f"{name}: run this cell (or Run All) to use the panel"
    return bundle
