"""Plain aligned text tables and short numbers, for what the commands print."""

from __future__ import annotations


def table(headers: list, rows: list) -> str:
    """A plain aligned table: numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(r[i]) for r in cells[1:]) and len(cells) > 1 for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip()
             for r in cells]
    return "\n".join(lines)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return s == "-"


def fmt(v) -> str:
    """A float in 4 significant digits (3 for very small or large ones); anything else as str()."""
    if isinstance(v, bool) or not isinstance(v, float):
        return str(v)
    return f"{v:.3g}" if abs(v) < 0.01 or abs(v) >= 1000 else f"{v:.4g}"
