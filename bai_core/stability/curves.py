"""A run's training curves as the detectors read them, whatever tool wrote the log: one point per logged step,
each metric under one name, whichever of its names the tool used.

Names (first match wins; a `train/` prefix, as wandb and TRL's integrations add it, is ignored):

    step        step, global_step, training/global_step, _step, Step
    length      bai length/mean; TRL completions/mean_length (>= 0.15), completion_length (older); verl
                response_length/mean; OpenRLHF response_length; prime-rl completion_len/mean
    reward      bai reward/mean; TRL reward; verl critic/score/mean (the task's score, before the KL penalty),
                critic/rewards/mean; OpenRLHF reward
    entropy     bai and TRL entropy; verl actor/entropy, actor/entropy_loss (older verl: the mean entropy, named
                for the loss term it feeds); OpenRLHF policy_entropy
    clipped     bai length/truncated_share; TRL completions/clipped_ratio; verl response_length/clip_ratio;
                prime-rl is_truncated/mean; OpenRLHF response_clip_ratio
    terminated  TRL completions/mean_terminated_length: the mean length of completions that finished
    planned     max_steps, total_training_steps: the run's planned length, where a record carries it

A point of a curve is a mean over the step's completions (or over `interval` steps' completions, when a log keeps
one point in `interval`): `completions_per_step` says how many a step has, when the log or the user says.
Pure: no TRL, no Prefect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

STEP_KEYS = ("step", "global_step", "training/global_step", "_step", "Step")
METRICS = {
    "length": ("length/mean", "completions/mean_length", "completion_length", "response_length/mean",
               "response_length", "mean_length", "mean_response_length", "completion_len/mean"),
    "reward": ("reward/mean", "reward", "critic/score/mean", "critic/rewards/mean", "reward_mean", "rewards/mean"),
    "entropy": ("entropy", "actor/entropy", "actor/entropy_loss", "policy_entropy", "entropy/mean"),
    "clipped": ("length/truncated_share", "completions/clipped_ratio", "response_length/clip_ratio",
                "is_truncated/mean", "response_clip_ratio"),
    "terminated": ("completions/mean_terminated_length",),
}
PLANNED_KEYS = ("max_steps", "total_training_steps")
BUCKET_PREFIX = "reward_by_length/"
COUNT_PREFIX = "count_by_length/"  # bai's: the completions behind each bucket's point


@dataclass
class Curves:
    """Per-point series; None where a point's log lacks the value. `series[name]` exists only for the metrics the
    log has."""

    format: str
    steps: list[int] = field(default_factory=list)
    series: dict[str, list[float | None]] = field(default_factory=dict)
    reward_by_length: dict[str, list[float | None]] = field(default_factory=dict)
    count_by_length: dict[str, list[float | None]] = field(default_factory=dict)
    planned_steps: int | None = None  # the run's planned length, where the log says
    completions_per_step: float | None = None  # where the log (or the user) says
    completions_source: str = ""  # where that number came from
    keys_seen: set[str] = field(default_factory=set)  # every metric name met, for "what was found" messages

    @property
    def length(self) -> list[float | None]:
        return self.series.get("length", [None] * len(self.steps))

    @property
    def reward(self) -> list[float | None]:
        return self.series.get("reward", [None] * len(self.steps))

    def add(self, record: dict) -> None:
        """One logged record (a dict of metric name -> value); kept as a point when it has a step and a length,
        reward or entropy (TRL also logs its summary and evaluations into the same history)."""
        record = {_metric_name(key): value for key, value in record.items()}
        self.keys_seen.update(record)
        for key in PLANNED_KEYS:
            if (planned := number(record.get(key))) and planned > 0:
                self.planned_steps = int(planned)
        step = _first(record, STEP_KEYS)
        values = {name: _first(record, keys) for name, keys in METRICS.items()}
        if step is None or all(values[name] is None for name in ("length", "reward", "entropy")):
            return
        if self.steps and step <= self.steps[-1]:
            if step == self.steps[-1]:
                self._merge_into_last(values)  # one step logged in parts (wandb, TensorBoard)
                return
            self._rewind(step)  # a resumed run logs its steps again from its checkpoint: the later log holds
        index = len(self.steps)
        self.steps.append(int(step))
        for name, value in values.items():
            if value is not None and name not in self.series:
                self.series[name] = [None] * index
            if name in self.series:
                self.series[name].append(value)
        for key, value in record.items():
            for prefix, table in ((BUCKET_PREFIX, self.reward_by_length), (COUNT_PREFIX, self.count_by_length)):
                if key.startswith(prefix):
                    table.setdefault(key.removeprefix(prefix), [None] * index).append(number(value))
        self._pad()

    def _pad(self) -> None:
        for series in (*self.series.values(), *self.reward_by_length.values(), *self.count_by_length.values()):
            series.extend([None] * (len(self.steps) - len(series)))

    def _merge_into_last(self, values: dict) -> None:
        for name, value in values.items():
            if value is not None:
                self.series.setdefault(name, [None] * len(self.steps))[-1] = value

    def _rewind(self, step: int) -> None:
        keep = next((i for i, s in enumerate(self.steps) if s >= step), len(self.steps))
        del self.steps[keep:]
        for series in (*self.series.values(), *self.reward_by_length.values(), *self.count_by_length.values()):
            del series[keep:]

    def counts(self) -> list[float | None] | None:
        """The completions behind each point: completions a step x the steps since the previous point (a log that
        keeps one point in 10 steps averages 10 steps' completions); None where not known."""
        if not self.completions_per_step or not self.steps:
            return None
        gaps = [self.steps[0] if self.steps[0] > 0 else 1] + [b - a for a, b in zip(self.steps, self.steps[1:])]
        first_gap = gaps[1] if len(gaps) > 1 else 1  # the first point averages one interval too
        gaps[0] = min(gaps[0], first_gap)
        return [self.completions_per_step * max(1, gap) for gap in gaps]

    def describe(self) -> str:
        """'trl-trainer-state, 40 points over steps 5-200 of a planned 200'."""
        if not self.steps:
            return f"{self.format}, no points"
        plan = f" of a planned {self.planned_steps}" if self.planned_steps else " (planned length unknown)"
        per = (f", {self.completions_per_step:g} completions a step ({self.completions_source})"
               if self.completions_per_step else "")
        return (f"{self.format}, {len(self.steps)} point{'s' if len(self.steps) != 1 else ''} over steps "
                f"{self.steps[0]}-{self.steps[-1]}{plan}{per}")

    def diagnose(self, thresholds=None, planned_steps: int | None = None):
        """Every detector on these curves (`planned_steps` overrides the log's plan)."""
        from bai_core.stability.detectors import DetectorThresholds, diagnose

        return diagnose(self.steps, self.series.get("length"), self.series.get("reward"), self.reward_by_length,
                        thresholds or DetectorThresholds(), planned_steps or self.planned_steps,
                        self.count_by_length or None, entropy=self.series.get("entropy"), counts=self.counts(),
                        clipped=self.series.get("clipped"), terminated=self.series.get("terminated"))


def has_curve_metric(record: dict) -> bool:
    """Whether a record holds a point of a curve (not a run's summary or an evaluation)."""
    names = {_metric_name(key) for key in record}
    return any(name in names for metric in ("length", "reward", "entropy") for name in METRICS[metric])


def _metric_name(key: str) -> str:
    key = str(key).strip()
    return key.removeprefix("train/") if key.startswith("train/") and key != "train/" else key


def number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _first(record: dict, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        if key in record and (value := number(record[key])) is not None:
            return value
    return None
