"""The two RLHF instabilities of docs/method.md, detected on training curves. Pure: numpy only, no TRL, no Prefect.

- Sequence Length Collapse: mean response length falls to <= half its start within the early window and does not
  come back to >= 80% of it within the recovery window (or by the end).
- Reward Hockey Stick: reward drops early (>= 0.15 absolute or >= 25% of its start), later regains >= half of the
  drop, and that recovery takes >= 3x as long as the descent. Checked on the run's reward and on the reward of each
  response-length bucket (the paper's Figure 2).

Windows follow the run's length, so a 100-step run is judged like a 3000-step one at its own scale:
smoothing min(20, n/40) points; early window min(300 steps, 15% of the run); recovery window min(500 steps, 25%);
L0 and r0 averaged over max(3 steps, the smoothing width, 20% of the early window).

Noise (stability/statistics.py). A reward point is the mean of the step's completions (of one bucket); with the counts
logged (bai's metrics.jsonl), points are weighed by them, sparse steps pooled with their neighbours, and the
per-completion spread measured. The smoothing widens until a window's mean resolves the fall (its standard error
at most 1/`resolve_multiple` of the drop), up to half the early window. A fall fires only when its `confidence`
(1 - the chance that noise alone falls that far, from flat curves simulated with the same counts and spread)
reaches `min_confidence`, corrected for the number of reward curves judged; a bucket whose widest window could not
tell a drop of 25% of its level from noise gets "not enough samples". Without counts (other logs), each point is
one sample of the spread measured between successive points.

Descent and recovery are timed at the same level, halfway between the start and the minimum (our reading of the
figures), from the dip's bottom: the first step the smoothed curve comes within 10% of the drop of its minimum.
descent = from the last crossing of the level before the bottom to the bottom; recovery = from the bottom to the
first crossing after it that holds for a smoothing width. A V-shaped dip has a ratio near 1; a hockey stick's is
large. A descent shorter than the smoothing width counts as that width (the curve cannot time it more finely).
Timing from the bottom's start rather than the minimum itself, and a crossing that holds, keep the times from
swinging with where noise puts the minimum on a flat bottom, or with one noisy point above the level.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bai_core.stability import statistics


class DetectorThresholds(BaseModel):
    """Every number the detectors use; the defaults are docs/method.md's reading of the paper's figures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smoothing_steps: int = Field(20, ge=1, description="Moving-average width (points) for a long run.")
    early_window_steps: int = Field(300, ge=1, description="The early window W for a long run, in steps...")
    early_window_share: float = Field(0.15, gt=0, le=1, description="...or this share of the run, if smaller.")
    recovery_window_steps: int = Field(500, ge=1, description="Collapse: steps allowed to get back, long run...")
    recovery_window_share: float = Field(0.25, gt=0, le=1, description="...or this share of the run, if smaller.")
    baseline_share: float = Field(0.2, gt=0, le=1, description="L0 / r0: mean over this share of the early window.")
    collapse_ratio: float = Field(0.5, gt=0, lt=1, description="Collapse when length <= this x L0.")
    collapse_recovered_ratio: float = Field(0.8, gt=0, description="Recovered when length >= this x L0 again.")
    reward_drop_absolute: float = Field(0.15, ge=0, description="A drop this large (absolute) counts...")
    reward_drop_relative: float = Field(0.25, ge=0, description="...and so does one this share of |r0|.")
    reward_regain_share: float = Field(0.5, gt=0, le=1, description="Share of the drop the reward must regain.")
    recovery_descent_ratio: float = Field(3.0, gt=0, description="Recovery at least this many times the descent.")
    min_bucket_points: int = Field(5, ge=2, description="A length bucket with fewer points is not judged...")
    min_bucket_share: float = Field(0.5, ge=0, le=1, description="...nor one present in fewer than this share of "
                                                                 "the steps (a few stray completions are no curve).")
    min_confidence: float = Field(0.99, ge=0, le=1, description="A fall fires only when noise alone makes one "
                                                                 "as deep with a chance below 1 - this.")
    resolve_multiple: float = Field(6.0, gt=0, description="Smoothing widens until a window's standard error is at "
                                                           "most the drop / this.")


@dataclass
class Windows:
    """The run-length-scaled windows a verdict was computed with (in steps, except smoothing in points)."""

    run_steps: int
    smoothing: int
    early: int
    recovery: int
    baseline: int

    @classmethod
    def for_run(cls, run_steps: int, t: DetectorThresholds) -> Windows:
        early = max(2, min(t.early_window_steps, math.ceil(t.early_window_share * run_steps)))
        smoothing = max(1, min(t.smoothing_steps, run_steps // 40))
        return cls(run_steps=run_steps, smoothing=smoothing, early=early,
                   recovery=max(1, min(t.recovery_window_steps, math.ceil(t.recovery_window_share * run_steps))),
                   # never one noisy point: at least 3 steps, and at least one smoothing width
                   baseline=max(3, smoothing, math.ceil(t.baseline_share * early)))


@dataclass
class CollapseVerdict:
    detected: bool
    L0: float | None = None
    minimum: float | None = None
    minimum_step: int | None = None
    drop: float | None = None  # share of L0 lost at the minimum
    collapsed_at: int | None = None  # first step at <= collapse_ratio x L0 within the early window
    recovered: bool | None = None
    recovered_at: int | None = None
    descent_steps: int | None = None
    recovery_steps: int | None = None
    final: float | None = None
    trend_per_100_steps: float | None = None  # slope of a line through the whole (smoothed) curve
    confidence: float | None = None  # 1 - p that noise made the fall
    smoothing_steps: int | None = None
    reason: str = ""


@dataclass
class HockeyStickVerdict:
    detected: bool
    r0: float | None = None
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
    samples_at_start: int | None = None  # completions behind r0, and behind the minimum's window
    samples_at_minimum: int | None = None
    noise: float | None = None  # per completion (with counts) or per point
    smoothing_steps: int | None = None  # the window, widened to resolve the drop
    enough_samples: bool = True  # False: the widest window cannot tell this drop from noise
    reason: str = ""


@dataclass
class Diagnosis:
    sequence_length_collapse: CollapseVerdict
    reward_hockey_stick: HockeyStickVerdict
    # the same reward verdict for every response-length bucket that has enough points, e.g. "300-400"
    reward_hockey_stick_by_length: dict[str, HockeyStickVerdict] = field(default_factory=dict)
    windows: Windows | None = None
    # buckets with too few points to judge at all: name -> why ("present at 40 of 600 steps, 52 completions")
    sparse_buckets: dict[str, str] = field(default_factory=dict)

    @property
    def fired(self) -> list[str]:
        """Names of the detectors that fired: "collapse", "hockey_stick"."""
        return [name for name, on in (("collapse", self.sequence_length_collapse.detected),
                                      ("hockey_stick", self.hockey_stick_detected)) if on]

    def reason_fired(self, detector: str) -> str:
        """Why `detector` fired: its verdict's reason, or for a hockey stick seen only in a length bucket, that
        bucket's (the overall curve's reason then says why it did not fire there)."""
        if detector == "collapse":
            return self.sequence_length_collapse.reason
        if self.reward_hockey_stick.detected:
            return self.reward_hockey_stick.reason
        name, verdict = next((n, v) for n, v in self.reward_hockey_stick_by_length.items() if v.detected)
        return f"in the {name}-token responses: {verdict.reason}"

    @property
    def hockey_stick_detected(self) -> bool:
        return self.reward_hockey_stick.detected or any(v.detected for v in
                                                        self.reward_hockey_stick_by_length.values())

    def story(self) -> list[str]:
        """The verdicts in a line each, with their evidence: what the run's log says once training ends."""
        c, h = self.sequence_length_collapse, self.reward_hockey_stick

        def number(value) -> str:
            return "n/a" if value is None else f"{value:.3g}"

        lines = [f"Sequence Length Collapse: {'DETECTED' if c.detected else 'not detected'} (L0 {number(c.L0)}, "
                 f"minimum {number(c.minimum)} at step {c.minimum_step}, final {number(c.final)}): {c.reason}",
                 f"Reward Hockey Stick: {'DETECTED' if h.detected else 'not detected'} over all responses "
                 f"(r0 {number(h.r0)}, minimum {number(h.minimum)} at step {h.minimum_step}, final "
                 f"{number(h.final)}): {h.reason}"]
        buckets = self.reward_hockey_stick_by_length
        fired = [name for name, v in buckets.items() if v.detected]
        judged = [name for name, v in buckets.items() if v.enough_samples]  # the others are said too sparse below
        if judged:
            lines.append(f"Reward Hockey Stick per length bucket: {len(judged)} judged ({', '.join(judged)}); "
                         + (f"DETECTED in {', '.join(fired)}: {buckets[fired[0]].reason}" if fired
                            else "not detected in any"))
        unsure = [name for name, v in buckets.items() if not v.enough_samples]
        if unsure or self.sparse_buckets:
            lines.append("Too sparse to judge: " + "; ".join(
                [f"{name} ({buckets[name].reason})" for name in unsure]
                + [f"{name} ({why})" for name, why in self.sparse_buckets.items()]))
        return lines

    def to_json(self) -> dict:
        """The `bai diagnose --json` object: each detector has `detected` and its evidence; a bucket that fired
        makes the run's hockey-stick verdict fire too (with `buckets` naming it)."""
        hockey = asdict(self.reward_hockey_stick)
        hockey["detected"] = self.hockey_stick_detected
        hockey["overall_detected"] = self.reward_hockey_stick.detected
        hockey["buckets"] = {name: asdict(v) for name, v in self.reward_hockey_stick_by_length.items()}
        hockey["sparse_buckets"] = dict(self.sparse_buckets)
        return {"sequence_length_collapse": asdict(self.sequence_length_collapse), "reward_hockey_stick": hockey,
                "windows": asdict(self.windows) if self.windows else None}


def _clean(steps, values, counts=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points with a finite value (and a positive count, when there are counts), ordered by step; the counts, or
    ones (buckets are empty at some steps; logs may have NaN)."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    counts = np.ones(len(values)) if counts is None else np.asarray(
        [math.nan if c is None else c for c in counts], dtype=float)
    keep = np.isfinite(steps) & np.isfinite(values) & np.isfinite(counts) & (counts > 0)
    order = np.argsort(steps[keep], kind="stable")
    return steps[keep][order], values[keep][order], counts[keep][order]


class _Curve:
    """A curve as the detectors read it: its points, their counts, the per-sample noise, the run's windows and the
    starting level (L0 / r0, count-weighted over the baseline), smoothed at a width that can change."""

    def __init__(self, steps, values, counts, t: DetectorThresholds, run_steps: int | None):
        self.steps, self.values, self.counts = _clean(steps, values, counts)
        self.t = t
        if len(self.steps) < 3:
            return
        self.windows = Windows.for_run(run_steps or int(self.steps[-1] - self.steps[0] + 1), t)
        self.noise = statistics.noise_per_sample(self.values, self.counts)
        self.first = first = self.steps <= self.steps[0] + self.windows.baseline - 1
        self.start_samples = float(self.counts[first].sum())
        self.start = float((self.values[first] * self.counts[first]).sum() / self.start_samples)
        self.early = self.steps <= self.steps[0] + self.windows.early
        span = max(1.0, float(self.steps[-1] - self.steps[0] + 1))
        self.samples_per_step = float(self.counts.sum()) / span
        self.widest = max(self.windows.smoothing, self.windows.early // 2)
        self.smooth_at(self.windows.smoothing)

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

    def confidence(self, drop: float, width: int | None = None) -> float:
        """1 - the chance that noise alone, at these counts, drops this far below the start in the early window
        (smoothed at `width`, default the curve's)."""
        nulls = statistics.noise_drops(self.steps, self.counts, self.noise, width or self.width, self.first,
                                       self.early)
        return round(statistics.confidence(drop, nulls), 6)

    def could_tell(self, drop: float) -> bool:
        """Whether the widest window holds enough samples to tell a drop of this size from noise."""
        return self.confidence(drop, self.widest) >= self.t.min_confidence


def detect_collapse(steps, lengths, t: DetectorThresholds = DetectorThresholds(),
                    run_steps: int | None = None) -> CollapseVerdict:
    """Sequence Length Collapse on one curve (see the module's docstring). `run_steps`: the run's planned length,
    when judging a run still in progress; default the span of the curve."""
    curve = _Curve(steps, lengths, None, t, run_steps)
    steps = curve.steps
    if len(steps) < 3:
        return CollapseVerdict(False, reason=f"too few points ({len(steps)})")
    L0, w, early = curve.start, curve.windows, curve.early
    curve.resolve(lambda: L0 - float(curve.smoothed[early].min()))
    smoothed = curve.smoothed
    low = int(np.argmin(smoothed))
    slope = float(np.polyfit(steps, smoothed, 1)[0] * 100) if len(steps) > 1 else 0.0
    verdict = CollapseVerdict(False, L0=round(L0, 3), minimum=round(float(smoothed[low]), 3),
                              minimum_step=int(steps[low]), drop=round(1 - float(smoothed[low]) / L0, 4) if L0 else None,
                              final=round(float(smoothed[-1]), 3), trend_per_100_steps=round(slope, 3),
                              smoothing_steps=curve.width)
    if L0 <= 0:
        return _with(verdict, reason="no positive starting length")
    below = np.flatnonzero(early & (smoothed <= t.collapse_ratio * L0))
    if not len(below):
        return _with(verdict, reason=f"length stayed above {t.collapse_ratio:g} x L0 in the first {w.early} steps")
    at = int(below[0])
    verdict.confidence = curve.confidence(L0 - float(smoothed[at]))
    if verdict.confidence < t.min_confidence:
        return _with(verdict, reason=f"length fell below {t.collapse_ratio:g} x L0 by step {int(steps[at])}, but "
                                     f"within the noise (confidence {verdict.confidence:.2f} < {t.min_confidence:g})")
    verdict.collapsed_at = int(steps[at])
    last_high = np.flatnonzero((steps < steps[at]) & (smoothed >= L0))
    verdict.descent_steps = int(steps[at] - (steps[last_high[-1]] if len(last_high) else steps[0]))
    horizon = steps[at] + w.recovery
    back = np.flatnonzero((steps > steps[at]) & (steps <= horizon) & (smoothed >= t.collapse_recovered_ratio * L0))
    if len(back):
        verdict.recovered, verdict.recovered_at = True, int(steps[back[0]])
        verdict.recovery_steps = int(steps[back[0]] - steps[at])
        return _with(verdict, reason=f"length fell to {t.collapse_ratio:g} x L0 at step {verdict.collapsed_at} but was "
                                     f"back at {t.collapse_recovered_ratio:g} x L0 by step {verdict.recovered_at}")
    verdict.recovered = False
    ended = steps[-1] < horizon
    verdict.detected = True
    verdict.reason = (f"length fell from {L0:.1f} to {t.collapse_ratio:g} x L0 by step {verdict.collapsed_at} and did "
                      f"not get back to {t.collapse_recovered_ratio:g} x L0 "
                      + ("by the end" if ended else f"within {w.recovery} steps")
                      + f" (confidence {verdict.confidence:.3f})")
    return verdict


def detect_hockey_stick(steps, rewards, t: DetectorThresholds = DetectorThresholds(),
                        run_steps: int | None = None, counts=None) -> HockeyStickVerdict:
    """Reward Hockey Stick on one curve (see the module's docstring). `counts`: the completions behind each point,
    when the log has them."""
    curve = _Curve(steps, rewards, counts, t, run_steps)
    steps = curve.steps
    if len(steps) < 3:
        return HockeyStickVerdict(False, reason=f"too few points ({len(steps)})")
    r0, early_index = curve.start, np.flatnonzero(curve.early)
    drop = curve.resolve(lambda: r0 - float(curve.smoothed[early_index].min()))
    smoothed = curve.smoothed
    low = int(early_index[np.argmin(smoothed[early_index])])
    verdict = HockeyStickVerdict(False, r0=round(r0, 4), minimum=round(float(smoothed[low]), 4),
                                 minimum_step=int(steps[low]), drop=round(drop, 4),
                                 drop_share=round(drop / abs(r0), 4) if r0 else None,
                                 final=round(float(smoothed[-1]), 4), samples_at_start=int(curve.start_samples),
                                 samples_at_minimum=int(curve.samples[low]), noise=round(curve.noise, 4),
                                 smoothing_steps=curve.width)
    big = drop >= t.reward_drop_absolute or (r0 != 0 and drop >= t.reward_drop_relative * abs(r0))
    if drop <= 0 or not big:
        return _with(verdict, reason=f"no early drop of >= {t.reward_drop_absolute:g} or "
                                     f">= {t.reward_drop_relative:.0%} of r0")
    verdict.confidence = curve.confidence(drop)
    if verdict.confidence < t.min_confidence:
        # Too sparse when even the widest window could not tell the larger drop that counts from noise.
        counting = max(t.reward_drop_absolute, t.reward_drop_relative * abs(r0))
        if not curve.could_tell(counting):
            verdict.enough_samples = False
            return _with(verdict, reason=f"not enough samples: ~{curve.samples_per_step * curve.widest:.0f} "
                                         f"completions in the widest window ({curve.widest} steps) cannot tell a drop "
                                         f"of {counting:.3g} from noise of {curve.noise:.3g} each")
        return _with(verdict, reason=f"the early drop ({drop:.3g}) is within the noise (confidence "
                                     f"{verdict.confidence:.2f} < {t.min_confidence:g})")
    level = float(smoothed[low]) + t.reward_regain_share * drop
    bottom = int(np.flatnonzero(smoothed <= smoothed[low] + BOTTOM_SHARE * drop)[0])
    before = np.flatnonzero((steps < steps[bottom]) & (smoothed >= level))
    verdict.descent_steps = max(1, int(steps[bottom] - (steps[before[-1]] if len(before) else steps[0])))
    back = _first_holding(steps, smoothed >= level, bottom, curve.width)
    if back is None:
        verdict.recovered = False
        return _with(verdict, reason=f"reward dropped by {drop:.3g} by step {verdict.minimum_step} and has not "
                                     f"regained {t.reward_regain_share:.0%} of it (a drop, not yet a hockey stick)")
    verdict.recovered, verdict.recovered_at = True, int(steps[back])
    verdict.recovery_steps = int(steps[back] - steps[bottom])
    # Times shorter than the smoothing width are below what the smoothed curve resolves: a one-step spike has no
    # measurable descent, so its "recovery ratio" would be noise.
    if verdict.recovery_steps < t.recovery_descent_ratio * max(verdict.descent_steps, curve.width):
        return _with(verdict, reason=f"reward dipped and recovered about as fast as it fell "
                                     f"({verdict.recovery_steps} vs {verdict.descent_steps} steps)")
    verdict.detected = True
    verdict.reason = (f"reward fell {drop:.3g} from {r0:.3g} in {verdict.descent_steps} steps (minimum at step "
                      f"{verdict.minimum_step}) and took {verdict.recovery_steps} steps to regain "
                      f"{t.reward_regain_share:.0%} of it (confidence {verdict.confidence:.3f}, "
                      f"{verdict.samples_at_minimum} completions at the minimum)")
    return verdict


BOTTOM_SHARE = 0.1  # the dip's bottom starts where the curve is within this share of the drop of its minimum


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


def diagnose(steps, lengths, rewards, reward_by_length: dict[str, list] | None = None,
             t: DetectorThresholds = DetectorThresholds(), run_steps: int | None = None,
             count_by_length: dict[str, list] | None = None) -> Diagnosis:
    """Both detectors on a run's curves. `reward_by_length`: bucket name -> reward per step (None/NaN where the
    bucket had no responses); `count_by_length`: the completions behind each of those points, when logged (the
    run's reward then counts each step's total). A bucket with fewer than `min_bucket_points` points, or present
    in fewer than `min_bucket_share` of the steps, is not judged: it is listed as too sparse."""
    clean_steps = _clean(steps, steps)[0]
    span = run_steps or (int(clean_steps[-1] - clean_steps[0] + 1) if len(clean_steps) else 0)
    counts = count_by_length or {}
    totals = None
    if counts:
        totals = [sum(c[i] or 0 for c in counts.values()) or None for i in range(len(steps))]
    judged, sparse = {}, {}
    for name, values in (reward_by_length or {}).items():
        values = [math.nan if v is None else v for v in values]
        present = int(np.isfinite(np.asarray(values, dtype=float)).sum())
        if present >= t.min_bucket_points and present >= t.min_bucket_share * len(clean_steps):
            judged[name] = values
        elif present:
            completions = int(sum(c or 0 for c in counts.get(name, []))) if name in counts else None
            sparse[name] = (f"present at {present} of {len(clean_steps)} steps"
                            + (f", {completions} completion{'' if completions == 1 else 's'}"
                               if completions is not None else ""))
    # Each reward curve judged is one more chance for noise to fire: the confidence each needs is corrected for
    # how many there are (the run's reward and every judged bucket; Sidak), so the run keeps min_confidence.
    each = t.model_copy(update={"min_confidence": t.min_confidence ** (1 / (1 + len(judged)))})
    buckets = {name: detect_hockey_stick(steps, values, each, span or None, counts.get(name))
               for name, values in judged.items()}
    return Diagnosis(sequence_length_collapse=detect_collapse(steps, lengths, t, span or None),
                     reward_hockey_stick=detect_hockey_stick(steps, rewards, each, span or None, totals),
                     reward_hockey_stick_by_length=buckets,
                     windows=Windows.for_run(span, t) if span else None, sparse_buckets=sparse)
