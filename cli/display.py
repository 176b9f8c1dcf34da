"""How the CLI shows long work on stderr (stdout stays clean for --json): a progress bar on a terminal, plain
timestamped lines everywhere else (a log file, CI, nohup), so a cold run is never silent for minutes. The lines are
`bai_core.progress.Lines`, the same the Prefect UI's run log gets."""

from __future__ import annotations

import sys
import time

from bai_core.progress import LABELS, Lines


def make_display(quiet: bool = False):
    """The display for this process's stderr: None when quiet (--json), a bar on a terminal, else plain lines."""
    if quiet:
        return None
    return TerminalBar() if sys.stderr.isatty() else PlainLines()


class PlainLines(Lines):
    """`09:14:02 merge-stage1 started`, `09:14:05 merge-stage1 Completed (3.1 s): URI`, `09:14:03   merging 40%`."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        super().__init__(lambda text, warning: print(f"{time.strftime('%H:%M:%S')} {text}", file=self.stream,
                                                      flush=True))

    def note(self, text: str, warning: bool = False) -> None:
        super().note(f"warning: {text}" if warning else text, warning)


class WarningsOnly:
    """Only what the user must act on, on stderr (a verb's own output, or --json's result, stays as it was)."""

    def stage(self, name: str, state: str, seconds: float | None, detail: str = "") -> None:
        pass

    def progress(self, phase: str, done: int, total: int, detail: str = "") -> None:
        pass

    def note(self, text: str, warning: bool = False) -> None:
        if warning:
            print(f"bai: warning: {text}", file=sys.stderr, flush=True)


class TerminalBar:
    """One tqdm bar per phase (its detail as the bar's postfix); stage boundaries close it; notes print above it."""

    def __init__(self):
        self.bar, self.phase = None, None

    def stage(self, name: str, state: str, seconds: float | None, detail: str = "") -> None:
        self.close()

    def progress(self, phase: str, done: int, total: int, detail: str = "") -> None:
        from tqdm import tqdm

        if phase != self.phase or self.bar is None:
            self.close()
            self.phase = phase
            unit = dict(unit="B", unit_scale=True, unit_divisor=1024) if phase == "merge" else {}
            self.bar = tqdm(total=total, desc=LABELS.get(phase, phase), file=sys.stderr, leave=False, **unit)
        if detail:
            self.bar.set_postfix_str(detail, refresh=False)
        self.bar.update(done - self.bar.n)

    def note(self, text: str, warning: bool = False) -> None:
        from tqdm import tqdm

        tqdm.write(f"bai: {'warning: ' if warning else ''}{text}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.phase = None, None
