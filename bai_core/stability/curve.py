"""One curve as the detectors read it: its points ordered by step, the completions behind each point (when known),
the noise per sample, the run's windows, and the starting level, smoothed at a width that can widen.

The starting level (L0, r0, E0) is the count-weighted mean of the baseline window, but never of a change: when the
curve already falls (or climbs) inside the baseline window (a collapse in the first logged points, an entropy
blow-up), the baseline is cut at the best two-segment split of that window and only the points before the change
are kept. Only a change that counts (`shifts(before, after)`, given by the detector) and is clear of the noise
cuts it, so a healthy curve's noise does not pick a high or low start.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from bai_core.stability import statistics
from bai_core.stability.thresholds import DetectorThresholds, Windows


def clean(steps, values, counts=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points with a finite value (and a positive count, when there are counts), ordered by step; the counts, or
    ones (buckets are empty at some steps; logs may have NaN)."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    counts = np.ones(len(values)) if counts is None else np.asarray(
        [math.nan if c is None else c for c in counts], dtype=float)
    keep = np.isfinite(steps) & np.isfinite(values) & np.isfinite(counts) & (counts > 0)
    order = np.argsort(steps[keep], kind="stable")
    return steps[keep][order], values[keep][order], counts[keep][order]


def logging_interval(steps: np.ndarray) -> int:
    """Steps between a log's points: the median gap (1 when every step is logged)."""
    return max(1, int(np.median(np.diff(steps)))) if len(steps) > 1 else 1


SPLIT_Z = 4.0  # a fall inside the baseline window cuts it only when this many standard errors deep


def baseline_mask(steps: np.ndarray, values: np.ndarray, counts: np.ndarray, width: int,
                  shifts: Callable[[float, float], bool], noise: float) -> np.ndarray:
    """The points the starting level averages: those in the first `width` steps (at least three points), cut before
    a change inside them: the best split into two flat segments, if the later one `shifts` from the earlier and the
    two differ by at least `SPLIT_Z` standard errors (`noise` per sample), so noise does not pick the start. The
    part before the cut is split again while it still changes clearly (a curve moving from its first point)."""
    mask = steps <= steps[0] + width - 1
    mask[:min(3, len(mask))] = True
    while True:  # again on what is left: a curve falling from its first point is cut until its start is flat
        inside = np.flatnonzero(mask)
        if len(inside) < 2:
            return mask
        v, n = values[inside], counts[inside]
        best, cut = math.inf, None
        for k in range(1, len(inside)):
            a, b = np.average(v[:k], weights=n[:k]), np.average(v[k:], weights=n[k:])
            cost = float((n[:k] * (v[:k] - a) ** 2).sum() + (n[k:] * (v[k:] - b) ** 2).sum())
            if cost < best:
                best, cut = cost, (k, a, b)
        k, before, after = cut
        error = noise * math.sqrt(1 / n[:k].sum() + 1 / n[k:].sum())
        if not (shifts(float(before), float(after)) and abs(before - after) >= SPLIT_Z * error):
            return mask
        mask = np.zeros_like(mask)
        mask[inside[:k]] = True
        shifts = lambda start, later: True  # once moving, any clear change before it counts


class Curve:
    """`counts`: completions behind each point (None: unknown, each point counts as one sample of the spread
    measured between points). `shifts(start, later)`: whether a change from `start` to `later` is one this
    detector counts (it decides where the baseline is cut)."""

    def __init__(self, steps, values, counts, t: DetectorThresholds, planned_steps: int | None,
                 shifts: Callable[[float, float], bool] = lambda start, later: False):
        self.counts_known = counts is not None
        self.steps, self.values, self.counts = clean(steps, values, counts)
        self.t = t
        self.judgeable = len(self.steps) >= t.min_points
        if not self.judgeable:
            return
        span = int(self.steps[-1] - self.steps[0] + 1)
        self.windows = Windows.for_log(span, logging_interval(self.steps), t, planned_steps)
        self.noise = statistics.noise_per_sample(self.values, self.counts)
        self.first = baseline_mask(self.steps, self.values, self.counts, self.windows.baseline, shifts,
                                   self.noise)
        self.start_samples = float(self.counts[self.first].sum())
        self.start = float((self.values[self.first] * self.counts[self.first]).sum() / self.start_samples)
        self.early = self.steps <= self.steps[0] + self.windows.early
        self.samples_per_step = float(self.counts.sum()) / max(1.0, float(span))
        # the widest smoothing: half the early window, and a quarter of the log (a window must fit in it a few times)
        self.widest = max(self.windows.smoothing, min(self.windows.early // 2, span // 4))
        self.smooth_at(self.windows.smoothing)

    @property
    def baseline_points(self) -> int:
        return int(self.first.sum())

    def smooth_at(self, width: int) -> None:
        self.width = width
        self.smoothed, self.samples = statistics.weighted_smooth(self.steps, self.values, self.counts, width)

    def resolve(self, drop_at: Callable[[], float]) -> float:
        """Widen the smoothing until it resolves the drop `drop_at()` finds (a few rounds: a wider window sees a
        shallower drop); the drop at the final width."""
        drop = drop_at()
        for _ in range(3):
            width = min(self.widest, max(self.windows.smoothing,
                                         statistics.width_for(drop, self.noise, self.samples_per_step,
                                                              self.t.resolve_multiple)))
            if width == self.width:
                break
            self.smooth_at(width)
            drop = drop_at()
        return drop

    def confidence(self, drop: float, width: int | None = None, window: np.ndarray | None = None) -> float:
        """1 - the chance that noise alone, at these counts, drops this far below the start in `window` (default
        the early window), smoothed at `width` (default the curve's)."""
        nulls = statistics.noise_drops(self.steps, self.counts, self.noise, width or self.width, self.first,
                                       self.early if window is None else window)
        return round(statistics.confidence(drop, nulls), 6)

    def could_tell(self, drop: float) -> bool:
        """Whether the widest window holds enough samples to tell a drop of this size from noise."""
        return self.confidence(drop, self.widest) >= self.t.min_confidence

    def samples_text(self, samples: float) -> str:
        """'64 completions', or '4 points' where the completions behind a point are unknown."""
        unit = "completion" if self.counts_known else "point"
        return f"{samples:.0f} {unit}{'' if round(samples) == 1 else 's'}"


def below(confidence: float, minimum: float) -> str:
    """'0.9871 < 0.99': the confidence with enough digits to show it is below the minimum (never '0.99 < 0.99')."""
    for digits in range(2, 8):
        if round(confidence, digits) < minimum:
            return f"{confidence:.{digits}f} < {minimum:g}"
    return f"{confidence:.8f} < {minimum:g}"
