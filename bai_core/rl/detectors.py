"""The two RLHF instabilities of docs/method.md, detected on training curves. Pure: numpy only, no TRL, no Prefect.

- Sequence Length Collapse: mean response length falls to <= half its start within the early window and does not
  come back to >= 80% of it within the recovery window (or by the end).
- Reward Hockey Stick: reward drops early (>= 0.15 absolute or >= 25% of its start), later regains >= half of the
  drop, and that recovery takes >= 3x as long as the descent. Checked on the run's reward and on the reward of each
  response-length bucket (the paper's Figure 2).

Windows follow the run's length, so a 100-step run is judged like a 3000-step one at its own scale:
smoothing min(20, n/40) points; early window min(300 steps, 15% of the run); recovery window min(500 steps, 25%);
L0 and r0 averaged over max(3 steps, the smoothing width, 20% of the early window).

A fall must also stand out of the curve's noise (>= 2 standard errors of the smoothed curve, the per-step noise
estimated from successive differences): a 20-step run on 16 completions a step swings by more than any threshold.

Descent and recovery are timed at the same level, halfway between the start and the minimum (our reading of the
figures): descent = from the last crossing of that level before the minimum to the minimum; recovery = from the
minimum to the first crossing after it. A V-shaped dip has a ratio near 1; a hockey stick's is large. A descent
shorter than the smoothing width counts as that width (the curve cannot time it more finely).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


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
    noise_multiple: float = Field(2.0, ge=0, description="A fall must exceed this many standard errors of the "
                                                         "smoothed curve (per-step noise / sqrt(smoothing)).")


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
    reason: str = ""


@dataclass
class Diagnosis:
    sequence_length_collapse: CollapseVerdict
    reward_hockey_stick: HockeyStickVerdict
    # the same reward verdict for every response-length bucket that has enough points, e.g. "300-400"
    reward_hockey_stick_by_length: dict[str, HockeyStickVerdict] = field(default_factory=dict)
    windows: Windows | None = None

    @property
    def fired(self) -> list[str]:
        """Names of the detectors that fired: "collapse", "hockey_stick"."""
        return [name for name, on in (("collapse", self.sequence_length_collapse.detected),
                                      ("hockey_stick", self.hockey_stick_detected)) if on]

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
        if buckets:
            lines.append(f"Reward Hockey Stick per length bucket: {len(buckets)} judged ({', '.join(buckets)}); "
                         + (f"DETECTED in {', '.join(fired)}: {buckets[fired[0]].reason}" if fired
                            else "not detected in any"))
        return lines

    def to_json(self) -> dict:
        """The `bai diagnose --json` object: each detector has `detected` and its evidence; a bucket that fired
        makes the run's hockey-stick verdict fire too (with `buckets` naming it)."""
        hockey = asdict(self.reward_hockey_stick)
        hockey["detected"] = self.hockey_stick_detected
        hockey["overall_detected"] = self.reward_hockey_stick.detected
        hockey["buckets"] = {name: asdict(v) for name, v in self.reward_hockey_stick_by_length.items()}
        return {"sequence_length_collapse": asdict(self.sequence_length_collapse), "reward_hockey_stick": hockey,
                "windows": asdict(self.windows) if self.windows else None}


def smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average that shrinks at the ends (no padding bias at the start, where L0 is measured)."""
    if width <= 1 or len(values) < 2:
        return values.astype(float)
    half = width // 2
    cumulative = np.concatenate([[0.0], np.cumsum(values, dtype=float)])
    index = np.arange(len(values))
    lo, hi = np.maximum(0, index - half), np.minimum(len(values), index + width - half)
    return (cumulative[hi] - cumulative[lo]) / (hi - lo)


def _clean(steps, values) -> tuple[np.ndarray, np.ndarray]:
    """Points with a finite value, ordered by step (buckets are empty at some steps; logs may have NaN)."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(steps) & np.isfinite(values)
    order = np.argsort(steps[keep], kind="stable")
    return steps[keep][order], values[keep][order]


def noise_level(values: np.ndarray, width: int) -> float:
    """Standard error of the smoothed curve: the per-step noise (robustly, from successive differences) over
    sqrt(width). A short run's reward is the mean of a few completions; its step-to-step swings are not a trend."""
    if len(values) < 3:
        return 0.0
    sigma = float(np.median(np.abs(np.diff(values)))) / 0.6745 / math.sqrt(2)
    return sigma / math.sqrt(width)


def _prepared(steps: np.ndarray, values: np.ndarray, t: DetectorThresholds,
              run_steps: int | None) -> tuple[Windows, np.ndarray, float]:
    """What both detectors start from: the run's windows, the smoothed curve, and its starting level (L0 / r0)."""
    w = Windows.for_run(run_steps or int(steps[-1] - steps[0] + 1), t)
    first = values[steps <= steps[0] + w.baseline - 1]
    return w, smooth(values, w.smoothing), float(first.mean() if len(first) else values[0])


def detect_collapse(steps, lengths, t: DetectorThresholds = DetectorThresholds(),
                    run_steps: int | None = None) -> CollapseVerdict:
    """Sequence Length Collapse on one curve (see the module's docstring). `run_steps`: the run's planned length,
    when judging a run still in progress; default the span of the curve."""
    steps, lengths = _clean(steps, lengths)
    if len(steps) < 3:
        return CollapseVerdict(False, reason=f"too few points ({len(steps)})")
    w, smoothed, L0 = _prepared(steps, lengths, t, run_steps)
    early = steps <= steps[0] + w.early
    low = int(np.argmin(smoothed))
    slope = float(np.polyfit(steps, smoothed, 1)[0] * 100) if len(steps) > 1 else 0.0
    verdict = CollapseVerdict(False, L0=round(L0, 3), minimum=round(float(smoothed[low]), 3),
                              minimum_step=int(steps[low]), drop=round(1 - float(smoothed[low]) / L0, 4) if L0 else None,
                              final=round(float(smoothed[-1]), 3), trend_per_100_steps=round(slope, 3))
    if L0 <= 0:
        return _with(verdict, reason="no positive starting length")
    margin = t.noise_multiple * noise_level(lengths, w.smoothing)
    below = np.flatnonzero(early & (smoothed <= t.collapse_ratio * L0) & (L0 - smoothed >= margin))
    if not len(below):
        return _with(verdict, reason=f"length stayed above {t.collapse_ratio:g} x L0 in the first {w.early} steps")
    at = int(below[0])
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
                      + ("by the end" if ended else f"within {w.recovery} steps"))
    return verdict


def detect_hockey_stick(steps, rewards, t: DetectorThresholds = DetectorThresholds(),
                        run_steps: int | None = None) -> HockeyStickVerdict:
    """Reward Hockey Stick on one curve (see the module's docstring)."""
    steps, rewards = _clean(steps, rewards)
    if len(steps) < 3:
        return HockeyStickVerdict(False, reason=f"too few points ({len(steps)})")
    w, smoothed, r0 = _prepared(steps, rewards, t, run_steps)
    early = np.flatnonzero(steps <= steps[0] + w.early)
    low = int(early[np.argmin(smoothed[early])])
    drop = r0 - float(smoothed[low])
    verdict = HockeyStickVerdict(False, r0=round(r0, 4), minimum=round(float(smoothed[low]), 4),
                                 minimum_step=int(steps[low]), drop=round(drop, 4),
                                 drop_share=round(drop / abs(r0), 4) if r0 else None,
                                 final=round(float(smoothed[-1]), 4))
    big = drop >= t.reward_drop_absolute or (r0 != 0 and drop >= t.reward_drop_relative * abs(r0))
    if drop <= 0 or not big:
        return _with(verdict, reason=f"no early drop of >= {t.reward_drop_absolute:g} or "
                                     f">= {t.reward_drop_relative:.0%} of r0")
    margin = t.noise_multiple * noise_level(rewards, w.smoothing)
    if drop < margin:
        return _with(verdict, reason=f"the early drop ({drop:.3g}) is within {t.noise_multiple:g} standard errors "
                                     f"of the curve's noise ({margin / max(t.noise_multiple, 1e-12):.3g} each)")
    level = float(smoothed[low]) + t.reward_regain_share * drop
    before = np.flatnonzero((steps < steps[low]) & (smoothed >= level))
    verdict.descent_steps = max(1, int(steps[low] - (steps[before[-1]] if len(before) else steps[0])))
    after = np.flatnonzero((steps > steps[low]) & (smoothed >= level))
    if not len(after):
        verdict.recovered = False
        return _with(verdict, reason=f"reward dropped by {drop:.3g} by step {verdict.minimum_step} and has not "
                                     f"regained {t.reward_regain_share:.0%} of it (a drop, not yet a hockey stick)")
    verdict.recovered, verdict.recovered_at = True, int(steps[after[0]])
    verdict.recovery_steps = int(steps[after[0]] - steps[low])
    # Times shorter than the smoothing width are below what the smoothed curve resolves: a one-step spike has no
    # measurable descent, so its "recovery ratio" would be noise.
    if verdict.recovery_steps < t.recovery_descent_ratio * max(verdict.descent_steps, w.smoothing):
        return _with(verdict, reason=f"reward dipped and recovered about as fast as it fell "
                                     f"({verdict.recovery_steps} vs {verdict.descent_steps} steps)")
    verdict.detected = True
    verdict.reason = (f"reward fell {drop:.3g} from {r0:.3g} in {verdict.descent_steps} steps (minimum at step "
                      f"{verdict.minimum_step}) and took {verdict.recovery_steps} steps to regain "
                      f"{t.reward_regain_share:.0%} of it")
    return verdict


def _with(verdict, reason: str):
    verdict.reason = reason
    return verdict


def diagnose(steps, lengths, rewards, reward_by_length: dict[str, list] | None = None,
             t: DetectorThresholds = DetectorThresholds(), run_steps: int | None = None) -> Diagnosis:
    """Both detectors on a run's curves. `reward_by_length`: bucket name -> reward per step (None/NaN where the
    bucket had no responses); a bucket with fewer than `min_bucket_points` points, or present in fewer than
    `min_bucket_share` of the steps, is not judged."""
    clean_steps = _clean(steps, steps)[0]
    span = run_steps or (int(clean_steps[-1] - clean_steps[0] + 1) if len(clean_steps) else 0)
    buckets = {}
    for name, values in (reward_by_length or {}).items():
        values = [math.nan if v is None else v for v in values]
        present = int(np.isfinite(np.asarray(values, dtype=float)).sum())
        if present >= t.min_bucket_points and present >= t.min_bucket_share * len(clean_steps):
            buckets[name] = detect_hockey_stick(steps, values, t, span or None)
    return Diagnosis(sequence_length_collapse=detect_collapse(steps, lengths, t, span or None),
                     reward_hockey_stick=detect_hockey_stick(steps, rewards, t, span or None),
                     reward_hockey_stick_by_length=buckets,
                     windows=Windows.for_run(span, t) if span else None)
