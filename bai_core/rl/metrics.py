"""The per-step metrics of an RL run (metrics.jsonl) and where the monitor reports. No TRL import: the stage and the
Prefect tasks use these without loading torch; `monitor.py` holds the TRL callback that fills them.

A record: TRL's own metrics renamed (length/mean, length/min, length/max, reward/mean, reward/std,
reward/<component>/mean, kl, entropy, clip_ratio, learning_rate, loss) plus what TRL does not log: length/p90,
how the completions ended, read as the rewards read them (`bai_core.completion`): length/finished_share,
length/open_think_share (stopped inside a think block) and length/truncated_share (cut by max_completion_length;
TRL's completions/clipped_ratio when bai recorded none), reward_by_length/<lo>-<hi> and count_by_length/<lo>-<hi>,
seconds_per_step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bai_core.completion import FINISHED, OPEN_THINK, TRUNCATED
from bai_core.io.atomic import write_atomic
from bai_core.rl.rewards import RewardRecorder

# TRL's name -> ours. TRL logs these for GRPO and RLOO alike (TRL 1.16).
TRL_METRICS = {
    "completions/mean_length": "length/mean",
    "completions/min_length": "length/min",
    "completions/max_length": "length/max",
    "completions/clipped_ratio": "length/truncated_share",
    "reward": "reward/mean",
    "reward_std": "reward/std",
    "kl": "kl",
    "entropy": "entropy",
    "clip_ratio/region_mean": "clip_ratio",
    "learning_rate": "learning_rate",
    "loss": "loss",
}


@dataclass
class MonitorHooks:
    """Where the monitor reports: progress per step, and an alarm when a detector fires (detector, step, evidence)."""

    on_step: Callable[[int, int, dict], None] = lambda step, total, record: None
    on_alarm: Callable[[str, int, dict], None] = lambda detector, step, evidence: None


@dataclass
class MetricsLog:
    """metrics.jsonl: rewritten whole (it is small) after every step, locally and through `upload` to the store,
    so a reader there always sees complete lines up to the last finished step."""

    path: Path
    upload: Callable[[bytes], None] = lambda data: None
    records: list[dict] = field(default_factory=list)

    @classmethod
    def resumed(cls, path: Path, upload: Callable[[bytes], None], earlier: str, up_to_step: int) -> MetricsLog:
        """The log of a run resuming after step `up_to_step`: the earlier log's records up to that step, none after
        (those steps will be trained again), so the file continues with no step missing or twice."""
        records = [json.loads(line) for line in earlier.splitlines() if line.strip()]
        log = cls(path, upload, [r for r in records if r["step"] <= up_to_step])
        log._write()
        return log

    @classmethod
    def following(cls, path: Path, upload: Callable[[bytes], None]) -> MetricsLog:
        """The log the stage's own process started (see `resumed`), continued by rank 0 of a multi-process run."""
        text = path.read_text() if path.exists() else ""
        return cls(path, upload, [json.loads(line) for line in text.splitlines() if line.strip()])

    def append(self, record: dict) -> None:
        self.records = [r for r in self.records if r["step"] < record["step"]] + [record]
        self._write()

    def _write(self) -> None:
        data = "".join(json.dumps(r) + "\n" for r in self.records).encode()
        write_atomic(self.path, data)
        self.upload(data)


def _p90(values: list[int]) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)])


def step_record(step: int, logs: dict, recorder: RewardRecorder, weights: dict[str, float], bucket: int,
                seconds: float | None) -> dict:
    """One step's metrics: TRL's, renamed, plus the per-completion statistics TRL does not log."""
    record: dict = {"step": step}
    for theirs, ours in TRL_METRICS.items():
        if logs.get(theirs) is not None:
            record[ours] = logs[theirs]
    for key, value in logs.items():
        if key.startswith("rewards/") and value is not None:  # rewards/<component>/{mean,std}
            record["reward/" + key.removeprefix("rewards/")] = value
    if recorder.lengths:
        totals = [sum(weights[name] * recorder.components[name][i] for name in recorder.components)
                  for i in range(len(recorder.lengths))]
        record["length/p90"] = _p90(recorder.lengths)
        if recorder.statuses:
            for status in (FINISHED, OPEN_THINK, TRUNCATED):
                record[f"length/{status}_share"] = recorder.statuses.count(status) / len(recorder.statuses)
        buckets: dict[int, list[float]] = {}
        for length, total in zip(recorder.lengths, totals):
            buckets.setdefault(length // bucket, []).append(total)
        for index in sorted(buckets):
            values = buckets[index]
            record[f"reward_by_length/{index * bucket}-{(index + 1) * bucket}"] = sum(values) / len(values)
            record[f"count_by_length/{index * bucket}-{(index + 1) * bucket}"] = len(values)
    if seconds is not None:
        record["seconds_per_step"] = round(seconds, 4)
    return record


def progress_detail(records: list[dict], total: int) -> str:
    """The run so far in a phrase for the progress line: the latest step, and reward, length and KL averaged over the
    last tenth of the run (a single step's mean of a few completions swings too much to read)."""
    if not records:
        return ""
    window = records[-max(1, total // 10):]

    def mean(key: str) -> float | None:
        values = [r[key] for r in window if r.get(key) is not None]
        return sum(values) / len(values) if values else None

    parts = [f"step {records[-1]['step']}/{total}"]
    for key, label, spec in (("reward/mean", "reward", ".3g"), ("length/mean", "length", ".1f"), ("kl", "KL", ".3g")):
        if (value := mean(key)) is not None:
            parts.append(f"{label} {value:{spec}}")
    first = window[0]["step"]
    return ", ".join(parts) + (f" (means of steps {first}-{records[-1]['step']})" if len(window) > 1 else "")
