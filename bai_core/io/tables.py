"""Rows of results as tables: the column order, a cell as people read it, markdown and CSV. The evaluation stage
writes its scores with them, the reports of comparisons and sweeps their tables."""

from __future__ import annotations

import csv
import io


def columns(rows: list[dict], first: tuple[str, ...]) -> list[str]:
    """`first`, then every other key in the order rows first have it."""
    seen = list(first)
    for row in rows:
        seen += [key for key in row if key not in seen]
    return seen


def cell(value) -> str:
    """Scores (0..1) to 3 decimals, lengths to 1; trailing zeros dropped; n/a for what a row does not have (not
    "-": the Prefect UI renders a lone dash in a table cell as a bullet)."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{3 if abs(value) <= 1 else 1}f}".rstrip("0").rstrip(".")
    return str(value)


def markdown(rows: list[dict], names: list[str]) -> str:
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(cell(row.get(name)) for name in names) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict], names: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
