"""bai's live stability detectors in your own TRL script: add one callback to a GRPO, RLOO or PPO trainer.

    from bai_core.rl.callback import StabilityCallback

    trainer = GRPOTrainer(..., callbacks=[StabilityCallback(abort_on=["collapse"])])

Every `every` steps it judges the metrics TRL logged so far (length, reward, entropy, the clipped share) with the
run's planned length (`max_steps`), and the completions a step from the trainer's arguments (per-device batch x
processes x gradient accumulation: what one optimizer step of GRPO / RLOO scores). A detector that fires is
logged once as a warning (logger "bai") and handed to `on_alarm`; one named in `abort_on` stops training at that
step with a checkpoint saved, as bai's own train stage does. `callback.diagnosis` holds the latest verdicts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from transformers import TrainerCallback

from bai_core.stability.curves import Curves, has_curve_metric
from bai_core.stability.detectors import DETECTORS, DetectorThresholds
from bai_core.stability.live import Alarm, LiveDetectors

log = logging.getLogger("bai")


class StabilityCallback(TrainerCallback):
    def __init__(self, thresholds: DetectorThresholds | None = None, every: int = 5, abort_on: Iterable[str] = (),
                 on_alarm: Callable[[Alarm], None] | None = None, completions_per_step: float | None = None):
        unknown = {name.replace("-", "_") for name in abort_on} - set(DETECTORS)
        if unknown:
            raise ValueError(f"abort_on {sorted(unknown)}: unknown detector (known: {', '.join(DETECTORS)})")
        self.live = LiveDetectors(thresholds or DetectorThresholds(), every)
        self.abort_on = {name.replace("-", "_") for name in abort_on}
        self.on_alarm = on_alarm or (lambda alarm: None)
        self.completions_per_step = completions_per_step
        self.curves = Curves("trl-callback")
        self.alarms: list[Alarm] = []
        self.aborted: Alarm | None = None

    @property
    def diagnosis(self):
        return self.live.diagnosis

    def on_train_begin(self, args, state, control, **kwargs):
        per_step = self.completions_per_step or (args.per_device_train_batch_size * max(1, args.world_size)
                                                 * args.gradient_accumulation_steps)
        self.curves.completions_per_step = per_step
        self.curves.completions_source = ("given" if self.completions_per_step else
                                          "per-device batch x processes x gradient accumulation")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not has_curve_metric(logs) or state.global_step > state.max_steps:
            return  # a summary or an evaluation, not a training step
        self.curves.add({**logs, "step": state.global_step})
        self.live.planned_steps = state.max_steps
        for alarm in self.live.check(self.curves, final=state.global_step >= state.max_steps):
            self.alarms.append(alarm)
            log.warning("bai: %s", alarm.line())
            self.on_alarm(alarm)
            if alarm.detector in self.abort_on and self.aborted is None:
                self.aborted = alarm
                control.should_training_stop = True
                control.should_save = True  # keep the weights of the step it stopped at
