"""Every number the detectors use, and the windows they judge a run in.

Windows come from the run's planned length when it is known (bai's own runs, `max_steps` in a TRL trainer state,
`total_training_steps` or a progress bar's total in a console log, `--steps`), scaled so a 100-step run is judged
like a 3000-step one at its own scale: early window min(300 steps, 15% of the run), recovery window min(500
steps, 25%). When the plan is not known the absolute defaults hold (300 and 500 steps): a log that stops early is
never judged with a window scaled to where it stopped. Smoothing and the baseline are resolutions of the curve in
hand, so they follow the log: smoothing min(20 steps, span / 40), at least one logging interval; the baseline
(L0, r0, E0) averages max(3 points, the smoothing width, 20% of the early window), cut short where the curve
already falls inside it (see curve.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class DetectorThresholds(BaseModel):
    """The defaults are docs/method.md's reading of the paper's figures (length and reward) and of the entropy
    literature (docs/detectors.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smoothing_steps: int = Field(20, ge=1, description="Moving-average width (steps) for a long run.")
    early_window_steps: int = Field(300, ge=1, description="The early window W for a long run, in steps...")
    early_window_share: float = Field(0.15, gt=0, le=1, description="...or this share of the run, if smaller.")
    recovery_window_steps: int = Field(500, ge=1, description="Collapse: steps allowed to get back, long run...")
    recovery_window_share: float = Field(0.25, gt=0, le=1, description="...or this share of the run, if smaller.")
    baseline_share: float = Field(0.2, gt=0, le=1, description="L0 / r0: mean over this share of the early window.")
    min_points: int = Field(3, ge=3, description="A curve with fewer points cannot be judged (no noise estimate).")
    collapse_ratio: float = Field(0.5, gt=0, lt=1, description="Collapse when length <= this x L0.")
    collapse_recovered_ratio: float = Field(0.8, gt=0, description="Recovered when length >= this x L0 again.")
    truncation_share: float = Field(0.5, gt=0, le=1, description="A length whose start had at least this share of "
                                    "completions cut at the cap falls when fewer are cut, not by collapse; at the "
                                    "end, the length is pinned at the cap.")
    reward_drop_absolute: float = Field(0.15, ge=0, description="A drop this large (absolute) counts...")
    reward_drop_relative: float = Field(0.25, ge=0, description="...and so does one this share of |r0|.")
    reward_regain_share: float = Field(0.5, gt=0, le=1, description="Share of the drop the reward must regain.")
    recovery_descent_ratio: float = Field(3.0, gt=0, description="Recovery at least this many times the descent.")
    entropy_collapse_ratio: float = Field(0.2, gt=0, lt=1, description="Entropy collapse when the entropy falls to "
                                          "<= this x E0...")
    entropy_recovered_ratio: float = Field(0.5, gt=0, description="...and is not back at >= this x E0 by the end.")
    entropy_spike_ratio: float = Field(2.0, gt=1, description="Entropy spike when a point is >= this x the level "
                                       "of the points before it...")
    entropy_spike_points: int = Field(10, ge=3, description="...taken as the median of this many points before it,")
    entropy_spike_length: int = Field(2, ge=1, description="...for this many points in a row (one high reading of "
                                                           "a heavy-tailed curve is noise).")
    min_bucket_points: int = Field(5, ge=2, description="A length bucket with fewer points is not judged...")
    min_bucket_share: float = Field(0.5, ge=0, le=1, description="...nor one present in fewer than this share of "
                                                                 "the steps (a few stray completions are no curve).")
    min_confidence: float = Field(0.99, ge=0, le=1, description="A fall fires only when noise alone makes one "
                                                                 "as deep with a chance below 1 - this.")
    resolve_multiple: float = Field(6.0, gt=0, description="Smoothing widens until a window's standard error is at "
                                                           "most the drop / this.")


@dataclass
class Windows:
    """The windows a verdict was computed with, in steps. `planned`: whether `run_steps` is the run's planned
    length (else the absolute defaults set the early and recovery windows, and `run_steps` is the log's span)."""

    run_steps: int
    planned: bool
    smoothing: int
    early: int
    recovery: int
    baseline: int

    @classmethod
    def for_log(cls, span: int, interval: int, t: DetectorThresholds, planned_steps: int | None = None) -> Windows:
        """`span`: the steps the log covers; `interval`: steps between its points (1 when every step is logged)."""
        if planned_steps:
            early = max(2, min(t.early_window_steps, math.ceil(t.early_window_share * planned_steps)))
            recovery = max(1, min(t.recovery_window_steps, math.ceil(t.recovery_window_share * planned_steps)))
        else:
            early, recovery = t.early_window_steps, t.recovery_window_steps
        smoothing = max(1, interval, min(t.smoothing_steps, span // 40))
        return cls(run_steps=planned_steps or span, planned=bool(planned_steps), smoothing=smoothing, early=early,
                   recovery=recovery, baseline=max(3 * interval, smoothing, math.ceil(t.baseline_share * early)))

    def describe(self) -> str:
        run = (f"a run planned for {steps(self.run_steps)}" if self.planned
               else f"{steps(self.run_steps)} logged, plan unknown: absolute windows")
        return (f"smoothing {steps(self.smoothing)}, baseline {steps(self.baseline)}, early {steps(self.early)}, "
                f"collapse recovery {steps(self.recovery)} ({run})")


def steps(n: int) -> str:
    """'1 step', '30 steps'."""
    return f"{n} step{'' if n == 1 else 's'}"
