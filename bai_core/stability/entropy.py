"""Entropy collapse and entropy spikes, where the log has the policy's entropy (TRL's `entropy`, verl's
`actor/entropy`, OpenRLHF's `entropy`).

- Collapse: the smoothed entropy falls to <= `entropy_collapse_ratio` x E0 (its start) anywhere in the log, with
  confidence >= `min_confidence` that noise did not make the fall, and is still below `entropy_recovered_ratio`
  x E0 at the end of the log. The policy has stopped exploring: rewards plateau (Cui et al. 2025, "The Entropy
  Mechanism of Reinforcement Learning for Reasoning Language Models").
- Spike: `entropy_spike_length` points in a row (2) each >= `entropy_spike_ratio` x the median of the
  `entropy_spike_points` points before them, their mean far enough above it that noise alone would make such a run
  anywhere in the log with a chance below 1 - `min_confidence` (Gaussian noise of the spread measured between
  points, Bonferroni over the points). One high reading is not a spike: the entropy of a few completions is
  heavy-tailed (bai's own demo run logs single readings 4x its median), a level that jumps stays up. Spikes often
  come before a run crashes (a trainer / rollout-engine mismatch, a bad batch, numerical trouble).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from bai_core.stability.curve import Curve, below
from bai_core.stability.length import ratio_shift
from bai_core.stability.thresholds import DetectorThresholds


@dataclass
class EntropyVerdict:
    detected: bool
    judged: bool = True  # False: cannot judge (no entropy logged, or too few points)
    kinds: list[str] = field(default_factory=list)  # what fired: "collapse", "spike"
    E0: float | None = None
    baseline_points: int | None = None
    minimum: float | None = None
    minimum_step: int | None = None
    collapsed_at: int | None = None  # first step at <= entropy_collapse_ratio x E0 (when confident)
    final: float | None = None
    spike_step: int | None = None  # the first spike: its step, value, and the level before it
    spike_value: float | None = None
    spike_reference: float | None = None
    confidence: float | None = None  # of the collapse, or of the spike when only a spike fired
    smoothing_steps: int | None = None
    reason: str = ""


MIN_REFERENCE = 3  # points before a spike that set its reference level (up to entropy_spike_points)


def detect_entropy(steps, entropy, t: DetectorThresholds = DetectorThresholds(), planned_steps: int | None = None,
                   counts=None) -> EntropyVerdict:
    if entropy is None or not np.isfinite(np.asarray(entropy, dtype=float)).any():
        return EntropyVerdict(False, judged=False, reason="no entropy in this log")
    midway = 1 - (1 - t.entropy_collapse_ratio) / 2
    curve = Curve(steps, entropy, counts, t, planned_steps, shifts=ratio_shift(midway))
    if not curve.judgeable:
        return EntropyVerdict(False, judged=False, reason=f"too few points ({len(curve.steps)} < {t.min_points})")
    steps, E0 = curve.steps, curve.start
    everywhere = np.ones(len(steps), dtype=bool)
    curve.resolve(lambda: E0 - float(curve.smoothed.min()))
    smoothed = curve.smoothed
    low = int(np.argmin(smoothed))
    verdict = EntropyVerdict(False, E0=round(E0, 4), baseline_points=curve.baseline_points,
                             minimum=round(float(smoothed[low]), 4), minimum_step=int(steps[low]),
                             final=round(float(smoothed[-1]), 4), smoothing_steps=curve.width)
    reasons = []
    collapse = _collapse(curve, t, everywhere, verdict)
    if collapse:
        reasons.append(collapse)
    spike = _spike(curve, t, verdict)
    if spike:
        reasons.append(spike)
    verdict.detected = bool(verdict.kinds)
    verdict.reason = "; ".join(reasons) or (f"entropy stayed above {t.entropy_collapse_ratio:g} x E0 (or came back) "
                                            f"and never jumped to {t.entropy_spike_ratio:g} x its level")
    return verdict


def _collapse(curve: Curve, t: DetectorThresholds, everywhere, verdict: EntropyVerdict) -> str:
    steps, smoothed, E0 = curve.steps, curve.smoothed, curve.start
    if E0 <= 0:
        return "no positive starting entropy"
    low = np.flatnonzero(smoothed <= t.entropy_collapse_ratio * E0)
    if not len(low):
        return ""
    at = int(low[0])
    confidence = curve.confidence(E0 - float(smoothed[at]), window=everywhere)
    if confidence < t.min_confidence:
        verdict.confidence = confidence
        return (f"entropy fell below {t.entropy_collapse_ratio:g} x E0 by step {int(steps[at])}, but within the noise "
                f"(confidence {below(confidence, t.min_confidence)})")
    if smoothed[-1] >= t.entropy_recovered_ratio * E0:
        return (f"entropy fell below {t.entropy_collapse_ratio:g} x E0 at step {int(steps[at])} but was back at "
                f"{t.entropy_recovered_ratio:g} x E0 by the end of the log")
    verdict.kinds.append("collapse")
    verdict.collapsed_at, verdict.confidence = int(steps[at]), confidence
    return (f"entropy collapsed: from {E0:.3g} to {t.entropy_collapse_ratio:g} x E0 by step {verdict.collapsed_at}, "
            f"{float(smoothed[-1]):.3g} at the end of the log (step {int(steps[-1])}; confidence {confidence:.3f})")


def _spike(curve: Curve, t: DetectorThresholds, verdict: EntropyVerdict) -> str:
    values, steps, n = curve.values, curve.steps, len(curve.values)
    k, run = t.entropy_spike_points, t.entropy_spike_length
    if n < MIN_REFERENCE + run or curve.noise <= 0:
        return ""
    # The z the run's mean needs so that noise alone makes one that high anywhere in the log with a chance < 1 - min.
    chance = max(1e-12, 1 - t.min_confidence)
    needed = NormalDist().inv_cdf(1 - chance / n)
    for i in range(MIN_REFERENCE, n - run + 1):
        reference = float(np.median(values[max(0, i - k):i]))
        high = values[i:i + run]
        sd = curve.noise / np.sqrt(curve.counts[i:i + run].sum())  # of the run's mean
        z = (float(high.mean()) - reference) / sd
        if reference > 0 and float(high.min()) >= t.entropy_spike_ratio * reference and z >= needed:
            verdict.kinds.append("spike")
            verdict.spike_step, verdict.spike_value = int(steps[i]), round(float(high.max()), 4)
            verdict.spike_reference = round(reference, 4)
            if verdict.confidence is None:
                verdict.confidence = round(max(0.0, 1 - n * (1 - NormalDist().cdf(z))), 6)
            held = "" if run == 1 else f" for {run} points in a row"
            return (f"entropy spiked to {high.max():.3g} at step {verdict.spike_step}, {high.min() / reference:.1f} x "
                    f"or more the median of the {min(i, k)} points before it ({reference:.3g}){held}")
    return ""
