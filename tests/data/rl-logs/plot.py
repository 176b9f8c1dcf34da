"""The corpus's raw curves, one row of panels per log (length with the clipped share, reward, entropy), per step as
logged: what the labels in labels.toml were decided from, by eye, before any verdict was read.

    python tests/data/rl-logs/plot.py OUT.png [FOLDER ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bai_core.stability.logs import read_log, table

HERE = Path(__file__).parent


def logs() -> list[tuple[Path, str | None]]:
    """Every log of the corpus, and every run of a table that holds several."""
    files = sorted(p for folder in HERE.iterdir() if folder.is_dir() for p in folder.iterdir()
                   if p.name != "SOURCE.md")
    return [(p, run) for p in files
            for run in ((table.runs(p.read_text()) or [None]) if p.suffix == ".csv" else [None])]


def main(out: str) -> None:
    files = logs()
    if len(sys.argv) > 2:  # only the folders named after OUT
        files = [(p, run) for p, run in files if p.parent.name in sys.argv[2:]]
    figure, rows = plt.subplots(len(files), 3, figsize=(15, 2.4 * len(files)), squeeze=False)
    for row, (path, run) in zip(rows, files):
        curves = read_log(path, run=run)
        for axes, name in zip(row, ("length", "reward", "entropy")):
            values = curves.series.get(name)
            points = [(s, v) for s, v in zip(curves.steps, values or []) if v is not None]
            if points:
                axes.plot(*zip(*points), lw=1, marker=".", ms=3)
            else:
                axes.text(0.5, 0.5, "not logged", ha="center", transform=axes.transAxes)
            if name == "length" and "clipped" in curves.series:
                twin = axes.twinx()
                clipped = [(s, v) for s, v in zip(curves.steps, curves.series["clipped"]) if v is not None]
                twin.plot(*zip(*clipped), color="tab:red", lw=0.8, alpha=0.6)
                twin.set_ylim(0, 1.05)
            axes.set_title(f"{path.parent.name}{' ' + run if run else ''}: {name}" + (" (+ clipped share, red)" if name == "length" and
                                                             "clipped" in curves.series else ""), fontsize=8)
            axes.tick_params(labelsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=70)


if __name__ == "__main__":
    main(sys.argv[1])
