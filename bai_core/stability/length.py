"""Sequence Length Collapse, told apart from the length cap.

Collapse: the smoothed mean response length falls to <= `collapse_ratio` x L0 within the early window, with
confidence >= `min_confidence` that noise did not make the fall, and does not get back to >=
`collapse_recovered_ratio` x L0 within the recovery window (or by the end of the log: then it is reported as
collapsed and not recovered by the end of the log).

The cap (`max_completion_length`) moves the mean length too. Where the log says how completions ended:
- with the mean length of the completions that finished (TRL's `completions/mean_terminated_length`), a fall of
  the mean that the finished completions do not share is fewer completions being cut, not collapse;
- with only the share cut at the cap (TRL's `completions/clipped_ratio`, verl's `response_length/clip_ratio`), a
  fall from a start where at least `truncation_share` of completions were cut, while that share falls by half or
  more, is read the same way;
- a share cut at the cap of at least `truncation_share` at the end says the length is pinned at the cap.
The verdict's `cause` says which ("collapse" or "truncation").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bai_core.stability.curve import Curve, below, clean
from bai_core.stability.thresholds import DetectorThresholds


@dataclass
class CollapseVerdict:
    detected: bool
    judged: bool = True  # False: cannot judge (too few points, or no length logged); `reason` says which
    L0: float | None = None
    baseline_points: int | None = None  # the points L0 averages (cut before a fall inside the baseline window)
    minimum: float | None = None
    minimum_step: int | None = None
    drop: float | None = None  # share of L0 lost at the minimum
    below_half_at: int | None = None  # first step at <= collapse_ratio x L0 in the early window, confident or not
    collapsed_at: int | None = None  # the same step, when the fall is confidently not noise
    recovered: bool | None = None
    recovered_at: int | None = None
    descent_steps: int | None = None
    recovery_steps: int | None = None
    final: float | None = None
    trend_per_100_steps: float | None = None  # slope of a line through the whole (smoothed) curve
    confidence: float | None = None  # 1 - p that noise made the fall
    smoothing_steps: int | None = None
    cause: str | None = None  # where the length fell: "collapse", or "truncation" (fewer completions cut at the cap)
    clipped_start: float | None = None  # share of completions cut at the cap: at the start, at the end
    clipped_end: float | None = None
    at_cap: bool | None = None  # the end's clipped share >= truncation_share
    terminated_L0: float | None = None  # the finished completions' mean length: at the start, at its minimum
    terminated_minimum: float | None = None
    reason: str = ""


def _level(steps, values, at: np.ndarray) -> float | None:
    """The mean of a side series (logged at the same steps as the length) at the steps `at`."""
    steps, values, _ = clean(steps, values)
    keep = np.isin(steps, at)
    return round(float(values[keep].mean()), 4) if keep.any() else None


def ratio_shift(ratio: float):
    """A change counts when the later level is <= `ratio` x the start, or >= the start / `ratio`."""
    return lambda start, later: later <= ratio * start or later * ratio >= start


def _cannot(reason: str) -> CollapseVerdict:
    return CollapseVerdict(False, judged=False, reason=reason)


def detect_collapse(steps, lengths, t: DetectorThresholds = DetectorThresholds(), planned_steps: int | None = None,
                    counts=None, clipped=None, terminated=None) -> CollapseVerdict:
    """Sequence Length Collapse on one curve. `planned_steps`: the run's planned length, when known; `counts`:
    completions behind each point; `clipped` / `terminated`: the share cut at the cap and the finished
    completions' mean length per point, where the log has them."""
    raw_steps = steps
    if lengths is None or not np.isfinite(np.asarray(lengths, dtype=float)).any():
        return _cannot("no response length in this log")
    curve = Curve(steps, lengths, counts, t, planned_steps, shifts=ratio_shift(1 - (1 - t.collapse_ratio) / 2))
    if not curve.judgeable:
        verdict = _cannot(f"too few points ({len(curve.steps)} < {t.min_points})")
        verdict.final = round(float(curve.values[-1]), 3) if len(curve.values) else None
        return verdict
    steps, L0, w, early = curve.steps, curve.start, curve.windows, curve.early
    curve.resolve(lambda: L0 - float(curve.smoothed[early].min()))
    smoothed = curve.smoothed
    low = int(np.argmin(smoothed))
    slope = float(np.polyfit(steps, smoothed, 1)[0] * 100)
    verdict = CollapseVerdict(False, L0=round(L0, 3), baseline_points=curve.baseline_points,
                              minimum=round(float(smoothed[low]), 3), minimum_step=int(steps[low]),
                              drop=round(max(0.0, 1 - float(smoothed[low]) / L0), 4) if L0 > 0 else None,
                              final=round(float(smoothed[-1]), 3), trend_per_100_steps=round(slope, 3),
                              smoothing_steps=curve.width)
    if clipped is not None:
        verdict.clipped_start = _level(raw_steps, clipped, steps[curve.first])  # where L0 was measured
        verdict.clipped_end = _level(raw_steps, clipped, steps[steps >= steps[-1] - w.smoothing + 1])
        verdict.at_cap = verdict.clipped_end is not None and verdict.clipped_end >= t.truncation_share
    cap_note = (f"; {verdict.clipped_end:.0%} of completions cut at the length cap at the end: the length is pinned "
                f"at the cap" if verdict.at_cap else "")
    if L0 <= 0:
        return _with(verdict, "no positive starting length")
    below_level = np.flatnonzero(early & (smoothed <= t.collapse_ratio * L0))
    if not len(below_level):
        return _with(verdict, f"length stayed above {t.collapse_ratio:g} x L0 in the first {w.early} steps"
                              + cap_note)
    at = int(below_level[0])
    verdict.below_half_at = int(steps[at])
    verdict.confidence = curve.confidence(L0 - float(smoothed[at]))
    if verdict.confidence < t.min_confidence:
        return _with(verdict, f"length fell below {t.collapse_ratio:g} x L0 by step {verdict.below_half_at}, but "
                              f"within the noise (confidence {below(verdict.confidence, t.min_confidence)})")
    last_high = np.flatnonzero((steps < steps[at]) & (smoothed >= L0))
    verdict.descent_steps = int(steps[at] - (steps[last_high[-1]] if len(last_high) else steps[0]))
    horizon = steps[at] + w.recovery
    back = np.flatnonzero((steps > steps[at]) & (steps <= horizon) & (smoothed >= t.collapse_recovered_ratio * L0))
    if len(back):
        verdict.recovered, verdict.recovered_at = True, int(steps[back[0]])
        verdict.recovery_steps = int(steps[back[0]] - steps[at])
        return _with(verdict, f"length fell to {t.collapse_ratio:g} x L0 at step {verdict.below_half_at} but was "
                              f"back at {t.collapse_recovered_ratio:g} x L0 by step {verdict.recovered_at}")
    verdict.recovered = False
    truncation = _truncation(verdict, raw_steps, t, counts, planned_steps, clipped, terminated)
    if truncation:
        verdict.cause = "truncation"
        return _with(verdict, truncation)
    verdict.detected, verdict.cause, verdict.collapsed_at = True, "collapse", verdict.below_half_at
    ended = steps[-1] < horizon
    verdict.reason = (f"length fell from {L0:.1f} to {t.collapse_ratio:g} x L0 by step {verdict.collapsed_at} and "
                      + ("had not got back to " if ended else "did not get back to ")
                      + f"{t.collapse_recovered_ratio:g} x L0 "
                      + (f"by the end of the log (step {int(steps[-1])})" if ended else f"within {w.recovery} steps")
                      + f" (confidence {verdict.confidence:.3f})"
                      + ("" if not max(verdict.clipped_start or 0, verdict.clipped_end or 0) >= 0.05 else
                         f"; the share cut at the cap went {verdict.clipped_start:.0%} -> {verdict.clipped_end:.0%}"))
    return verdict


def _truncation(verdict: CollapseVerdict, steps, t, counts, planned_steps, clipped, terminated) -> str:
    """Why the fall is the cap's doing ('' when it is not, or the log cannot say)."""
    if terminated is not None and np.isfinite(np.asarray(terminated, dtype=float)).sum() >= t.min_points:
        finished = detect_collapse(steps, terminated, t, planned_steps, counts)
        verdict.terminated_L0, verdict.terminated_minimum = finished.L0, finished.minimum
        if finished.judged and not finished.detected:
            clipped_text = ("" if verdict.clipped_start is None else
                            f" (the share cut at the cap went {verdict.clipped_start:.0%} -> {verdict.clipped_end:.0%})")
            return (f"truncation, not collapse: the mean length fell below {t.collapse_ratio:g} x L0 by step "
                    f"{verdict.below_half_at} because fewer completions were cut at the cap{clipped_text}; the "
                    f"finished completions' length went {finished.L0:.1f} -> {finished.minimum:.1f} at its lowest")
        return ""
    start, end = verdict.clipped_start, verdict.clipped_end
    if start is not None and end is not None and start >= t.truncation_share and end <= start / 2:
        return (f"truncation, not collapse: at the start {start:.0%} of completions were cut at the cap, at the end "
                f"{end:.0%}; the mean length fell below {t.collapse_ratio:g} x L0 by step {verdict.below_half_at} "
                f"as fewer were cut (log the finished completions' length, e.g. TRL's "
                f"completions/mean_terminated_length, to see whether they shortened too)")
    return ""


def _with(verdict, reason: str):
    verdict.reason = reason
    return verdict
