"""Where long work reports progress when no caller passed a callback down: a process-wide sink.

`bai run` runs the flow in its own process and installs a terminal progress bar here; the Prefect tasks report to it
as well as to their progress artifacts, so a long stage (training the demo family, a big merge) is visible on the
command line too. On a worker nothing is installed and reports go only to the UI.
"""

from __future__ import annotations

from collections.abc import Callable

_sink: Callable[[str, int, int], None] | None = None


def set_sink(sink: Callable[[str, int, int], None] | None) -> None:
    global _sink
    _sink = sink


def report(phase: str, done: int, total: int) -> None:
    if _sink is not None:
        _sink(phase, done, total)
