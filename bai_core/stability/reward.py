"""The Reward Hockey Stick: reward drops early (>= `reward_drop_absolute` or >= `reward_drop_relative` of |r0|),
later regains >= `reward_regain_share` of the drop, and that recovery takes >= `recovery_descent_ratio` times as
long as the descent. Checked on the run's reward and on the reward of each response-length bucket (the paper's
Figure 2).

Descent and recovery are timed at the same level, halfway between the start and the minimum (our reading of the
figures), from the dip's bottom: the first step the smoothed curve comes within 10% of the drop of its minimum.
descent = from the last crossing of the level before the bottom to the bottom; recovery = from the bottom to the
first crossing after it that holds for a smoothing width. A V-shaped dip has a ratio near 1; a hockey stick's is
large. A descent shorter than the smoothing width counts as that width (the curve cannot time it more finely).
Timing from the bottom's start rather than the minimum itself, and a crossing that holds, keep the times from
swinging with where noise puts the minimum on a flat bottom, or with one noisy point above the level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bai_core.stability.curve import Curve, below
from bai_core.stability.thresholds import DetectorThresholds
from bai_core.stability.thresholds import steps as n_steps

BOTTOM_SHARE = 0.1  # the dip's bottom starts where the curve is within this share of the drop of its minimum


@dataclass
class HockeyStickVerdict:
    detected: bool
    judged: bool = True  # False: cannot judge (too few points, or no reward logged); `reason` says which
    r0: float | None = None
    baseline_points: int | None = None
    minimum: float | None = None
    minimum_step: int | None = None
    drop: float | None = None  # absolute
    drop_share: float | None = None  # of |r0|
    recovered: bool | None = None
    recovered_at: int | None = None  # first step back at (or above) the half-drop level
    descent_steps: int | None = None
    recovery_steps: int | None = None
    final: float | None = None
    confidence: float | None = None  # 1 - p that noise made the drop (after the windows scanned)
    samples_at_start: int | None = None  # completions (or points, where unknown) behind r0, and at the minimum
    samples_at_minimum: int | None = None
    samples_unit: str = "completions"  # "points" where the log does not say how many completions a point holds
    noise: float | None = None  # per completion (or per point)
    smoothing_steps: int | None = None  # the window, widened to resolve the drop
    enough_samples: bool = True  # False: the widest window cannot tell this drop from noise
    reason: str = ""


def _first_holding(steps: np.ndarray, above: np.ndarray, after: int, width: int) -> int | None:
    """The first point after `after` that is above the level and stays so for `width` steps (or to the end)."""
    for i in np.flatnonzero(above[after + 1:]) + after + 1:
        end = int(np.searchsorted(steps, steps[i] + width, side="left"))
        if above[i:end].all():
            return int(i)
    return None


def _with(verdict, reason: str):
    verdict.reason = reason
    return verdict


def counting_drop(t: DetectorThresholds, r0: float) -> float:
    """The smallest drop that counts from a start of r0."""
    return min(t.reward_drop_absolute, t.reward_drop_relative * abs(r0)) if r0 else t.reward_drop_absolute


def detect_hockey_stick(steps, rewards, t: DetectorThresholds = DetectorThresholds(),
                        planned_steps: int | None = None, counts=None) -> HockeyStickVerdict:
    """Reward Hockey Stick on one curve. `counts`: the completions behind each point, when known."""
    if rewards is None or not np.isfinite(np.asarray(rewards, dtype=float)).any():
        return HockeyStickVerdict(False, judged=False, reason="no reward in this log")
    curve = Curve(steps, rewards, counts, t, planned_steps,
                  shifts=lambda start, later: abs(start - later) >= counting_drop(t, start))
    steps = curve.steps
    if not curve.judgeable:
        return HockeyStickVerdict(False, judged=False, reason=f"too few points ({len(steps)} < {t.min_points})")
    r0, early_index = curve.start, np.flatnonzero(curve.early)
    drop = curve.resolve(lambda: r0 - float(curve.smoothed[early_index].min()))
    smoothed = curve.smoothed
    low = int(early_index[np.argmin(smoothed[early_index])])
    verdict = HockeyStickVerdict(False, r0=round(r0, 4), baseline_points=curve.baseline_points,
                                 minimum=round(float(smoothed[low]), 4), minimum_step=int(steps[low]),
                                 drop=round(drop, 4), drop_share=round(drop / abs(r0), 4) if r0 else None,
                                 final=round(float(smoothed[-1]), 4), samples_at_start=int(curve.start_samples),
                                 samples_at_minimum=int(curve.samples[low]),
                                 samples_unit="completions" if curve.counts_known else "points",
                                 noise=round(curve.noise, 4), smoothing_steps=curve.width)
    big = drop >= t.reward_drop_absolute or (r0 != 0 and drop >= t.reward_drop_relative * abs(r0))
    if drop <= 0 or not big:
        return _with(verdict, f"no early drop of >= {t.reward_drop_absolute:g} or "
                              f">= {t.reward_drop_relative:.0%} of r0 in the first {curve.windows.early} steps")
    verdict.confidence = curve.confidence(drop)
    if verdict.confidence < t.min_confidence:
        # Too sparse when even the widest window could not tell the larger drop that counts from noise.
        counting = max(t.reward_drop_absolute, t.reward_drop_relative * abs(r0))
        if not curve.could_tell(counting):
            verdict.enough_samples = False
            return _with(verdict, f"not enough samples: ~{curve.samples_text(curve.samples_per_step * curve.widest)} "
                                  f"in the widest window ({n_steps(curve.widest)}) cannot tell a drop of {counting:.3g} "
                                  f"from noise of {curve.noise:.3g} each")
        return _with(verdict, f"the early drop ({drop:.3g}) is within the noise (confidence "
                              f"{below(verdict.confidence, t.min_confidence)})")
    level = float(smoothed[low]) + t.reward_regain_share * drop
    bottom = int(np.flatnonzero(smoothed <= smoothed[low] + BOTTOM_SHARE * drop)[0])
    before = np.flatnonzero((steps < steps[bottom]) & (smoothed >= level))
    verdict.descent_steps = max(1, int(steps[bottom] - (steps[before[-1]] if len(before) else steps[0])))
    back = _first_holding(steps, smoothed >= level, bottom, curve.width)
    if back is None:
        verdict.recovered = False
        return _with(verdict, f"reward dropped by {drop:.3g} from {r0:.3g} by step {verdict.minimum_step} and has "
                              f"not regained {t.reward_regain_share:.0%} of it by the end of the log (a drop, not "
                              f"yet a hockey stick)")
    verdict.recovered, verdict.recovered_at = True, int(steps[back])
    verdict.recovery_steps = int(steps[back] - steps[bottom])
    # Times shorter than the smoothing width are below what the smoothed curve resolves: a one-step spike has no
    # measurable descent, so its "recovery ratio" would be noise.
    if verdict.recovery_steps < t.recovery_descent_ratio * max(verdict.descent_steps, curve.width):
        return _with(verdict, f"reward dipped and recovered about as fast as it fell "
                              f"({verdict.recovery_steps} vs {n_steps(verdict.descent_steps)})")
    verdict.detected = True
    verdict.reason = (f"reward fell {drop:.3g} from {r0:.3g} in {n_steps(verdict.descent_steps)} (minimum at step "
                      f"{verdict.minimum_step}) and took {n_steps(verdict.recovery_steps)} to regain "
                      f"{t.reward_regain_share:.0%} of it (confidence {verdict.confidence:.3f}, "
                      f"{curve.samples_text(verdict.samples_at_minimum)} at the minimum)")
    return verdict
