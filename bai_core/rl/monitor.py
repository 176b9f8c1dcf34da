"""Live monitoring of an RL run: one metrics record per step, and the detectors on the curves so far.

A TRL TrainerCallback. Per step it joins TRL's own logged metrics (completions/mean_length, reward, kl, entropy,
clip ratios, learning rate) with what the reward functions recorded (every completion's length and reward, hence the
p90 length and the reward per response-length bucket), appends the record to metrics.jsonl (locally and in the
artifact store), and every `detect_every` steps runs the detectors: a detector that fires raises an alarm once
(a warning and, in Prefect, an event), and with `abort_on` stops training cleanly at that step, saving a checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainerCallback

from bai_core.config import TrainSettings
from bai_core.io.atomic import write_atomic
from bai_core.rl.curves import read_curves
from bai_core.rl.detectors import Diagnosis, diagnose
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
DETECTOR_EVENTS = {"collapse": "bai.stability.collapse", "hockey_stick": "bai.stability.hockey-stick"}


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


class StabilityMonitor(TrainerCallback):
    def __init__(self, settings: TrainSettings, recorder: RewardRecorder, metrics: MetricsLog,
                 hooks: MonitorHooks | None = None):
        self.settings = settings
        self.recorder = recorder
        self.metrics = metrics
        self.hooks = hooks or MonitorHooks()
        self.weights = {c.name: c.weight for c in settings.reward}
        self.alarmed: set[str] = set()
        self.aborted: tuple[str, int, str] | None = None  # detector, step, reason
        self.diagnosis: Diagnosis | None = None
        self._step_started: float | None = None
        self._last_seconds: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_started is not None:
            self._last_seconds = time.perf_counter() - self._step_started

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "reward" not in logs and "completions/mean_length" not in logs:
            return  # the end-of-training summary, not a step
        step = state.global_step
        record = step_record(step, logs, self.recorder, self.weights, self.settings.length_bucket, self._last_seconds)
        self.metrics.append(record)
        self.hooks.on_step(step, state.max_steps, record)
        if step % self.settings.detect_every == 0 or step >= state.max_steps:
            self._check(step, state.max_steps, control)

    def _check(self, step: int, total: int, control) -> None:
        self.diagnosis = self.diagnose(total)
        evidence = self.diagnosis.to_json()
        for detector in self.diagnosis.fired:
            if detector not in self.alarmed:
                self.alarmed.add(detector)
                key = "sequence_length_collapse" if detector == "collapse" else "reward_hockey_stick"
                self.hooks.on_alarm(detector, step, evidence[key])
            if detector in self.settings.abort_on and self.aborted is None:
                verdict = (self.diagnosis.sequence_length_collapse if detector == "collapse"
                           else self.diagnosis.reward_hockey_stick)
                self.aborted = (detector, step, verdict.reason or "fired in a length bucket")
                control.should_training_stop = True
                control.should_save = True  # keep the weights, optimizer and metrics of the step it stopped at

    def diagnose(self, total: int) -> Diagnosis:
        curves = read_curves(self.metrics.path)
        return diagnose(curves.steps, curves.length, curves.reward, curves.reward_by_length,
                        self.settings.detectors, run_steps=total)
