"""A JSON object per line: bai's metrics.jsonl, verl's file logger (`{"step": N, "data": {...}}`), wandb history
(`wandb-history.jsonl`, `run.history()` dumps, `_step` beside `train/global_step`: OpenRLHF's and TRL's)."""

from __future__ import annotations

import json
from pathlib import Path

from bai_core.errors import BaiError
from bai_core.stability.curves import Curves


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def recognises(text: str) -> bool:
    lines = _lines(text)[:20]
    if not lines or not all(line.lstrip().startswith("{") for line in lines):
        return False
    try:
        return isinstance(json.loads(lines[0]), dict)
    except json.JSONDecodeError:
        return False


def _flat(record: dict) -> dict:
    """verl's file logger nests a step's metrics under "data"."""
    if isinstance(record.get("data"), dict):
        return {**record["data"], **{k: v for k, v in record.items() if k != "data"}}
    return record


def read(path: Path, text: str) -> Curves:
    curves = Curves("jsonl")
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) and not text.endswith("\n"):
                break  # a line still being written by the run (bai watch reads growing logs)
            raise BaiError(f"{path}: line {number} is not a JSON object") from None
        if isinstance(record, dict):
            record = _flat(record)
            if curves.format == "jsonl":
                curves.format = ("bai-metrics" if "length/mean" in record else
                                 "verl" if "response_length/mean" in record else
                                 "wandb-history" if "_step" in record else "jsonl")
            curves.add(record)
    return curves
