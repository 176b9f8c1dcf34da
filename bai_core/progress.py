"""Where long work reports what it is doing when no caller passed a callback down: process-wide progress events.

Two kinds of event: a stage starts or ends (`stage_started`, `stage_finished`: the pipeline's stages), and work
inside a stage advances (`report(phase, done, total)`: a merge's bytes, a training run's steps). `bai run` installs a
sink that shows them on the terminal (a bar) or, when stderr is a log file, as plain lines; on a worker nothing is
installed and the tasks' Prefect artifacts show progress in the UI. Whatever the sink, this module remembers the
latest stage and phase, so an interrupted run can say where it stopped (`where()`).
"""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    def stage(self, name: str, state: str, seconds: float | None) -> None: ...

    def progress(self, phase: str, done: int, total: int) -> None: ...

    def note(self, text: str) -> None: ...


# How phases read in a sentence ("stopped during build-demo-demo (training reasoning, 40%)").
LABELS = {"fingerprint": "fingerprinting inputs", "merge": "merging", "pretrained": "training pretrained",
          "instruct": "training instruct", "reasoning": "training reasoning", "reward": "training reward model",
          "evaluate": "evaluating", "train": "RL training"}

_sink: Sink | None = None
_stage: str | None = None  # the stage running now (None between stages)
_phase: tuple[str, int, int] | None = None  # the latest progress report inside it


def set_sink(sink: Sink | None) -> None:
    global _sink
    _sink = sink


def stage_started(name: str) -> None:
    global _stage, _phase
    _stage, _phase = name, None
    if _sink is not None:
        _sink.stage(name, "started", None)


def stage_finished(name: str, state: str, seconds: float | None) -> None:
    global _stage, _phase
    _stage, _phase = None, None
    if _sink is not None:
        _sink.stage(name, state, seconds)


def report(phase: str, done: int, total: int) -> None:
    global _phase
    _phase = (phase, done, total)
    if _sink is not None:
        _sink.progress(phase, done, total)


def note(text: str) -> None:
    """Something worth a line while a stage runs (e.g. that it waits for another run building the same thing)."""
    if _sink is not None:
        _sink.note(text)


def current_stage() -> str | None:
    return _stage


def where() -> str | None:
    """'merge-stage2 (merging, 43%)', or None outside any stage."""
    if _stage is None:
        return None
    if _phase is None or not _phase[2]:
        return _stage
    phase, done, total = _phase
    return f"{_stage} ({LABELS.get(phase, phase)}, {100 * done // total}%)"
