"""How the CLI shows long work on stderr (stdout stays clean for --json): a progress bar on a terminal, plain
timestamped lines everywhere else (a log file, CI, nohup), so a cold run is never silent for minutes."""

from __future__ import annotations

import sys
import time

from bai_core.progress import LABELS

LINE_EVERY_PERCENT = 10  # plain-line mode: one line per phase every 10%...
QUIET_SECONDS = 5.0  # ...once the phase has run this long (a quick merge or fetch prints no percentages)


def make_display(quiet: bool = False):
    """The display for this process's stderr: None when quiet (--json), a bar on a terminal, else plain lines."""
    if quiet:
        return None
    return TerminalBar() if sys.stderr.isatty() else PlainLines()


class PlainLines:
    """`09:14:02 merge-stage1 started`, `09:14:05 merge-stage1 Completed (3.1 s)`, `09:14:03   merging 40%`."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.shown: dict[str, int] = {}
        self.started: dict[str, float] = {}

    def _line(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", file=self.stream, flush=True)

    def stage(self, name: str, state: str, seconds: float | None) -> None:
        self.started.clear()
        self.shown.clear()
        self._line(f"{name} {state}" + (f" ({seconds:.1f} s)" if seconds is not None else ""))

    def progress(self, phase: str, done: int, total: int) -> None:
        if not total:
            return
        started = self.started.setdefault(phase, time.monotonic())
        if time.monotonic() - started < QUIET_SECONDS:
            return
        percent = 100 * done // total
        step = percent // LINE_EVERY_PERCENT * LINE_EVERY_PERCENT
        if step > self.shown.get(phase, -1):
            self.shown[phase] = step
            self._line(f"  {LABELS.get(phase, phase)} {step}%")

    def note(self, text: str) -> None:
        self._line(f"  {text}")

    def close(self) -> None:
        pass


class TerminalBar:
    """One tqdm bar per phase; stage boundaries close it."""

    def __init__(self):
        self.bar, self.phase = None, None

    def stage(self, name: str, state: str, seconds: float | None) -> None:
        self.close()

    def progress(self, phase: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if phase != self.phase or self.bar is None:
            self.close()
            self.phase = phase
            unit = dict(unit="B", unit_scale=True, unit_divisor=1024) if phase == "merge" else {}
            self.bar = tqdm(total=total, desc=LABELS.get(phase, phase), file=sys.stderr, leave=False, **unit)
        self.bar.update(done - self.bar.n)

    def note(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(f"bai: {text}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.phase = None, None
