"""The report as a document (sections of paragraphs, notes, tables, figures) and its two renderings:
a self-contained index.html (inline style, relative image paths, no scripts) and report.md.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Union


@dataclass
class Table:
    columns: list
    rows: list  # list of lists of cells (already formatted, or plain numbers/strings)
    caption: str = ""


@dataclass
class Figure:
    src: str  # path relative to the report folder
    caption: str
    wide: bool = False  # the full width of the page rather than half


@dataclass
class Links:
    """A table cell of links: [(text, href relative to the report folder)]."""

    items: list

    def __str__(self) -> str:
        return " ".join(text for text, _ in self.items) or "-"


@dataclass
class Tables:
    """Tables shown side by side (they wrap on a narrow page)."""

    items: list


@dataclass
class Note:
    """Something missing or to watch out for, and why."""

    text: str


Block = Union[str, Table, Tables, Figure, Note]


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks: Block) -> "Section":
        self.blocks.extend(blocks)
        return self


def png_width(path) -> int:
    """Pixel width from a PNG header (0 if unreadable): wide figures get the full page width."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
        return int.from_bytes(head[16:20], "big") if head[:8] == b"\x89PNG\r\n\x1a\n" else 0
    except OSError:
        return 0


STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2329;
margin:0;background:#f5f6f8}
header{background:#20303f;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px;font-size:24px}header p{margin:0;color:#c9d3dc;font-size:13px}
nav{background:#fff;border-bottom:1px solid #dde1e6;padding:8px 32px;position:sticky;top:0;z-index:2}
nav a{margin-right:16px;color:#20609f;text-decoration:none;font-size:14px}
nav a:hover{text-decoration:underline}
main{max-width:1280px;margin:0 auto;padding:8px 32px 48px}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:4px 24px 18px;margin:18px 0}
h2{font-size:20px;border-bottom:2px solid #e6e9ed;padding-bottom:6px}
table{border-collapse:collapse;margin:10px 0 16px;font-size:13px;display:block;overflow-x:auto;max-width:100%}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0;color:#3b4752;white-space:nowrap}
th,td{border:1px solid #e0e4e8;padding:4px 7px;text-align:right;vertical-align:top}
td{max-width:460px}td.word{text-align:left;white-space:nowrap}
td.text{text-align:left;font-size:12px;color:#3b4752;min-width:220px}
th{background:#eef1f4;font-weight:600}td:first-child,th:first-child{text-align:left}
tr:nth-child(even) td{background:#fafbfc}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:8px 12px;margin:10px 0;font-size:14px}
.figs{display:flex;flex-wrap:wrap;gap:16px}
.tables{display:flex;flex-wrap:wrap;gap:0 28px;align-items:flex-start}
figure{margin:8px 0;flex:0 1 calc(50% - 8px);min-width:420px}figure.wide{flex-basis:100%}
figure img{max-width:100%;height:auto;border:1px solid #e6e9ed;border-radius:4px;background:#fff}
figcaption{font-size:13px;color:#56626d;margin-top:4px}
code{background:#eef1f4;padding:1px 4px;border-radius:3px;font-size:13px}
"""


def _cell(v) -> str:
    return "" if v is None else str(v)


NUMERIC = re.compile(r"^[-+]?[\d,.]+(e[-+]?\d+)?(\s*±\s*[\d,.]+)?( / \d+)?$|^-$|^n/a$")


def _td(v) -> str:
    if isinstance(v, Links):
        body = " ".join(f'<a href="{html.escape(href)}">{html.escape(text)}</a>' for text, href in v.items) or "-"
        return f'<td class="word">{body}</td>'
    text = _cell(v)
    if len(text) > 40:  # long prose (hyper-parameters, paths) wraps, left-aligned
        cls = ' class="text"'
    else:
        cls = "" if NUMERIC.match(text.replace("\u00a0", " ")) else ' class="word"'
    return f"<td{cls}>{html.escape(text)}</td>"


def _html_table(t: Table) -> str:
    cap = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    head = "".join(f"<th>{html.escape(_cell(c))}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in t.rows)
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_blocks(blocks: list) -> list[str]:
    out, figs = [], []

    def flush():
        if figs:
            out.append('<div class="figs">' + "".join(figs) + "</div>")
            figs.clear()

    for b in blocks:
        if isinstance(b, Figure):
            cls = ' class="wide"' if b.wide else ""
            figs.append(f'<figure{cls}><a href="{html.escape(b.src)}"><img src="{html.escape(b.src)}" '
                        f'alt="{html.escape(b.caption)}" loading="eager"></a>'
                        f"<figcaption>{html.escape(b.caption)}</figcaption></figure>")
            continue
        flush()
        if isinstance(b, Table):
            out.append(_html_table(b))
        elif isinstance(b, Tables):
            out.append('<div class="tables">' + "".join(_html_table(t) for t in b.items) + "</div>")
        elif isinstance(b, Note):
            out.append(f'<div class="note">{html.escape(b.text)}</div>')
        else:
            out.append(f"<p>{html.escape(b)}</p>")
    flush()
    return out


def render_html(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole page: inline style, a navigation bar, one <section> per section."""
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>'
                   f'{"".join(_html_blocks(s.blocks))}</section>' for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body><header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
            f"<nav>{nav}</nav><main>{body}</main></body></html>\n")


def _md_cell(v) -> str:
    if isinstance(v, Links):
        return " ".join(f"[{text}](<{href}>)" for text, href in v.items) or "-"
    return _cell(v).replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> str:
    lines = [f"**{t.caption}**", ""] if t.caption else []
    lines.append("| " + " | ".join(_md_cell(c) for c in t.columns) + " |")
    lines.append("|" + "|".join("---" for _ in t.columns) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def render_markdown(title: str, subtitle: str, sections: list[Section]) -> str:
    """The same document as GitHub-flavoured markdown, images linked relative to the report folder."""
    parts = [f"# {title}", "", subtitle, ""]
    for s in sections:
        parts += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Table):
                parts.append(_md_table(b))
            elif isinstance(b, Tables):
                parts.append("\n\n".join(_md_table(t) for t in b.items))
            elif isinstance(b, Figure):
                parts.append(f"![{b.caption}]({b.src})\n\n*{b.caption}*")
            elif isinstance(b, Note):
                parts.append(f"> **Note:** {b.text}")
            else:
                parts.append(b)
            parts.append("")
    return "\n".join(parts)
