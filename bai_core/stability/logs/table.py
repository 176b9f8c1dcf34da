"""A CSV with a step column: a wandb export (a chart's CSV names its columns `<run> - <metric>`, with
`<metric>__MIN` / `__MAX` beside them; a history export names them plainly), or any table of per-step metrics.
A file with several runs (a sweep's export) is read for the run asked for, by default the first; the format names it."""

from __future__ import annotations

import csv
from pathlib import Path

from bai_core.errors import BaiError
from bai_core.stability.curves import STEP_KEYS, Curves


def _header(text: str) -> list[str]:
    first = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    return [name.strip().strip('"') for name in next(csv.reader([first]))] if first else []


def recognises(text: str) -> bool:
    header = _header(text)
    return len(header) >= 2 and any(name in STEP_KEYS or name.endswith("global_step") for name in header)


RUN_KEYS = ("run_name", "run", "name", "run_id")


def runs(text: str) -> list[str]:
    """The runs a table holds (empty for one unnamed run)."""
    return _runs(list(csv.DictReader(text.lstrip("\ufeff").splitlines())))


def _runs(rows: list[dict]) -> list[str]:
    """The runs of parsed rows: a long table's run column, or a wide one's `<run> - <metric>` prefixes."""
    if not rows:
        return []
    if {"metric", "value"} <= set(rows[0]):
        run_key = next((key for key in RUN_KEYS if key in rows[0]), None)
        return list(dict.fromkeys(row[run_key] for row in rows)) if run_key else []
    return list(dict.fromkeys(key.rsplit(" - ", 1)[0].strip() for key in rows[0] if key and " - " in key))


def _pick(path: Path, runs: list[str], run: str | None) -> str | None:
    if run is None:
        return runs[0] if runs else None
    if run not in runs:
        raise BaiError(f"{path}: no run {run!r} in it (runs: {', '.join(runs) or 'one, unnamed'})")
    return run


def read(path: Path, text: str, run: str | None = None) -> Curves:
    try:
        rows = list(csv.DictReader(text.lstrip("\ufeff").splitlines()))
    except csv.Error as e:
        raise BaiError(f"{path}: not a CSV file ({e})") from None
    if rows and {"metric", "value"} <= set(rows[0]) and any(key in rows[0] for key in STEP_KEYS):
        return _long(path, rows, run)
    found = _runs(rows)
    chosen = _pick(path, found, run)
    curves = Curves("csv" if len(found) <= 1 else f"csv, run {chosen!r} of {len(found)} in the file")
    for row in rows:
        record = {}
        for key, value in row.items():
            if not key or value in (None, ""):
                continue
            owner, _, metric = key.rpartition(" - ")
            if owner and owner.strip() != chosen:
                continue
            metric = metric.strip()
            if not metric.endswith(("__MIN", "__MAX")):
                record[metric] = value
        curves.add(record)
    return curves


def _long(path: Path, rows: list[dict], run: str | None) -> Curves:
    """A long table (a row per step and metric: `step,metric,value`, maybe with a run column), as a pull of wandb's
    history with pandas' melt leaves it: pivoted to a record per step, for the first run in it."""
    step_key = next(key for key in STEP_KEYS if key in rows[0])
    run_key = next((key for key in RUN_KEYS if key in rows[0]), None)
    found = _runs(rows)
    chosen = _pick(path, found, run)
    by_step: dict[float, dict] = {}
    for row in rows:
        if run_key and row[run_key] != chosen:
            continue
        try:
            step = float(row[step_key])
        except (TypeError, ValueError):
            continue
        by_step.setdefault(step, {"step": step})[row["metric"]] = row["value"]
    curves = Curves("csv (long: step, metric, value)" if len(found) <= 1
                    else f"csv (long), run {chosen!r} of {len(found)} in the file")
    for step in sorted(by_step):
        curves.add(by_step[step])
    return curves
