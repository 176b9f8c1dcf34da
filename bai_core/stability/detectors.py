"""The RLHF instabilities of docs/method.md, and entropy's, detected on a run's curves: `diagnose` runs the three
detectors and returns their verdicts with evidence. Pure: numpy only, no TRL, no Prefect.

- Sequence Length Collapse, told apart from the length cap (length.py);
- the Reward Hockey Stick, on the run's reward and on the reward of each response-length bucket (reward.py);
- entropy collapse and spikes (entropy.py).

A verdict is one of three: detected, not detected, or cannot judge (the metric is not in the log, or too few
points). The windows and every threshold: thresholds.py; the baseline, the noise and the confidence: curve.py and
statistics.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from bai_core.stability.curve import clean, logging_interval
from bai_core.stability.entropy import EntropyVerdict, detect_entropy
from bai_core.stability.length import CollapseVerdict, detect_collapse
from bai_core.stability.reward import HockeyStickVerdict, detect_hockey_stick
from bai_core.stability.thresholds import DetectorThresholds, Windows

__all__ = ["DETECTORS", "DETECTOR_TITLES", "CollapseVerdict", "DetectorThresholds", "Diagnosis", "EntropyVerdict",
           "HockeyStickVerdict", "Windows", "detect_collapse", "detect_entropy", "detect_hockey_stick", "diagnose"]

# detector name -> its key in a Diagnosis's JSON (and in the live monitor's events)
DETECTORS = {"collapse": "sequence_length_collapse", "hockey_stick": "reward_hockey_stick", "entropy": "entropy"}
DETECTOR_TITLES = {"collapse": "Sequence Length Collapse", "hockey_stick": "Reward Hockey Stick",
                   "entropy": "Entropy collapse or spike"}


@dataclass
class Diagnosis:
    sequence_length_collapse: CollapseVerdict
    reward_hockey_stick: HockeyStickVerdict
    entropy: EntropyVerdict = field(default_factory=lambda: EntropyVerdict(False, judged=False,
                                                                          reason="no entropy in this log"))
    # the same reward verdict for every response-length bucket that has enough points, e.g. "300-400"
    reward_hockey_stick_by_length: dict[str, HockeyStickVerdict] = field(default_factory=dict)
    windows: Windows | None = None
    # buckets with too few points to judge at all: name -> why ("present at 40 of 600 steps, 52 completions")
    sparse_buckets: dict[str, str] = field(default_factory=dict)

    @property
    def fired(self) -> list[str]:
        """Names of the detectors that fired: "collapse", "hockey_stick", "entropy"."""
        return [name for name, on in (("collapse", self.sequence_length_collapse.detected),
                                      ("hockey_stick", self.hockey_stick_detected),
                                      ("entropy", self.entropy.detected)) if on]

    @property
    def cannot_judge(self) -> dict[str, str]:
        """Detector -> why it could not judge this log."""
        return {name: verdict.reason for name, verdict in (("collapse", self.sequence_length_collapse),
                                                           ("hockey_stick", self.reward_hockey_stick),
                                                           ("entropy", self.entropy)) if not verdict.judged}

    def reason_fired(self, detector: str) -> str:
        """Why `detector` fired: its verdict's reason, or for a hockey stick seen only in a length bucket, that
        bucket's (the overall curve's reason then says why it did not fire there)."""
        if detector == "collapse":
            return self.sequence_length_collapse.reason
        if detector == "entropy":
            return self.entropy.reason
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
        c, h, e = self.sequence_length_collapse, self.reward_hockey_stick, self.entropy

        def number(value) -> str:
            return "n/a" if value is None else f"{value:.3g}"

        lines = [f"Sequence Length Collapse: {status(c)} (L0 {number(c.L0)}, minimum {number(c.minimum)} at step "
                 f"{c.minimum_step}, final {number(c.final)}): {c.reason}",
                 f"Reward Hockey Stick: {status(h)} over all responses (r0 {number(h.r0)}, minimum "
                 f"{number(h.minimum)} at step {h.minimum_step}, final {number(h.final)}): {h.reason}",
                 f"Entropy: {status(e)} (E0 {number(e.E0)}, minimum {number(e.minimum)} at step {e.minimum_step}, "
                 f"final {number(e.final)}): {e.reason}"]
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
        """The `bai diagnose --json` object: each detector has `detected`, `judged` and its evidence; a bucket that
        fired makes the run's hockey-stick verdict fire too (with `buckets` naming it)."""
        hockey = asdict(self.reward_hockey_stick)
        hockey["detected"] = self.hockey_stick_detected
        hockey["overall_detected"] = self.reward_hockey_stick.detected
        hockey["buckets"] = {name: asdict(v) for name, v in self.reward_hockey_stick_by_length.items()}
        hockey["sparse_buckets"] = dict(self.sparse_buckets)
        return {"sequence_length_collapse": asdict(self.sequence_length_collapse), "reward_hockey_stick": hockey,
                "entropy": asdict(self.entropy), "fired": self.fired, "cannot_judge": self.cannot_judge,
                "windows": asdict(self.windows) if self.windows else None}


def status(verdict) -> str:
    """DETECTED, not detected, or cannot judge."""
    return "DETECTED" if verdict.detected else "not detected" if verdict.judged else "cannot judge"


def diagnose(steps, lengths, rewards, reward_by_length: dict[str, list] | None = None,
             t: DetectorThresholds = DetectorThresholds(), planned_steps: int | None = None,
             count_by_length: dict[str, list] | None = None, *, entropy=None, counts=None, clipped=None,
             terminated=None) -> Diagnosis:
    """Every detector on a run's curves (each a list per point, None where a point lacks the value; None for a
    metric the log does not have). `reward_by_length`: bucket name -> reward per point; `count_by_length`: the
    completions behind each of those points, when logged (the run's reward then counts each point's total);
    `counts`: the completions behind each point of the run's curves, when known otherwise. A bucket with fewer
    than `min_bucket_points` points, or present in fewer than `min_bucket_share` of the points, is not judged: it
    is listed as too sparse. `planned_steps`: the run's planned length, when known (thresholds.py)."""
    clean_steps = clean(steps, steps)[0]
    by_bucket = count_by_length or {}
    totals = counts
    if by_bucket:
        totals = [sum(c[i] or 0 for c in by_bucket.values()) or None for i in range(len(steps))]
    judged, sparse = {}, {}
    for name, values in (reward_by_length or {}).items():
        values = [math.nan if v is None else v for v in values]
        present = int(np.isfinite(np.asarray(values, dtype=float)).sum())
        if present >= t.min_bucket_points and present >= t.min_bucket_share * len(clean_steps):
            judged[name] = values
        elif present:
            completions = int(sum(c or 0 for c in by_bucket.get(name, []))) if name in by_bucket else None
            sparse[name] = (f"present at {present} of {len(clean_steps)} steps"
                            + (f", {completions} completion{'' if completions == 1 else 's'}"
                               if completions is not None else ""))
    # Each reward curve judged is one more chance for noise to fire: the confidence each needs is corrected for
    # how many there are (the run's reward and every judged bucket; Sidak), so the run keeps min_confidence.
    each = t.model_copy(update={"min_confidence": t.min_confidence ** (1 / (1 + len(judged)))})
    buckets = {name: detect_hockey_stick(steps, values, each, planned_steps, by_bucket.get(name))
               for name, values in judged.items()}
    windows = None
    if len(clean_steps):
        windows = Windows.for_log(int(clean_steps[-1] - clean_steps[0] + 1), logging_interval(clean_steps), t,
                                  planned_steps)
    return Diagnosis(sequence_length_collapse=detect_collapse(steps, lengths, t, planned_steps, counts, clipped,
                                                              terminated),
                     reward_hockey_stick=detect_hockey_stick(steps, rewards, each, planned_steps, totals),
                     entropy=detect_entropy(steps, entropy, t, planned_steps, counts),
                     reward_hockey_stick_by_length=buckets, windows=windows, sparse_buckets=sparse)
