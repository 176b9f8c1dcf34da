"""Live monitoring of an RL run: one metrics record per step, and the detectors on the curves so far.

A TRL TrainerCallback. Per step it joins TRL's own logged metrics (completions/mean_length, reward, kl, entropy,
clip ratios, learning rate) with what the reward functions recorded (every completion's length and reward, hence the
p90 length and the reward per response-length bucket), appends the record to metrics.jsonl (locally and in the
artifact store), and every `detect_every` steps runs the detectors: a detector that fires raises an alarm once
(a warning and, in Prefect, an event), and with `abort_on` stops training cleanly at that step, saving a checkpoint.
"""

from __future__ import annotations

import time

from transformers import TrainerCallback

from bai_core.rl.config import TrainSettings
from bai_core.rl.metrics import MetricsLog, MonitorHooks, step_record
from bai_core.rl.rewards import RewardRecorder
from bai_core.stability.curves import Curves
from bai_core.stability.detectors import Diagnosis
from bai_core.stability.live import LiveDetectors


class StabilityMonitor(TrainerCallback):
    def __init__(self, settings: TrainSettings, recorder: RewardRecorder, metrics: MetricsLog,
                 hooks: MonitorHooks | None = None):
        self.settings = settings
        self.recorder = recorder
        self.metrics = metrics
        self.hooks = hooks or MonitorHooks()
        self.weights = {name: c.weight for name, c in zip(settings.reward_names, settings.reward)}
        self.live = LiveDetectors(settings.detectors, settings.detect_every)
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
        if step > state.max_steps:  # resumed from the last step's checkpoint, TRL logs one more step it never trains
            return
        recorder = _all_ranks(self.recorder)  # every rank's completions, not just this one's share
        record = step_record(step, logs, recorder, self.weights, self.settings.length_bucket, self._last_seconds)
        record["max_steps"] = state.max_steps  # the plan: `bai diagnose` on this log judges with the run's windows
        self.metrics.append(record)
        self.hooks.on_step(step, state.max_steps, record)
        if step % self.settings.detect_every == 0 or step >= state.max_steps:
            self._check(step, state.max_steps, control)

    def _check(self, step: int, total: int, control) -> None:
        self.live.planned_steps = total
        for alarm in self.live.check(self.curves(), final=True):
            self.hooks.on_alarm(alarm.detector, step, alarm.evidence)
        self.diagnosis = self.live.diagnosis
        aborted = self.aborted
        for detector in self.diagnosis.fired:
            if detector in self.settings.abort_on and aborted is None:
                aborted = (detector, step, self.diagnosis.reason_fired(detector))
        aborted = _rank_zeros(aborted)  # every rank stops at the same step, or one would wait in a collective
        if aborted is not None and self.aborted is None:
            self.aborted = tuple(aborted)
            control.should_training_stop = True
            control.should_save = True  # keep the weights, optimizer and metrics of the step it stopped at

    def curves(self) -> Curves:
        """The curves so far, from the records in memory: no need to read back what was just written."""
        curves = Curves("bai-metrics")
        for record in self.metrics.records:
            curves.add(record)
        return curves

    def diagnose(self, total: int) -> Diagnosis:
        return self.curves().diagnose(self.settings.detectors, planned_steps=total)


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_ranks(recorder: RewardRecorder) -> RewardRecorder:
    """The step's completions on every rank, in rank order (each rank records only those it generated)."""
    if not _distributed():
        return recorder
    import torch.distributed as dist

    shares: list = [None] * dist.get_world_size()
    dist.all_gather_object(shares, (recorder.lengths, recorder.components, recorder.statuses))
    merged = RewardRecorder()
    for lengths, components, statuses in shares:
        merged.lengths += lengths
        merged.statuses += statuses
        for name, values in components.items():
            merged.components.setdefault(name, []).extend(values)
    return merged


def _rank_zeros(decision):
    """Rank 0's decision, on every rank (the detectors read the same gathered curves, but one decides)."""
    if not _distributed():
        return decision
    import torch.distributed as dist

    box = [decision]
    dist.broadcast_object_list(box, src=0)
    return box[0]
