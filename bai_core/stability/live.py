"""The detectors on a run as it goes: every `every` steps, the curves so far are judged with the run's planned
length (so the live verdicts and the final one agree), and each detector that fires raises one alarm, at the step
it was first seen. Used by bai's train stage (rl/monitor.py), `bai watch` on any tool's growing log, and the TRL
callback users add to their own scripts (rl/callback.py). Pure: no TRL, no Prefect."""

from __future__ import annotations

from dataclasses import dataclass, field

from bai_core.stability.curves import Curves
from bai_core.stability.detectors import DETECTORS, DetectorThresholds, Diagnosis

# The Prefect event each detector's alarm is sent as (where a server is set).
DETECTOR_EVENTS = {"collapse": "bai.stability.collapse", "hockey_stick": "bai.stability.hockey-stick",
                   "entropy": "bai.stability.entropy"}


@dataclass
class Alarm:
    detector: str  # collapse, hockey_stick, entropy
    step: int  # the last logged step when it was seen
    reason: str
    evidence: dict  # the verdict's JSON

    def line(self) -> str:
        return f"step {self.step}: {self.detector.replace('_', ' ')} DETECTED - {self.reason}"


@dataclass
class LiveDetectors:
    thresholds: DetectorThresholds = field(default_factory=DetectorThresholds)
    every: int = 5  # steps between checks
    planned_steps: int | None = None  # overrides the log's plan
    alarmed: dict[str, Alarm] = field(default_factory=dict)
    diagnosis: Diagnosis | None = None
    checked_at: int | None = None  # the last step judged

    def due(self, step: int, final: bool = False) -> bool:
        """Whether the curves up to `step` are to be judged now: every `every` steps, and at the end."""
        if self.checked_at is not None and step <= self.checked_at:
            return False
        return final or self.checked_at is None or step - self.checked_at >= self.every or step % self.every == 0

    def check(self, curves: Curves, final: bool = False) -> list[Alarm]:
        """Judge the curves if due; the alarms raised now (each detector once)."""
        if not curves.steps or not self.due(curves.steps[-1], final):
            return []
        step = curves.steps[-1]
        self.checked_at = step
        self.diagnosis = curves.diagnose(self.thresholds, self.planned_steps)
        evidence = self.diagnosis.to_json()
        raised = []
        for detector in self.diagnosis.fired:
            if detector not in self.alarmed:
                alarm = Alarm(detector, step, self.diagnosis.reason_fired(detector), evidence[DETECTORS[detector]])
                self.alarmed[detector] = alarm
                raised.append(alarm)
        return raised
