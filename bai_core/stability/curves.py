"""Training curves from any RL run's log, for the detectors: ours, TRL's, verl's, or a wandb CSV export.

    metrics.jsonl (bai)        {"step": 3, "length/mean": 41.2, "reward/mean": 0.12, "reward_by_length/32-48": ...}
    trainer_state.json (TRL)   {"log_history": [{"step": 3, "completions/mean_length": ..., "reward": ...}, ...]}
    verl (file logger, wandb)  {"step": 3, "data": {"response_length/mean": ..., "critic/score/mean": ...}} or flat
    CSV                        a header with a step column and length / reward columns (any of the names below)

The format is recognised from the content, not the file name. Pure: no TRL, no Prefect.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from bai_core.errors import BaiError

# Metric names per stack, first match wins. bai's own first, then TRL (GRPO/RLOO, old and new), then verl.
STEP_KEYS = ("step", "global_step", "_step", "training/global_step", "Step")
LENGTH_KEYS = ("length/mean", "completions/mean_length", "completion_length", "response_length/mean",
               "length", "mean_length", "response_length")
REWARD_KEYS = ("reward/mean", "reward", "critic/score/mean", "critic/rewards/mean", "reward_mean", "score")
BUCKET_PREFIX = "reward_by_length/"
COUNT_PREFIX = "count_by_length/"  # bai's: the completions behind each bucket's point


@dataclass
class Curves:
    """Per-step series; None where a step's log lacks the value (e.g. an evaluation-only log line)."""

    format: str
    steps: list[int] = field(default_factory=list)
    length: list[float | None] = field(default_factory=list)
    reward: list[float | None] = field(default_factory=list)
    reward_by_length: dict[str, list[float | None]] = field(default_factory=dict)
    count_by_length: dict[str, list[float | None]] = field(default_factory=dict)

    def diagnose(self, thresholds=None, run_steps: int | None = None):
        """Both detectors on these curves (with the counts, where the log has them)."""
        from bai_core.stability.detectors import DetectorThresholds, diagnose

        return diagnose(self.steps, self.length, self.reward, self.reward_by_length,
                        thresholds or DetectorThresholds(), run_steps, self.count_by_length or None)

    def add(self, record: dict) -> None:
        step = _first(record, STEP_KEYS)
        length, reward = _first(record, LENGTH_KEYS), _first(record, REWARD_KEYS)
        if step is None or (length is None and reward is None):
            return  # not a training step (TRL also logs the run's summary and evaluations into log_history)
        index = len(self.steps)
        self.steps.append(int(step))
        self.length.append(length)
        self.reward.append(reward)
        for key, value in record.items():
            for prefix, table in ((BUCKET_PREFIX, self.reward_by_length), (COUNT_PREFIX, self.count_by_length)):
                if key.startswith(prefix):
                    table.setdefault(key.removeprefix(prefix), [None] * index).append(_number(value))
        for series in (*self.reward_by_length.values(), *self.count_by_length.values()):
            series.extend([None] * (index + 1 - len(series)))


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _first(record: dict, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        if key in record and (value := _number(record[key])) is not None:
            return value
    return None


def _flat(record: dict) -> dict:
    """verl's file logger nests a step's metrics under "data"."""
    if isinstance(record.get("data"), dict):
        return {**record["data"], **{k: v for k, v in record.items() if k != "data"}}
    return record


def read_curves(path: Path) -> Curves:
    """The length and reward curves in `path`; a one-line BaiError naming the file if it has none."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BaiError(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise BaiError(f"{path}: cannot read it as a text log ({type(e).__name__})") from None
    stripped = text.lstrip()
    if stripped.startswith("{") and '"log_history"' in stripped[:200_000]:
        curves = _trainer_state(path, text)
    elif stripped.startswith("{"):
        curves = _jsonl(path, text)
    else:
        curves = _csv(path, text)
    if not curves.steps:
        raise BaiError(f"{path}: no training steps with a response length or reward in it (looked for a step "
                       f"and one of {', '.join(LENGTH_KEYS[:4])} / {', '.join(REWARD_KEYS[:3])})")
    return curves


def _trainer_state(path: Path, text: str) -> Curves:
    try:
        state = json.loads(text)
    except json.JSONDecodeError as e:
        raise BaiError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    curves = Curves("trl-trainer-state")
    for record in state.get("log_history") or []:
        if isinstance(record, dict):
            curves.add(record)
    return curves


def _jsonl(path: Path, text: str) -> Curves:
    curves = Curves("jsonl")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise BaiError(f"{path}: line {number} is not a JSON object") from None
        if isinstance(record, dict):
            record = _flat(record)
            curves.format = ("bai-metrics" if "length/mean" in record else
                             "verl" if "response_length/mean" in record else curves.format)
            curves.add(record)
    return curves


def _csv(path: Path, text: str) -> Curves:
    try:
        rows = list(csv.DictReader(text.splitlines()))
    except csv.Error as e:
        raise BaiError(f"{path}: not a CSV file ({e})") from None
    if not rows or not any(key in rows[0] for key in STEP_KEYS):
        raise BaiError(f"{path}: not a log this reads (a TRL trainer_state.json, a JSONL metrics log, or a CSV with a "
                       f"step column and length / reward columns)")
    curves = Curves("csv")
    for row in rows:
        # wandb exports name columns "<run> - response_length/mean"; keep the metric part.
        curves.add({key.rsplit(" - ", 1)[-1].strip(): value for key, value in row.items() if key})
    return curves
