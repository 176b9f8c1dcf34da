"""What the detectors know about a curve's noise. A point of a reward curve is the mean of the step's completions
(of one length bucket): its noise is the per-completion spread over the square root of how many there were.

- `noise_per_sample`: the per-completion spread, from successive differences weighted by the counts, or, where the
  log has no counts, the per-point spread (then every point counts as one sample).
- `weighted_smooth`: a centred moving average over a window of steps that weighs each point by its count, so sparse
  steps are pooled with their neighbours and an empty step adds nothing; with the samples each window holds.
- `confidence`: how sure a fall is not noise. The fall is the start's mean minus the lowest of many overlapping
  windows, so its null distribution is simulated (`noise_drops`: flat curves with the same counts and spread, read
  the same way) rather than assumed; the confidence is 1 - the fitted tail beyond the fall.

numpy only.
"""

from __future__ import annotations

import math

import numpy as np


def smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over points that shrinks at the ends (no padding bias at the start); the plots'."""
    if width <= 1 or len(values) < 2:
        return values.astype(float)
    half = width // 2
    cumulative = np.concatenate([[0.0], np.cumsum(values, dtype=float)])
    index = np.arange(len(values))
    lo, hi = np.maximum(0, index - half), np.minimum(len(values), index + width - half)
    return (cumulative[hi] - cumulative[lo]) / (hi - lo)


JUMP = 6.0  # robust standard deviations: a difference beyond it that the curve keeps is a shift, not noise


def noise_per_sample(values: np.ndarray, counts: np.ndarray) -> float:
    """The per-completion standard deviation: successive points differ by noise of variance s^2 (1/n_i + 1/n_j)
    (a trend between neighbours is small beside it). A mean, not a median: rewards have heavy tails (a rare
    very short answer scored far below the rest), and a window's mean feels them. But a difference more than
    `JUMP` robust standard deviations out after which the curve stays where it jumped to (the medians of the
    three points either side differ by half the jump or more) is the curve shifting, a collapse inside a few logged
    points, and is left out: kept in, one fall would make itself look like noise. A lone outlier that the next
    point leaves again is noise, and stays. 0 with fewer than three points."""
    if len(values) < 3:
        return 0.0
    scaled = np.diff(values) / np.sqrt(1 / counts[:-1] + 1 / counts[1:])
    robust = 1.4826 * float(np.median(np.abs(scaled)))
    keep = np.ones(len(scaled), dtype=bool)
    if robust > 0:
        for i in np.flatnonzero(np.abs(scaled) > JUMP * robust):
            before, after = np.median(values[max(0, i - 2):i + 1]), np.median(values[i + 1:i + 4])
            keep[i] = abs(after - before) < abs(values[i + 1] - values[i]) / 2
    return float(math.sqrt(np.mean(scaled[keep] ** 2)))


def weighted_smooth(steps: np.ndarray, values: np.ndarray, counts: np.ndarray,
                    width: int) -> tuple[np.ndarray, np.ndarray]:
    """The count-weighted mean of each point's window (`width` steps, centred; narrower at the ends) and the
    samples in it. `values` may be a stack of curves (one per row) over the same steps and counts."""
    half_before, half_after = (width - 1) // 2, width // 2
    lo = np.searchsorted(steps, steps - half_before, side="left")
    hi = np.searchsorted(steps, steps + half_after, side="right")
    cumulative_n = np.concatenate([[0.0], np.cumsum(counts, dtype=float)])
    weighted = np.asarray(values, dtype=float) * counts
    zero = np.zeros(weighted.shape[:-1] + (1,))
    cumulative_sum = np.concatenate([zero, np.cumsum(weighted, axis=-1)], axis=-1)
    samples = cumulative_n[hi] - cumulative_n[lo]
    return (cumulative_sum[..., hi] - cumulative_sum[..., lo]) / samples, samples


def noise_drops(steps: np.ndarray, counts: np.ndarray, noise: float, width: int, baseline: np.ndarray,
                window: np.ndarray, draws: int = 256, seed: int = 0) -> np.ndarray:
    """The drops noise alone makes: `draws` flat curves with these counts and this per-sample noise, each read as
    the detector reads a curve (the baseline's weighted mean minus the lowest smoothed point in `window`)."""
    rng = np.random.default_rng(seed)
    flat = rng.standard_normal((draws, len(steps))) * noise / np.sqrt(counts)
    smoothed, _ = weighted_smooth(steps, flat, counts, width)
    start = (flat[:, baseline] * counts[baseline]).sum(axis=1) / counts[baseline].sum()
    return start - smoothed[:, window].min(axis=1)


def confidence(drop: float, null_drops: np.ndarray) -> float:
    """1 - the chance that noise alone makes a drop this deep: the tail of a Gumbel fitted to the simulated
    noise-only drops (the deepest of many windows is extreme-value distributed; a fitted tail reaches the small
    chances a few hundred draws cannot count)."""
    spread = float(np.std(null_drops))
    if spread <= 0:
        return 1.0 if drop > float(np.max(null_drops, initial=0.0)) else 0.0
    scale = spread * math.sqrt(6) / math.pi
    location = float(np.mean(null_drops)) - 0.5772156649 * scale
    return float(math.exp(-math.exp(-(drop - location) / scale)))
def width_for(drop: float, noise: float, samples_per_step: float, resolve: float) -> int:
    """Steps a window needs for its mean's standard error to be `drop / resolve`."""
    if drop <= 0 or samples_per_step <= 0:
        return 1 << 30
    needed = (resolve * noise / drop) ** 2
    return max(1, math.ceil(needed / samples_per_step))
