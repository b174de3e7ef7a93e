"""The self-contained index.html: header, tables, plots embedded as data: URIs, inline CSS."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from pqcompress.report.table_format import Table

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --head: #f6f8fa; --bad: #b42318; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 1.5rem 2rem 4rem; max-width: 1200px; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.5rem; border-bottom: 1px solid var(--line); }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
nav ul { columns: 2; padding-left: 1.2rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .85rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: .25rem .55rem; text-align: right;
         white-space: nowrap; }
th { background: var(--head); position: sticky; top: 0; }
td.text { text-align: left; white-space: normal; min-width: 12rem; }
tr:nth-child(even) td { background: #fbfcfd; }
td.failed, .bad { color: var(--bad); font-weight: 600; }
ul.notes { color: var(--muted); font-size: .85rem; }
.files { font-size: .8rem; color: var(--muted); }
figure { margin: 1.5rem 0 2.5rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .9rem; max-width: 60rem; }
"""

TEXT_COLUMNS = {"params", "error", "run"}


@dataclass(frozen=True)
class Plot:
    """A rendered plot: its files (PNG first), a title and how to read it."""

    name: str
    title: str
    caption: str
    files: tuple[Path, ...]


def data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".svg": "image/svg+xml"}[path.suffix]
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _table_html(table: Table) -> str:
    text_cols = {i for i, h in enumerate(table.header) if h in TEXT_COLUMNS}
    head = "".join(f"<th>{escape(h)}</th>" for h in table.header)
    rows = []
    for row in table.body:
        cells = []
        for i, c in enumerate(row):
            cls = ["text"] if i in text_cols else []
            if c == "failed":
                cls.append("failed")
            attr = f' class="{" ".join(cls)}"' if cls else ""
            cells.append(f"<td{attr}>{escape(c)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        if table.body
        else "<p>(no rows)</p>"
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in table.notes)
    files = " · ".join(
        f'<a href="{table.name}.{ext}">{ext.upper()}</a>' for ext in ("md", "csv", "json")
    )
    return (
        f'<section id="{table.name}"><h2>{escape(table.title)}</h2>{body}'
        f'<ul class="notes">{notes}</ul><p class="files">files: {files}</p></section>'
    )


def _plot_html(plot: Plot) -> str:
    png = plot.files[0]
    links = " · ".join(f'<a href="{f.name}">{f.suffix[1:].upper()}</a>' for f in plot.files)
    return (
        f'<section id="{plot.name}"><h2>{escape(plot.title)}</h2><figure>'
        f'<img src="{data_uri(png)}" alt="{escape(plot.title)}">'
        f'<figcaption>{escape(plot.caption)} <span class="files">files: {links}</span>'
        "</figcaption></figure></section>"
    )


def render(
    title: str,
    meta: Sequence[tuple[str, str]],
    tables: Sequence[Table],
    plots: Sequence[Plot],
    skipped: Sequence[str],
) -> str:
    """The whole page; images are embedded, so the file works alone when copied."""
    toc = [(t.name, t.title) for t in tables] + [(p.name, p.title) for p in plots]
    if skipped:
        toc.append(("skipped", "Plots left out"))
    meta_html = "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in meta)
    nav = "".join(f'<li><a href="#{n}">{escape(t)}</a></li>' for n, t in toc)
    skipped_html = (
        '<section id="skipped"><h2>Plots left out</h2><ul class="notes">'
        + "".join(f"<li>{escape(s)}</li>" for s in skipped)
        + "</ul></section>"
        if skipped
        else ""
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{escape(title)}</h1><dl class="meta">{meta_html}</dl></header>'
        f"<nav><ul>{nav}</ul></nav>"
        + "".join(_table_html(t) for t in tables)
        + "".join(_plot_html(p) for p in plots)
        + skipped_html
        + "</body></html>\n"
    )
