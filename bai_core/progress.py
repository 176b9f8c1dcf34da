"""Where long work reports what it is doing when no caller passed a callback down: process-wide progress events,
and the lines that tell a run's story.

Three kinds of event: a stage starts or ends (`stage_started`, `stage_finished`, with what it produced), work inside
a stage advances (`report(phase, done, total, detail)`: a merge's bytes, a training run's steps with its reward and
length), and a stage says what it did or found (`note`: the merge formula and where M_bai went, a detector's
verdict, a model's scores). Sinks show them: `bai run` installs a bar on a terminal or `Lines` on stderr otherwise;
the Prefect flows add `Lines` writing to the run's log, so the UI's log tells the same story as the CLI's lines.
Whatever the sinks, this module remembers the latest stage and phase, so an interrupted run can say where it
stopped (`where()`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from bai_core.errors import Stopped

LINE_EVERY_PERCENT = 10  # Lines: one line per phase every 10%...
QUIET_SECONDS = 5.0  # ...once the phase has run this long (a quick merge or fetch prints no percentages)


class Sink(Protocol):
    def stage(self, name: str, state: str, seconds: float | None, detail: str = "") -> None: ...

    def progress(self, phase: str, done: int, total: int, detail: str = "") -> None: ...

    def note(self, text: str, warning: bool = False) -> None: ...


# How phases read in a sentence ("stopped during demo-family-demo (training reasoning, 40%)").
LABELS = {"fingerprint": "fingerprinting inputs", "merge": "merging", "pretrained": "training pretrained",
          "instruct": "training instruct", "reasoning": "training reasoning", "reward": "training reward model",
          "evaluate": "evaluating", "train": "RL training"}

_sinks: list[Sink] = []
_stage: str | None = None  # the stage running now (None between stages)
_phase: tuple[str, int, int] | None = None  # the latest progress report inside it


def quiet_other_bars() -> None:
    """Off a terminal (a log file, CI, a Prefect worker), other libraries' tqdm bars (lm-eval's, datasets') write
    carriage-return junk into the log; bai's own lines report progress there instead. tqdm reads TQDM_DISABLE when
    it is first imported, so call this early. A user's own TQDM_DISABLE wins."""
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")


def set_sink(sink: Sink | None) -> None:
    """The terminal's sink (`bai run`): replaces every sink."""
    _sinks[:] = [sink] if sink is not None else []


def add_sink(sink: Sink) -> None:
    _sinks.append(sink)


def remove_sink(sink: Sink) -> None:
    if sink in _sinks:
        _sinks.remove(sink)


def has_sink(kind: type) -> bool:
    return any(isinstance(sink, kind) for sink in _sinks)


def stage_started(name: str) -> None:
    global _stage, _phase
    _stage, _phase = name, None
    for sink in list(_sinks):
        sink.stage(name, "started", None)


def stage_finished(name: str, state: str, seconds: float | None, detail: str = "") -> None:
    global _stage, _phase
    _stage, _phase = None, None
    for sink in list(_sinks):
        sink.stage(name, state, seconds, detail)


def report(phase: str, done: int, total: int, detail: str = "") -> None:
    global _phase
    _raise_if_stopped()
    _phase = (phase, done, total)
    for sink in list(_sinks):
        sink.progress(phase, done, total, detail)


def note(text: str, warning: bool = False) -> None:
    """A line of the run's story: what a stage did or found, or that it waits for another run. A warning is
    something the user should act on (a detector fired)."""
    for sink in list(_sinks):
        sink.note(text, warning)


_signals_seen: int | None = None  # read end of the pipe the interpreter writes each arriving signal's number to
_stop: Callable[[int], BaseException] = Stopped  # what a stop signal raises there
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_signals_seen(stop: Callable[[int], BaseException] = Stopped) -> Iterator[None]:
    """While the block runs, every progress report also checks whether SIGTERM or SIGINT arrived, and raises
    `stop(signum)` (Stopped; in a Prefect flow run, Prefect's own TerminationSignal, so the run ends Cancelled).

    Why: a stop signal's Python handler raises an exception wherever the main thread happens to be (Prefect's
    TerminationSignal in a flow run, KeyboardInterrupt, bai's Stopped), and when that is inside an object's
    `__del__` run by the garbage collector, Python prints "Exception ignored" and goes on: the run keeps training
    until the worker kills it 30 s later. The interpreter also writes every signal's number to a "wakeup fd" at the
    C level, before any handler runs; long work reports progress every step, so it reads them there."""
    global _signals_seen, _stop
    if threading.current_thread() is not threading.main_thread() or _signals_seen is not None:
        yield
        return
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    _signals_seen, _stop = read, stop
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        _signals_seen, _stop = None, Stopped
        os.close(read)
        os.close(write)


def check_stop() -> None:
    """For work that waits without reporting progress (on other processes): stop now if SIGTERM or SIGINT came."""
    _raise_if_stopped()


def _raise_if_stopped() -> None:
    if _signals_seen is None:
        return
    try:
        arrived = os.read(_signals_seen, 64)
    except (BlockingIOError, OSError):
        return
    for signum in STOP_SIGNALS:
        if signum in arrived:
            raise _stop(signum)


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


class Lines:
    """The events as lines, each handed to `write(line, warning)`: `merge-stage1 started`, `merge-stage1 Completed
    (3.1 s): URI`, `  RL training 40%: step 60/150, reward 0.81, ...`, `  M_bai = 0.5 x pretrained + ... -> URI`."""

    def __init__(self, write: Callable[[str, bool], None], clock: Callable[[], float] = time.monotonic):
        self.write = write
        self.clock = clock
        self.shown: dict[str, int] = {}
        self.started: dict[str, float] = {}

    def stage(self, name: str, state: str, seconds: float | None, detail: str = "") -> None:
        self.started.clear()
        self.shown.clear()
        self.write(f"{name} {state}" + (f" ({seconds:.1f} s)" if seconds is not None else "")
                   + (f": {detail}" if detail else ""), state == "Failed")

    def progress(self, phase: str, done: int, total: int, detail: str = "") -> None:
        if not total:
            return
        started = self.started.setdefault(phase, self.clock())
        if self.clock() - started < QUIET_SECONDS:
            return
        step = 100 * done // total // LINE_EVERY_PERCENT * LINE_EVERY_PERCENT
        if step > self.shown.get(phase, 0):  # from 10% on: a "0%" line says nothing a "started" line did not
            self.shown[phase] = step
            self.write(f"  {LABELS.get(phase, phase)} {step}%" + (f": {detail}" if detail else ""), False)

    def note(self, text: str, warning: bool = False) -> None:
        self.write(f"  {text}", warning)

    def close(self) -> None:
        pass
